// backend_cases: runs the backend-neutral kernel cases (backend_cases.h) on the backend it is linked
// to (backend_cases_cpu, backend_cases_cuda) and writes every case's outputs to one safetensors
// file, "case/output" each, for compare_backends.py to hold against another backend's.
//
//   backend_cases_cpu --out cpu.safetensors [--threads N] [--only SUBSTRING] [--list] [-v]
//   backend_cases_cuda --out cuda.safetensors [--device N] [--tf32]
//
// Exit status 1 when a case threw, wrote outside its outputs' boxes, changed an input or left NaN
// in an output; the file is written all the same (without that case's outputs where it threw).
#include "backend_cases.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>

namespace ffrt::cases {

namespace {

constexpr uint32_t kSentinelF32 = 0x7fc0dead;             // a NaN: reading it poisons a result
constexpr uint64_t kSentinelF64 = 0x7ff80000deadbeefULL;  // the same in double
constexpr int64_t kSentinelI64 = -0x5eadbeefLL;           // an id no kernel accepts

constexpr uint64_t kFnvBasis = 0xcbf29ce484222325ULL;

/// FNV-1a of n bytes, continuing from h.
uint64_t fnv1a(const void* p, size_t n, uint64_t h = kFnvBasis) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ULL;
  return h;
}

/// Calls f(g) for every index g of the box, row-major (once for rank 0).
template <typename F>
void for_box(const Box& b, F&& f) {
  for (int64_t s : b.size)
    if (s <= 0) return;
  const int r = static_cast<int>(b.size.size());
  Shape g = b.lo;
  while (true) {
    f(static_cast<const Shape&>(g));
    int d = r - 1;
    for (; d >= 0; --d) {
      if (++g[d] < b.lo[d] + b.size[d]) break;
      g[d] = b.lo[d];
    }
    if (d < 0) return;
  }
}

void fill_sentinel(HostArray& a) {
  const int64_t n = a.numel();
  for (int64_t k = 0; k < n; ++k) {
    if (a.dtype == DType::f32)
      std::memcpy(a.f32() + k, &kSentinelF32, 4);
    else if (a.dtype == DType::f64)
      std::memcpy(a.f64() + k, &kSentinelF64, 8);
    else
      a.i64()[k] = kSentinelI64;
  }
}

}  // namespace

Box whole(const Shape& s) { return Box{Shape(s.size(), 0), s}; }

Shape full_of(const View& v) { return Shape(v.full, v.full + v.rank); }

View flat_view(void* p, DType dtype, int64_t n) {
  const int64_t zero = 0;
  return make_view(p, dtype, 1, &n, &zero, &n);
}

HostArray host_box(const HostArray& t, const Box& b) {
  HostArray a(t.dtype, b.size);
  const int64_t esize = dtype_size(t.dtype);
  const size_t r = t.shape.size();
  int64_t j = 0;
  for_box(b, [&](const Shape& g) {
    int64_t flat = 0;
    for (size_t d = 0; d < r; ++d) flat = flat * t.shape[d] + g[d];
    std::memcpy(a.bytes.data() + j++ * esize, t.bytes.data() + flat * esize, esize);
  });
  return a;
}

View host_view(HostArray& a, const Shape& full, const Box& b) {
  return make_view(a.bytes.data(), a.dtype, static_cast<int>(full.size()), full.data(), b.lo.data(), b.size.data());
}

const char* act_name(Act a) {
  switch (a) {
    case Act::none: return "none";
    case Act::relu: return "relu";
    case Act::sigmoid: return "sigmoid";
    case Act::tanh: return "tanh";
    case Act::gelu: return "gelu";
  }
  return "?";
}

Box with_dim(Box b, int d, int64_t lo, int64_t size) {
  b.lo[static_cast<size_t>(d)] = lo;
  b.size[static_cast<size_t>(d)] = size;
  return b;
}

struct Case::Buffer {
  std::string name;  // the output's name; empty for an input
  bool written = false;
  DType dtype = DType::f32;
  std::shared_ptr<std::byte> mem;
  int64_t total = 0;             // elements of the allocation
  Box box;                       // in global coordinates
  std::vector<int64_t> offsets;  // the box's elements in the allocation, row-major
  HostArray image;               // the allocation as uploaded
};

