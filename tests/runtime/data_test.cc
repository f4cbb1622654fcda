// Data and checkpoint files: .npy (round trip, files numpy writes, files numpy reads), IDX (the real
// Fashion-MNIST, plain and gzip, partial reads), Dataset (npy, IDX, synthetic; batches, wrapping,
// errors) and safetensors (round trip, read by Python, atomic and deterministic writes, corrupt or
// truncated files give ffrt::Error, never a crash).
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "ffrt/dataset.h"
#include "ffrt/idx.h"
#include "ffrt/kernels.h"
#include "ffrt/npy.h"
#include "ffrt/safetensors.h"
#include "kernel_test_util.h"

namespace ffrt {
namespace {

namespace fs = std::filesystem;
using test::python;
using test::TempDir;

const char* kFashion = "/usr/share/datasets/fashion-mnist";

// ---- helpers -----------------------------------------------------------------------------------

/// Whether python() can import numpy (asked once).
bool have_numpy() {
  static const bool yes = std::system((python() + " -c 'import numpy' >/dev/null 2>&1").c_str()) == 0;
  return yes;
}

/// Runs a Python program (written to a file in dir) with arguments; returns its exit status.
int run_python(const TempDir& dir, const std::string& program, const std::string& args) {
  const std::string file = dir / "prog.py";
  std::ofstream(file) << program;
  return std::system((python() + " " + file + " " + args).c_str());
}

std::vector<char> slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void spit(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void spit(const std::string& path, const std::string& bytes) { spit(path, std::vector<char>(bytes.begin(), bytes.end())); }

/// Expects `f` to throw ffrt::Error whose message contains each of `needles`.
template <typename F>
void expect_error(F f, std::initializer_list<std::string> needles) {
  try {
    f();
    ADD_FAILURE() << "no ffrt::Error thrown";
  } catch (const Error& e) {
    for (const std::string& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what() << "\n  lacks: " << n;
  }
}

HostArray f32_array(std::vector<int64_t> shape, float (*f)(int64_t)) {
  HostArray a(DType::f32, std::move(shape));
  for (int64_t i = 0; i < a.numel(); ++i) a.f32()[i] = f(i);
  return a;
}

HostArray i64_array(std::vector<int64_t> shape, int64_t (*f)(int64_t)) {
  HostArray a(DType::i64, std::move(shape));
  for (int64_t i = 0; i < a.numel(); ++i) a.i64()[i] = f(i);
  return a;
}

// ---- npy ---------------------------------------------------------------------------------------

TEST(Npy, RoundTrip) {
  TempDir dir("ffrt_data");
  std::vector<HostArray> arrays{
      f32_array({2, 3, 4}, [](int64_t i) { return static_cast<float>(i) / 7.f - 1.f; }),
      f32_array({}, [](int64_t) { return 3.5f; }),
      f32_array({0, 5}, [](int64_t) { return 0.f; }),
      f32_array({7}, [](int64_t i) { return static_cast<float>(i * i); }),
      i64_array({3, 2}, [](int64_t i) { return (i - 3) * (int64_t{1} << 40); }),
      f32_array(std::vector<int64_t>(15000, 1), [](int64_t) { return 4.f; }),  // a header that needs format 2.0
  };
  for (size_t k = 0; k < arrays.size(); ++k) {
    const std::string p = dir / ("a" + std::to_string(k) + ".npy");
    write_npy(p, arrays[k]);
    HostArray b = read_npy(p);
    EXPECT_EQ(b.dtype, arrays[k].dtype);
    EXPECT_EQ(b.shape, arrays[k].shape);
    EXPECT_EQ(b.bytes, arrays[k].bytes);
    // numpy's layout: the data starts at a multiple of 64 bytes.
    EXPECT_EQ((fs::file_size(p) - arrays[k].bytes.size()) % 64, 0u);
  }
  HostArray rows = read_npy_rows(dir / "a0.npy", 1, 2);
  EXPECT_EQ(rows.shape, (std::vector<int64_t>{1, 3, 4}));
  EXPECT_EQ(rows.f32()[0], 12.f / 7.f - 1.f);
  EXPECT_THROW(read_npy_rows(dir / "a0.npy", 1, 3), Error);
  EXPECT_THROW(read_npy_rows(dir / "a1.npy", 0, 1), Error);  // a scalar has no rows
  // No temporary files are left behind.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) files += e.is_regular_file();
  EXPECT_EQ(files, static_cast<int>(arrays.size()));
}

TEST(Npy, F64WritesAsF8) {
  // f64 (the dtype of batch-norm statistics) writes as '<f8', which reads back as f32.
  EXPECT_EQ(dtype_size(DType::f64), 8);
  EXPECT_STREQ(dtype_name(DType::f64), "f64");
  TempDir dir("ffrt_data");
  HostArray a(DType::f64, {2, 2});
  for (int64_t i = 0; i < 4; ++i) a.f64()[i] = 1e8 + 0.1 * static_cast<double>(i);
  write_npy(dir / "d.npy", a);
  NpyReader r(dir / "d.npy");
  EXPECT_EQ(r.descr(), "<f8");
  EXPECT_EQ(r.shape(), (std::vector<int64_t>{2, 2}));
  const HostArray b = r.read_all();
  ASSERT_EQ(b.dtype, DType::f32);
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(b.f32()[i], static_cast<float>(a.f64()[i]));
}

TEST(Npy, ReadsWhatNumpyWrites) {
  if (!have_numpy()) GTEST_SKIP() << python() << " lacks numpy";
  TempDir dir("ffrt_data");
  const char* prog = R"(
import sys, numpy as np
d = sys.argv[1]
a = (np.arange(24, dtype=np.float32).reshape(2, 3, 4) / np.float32(7)) - np.float32(1)
np.save(d + '/f4.npy', a)
np.save(d + '/f8.npy', a.astype(np.float64) * 3)
np.save(d + '/i8.npy', (np.arange(6, dtype=np.int64).reshape(3, 2) - 3) * (1 << 40))
np.save(d + '/i4.npy', np.arange(-5, 5, dtype=np.int32))
np.save(d + '/scalar.npy', np.float32(2.5))
np.save(d + '/vec.npy', np.array([1.5, -2.5], dtype=np.float32))
with open(d + '/v2.npy', 'wb') as f:
    np.lib.format.write_array(f, a, version=(2, 0))
np.save(d + '/fortran.npy', np.asfortranarray(np.ones((3, 4), dtype=np.float32)))
np.save(d + '/u1.npy', np.zeros(4, dtype=np.uint8))
np.save(d + '/be.npy', np.zeros(4, dtype='>f4'))
np.save(d + '/f2.npy', np.zeros(4, dtype=np.float16))
np.save(d + '/struct.npy', np.zeros(4, dtype=[('a', '<f4'), ('b', '<i8')]))
)";
  ASSERT_EQ(run_python(dir, prog, dir.path.string()), 0);
  HostArray f4 = read_npy(dir / "f4.npy");
  ASSERT_EQ(f4.dtype, DType::f32);
  ASSERT_EQ(f4.shape, (std::vector<int64_t>{2, 3, 4}));
  for (int i = 0; i < 24; ++i) EXPECT_EQ(f4.f32()[i], static_cast<float>(i) / 7.f - 1.f);
  HostArray v2 = read_npy(dir / "v2.npy");
  EXPECT_EQ(v2.bytes, f4.bytes);
  HostArray f8 = read_npy(dir / "f8.npy");
  ASSERT_EQ(f8.dtype, DType::f32);
  for (int i = 0; i < 24; ++i)
    EXPECT_EQ(f8.f32()[i], static_cast<float>(static_cast<double>(f4.f32()[i]) * 3)) << i;
  HostArray i8 = read_npy(dir / "i8.npy");
  ASSERT_EQ(i8.dtype, DType::i64);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(i8.i64()[i], (i - 3) * (int64_t{1} << 40));
  HostArray i4 = read_npy(dir / "i4.npy");
  ASSERT_EQ(i4.dtype, DType::i64);
  ASSERT_EQ(i4.shape, (std::vector<int64_t>{10}));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(i4.i64()[i], i - 5);
  HostArray sc = read_npy(dir / "scalar.npy");
  EXPECT_TRUE(sc.shape.empty());
  EXPECT_EQ(sc.f32()[0], 2.5f);
  HostArray vec = read_npy(dir / "vec.npy");
  EXPECT_EQ(vec.shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(vec.f32()[1], -2.5f);
  expect_error([&] { read_npy(dir / "fortran.npy"); }, {"fortran.npy", "Fortran"});
  expect_error([&] { read_npy(dir / "u1.npy"); }, {"u1.npy", "|u1"});
  expect_error([&] { read_npy(dir / "be.npy"); }, {"be.npy", ">f4"});
  expect_error([&] { read_npy(dir / "f2.npy"); }, {"f2.npy", "<f2"});
  expect_error([&] { read_npy(dir / "struct.npy"); }, {"struct.npy", "structured"});
}

TEST(Npy, NumpyReadsWhatWeWrite) {
  if (!have_numpy()) GTEST_SKIP() << python() << " lacks numpy";
  TempDir dir("ffrt_data");
  write_npy(dir / "f.npy", f32_array({2, 3}, [](int64_t i) { return static_cast<float>(i) * 0.5f; }));
  write_npy(dir / "i.npy", i64_array({4}, [](int64_t i) { return i == 2 ? (int64_t{1} << 40) : -i; }));
  write_npy(dir / "s.npy", f32_array({}, [](int64_t) { return -1.25f; }));
  write_npy(dir / "e.npy", f32_array({0, 3}, [](int64_t) { return 0.f; }));
  const char* prog = R"(
import sys, numpy as np
d = sys.argv[1]
f = np.load(d + '/f.npy'); assert f.dtype == np.float32 and f.shape == (2, 3), f
assert (f == np.arange(6, dtype=np.float32).reshape(2, 3) * np.float32(0.5)).all(), f
i = np.load(d + '/i.npy'); assert i.dtype == np.int64 and list(i) == [0, -1, 1 << 40, -3], i
s = np.load(d + '/s.npy'); assert s.shape == () and s == -1.25, s
e = np.load(d + '/e.npy'); assert e.shape == (0, 3), e
)";
  EXPECT_EQ(run_python(dir, prog, dir.path.string()), 0);
}

TEST(Npy, Errors) {
  TempDir dir("ffrt_data");
  expect_error([&] { read_npy(dir / "missing.npy"); }, {"missing.npy"});
  write_npy(dir / "a.npy", f32_array({10, 10}, [](int64_t i) { return static_cast<float>(i); }));
  std::vector<char> bytes = slurp(dir / "a.npy");
  // Every truncation is an error, never a crash.
  for (size_t n = 0; n < bytes.size(); n += (n < 140 ? 1 : 37)) {
    spit(dir / "t.npy", std::vector<char>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n)));
    expect_error([&] { read_npy(dir / "t.npy"); }, {"t.npy"});
  }
  std::vector<char> bad = bytes;
  bad[1] = 'X';
  spit(dir / "magic.npy", bad);
  expect_error([&] { read_npy(dir / "magic.npy"); }, {"magic.npy", "magic"});
  // Garbled headers.
  std::mt19937 rng(5);
  for (int trial = 0; trial < 150; ++trial) {
    std::vector<char> g = bytes;
    g[10 + rng() % 60] = static_cast<char>(rng());
    spit(dir / "g.npy", g);
    try {
      read_npy(dir / "g.npy");
    } catch (const Error&) {
    }
  }
  expect_error([&] { read_npy(dir.path.string()); }, {dir.path.string()});
}

// ---- IDX ---------------------------------------------------------------------------------------

/// An IDX file of unsigned bytes.
std::string idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data, uint8_t type = 8) {
  std::string s{'\0', '\0', static_cast<char>(type), static_cast<char>(dims.size())};
  for (uint32_t d : dims)
    for (int k = 3; k >= 0; --k) s += static_cast<char>((d >> (8 * k)) & 0xff);
  s.append(data.begin(), data.end());
  return s;
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(f);
}

