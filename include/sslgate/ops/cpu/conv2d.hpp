#pragma once
// CPU 2-D convolution kernels, NCHW, float and double, no bias.
//
//   conv2d_forward          y  = conv(x, w)          (assigns y)
//   conv2d_backward_data    dx += conv^T(dy, w)      (adds)
//   conv2d_backward_weight  dw += corr(dy, x)        (adds)
//
// Algorithm selection (float; double always takes the im2col + Eigen path, it is for gradient checks):
//   * 3x3, stride 1, >= 16 channels in and out (use_winograd)
//                        -> Winograd F(4,3) (points 0, +-1, +-2, inf) for forward, backward-data
//                           (a 3x3 stride-1 conv of dy with the flipped, transposed weights, padding 2-p)
//                           and backward-weight (transform-domain outer products, inverse-transformed).
//                           Measured (1 thread, batch 64) 1.9x faster than our direct kernel at
//                           64ch 32x32, 2.2x at 128ch 16x16, 2.4x at 256ch 8x8 and 4x at 512ch 4x4 (one
//                           6x6 tile per image, no padding waste), so there is no size cut-off.
//                           Forward and backward-data take F(3,3) (points 0, 1, -1, 2, inf) instead
//                           where its 3x3 tiles need fewer products (wino_tile_size: 9x9, 6x6, 5x5
//                           maps; ~30% fewer at 9x9 and 5x5).
//                           Schedules: per-thread chunks of tiles when the transformed filters U are
//                           small; "panel mode" when U > 4 MB and all tiles' transforms fit in 24 MB
//                           (8x8 and 4x4 maps, 256-512 channels): filters are transformed per 64-channel
//                           output panel right before use, so U never goes to memory.
//   * 1x1, no padding, >= 16 output pixels (forward) -> one plain GEMM per image on the NCHW data
//                           (pointwise_forward): the weights as they are, the input sampled at the stride.
//   * everything else    -> implicit GEMM ("direct") on channels-last, stride-phase-split copies with
//                           the same micro-kernel: no im2col matrix, each (ky, kx) is one K-segment;
//                           small maps are grouped over images so weight panels are reused.
// All transform-domain and direct products run on one register-blocked micro-kernel (ukernel below).
// Threads: one OpenMP region per call, fixed static partitions, reductions in fixed order, so the
// result is bitwise repeatable for a given thread count.
#include <sslgate/core/error.hpp>

#include <Eigen/Core>
#include <omp.h>
#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <array>
#include <utility>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(__SSE__)
#include <immintrin.h>
#endif

namespace sslgate::ops::cpu {

struct conv2d_params {  // x: [n, c_in, h, w], w: [c_out, c_in, kh, kw] -> y: [n, c_out, out_h(), out_w()]
  int n, c_in, h, w, c_out, kh, kw, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;

  int out_h() const { return (h + 2 * pad_h - kh) / stride_h + 1; }
  int out_w() const { return (w + 2 * pad_w - kw) / stride_w + 1; }

  void validate() const {
    SSLGATE_CHECK(n > 0 && c_in > 0 && h > 0 && w > 0 && c_out > 0, value_error, "conv2d",
                  "sizes must be positive, got n={} c_in={} h={} w={} c_out={}", n, c_in, h, w, c_out);
    SSLGATE_CHECK(kh > 0 && kw > 0, value_error, "conv2d", "kernel must be positive, got {}x{}", kh, kw);
    SSLGATE_CHECK(stride_h > 0 && stride_w > 0, value_error, "conv2d", "stride must be positive, got {}x{}",
                  stride_h, stride_w);
    SSLGATE_CHECK(pad_h >= 0 && pad_w >= 0, value_error, "conv2d", "padding must be >= 0, got {}x{}", pad_h,
                  pad_w);
    SSLGATE_CHECK(h + 2 * pad_h >= kh && w + 2 * pad_w >= kw, value_error, "conv2d",
                  "kernel {}x{} is larger than the padded input {}x{} (input {}x{}, padding {}x{}): output "
                  "size would be <= 0",
                  kh, kw, h + 2 * pad_h, w + 2 * pad_w, h, w, pad_h, pad_w);
  }
};

// ---------------------------------------------------------------------------------------------
// Scalar references (the test oracle): the plain 7-deep loops, accumulated in double.
// ---------------------------------------------------------------------------------------------
template <class T>
void conv2d_forward_reference(T* y, const T* x, const T* w, const conv2d_params& p) {
  p.validate();
  const int oh = p.out_h(), ow = p.out_w();
  for (int n = 0; n < p.n; ++n)
    for (int co = 0; co < p.c_out; ++co)
      for (int oy = 0; oy < oh; ++oy)
        for (int ox = 0; ox < ow; ++ox) {
          double acc = 0;
          for (int ci = 0; ci < p.c_in; ++ci)
            for (int ky = 0; ky < p.kh; ++ky)
              for (int kx = 0; kx < p.kw; ++kx) {
                const int iy = oy * p.stride_h + ky - p.pad_h, ix = ox * p.stride_w + kx - p.pad_w;
                if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) continue;
                acc += double(x[((std::size_t(n) * p.c_in + ci) * p.h + iy) * p.w + ix]) *
                       double(w[((std::size_t(co) * p.c_in + ci) * p.kh + ky) * p.kw + kx]);
              }
          y[((std::size_t(n) * p.c_out + co) * oh + oy) * ow + ox] = T(acc);
        }
}

template <class T>
void conv2d_backward_data_reference(T* dx, const T* dy, const T* w, const conv2d_params& p) {
  p.validate();
  const int oh = p.out_h(), ow = p.out_w();
  for (int n = 0; n < p.n; ++n)
    for (int ci = 0; ci < p.c_in; ++ci)
      for (int iy = 0; iy < p.h; ++iy)
        for (int ix = 0; ix < p.w; ++ix) {
          double acc = 0;
          for (int co = 0; co < p.c_out; ++co)
            for (int ky = 0; ky < p.kh; ++ky)
              for (int kx = 0; kx < p.kw; ++kx) {
                const int ty = iy + p.pad_h - ky, tx = ix + p.pad_w - kx;
                if (ty < 0 || tx < 0 || ty % p.stride_h || tx % p.stride_w) continue;
                const int oy = ty / p.stride_h, ox = tx / p.stride_w;
                if (oy >= oh || ox >= ow) continue;
                acc += double(dy[((std::size_t(n) * p.c_out + co) * oh + oy) * ow + ox]) *
                       double(w[((std::size_t(co) * p.c_in + ci) * p.kh + ky) * p.kw + kx]);
              }
          dx[((std::size_t(n) * p.c_in + ci) * p.h + iy) * p.w + ix] += T(acc);
        }
}

template <class T>
void conv2d_backward_weight_reference(T* dw, const T* dy, const T* x, const conv2d_params& p) {
  p.validate();
  const int oh = p.out_h(), ow = p.out_w();
  for (int co = 0; co < p.c_out; ++co)
    for (int ci = 0; ci < p.c_in; ++ci)
      for (int ky = 0; ky < p.kh; ++ky)
        for (int kx = 0; kx < p.kw; ++kx) {
          double acc = 0;
          for (int n = 0; n < p.n; ++n)
            for (int oy = 0; oy < oh; ++oy)
              for (int ox = 0; ox < ow; ++ox) {
                const int iy = oy * p.stride_h + ky - p.pad_h, ix = ox * p.stride_w + kx - p.pad_w;
                if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) continue;
                acc += double(dy[((std::size_t(n) * p.c_out + co) * oh + oy) * ow + ox]) *
                       double(x[((std::size_t(n) * p.c_in + ci) * p.h + iy) * p.w + ix]);
              }
          dw[((std::size_t(co) * p.c_in + ci) * p.kh + ky) * p.kw + kx] += T(acc);
        }
}

namespace detail {

// ---------------------------------------------------------------------------------------------
// Scratch: 64-byte aligned, grown on demand, kept per thread (OpenMP pool threads persist).
// ---------------------------------------------------------------------------------------------
struct aligned_buffer {
  void* ptr = nullptr;
  std::size_t bytes = 0;
  aligned_buffer() = default;
  aligned_buffer(const aligned_buffer&) = delete;
  aligned_buffer& operator=(const aligned_buffer&) = delete;
  ~aligned_buffer() { std::free(ptr); }
  template <class T>
  T* get(std::size_t count) {
    std::size_t need = ((count * sizeof(T) + 63) / 64) * 64;
    if (need > bytes) {
      std::free(ptr);
      // Big buffers on 2 MB pages where the kernel gives them on request: the transform-domain data and the
      // kept weights (tens of MB, read in strided slices) otherwise miss the TLB (measured, batch 64: gated
      // blocks at 9x9 and 5x5 5-15% faster, the dense ResNet-18 eval forward 10%).
      const bool huge = need >= (std::size_t(4) << 20);
      if (huge) need = (need + (std::size_t(2) << 20) - 1) / (std::size_t(2) << 20) * (std::size_t(2) << 20);
      ptr = std::aligned_alloc(huge ? std::size_t(2) << 20 : 64, need);
      if (!ptr) {
        bytes = 0;
        throw std::bad_alloc();
      }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
      if (huge) madvise(ptr, need, MADV_HUGEPAGE);  // a request: without it (or where refused) 4 KB pages
#endif
      bytes = need;
    }
    return static_cast<T*>(ptr);
  }
};

// Slots: the first four are per-thread working space, the rest are shared buffers owned by the
// calling thread (allocated before the parallel region).
enum scratch_slot { slot_a, slot_b, slot_c, slot_d, slot_wt, slot_u, slot_v, slot_m, slot_count };
inline aligned_buffer& scratch(int slot) {
  thread_local aligned_buffer bufs[slot_count];
  return bufs[slot];
}

// Static contiguous split of [0, total) into nth parts: part tid is [lo, hi).
inline void split_range(long total, int nth, int tid, long& lo, long& hi) {
  const long q = total / nth, r = total % nth;
  lo = tid * q + std::min<long>(tid, r);
  hi = lo + q + (tid < r ? 1 : 0);
}

inline std::size_t round_up(std::size_t v, std::size_t m) { return (v + m - 1) / m * m; }

using vf = xsimd::batch<float>;
constexpr int vw = int(vf::size);  // lanes: 16 with AVX-512

#if defined(__AVX512F__)
// r[k] = column k of the 16x16 block whose rows were r[0..15]: 4 shuffle stages instead of 256 scalar moves.
inline void transpose16(__m512* r) {
  __m512 t[16];
  for (int k = 0; k < 16; k += 2) {
    t[k] = _mm512_unpacklo_ps(r[k], r[k + 1]);
    t[k + 1] = _mm512_unpackhi_ps(r[k], r[k + 1]);
  }
  for (int k = 0; k < 16; k += 4) {
    r[k] = _mm512_shuffle_ps(t[k], t[k + 2], 0x44);
    r[k + 1] = _mm512_shuffle_ps(t[k], t[k + 2], 0xEE);
    r[k + 2] = _mm512_shuffle_ps(t[k + 1], t[k + 3], 0x44);
    r[k + 3] = _mm512_shuffle_ps(t[k + 1], t[k + 3], 0xEE);
  }
  for (int k = 0; k < 4; ++k) {
    t[k] = _mm512_shuffle_f32x4(r[k], r[k + 4], 0x88);
    t[k + 4] = _mm512_shuffle_f32x4(r[k], r[k + 4], 0xDD);
    t[k + 8] = _mm512_shuffle_f32x4(r[k + 8], r[k + 12], 0x88);
    t[k + 12] = _mm512_shuffle_f32x4(r[k + 8], r[k + 12], 0xDD);
  }
  for (int k = 0; k < 4; ++k) {
    r[k] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0x88);
    r[k + 8] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0xDD);
    r[k + 4] = _mm512_shuffle_f32x4(t[k + 4], t[k + 12], 0x88);
    r[k + 12] = _mm512_shuffle_f32x4(t[k + 4], t[k + 12], 0xDD);
  }
}
#elif defined(__AVX2__)
// r[k] = column k of the 8x8 block whose rows were r[0..7].
inline void transpose8(__m256* r) {
  __m256 t[8];
  for (int k = 0; k < 8; k += 2) {
    t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
    t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
  }
  for (int k = 0; k < 8; k += 4) {
    r[k] = _mm256_shuffle_ps(t[k], t[k + 2], 0x44);
    r[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], 0xEE);
    r[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0x44);
    r[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0xEE);
  }
  for (int k = 0; k < 4; ++k) {
    t[k] = _mm256_permute2f128_ps(r[k], r[k + 4], 0x20);
    t[k + 4] = _mm256_permute2f128_ps(r[k], r[k + 4], 0x31);
  }
  for (int k = 0; k < 8; ++k) r[k] = t[k];
}
// Lanes [0, n) set: the mask of a partial vector's loads and stores.
inline __m256i lane_mask8(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
#endif

#if defined(__AVX512F__) || defined(__AVX2__)
// vw x vw register blocks of vf: the primitives of transpose and of the gated kernels' pack_rows and
// transpose_down.
namespace blk {
using reg = vf::register_type;
#if defined(__AVX512F__)
inline void transpose(reg* r) { transpose16(r); }
inline __mmask16 lanes(int lo, int hi) { return __mmask16(((1u << hi) - 1) & ~((1u << lo) - 1)); }  // [lo, hi)
inline vf load_first(const float* p, int n) { return n == 16 ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(lanes(0, n), p); }
inline void store_lanes(float* p, int lo, int hi, reg v) { _mm512_mask_storeu_ps(p, lanes(lo, hi), v); }
inline void store_first(float* p, int n, reg v) { n == 16 ? _mm512_storeu_ps(p, v) : store_lanes(p, 0, n, v); }
inline void stream(float* p, reg v) { _mm512_stream_ps(p, v); }
#else
inline void transpose(reg* r) { transpose8(r); }
inline __m256i lanes(int lo, int hi) { return _mm256_andnot_si256(lane_mask8(lo), lane_mask8(hi)); }
inline vf load_first(const float* p, int n) { return n == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, lane_mask8(n)); }
inline void store_lanes(float* p, int lo, int hi, reg v) { _mm256_maskstore_ps(p, lanes(lo, hi), v); }
// A whole vector stored plainly: AVX2's masked store is microcoded on AMD cores (a Zen 3 host's dense 64@34 block
// took 1.15x the time with every transposed vector stored under a mask, the gated one 1.06x).
inline void store_first(float* p, int n, reg v) { n == 8 ? _mm256_storeu_ps(p, v) : store_lanes(p, 0, n, v); }
inline void stream(float* p, reg v) { _mm256_stream_ps(p, v); }
#endif
}  // namespace blk
#endif