Case::Case(Context& c, const std::string& name)
    : ctx(c), rng(fnv1a(name.data(), name.size())), name_(name), digest_(kFnvBasis) {}
Case::~Case() = default;

HostArray Case::uniform(const Shape& s, float lo, float hi) {
  HostArray a(DType::f32, s);
  for (int64_t k = 0; k < a.numel(); ++k) a.f32()[k] = rng.uniform(lo, hi);
  return a;
}

HostArray Case::uniform64(const Shape& s, double lo, double hi) {
  HostArray a(DType::f64, s);
  for (int64_t k = 0; k < a.numel(); ++k)
    a.f64()[k] = lo + (hi - lo) * (static_cast<double>(rng.next() >> 11) * 0x1p-53);
  return a;
}

HostArray Case::ids(const Shape& s, int64_t classes) {
  HostArray a(DType::i64, s);
  for (int64_t k = 0; k < a.numel(); ++k) a.i64()[k] = rng.below(classes);
  return a;
}

View Case::in(const HostArray& t, const Box& b, Layout l) { return add("", false, t.dtype, t.shape, b, l, &t); }

View Case::in(const HostArray& values, const Shape& full, const Box& b, Layout l) {
  if (values.shape != b.size) throw std::logic_error(name_ + ": box values do not have the box's extents");
  return add("", false, values.dtype, full, b, l, &values);
}

View Case::out(const std::string& name, const Shape& full, const Box& b, Layout l, DType dtype) {
  return add(name, true, dtype, full, b, l, nullptr);
}

View Case::inout(const std::string& name, const HostArray& init, const Box& b, Layout l) {
  return add(name, true, init.dtype, init.shape, b, l, &init);
}

void Case::record(const std::string& name, HostArray a) { recorded_.emplace_back(name, std::move(a)); }

View Case::add(const std::string& name, bool written, DType dtype, const Shape& full, const Box& b, Layout l,
               const HostArray* init) {
  const int r = static_cast<int>(full.size());
  if (r > kMaxRank || b.lo.size() != full.size() || b.size.size() != full.size())
    throw std::logic_error(name_ + ": a box does not match its tensor's rank");
  for (int d = 0; d < r; ++d)
    if (b.lo[d] < 0 || b.size[d] < 0 || b.lo[d] + b.size[d] > full[d])
      throw std::logic_error(name_ + ": a box leaves its tensor");

  // The layout: extents with padding, the order the dims are stored in, strides, the box's offset.
  Shape ext = b.size, pad_lo(r, 0), stride(r, 0);
  if (l == Layout::padded || l == Layout::scrambled) {
    for (int d = 0; d < r; ++d) {
      pad_lo[d] = rng.below(3);
      ext[d] += pad_lo[d] + rng.below(3);
    }
    if (r > 0 && ext[r - 1] == b.size[r - 1]) ++ext[r - 1];  // rows never dense
  }
  std::vector<int> order(r);
  for (int d = 0; d < r; ++d) order[d] = d;
  if (l == Layout::scrambled && r >= 2) {
    for (int d = r - 1; d > 0; --d) std::swap(order[d], order[rng.below(d + 1)]);
    if (std::is_sorted(order.begin(), order.end())) std::swap(order[r - 2], order[r - 1]);
  }
  int64_t total = 1;
  for (int k = r - 1; k >= 0; --k) stride[order[k]] = total, total *= ext[order[k]];
  int64_t base = 0;
  for (int d = 0; d < r; ++d) base += pad_lo[d] * stride[d];
  if (l == Layout::shifted) base = 1, total += 2;

  Buffer& buf = buffers_.emplace_back();
  buf.name = name;
  buf.written = written;
  buf.dtype = dtype;
  buf.total = total;
  buf.box = b;
  const int64_t esize = dtype_size(dtype);
  buf.mem = allocate(ctx, static_cast<size_t>(std::max<int64_t>(total, 1) * esize));
  buf.image = HostArray(dtype, {total});
  fill_sentinel(buf.image);
  // init holds the global tensor, or the box alone.
  const bool box_values = init && init->shape != full;
  const Shape& src_ext = box_values ? b.size : full;
  Shape pitch(r, 1);
  for (int d = r - 2; d >= 0; --d) pitch[d] = pitch[d + 1] * src_ext[d + 1];
  for_box(b, [&](const Shape& g) {
    int64_t off = base, flat = 0;
    for (int d = 0; d < r; ++d)
      off += (g[d] - b.lo[d]) * stride[d], flat += (g[d] - (box_values ? b.lo[d] : 0)) * pitch[d];
    buf.offsets.push_back(off);
    if (init) std::memcpy(buf.image.bytes.data() + off * esize, init->bytes.data() + flat * esize, esize);
  });
  if (total > 0) upload(ctx, buf.image.view(), flat_view(buf.mem.get(), dtype, total));
  digest_ = fnv1a(buf.image.bytes.data(), buf.image.bytes.size(), digest_);

  View v;
  v.data = buf.mem.get() + base * esize;
  v.dtype = dtype;
  v.rank = r;
  for (int d = 0; d < r; ++d) v.lo[d] = b.lo[d], v.size[d] = b.size[d], v.stride[d] = stride[d], v.full[d] = full[d];
  return v;
}

