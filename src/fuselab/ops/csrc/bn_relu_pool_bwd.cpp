// Backward kernels of fuselab.ops.bn_relu_maxpool (contract: bn_relu_pool_fwd.cpp).
//   fl_red_*:    per-slice sums of gz and gz * (p - mean[c]) * invstd[c], gz = g where z > 0
//                (z = p * scale + shift, recomputed exactly as fl_act_ computed it).
//   fl_bwd_*:    dy = c1[c] * y + c0[c], plus gz * scale[c] at each window's winner.
#include "bn_relu_pool.h"

namespace fl {
namespace {

// loops vectorise instead of waiting on one accumulator.
template <class T, class A>
void red(int nhwc, const T* p, const T* g, const A* scale, const A* shift, const A* mean,
         const A* invstd, double* gb, double* gw, const Dims& d, i64 u) {
  const i64 C = d.C, n = nhwc ? d.OH * d.OW * C : d.OH * d.OW;  // nhwc: u = one sample
  const T* pp = p + u * n;
  const T* gp = g + u * n;
  if (!nhwc) {
    const i64 k = u % C;
    const A sc = scale[k], sh = shift[k], mu = mean[k], is = invstd[k];
    A sb[16] = {0}, sw[16] = {0};  // short per-lane float sums, added in double below
    i64 i = 0;
    for (; i + 16 <= n; i += 16)
      for (int l = 0; l < 16; ++l) {
        const A x = A(load(pp[i + l])), gv = A(load(gp[i + l]));
        const A gz = x * sc + sh > 0 ? gv : A(0);
        sb[l] += gz;
        sw[l] += gz * ((x - mu) * is);
      }
    for (; i < n; ++i) {
      const A x = A(load(pp[i])), gv = A(load(gp[i]));
      const A gz = x * sc + sh > 0 ? gv : A(0);
      sb[0] += gz;
      sw[0] += gz * ((x - mu) * is);
    }
    gb[u] = gw[u] = 0;
    for (int l = 0; l < 16; ++l) gb[u] += double(sb[l]), gw[u] += double(sw[l]);
    return;
  }
  const i64 L = period(C) <= kMaxPeriod ? period(C) : C;
  double* b = gb + u * C;
  double* w = gw + u * C;
  for (i64 c = 0; c < C; ++c) b[c] = w[c] = 0;
  if (L > kMaxPeriod) {
    for (i64 i = 0; i < n; ++i) {
      const i64 c = i % C;
      const A x = A(load(pp[i]));
      const double gv = load(gp[i]), gz = x * scale[c] + shift[c] > 0 ? gv : 0.0;
      b[c] += gz;
      w[c] += gz * double((x - mean[c]) * invstd[c]);
    }
    return;
  }
  // Lanes accumulate in A, one row of the sample at a time, then into double: short float sums
  // keep the loop vectorised without the rounding of one long float sum.
  A sc[kMaxPeriod], sh[kMaxPeriod], mu[kMaxPeriod], is[kMaxPeriod], lb[kMaxPeriod], lw[kMaxPeriod];
  for (i64 l = 0; l < L; ++l) {
    const i64 c = l % C;
    sc[l] = scale[c], sh[l] = shift[c], mu[l] = mean[c], is[l] = invstd[c];
  }
  const i64 row = d.OW * C;
  for (i64 r = 0; r < d.OH; ++r) {
    const T* pr = pp + r * row;
    const T* gr = gp + r * row;
    for (i64 l = 0; l < L; ++l) lb[l] = lw[l] = 0;
    i64 i = 0;
    for (; i + L <= row; i += L)
      for (i64 l = 0; l < L; ++l) {
        const A x = A(load(pr[i + l])), gv = A(load(gr[i + l]));
        const A gz = x * sc[l] + sh[l] > 0 ? gv : A(0);
        lb[l] += gz;
        lw[l] += gz * ((x - mu[l]) * is[l]);
      }
    for (; i < row; ++i) {  // i is a multiple of C here, so the lane of element i is i % L
      const i64 l = i % L;
      const A x = A(load(pr[i])), gv = A(load(gr[i]));
      const A gz = x * sc[l] + sh[l] > 0 ? gv : A(0);
      lb[l] += gz;
      lw[l] += gz * ((x - mu[l]) * is[l]);
    }
    for (i64 l = 0; l < L; ++l) b[l % C] += double(lb[l]), w[l % C] += double(lw[l]);
  }
}

// ---- backward: dy = c1 * y + c0, then the winners' terms ------------------------------------

template <class T, class A, int KW>
void bwd_nchw(const T* y, const uint8_t* off, const T* p, const T* g, const A* scale,
              const A* shift, const A* c1, const A* c0, T* dy, const Dims& d, i64 u) {
  const i64 hw = d.H * d.W, kw = KW > 0 ? KW : d.kw, c = u % d.C;
  const A a1 = c1[c], a0 = c0[c], sc = scale[c], sh = shift[c];
  const T* yp = y + u * hw;
  T* dp = dy + u * hw;
  for (i64 i = 0; i < hw; ++i) store(dp + i, a1 * A(load(yp[i])) + a0);
  const i64 m = d.OH * d.OW;
  const uint8_t* op = off + u * m;
  const T* pp = p + u * m;
  const T* gp = g + u * m;
  for (i64 oh = 0; oh < d.OH; ++oh)
    for (i64 ow = 0; ow < d.OW; ++ow) {
      const i64 o = oh * d.OW + ow, code = op[o];
      const A z = A(load(pp[o])) * sc + sh;
      if (!(z > 0)) continue;
      const i64 at = (oh * d.kh + code / kw) * d.W + ow * kw + code % kw;
      store(dp + at, A(load(dp[at])) + A(load(gp[o])) * sc);
    }
}

template <class T, class A, int KW>
void bwd_nhwc(const T* y, const uint8_t* off, const T* p, const T* g, const A* scale,
              const A* shift, const A* c1, const A* c0, T* dy, const Dims& d, i64 u) {
  const i64 C = d.C, W = d.W, kw = KW > 0 ? KW : d.kw;
  const i64 b = u / d.OH, oh = u % d.OH, h0 = oh * d.kh;
  const i64 nh = h0 + d.kh <= d.H ? d.kh : d.H - h0, n = nh * W * C, L = period(C);
  const T* block = y + (b * d.H + h0) * W * C;
  T* dblock = dy + (b * d.H + h0) * W * C;
  i64 i = 0;
  if (L <= kMaxPeriod) {
    A t1[kMaxPeriod], t0[kMaxPeriod];
    for (i64 l = 0; l < L; ++l) t1[l] = c1[l % C], t0[l] = c0[l % C];
    for (; i + L <= n; i += L)
      for (i64 l = 0; l < L; ++l) store(dblock + i + l, t1[l] * A(load(block[i + l])) + t0[l]);
  }
  for (; i < n; i += C)
    for (i64 c = 0; c < C; ++c) store(dblock + i + c, c1[c] * A(load(block[i + c])) + c0[c]);
  const i64 o0 = ((b * d.OH + oh) * d.OW) * C;
  for (i64 ow = 0; ow < d.OW; ++ow)
    for (i64 c = 0; c < C; ++c) {
      const i64 o = o0 + ow * C + c, code = off[o];
      const A z = A(load(p[o])) * scale[c] + shift[c];
      if (!(z > 0)) continue;
      const i64 at = ((code / kw) * W + ow * kw + code % kw) * C + c;
      store(dblock + at, A(load(dblock[at])) + A(load(g[o])) * scale[c]);
    }
}

// ---- entry points ----------------------------------------------------------------------------

template <class T, class A>
void red_all(int nhwc, const void* p, const void* g, const A* scale, const A* shift,
             const A* mean, const A* invstd, double* gb, double* gw, const Dims& d, i64 units,
             int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (i64 u = 0; u < units; ++u)
    red<T, A>(nhwc, static_cast<const T*>(p), static_cast<const T*>(g), scale, shift, mean, invstd, gb,
        gw, d, u);
}

template <class T, class A>
void bwd(int nhwc, const void* y, const uint8_t* off, const void* p, const void* g,
         const A* scale, const A* shift, const A* c1, const A* c0, void* dy, const Dims& d,
         i64 units, int threads) {
  auto run = nhwc ? bwd_nhwc<T, A, 0> : bwd_nchw<T, A, 0>;
  if (d.kw == 2) run = nhwc ? bwd_nhwc<T, A, 2> : bwd_nchw<T, A, 2>;
  if (d.kw == 3) run = nhwc ? bwd_nhwc<T, A, 3> : bwd_nchw<T, A, 3>;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (i64 u = 0; u < units; ++u)
    run(static_cast<const T*>(y), off, static_cast<const T*>(p), static_cast<const T*>(g), scale,
        shift, c1, c0, static_cast<T*>(dy), d, u);
}

}  // namespace
}  // namespace fl

using fl::i64;

#define FL_EXPORT(SUFFIX, T, A)                                                                 \
  extern "C" void fl_red_##SUFFIX(int nhwc, const void* p, const void* g, const A* scale,      \
                                  const A* shift, const A* mean, const A* invstd, double* gb,   \
                                  double* gw, FL_DIMS) {                                        \
    fl::red_all<T, A>(nhwc, p, g, scale, shift, mean, invstd, gb, gw,                           \
                      fl::Dims{C, H, W, OH, OW, kh, kw}, units, threads);                      \
  }                                                                                             \
  extern "C" void fl_bwd_##SUFFIX(int nhwc, const void* y, const uint8_t* off, const void* p,  \
                                  const void* g, const A* scale, const A* shift, const A* c1,   \
                                  const A* c0, void* dy, FL_DIMS) {                             \
    fl::bwd<T, A>(nhwc, y, off, p, g, scale, shift, c1, c0, dy,                                 \
                  fl::Dims{C, H, W, OH, OW, kh, kw}, units, threads);                          \
  }

FL_EXPORT(f32, float, float)
FL_EXPORT(f64, double, double)
FL_EXPORT(bf16, fl::bf16, float)
