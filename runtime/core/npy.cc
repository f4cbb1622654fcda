// NumPy .npy files (format versions 1.0, 2.0 and 3.0; little-endian, C order).
#include "ffrt/npy.h"

#include <cctype>
#include <cstring>
#include <limits>
#include <utility>

#include "io.h"

namespace ffrt {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::i64: return "i64";
    case DType::f64: return "f64";
  }
  return "unknown";
}

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

HostArray::HostArray(DType t, std::vector<int64_t> s) : dtype(t), shape(std::move(s)) {
  bytes.resize(static_cast<size_t>(numel() * dtype_size(dtype)));
}

int64_t HostArray::numel() const { return numel_of(shape); }

View HostArray::view() {
  if (shape.size() > static_cast<size_t>(kMaxRank)) throw Error("HostArray::view: rank " + std::to_string(shape.size()) + " > kMaxRank");
  int64_t zeros[kMaxRank] = {};
  return make_view(bytes.data(), dtype, static_cast<int>(shape.size()), shape.data(), zeros, shape.data());
}

namespace {

constexpr char kMagic[] = "\x93NUMPY";

/// A parser of the header's Python dict literal: {'descr': '<f4', 'fortran_order': False,
/// 'shape': (3, 4), }.
class HeaderParser {
 public:
  HeaderParser(std::string_view s, const std::string& path) : s_(s), path_(path) {}

  void parse(std::string& descr, bool& fortran, std::vector<int64_t>& shape) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    expect('{');
    while (true) {
      skip();
      if (peek() == '}') break;
      std::string key = string_lit();
      expect(':');
      skip();
      if (key == "descr") {
        if (peek() != '\'' && peek() != '"') fail("structured dtypes are not supported (only '<f4', '<f8', '<i8', '<i4')");
        descr = string_lit();
        have_descr = true;
      } else if (key == "fortran_order") {
        fortran = boolean();
        have_fortran = true;
      } else if (key == "shape") {
        shape = tuple();
        have_shape = true;
      } else {
        skip_value();
      }
      skip();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() == '}') break;
      fail("expected ',' or '}'");
    }
    if (!have_descr || !have_fortran || !have_shape) fail("the header lacks 'descr', 'fortran_order' or 'shape'");
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw Error("read_npy: " + path_ + ": bad header (" + why + ")");
  }
  void skip() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void expect(char c) {
    skip();
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string string_lit() {
    skip();
    char q = peek();
    if (q != '\'' && q != '"') fail("expected a string");
    size_t end = s_.find(q, i_ + 1);
    if (end == std::string_view::npos) fail("unterminated string");
    std::string out(s_.substr(i_ + 1, end - i_ - 1));
    i_ = end + 1;
    return out;
  }
  bool boolean() {
    if (s_.substr(i_, 4) == "True") {
      i_ += 4;
      return true;
    }
    if (s_.substr(i_, 5) == "False") {
      i_ += 5;
      return false;
    }
    fail("expected True or False");
  }
  std::vector<int64_t> tuple() {
    std::vector<int64_t> out;
    expect('(');
    while (true) {
      skip();
      if (peek() == ')') {
        ++i_;
        return out;
      }
      if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("expected a dimension");
      int64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) fail("dimension too large");
        v = v * 10 + (s_[i_++] - '0');
      }
      if (peek() == 'L') ++i_;  // Python 2 longs
      out.push_back(v);
      skip();
      if (peek() == ',') ++i_;
      else if (peek() != ')') fail("expected ',' or ')' in the shape");
    }
  }
  void skip_value() {
    int depth = 0;
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == '\'' || c == '"') {
        string_lit();
        continue;
      }
      if (c == '(' || c == '[' || c == '{') ++depth;
      if (c == ')' || c == ']' || c == '}') {
        if (depth == 0) return;
        --depth;
      }
      if (c == ',' && depth == 0) return;
      ++i_;
    }
  }

  std::string_view s_;
  const std::string& path_;
  size_t i_ = 0;
};

}  // namespace