TEST(Idx, SmallFilesPlainAndGzip) {
  TempDir dir("ffrt_data");
  std::vector<uint8_t> px(5 * 2 * 3), lab{3, 1, 4, 1, 5};
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 8);
  const std::string img = idx_bytes({5, 2, 3}, px), labs = idx_bytes({5}, lab);
  spit(dir / "img", img);
  spit(dir / "lab", labs);
  write_gz(dir / "img.gz", img);
  write_gz(dir / "lab.gz", labs);
  for (const char* suffix : {"", ".gz"}) {
    SCOPED_TRACE(suffix);
    IdxReader r(dir / (std::string("img") + suffix));
    EXPECT_EQ(r.compressed(), std::string(suffix) == ".gz");
    EXPECT_EQ(r.dims(), (std::vector<int64_t>{5, 2, 3}));
    HostArray a = r.images(1, 4);
    ASSERT_EQ(a.shape, (std::vector<int64_t>{3, 1, 2, 3}));
    for (int i = 0; i < 18; ++i) EXPECT_EQ(a.f32()[i], static_cast<float>((i + 6) * 8) / 255.f);
    HostArray first = r.images(0, 1);  // backwards after a later read
    EXPECT_EQ(first.f32()[1], 8.f / 255.f);
    HostArray l = read_idx_labels(dir / (std::string("lab") + suffix), 2);
    ASSERT_EQ(l.shape, (std::vector<int64_t>{3}));
    EXPECT_EQ(l.i64()[0], 4);
    EXPECT_EQ(l.i64()[2], 5);
    EXPECT_THROW(r.images(4, 6), Error);
    EXPECT_THROW(r.labels(0, 1), Error);  // not a label file
  }
  // Truncated: a plain file fails at open, a gzip file when the missing samples are read.
  spit(dir / "short", img.substr(0, img.size() - 1));
  expect_error([&] { IdxReader r(dir / "short"); }, {"short", "truncated"});
  write_gz(dir / "short.gz", img.substr(0, img.size() - 1));
  IdxReader sr(dir / "short.gz");
  EXPECT_NO_THROW(sr.images(0, 4));
  expect_error([&] { sr.images(0, 5); }, {"short.gz", "truncated"});
  // A gzip stream cut short.
  std::vector<char> gz = slurp(dir / "img.gz");
  spit(dir / "cut.gz", std::vector<char>(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() / 2)));
  expect_error([&] { IdxReader r(dir / "cut.gz"); r.images(0, 5); }, {"cut.gz"});
  spit(dir / "float", idx_bytes({2}, {0, 0, 0, 0, 0, 0, 0, 0}, 0x0D));
  expect_error([&] { IdxReader r(dir / "float"); }, {"float", "0x0d"});
  spit(dir / "magic", "\x01\x02\x08\x01");
  expect_error([&] { IdxReader r(dir / "magic"); }, {"magic"});
  spit(dir / "tiny", "\x00");
  expect_error([&] { IdxReader r(dir / "tiny"); }, {"tiny"});
  expect_error([&] { IdxReader r(dir / "nope"); }, {"nope"});
}