namespace {

/// Names the first NaN or infinity of a float result, if any.
std::string non_finite(const HostArray& a) {
  int64_t bad = 0, first = -1;
  for (int64_t k = 0; k < a.numel(); ++k) {
    const double x = a.dtype == DType::f32 ? a.f32()[k] : a.dtype == DType::f64 ? a.f64()[k] : 0.0;
    if (!std::isfinite(x) && bad++ == 0) first = k;
  }
  if (bad == 0) return "";
  return std::to_string(bad) + " of " + std::to_string(a.numel()) + " elements are NaN or infinite (the first at " +
         std::to_string(first) + "): not written?";
}

}  // namespace

void Case::finish(std::map<std::string, HostArray>& results, std::vector<std::string>& problems) {
  auto result = [&](const std::string& name, HostArray a) {
    if (const std::string bad = non_finite(a); !bad.empty()) problems.push_back(name_ + "/" + name + ": " + bad);
    if (!results.emplace(name_ + "/" + name, std::move(a)).second)
      problems.push_back(name_ + ": two outputs are named " + name);
  };
  int input = 0;
  for (Buffer& buf : buffers_) {
    const std::string label = buf.written ? buf.name : "input " + std::to_string(input++);
    const int64_t esize = dtype_size(buf.dtype);
    HostArray got(buf.dtype, {buf.total});
    if (buf.total > 0) download(ctx, flat_view(buf.mem.get(), buf.dtype, buf.total), got.view());
    std::vector<char> in_box(static_cast<size_t>(buf.total), 0);
    if (buf.written)
      for (int64_t off : buf.offsets) in_box[static_cast<size_t>(off)] = 1;
    for (int64_t k = 0; k < buf.total; ++k) {
      if (in_box[static_cast<size_t>(k)]) continue;
      if (std::memcmp(got.bytes.data() + k * esize, buf.image.bytes.data() + k * esize, esize) != 0) {
        problems.push_back(name_ + ": " + label +
                           (buf.written ? " was written outside its box" : " (an input) was changed") + " at element " +
                           std::to_string(k) + " of its buffer");
        break;
      }
    }
    if (!buf.written) continue;
    HostArray out(buf.dtype, buf.box.size);
    for (size_t j = 0; j < buf.offsets.size(); ++j)
      std::memcpy(out.bytes.data() + j * esize, got.bytes.data() + buf.offsets[j] * esize, esize);
    result(buf.name, std::move(out));
  }
  for (auto& [name, a] : recorded_) result(name, std::move(a));
  buffers_.clear();
  recorded_.clear();
}

void Registry::add(const std::string& name, std::function<void(Case&)> run) {
  for (char ch : name)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.' || ch == '/' || ch == '-'))
      throw std::logic_error("case name " + name + " has a character outside [A-Za-z0-9_./-]");
  for (const auto& c : cases)
    if (c.first == name) throw std::logic_error("two cases are named " + name);
  cases.emplace_back(name, std::move(run));
}

