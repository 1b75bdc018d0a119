// Kernels of fuselab.ops.bn_relu_maxpool. Plain C ABI, no torch headers: g++ builds the
// library in seconds and Python calls it through ctypes.
//
// Layouts: nchw = (B, C, H, W) contiguous, one slice u = one (b, c) plane; nhwc = channels-last
// (B, H, W, C) in memory, one slice u = (b, oh): the input rows of output row oh, all channels.
// Pooling: window (kh, kw), stride = window, no padding, ceil mode, so the windows tile the input.
// The winner of a window is its first element with the largest sign[c] * y (NaN wins, as in
// aten's max_pool2d); code = a * kw + b for the element at row a, column b of the window.
//
//   fl_fwd_*:    p = y[winner], off = code; per-slice sum and sum of squares of y (double).
//   fl_act_*:    out = relu(p * scale[c] + shift[c]).
//   fl_red_*:    per-slice sums of gz and gz * (p - mean[c]) * invstd[c], gz = g where z > 0
//                (z = p * scale + shift, recomputed exactly as fl_act_ computed it).
//   fl_bwd_*:    dy = c1[c] * y + c0[c], plus gz * scale[c] at each window's winner.
//
// Per-slice partials are summed by the caller in a fixed order, so no result depends on the
// thread count. Slices run on an OpenMP team; linked with -fopenmp, the library binds to the
// libgomp torch has loaded and shares torch's threads instead of spinning against them.
#include "bn_relu_pool.h"

