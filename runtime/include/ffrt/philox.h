// Philox4x32-10, the counter-based generator behind every random number ffc draws (weights,
// synthetic data, dropout masks): a value depends only on (key, counter), so any rank computes the
// numbers of its box exactly as the serial program would. Header-only, usable on host and device.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define FFRT_HD __host__ __device__ __forceinline__
#else
#define FFRT_HD inline
#endif

namespace ffrt {

struct Philox4 {
  uint32_t v[4];
};

/// The 4 words of Philox4x32-10 for a 64-bit counter under a 64-bit key.
FFRT_HD Philox4 philox4x32(uint64_t counter, uint64_t key) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

/// A float uniform in [0, 1) from a 32-bit word (24 bits of mantissa).
FFRT_HD float uniform01(uint32_t w) { return static_cast<float>(w >> 8) * (1.0f / 16777216.0f); }

/// A stable 64-bit key for a name (FNV-1a), mixed with a seed.
inline uint64_t key_of(const char* name, uint64_t seed) {
  uint64_t h = 1469598103934665603ull;
  for (const char* p = name; *p; ++p) {
    h ^= static_cast<unsigned char>(*p);
    h *= 1099511628211ull;
  }
  return h ^ (seed * 0x9E3779B97F4A7C15ull);
}

}  // namespace ffrt
