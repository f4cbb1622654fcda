// IDX files (MNIST, Fashion-MNIST), plain or gzip-compressed.
#include "ffrt/idx.h"

#include <zlib.h>

#include <cstring>
#include <limits>

#include "io.h"

namespace ffrt {

struct IdxReader::Impl {
  std::string path;
  bool gz = false;
  io::Fd fd;                 // plain files
  gzFile gzf = nullptr;      // compressed files
  std::vector<uint8_t> raw;  // compressed files: the payload decompressed so far
  bool gz_eof = false;
  std::vector<int64_t> dims;
  int64_t sample_bytes = 1;
  int64_t header_bytes = 0;

  ~Impl() {
    if (gzf) gzclose(gzf);
  }

  [[noreturn]] void fail(const std::string& why) const { throw Error("IDX file " + path + ": " + why); }

  /// Reads exactly n bytes from the gzip stream (the header); throws when it ends early.
  void gz_read_exact(void* dst, int64_t n) {
    int r = gzread(gzf, dst, static_cast<unsigned>(n));
    if (r != n) gz_fail();
  }

  [[noreturn]] void gz_fail() {
    int err = Z_OK;
    const char* msg = gzerror(gzf, &err);
    if (err != Z_OK && err != Z_BUF_ERROR) fail(std::string("cannot decompress: ") + msg);
    fail("truncated (the data ends before the samples its header announces)");
  }

  /// Decompresses until `raw` holds at least n bytes of payload.
  void gz_fill(int64_t n) {
    if (static_cast<int64_t>(raw.size()) >= n) return;
    constexpr int64_t kChunk = int64_t{1} << 20;
    int64_t want = std::min(n + kChunk, count_bytes());  // read ahead a little
    size_t have = raw.size();
    raw.resize(static_cast<size_t>(want));
    while (static_cast<int64_t>(have) < want) {
      const auto c = static_cast<unsigned>(std::min<int64_t>(kChunk, want - static_cast<int64_t>(have)));
      int r = gzread(gzf, raw.data() + have, c);
      if (r < 0) {
        raw.resize(have);
        gz_fail();
      }
      if (r == 0) {
        raw.resize(have);
        if (static_cast<int64_t>(have) < n) gz_fail();
        return;
      }
      have += static_cast<size_t>(r);
    }
  }

  void check_range(int64_t lo, int64_t hi) const {
    if (lo < 0 || hi < lo || hi > dims[0])
      fail("samples [" + std::to_string(lo) + ", " + std::to_string(hi) + ") out of range (it has " +
           std::to_string(dims[0]) + ")");
  }

  int64_t count_bytes() const { return dims[0] * sample_bytes; }
};

IdxReader::IdxReader(const std::string& path) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.path = path;
  m.fd = io::Fd(io::open_read(path, "IDX"));
  const int64_t size = io::file_size(m.fd.get(), path);
  unsigned char magic2[2] = {0, 0};
  if (size >= 2) io::pread_exact(m.fd.get(), magic2, 2, 0, path);
  m.gz = magic2[0] == 0x1f && magic2[1] == 0x8b;
  unsigned char head[4];
  if (m.gz) {
    m.fd.reset();
    m.gzf = gzopen(path.c_str(), "rb");
    if (!m.gzf) m.fail("cannot open");
    gzbuffer(m.gzf, 1 << 18);
    m.gz_read_exact(head, 4);
  } else {
    if (size < 4) m.fail("not an IDX file (too short)");
    io::pread_exact(m.fd.get(), head, 4, 0, path);
  }
  if (head[0] != 0 || head[1] != 0) m.fail("not an IDX file (bad magic)");
  if (head[2] != 0x08)
    m.fail("unsupported element type 0x" + std::string(1, "0123456789abcdef"[head[2] >> 4]) +
           "0123456789abcdef"[head[2] & 15] + " (only unsigned bytes, 0x08)");
  const int nd = head[3];
  if (nd < 1 || nd > 4) m.fail("unsupported number of dims " + std::to_string(nd));
  std::vector<unsigned char> db(static_cast<size_t>(4 * nd));
  if (m.gz) {
    m.gz_read_exact(db.data(), 4 * nd);
  } else {
    if (size < 4 + 4 * nd) m.fail("truncated (in its header)");
    io::pread_exact(m.fd.get(), db.data(), 4 * nd, 4, path);
  }
  for (int i = 0; i < nd; ++i) {
    const uint32_t d = (uint32_t{db[4 * i]} << 24) | (uint32_t{db[4 * i + 1]} << 16) | (uint32_t{db[4 * i + 2]} << 8) |
                       uint32_t{db[4 * i + 3]};
    m.dims.push_back(d);
  }
  m.header_bytes = 4 + 4 * nd;
  for (int i = 1; i < nd; ++i) m.sample_bytes *= m.dims[i];
  if (m.dims[0] > 0 && m.sample_bytes > std::numeric_limits<int64_t>::max() / 2 / m.dims[0])
    m.fail("too large");
  if (!m.gz && size - m.header_bytes < m.count_bytes())
    m.fail("truncated: its header announces " + std::to_string(m.dims[0]) + " samples of " +
           std::to_string(m.sample_bytes) + " bytes, the file holds " + std::to_string(size - m.header_bytes) +
           " bytes of data");
}