namespace fl {
namespace {

// ---- forward: statistics + pool --------------------------------------------------------------

template <class T>
inline void sums(const T* x, i64 n, double* s, double* q) {  // s, q: 8 lanes each
  i64 i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) {
      const double v = load(x[i + l]);
      s[l] += v;
      q[l] += v * v;
    }
  for (; i < n; ++i) {
    const double v = load(x[i]);
    s[0] += v;
    q[0] += v * v;
  }
}

template <class T, class A, int KH, int KW>
inline void window(const T* y, i64 rs, i64 cs, i64 nh, i64 nw, i64 kw, A sg, T* val,
                   uint8_t* code) {
  const i64 hh = KH > 0 ? KH : nh, ww = KW > 0 ? KW : nw;
  A best = -INFINITY;
  T v = y[0];
  uint8_t c = 0;
  for (i64 a = 0; a < hh; ++a)
    for (i64 b = 0; b < ww; ++b) {
      const T e = y[a * rs + b * cs];
      const A t = sg * A(load(e));
      const bool m = (t > best) | (t != t);
      best = m ? t : best;
      v = m ? e : v;
      c = m ? uint8_t(a * kw + b) : c;
    }
  *val = v;
  *code = c;
}

// Full 2 x 2 windows, written so the compiler vectorises across windows: the winner's offset
// goes to an int32 buffer first and is narrowed to uint8 in a separate loop (narrowing inside
// the selection loop costs twice the whole selection).
template <class T, class A>
inline int32_t pick4(T e0, T e1, T e2, T e3, A sg, T* val) {
  A best = sg * A(load(e0)), t;
  T v = e0;
  int32_t c = 0;
  bool m;
  t = sg * A(load(e1)), m = (t > best) | (t != t), best = m ? t : best, v = m ? e1 : v, c = m ? 1 : c;
  t = sg * A(load(e2)), m = (t > best) | (t != t), best = m ? t : best, v = m ? e2 : v, c = m ? 2 : c;
  t = sg * A(load(e3)), m = (t > best) | (t != t), v = m ? e3 : v, c = m ? 3 : c;
  *val = v;
  return c;
}

constexpr i64 kChunk = 64;

// nchw: n windows along rows r0, r1 (column pairs).
template <class T, class A>
void row2x2_nchw(const T* r0, const T* r1, T* p, uint8_t* off, i64 n, A sg) {
  int32_t cb[kChunk];
  for (i64 o0 = 0; o0 < n; o0 += kChunk) {
    const i64 m = n - o0 < kChunk ? n - o0 : kChunk;
    for (i64 k = 0; k < m; ++k) {
      const i64 o = o0 + k;
      cb[k] = pick4<T, A>(r0[2 * o], r0[2 * o + 1], r1[2 * o], r1[2 * o + 1], sg, p + o);
    }
    for (i64 k = 0; k < m; ++k) off[o0 + k] = uint8_t(cb[k]);
  }
}

// nhwc: n output pixels along rows r0, r1 (pixel pairs of C channels). CC > 0: C known at compile
// time (the narrow widths), so the channel loop unrolls and the pixel loop vectorises; wide C:
// chunks of channels inside one pixel.
template <class T, class A, int CC>
void row2x2_nhwc(const T* r0, const T* r1, T* p, uint8_t* off, i64 n, i64 C_rt,
                 const float* sign) {
  const i64 C = CC > 0 ? CC : C_rt;
  int32_t cb[kChunk];
  if (CC > 0) {
    A sg[CC > 0 ? CC : 1];
    for (i64 c = 0; c < C; ++c) sg[c] = A(sign[c]);
    const i64 per = kChunk / C;  // pixels per chunk
    for (i64 o0 = 0; o0 < n; o0 += per) {
      const i64 m = n - o0 < per ? n - o0 : per;
      for (i64 k = 0; k < m; ++k)
        for (i64 c = 0; c < C; ++c) {
          const i64 a = 2 * (o0 + k) * C + c;
          cb[k * C + c] = pick4<T, A>(r0[a], r0[a + C], r1[a], r1[a + C], sg[c],
                                      p + (o0 + k) * C + c);
        }
      for (i64 k = 0; k < m * C; ++k) off[o0 * C + k] = uint8_t(cb[k]);
    }
    return;
  }
  for (i64 o = 0; o < n; ++o)
    for (i64 c0 = 0; c0 < C; c0 += kChunk) {
      const i64 m = C - c0 < kChunk ? C - c0 : kChunk;
      const i64 a = 2 * o * C + c0;
      for (i64 k = 0; k < m; ++k)
        cb[k] = pick4<T, A>(r0[a + k], r0[a + C + k], r1[a + k], r1[a + C + k],
                            A(sign[c0 + k]), p + o * C + c0 + k);
      for (i64 k = 0; k < m; ++k) off[o * C + c0 + k] = uint8_t(cb[k]);
    }
}

template <class T, int KH, int KW>
void fwd_nchw(const T* y, T* p, uint8_t* off, double* psum, double* psq, const float* sign,
              const Dims& d, i64 u) {
  using A = typename acc_of<T>::type;
  const i64 fh = d.H / d.kh, fw = d.W / d.kw, kh = d.kh, kw = d.kw, W = d.W;
  const T* yp = y + u * d.H * W;
  double s[8] = {0}, q[8] = {0};
  sums(yp, d.H * W, s, q);
  psum[u] = psq[u] = 0;
  for (int l = 0; l < 8; ++l) psum[u] += s[l], psq[u] += q[l];
  const A sg = sign[u % d.C];
  T* pp = p + u * d.OH * d.OW;
  uint8_t* op = off + u * d.OH * d.OW;
  for (i64 oh = 0; oh < d.OH; ++oh) {
    const i64 nh = oh < fh ? kh : d.H - oh * kh, o = oh * d.OW;
    const T* row = yp + oh * kh * W;
    i64 ow = 0;
    if (KH == 2 && KW == 2 && nh == 2) {
      row2x2_nchw<T, A>(row, row + W, pp + o, op + o, fw, sg);
      ow = fw;
    } else if (nh == kh) {
      for (; ow < fw; ++ow)
        window<T, A, KH, KW>(row + ow * kw, W, 1, kh, kw, kw, sg, pp + o + ow, op + o + ow);
    }
    for (; ow < d.OW; ++ow)
      window<T, A, 0, 0>(row + ow * kw, W, 1, nh, ow < fw ? kw : W - ow * kw, kw, sg,
                         pp + o + ow, op + o + ow);
  }
}

template <class T, int KH, int KW, int CC>
void fwd_nhwc(const T* y, T* p, uint8_t* off, double* psum, double* psq, const float* sign,
              const Dims& d, i64 u) {
  using A = typename acc_of<T>::type;
  const i64 C = CC > 0 ? CC : d.C, W = d.W, kh = d.kh, kw = d.kw, fh = d.H / kh, fw = W / kw;
  const i64 b = u / d.OH, oh = u % d.OH, h0 = oh * kh, nh = oh < fh ? kh : d.H - h0;
  const T* block = y + (b * d.H + h0) * W * C;  // rows h0 .. h0 + nh: contiguous
  const i64 n = nh * W * C, L = period(C);
  double* s = psum + u * C;
  double* q = psq + u * C;
  for (i64 c = 0; c < C; ++c) s[c] = q[c] = 0;
  i64 i = 0;
  if (L <= kMaxPeriod) {
    double sl[kMaxPeriod], ql[kMaxPeriod];
    for (i64 l = 0; l < L; ++l) sl[l] = ql[l] = 0;
    for (; i + L <= n; i += L)
      for (i64 l = 0; l < L; ++l) {
        const double v = load(block[i + l]);
        sl[l] += v;
        ql[l] += v * v;
      }
    for (i64 l = 0; l < L; ++l) s[l % C] += sl[l], q[l % C] += ql[l];
  }
  for (; i < n; i += C)  // L is a multiple of C: the rest starts at channel 0
    for (i64 c = 0; c < C; ++c) {
      const double v = load(block[i + c]);
      s[c] += v;
      q[c] += v * v;
    }
  i64 ow0 = 0;
  if (KH == 2 && KW == 2 && nh == 2) {
    const i64 o = (b * d.OH + oh) * d.OW * C;
    row2x2_nhwc<T, A, CC>(block, block + W * C, p + o, off + o, fw, C, sign);
    ow0 = fw;
  }
  for (i64 ow = ow0; ow < d.OW; ++ow) {
    const T* base = block + ow * kw * C;
    const i64 o = ((b * d.OH + oh) * d.OW + ow) * C;
    if (nh == kh && ow < fw)
      for (i64 c = 0; c < C; ++c)
        window<T, A, KH, KW>(base + c, W * C, C, kh, kw, kw, A(sign[c]), p + o + c, off + o + c);
    else
      for (i64 c = 0; c < C; ++c)
        window<T, A, 0, 0>(base + c, W * C, C, nh, ow < fw ? kw : W - ow * kw, kw, A(sign[c]),
                           p + o + c, off + o + c);
  }
}

// ---- pooled-size passes: activation and the backward's reductions ---------------------------

// Slice u of the pooled tensor: nchw -> one plane (one channel); nhwc -> one sample, OH * OW
// pixels x C channels (CC > 0: C at compile time, as in row2x2_nhwc).
template <class T, class A, int CC>
void act(int nhwc, const T* p, T* out, const A* scale, const A* shift, const Dims& d, i64 u) {
  const i64 C = CC > 0 ? CC : d.C, px = nhwc ? d.OH * d.OW : d.OH * d.OW, ch = nhwc ? C : 1;
  const T* pp = p + u * px * ch;
  T* po = out + u * px * ch;
  if (!nhwc) {
    const A sc = scale[u % C], sh = shift[u % C];
    for (i64 i = 0; i < px; ++i) {
      const A z = A(load(pp[i])) * sc + sh;
      store(po + i, z > 0 ? z : A(0));
    }
    return;
  }
  for (i64 i = 0; i < px; ++i)
    for (i64 c = 0; c < C; ++c) {
      const A z = A(load(pp[i * C + c])) * scale[c] + shift[c];
      store(po + i * C + c, z > 0 ? z : A(0));
    }
}

// Reductions in independent lanes (8 per plane for nchw; the channel period L for nhwc), so the

// ---- entry points ----------------------------------------------------------------------------

template <class T>
using FwdFn = void (*)(const T*, T*, uint8_t*, double*, double*, const float*, const Dims&, i64);

template <class T, int CC>
FwdFn<T> fwd_nhwc_for(const Dims& d) {
  return d.kh == 2 && d.kw == 2 ? fwd_nhwc<T, 2, 2, CC> : fwd_nhwc<T, 0, 0, CC>;
}

template <class T>
void fwd(int nhwc, const void* y, void* p, uint8_t* off, double* s, double* q, const float* sg,
         const Dims& d, i64 units, int threads) {
  FwdFn<T> run = fwd_nchw<T, 0, 0>;
  if (nhwc) {
#define FL_CALL(CC) run = fwd_nhwc_for<T, CC>(d)
    FL_BY_CHANNELS(d.C, FL_CALL)
#undef FL_CALL
  } else if (d.kh == 2 && d.kw == 2) {
    run = fwd_nchw<T, 2, 2>;
  } else if (d.kh == 1 && d.kw == 2) {
    run = fwd_nchw<T, 1, 2>;
  } else if (d.kh == 3 && d.kw == 3) {
    run = fwd_nchw<T, 3, 3>;
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (i64 u = 0; u < units; ++u)
    run(static_cast<const T*>(y), static_cast<T*>(p), off, s, q, sg, d, u);
}

template <class T, class A>
void act_all(int nhwc, const void* p, void* out, const A* scale, const A* shift, const Dims& d,
             i64 units, int threads) {
  auto run = act<T, A, 0>;
  if (nhwc) {
#define FL_CALL(CC) run = act<T, A, CC>
    FL_BY_CHANNELS(d.C, FL_CALL)
#undef FL_CALL
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (i64 u = 0; u < units; ++u)
    run(nhwc, static_cast<const T*>(p), static_cast<T*>(out), scale, shift, d, u);
}

}  // namespace
}  // namespace fl

using fl::i64;

#define FL_EXPORT(SUFFIX, T, A)                                                                 \
  extern "C" void fl_fwd_##SUFFIX(int nhwc, const void* y, void* p, uint8_t* off, double* s,   \
                                  double* q, const float* sg, FL_DIMS) {                        \
    fl::fwd<T>(nhwc, y, p, off, s, q, sg, fl::Dims{C, H, W, OH, OW, kh, kw}, units, threads);   \
  }                                                                                             \
  extern "C" void fl_act_##SUFFIX(int nhwc, const void* p, void* out, const A* scale,          \
                                  const A* shift, FL_DIMS) {                                    \
    fl::act_all<T, A>(nhwc, p, out, scale, shift, fl::Dims{C, H, W, OH, OW, kh, kw}, units,   \
                      threads);                                                                 \
  }

FL_EXPORT(f32, float, float)
FL_EXPORT(f64, double, double)
FL_EXPORT(bf16, fl::bf16, float)
