// safetensors files: atomic, deterministic writes; validated reads.
#include "ffrt/safetensors.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "io.h"

namespace ffrt {
namespace {

using json = nlohmann::json;

/// Largest header accepted (the safetensors library's own limit).
constexpr int64_t kMaxHeader = 100'000'000;

/// The safetensors dtype of a checkpoint tensor: F32 or I64 (checkpoints hold no f64 tensors).
const char* st_dtype(DType t, const std::string& path, const std::string& name) {
  if (t == DType::f32) return "F32";
  if (t == DType::i64) return "I64";
  throw Error("write_safetensors: " + path + ": tensor " + name + " is " + dtype_name(t) +
              " (checkpoints hold only f32 and i64 tensors)");
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorRef*> sorted;
  for (const TensorRef& t : tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](const TensorRef* a, const TensorRef* b) { return a->name < b->name; });
  json header = json::object();
  std::vector<int64_t> sizes;
  int64_t offset = 0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const TensorRef& t = *sorted[i];
    if (t.name.empty()) throw Error("write_safetensors: " + path + ": a tensor has an empty name");
    if (t.name == "__metadata__") throw Error("write_safetensors: " + path + ": '__metadata__' is reserved");
    if (i && sorted[i - 1]->name == t.name) throw Error("write_safetensors: " + path + ": duplicate tensor " + t.name);
    for (int64_t d : t.shape)
      if (d < 0) throw Error("write_safetensors: " + path + ": tensor " + t.name + " has a negative dim");
    const int64_t bytes = numel_of(t.shape) * dtype_size(t.dtype);
    if (bytes && !t.data) throw Error("write_safetensors: " + path + ": tensor " + t.name + " has no data");
    header[t.name] = {
        {"dtype", st_dtype(t.dtype, path, t.name)}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    sizes.push_back(bytes);
    offset += bytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  // Pad with spaces so that the data starts 8-byte aligned.
  text.append((8 - (text.size() % 8)) % 8, ' ');
  const uint64_t n = text.size();
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
  io::write_atomically(path, [&](int fd, const std::string&) {
    io::write_all(fd, len, 8, path);
    io::write_all(fd, text.data(), static_cast<int64_t>(text.size()), path);
    for (size_t i = 0; i < sorted.size(); ++i)
      if (sizes[i]) io::write_all(fd, sorted[i]->data, sizes[i], path);
  });
}

void write_safetensors(const std::string& path, const std::map<std::string, HostArray>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<TensorRef> refs;
  for (const auto& [name, a] : tensors) {
    if (static_cast<int64_t>(a.bytes.size()) != a.numel() * dtype_size(a.dtype))
      throw Error("write_safetensors: " + path + ": tensor " + name + "'s bytes do not match its shape " +
                  shape_str(a.shape));
    refs.push_back({name, a.dtype, a.shape, a.bytes.data()});
  }
  write_safetensors(path, refs, metadata);
}

struct SafetensorsReader::Impl {
  std::string path;
  io::Fd fd;
  int64_t data_start = 0;
  std::map<std::string, Entry> entries;
  std::map<std::string, std::string> metadata;