NpyReader::NpyReader(const std::string& path) : path_(path) {
  io::Fd fd(io::open_read(path, "read_npy"));
  const int64_t size = io::file_size(fd.get(), path);
  unsigned char pre[12];
  if (size < 10) throw Error("read_npy: " + path + " is not a .npy file (too short)");
  io::pread_exact(fd.get(), pre, size >= 12 ? 12 : 10, 0, path);
  if (std::memcmp(pre, kMagic, 6) != 0) throw Error("read_npy: " + path + " is not a .npy file (bad magic)");
  const int major = pre[6];
  int64_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = pre[8] | (pre[9] << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) throw Error("read_npy: " + path + " is truncated");
    header_len = static_cast<int64_t>(pre[8]) | (static_cast<int64_t>(pre[9]) << 8) |
                 (static_cast<int64_t>(pre[10]) << 16) | (static_cast<int64_t>(pre[11]) << 24);
    header_start = 12;
  } else {
    throw Error("read_npy: " + path + ": unsupported .npy format version " + std::to_string(major));
  }
  if (header_start + header_len > size) throw Error("read_npy: " + path + " is truncated (in its header)");
  std::string header(static_cast<size_t>(header_len), '\0');
  io::pread_exact(fd.get(), header.data(), header_len, header_start, path);
  bool fortran = false;
  HeaderParser(header, path).parse(descr_, fortran, shape_);
  if (fortran) throw Error("read_npy: " + path + ": Fortran-order arrays are not supported (save with C order)");
  if (descr_ == "<f4") {
    dtype_ = DType::f32;
    file_elem_ = 4;
  } else if (descr_ == "<f8") {
    dtype_ = DType::f32;
    file_elem_ = 8;
  } else if (descr_ == "<i8") {
    dtype_ = DType::i64;
    file_elem_ = 8;
  } else if (descr_ == "<i4") {
    dtype_ = DType::i64;
    file_elem_ = 4;
  } else {
    throw Error("read_npy: " + path + ": unsupported dtype '" + descr_ + "' (supported: '<f4', '<f8', '<i8', '<i4')");
  }
  data_offset_ = header_start + header_len;
  int64_t n = 1;
  for (int64_t d : shape_) {
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / 16 / d)
      throw Error("read_npy: " + path + ": shape " + shape_str(shape_) + " is too large");
    n *= d;
  }
  if (size - data_offset_ < n * file_elem_)
    throw Error("read_npy: " + path + " is truncated: shape " + shape_str(shape_) + " needs " +
                std::to_string(n * file_elem_) + " bytes of data, the file has " + std::to_string(size - data_offset_));
  fd_ = fd.release();
}

NpyReader::~NpyReader() {
  if (fd_ >= 0) ::close(fd_);
}

NpyReader::NpyReader(NpyReader&& o) noexcept
    : path_(std::move(o.path_)),
      fd_(std::exchange(o.fd_, -1)),
      dtype_(o.dtype_),
      descr_(std::move(o.descr_)),
      file_elem_(o.file_elem_),
      shape_(std::move(o.shape_)),
      data_offset_(o.data_offset_) {}

NpyReader& NpyReader::operator=(NpyReader&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(o.path_);
    fd_ = std::exchange(o.fd_, -1);
    dtype_ = o.dtype_;
    descr_ = std::move(o.descr_);
    file_elem_ = o.file_elem_;
    shape_ = std::move(o.shape_);
    data_offset_ = o.data_offset_;
  }
  return *this;
}

int64_t NpyReader::row_numel() const {
  int64_t n = 1;
  for (size_t i = 1; i < shape_.size(); ++i) n *= shape_[i];
  return n;
}