TEST(Idx, FashionMnist) {
  if (!fs::exists(std::string(kFashion) + "/train-images-idx3-ubyte.gz")) GTEST_SKIP() << kFashion << " is not installed";
  const std::string d = kFashion;
  IdxReader train(d + "/train-images-idx3-ubyte.gz"), test(d + "/t10k-images-idx3-ubyte.gz");
  EXPECT_TRUE(train.compressed());
  EXPECT_EQ(train.dims(), (std::vector<int64_t>{60000, 28, 28}));
  EXPECT_EQ(test.dims(), (std::vector<int64_t>{10000, 28, 28}));
  HostArray tl = read_idx_labels(d + "/train-labels-idx1-ubyte.gz");
  HostArray el = read_idx_labels(d + "/t10k-labels-idx1-ubyte.gz");
  ASSERT_EQ(tl.shape, (std::vector<int64_t>{60000}));
  ASSERT_EQ(el.shape, (std::vector<int64_t>{10000}));
  std::vector<int64_t> count(10);
  for (int64_t i = 0; i < 60000; ++i) {
    ASSERT_GE(tl.i64()[i], 0);
    ASSERT_LE(tl.i64()[i], 9);
    ++count[tl.i64()[i]];
  }
  for (int64_t c : count) EXPECT_EQ(c, 6000);  // Fashion-MNIST is balanced
  // The first labels of the training set.
  const int64_t first[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(tl.i64()[i], first[i]) << i;
  // The last images, read alone, equal the same images of a larger read.
  HostArray tail = train.images(59990, 60000), more = train.images(59980, 60000);
  ASSERT_EQ(tail.shape, (std::vector<int64_t>{10, 1, 28, 28}));
  EXPECT_EQ(0, std::memcmp(tail.f32(), more.f32() + 10 * 784, 10 * 784 * 4));
  double sum = 0;
  float lo = 1, hi = 0;
  for (int64_t i = 0; i < tail.numel(); ++i) {
    sum += std::lround(tail.f32()[i] * 255.f);
    lo = std::min(lo, tail.f32()[i]);
    hi = std::max(hi, tail.f32()[i]);
  }
  EXPECT_EQ(lo, 0.f);
  EXPECT_LE(hi, 1.f);
  if (!have_numpy()) return;
  // Against Python's own reading (gzip + numpy): labels and pixel sums of a few ranges.
  TempDir dir("ffrt_data");
  HostArray head = train.images(0, 100), t10 = test.images(5000, 5010);
  auto pix = [](const HostArray& a) {
    int64_t s = 0;
    for (int64_t i = 0; i < a.numel(); ++i) s += std::lround(a.f32()[i] * 255.f);
    return s;
  };
  const std::string prog = R"(
import sys, gzip, numpy as np
d = sys.argv[1]
def load(name, off):
    with gzip.open(d + '/' + name) as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=off)
tr = load('train-images-idx3-ubyte.gz', 16).reshape(-1, 784)
te = load('t10k-images-idx3-ubyte.gz', 16).reshape(-1, 784)
got = [int(x) for x in sys.argv[2:]]
s = lambda a: int(a.sum(dtype=np.int64))
want = [s(tr[:100]), s(tr[59990:]), s(te[5000:5010]), int(tr[0, 400]), int(tr[59999, 390])]
assert got == want, (got, want)
)";
  const std::string args = d + " " + std::to_string(pix(head)) + " " + std::to_string(static_cast<int64_t>(sum)) + " " +
                           std::to_string(pix(t10)) + " " + std::to_string(std::lround(head.f32()[400] * 255.f)) + " " +
                           std::to_string(std::lround(tail.f32()[9 * 784 + 390] * 255.f));
  EXPECT_EQ(run_python(dir, prog, args), 0);
}