IdxReader::~IdxReader() = default;
IdxReader::IdxReader(IdxReader&&) noexcept = default;
IdxReader& IdxReader::operator=(IdxReader&&) noexcept = default;

const std::string& IdxReader::path() const { return impl_->path; }
bool IdxReader::compressed() const { return impl_->gz; }
const std::vector<int64_t>& IdxReader::dims() const { return impl_->dims; }
int64_t IdxReader::sample_bytes() const { return impl_->sample_bytes; }

void IdxReader::read(int64_t lo, int64_t hi, uint8_t* dst) {
  Impl& m = *impl_;
  m.check_range(lo, hi);
  const int64_t n = (hi - lo) * m.sample_bytes;
  if (n == 0) return;
  if (m.gz) {
    m.gz_fill(hi * m.sample_bytes);
    std::memcpy(dst, m.raw.data() + lo * m.sample_bytes, static_cast<size_t>(n));
  } else {
    io::pread_exact(m.fd.get(), dst, n, m.header_bytes + lo * m.sample_bytes, m.path);
  }
}

HostArray IdxReader::images(int64_t lo, int64_t hi) {
  const auto& d = dims();
  if (d.size() < 2) impl_->fail("not an image file (it has " + std::to_string(d.size()) + " dim)");
  impl_->check_range(lo, hi);
  std::vector<int64_t> shape{hi - lo};
  if (d.size() == 3) shape.push_back(1);
  shape.insert(shape.end(), d.begin() + 1, d.end());
  std::vector<uint8_t> raw(static_cast<size_t>((hi - lo) * sample_bytes()));
  read(lo, hi, raw.data());
  HostArray a(DType::f32, shape);
  float* out = a.f32();
  for (size_t i = 0; i < raw.size(); ++i) out[i] = static_cast<float>(raw[i]) / 255.f;
  return a;
}

HostArray IdxReader::labels(int64_t lo, int64_t hi) {
  if (dims().size() != 1) impl_->fail("not a label file (it has " + std::to_string(dims().size()) + " dims)");
  impl_->check_range(lo, hi);
  std::vector<uint8_t> raw(static_cast<size_t>(hi - lo));
  read(lo, hi, raw.data());
  HostArray a(DType::i64, {static_cast<int64_t>(raw.size())});
  int64_t* out = a.i64();
  for (size_t i = 0; i < raw.size(); ++i) out[i] = raw[i];
  return a;
}

HostArray read_idx_images(const std::string& path, int64_t lo, int64_t hi) {
  IdxReader r(path);
  return r.images(lo, hi < 0 ? r.count() : hi);
}

HostArray read_idx_labels(const std::string& path, int64_t lo, int64_t hi) {
  IdxReader r(path);
  return r.labels(lo, hi < 0 ? r.count() : hi);
}

}  // namespace ffrt