// col(j)[i] = / += src[i][j], i < rows, j < cols: column j of src goes to the row that col(j) points to; with
// sums, also sums[i] += the sum over j of src[i][j].
template <class T, class Col>
inline void transpose_cols(Col col, const T* src, std::ptrdiff_t lds, int rows, int cols, bool accumulate, T* sums = nullptr) {
#if defined(__AVX512F__) || defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>) {
    // vw x vw blocks in registers. Edge blocks (the 17-, 9- and 5-wide rows of the CIFAR maps) load and store
    // under masks rather than falling back to scalar moves.
    for (int i0 = 0; i0 < rows; i0 += vw) {
      const int nr = std::min(vw, rows - i0);
      for (int j0 = 0; j0 < cols; j0 += vw) {
        const int nc = std::min(vw, cols - j0);
        blk::reg r[vw];
        for (int k = 0; k < vw; ++k) r[k] = k < nr ? blk::load_first(src + (i0 + k) * lds + j0, nc) : vf(0.f);
        blk::transpose(r);
        vf sum(0.f);
        for (int k = 0; k < nc; ++k) {  // r[k] is now column j0 + k
          float* d = col(j0 + k) + i0;
          if (sums) sum += vf(r[k]);
          if (accumulate) r[k] = blk::load_first(d, nr) + vf(r[k]);
          blk::store_first(d, nr, r[k]);
        }
        if (sums) blk::store_first(sums + i0, nr, blk::load_first(sums + i0, nr) + sum);
      }
    }
    return;
  }
#endif
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) {
      T v = src[i * lds + j];
      T& d = col(j)[i];
      d = accumulate ? d + v : v;
      if (sums) sums[i] += v;
    }
}
// dst[j][i] = / += src[i][j], i < rows, j < cols; with sums, also sums[i] += the sum over j of src[i][j].
template <class T>
inline void transpose(T* dst, std::ptrdiff_t ldd, const T* src, std::ptrdiff_t lds, int rows, int cols,
                      bool accumulate, T* sums = nullptr) {
  transpose_cols([=](int j) { return dst + j * ldd; }, src, lds, rows, cols, accumulate, sums);
}

// ---------------------------------------------------------------------------------------------
// Fallback: im2col + Eigen GEMM. Any T, any shape. Used for double and when no faster path fits.
// ---------------------------------------------------------------------------------------------
template <class T>
using rmat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// col[(ci, ky, kx)][oy * ow + ox] = x[ci][oy*s + ky - p][ox*s + kx - p] (0 outside)
template <class T>
void im2col(T* col, const T* x, const conv2d_params& p) {
  const int oh = p.out_h(), ow = p.out_w();
  for (int ci = 0; ci < p.c_in; ++ci)
    for (int ky = 0; ky < p.kh; ++ky)
      for (int kx = 0; kx < p.kw; ++kx) {
        T* c = col + ((std::size_t(ci) * p.kh + ky) * p.kw + kx) * oh * ow;
        for (int oy = 0; oy < oh; ++oy) {
          const int iy = oy * p.stride_h + ky - p.pad_h;
          for (int ox = 0; ox < ow; ++ox) {
            const int ix = ox * p.stride_w + kx - p.pad_w;
            c[oy * ow + ox] = (iy >= 0 && iy < p.h && ix >= 0 && ix < p.w)
                                  ? x[(std::size_t(ci) * p.h + iy) * p.w + ix]
                                  : T(0);
          }
        }
      }
}

template <class T>
void col2im_add(T* x, const T* col, const conv2d_params& p) {
  const int oh = p.out_h(), ow = p.out_w();
  for (int ci = 0; ci < p.c_in; ++ci)
    for (int ky = 0; ky < p.kh; ++ky)
      for (int kx = 0; kx < p.kw; ++kx) {
        const T* c = col + ((std::size_t(ci) * p.kh + ky) * p.kw + kx) * oh * ow;
        for (int oy = 0; oy < oh; ++oy) {
          const int iy = oy * p.stride_h + ky - p.pad_h;
          if (iy < 0 || iy >= p.h) continue;
          for (int ox = 0; ox < ow; ++ox) {
            const int ix = ox * p.stride_w + kx - p.pad_w;
            if (ix >= 0 && ix < p.w) x[(std::size_t(ci) * p.h + iy) * p.w + ix] += c[oy * ow + ox];
          }
        }
      }
}

template <class T>
void im2col_forward(T* y, const T* x, const T* w, const conv2d_params& p) {
  const long kdim = long(p.c_in) * p.kh * p.kw, pos = long(p.out_h()) * p.out_w();
  const long xs = long(p.c_in) * p.h * p.w, ys = long(p.c_out) * pos;
#pragma omp parallel num_threads(omp_get_max_threads())
  {
    long lo, hi;
    split_range(p.n, omp_get_num_threads(), omp_get_thread_num(), lo, hi);
    T* col = scratch(slot_a).get<T>(kdim * pos);
    Eigen::Map<const rmat<T>> wm(w, p.c_out, kdim);
    Eigen::Map<const rmat<T>> cm(col, kdim, pos);
    for (long n = lo; n < hi; ++n) {
      im2col(col, x + n * xs, p);
      Eigen::Map<rmat<T>> ym(y + n * ys, p.c_out, pos);
      ym.noalias() = wm * cm;
    }
  }
}

template <class T>
void im2col_backward_data(T* dx, const T* dy, const T* w, const conv2d_params& p) {
  const long kdim = long(p.c_in) * p.kh * p.kw, pos = long(p.out_h()) * p.out_w();
  const long xs = long(p.c_in) * p.h * p.w, ys = long(p.c_out) * pos;
#pragma omp parallel num_threads(omp_get_max_threads())
  {
    long lo, hi;
    split_range(p.n, omp_get_num_threads(), omp_get_thread_num(), lo, hi);
    T* col = scratch(slot_a).get<T>(kdim * pos);
    Eigen::Map<const rmat<T>> wm(w, p.c_out, kdim);
    Eigen::Map<rmat<T>> cm(col, kdim, pos);
    for (long n = lo; n < hi; ++n) {
      Eigen::Map<const rmat<T>> dym(dy + n * ys, p.c_out, pos);
      cm.noalias() = wm.transpose() * dym;
      col2im_add(dx + n * xs, col, p);
    }
  }
}