// ---- Dataset -----------------------------------------------------------------------------------

TEST(Dataset, NpyBatchesWrap) {
  TempDir dir("ffrt_data");
  // 10 samples of [2, 3]: input element j of sample s is s * 100 + j; label s * 7.
  write_npy(dir / "inputs.npy", f32_array({10, 2, 3}, [](int64_t i) { return static_cast<float>(i / 6 * 100 + i % 6); }));
  write_npy(dir / "labels.npy", i64_array({10}, [](int64_t i) { return i * 7; }));
  Dataset ds = Dataset::open(dir.path.string());
  EXPECT_STREQ(ds.kind(), "npy");
  EXPECT_EQ(ds.size(), 10);
  EXPECT_EQ(ds.input_shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(ds.input_dtype(), DType::f32);
  EXPECT_TRUE(ds.label_shape().empty());
  EXPECT_EQ(ds.label_dtype(), DType::i64);
  EXPECT_NE(ds.describe().find("10 samples"), std::string::npos) << ds.describe();
  auto check = [&](int64_t k, int64_t B, int64_t lo, int64_t hi) {
    SCOPED_TRACE("k=" + std::to_string(k) + " B=" + std::to_string(B) + " [" + std::to_string(lo) + ", " +
                 std::to_string(hi) + ")");
    Batch b = ds.batch(k, B, lo, hi);
    ASSERT_EQ(b.inputs.shape, (std::vector<int64_t>{hi - lo, 2, 3}));
    ASSERT_EQ(b.labels.shape, (std::vector<int64_t>{hi - lo}));
    for (int64_t i = 0; i < hi - lo; ++i) {
      const int64_t s = (k * B + lo + i) % 10;
      EXPECT_EQ(ds.sample_index(k, B, lo + i), s);
      EXPECT_EQ(b.labels.i64()[i], s * 7);
      for (int j = 0; j < 6; ++j) EXPECT_EQ(b.inputs.f32()[i * 6 + j], static_cast<float>(s * 100 + j));
    }
  };
  check(0, 4, 0, 4);
  check(1, 4, 1, 3);
  check(2, 4, 0, 4);  // 8, 9, 0, 1: wraps
  check(2, 4, 1, 4);
  check(2, 4, 2, 2);  // empty
  check(1, 25, 0, 25);  // a batch larger than the data set wraps more than once
  check(123456789, 3, 1, 3);
  // Into caller buffers, labels only.
  std::vector<int64_t> lab(3);
  ds.batch(3, 3, 0, 3, nullptr, lab.data());
  EXPECT_EQ(lab, (std::vector<int64_t>{63, 0, 7}));
  EXPECT_THROW(ds.batch(0, 4, 3, 5), Error);
  EXPECT_THROW(ds.batch(0, 0, 0, 0), Error);
  EXPECT_THROW(ds.batch(-1, 4, 0, 1), Error);
}

// The test split of an npy data set: test_inputs.npy + test_labels.npy beside the training files.
TEST(Dataset, NpyTestSplit) {
  TempDir dir("ffrt_data");
  write_npy(dir / "inputs.npy", f32_array({10, 2}, [](int64_t i) { return static_cast<float>(i); }));
  write_npy(dir / "labels.npy", i64_array({10}, [](int64_t i) { return i % 3; }));
  try {
    Dataset::open(dir.path.string(), Split::test);
    ADD_FAILURE() << "a data set without test files opened its test split";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has no test split (test_inputs.npy + test_labels.npy"), std::string::npos)
        << e.what();
  }
  write_npy(dir / "test_inputs.npy", f32_array({4, 2}, [](int64_t i) { return static_cast<float>(-i); }));
  EXPECT_THROW(Dataset::open(dir.path.string(), Split::test), Error);  // its labels are missing
  write_npy(dir / "test_labels.npy", i64_array({4}, [](int64_t i) { return 2 - i % 3; }));
  Dataset test = Dataset::open(dir.path.string(), Split::test);
  EXPECT_EQ(test.size(), 4);
  Batch b = test.batch(0, 4, 0, 4);
  EXPECT_EQ(b.inputs.f32()[3], -3.f);
  EXPECT_EQ(b.labels.i64()[3], 2);
  EXPECT_EQ(Dataset::open(dir.path.string()).size(), 10);  // the training split is unchanged
}

TEST(Dataset, NpyConversionsAndErrors) {
  TempDir dir("ffrt_data");
  if (have_numpy()) {
    const char* prog = R"(
import sys, numpy as np
d = sys.argv[1]
np.save(d + '/inputs.npy', np.arange(12, dtype=np.float64).reshape(4, 3) / 4)
np.save(d + '/labels.npy', np.array([[1, 2], [3, 4], [5, 6], [7, 8]], dtype=np.int32))
)";
    ASSERT_EQ(run_python(dir, prog, dir.path.string()), 0);
    Dataset ds = Dataset::open(dir.path.string());
    EXPECT_EQ(ds.input_dtype(), DType::f32);
    EXPECT_EQ(ds.label_dtype(), DType::i64);
    EXPECT_EQ(ds.label_shape(), (std::vector<int64_t>{2}));
    Batch b = ds.batch(1, 2, 0, 2);
    EXPECT_EQ(b.inputs.f32()[4], 10.f / 4);  // sample 3, element 1
    EXPECT_EQ(b.labels.i64()[3], 8);
  }
  expect_error([&] { Dataset::open(dir / "nowhere"); }, {"nowhere", "does not exist"});
  const std::string empty = dir / "empty";
  fs::create_directory(empty);
  expect_error([&] { Dataset::open(empty); }, {empty, "inputs.npy", "train-images-idx3-ubyte"});
  const std::string a = dir / "a";
  fs::create_directory(a);
  write_npy(a + "/inputs.npy", f32_array({4, 3}, [](int64_t) { return 0.f; }));
  expect_error([&] { Dataset::open(a); }, {a + "/labels.npy", "missing"});
  write_npy(a + "/labels.npy", i64_array({5}, [](int64_t) { return int64_t{0}; }));
  expect_error([&] { Dataset::open(a); }, {a + "/inputs.npy", a + "/labels.npy", "4", "5"});
  write_npy(a + "/labels.npy", i64_array({}, [](int64_t) { return int64_t{0}; }));
  expect_error([&] { Dataset::open(a); }, {a + "/labels.npy", "scalar"});
  spit(a + "/labels.npy", std::string("garbage"));
  expect_error([&] { Dataset::open(a); }, {a + "/labels.npy"});
  write_npy(a + "/labels.npy", i64_array({4}, [](int64_t) { return int64_t{0}; }));
  EXPECT_NO_THROW(Dataset::open(a));
  expect_error([&] { Dataset::open(a, Split::test); }, {a, "test"});
  expect_error([&] { Dataset::open(a + "/inputs.npy"); }, {"inputs.npy", "not a directory"});
  // IDX: one file of the pair missing; counts that differ.
  const std::string idx = dir / "idx";
  fs::create_directory(idx);
  spit(idx + "/train-images-idx3-ubyte", idx_bytes({3, 2, 2}, std::vector<uint8_t>(12, 9)));
  expect_error([&] { Dataset::open(idx); }, {"train-labels-idx1-ubyte", "missing"});
  spit(idx + "/train-labels-idx1-ubyte", idx_bytes({2}, {1, 2}));
  expect_error([&] { Dataset::open(idx); }, {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "3", "2"});
  spit(idx + "/train-labels-idx1-ubyte", idx_bytes({3}, {1, 2, 3}));
  Dataset small = Dataset::open(idx);
  EXPECT_STREQ(small.kind(), "idx");
  EXPECT_EQ(small.input_shape(), (std::vector<int64_t>{1, 2, 2}));
  EXPECT_EQ(small.batch(0, 2, 1, 2).labels.i64()[0], 2);
  expect_error([&] { Dataset::open(idx, Split::test); }, {idx, "test"});
}

TEST(Dataset, FashionMnist) {
  if (!fs::exists(std::string(kFashion) + "/train-images-idx3-ubyte.gz")) GTEST_SKIP() << kFashion << " is not installed";
  Dataset train = Dataset::open(kFashion), test = Dataset::open(kFashion, Split::test);
  EXPECT_EQ(train.size(), 60000);
  EXPECT_EQ(test.size(), 10000);
  EXPECT_EQ(train.input_shape(), (std::vector<int64_t>{1, 28, 28}));
  EXPECT_EQ(train.input_dtype(), DType::f32);
  EXPECT_TRUE(train.label_shape().empty());
  // Iteration 937 of batches of 64 runs over the end: samples 59968..60031 → 59968..59999, 0..31.
  Batch b = train.batch(937, 64, 16, 48);
  ASSERT_EQ(b.inputs.shape, (std::vector<int64_t>{32, 1, 28, 28}));
  HostArray end = read_idx_images(std::string(kFashion) + "/train-images-idx3-ubyte.gz", 59984, 60000);
  HostArray start = read_idx_images(std::string(kFashion) + "/train-images-idx3-ubyte.gz", 0, 16);
  EXPECT_EQ(0, std::memcmp(b.inputs.f32(), end.f32(), 16 * 784 * 4));
  EXPECT_EQ(0, std::memcmp(b.inputs.f32() + 16 * 784, start.f32(), 16 * 784 * 4));
  EXPECT_EQ(b.labels.i64()[16], 9);  // sample 0
  Batch t = test.batch(0, 10, 0, 10);
  for (int i = 0; i < 10; ++i) EXPECT_LE(t.labels.i64()[i], 9);
  // Earlier iterations after later ones (the gzip payload is kept once decompressed).
  Batch again = train.batch(0, 64, 0, 16);
  EXPECT_EQ(0, std::memcmp(again.inputs.f32(), start.f32(), 16 * 784 * 4));
}

TEST(Dataset, Synthetic) {
  SyntheticSpec spec;
  spec.input_shape = {2, 5};
  spec.classes = 3;
  spec.samples = 7;
  spec.seed = 1;
  Dataset ds = Dataset::synthetic(spec);
  EXPECT_STREQ(ds.kind(), "synthetic");
  EXPECT_EQ(ds.size(), 7);
  Batch whole = ds.batch(0, 7, 0, 7), part = ds.batch(1, 7, 2, 5);
  EXPECT_EQ(0, std::memcmp(part.inputs.f32(), whole.inputs.f32() + 2 * 10, 3 * 10 * 4));
  for (int64_t i = 0; i < 7; ++i) {
    EXPECT_GE(whole.labels.i64()[i], 0);
    EXPECT_LT(whole.labels.i64()[i], 3);
  }
  for (int64_t i = 0; i < 70; ++i) {
    EXPECT_GE(whole.inputs.f32()[i], -1.f);
    EXPECT_LT(whole.inputs.f32()[i], 1.f);
  }
  spec.seed = 2;
  Batch other = Dataset::synthetic(spec).batch(0, 7, 0, 7);
  EXPECT_NE(other.inputs.bytes, whole.inputs.bytes);
  // Token ids and float targets.
  spec.input_classes = 100;
  spec.classes = 0;
  spec.label_shape = {4};
  Dataset tok = Dataset::synthetic(spec);
  EXPECT_EQ(tok.input_dtype(), DType::i64);
  EXPECT_EQ(tok.label_dtype(), DType::f32);
  Batch tb = tok.batch(0, 2, 0, 2);
  EXPECT_EQ(tb.labels.shape, (std::vector<int64_t>{2, 4}));
  for (int64_t i = 0; i < tb.inputs.numel(); ++i) EXPECT_LT(tb.inputs.i64()[i], 100);
  spec.samples = 0;
  EXPECT_THROW(Dataset::synthetic(spec), Error);
}

// ---- safetensors ---------------------------------------------------------------------------------

std::map<std::string, HostArray> sample_tensors() {
  std::map<std::string, HostArray> t;
  t["conv1.weight"] = f32_array({4, 3, 3, 3}, [](int64_t i) { return static_cast<float>(i) * 0.25f - 3.f; });
  t["fc.bias"] = f32_array({10}, [](int64_t i) { return static_cast<float>(i) / 3.f; });
  t["bn.num_batches_tracked"] = i64_array({}, [](int64_t) { return int64_t{12345678901}; });
  t["empty"] = f32_array({0, 3}, [](int64_t) { return 0.f; });
  t["embedding.ids"] = i64_array({2, 2}, [](int64_t i) { return -i; });
  return t;
}

TEST(Safetensors, RefusesF64) {
  // Checkpoints hold f32 and i64 tensors; an f64 one (batch-norm statistics) is an error naming it.
  TempDir dir("ffrt_data");
  HostArray a(DType::f64, {2, 3});
  expect_error([&] { write_safetensors(dir / "s.safetensors", std::map<std::string, HostArray>{{"bn.stats", a}}); },
               {"s.safetensors", "bn.stats", "f64"});
  EXPECT_FALSE(fs::exists(dir / "s.safetensors"));
}

TEST(Safetensors, RoundTripDeterministicAtomic) {
  TempDir dir("ffrt_data");
  auto t = sample_tensors();
  const std::string p = dir / "ckpt.safetensors";
  write_safetensors(p, t, {{"format", "pt"}, {"strategy", "data-parallel"}});
  auto back = read_safetensors(p);
  ASSERT_EQ(back.size(), t.size());
  for (const auto& [name, a] : t) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(back.count(name));
    EXPECT_EQ(back[name].dtype, a.dtype);
    EXPECT_EQ(back[name].shape, a.shape);
    EXPECT_EQ(back[name].bytes, a.bytes);
  }
  SafetensorsReader r(p);
  EXPECT_EQ(r.metadata().at("strategy"), "data-parallel");
  EXPECT_TRUE(r.contains("fc.bias"));
  expect_error([&] { r.entry("fc.weight"); }, {"ckpt.safetensors", "fc.weight"});
  // The header is padded to 8 bytes; tensors are laid out in name order.
  std::vector<char> bytes = slurp(p);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(r.entries().begin()->first, "bn.num_batches_tracked");
  EXPECT_EQ(r.entry("bn.num_batches_tracked").begin, 0);
  // Deterministic: the same tensors given in another order write the same bytes.
  std::vector<TensorRef> refs;
  for (auto it = t.rbegin(); it != t.rend(); ++it) refs.push_back({it->first, it->second.dtype, it->second.shape, it->second.bytes.data()});
  write_safetensors(dir / "again.safetensors", refs, {{"strategy", "data-parallel"}, {"format", "pt"}});
  EXPECT_EQ(slurp(dir / "again.safetensors"), bytes);
  // Overwriting replaces the file; no temporary files are left.
  write_safetensors(p, std::map<std::string, HostArray>{{"x", f32_array({1}, [](int64_t) { return 1.f; })}});
  EXPECT_EQ(read_safetensors(p).size(), 1u);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path)) names.push_back(e.path().filename().string());
  EXPECT_EQ(names.size(), 2u);
  // Errors while writing leave nothing behind.
  expect_error([&] { write_safetensors(dir / "no/such/dir/c.safetensors", t); }, {"no/such/dir/c.safetensors"});
  refs.push_back(refs.front());
  expect_error([&] { write_safetensors(dir / "dup.safetensors", refs); }, {"dup.safetensors", "duplicate"});
  EXPECT_FALSE(fs::exists(dir / "dup.safetensors"));
  size_t count = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path)) ++count;
  EXPECT_EQ(count, 2u);
}

