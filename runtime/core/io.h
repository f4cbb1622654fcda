// Private helpers of ffrt_core's file formats: POSIX reads that report errors as ffrt::Error
// naming the file, and atomic writes (temporary file in the same directory, fsync, rename).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "ffrt/kernels.h"

namespace ffrt::io {

inline std::string errno_str(int e) { return std::strerror(e); }

/// An open file descriptor, closed on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.release();
    }
    return *this;
  }
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

/// Opens a file to read; throws naming the file when it cannot.
inline int open_read(const std::string& path, const char* what) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(std::string(what) + ": cannot open " + path + ": " + errno_str(errno));
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw Error(std::string(what) + ": " + path + " is a directory");
  }
  return fd;
}

/// The size of an open file.
inline int64_t file_size(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error("cannot stat " + path + ": " + errno_str(errno));
  return static_cast<int64_t>(st.st_size);
}

/// Reads exactly n bytes at `offset`; throws (truncated file, I/O error) naming the file.
inline void pread_exact(int fd, void* dst, int64_t n, int64_t offset, const std::string& path) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    const size_t chunk = static_cast<size_t>(n < (int64_t{1} << 30) ? n : (int64_t{1} << 30));
    ssize_t r = ::pread(fd, p, chunk, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw Error("cannot read " + path + ": " + errno_str(errno));
    }
    if (r == 0) throw Error(path + " is truncated (it ends at byte " + std::to_string(offset) + ")");
    p += r;
    n -= r;
    offset += r;
  }
}

/// Writes exactly n bytes; throws naming the file.
inline void write_all(int fd, const void* src, int64_t n, const std::string& path) {
  const auto* p = static_cast<const char*>(src);
  while (n > 0) {
    const size_t chunk = static_cast<size_t>(n < (int64_t{1} << 30) ? n : (int64_t{1} << 30));
    ssize_t r = ::write(fd, p, chunk);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw Error("cannot write " + path + ": " + errno_str(errno));
    }
    p += r;
    n -= r;
  }
}

/// Writes `path` atomically: `fill(fd, tmp_path)` writes the contents to a temporary file in the
/// same directory, which is then fsync'ed and renamed over `path` (and the directory fsync'ed), so
/// readers see the old file or the new one, never a part. On failure the temporary file is removed
/// and ffrt::Error names `path`.
template <typename F>
void write_atomically(const std::string& path, F&& fill) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string tmp = (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) + "." + base + ".tmp.XXXXXX";
  Fd fd(::mkstemp(tmp.data()));
  if (fd.get() < 0) throw Error("cannot write " + path + ": cannot create a temporary file in " + dir + ": " + errno_str(errno));
  try {
    ::fchmod(fd.get(), 0644);
    fill(fd.get(), tmp);
    if (::fsync(fd.get()) != 0) throw Error("cannot write " + path + ": fsync: " + errno_str(errno));
    const int fdv = fd.release();
    if (::close(fdv) != 0) throw Error("cannot write " + path + ": close: " + errno_str(errno));
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      throw Error("cannot write " + path + ": rename: " + errno_str(errno));
  } catch (...) {
    fd.reset();
    ::unlink(tmp.c_str());
    throw;
  }
  Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() >= 0) ::fsync(dfd.get());  // best effort: the rename itself is durable on most filesystems
}

}  // namespace ffrt::io