  [[noreturn]] void fail(const std::string& why) const { throw Error("safetensors file " + path + ": " + why); }
};

SafetensorsReader::SafetensorsReader(const std::string& path) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.path = path;
  m.fd = io::Fd(io::open_read(path, "safetensors"));
  const int64_t size = io::file_size(m.fd.get(), path);
  if (size < 8) m.fail("truncated (" + std::to_string(size) + " bytes; no header)");
  unsigned char len[8];
  io::pread_exact(m.fd.get(), len, 8, 0, path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(len[i]) << (8 * i);
  if (n > static_cast<uint64_t>(kMaxHeader)) m.fail("header length " + std::to_string(n) + " is implausible");
  if (static_cast<int64_t>(n) > size - 8)
    m.fail("truncated (the header needs " + std::to_string(n) + " bytes, the file has " + std::to_string(size - 8) + ")");
  std::string text(static_cast<size_t>(n), '\0');
  io::pread_exact(m.fd.get(), text.data(), static_cast<int64_t>(n), 8, path);
  m.data_start = 8 + static_cast<int64_t>(n);
  const int64_t data_size = size - m.data_start;
  json header;
  try {
    header = json::parse(text);
  } catch (const json::exception& e) {
    m.fail(std::string("the header is not valid JSON (") + e.what() + ")");
  }
  if (!header.is_object()) m.fail("the header is not a JSON object");
  std::vector<std::pair<std::pair<int64_t, int64_t>, std::string>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) m.fail("__metadata__ is not an object");
      for (auto mt = v.begin(); mt != v.end(); ++mt) {
        if (!mt.value().is_string()) m.fail("__metadata__ value of " + mt.key() + " is not a string");
        m.metadata[mt.key()] = mt.value().get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string& why) { m.fail("tensor " + name + ": " + why); };
    if (!v.is_object()) bad("its entry is not an object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) bad("no dtype");
    if (!v.contains("shape") || !v["shape"].is_array()) bad("no shape");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      bad("no data_offsets [begin, end]");
    Entry e{};
    const std::string dt = v["dtype"].get<std::string>();
    if (dt == "F32") e.dtype = DType::f32;
    else if (dt == "I64") e.dtype = DType::i64;
    else bad("unsupported dtype " + dt + " (only F32 and I64)");
    int64_t numel = 1;
    for (const json& d : v["shape"]) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0)) bad("bad shape");
      const auto x = d.get<uint64_t>();
      if (x > static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / 16)) bad("dim too large");
      const auto xi = static_cast<int64_t>(x);
      if (xi != 0 && numel > std::numeric_limits<int64_t>::max() / 16 / xi) bad("shape too large");
      numel *= xi;
      e.shape.push_back(xi);
    }
    if (e.shape.size() > static_cast<size_t>(kMaxRank)) bad("rank " + std::to_string(e.shape.size()) + " > " + std::to_string(kMaxRank));
    const json& off = v["data_offsets"];
    for (const json& o : off)
      if (!o.is_number_unsigned() && !(o.is_number_integer() && o.get<int64_t>() >= 0)) bad("bad data_offsets");
    const auto b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
    if (b > en || en > static_cast<uint64_t>(data_size))
      bad("data_offsets [" + std::to_string(b) + ", " + std::to_string(en) + "] out of range (the data section has " +
          std::to_string(data_size) + " bytes; truncated file?)");
    e.begin = static_cast<int64_t>(b);
    e.end = static_cast<int64_t>(en);
    if (e.end - e.begin != numel * dtype_size(e.dtype))
      bad("holds " + std::to_string(e.end - e.begin) + " bytes, but shape " + shape_str(e.shape) + " of " + dt +
          " needs " + std::to_string(numel * dtype_size(e.dtype)));
    ranges.push_back({{e.begin, e.end}, name});
    m.entries.emplace(name, std::move(e));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first.first < ranges[i - 1].first.second)
      m.fail("tensors " + ranges[i - 1].second + " and " + ranges[i].second + " overlap");
}

SafetensorsReader::~SafetensorsReader() = default;
SafetensorsReader::SafetensorsReader(SafetensorsReader&&) noexcept = default;
SafetensorsReader& SafetensorsReader::operator=(SafetensorsReader&&) noexcept = default;

const std::string& SafetensorsReader::path() const { return impl_->path; }
const std::map<std::string, SafetensorsReader::Entry>& SafetensorsReader::entries() const { return impl_->entries; }
const std::map<std::string, std::string>& SafetensorsReader::metadata() const { return impl_->metadata; }
bool SafetensorsReader::contains(const std::string& name) const { return impl_->entries.count(name) != 0; }

const SafetensorsReader::Entry& SafetensorsReader::entry(const std::string& name) const {
  auto it = impl_->entries.find(name);
  if (it == impl_->entries.end()) impl_->fail("no tensor " + name);
  return it->second;
}

void SafetensorsReader::read(const std::string& name, void* dst) const {
  const Entry& e = entry(name);
  if (e.end > e.begin) io::pread_exact(impl_->fd.get(), dst, e.end - e.begin, impl_->data_start + e.begin, impl_->path);
}

HostArray SafetensorsReader::read(const std::string& name) const {
  const Entry& e = entry(name);
  HostArray a(e.dtype, e.shape);
  read(name, a.bytes.data());
  return a;
}

std::map<std::string, HostArray> read_safetensors(const std::string& path) {
  SafetensorsReader r(path);
  std::map<std::string, HostArray> out;
  for (const auto& [name, e] : r.entries()) out.emplace(name, r.read(name));
  return out;
}

}  // namespace ffrt