TEST(Safetensors, PythonReadsAndWrites) {
  if (!have_numpy()) GTEST_SKIP() << python() << " lacks numpy";
  TempDir dir("ffrt_data");
  write_safetensors(dir / "ours.safetensors", sample_tensors(), {{"format", "pt"}});
  // Python parses our file with json + numpy (what torch.frombuffer would see), checks it, and
  // writes one of its own: tensors in reverse name order, an unpadded header.
  const char* prog = R"(
import sys, json, struct, numpy as np
d = sys.argv[1]
raw = open(d + '/ours.safetensors', 'rb').read()
n, = struct.unpack('<Q', raw[:8])
assert n % 8 == 0
h = json.loads(raw[8:8 + n])
data = raw[8 + n:]
assert h['__metadata__'] == {'format': 'pt'}
def get(name, dt):
    e = h[name]
    b, en = e['data_offsets']
    return np.frombuffer(data[b:en], dtype=dt).reshape(e['shape'])
w = get('conv1.weight', '<f4'); assert h['conv1.weight']['dtype'] == 'F32' and w.shape == (4, 3, 3, 3)
assert (w.reshape(-1) == np.arange(108, dtype=np.float32) * np.float32(0.25) - np.float32(3)).all()
assert (get('fc.bias', '<f4') == np.arange(10, dtype=np.float32) / np.float32(3)).all()
s = get('bn.num_batches_tracked', '<i8'); assert h['bn.num_batches_tracked']['dtype'] == 'I64' and s.shape == () and s == 12345678901
assert get('empty', '<f4').shape == (0, 3)
assert list(get('embedding.ids', '<i8').reshape(-1)) == [0, -1, -2, -3]
ends = sorted(e['data_offsets'] for k, e in h.items() if k != '__metadata__')
assert ends[0][0] == 0 and ends[-1][1] == len(data) and all(a[1] == b[0] for a, b in zip(ends, ends[1:]))
tensors = {'b.weight': np.arange(6, dtype=np.float32).reshape(2, 3) - 2, 'a.step': np.array(7, dtype=np.int64)}
header, blobs, off = {}, [], 0
for k in sorted(tensors, reverse=True):
    a = tensors[k]
    header[k] = {'dtype': 'F32' if a.dtype == np.float32 else 'I64', 'shape': list(a.shape), 'data_offsets': [off, off + a.nbytes]}
    blobs.append(a.tobytes()); off += a.nbytes
hb = json.dumps(header).encode()
open(d + '/theirs.safetensors', 'wb').write(struct.pack('<Q', len(hb)) + hb + b''.join(blobs))
)";
  ASSERT_EQ(run_python(dir, prog, dir.path.string()), 0);
  auto t = read_safetensors(dir / "theirs.safetensors");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t["b.weight"].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t["b.weight"].f32()[5], 3.f);
  EXPECT_EQ(t["a.step"].dtype, DType::i64);
  EXPECT_EQ(t["a.step"].i64()[0], 7);
}