template <class T>
void im2col_backward_weight(T* dw, const T* dy, const T* x, const conv2d_params& p) {
  const long kdim = long(p.c_in) * p.kh * p.kw, pos = long(p.out_h()) * p.out_w();
  const long xs = long(p.c_in) * p.h * p.w, ys = long(p.c_out) * pos;
  const int nth = omp_get_max_threads();
  T* part = scratch(slot_b).get<T>(std::size_t(nth) * p.c_out * kdim);  // per-thread partial sums
#pragma omp parallel num_threads(nth)
  {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    long lo, hi;
    split_range(p.n, nt, tid, lo, hi);
    T* col = scratch(slot_a).get<T>(kdim * pos);
    Eigen::Map<rmat<T>> pm(part + std::size_t(tid) * p.c_out * kdim, p.c_out, kdim);
    pm.setZero();
    Eigen::Map<const rmat<T>> cm(col, kdim, pos);
    for (long n = lo; n < hi; ++n) {
      im2col(col, x + n * xs, p);
      Eigen::Map<const rmat<T>> dym(dy + n * ys, p.c_out, pos);
      pm.noalias() += dym * cm.transpose();
    }
#pragma omp barrier
    // Reduce in thread order (deterministic), each thread owns a slice of dw.
    long e0, e1;
    split_range(long(p.c_out) * kdim, nt, tid, e0, e1);
    for (long e = e0; e < e1; ++e) {
      T s = 0;
      for (int t = 0; t < nt; ++t) s += part[std::size_t(t) * p.c_out * kdim + e];
      dw[e] += s;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Float fast paths.
// ---------------------------------------------------------------------------------------------
// Register block of the micro-kernel: MR broadcast rows x NV vectors. AVX-512: 6 x 64 floats, 24 of
// the 32 zmm registers, 10 loads per 24 FMAs; measured 138 GFLOP/s on the transform-domain products
// against 111 for 12 x 32 and 118 for 8 x 48. Narrower ISAs (16 registers): 6 or 4 x 2 vectors.
constexpr int ukr_nv = vw >= 16 ? 4 : 2;
constexpr int ukr_mr = vw >= 16 ? 6 : (vw == 8 ? 6 : 4);

// Micro-kernel. Naive loop:
//   for m < MR, n < NV*vw:  c[m*ldc + n] (+)= sum_s sum_k a_s[m*a_rs + k*a_ks] * b_s[k*b_ks + n]
// over segments s (one per kernel tap in the direct conv, one in total for the Winograd products).
struct useg {
  const float* a;
  const float* b;
};

// The micro-kernels' half-vector column (see ukernel's H): MR 8-lane accumulators, or nothing.
#if defined(__AVX512F__)
inline constexpr bool has_half = vw == 16;
#else
inline constexpr bool has_half = false;
#endif

// Orders non-temporal stores (blk::stream) before what follows them.
inline void stream_fence() {
#if defined(__SSE__)
  _mm_sfence();
#endif
}

template <bool H, int MR>
struct half_acc {
  struct none {};
  void init(int, const float*) {}
  none load(const float*) const { return {}; }
  void fma(int, const vf&, none) {}
  void store(int, float*) const {}
};
#if defined(__AVX512F__)
template <int MR>
struct half_acc<true, MR> {
  __m256 acc[MR];
  void init(int m, const float* c) { acc[m] = c ? _mm256_loadu_ps(c) : _mm256_setzero_ps(); }
  __m256 load(const float* b) const { return _mm256_loadu_ps(b); }
  void fma(int m, const vf& a, __m256 b) { acc[m] = _mm256_fmadd_ps(_mm512_castps512_ps256(a), b, acc[m]); }
  void store(int m, float* c) const {
    _mm256_storeu_ps(c, acc[m]);
    _mm256_storeu_ps(c + 8, _mm256_setzero_ps());
  }
};
#endif
// A's rows: affine (row m at a + m * rs), or listed (row m at a + off[m]: any positions, e.g. a direct conv's
// output positions without the extended grid's extra columns).
struct affine_rows {
  std::ptrdiff_t rs;
  std::ptrdiff_t at(int m) const { return m * rs; }
};
template <int MR>
struct listed_rows {
  std::ptrdiff_t off[MR];
  std::ptrdiff_t at(int m) const { return off[m]; }
};

// H (AVX-512 only): the last of the NV column vectors is computed on its low half only (8 lanes, 256-bit
// FMAs at twice the rate of 512-bit ones on cores with 256-bit units) and its high half stored as 0: for
// column counts just past a multiple of 16 (the gated kernels' per-sample channel counts).
template <int MR, int NV, bool H, class Rows>
inline void ukernel_body(float* c, std::ptrdiff_t ldc, const useg* segs, int nseg, const Rows& rows,
                         std::ptrdiff_t a_ks, std::ptrdiff_t b_ks, int k, bool accumulate) {
  constexpr int NF = H ? NV - 1 : NV;  // whole vectors
  vf acc[MR][NF > 0 ? NF : 1];
  half_acc<H, MR> hacc;
#pragma GCC unroll 16
  for (int m = 0; m < MR; ++m) {
#pragma GCC unroll 4
    for (int v = 0; v < NF; ++v)
      acc[m][v] = accumulate ? vf::load_unaligned(c + m * ldc + v * vw) : vf(0.f);
    hacc.init(m, accumulate ? c + m * ldc + NF * vw : nullptr);
  }
  for (int s = 0; s < nseg; ++s) {
    const float* a = segs[s].a;
    const float* b = segs[s].b;
    for (int kk = 0; kk < k; ++kk) {
      vf bv[NF > 0 ? NF : 1];
#pragma GCC unroll 4
      for (int v = 0; v < NF; ++v) bv[v] = vf::load_unaligned(b + v * vw);
      const auto bh = hacc.load(b + NF * vw);
#pragma GCC unroll 16
      for (int m = 0; m < MR; ++m) {
        const vf av(a[rows.at(m)]);
#pragma GCC unroll 4
        for (int v = 0; v < NF; ++v) acc[m][v] = xsimd::fma(av, bv[v], acc[m][v]);
        hacc.fma(m, av, bh);
      }
      a += a_ks;
      b += b_ks;
    }
  }
#pragma GCC unroll 16
  for (int m = 0; m < MR; ++m) {
#pragma GCC unroll 4
    for (int v = 0; v < NF; ++v) acc[m][v].store_unaligned(c + m * ldc + v * vw);
    hacc.store(m, c + m * ldc + NF * vw);
  }
}

template <int MR, int NV, bool H = false>
inline void ukernel(float* c, std::ptrdiff_t ldc, const useg* segs, int nseg, std::ptrdiff_t a_rs,
                    std::ptrdiff_t a_ks, std::ptrdiff_t b_ks, int k, bool accumulate) {
  ukernel_body<MR, NV, H>(c, ldc, segs, nseg, affine_rows{a_rs}, a_ks, b_ks, k, accumulate);
}
// Rows listed: A(m, k) = a_s[off[m] + k].
template <int MR, int NV, bool H = false>
inline void ukernel_listed(float* c, std::ptrdiff_t ldc, const useg* segs, int nseg, const std::ptrdiff_t* off,
                           std::ptrdiff_t b_ks, int k, bool accumulate) {
  listed_rows<MR> rows;
  for (int m = 0; m < MR; ++m) rows.off[m] = off[m];
  ukernel_body<MR, NV, H>(c, ldc, segs, nseg, rows, 1, b_ks, k, accumulate);
}

using ukernel_fn = void (*)(float*, std::ptrdiff_t, const useg*, int, std::ptrdiff_t, std::ptrdiff_t,
                            std::ptrdiff_t, int, bool);
using ukernel_listed_fn = void (*)(float*, std::ptrdiff_t, const useg*, int, const std::ptrdiff_t*, std::ptrdiff_t, int, bool);
// Tables [nv - 1][mr - 1] of the micro-kernels, affine or listed rows (L).
template <bool H, bool L, int NV, int... M>
constexpr auto make_ukernel_table(std::integer_sequence<int, M...>) {
  if constexpr (L) return std::array<ukernel_listed_fn, sizeof...(M)>{&ukernel_listed<M + 1, NV, H>...};
  else return std::array<ukernel_fn, sizeof...(M)>{&ukernel<M + 1, NV, H>...};
}
template <bool H, bool L, int... NV>
constexpr auto make_ukernel_tables(std::integer_sequence<int, NV...>) {
  using row = decltype(make_ukernel_table<H, L, 1>(std::make_integer_sequence<int, ukr_mr>{}));
  return std::array<row, sizeof...(NV)>{make_ukernel_table<H, L, NV + 1>(std::make_integer_sequence<int, ukr_mr>{})...};
}
template <bool L>
inline auto pick_ukernel_of(int mr, int nv, bool half) {
  static constexpr auto t = make_ukernel_tables<false, L>(std::make_integer_sequence<int, ukr_nv>{});
  static constexpr auto th = make_ukernel_tables<has_half, L>(std::make_integer_sequence<int, ukr_nv>{});
  return (half ? th : t)[nv - 1][mr - 1];
}
inline ukernel_fn pick_ukernel(int mr, int nv, bool half = false) { return pick_ukernel_of<false>(mr, nv, half); }
inline ukernel_listed_fn pick_ukernel_listed(int mr, int nv, bool half = false) { return pick_ukernel_of<true>(mr, nv, half); }

// C[m][n] (+)= sum_k A(m, k) B(k, n), A(m, k) = a[m*a_rs + k*a_ks], B(k, n) = b[k*b_ks + n],
// n a multiple of vw. Loop order: column panels outside so the B panel stays in L1/L2.
// b_ks == 0 means B is panel-packed (see panel_at) with k rows. K is cut into blocks of gemm_kc rows
// so the B block a row of micro-kernel calls shares (gemm_kc x 64 floats, 24 KB) stays in L1.
constexpr int gemm_kc = std::max(16, 6144 / (ukr_nv * vw));
inline void gemm(int m, int n, int k, const float* a, std::ptrdiff_t a_rs, std::ptrdiff_t a_ks, const float* b,
                 std::ptrdiff_t b_ks, float* c, std::ptrdiff_t ldc, bool accumulate) {
  for (int n0 = 0; n0 < n; n0 += ukr_nv * vw) {
    const int nv = std::min(ukr_nv, (n - n0) / vw);
    const float* bp = b_ks ? b + n0 : b + std::ptrdiff_t(n0) * k;
    const std::ptrdiff_t bk = b_ks ? b_ks : nv * vw;
    // Even split of k (no sliver block at the end).
    const int nkb = (k + gemm_kc - 1) / gemm_kc, kc = (k + nkb - 1) / std::max(1, nkb);
    for (int k0 = 0; k0 < k; k0 += kc) {
      const int kl = std::min(kc, k - k0);
      for (int m0 = 0; m0 < m; m0 += ukr_mr) {
        const int mr = std::min(ukr_mr, m - m0);
        const useg s{a + m0 * a_rs + k0 * a_ks, bp + k0 * bk};
        pick_ukernel(mr, nv)(c + m0 * ldc + n0, ldc, &s, 1, a_rs, a_ks, bk, kl, accumulate || k0 > 0);
      }
    }
  }
}

// ----- Winograd F(4,3): Y = A^T [(G g G^T) . (B^T d B)] A, points 0, +-1, +-2, inf -----------------
// 1-D transforms; the 2-D ones apply them to columns, then rows.
inline void wino_in_1d(const vf* d, vf* v) {  // B^T d, 6 -> 6
  const vf t42 = d[4] - d[2], t31 = d[3] - d[1];
  v[0] = xsimd::fma(vf(4.f), d[0], xsimd::fnma(vf(5.f), d[2], d[4]));
  v[1] = xsimd::fnma(vf(4.f), d[1] + d[2], d[3] + d[4]);
  v[2] = xsimd::fma(vf(4.f), d[1] - d[2], d[4] - d[3]);
  v[3] = xsimd::fma(vf(2.f), t31, t42);
  v[4] = xsimd::fnma(vf(2.f), t31, t42);
  v[5] = xsimd::fma(vf(4.f), d[1], xsimd::fnma(vf(5.f), d[3], d[5]));
}
template <int M>
inline void wino_edge_in_1d(const vf* d, vf* v) {  // F(2,3)'s B^T d scaled to F(M,3)'s weights, 4 -> 4 (see wino_edges)
  v[0] = vf(M == 4 ? 4.f : 2.f) * (d[0] - d[2]);
  v[1] = vf(M == 4 ? -3.f : -1.f) * (d[1] + d[2]);
  v[2] = vf(3.f) * (d[1] - d[2]);
  v[3] = d[1] - d[3];
}
inline void wino_edge_out_1d(const vf* m, vf* o) {  // F(2,3)'s A^T m, 4 -> 2
  o[0] = m[0] + m[1] + m[2];
  o[1] = m[1] - m[2] - m[3];
}
inline void wino_out_1d(const vf* m, vf* o) {  // A^T m, 6 -> 4
  const vf s12 = m[1] + m[2], d12 = m[1] - m[2], s34 = m[3] + m[4], d34 = m[3] - m[4];
  o[0] = m[0] + s12 + s34;
  o[1] = xsimd::fma(vf(2.f), d34, d12);
  o[2] = xsimd::fma(vf(4.f), s34, s12);
  o[3] = xsimd::fma(vf(8.f), d34, d12) + m[5];
}
inline void wino_w_1d(const vf* g, vf* u) {  // G g, 3 -> 6
  const vf s02 = g[0] + g[2];
  u[0] = g[0] * vf(0.25f);
  u[1] = (s02 + g[1]) * vf(-1.f / 6.f);
  u[2] = (s02 - g[1]) * vf(-1.f / 6.f);
  const vf e = xsimd::fma(vf(1.f / 24.f), g[0], g[2] * vf(1.f / 6.f));
  u[3] = xsimd::fma(vf(1.f / 12.f), g[1], e);
  u[4] = xsimd::fnma(vf(1.f / 12.f), g[1], e);
  u[5] = g[2];
}
inline void wino_dy_1d(const vf* e, vf* m) {  // A e, 4 -> 6 (adjoint of wino_out_1d)
  const vf s02 = e[0] + e[2], s13 = e[1] + e[3];
  const vf q02 = xsimd::fma(vf(4.f), e[2], e[0]), q13 = xsimd::fma(vf(4.f), e[3], e[1]) * vf(2.f);
  m[0] = e[0];
  m[1] = s02 + s13;
  m[2] = s02 - s13;
  m[3] = q02 + q13;
  m[4] = q02 - q13;
  m[5] = e[3];
}
inline void wino_dw_1d(const vf* u, vf* g) {  // G^T u, 6 -> 3 (adjoint of wino_w_1d)
  const vf s12 = u[1] + u[2], d12 = u[2] - u[1], s34 = u[3] + u[4], d34 = u[3] - u[4];
  g[0] = xsimd::fma(vf(0.25f), u[0], xsimd::fma(vf(1.f / 24.f), s34, s12 * vf(-1.f / 6.f)));
  g[1] = xsimd::fma(vf(1.f / 6.f), d12, d34 * vf(1.f / 12.f));
  g[2] = xsimd::fma(vf(1.f / 6.f), s34 - s12, u[5]);
}

// ----- Winograd F(3,3), points 0, 1, -1, 2, inf (5x5 input tiles, 25 products per tile) ---------------
// For maps a multiple of 3 wide, or just over one of 4, it needs ~30% fewer products than F(4,3): 9x9 takes
// 9 tiles either way (225 products against 324), 5x5 takes 4 (100 against 144). Used by the forward-style
// convolutions (forward, backward-data); the weight gradient keeps F(4,3).
inline void wino3_in_1d(const vf* d, vf* v) {  // B^T d, 5 -> 5
  const vf t31 = d[3] - d[1];
  v[0] = xsimd::fma(vf(2.f), d[0] - d[2], t31);
  v[1] = d[3] - d[2] - vf(2.f) * d[1];
  v[2] = xsimd::fnma(vf(3.f), d[2], xsimd::fma(vf(2.f), d[1], d[3]));
  v[3] = t31;
  v[4] = xsimd::fnma(vf(2.f), d[3], xsimd::fma(vf(2.f), d[1], d[4] - d[2]));
}
inline void wino3_out_1d(const vf* m, vf* o) {  // A^T m, 5 -> 3
  const vf s12 = m[1] + m[2];
  o[0] = m[0] + s12 + m[3];
  o[1] = xsimd::fma(vf(2.f), m[3], m[1] - m[2]);
  o[2] = xsimd::fma(vf(4.f), m[3], s12) + m[4];
}
inline void wino3_w_1d(const vf* g, vf* u) {  // G g, 3 -> 5
  const vf s02 = g[0] + g[2];
  u[0] = g[0] * vf(0.5f);
  u[1] = (s02 + g[1]) * vf(-0.5f);
  u[2] = (s02 - g[1]) * vf(-1.f / 6.f);
  u[3] = xsimd::fma(vf(1.f / 6.f), g[0], xsimd::fma(vf(1.f / 3.f), g[1], g[2] * vf(2.f / 3.f)));
  u[4] = g[2];
}
// F(M,3): tile of M x M outputs from (M + 2) x (M + 2) inputs.
template <int M>
struct wino_tile;
template <>
struct wino_tile<4> {
  static void in(const vf* d, vf* v) { wino_in_1d(d, v); }
  static void out(const vf* m, vf* o) { wino_out_1d(m, o); }
  static void weight(const vf* g, vf* u) { wino_w_1d(g, u); }
};
template <>
struct wino_tile<3> {
  static void in(const vf* d, vf* v) { wino3_in_1d(d, v); }
  static void out(const vf* m, vf* o) { wino3_out_1d(m, o); }
  static void weight(const vf* g, vf* u) { wino3_w_1d(g, u); }
};

// Geometry of a 3x3 stride-1 conv computed with F(m,3), m = 4 or 3 (see wino_tile_size):
// out[Y][X] = sum in[Y+ky-ph][X+kx-pw] g[ky][kx] (ph, pw may be negative: backward-data with padding 3
// crops). Tiles of m x m outputs, tile rows flattened over (image, tile row) so a chunk of work can span
// images (4x4 maps: one tile per image).
struct wino_geom {
  int n, cin, h, w, cout, oh, ow, ph, pw;
  int th, tw, cinp, coutp, m;
  long rows() const { return long(n) * th; }
  int pcols() const { return m * tw + 2; }
  int points() const { return (m + 2) * (m + 2); }  // transform-domain values per tile (xi)
};

// F(2,3) edge tiles. Where an F(m,3) map's last tile column (or row) holds 2 outputs or fewer (34 = 8 x 4 + 2,
// 17 = 5 x 3 + 2), its tiles take F(2,3) in that direction instead of computing m outputs and dropping the rest:
// points 0, 1, -1, inf, a subset of F(m,3)'s (transform points 0, 1, 2 and m + 1), so their products use F(m,3)'s
// transformed weights there and skip its other points (per channel pair at 34x34 2704 products instead of 2916, at
// 17x17 841 instead of 900). F(4,3)'s G rows at those points are 1/4, -1/3, -1/3 and 1 of F(2,3)'s, F(3,3)'s 1/2, -1,
// -1/3 and 1: the edge input transform carries the inverse factors. Used by the gated kernels; x: the last tile
// column, y: the last tile row of the map.
struct wino_edges {
  bool x = false, y = false;
  static wino_edges of(const wino_geom& g) { return {g.ow - g.m * (g.tw - 1) <= 2, g.oh - g.m * (g.th - 1) <= 2}; }
  // Whether the map's tile row `row` is an edge row; the plain F(m,3) tiles that lead it (the edge tiles follow).
  bool edge_row(const wino_geom& g, long row) const { return y && row % g.th == g.th - 1; }
  int plain_tiles(const wino_geom& g, long row) const { return edge_row(g, row) ? 0 : g.tw - (x ? 1 : 0); }
};
// Whether transform point index q (0..m+1, in one direction) of F(m,3) is one of the edge tiles' points.
constexpr bool edge_point(int m, int q) { return q < 3 || q == m + 1; }
// Row stride for transform-domain matrices: a multiple of 256 floats would put the micro-kernel's
// rows in a handful of L1 sets.
inline std::ptrdiff_t padded_ld(int cp) { return cp % 256 == 0 ? cp + vw : cp; }

// Transform-domain products per channel pair of an oh x ow output in F(m,3) tiles.
inline long wino_products(int m, int oh, int ow) { return long((oh + m - 1) / m) * ((ow + m - 1) / m) * (m + 2) * (m + 2); }
// F(3,3) where its tiles need fewer products than F(4,3)'s (the 9x9 and 5x5 maps of the CIFAR ResNets: 225
// against 324 and 100 against 144 per channel pair; 6x6 too), else F(4,3).
inline int wino_tile_size(int oh, int ow) { return wino_products(3, oh, ow) < wino_products(4, oh, ow) ? 3 : 4; }
inline wino_geom make_geom(int n, int cin, int h, int w, int cout, int oh, int ow, int ph, int pw, int m = 4) {
  wino_geom g{n, cin, h, w, cout, oh, ow, ph, pw, (oh + m - 1) / m, (ow + m - 1) / m, 0, 0, m};
  g.cinp = int(round_up(cin, vw));
  g.coutp = int(round_up(cout, vw));
  return g;
}

inline constexpr int copy_lead = 2;  // rows (see wino_pack_input)
// Channels-last copy of the input rows needed by tile rows [r0, r1): per image segment, padded rows
// m*a .. m*b+1, pcols columns, cinp channels, zero outside the image. Returns per-tile-row row pointers. sums:
// if given, sums[k] += channel k's sum over the positions copied.
inline void wino_pack_input(float* buf, const float** row_ptr, const float* in, const wino_geom& g, long r0,
                            long r1, float* sums = nullptr) {
  const int pc = g.pcols();
  const std::ptrdiff_t rs = std::ptrdiff_t(pc) * g.cinp;  // one padded row
  float* dst = buf;
  for (long r = r0; r < r1;) {
    const int img = int(r / g.th), a = int(r % g.th);
    const int b = int(std::min<long>(g.th, a + (r1 - r)));
    const int prow0 = g.m * a, nprow = g.m * (b - a) + 2;
    const float* src = in + std::size_t(img) * g.cin * g.h * g.w;
    const int c_lo = std::max(0, g.pw), c_hi = std::min(pc, g.w + g.pw);
    // Zero only what the copies below leave: rows and columns outside the image, channels past cin.
    for (int q = 0; q < nprow; ++q) {
      float* row = dst + q * rs;
      const int iy = prow0 + q - g.ph;
      if (iy < 0 || iy >= g.h || c_hi <= c_lo) {
        std::memset(row, 0, sizeof(float) * rs);
        continue;
      }
      std::memset(row, 0, sizeof(float) * c_lo * g.cinp);
      std::memset(row + std::ptrdiff_t(c_hi) * g.cinp, 0, sizeof(float) * (pc - c_hi) * g.cinp);
      for (int c = c_lo; c < c_hi && g.cin < g.cinp; ++c) std::memset(row + std::ptrdiff_t(c) * g.cinp + g.cin, 0, sizeof(float) * (g.cinp - g.cin));
    }
    // 16 channels at a time down all rows: 16 input streams (all channels per row would be cin streams at
    // once), each row brought in copy_lead rows ahead: 16 streams of 136 bytes a row (34x34) are more than the
    // hardware prefetcher follows. Measured, one 64-channel 34x34 sample out of cache, 43-53 us without, 26-29
    // with; in-process pairs, the dense and the gated (d 0.25) 64@34 blocks both took 0.978 of the time.
    for (int k0 = 0; k0 < g.cin; k0 += 16)
      for (int q = 0; q < nprow; ++q) {
        const int iy = prow0 + q - g.ph;
        if (const int ly = iy + copy_lead; ly >= 0 && ly < g.h)  // the group's row copy_lead rows ahead
          for (int k = k0; k < std::min(k0 + 16, g.cin); ++k) {
            const char* row = reinterpret_cast<const char*>(src + std::ptrdiff_t(k) * g.h * g.w + std::ptrdiff_t(ly) * g.w);
            for (int b = 0; b < g.w * int(sizeof(float)); b += 64) __builtin_prefetch(row + b, 0, 3);
            __builtin_prefetch(row + g.w * sizeof(float) - 1, 0, 3);
          }
        if (iy < 0 || iy >= g.h || c_hi <= c_lo) continue;
        transpose(dst + q * rs + std::ptrdiff_t(c_lo) * g.cinp + k0, g.cinp,
                  src + std::ptrdiff_t(k0) * g.h * g.w + std::ptrdiff_t(iy) * g.w + (c_lo - g.pw), std::ptrdiff_t(g.h) * g.w,
                  std::min(16, g.cin - k0), c_hi - c_lo, false, sums ? sums + k0 : nullptr);
      }
    for (int t = a; t < b; ++t) row_ptr[r - r0 + (t - a)] = dst + std::ptrdiff_t(g.m * (t - a)) * rs;
    dst += rs * nprow;
    r += b - a;
  }
}

// One F(M,3) tile whose rows (EY) and / or columns (EX) take F(2,3) (wino_edges): its values at the points it uses.
// Each case compiled apart keeps its intermediate block ((M + 2) x 4, 4 x (M + 2) or 4 x 4 vectors) in registers.
template <int M, bool EY, bool EX>
inline void wino_input_tile_edge_m(float* vt, std::ptrdiff_t xi_stride, const float* base, std::ptrdiff_t rs, int cinp) {
  constexpr int A = M + 2, ny = EY ? 4 : A, nx = EX ? 4 : A, points[4] = {0, 1, 2, M + 1};
  for (int c = 0; c < cinp; c += vw) {
    vf tmp[ny][nx];
    for (int j = 0; j < nx; ++j) {  // columns
      vf col[A], out[A];
      for (int i = 0; i < ny; ++i) col[i] = vf::load_aligned(base + i * rs + std::ptrdiff_t(j) * cinp + c);
      if constexpr (EY) wino_edge_in_1d<M>(col, out);
      else wino_tile<M>::in(col, out);
      for (int q = 0; q < ny; ++q) tmp[q][j] = out[q];
    }
    for (int q = 0; q < ny; ++q) {  // rows
      vf out[A];
      if constexpr (EX) wino_edge_in_1d<M>(tmp[q], out);
      else wino_tile<M>::in(tmp[q], out);
      const int i = EY ? points[q] : q;
      for (int k = 0; k < nx; ++k) {
        out[k].store_aligned(vt + (i * A + (EX ? points[k] : k)) * xi_stride + c);
      }
    }
  }
}
template <int M>
inline void wino_input_tile_edge(float* vt, std::ptrdiff_t xi_stride, const float* base, std::ptrdiff_t rs, int cinp, bool ey, bool ex) {
  if (ey && ex) wino_input_tile_edge_m<M, true, true>(vt, xi_stride, base, rs, cinp);
  else if (ey) wino_input_tile_edge_m<M, true, false>(vt, xi_stride, base, rs, cinp);
  else wino_input_tile_edge_m<M, false, true>(vt, xi_stride, base, rs, cinp);
}

// V[xi][t][c] for the tiles of rows [r0, r1); t counted from t0. V row stride vld (>= cinp).
// The column pass yields R rows of B^T d at a time (the columns reloaded for each group, and only what those
// rows need computed), each then taken through the row pass: F(4,3)'s 36 intermediate vectors at once would
// outgrow the 32 registers, and their spills cost more than the reloads (measured alone, 64 channels, 81
// tiles: 13.4-14.2 us per sample all at once, 12.5-12.8 in groups of 3 rows, 12.8-13.1 of 2; F(3,3)'s 25
// fit: at 256 channels x 9 tiles 2.8-3.8 us all at once, 4.0-5.4 in groups).
// edges: which tiles take F(2,3); row0: the map's tile row of row_ptr[0].
template <int M>
inline void wino_input_transform_m(float* V, std::ptrdiff_t xi_stride, std::ptrdiff_t vld, long t0,
                                   const float* const* row_ptr, const wino_geom& g, long nrows, wino_edges e, long row0) {
  constexpr int A = M + 2, R = M == 4 ? 3 : A;
  const std::ptrdiff_t rs = std::ptrdiff_t(g.pcols()) * g.cinp;
  for (long r = 0; r < nrows; ++r) {
    const bool ey = e.edge_row(g, row0 + r);
    const int tw = e.plain_tiles(g, row0 + r);
    for (int tx = 0; tx < tw; ++tx) {
      const float* base = row_ptr[r] + std::ptrdiff_t(M * tx) * g.cinp;
      float* vt = V + (t0 + r * g.tw + tx) * vld;
      for (int c = 0; c < g.cinp; c += vw)
#pragma GCC unroll 6
        for (int i0 = 0; i0 < A; i0 += R) {
          vf tmp[R][A];
#pragma GCC unroll 6
          for (int j = 0; j < A; ++j) {  // columns: rows i0 .. i0 + R - 1 of the pass
            vf col[A], out[A];
#pragma GCC unroll 6
            for (int i = 0; i < A; ++i) col[i] = vf::load_aligned(base + i * rs + std::ptrdiff_t(j) * g.cinp + c);
            wino_tile<M>::in(col, out);
#pragma GCC unroll 6
            for (int q = 0; q < R; ++q) tmp[q][j] = out[i0 + q];
          }
#pragma GCC unroll 6
          for (int q = 0; q < R; ++q) {  // rows
            vf out[A];
            wino_tile<M>::in(tmp[q], out);
#pragma GCC unroll 6
            for (int j = 0; j < A; ++j) {
              out[j].store_aligned(vt + ((i0 + q) * A + j) * xi_stride + c);
            }
          }
        }
    }
    for (int tx = tw; tx < g.tw; ++tx)
      wino_input_tile_edge<M>(V + (t0 + r * g.tw + tx) * vld, xi_stride, row_ptr[r] + std::ptrdiff_t(M * tx) * g.cinp, rs, g.cinp, ey,
                                   e.x && tx == g.tw - 1);
  }
}
inline void wino_input_transform(float* V, std::ptrdiff_t xi_stride, std::ptrdiff_t vld, long t0,
                                 const float* const* row_ptr, const wino_geom& g, long nrows, wino_edges e = {},
                                 long row0 = 0) {
  if (g.m == 3) wino_input_transform_m<3>(V, xi_stride, vld, t0, row_ptr, g, nrows, e, row0);
  else wino_input_transform_m<4>(V, xi_stride, vld, t0, row_ptr, g, nrows, e, row0);
}

// One F(M,3) tile whose rows (EY) and / or columns (EX) take F(2,3) (wino_edges): its outputs (2 x 2, 2 x M or M x 2)
// from its values at the points it uses; columns from `cols` on are dropped.
template <int M, bool EY, bool EX>
inline void wino_output_tile_edge_m(float* y, std::ptrdiff_t yrs, const float* mt, std::ptrdiff_t xi_stride, int coutp, int cols) {
  constexpr int A = M + 2, ny = EY ? 4 : A, nx = EX ? 4 : A, my = EY ? 2 : M, points[4] = {0, 1, 2, M + 1};
  for (int c = 0; c < coutp; c += vw) {
    vf tmp[my][nx];
    for (int j = 0; j < nx; ++j) {  // columns
      vf col[A], o[M];
      for (int i = 0; i < ny; ++i) col[i] = vf::load_aligned(mt + ((EY ? points[i] : i) * A + (EX ? points[j] : j)) * xi_stride + c);
      if constexpr (EY) wino_edge_out_1d(col, o);
      else wino_tile<M>::out(col, o);
      for (int q = 0; q < my; ++q) tmp[q][j] = o[q];
    }
    for (int q = 0; q < my; ++q) {  // rows
      vf o[M];
      if constexpr (EX) wino_edge_out_1d(tmp[q], o);
      else wino_tile<M>::out(tmp[q], o);
      for (int k = 0; k < cols; ++k) o[k].store_aligned(y + q * yrs + std::ptrdiff_t(k) * coutp + c);
    }
  }
}
template <int M>
inline void wino_output_tile_edge(float* y, std::ptrdiff_t yrs, const float* mt, std::ptrdiff_t xi_stride, int coutp, int cols, bool ey,
                                  bool ex) {
  if (ey && ex) wino_output_tile_edge_m<M, true, true>(y, yrs, mt, xi_stride, coutp, cols);
  else if (ey) wino_output_tile_edge_m<M, true, false>(y, yrs, mt, xi_stride, coutp, cols);
  else wino_output_tile_edge_m<M, false, true>(y, yrs, mt, xi_stride, coutp, cols);
}

// One tile row of the output transform: the tw tiles of M starting at mrow (M[xi][t][co]) into ybuf,
// channels-last [m][ow][coutp] (the last tile's columns past ow dropped), so the rows follow one another as
// in an NCHW plane.
// edges: which tiles take F(2,3); row: the map's tile row of mrow.
template <int M>
inline void wino_output_row_m(float* ybuf, const float* mrow, std::ptrdiff_t xi_stride, std::ptrdiff_t mld, const wino_geom& g, wino_edges e,
                              long row) {
  constexpr int A = M + 2;
  const std::ptrdiff_t yrs = std::ptrdiff_t(g.ow) * g.coutp;
  const bool ey = e.edge_row(g, row);
  const int tw = e.plain_tiles(g, row);
  for (int tx = 0; tx < tw; ++tx) {
    const float* mt = mrow + tx * mld;
    const int cols = std::min(M, g.ow - M * tx);
    for (int c = 0; c < g.coutp; c += vw) {
      vf tmp[M][A];
      for (int j = 0; j < A; ++j) {
        vf col[A], o[M];
        for (int i = 0; i < A; ++i) col[i] = vf::load_aligned(mt + (i * A + j) * xi_stride + c);
        wino_tile<M>::out(col, o);
        for (int i = 0; i < M; ++i) tmp[i][j] = o[i];
      }
      for (int i = 0; i < M; ++i) {
        vf o[M];
        wino_tile<M>::out(tmp[i], o);
        for (int j = 0; j < cols; ++j) o[j].store_aligned(ybuf + i * yrs + std::ptrdiff_t(M * tx + j) * g.coutp + c);
      }
    }
  }
  for (int tx = tw; tx < g.tw; ++tx)
    wino_output_tile_edge<M>(ybuf + std::ptrdiff_t(M * tx) * g.coutp, yrs, mrow + tx * mld, xi_stride, g.coutp, std::min(M, g.ow - M * tx), ey,
                          e.x && tx == g.tw - 1);
}
inline void wino_output_row(float* ybuf, const float* mrow, std::ptrdiff_t xi_stride, std::ptrdiff_t mld, const wino_geom& g, wino_edges e = {},
                            long row = 0) {
  if (g.m == 3) wino_output_row_m<3>(ybuf, mrow, xi_stride, mld, g, e, row);
  else wino_output_row_m<4>(ybuf, mrow, xi_stride, mld, g, e, row);
}

// Output transform of M[xi][t][co] for rows [r0, r1) into out (NCHW), assign or add. A tile row's output rows
// are contiguous in each channel plane: one transpose writes them all (m * ow floats per channel).
inline void wino_output_transform(float* out, const float* M, std::ptrdiff_t xi_stride, std::ptrdiff_t mld,
                                  long t0, const wino_geom& g, long r0, long r1, float* ybuf, bool accumulate) {
  for (long r = r0; r < r1; ++r) {
    const int img = int(r / g.th), ty = int(r % g.th);
    wino_output_row(ybuf, M + (t0 + (r - r0) * g.tw) * mld, xi_stride, mld, g);
    float* dst = out + std::size_t(img) * g.cout * g.oh * g.ow + std::ptrdiff_t(g.m * ty) * g.ow;
    const int rows = std::min(g.m, g.oh - g.m * ty);
    transpose(dst, std::ptrdiff_t(g.oh) * g.ow, ybuf, g.coutp, rows * g.ow, g.cout, accumulate);
  }
}

// B operands are packed in column panels of panel_w (the micro-kernel's width) so a panel is one
// contiguous stream: element (k, n) of a K x np matrix lives at n0*K + k*w + (n - n0), n0 = n - n % panel_w,
// w = min(panel_w, np - n0).
constexpr int panel_w = ukr_nv * vw;
inline std::ptrdiff_t panel_at(int K, int np, int k, int n) {
  const int n0 = n - n % panel_w, w = std::min(panel_w, np - n0);
  return std::ptrdiff_t(n0) * K + std::ptrdiff_t(k) * w + (n - n0);
}

// u[i*(M+2) + j] = (G g G^T)[i][j] (F(M,3)) of the 3x3 filters g, one per lane.
template <int M>
inline void wino_weight_tile(const vf (&g)[3][3], vf* u) {
  constexpr int A = M + 2;
  vf cols[A][3];
  for (int j = 0; j < 3; ++j) {
    const vf col[3] = {g[0][j], g[1][j], g[2][j]};
    vf o[A];
    wino_tile<M>::weight(col, o);
    for (int i = 0; i < A; ++i) cols[i][j] = o[i];
  }
  for (int i = 0; i < A; ++i) wino_tile<M>::weight(cols[i], u + i * A);
}

// U[xi] (K x np, panel-packed) = (G g G^T)[xi] (F(M,3)) for the 3x3 filter g_{n,k}; filters come
// channels-last as wt[k][tap][n] (n padded to np, zero beyond). Rows k in [k0, k1).
template <int M>
inline void wino_weight_transform_m(float* U, const float* wt, int K, int np, int k0, int k1) {
  constexpr int A = M + 2;
  const std::ptrdiff_t xs = std::ptrdiff_t(K) * np;
  for (int k = k0; k < k1; ++k)
    for (int c = 0; c < np; c += vw) {
      const std::ptrdiff_t at = panel_at(K, np, k, c);
      vf gg[3][3], u[A * A];
      for (int t = 0; t < 9; ++t) gg[t / 3][t % 3] = vf::load_aligned(wt + (std::ptrdiff_t(k) * 9 + t) * np + c);
      wino_weight_tile<M>(gg, u);
      for (int q = 0; q < A * A; ++q) u[q].store_aligned(U + q * xs + at);
    }
}
inline void wino_weight_transform(int m, float* U, const float* wt, int K, int np, int k0, int k1) {
  if (m == 3) wino_weight_transform_m<3>(U, wt, K, np, k0, k1);
  else wino_weight_transform_m<4>(U, wt, K, np, k0, k1);
}

// Tile rows per chunk: enough tiles that each U panel read is reused, few enough that the chunk's
// transform-domain data (V and M) stays near the core.
inline long wino_chunk_rows(const wino_geom& g, long budget_bytes, long min_tiles, long max_rows) {
  const long bytes_per_tile = long(g.points()) * (g.cinp + g.coutp) * 4;
  const long tiles = std::max(min_tiles, budget_bytes / bytes_per_tile);
  long rows = std::clamp<long>(tiles / g.tw, 1, std::max<long>(1, max_rows));
  // Prefer a tile count that fills whole micro-kernel row blocks.
  for (long r = rows; r > rows / 2 && r > 1; --r)
    if (r * g.tw % ukr_mr == 0) return r;
  return rows;
}

// wino_conv in panel mode (see the selection in wino_conv). Same naive loop.
template <class FillWt>
void wino_conv_panels(float* out, const float* in, const wino_geom& g, FillWt& fill_wt, bool accumulate) {
  const int nth = omp_get_max_threads();
  const long total = g.rows(), tiles = total * g.tw;
  const std::ptrdiff_t vld = padded_ld(g.cinp), mld = padded_ld(g.coutp);
  const std::ptrdiff_t v_xi = tiles * vld, m_xi = tiles * mld;
  const int X = g.points();
  float* Vs = scratch(slot_v).get<float>(X * v_xi);
  float* Ms = scratch(slot_m).get<float>(X * m_xi);
  const int n_panels = (g.coutp + panel_w - 1) / panel_w;
#pragma omp parallel num_threads(nth)
  {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    const int pc = g.pcols();
    long a, b;
    split_range(total, nt, tid, a, b);
    const long my_rows = std::max<long>(1, b - a);
    float* xbuf = scratch(slot_a).get<float>((g.m * my_rows + 2 * std::min<long>(my_rows, g.n) + 2) * pc * g.cinp);
    const float** row_ptr = scratch(slot_b).get<const float*>(my_rows);
    float* ybuf = scratch(slot_c).get<float>(16L * g.tw * g.coutp);
    float* wt = scratch(slot_d).get<float>(std::size_t(g.cin) * panel_w * (9 + X));
    float* U = wt + std::size_t(g.cin) * panel_w * 9;
    if (b > a) {
      wino_pack_input(xbuf, row_ptr, in, g, a, b);
      wino_input_transform(Vs, v_xi, vld, a * g.tw, row_ptr, g, b - a);
    }
#pragma omp barrier
    long p0, p1;
    split_range(n_panels, nt, tid, p0, p1);
    for (long p = p0; p < p1; ++p) {
      const int n0 = int(p) * panel_w, pw = std::min(panel_w, g.coutp - n0);
      fill_wt(wt, 0, g.cin, n0, n0 + pw, pw);
      wino_weight_transform(g.m, U, wt, g.cin, pw, 0, g.cin);
      for (int xi = 0; xi < X; ++xi)
        gemm(int(tiles), pw, g.cin, Vs + xi * v_xi, vld, 1, U + std::ptrdiff_t(xi) * g.cin * pw, 0,
             Ms + xi * m_xi + n0, mld, false);
    }
#pragma omp barrier
    if (b > a) wino_output_transform(out, Ms, m_xi, mld, a * g.tw, g, a, b, ybuf, accumulate);
  }
}

// out (=/+=) conv3x3_s1(in, g) with Winograd F(m,3), m = g.m. fill_wt writes the filters channels-last
// (see forward_filler / backward_data_filler).
//
// Naive loop:
//   for n, co, Y < oh, X < ow:  out[n][co][Y][X] (+)= sum_{ci, ky, kx} in[n][ci][Y+ky-ph][X+kx-pw] * g[co][ci][ky][kx]
// Here: per chunk of m x m output tiles, V = B^T d B ((m+2)^2 per tile and channel), M[xi] = V[xi] U[xi]
// ((m+2)^2 GEMMs, tiles x cin x cout), out = A^T M A.
template <class FillWt>
void wino_conv(float* out, const float* in, const wino_geom& g, FillWt&& fill_wt, bool accumulate) {
  const int nth = omp_get_max_threads(), X = g.points();
  const std::ptrdiff_t u_xi = std::ptrdiff_t(g.cin) * g.coutp;
  const long total = g.rows();
  const long u_bytes = long(X) * u_xi * 4;
  const std::ptrdiff_t vld = padded_ld(g.cinp), mld = padded_ld(g.coutp);
  // Panel mode when U is big (> 4 MB) and the transform-domain data of all tiles fits in L3
  // (<= 24 MB: the 4x4 and 8x8 maps with 256-512 channels). All tiles are transformed once; then each
  // thread takes whole 64-wide output-channel panels, transforming that panel's filters right before
  // its products, so U never exists in full and never goes to DRAM. (Measured at 512ch 4x4, 1 thread:
  // ~30 ms per call against ~40 ms with U materialised.)
  if (u_bytes > (4L << 20) && total * g.tw * X * (vld + mld) * 4 <= (24L << 20)) {
    wino_conv_panels(out, in, g, fill_wt, accumulate);
    return;
  }
  float* wt = scratch(slot_wt).get<float>(std::size_t(g.cin) * 9 * g.coutp);
  float* U = scratch(slot_u).get<float>(X * u_xi);
  // Shared-chunk mode when U is big but the batch's tiles are too many for panel mode and few per
  // thread: all threads work on one chunk, the products split by (xi, column panel) so each thread
  // streams only its share of U. Otherwise each thread runs whole chunks of its own tile rows.
  const bool shared = nth > 1 && u_bytes > (4L << 20) && total * g.tw <= 512L * nth;
  // A big U (> 4 MB) is streamed once per chunk: take more tiles per chunk so each read is reused more.
  const long chunk = shared ? wino_chunk_rows(g, 8L << 20, 64, total)
                            : wino_chunk_rows(g, 512L << 10, u_bytes > (4L << 20) ? 128 : 48, (total + nth - 1) / nth);
  const long n_chunks = (total + chunk - 1) / chunk;
  const std::ptrdiff_t v_xi = chunk * g.tw * vld, m_xi = chunk * g.tw * mld;
  float* Vs = shared ? scratch(slot_v).get<float>(X * v_xi) : nullptr;
  float* Ms = shared ? scratch(slot_m).get<float>(X * m_xi) : nullptr;
  const int panel = ukr_nv * vw, n_panels = (g.coutp + panel - 1) / panel;
#pragma omp parallel num_threads(nth)
  {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    long lo, hi;
    split_range(g.cin, nt, tid, lo, hi);
    fill_wt(wt, int(lo), int(hi), 0, g.coutp, g.coutp);
    wino_weight_transform(g.m, U, wt, g.cin, g.coutp, int(lo), int(hi));
    const int pc = g.pcols();
    float* xbuf = scratch(slot_a).get<float>((g.m * chunk + 2 * std::min<long>(chunk, g.n) + 2) * pc * g.cinp);
    const float** row_ptr = scratch(slot_b).get<const float*>(chunk);
    float* ybuf = scratch(slot_c).get<float>(16L * g.tw * g.coutp);
#pragma omp barrier
    if (!shared) {
      float* V = scratch(slot_d).get<float>(X * (v_xi + m_xi));
      float* M = V + X * v_xi;
      long ra, rb;
      split_range(total, nt, tid, ra, rb);
      for (long r0 = ra; r0 < rb; r0 += chunk) {
        const long r1 = std::min(rb, r0 + chunk), tiles = (r1 - r0) * g.tw;
        wino_pack_input(xbuf, row_ptr, in, g, r0, r1);
        wino_input_transform(V, v_xi, vld, 0, row_ptr, g, r1 - r0);
        for (int xi = 0; xi < X; ++xi)
          gemm(int(tiles), g.coutp, g.cin, V + xi * v_xi, vld, 1, U + xi * u_xi, 0, M + xi * m_xi, mld, false);
        wino_output_transform(out, M, m_xi, mld, 0, g, r0, r1, ybuf, accumulate);
      }
    } else {
      for (long c = 0; c < n_chunks; ++c) {
        const long c0 = c * chunk, c1 = std::min(total, c0 + chunk), tiles = (c1 - c0) * g.tw;
        long a, b;
        split_range(c1 - c0, nt, tid, a, b);
        if (b > a) {
          wino_pack_input(xbuf, row_ptr, in, g, c0 + a, c0 + b);
          wino_input_transform(Vs, v_xi, vld, a * g.tw, row_ptr, g, b - a);
        }
#pragma omp barrier
        long i0, i1;
        split_range(long(X) * n_panels, nt, tid, i0, i1);
        for (long it = i0; it < i1; ++it) {
          const int xi = int(it / n_panels), n0 = int(it % n_panels) * panel;
          gemm(int(tiles), std::min(panel, g.coutp - n0), g.cin, Vs + xi * v_xi, vld, 1,
               U + xi * u_xi + std::ptrdiff_t(n0) * g.cin, 0, Ms + xi * m_xi + n0, mld, false);
        }
#pragma omp barrier
        if (b > a) wino_output_transform(out, Ms, m_xi, mld, a * g.tw, g, c0 + a, c0 + b, ybuf, accumulate);
      }
    }
  }
}

// dy tiles of rows [r0, r1) -> dM[xi][t][co] = (A e A^T)[xi], e the 4x4 dy tile (zero past oh, ow).
inline void wino_dy_transform(float* dM, std::ptrdiff_t xi_stride, std::ptrdiff_t mld, long t0, const float* dy, const wino_geom& g,
                              long r0, long r1, float* ebuf) {
  const std::ptrdiff_t ers = std::ptrdiff_t(4 * g.tw) * g.coutp;  // ebuf: [4][4*tw][coutp]
  for (long r = r0; r < r1; ++r) {
    const int img = int(r / g.th), ty = int(r % g.th);
    std::memset(ebuf, 0, sizeof(float) * 4 * ers);
    const float* src = dy + std::size_t(img) * g.cout * g.oh * g.ow;
    for (int i = 0; i < 4 && 4 * ty + i < g.oh; ++i)
      transpose(ebuf + i * ers, g.coutp, src + std::ptrdiff_t(4 * ty + i) * g.ow, std::ptrdiff_t(g.oh) * g.ow, g.cout,
                g.ow, false);
    for (int tx = 0; tx < g.tw; ++tx) {
      float* mt = dM + (t0 + (r - r0) * g.tw + tx) * mld;
      for (int c = 0; c < g.coutp; c += vw) {
        vf tmp[6][4];
        for (int j = 0; j < 4; ++j) {
          vf col[4], m[6];
          for (int i = 0; i < 4; ++i) col[i] = vf::load_aligned(ebuf + i * ers + std::ptrdiff_t(4 * tx + j) * g.coutp + c);
          wino_dy_1d(col, m);
          for (int i = 0; i < 6; ++i) tmp[i][j] = m[i];
        }
        for (int i = 0; i < 6; ++i) {
          vf m[6];
          wino_dy_1d(tmp[i], m);
          for (int j = 0; j < 6; ++j) m[j].store_aligned(mt + (i * 6 + j) * xi_stride + c);
        }
      }
    }
  }
}

// dwt[ci][tap][n] = (G^T dU G)[tap] for ci in [ci0, ci1); dU[xi][ci][n] has row stride np and is the
// sum of `parts` partial copies part_stride apart (added in order).
inline void wino_inverse_weight(float* dwt, const float* dU, std::ptrdiff_t u_xi, int np, int parts,
                                std::ptrdiff_t part_stride, int ci0, int ci1) {
  for (long ci = ci0; ci < ci1; ++ci)
    for (int c = 0; c < np; c += vw) {
      vf tmp[3][6];
      for (int j = 0; j < 6; ++j) {
        vf col[6], o[3];
        for (int i = 0; i < 6; ++i) {
          const float* src = dU + (i * 6 + j) * u_xi + ci * np + c;
          col[i] = vf::load_aligned(src);
          for (int t = 1; t < parts; ++t) col[i] += vf::load_aligned(src + t * part_stride);
        }
        wino_dw_1d(col, o);
        for (int i = 0; i < 3; ++i) tmp[i][j] = o[i];
      }
      for (int i = 0; i < 3; ++i) {
        vf o[3];
        wino_dw_1d(tmp[i], o);
        for (int j = 0; j < 3; ++j) o[j].store_aligned(dwt + (ci * 9 + i * 3 + j) * np + c);
      }
    }
}

// Backward-weight in panel mode: all tiles transformed once (x and dy), then each thread takes whole
// 64-wide output-channel panels: dU_p = V^T dM_p over all tiles, inverse transform, add into dw.
// No full dU, no reduction across threads.
inline void wino_backward_weight_panels(float* dw, const float* dy, const float* x, const wino_geom& g) {
  const int nth = omp_get_max_threads();
  const long total = g.rows(), tiles = total * g.tw;
  const std::ptrdiff_t vld = padded_ld(g.cinp), mld = padded_ld(g.coutp);
  const std::ptrdiff_t v_xi = tiles * vld, m_xi = tiles * mld;
  float* Vs = scratch(slot_v).get<float>(36 * v_xi);
  float* Ms = scratch(slot_m).get<float>(36 * m_xi);
  const int n_panels = (g.coutp + panel_w - 1) / panel_w;
#pragma omp parallel num_threads(nth)
  {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    const int pc = g.pcols();
    long a, b;
    split_range(total, nt, tid, a, b);
    const long my_rows = std::max<long>(1, b - a);
    float* xbuf = scratch(slot_a).get<float>((4 * my_rows + 2 * std::min<long>(my_rows, g.n) + 2) * pc * g.cinp);
    const float** row_ptr = scratch(slot_b).get<const float*>(my_rows);
    float* ebuf = scratch(slot_c).get<float>(16L * g.tw * g.coutp);
    float* dU = scratch(slot_d).get<float>(std::size_t(g.cin) * panel_w * (36 + 9));
    float* dwt = dU + std::size_t(g.cin) * panel_w * 36;
    if (b > a) {
      wino_pack_input(xbuf, row_ptr, x, g, a, b);
      wino_input_transform(Vs, v_xi, vld, a * g.tw, row_ptr, g, b - a);
      wino_dy_transform(Ms, m_xi, mld, a * g.tw, dy, g, a, b, ebuf);
    }
#pragma omp barrier
    long p0, p1;
    split_range(n_panels, nt, tid, p0, p1);
    for (long p = p0; p < p1; ++p) {
      const int n0 = int(p) * panel_w, pw = std::min(panel_w, g.coutp - n0);
      const std::ptrdiff_t u_xi = std::ptrdiff_t(g.cin) * pw;
      for (int xi = 0; xi < 36; ++xi)
        gemm(g.cin, pw, int(tiles), Vs + xi * v_xi, 1, vld, Ms + xi * m_xi + n0, mld, dU + xi * u_xi, pw, false);
      wino_inverse_weight(dwt, dU, u_xi, pw, 1, 0, 0, g.cin);
      const int real = std::min(pw, g.cout - n0);
      if (real > 0)
        transpose(dw + std::ptrdiff_t(n0) * g.cin * 9, std::ptrdiff_t(g.cin) * 9, dwt, pw, g.cin * 9, real, true);
    }
  }
}

// dw[co][ci][3][3] += sum over tiles of G^T (V . dM) G with Winograd F(4,3), stride 1.
//
// Naive loop:
//   for co, ci, ky, kx:  dw[co][ci][ky][kx] += sum_{n, Y, X} dy[n][co][Y][X] * x[n][ci][Y+ky-ph][X+kx-pw]
// Here: dU[xi] += V[xi]^T dM[xi] (reduction over tiles), then dw = G^T dU G. Two schedules:
//   * private: dU small (<= 4 MB: up to 128x128 channels). Each thread reduces its own static share of
//     tile rows into a private dU, no barriers; the partials are summed in thread order at the end.
//   * shared: dU large (256-512 channels, few tiles). All threads transform one chunk of tiles, then
//     split the products by (xi, column panel), so each dU element has one owner and a fixed order.
inline void wino_backward_weight(float* dw, const float* dy, const float* x, const wino_geom& g) {
  const int nth = omp_get_max_threads();
  const std::ptrdiff_t u_xi = std::ptrdiff_t(g.cin) * g.coutp, u_sz = 36 * u_xi;
  if (u_sz * 4 > (4L << 20) &&
      g.rows() * g.tw * 36L * (padded_ld(g.cinp) + padded_ld(g.coutp)) * 4 <= (24L << 20)) {
    wino_backward_weight_panels(dw, dy, x, g);  // same selection as wino_conv
    return;
  }
  const bool shared = nth > 1 && u_sz * 4 > (4L << 20);
  float* dU = scratch(slot_u).get<float>(shared ? u_sz : u_sz * nth);
  float* dwt = scratch(slot_wt).get<float>(std::size_t(g.cin) * 9 * g.coutp);
  const long total = g.rows();
  const long chunk = shared ? wino_chunk_rows(g, 6L << 20, 64, total)
                            : wino_chunk_rows(g, 512L << 10, 48, (total + nth - 1) / nth);
  const long n_chunks = (total + chunk - 1) / chunk;
  const std::ptrdiff_t vld = padded_ld(g.cinp), mld = padded_ld(g.coutp);
  const std::ptrdiff_t v_xi = chunk * g.tw * vld, m_xi = chunk * g.tw * mld;
  float* Vs = shared ? scratch(slot_v).get<float>(36 * v_xi) : nullptr;
  float* Ms = shared ? scratch(slot_m).get<float>(36 * m_xi) : nullptr;
  const int panel = ukr_nv * vw, n_panels = (g.coutp + panel - 1) / panel;
#pragma omp parallel num_threads(nth)
  {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    const int pc = g.pcols();
    float* xbuf = scratch(slot_a).get<float>((4 * chunk + 2 * std::min<long>(chunk, g.n) + 2) * pc * g.cinp);
    const float** row_ptr = scratch(slot_b).get<const float*>(chunk);
    float* ebuf = scratch(slot_c).get<float>(16L * g.tw * g.coutp);
    if (shared) {
      for (long c = 0; c < n_chunks; ++c) {
        const long c0 = c * chunk, c1 = std::min(total, c0 + chunk), tiles = (c1 - c0) * g.tw;
        long a, b;
        split_range(c1 - c0, nt, tid, a, b);
        if (b > a) {
          wino_pack_input(xbuf, row_ptr, x, g, c0 + a, c0 + b);
          wino_input_transform(Vs, v_xi, vld, a * g.tw, row_ptr, g, b - a);
          wino_dy_transform(Ms, m_xi, mld, a * g.tw, dy, g, c0 + a, c0 + b, ebuf);
        }
#pragma omp barrier
        long i0, i1;
        split_range(36L * n_panels, nt, tid, i0, i1);
        for (long it = i0; it < i1; ++it) {
          const int xi = int(it / n_panels), n0 = int(it % n_panels) * panel;
          gemm(g.cin, std::min(panel, g.coutp - n0), int(tiles), Vs + xi * v_xi, 1, vld, Ms + xi * m_xi + n0, mld,
               dU + xi * u_xi + n0, g.coutp, c > 0);
        }
#pragma omp barrier
      }
    } else {
      float* mine = dU + u_sz * tid;
      float* V = scratch(slot_d).get<float>(36 * (v_xi + m_xi));
      float* M = V + 36 * v_xi;
      long ra, rb;
      split_range(total, nt, tid, ra, rb);
      if (rb <= ra) std::memset(mine, 0, sizeof(float) * u_sz);
      for (long r0 = ra; r0 < rb; r0 += chunk) {
        const long r1 = std::min(rb, r0 + chunk), tiles = (r1 - r0) * g.tw;
        wino_pack_input(xbuf, row_ptr, x, g, r0, r1);
        wino_input_transform(V, v_xi, vld, 0, row_ptr, g, r1 - r0);
        wino_dy_transform(M, m_xi, mld, 0, dy, g, r0, r1, ebuf);
        for (int xi = 0; xi < 36; ++xi)
          gemm(g.cin, g.coutp, int(tiles), V + xi * v_xi, 1, vld, M + xi * m_xi, mld, mine + xi * u_xi, g.coutp,
               r0 > ra);
      }
#pragma omp barrier
    }
    // Inverse transform (summing private partials in thread order) -> dwt[ci][tap][co], then add
    // transposed into dw[co][ci][tap].
    long lo, hi;
    split_range(g.cin, nt, tid, lo, hi);
    wino_inverse_weight(dwt, dU, u_xi, g.coutp, shared ? 1 : nt, u_sz, int(lo), int(hi));
#pragma omp barrier
    split_range(g.cout, nt, tid, lo, hi);
    if (hi > lo)
      transpose(dw + lo * g.cin * 9, std::ptrdiff_t(g.cin) * 9, dwt + lo, g.coutp, g.cin * 9, int(hi - lo), true);
  }
}

// Filter fillers write the bank channels-last for input channels k in [k0, k1) and output channels
// n in [n0, n1): wt[(k*9 + tap)*ldn + n - n0], zero for n past the real count.
// Forward conv: wt[ci][tap][co] = w[co][ci][tap].
inline auto forward_filler(const float* w, int c_out, int c_in) {
  return [=](float* wt, int k0, int k1, int n0, int n1, int ldn) {
    if (k1 <= k0) return;
    const int real = std::max(0, std::min(n1, c_out) - n0);
    if (real > 0)
      transpose(wt + std::ptrdiff_t(k0) * 9 * ldn, ldn, w + (std::ptrdiff_t(n0) * c_in + k0) * 9,
                std::ptrdiff_t(c_in) * 9, real, (k1 - k0) * 9, false);
    if (n0 + real < n1)
      for (long r = long(k0) * 9; r < long(k1) * 9; ++r) std::fill(wt + r * ldn + real, wt + r * ldn + (n1 - n0), 0.f);
  };
}
// Backward-data conv (dy with the flipped, transposed bank): wt[co][tap][ci] = w[co][ci][8 - tap].
inline auto backward_data_filler(const float* w, int c_in) {
  return [=](float* wt, int k0, int k1, int n0, int n1, int ldn) {
    const int real = std::max(0, std::min(n1, c_in) - n0);
    for (int co = k0; co < k1; ++co) {
      float* d = wt + std::ptrdiff_t(co) * 9 * ldn;
      if (real > 0) transpose(d, ldn, w + (std::ptrdiff_t(co) * c_in + n0) * 9, 9, real, 9, false);
      for (int t = 0; t < 4; ++t) std::swap_ranges(d + t * ldn, d + t * ldn + real, d + (8 - t) * ldn);
      if (n0 + real < n1)
        for (int t = 0; t < 9; ++t) std::fill(d + t * ldn + real, d + t * ldn + (n1 - n0), 0.f);
    }
  };
}

// ----- Direct (implicit GEMM) path: any kernel, stride, padding ---------------------------------
// The zero-padded input is stored channels-last and split into stride phases: phase (py, px) holds
// padded pixels (r*sh + py, c*sw + px). Tap (ky, kx) of output (Y, X) then reads phase
// (ky % sh, kx % sw) at (Y + ky/sh, X + kx/sw): unit stride in X. Outputs are computed on an extended
// grid of pcol columns, so GEMM row m = Y*pcol + X reads at the uniform offset m*cinp (+ tap offset);
// columns X >= ow are garbage and dropped (1 - ow/pcol waste: 1/17 at 32x32 stride 2).
struct direct_geom {
  int n, cin, h, w, cout, oh, ow, kh, kw, sh, sw, ph, pw;
  int cinp, coutp, pwid, pcol, prow_p, dx_rows;
  long m() const { return long(oh) * pcol; }
  std::size_t phase_floats() const { return std::size_t(prow_p) * pcol * cinp; }
  std::size_t img_floats() const { return phase_floats() * sh * sw; }
  std::size_t dx_floats() const { return std::size_t(dx_rows) * pwid * cinp; }
  int taps() const { return kh * kw; }
  std::ptrdiff_t tap_offset(int t) const {
    const int ky = t / kw, kx = t % kw;
    return std::ptrdiff_t((ky % sh) * sw + kx % sw) * std::ptrdiff_t(phase_floats()) +
           (std::ptrdiff_t(ky / sh) * pcol + kx / sw) * cinp;
  }
};
inline direct_geom make_direct_geom(const conv2d_params& p) {
  direct_geom g{p.n, p.c_in, p.h, p.w, p.c_out, p.out_h(), p.out_w(), p.kh, p.kw, p.stride_h, p.stride_w,
                p.pad_h, p.pad_w, 0, 0, 0, 0, 0, 0};
  g.cinp = int(round_up(p.c_in, vw));
  g.coutp = int(round_up(p.c_out, vw));
  g.pwid = int(round_up(std::size_t(p.w + 2 * p.pad_w), p.stride_w));
  g.pcol = g.pwid / g.sw;
  g.prow_p = g.oh + (g.kh - 1) / g.sh + 2;  // rows the extended grid reads, plus slack for its garbage
  g.dx_rows = std::max((g.oh - 1) * g.sh + g.kh, g.h + g.ph);
  return g;
}

// x image [cin][h][w] -> phase-split, channels-last, zero-padded xb. The image writes the same positions of xb
// whatever its values, so a buffer packed before with the same geometry needs no zeroing (zero = false): its
// padding is still zero. sums: as wino_pack_input's. Each transposed pixel goes straight to its phase (measured,
// 64-channel 34 x 34 images from memory, stride 2: 18-27 us per image through a transposed row copied out, 11-12 in
// one pass).
inline void direct_pack_input(float* xb, const float* x, const direct_geom& g, bool zero = true, float* sums = nullptr) {
  if (zero) std::memset(xb, 0, sizeof(float) * g.img_floats());
  const int rows = std::min(g.h, g.prow_p * g.sh - g.ph);
  const std::ptrdiff_t plane = std::ptrdiff_t(g.h) * g.w;
  thread_local std::vector<std::ptrdiff_t> col_off;  // pixel ix's place in its row of phases (kept: no allocation per image)
  col_off.resize(static_cast<std::size_t>(g.w));
  for (int ix = 0; ix < g.w; ++ix) {
    const int c = ix + g.pw;
    col_off[std::size_t(ix)] = std::ptrdiff_t(c % g.sw) * std::ptrdiff_t(g.phase_floats()) + std::ptrdiff_t(c / g.sw) * g.cinp;
  }
  for (int k0 = 0; k0 < g.cin; k0 += 16) {  // 16 channels down all rows: see wino_pack_input
    const int kc = std::min(16, g.cin - k0);
    for (int iy = 0; iy < rows; ++iy) {
      const int r = iy + g.ph;
      float* row = xb + std::ptrdiff_t(r % g.sh) * g.sw * std::ptrdiff_t(g.phase_floats()) + std::ptrdiff_t(r / g.sh) * g.pcol * g.cinp + k0;
      transpose_cols([&](int ix) { return row + col_off[std::size_t(ix)]; }, x + k0 * plane + std::ptrdiff_t(iy) * g.w, plane, kc, g.w,
                     false, sums ? sums + k0 : nullptr);
    }
  }
}

// Naive loop, for each image i of a group:
//   for m < M, n < N:  c_i[m][n] = sum_t sum_k a_i[m*a_rs + a_off[t] + k] * B_t[k][n]
// B = [B_0; B_1; ...] is (taps*k) x n, panel-packed; panels outermost so a panel is reused by every
// image of the group (small maps with many channels would otherwise re-read B from memory per image).
// n_live < n: the columns from n_live on may be written as 0 instead (half-vector micro-kernels where
// the last vector has 8 live lanes or fewer). row_off: A's rows listed instead, row m at a_i + a_off[t] +
// row_off[m] (a_rs unused).
inline void gemm_taps(int m, int n, int k, int count, const float* const* a, std::ptrdiff_t a_rs,
                      const std::ptrdiff_t* a_off, int taps, const float* b, float* const* c, std::ptrdiff_t ldc,
                      useg* segs, int n_live = -1, const std::ptrdiff_t* row_off = nullptr) {
  if (n_live < 0) n_live = n;
  // Taps in groups of about gemm_kc rows of B, so a group's B block stays in L1 across the row blocks.
  const int tg = std::clamp(gemm_kc * 4 / 3 / std::max(1, k), 1, taps);
  for (int n0 = 0; n0 < n; n0 += panel_w) {
    const int nv = std::min(ukr_nv, (n - n0) / vw), wdt = nv * vw;
    const bool half = has_half && wdt - (n_live - n0) >= vw / 2;
    const float* bp = b + std::ptrdiff_t(n0) * taps * k;
    for (int t0 = 0; t0 < taps; t0 += tg) {
      const int nt = std::min(tg, taps - t0);
      for (int i = 0; i < count; ++i)
        for (int m0 = 0; m0 < m; m0 += ukr_mr) {
          const int mr = std::min(ukr_mr, m - m0);
          const std::ptrdiff_t a0 = row_off ? 0 : m0 * a_rs;  // listed rows carry their own offsets
          for (int t = 0; t < nt; ++t) segs[t] = {a[i] + a0 + a_off[t0 + t], bp + std::ptrdiff_t(t0 + t) * k * wdt};
          if (row_off) pick_ukernel_listed(mr, nv, half)(c[i] + m0 * ldc + n0, ldc, segs, nt, row_off + m0, wdt, k, t0 > 0);
          else pick_ukernel(mr, nv, half)(c[i] + m0 * ldc + n0, ldc, segs, nt, a_rs, 1, wdt, k, t0 > 0);
        }
    }
  }
}

// Images per group for the direct kernels: enough GEMM rows (~192) to reuse each weight panel, within
// a ~1 MB working set per thread.
inline int direct_group(long rows_per_img, std::size_t bytes_per_img, long imgs) {
  const long by_rows = (192 + rows_per_img - 1) / rows_per_img;
  const long by_mem = std::max<long>(1, long((1u << 20) / std::max<std::size_t>(1, bytes_per_img)));
  return int(std::clamp<long>(std::min(by_rows, by_mem), 1, std::max<long>(1, imgs)));
}

// Forward. Naive loop: see conv2d_forward_reference; here per group of images one GEMM over the
// extended grid with one K-segment (cin long) per kernel tap.
inline void direct_forward(float* y, const float* x, const float* w, const direct_geom& g) {
  const int T = g.taps(), K = g.cin;
  float* B = scratch(slot_wt).get<float>(std::size_t(T) * K * g.coutp);  // (T*K) x coutp, B[t*K+ci][co]
  const int nth = omp_get_max_threads();
  const int G = direct_group(g.m(), (g.img_floats() + g.m() * g.coutp) * 4, (g.n + nth - 1) / nth);
#pragma omp parallel num_threads(nth)
  {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    long lo, hi;
    split_range(long(T) * K, nt, tid, lo, hi);
    for (long r = lo; r < hi; ++r) {
      const int t = int(r / K), ci = int(r % K);
      for (int co = 0; co < g.coutp; ++co)
        B[panel_at(T * K, g.coutp, int(r), co)] = co < g.cout ? w[(std::size_t(co) * K + ci) * T + t] : 0.f;
    }
    std::vector<std::ptrdiff_t> a_off(T);
    for (int t = 0; t < T; ++t) a_off[t] = g.tap_offset(t);
    std::vector<useg> segs(T);
    std::vector<const float*> as(G);
    std::vector<float*> cs(G);
    float* xb = scratch(slot_a).get<float>(g.img_floats() * G);
    float* yb = scratch(slot_b).get<float>(g.m() * g.coutp * G);
    for (int i = 0; i < G; ++i) {
      as[i] = xb + g.img_floats() * i;
      cs[i] = yb + g.m() * g.coutp * i;
    }
#pragma omp barrier
    split_range(g.n, nt, tid, lo, hi);
    for (long img0 = lo; img0 < hi; img0 += G) {
      const int cnt = int(std::min<long>(G, hi - img0));
      for (int i = 0; i < cnt; ++i)
        direct_pack_input(xb + g.img_floats() * i, x + (img0 + i) * std::size_t(g.cin) * g.h * g.w, g, img0 == lo);
      gemm_taps(int(g.m()), g.coutp, K, cnt, as.data(), g.cinp, a_off.data(), T, B, cs.data(), g.coutp, segs.data());
      for (int i = 0; i < cnt; ++i) {
        float* dst = y + (img0 + i) * std::size_t(g.cout) * g.oh * g.ow;
        for (int oy = 0; oy < g.oh; ++oy)
          transpose(dst + std::ptrdiff_t(oy) * g.ow, std::ptrdiff_t(g.oh) * g.ow,
                    cs[i] + std::ptrdiff_t(oy) * g.pcol * g.coutp, g.coutp, g.ow, g.cout, false);
      }
    }
  }
}

// 1x1 convolution without padding, per image: y[n] (c_out x P) = w (c_out x c_in) . xs (c_in x P), where xs
// is x[n] sampled at the stride and P = out_h * out_w (padded to whole vectors). No channels-last copies:
// the weights are the A operand as they are, and at stride 1 with whole vectors x[n] is xs and y[n] is the
// output. Measured (2 threads, batch 64, the ResNet-18 shortcuts) against the direct kernel's channels-last
// copies: 64->128 34->17 6.4 -> 3.0 ms, 128->256 17->9 4.9 -> 2.5 ms, 256->512 9->5 (25 of 32 lanes) ~1.2x.
inline bool pointwise_applies(const conv2d_params& p) {
  return p.kh == 1 && p.kw == 1 && p.pad_h == 0 && p.pad_w == 0 && std::ptrdiff_t(p.out_h()) * p.out_w() >= 16;
}
inline void pointwise_forward(float* y, const float* x, const float* w, const conv2d_params& p) {
  const int oh = p.out_h(), ow = p.out_w();
  const std::ptrdiff_t P = std::ptrdiff_t(oh) * ow, pp = std::ptrdiff_t(round_up(std::size_t(P), vw));
  const std::ptrdiff_t in_plane = std::ptrdiff_t(p.h) * p.w;
  const bool whole = P == pp, in_place = whole && p.stride_h == 1 && p.stride_w == 1;
#pragma omp parallel num_threads(omp_get_max_threads())
  {
    float* xs = in_place ? nullptr : scratch(slot_a).get<float>(std::size_t(p.c_in) * pp);
    float* cs = whole ? nullptr : scratch(slot_b).get<float>(std::size_t(p.c_out) * pp);
    if (xs)
      for (int ci = 0; ci < p.c_in; ++ci) std::fill(xs + ci * pp + P, xs + (ci + 1) * pp, 0.f);
#pragma omp for schedule(static)
    for (int n = 0; n < p.n; ++n) {
      const float* xn = x + std::ptrdiff_t(n) * p.c_in * in_plane;
      if (xs)
        for (int ci = 0; ci < p.c_in; ++ci)
          for (int oy = 0; oy < oh; ++oy) {
            const float* src = xn + ci * in_plane + std::ptrdiff_t(oy) * p.stride_h * p.w;
            float* dst = xs + ci * pp + std::ptrdiff_t(oy) * ow;
            for (int ox = 0; ox < ow; ++ox) dst[ox] = src[std::ptrdiff_t(ox) * p.stride_w];
          }
      float* yn = y + std::ptrdiff_t(n) * p.c_out * P;
      gemm(p.c_out, int(pp), p.c_in, w, p.c_in, 1, xs ? xs : xn, pp, whole ? yn : cs, pp, false);
      if (!whole)
        for (int co = 0; co < p.c_out; ++co) std::copy_n(cs + co * pp, P, yn + co * P);
    }
  }
}

// Backward data. Naive loop: see conv2d_backward_data_reference; here per group of images
// col[pos][t][ci] = sum_co dy[pos][co] w[co][ci][t] (one GEMM over the group's stacked positions), then
// col2im adds each tap's contribution into a padded channels-last dx image, added transposed into dx.
inline void direct_backward_data(float* dx, const float* dy, const float* w, const direct_geom& g, bool accumulate) {
  const int T = g.taps(), K = g.cout, N = T * g.cinp;
  float* B = scratch(slot_wt).get<float>(std::size_t(K) * N);  // K x (T*cinp), B[co][t*cinp+ci]
  const int nth = omp_get_max_threads();
  const long pos = long(g.oh) * g.ow;
  const int G = direct_group(pos, (pos * (g.coutp + N)) * 4, (g.n + nth - 1) / nth);
#pragma omp parallel num_threads(nth)
  {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    long lo, hi;
    split_range(K, nt, tid, lo, hi);
    for (long co = lo; co < hi; ++co)
      for (int t = 0; t < T; ++t)
        for (int ci = 0; ci < g.cinp; ++ci)
          B[panel_at(K, N, int(co), t * g.cinp + ci)] = ci < g.cin ? w[(std::size_t(co) * g.cin + ci) * T + t] : 0.f;
    float* dyb = scratch(slot_a).get<float>(pos * g.coutp * G);
    float* col = scratch(slot_b).get<float>(pos * N * G);
    float* dxb = scratch(slot_c).get<float>(g.dx_floats());
#pragma omp barrier
    split_range(g.n, nt, tid, lo, hi);
    for (long img0 = lo; img0 < hi; img0 += G) {
      const int cnt = int(std::min<long>(G, hi - img0));
      for (int i = 0; i < cnt; ++i)
        transpose(dyb + pos * g.coutp * i, g.coutp, dy + (img0 + i) * std::size_t(g.cout) * pos, pos, g.cout, int(pos),
                  false);
      gemm(int(pos * cnt), N, K, dyb, g.coutp, 1, B, 0, col, N, false);
      for (int i = 0; i < cnt; ++i) {
        std::memset(dxb, 0, sizeof(float) * g.dx_floats());
        for (int oy = 0; oy < g.oh; ++oy)
          for (int ox = 0; ox < g.ow; ++ox) {
            const float* cp = col + ((pos * i) + std::ptrdiff_t(oy) * g.ow + ox) * N;
            for (int t = 0; t < T; ++t) {
              float* d = dxb + ((std::ptrdiff_t(oy) * g.sh + t / g.kw) * g.pwid + std::ptrdiff_t(ox) * g.sw + t % g.kw) *
                                   g.cinp;
              const float* sp = cp + std::ptrdiff_t(t) * g.cinp;
              for (int c = 0; c < g.cinp; c += vw)
                (vf::load_aligned(d + c) + vf::load_aligned(sp + c)).store_aligned(d + c);
            }
          }
        float* dst = dx + (img0 + i) * std::size_t(g.cin) * g.h * g.w;
        for (int iy = 0; iy < g.h; ++iy)
          transpose(dst + std::ptrdiff_t(iy) * g.w, std::ptrdiff_t(g.h) * g.w,
                    dxb + (std::ptrdiff_t(iy + g.ph) * g.pwid + g.pw) * g.cinp, g.cinp, g.w, g.cin, accumulate);
      }
    }
  }
}

// Backward weight. Naive loop: see conv2d_backward_weight_reference; here per group of images and tap
// dW[ci][t][co] += sum_i sum_m xb_i[m + off_t][ci] * dyb_i[m][co] over the extended grid (dy zero in the
// garbage columns; one micro-kernel segment per image), per-thread partial sums reduced in thread order.
inline void direct_backward_weight(float* dw, const float* dy, const float* x, const direct_geom& g) {
  const int T = g.taps();
  const int nth = omp_get_max_threads();
  const std::size_t part_sz = std::size_t(g.cin) * T * g.coutp;
  float* part = scratch(slot_u).get<float>(part_sz * nth);
  const long pos = long(g.oh) * g.ow;
  const int G = direct_group(g.m(), (g.img_floats() + g.m() * g.coutp) * 4, (g.n + nth - 1) / nth);
#pragma omp parallel num_threads(nth)
  {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    float* mine = part + part_sz * tid;
    std::memset(mine, 0, sizeof(float) * part_sz);
    float* xb = scratch(slot_a).get<float>(g.img_floats() * G);
    float* dyb = scratch(slot_b).get<float>(g.m() * g.coutp * G);
    std::vector<useg> segs(G);
    const std::ptrdiff_t ldc = std::ptrdiff_t(T) * g.coutp;
    long lo, hi;
    split_range(g.n, nt, tid, lo, hi);
    for (long img0 = lo; img0 < hi; img0 += G) {
      const int cnt = int(std::min<long>(G, hi - img0));
      for (int i = 0; i < cnt; ++i) {
        direct_pack_input(xb + g.img_floats() * i, x + (img0 + i) * std::size_t(g.cin) * g.h * g.w, g, img0 == lo);
        float* d = dyb + g.m() * g.coutp * i;
        std::memset(d, 0, sizeof(float) * g.m() * g.coutp);
        const float* src = dy + (img0 + i) * std::size_t(g.cout) * pos;
        for (int oy = 0; oy < g.oh; ++oy)
          transpose(d + std::ptrdiff_t(oy) * g.pcol * g.coutp, g.coutp, src + std::ptrdiff_t(oy) * g.ow, pos, g.cout,
                    g.ow, false);
      }
      // K (positions) in blocks of gemm_kc so the dy block stays in L1 across the row blocks.
      const int M = int(g.m()), nkb = (M + gemm_kc - 1) / gemm_kc, kc = (M + nkb - 1) / nkb;
      for (int t = 0; t < T; ++t)
        for (int n0 = 0; n0 < g.coutp; n0 += panel_w) {
          const int nv = std::min(ukr_nv, (g.coutp - n0) / vw);
          for (int k0 = 0; k0 < M; k0 += kc) {
            const int kl = std::min(kc, M - k0);
            for (int m0 = 0; m0 < g.cin; m0 += ukr_mr) {
              const int mr = std::min(ukr_mr, g.cin - m0);
              for (int i = 0; i < cnt; ++i)
                segs[i] = {xb + g.img_floats() * i + g.tap_offset(t) + m0 + std::ptrdiff_t(k0) * g.cinp,
                           dyb + g.m() * g.coutp * i + n0 + std::ptrdiff_t(k0) * g.coutp};
              pick_ukernel(mr, nv)(mine + m0 * ldc + std::ptrdiff_t(t) * g.coutp + n0, ldc, segs.data(), cnt, 1,
                                   g.cinp, g.coutp, kl, true);
            }
          }
        }
    }
#pragma omp barrier
    // Sum the partials in thread order into part[0..], then add transposed into dw[co][ci*T + t].
    split_range(long(part_sz), nt, tid, lo, hi);
    for (long e = lo; e < hi; ++e) {
      float s = part[e];
      for (int t = 1; t < nt; ++t) s += part[part_sz * t + e];
      part[e] = s;
    }
#pragma omp barrier
    split_range(g.cout, nt, tid, lo, hi);
    if (hi > lo)
      transpose(dw + lo * std::size_t(g.cin) * T, std::ptrdiff_t(g.cin) * T, part + lo, g.coutp, g.cin * T,
                int(hi - lo), true);
  }
}

// Winograd only with >= 16 channels on both sides. At 16 (34x34 maps, batch 128, 2 threads) it made the
// width-0.25 training step ~15% faster than the direct kernel; below, the transforms cost about what they save,
// and its float error (about 10x a direct kernel's) compounds through BN layers of narrow networks enough to
// flip ReLU decisions of a whole training step (seen on the width-1/8 dual_step reference with 8 channels).
inline constexpr int winograd_min_channels = 16;
inline bool use_winograd(const conv2d_params& p) {
  return p.kh == 3 && p.kw == 3 && p.stride_h == 1 && p.stride_w == 1 && std::min(p.c_in, p.c_out) >= winograd_min_channels;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Public kernels.
// ---------------------------------------------------------------------------------------------
template <class T>
void conv2d_forward(T* y, const T* x, const T* w, const conv2d_params& p) {
  p.validate();
  if constexpr (std::is_same_v<T, float>) {
    if (detail::use_winograd(p)) {
      const auto g = detail::make_geom(p.n, p.c_in, p.h, p.w, p.c_out, p.out_h(), p.out_w(), p.pad_h, p.pad_w,
                                       detail::wino_tile_size(p.out_h(), p.out_w()));
      detail::wino_conv(y, x, g, detail::forward_filler(w, p.c_out, p.c_in), false);
      return;
    }
    if (detail::pointwise_applies(p)) return detail::pointwise_forward(y, x, w, p);
    detail::direct_forward(y, x, w, detail::make_direct_geom(p));
    return;
  }
  detail::im2col_forward(y, x, w, p);
}

// Adds into dx, or assigns when accumulate is false (dx may then hold anything).
template <class T>
void conv2d_backward_data(T* dx, const T* dy, const T* w, const conv2d_params& p, bool accumulate = true) {
  p.validate();
  if constexpr (std::is_same_v<T, float>) {
    if (detail::use_winograd(p)) {
      // dx = conv3x3_s1(dy, flip(w)^T) with padding 2 - p (negative: crop).
      const auto g = detail::make_geom(p.n, p.c_out, p.out_h(), p.out_w(), p.c_in, p.h, p.w, 2 - p.pad_h, 2 - p.pad_w,
                                       detail::wino_tile_size(p.h, p.w));
      detail::wino_conv(dx, dy, g, detail::backward_data_filler(w, p.c_in), accumulate);
      return;
    }
    detail::direct_backward_data(dx, dy, w, detail::make_direct_geom(p), accumulate);
    return;
  }
  if (!accumulate) std::fill_n(dx, std::size_t(p.n) * p.c_in * p.h * p.w, T(0));
  detail::im2col_backward_data(dx, dy, w, p);
}

template <class T>
void conv2d_backward_weight(T* dw, const T* dy, const T* x, const conv2d_params& p) {
  p.validate();
  if constexpr (std::is_same_v<T, float>) {
    if (detail::use_winograd(p)) {
      const auto g = detail::make_geom(p.n, p.c_in, p.h, p.w, p.c_out, p.out_h(), p.out_w(), p.pad_h, p.pad_w);
      detail::wino_backward_weight(dw, dy, x, g);
      return;
    }
    detail::direct_backward_weight(dw, dy, x, detail::make_direct_geom(p));
    return;
  }
  detail::im2col_backward_weight(dw, dy, x, p);
}

}  // namespace sslgate::ops::cpu
