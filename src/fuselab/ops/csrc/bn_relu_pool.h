// Shared pieces of the bn_relu_pool kernels (see bn_relu_pool_fwd.cpp for the contract).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace fl {

using i64 = int64_t;

struct bf16 {
  uint16_t bits;
};

inline float load(float v) { return v; }
inline double load(double v) { return v; }
inline float load(bf16 v) {
  uint32_t u = uint32_t(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline void store(float* p, float v) { *p = v; }
inline void store(double* p, double v) { *p = v; }
inline void store(bf16* p, float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  if (std::isnan(v)) {
    p->bits = 0x7fc0;
    return;
  }
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  p->bits = uint16_t(u >> 16);
}

template <class T> struct acc_of { using type = float; };
template <> struct acc_of<double> { using type = double; };

// Channel-periodic loops over a contiguous nhwc block (channel = index % C) run in chunks of
// L = C * r >= 16 elements against per-position tables, so they vectorise even for C = 6.
constexpr i64 kMaxPeriod = 1024;
inline i64 period(i64 C) { return C >= 16 ? C : C * ((16 + C - 1) / C); }  // < 32 for C < 16

struct Dims {
  i64 C, H, W, OH, OW, kh, kw;
};

// nhwc kernels get the channel count at compile time for the narrow widths of LeNet-style stages.
#define FL_BY_CHANNELS(C, CALL) \
  switch (C) {                  \
    case 1: CALL(1); break;     \
    case 2: CALL(2); break;     \
    case 3: CALL(3); break;     \
    case 4: CALL(4); break;     \
    case 6: CALL(6); break;     \
    case 8: CALL(8); break;     \
    case 12: CALL(12); break;   \
    default: CALL(0);           \
  }

}  // namespace fl

#define FL_DIMS i64 C, i64 H, i64 W, i64 OH, i64 OW, i64 kh, i64 kw, i64 units, int threads