/// A safetensors file from a header text and a data section.
std::string st_file(const std::string& header, size_t data_bytes) {
  std::string s(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(s.data(), &n, 8);
  return s + header + std::string(data_bytes, '\x01');
}

TEST(Safetensors, CorruptFilesAreErrors) {
  TempDir dir("ffrt_data");
  const std::string p = dir / "c.safetensors";
  auto bad = [&](const std::string& contents, std::initializer_list<std::string> needles) {
    spit(p, contents);
    expect_error([&] { read_safetensors(p); }, needles);
  };
  bad(st_file(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})", 12), {"c.safetensors", "w", "out of range"});
  bad(st_file(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", 16), {"c.safetensors", "w", "shape"});
  bad(st_file(R"({"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", 4), {"c.safetensors", "w", "F16"});
  bad(st_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
      {"c.safetensors", "overlap"});
  bad(st_file(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8), {"c.safetensors", "w", "shape"});
  bad(st_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8), {"c.safetensors", "w"});
  bad(st_file(R"({"w":{"dtype":"F32","shape":[2]}})", 8), {"c.safetensors", "w", "data_offsets"});
  bad(st_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 8), {"c.safetensors", "JSON"});
  bad(st_file(R"([1, 2, 3])", 0), {"c.safetensors", "object"});
  bad(st_file(R"({"w":[0,1]})", 0), {"c.safetensors", "w"});
  bad(st_file(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8), {"c.safetensors", "w"});
  bad(std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10), {"c.safetensors", "header"});
  bad("", {"c.safetensors"});
  expect_error([&] { read_safetensors(dir / "missing.safetensors"); }, {"missing.safetensors"});

  // Every truncation of a real checkpoint is an error; random corruption is an error or a load,
  // never a crash.
  write_safetensors(dir / "good.safetensors", sample_tensors());
  std::vector<char> good = slurp(dir / "good.safetensors");
  uint64_t header_len = 0;
  std::memcpy(&header_len, good.data(), 8);
  for (size_t n = 0; n < good.size(); n += n < 8 + header_len + 16 ? 1 : 13) {
    spit(p, std::vector<char>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)));
    EXPECT_THROW(read_safetensors(p), Error) << "truncated to " << n << " bytes";
  }
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<char> g = good;
    const size_t at = trial < 150 ? 8 + rng() % header_len : rng() % good.size();
    g[at] = static_cast<char>(rng());
    spit(p, g);
    try {
      read_safetensors(p);
    } catch (const Error&) {
    }
  }
}

}  // namespace
}  // namespace ffrt