void NpyReader::read_rows(int64_t lo, int64_t hi, void* dst) const {
  const int64_t rows = shape_.empty() ? 1 : shape_[0];
  if (lo < 0 || hi < lo || hi > rows)
    throw Error("read_npy: " + path_ + ": rows [" + std::to_string(lo) + ", " + std::to_string(hi) +
                ") out of range (the array has " + std::to_string(rows) + ")");
  const int64_t n = (hi - lo) * row_numel();
  if (n == 0) return;
  const int64_t offset = data_offset_ + lo * row_numel() * file_elem_;
  const int64_t out_elem = dtype_size(dtype_);
  if (file_elem_ == out_elem) {
    io::pread_exact(fd_, dst, n * file_elem_, offset, path_);
    return;
  }
  // Convert ('<f8' → f32, '<i4' → i64) through a bounded buffer.
  constexpr int64_t kChunk = 1 << 16;
  std::vector<std::byte> buf(static_cast<size_t>(kChunk * file_elem_));
  for (int64_t done = 0; done < n; done += kChunk) {
    const int64_t c = std::min(kChunk, n - done);
    io::pread_exact(fd_, buf.data(), c * file_elem_, offset + done * file_elem_, path_);
    if (dtype_ == DType::f32) {
      auto* out = static_cast<float*>(dst) + done;
      for (int64_t i = 0; i < c; ++i) {
        double x;
        std::memcpy(&x, buf.data() + i * 8, 8);
        out[i] = static_cast<float>(x);
      }
    } else {
      auto* out = static_cast<int64_t*>(dst) + done;
      for (int64_t i = 0; i < c; ++i) {
        int32_t x;
        std::memcpy(&x, buf.data() + i * 4, 4);
        out[i] = x;
      }
    }
  }
}

HostArray NpyReader::read_all() const {
  HostArray a(dtype_, shape_);
  read_rows(0, shape_.empty() ? 1 : shape_[0], a.bytes.data());
  return a;
}

HostArray read_npy(const std::string& path) { return NpyReader(path).read_all(); }

HostArray read_npy_rows(const std::string& path, int64_t lo, int64_t hi) {
  NpyReader r(path);
  std::vector<int64_t> shape = r.shape();
  if (shape.empty()) throw Error("read_npy: " + path + ": a scalar has no rows");
  if (lo < 0 || hi < lo || hi > shape[0])
    throw Error("read_npy: " + path + ": rows [" + std::to_string(lo) + ", " + std::to_string(hi) +
                ") out of range (the array has " + std::to_string(shape[0]) + ")");
  shape[0] = hi - lo;
  HostArray a(r.dtype(), shape);
  r.read_rows(lo, hi, a.bytes.data());
  return a;
}

void write_npy(const std::string& path, DType dtype, const std::vector<int64_t>& shape, const void* data) {
  const char* descr = dtype == DType::f32 ? "<f4" : dtype == DType::i64 ? "<i8" : dtype == DType::f64 ? "<f8" : nullptr;
  if (!descr) throw Error("write_npy: " + path + ": unknown dtype " + std::to_string(static_cast<int>(dtype)));
  std::string dict = std::string("{'descr': '") + descr +
                     "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) throw Error("write_npy: " + path + ": negative dimension in " + shape_str(shape));
    dict += (i ? ", " : "") + std::to_string(shape[i]);
  }
  if (shape.size() == 1) dict += ",";
  dict += "), }";
  // Pad with spaces so that the data starts at a multiple of 64 bytes; the header ends with '\n'.
  int version = 1;
  int64_t pre = 10;
  int64_t total = pre + static_cast<int64_t>(dict.size()) + 1;
  int64_t padded = (total + 63) / 64 * 64;
  if (padded - pre > 65535) {
    version = 2;
    pre = 12;
    total = pre + static_cast<int64_t>(dict.size()) + 1;
    padded = (total + 63) / 64 * 64;
  }
  const int64_t header_len = padded - pre;
  std::string head(kMagic, 6);
  head += static_cast<char>(version);
  head += '\0';
  for (int i = 0; i < (version == 1 ? 2 : 4); ++i) head += static_cast<char>((header_len >> (8 * i)) & 0xff);
  head += dict;
  head.append(static_cast<size_t>(padded - total), ' ');
  head += '\n';
  const int64_t nbytes = numel_of(shape) * dtype_size(dtype);
  io::write_atomically(path, [&](int fd, const std::string&) {
    io::write_all(fd, head.data(), static_cast<int64_t>(head.size()), path);
    if (nbytes) io::write_all(fd, data, nbytes, path);
  });
}

void write_npy(const std::string& path, const HostArray& a) {
  if (static_cast<int64_t>(a.bytes.size()) != a.numel() * dtype_size(a.dtype))
    throw Error("write_npy: " + path + ": the array's bytes do not match its shape " + shape_str(a.shape));
  write_npy(path, a.dtype, a.shape, a.bytes.data());
}

}  // namespace ffrt