namespace {

/// Writes the results as a safetensors file (F32, F64 and I64; sorted by name, the header padded
/// with spaces to a multiple of 8 bytes). ffrt's own writer holds checkpoints, which have no f64.
void write_results(const std::string& path, const std::map<std::string, HostArray>& results,
                   const std::map<std::string, std::string>& metadata) {
  std::string header = "{\"__metadata__\":{";
  bool first = true;
  for (const auto& [k, v] : metadata) {
    header += (first ? "\"" : ",\"") + k + "\":\"" + v + "\"";
    first = false;
  }
  header += "}";
  int64_t offset = 0;
  for (const auto& [name, a] : results) {
    const char* dt = a.dtype == DType::f32 ? "F32" : a.dtype == DType::f64 ? "F64" : "I64";
    std::string shape;
    for (int64_t e : a.shape) shape += (shape.empty() ? "" : ",") + std::to_string(e);
    const int64_t end = offset + static_cast<int64_t>(a.bytes.size());
    header += ",\"" + name + "\":{\"dtype\":\"" + dt + "\",\"shape\":[" + shape + "],\"data_offsets\":[" +
              std::to_string(offset) + "," + std::to_string(end) + "]}";
    offset = end;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  uint64_t n = header.size();
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
  f.write(reinterpret_cast<const char*>(len), 8);
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (const auto& [name, a] : results)
    f.write(reinterpret_cast<const char*>(a.bytes.data()), static_cast<std::streamsize>(a.bytes.size()));
  f.close();
  if (!f) throw std::runtime_error("cannot write " + path);
}

int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s --out FILE [--threads N] [--device N] [--tf32] [--only SUBSTRING] [--list] [-v]\n",
               argv0);
  return 2;
}

}  // namespace

}  // namespace ffrt::cases

int main(int argc, char** argv) {
  using namespace ffrt::cases;
  std::string out, only;
  ffrt::ContextOptions opts;
  bool list = false, verbose = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--out" && has_value)
      out = argv[++i];
    else if (a == "--threads" && has_value)
      opts.threads = std::stoi(argv[++i]);
    else if (a == "--device" && has_value)
      opts.device = std::stoi(argv[++i]);
    else if (a == "--only" && has_value)
      only = argv[++i];
    else if (a == "--tf32")
      opts.tf32 = true;
    else if (a == "--list")
      list = true;
    else if (a == "-v")
      verbose = true;
    else
      return usage(argv[0]);
  }
  if (out.empty() && !list) return usage(argv[0]);

  Registry registry;
  add_memory_cases(registry);
  add_layout_cases(registry);
  add_elementwise_cases(registry);
  add_conv_pool_cases(registry);
  add_contraction_cases(registry);
  add_norm_cases(registry);
  add_loss_cases(registry);
  add_param_cases(registry);
  add_data_error_cases(registry);
  if (list) {
    for (const auto& c : registry.cases) std::printf("%s\n", c.first.c_str());
    return 0;
  }

  auto ctx = ffrt::make_context(opts);
  std::map<std::string, ffrt::HostArray> results;
  std::map<std::string, std::string> metadata{{"backend", ffrt::backend_name()}, {"tf32", opts.tf32 ? "1" : "0"}};
  std::vector<std::string> problems;
  int ran = 0;
  const auto start = std::chrono::steady_clock::now();
  for (const auto& [name, run] : registry.cases) {
    if (!only.empty() && name.find(only) == std::string::npos) continue;
    ++ran;
    if (verbose) {
      std::printf("%-64s", name.c_str());
      std::fflush(stdout);  // the case a crash happened in
    }
    const auto t0 = std::chrono::steady_clock::now();
    ffrt::set_op(*ctx, name.c_str());
    try {
      Case c(*ctx, name);
      run(c);
      ffrt::synchronize(*ctx);
      char digest[17];
      std::snprintf(digest, sizeof digest, "%016llx", static_cast<unsigned long long>(c.input_digest()));
      metadata["inputs/" + name] = digest;
      c.finish(results, problems);
    } catch (const std::exception& e) {
      problems.push_back(name + ": threw: " + e.what());
    }
    if (verbose) {
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      std::printf(" %9.1f ms\n", ms);
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  metadata["cases"] = std::to_string(ran);
  write_results(out, results, metadata);
  std::printf("backend_cases (%s): %d cases, %zu outputs in %.1f s -> %s\n", ffrt::backend_name(), ran, results.size(),
              secs, out.c_str());
  for (const std::string& p : problems) std::fprintf(stderr, "FAILED %s\n", p.c_str());
  if (!problems.empty()) std::fprintf(stderr, "backend_cases: %zu problems\n", problems.size());
  return problems.empty() ? 0 : 1;
}
