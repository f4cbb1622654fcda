// The cpu backend's context.
#include "context.h"

#include <omp.h>

namespace ffrt {

std::unique_ptr<Context, void (*)(Context*)> make_context(const ContextOptions& opts) {
  Context* c = new Context;
  c->threads = opts.threads > 0 ? opts.threads : omp_get_max_threads();
  return {c, [](Context* p) { delete p; }};
}

const char* backend_name() { return "cpu"; }

std::string device_name(Context&) { return "cpu"; }

void set_op(Context&, const char*) {}

}  // namespace ffrt
