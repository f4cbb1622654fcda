// The cpu backend's memory: backend memory is host memory, so upload and download are copies.
#include <cstdlib>
#include <cstring>
#include <new>

#include "context.h"

namespace ffrt {

std::shared_ptr<std::byte> allocate(Context&, size_t bytes, bool zeroed) {
  const size_t rounded = (bytes + 255) / 256 * 256;
  void* p = std::aligned_alloc(256, rounded == 0 ? 256 : rounded);
  if (!p) throw std::bad_alloc();
  if (zeroed) std::memset(p, 0, rounded == 0 ? 256 : rounded);
  return {static_cast<std::byte*>(p), [](std::byte* q) { std::free(q); }};
}

void upload(Context& ctx, const View& host_src, const View& dst) { copy_box(ctx, host_src, dst, false); }

void download(Context& ctx, const View& src, const View& host_dst) { copy_box(ctx, src, host_dst, false); }

void synchronize(Context&) {}

// The cpu backend's kernels have run when they return: the host clock times them.
int mark(Context& ctx, Lane) {
  ctx.marks.push_back(std::chrono::steady_clock::now());
  return static_cast<int>(ctx.marks.size()) - 1;
}

std::vector<double> mark_times(Context& ctx) {
  std::vector<double> t;
  for (const auto& m : ctx.marks) t.push_back(std::chrono::duration<double, std::micro>(m - ctx.marks[0]).count());
  ctx.marks.clear();
  return t;
}

// The cpu backend runs each kernel as it is called: it has nothing to record.
struct Graph {};
bool graphs_supported() { return false; }
void begin_capture(Context&) { throw Error("the cpu backend has no CUDA graphs"); }
std::shared_ptr<Graph> end_capture(Context&) { throw Error("the cpu backend has no CUDA graphs"); }
void replay(Context&, const Graph&) { throw Error("the cpu backend has no CUDA graphs"); }
int graph_launches(Context&, const Graph&) { throw Error("the cpu backend has no CUDA graphs"); }

}  // namespace ffrt
