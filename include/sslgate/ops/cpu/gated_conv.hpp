#pragma once
// CPU kernels of the fused gated BasicBlock in eval mode (float):
//   h_n = relu(conv1(x_n)[A_n] * s1[A_n] + b1[A_n])      only the open output channels A_n of sample n
//   o_n = conv2(h_n, w2[:, A_n])                          reduction over exactly those channels
// Random per-sample channel sets make weight gathers the enemy: a sample's tiles are few (4 at 5x5) and the
// weights many (25 x 512 x 512 transformed floats), so nothing here copies weights per sample. Instead:
//   * the weights are transformed / packed into layouts where a channel subset is a list of row pointers,
//     once, and kept by the block until their content changes (prepared_weights);
//   * conv1 (output channels gated), Winograd with few tiles per sample, runs in "dot" form:
//     out[row][col] = <a_row, b_col> with SIMD lanes over the reduction (input channels), rows = tiles,
//     cols = the open output channels, each an arbitrary pointer: no lane is wasted on a closed channel;
//     where a sample has many tiles, its open weight rows are instead packed into a panel (one copy per
//     sample and xi, cheap against tiles x channels products) for the broadcast micro-kernel, all but a last
//     vector with few live lanes, whose channels take the dot form (dot_tail_max); with AVX-512, a sample with
//     at most 24 open channels takes the quad form instead (lanes over 4 channels x 4 inputs); the direct conv1
//     (stride 2) takes the dot form too where a sample has few output positions, its 9 taps in each dot
//     product (3 per call where a column block's weight rows would outgrow L1), and with many packs them once
//     per sample, all taps;
//   * conv1's output, BN1 shift and ReLU applied, goes channels-last straight into conv2's padded input rows;
//   * conv2 (input channels gated) runs in the usual broadcast form with the B rows (transformed weights of
//     input channel A_n[j], panel-packed) taken by index, lanes over all output channels; BN2, the shortcut
//     and the final ReLU are applied as its output is transposed back to NCHW (block_tail); a stride-2
//     block's 1x1 downsample is computed here too, from conv1's own phase-split copy of the input;
//   * samples are processed in chunks, and the transform-domain products loop xi outermost, samples inside,
//     so one xi slice of the transformed weights stays in L2 while every sample of the chunk uses it; with
//     few tiles per sample the whole batch is one chunk that the threads share, the products split between
//     them by transform point, so each weight is read once per call for every sample (each thread takes its
//     share of a phase in order, then what the others have left, from the end: take_units). That batch's
//     transform-domain buffers (15 MB each at 256@9) outgrow L2 between phases: they are written with plain
//     stores, so that what the last-level cache holds of them is read back from there (non-temporal stores sent
//     them to memory: on a Zen 3 host the 256@9 block took 1.3x the time), and conv1's dot form prefetches the
//     next sample's rows of its input (V1) while it computes the current one; likewise each thread brings its
//     next sample's x (for conv1's copy), M2 and residual (for the output) into L2 while it works on the current one.
//   * buffers whose uses do not overlap share memory (conv2's products and conv1's transformed input; conv2's
//     transformed input and conv1's products; the output rows and the padded input rows), so that less of
//     them leaves the cache between uses;
//   * where a sample runs on its own with few open channels for its tiles, conv1 and conv2 run in bands of tile rows
//     over its open weight rows packed once, so that its transform-domain data stays in L2 (band_rows);
//   * where samples run one at a time (many tiles), the gate is computed in the kernel too, from the channel
//     sums that conv1's copy of each sample takes as it transposes x (gate_fn): x is read once for both;
//   * the block's output is written with non-temporal stores (transpose_down, AVX-512 or AVX2): no line of it is read
//     for ownership first.
//   * Winograd tiles: F(3,3) wherever it needs no more products than F(4,3) (tile_size), so the gated path does
//     the dense conv2d's transform-domain products per channel pair, in 25 transform points rather than 36 where
//     the two tie (17x17); a map's last tile row and column take F(2,3) where they hold 2 outputs or fewer (per
//     channel pair 2704 products instead of 2916 at 34x34, 841 instead of 900 at 17x17, 81 instead of 100 at 5x5;
//     point_runs).
// Naive loops: gated_basic_block's unfused oracle (dense conv, BN, ReLU, multiply by the mask, dense conv).
#include <sslgate/ops/cpu/conv2d.hpp>

#include <atomic>
#include <cstring>
#include <functional>
#include <numeric>
#include <vector>

namespace sslgate::ops::cpu::gated {

using detail::vf;
using detail::vw;
using detail::round_up;
using detail::split_range;
#if defined(__AVX512F__) || defined(__AVX2__)
namespace blk = detail::blk;
#endif

inline const vf lane_index = [] {  // 0, 1, ..., vw - 1
  alignas(64) float v[vw];
  for (int k = 0; k < vw; ++k) v[k] = float(k);
  return vf::load_aligned(v);
}();

// Scratch owned by these kernels (kept apart from conv2d's slots).
enum gslot { g_chunk, g_batch, g_part, g_t0, g_t1, g_t2, g_t3, g_x1, g_dpanel, g_res, g_res_batch, g_stage, g_count };
inline detail::aligned_buffer& gscratch(int slot) {
  thread_local detail::aligned_buffer bufs[g_count];
  return bufs[slot];
}

// ---------------------------------------------------------------------------------------------
// Micro-kernels.
// ---------------------------------------------------------------------------------------------
#if defined(__AVX512F__)
// Lane 4n + k of the result = the sum of 128-bit lane n of the k-th of a, b, c, d: 6 adds and 6 shuffles.
[[gnu::always_inline]] inline __m512 lane_sums4(__m512 a, __m512 b, __m512 c, __m512 d) {
  // per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3], and the same of c, d
  const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
  const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
  return _mm512_add_ps(_mm512_shuffle_ps(ab, cd, 0x44), _mm512_shuffle_ps(ab, cd, 0xEE));
}
// Lane q of the result = the sum of the lanes of v[q]: 15 adds and 30 shuffles for 16 sums.
[[gnu::always_inline]] inline __m512 hsum16(__m512* v) {  // inlined: the sums stay in registers
  __m512 u[2];
  for (int q = 0; q < 4; ++q) v[q] = lane_sums4(v[4 * q], v[4 * q + 1], v[4 * q + 2], v[4 * q + 3]);  // per 128-bit lane
  for (int q = 0; q < 2; ++q)  // lanes 0+1 and 2+3 of v[2q], then of v[2q+1]
    u[q] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * q], v[2 * q + 1], 0x88), _mm512_shuffle_f32x4(v[2 * q], v[2 * q + 1], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x88), _mm512_shuffle_f32x4(u[0], u[1], 0xDD));
}
#elif defined(__AVX2__)
// Lane q of the result = the sum of the lanes of v[q]: 7 adds and 14 shuffles for 8 sums.
[[gnu::always_inline]] inline __m256 hsum8(const __m256* v) {
  __m256 u[4], w[2];
  for (int q = 0; q < 4; ++q)  // per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] for a = v[2q], b = v[2q+1]
    u[q] = _mm256_add_ps(_mm256_unpacklo_ps(v[2 * q], v[2 * q + 1]), _mm256_unpackhi_ps(v[2 * q], v[2 * q + 1]));
  for (int q = 0; q < 2; ++q)  // per 128-bit lane: that lane's sums of v[4q .. 4q+3]
    w[q] = _mm256_add_ps(_mm256_shuffle_ps(u[2 * q], u[2 * q + 1], 0x44), _mm256_shuffle_ps(u[2 * q], u[2 * q + 1], 0xEE));
  return _mm256_add_ps(_mm256_permute2f128_ps(w[0], w[1], 0x20), _mm256_permute2f128_ps(w[0], w[1], 0x31));
}
#endif

// Share `part` of `parts` of the cache lines of [base, base + bytes) brought into L2: a prefetch spread over the
// steps of a loop, so that a region needed next arrives while the current one is used.
inline void prefetch_share(const void* base, std::size_t bytes, long part, long parts) {
  const char* p = static_cast<const char*>(base);
  const long lines = long(bytes / 64);
  for (long l = lines * part / parts; l < lines * (part + 1) / parts; ++l) __builtin_prefetch(p + 64 * l, 0, 2);
}

// One phase of work shared by nt threads: unit u of [0, total) is run(u, next), next being the unit this thread
// will most likely take after u (its prefetch target), or -1. Thread t first takes its own share(t, lo, hi) in
// order, then what is left of the other shares from their ends, so a thread slowed by the host's other load
// no longer holds the rest at the phase's barrier, and each share is still walked in order (the neighbouring
// units that share a transformed input or a weight panel stay on one thread). taken: total flags, cleared; a
// unit is run by whichever thread sets its flag.
template <class Share, class Run>
inline void take_units(std::atomic<bool>* taken, int nt, int tid, Share share, Run run) {
  long lo, hi;
  share(tid, lo, hi);
  for (long u = lo; u < hi && !taken[u].exchange(true, std::memory_order_relaxed); ++u) run(u, u + 1 < hi ? u + 1 : -1);
  for (int k = 1; k < nt; ++k) {
    share((tid + k) % nt, lo, hi);
    for (long u = hi - 1; u >= lo && !taken[u].exchange(true, std::memory_order_relaxed); --u) run(u, u > lo ? u - 1 : -1);
  }
}

// Keeps v in a register: GCC would otherwise fold its load into each FMA that uses it as a memory operand, a
// load per use (measured: the dot kernel 1.3-1.4x slower on a core with one 512-bit load per cycle; with AVX2 on
// a Zen 3 core, warm data, its 3 x 4 block ran at 2.6 vector FMAs per ns with the loads folded, 4.8 without).
inline void in_register([[maybe_unused]] vf& v) {
#if defined(__GNUC__) && defined(__AVX512F__)
  asm("" : "+v"(v.data));
#elif defined(__GNUC__) && defined(__AVX2__)
  asm("" : "+x"(v.data));
#endif
}

// Dot form. Naive loop, over the segments t < taps (one per kernel tap in the direct conv, one in Winograd):
//   for r < R, c < C:  out[r*ors + c] (+)= sum_t sum_{k < kv*vw} a[r][a_tap[t] + k] * b[c][t*b_tap + k]
// Acc: the sums are added to out (a dot product split over several calls).
template <int R, int C, bool Acc = false>
inline void dot_kernel(float* out, std::ptrdiff_t ors, const float* const* a, const float* const* b, int kv, int taps,
                       const std::ptrdiff_t* a_tap, std::ptrdiff_t b_tap) {
  vf acc[R][C];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) acc[r][c] = vf(0.f);
  for (int t = 0; t < taps; ++t) {
    const float* at[R];
    const float* bt[C];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) at[r] = a[r] + a_tap[t];
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) bt[c] = b[c] + t * b_tap;
    for (int kk = 0; kk < kv; ++kk) {
      vf av[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        av[r] = vf::load_unaligned(at[r] + kk * vw);
        in_register(av[r]);
      }
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) {
        vf bv = vf::load_unaligned(bt[c] + kk * vw);
        in_register(bv);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) acc[r][c] = xsimd::fma(av[r], bv, acc[r][c]);
      }
    }
  }
#if defined(__AVX512F__)
  if constexpr (R * C <= 32) {  // all sums at once: a shuffle tree per 16 instead of R * C horizontal sums
    constexpr int G = (R * C + 15) / 16;
    __m512 v[16], sums[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};  // lane q of sums[g]: sum 16 g + q
#pragma GCC unroll 2
    for (int g = 0; g < G; ++g) {
#pragma GCC unroll 16
      for (int q = 0; q < 16; ++q) v[q] = 16 * g + q < R * C ? __m512(acc[(16 * g + q) / C][(16 * g + q) % C]) : _mm512_setzero_ps();
      sums[g] = hsum16(v);
    }
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {  // row r's C sums (r * C + c) moved to the low lanes, one masked store
      constexpr __mmask16 row = __mmask16((1u << C) - 1);
      const __m512i at = _mm512_add_epi32(lane, _mm512_set1_epi32(r * C));
      __m512 v = r == 0 ? sums[0] : G == 1 ? _mm512_permutexvar_ps(at, sums[0]) : _mm512_permutex2var_ps(sums[0], at, sums[1]);
      if constexpr (Acc) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(row, out + r * ors));
      _mm512_mask_storeu_ps(out + r * ors, row, v);
    }
    return;
  }
#elif defined(__AVX2__)
  {  // the sums in groups of 8, each one shuffle tree; then copied out row by row
    constexpr int G = (R * C + 7) / 8;
    alignas(32) float sums[8 * G];
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g) {
      __m256 v[8];
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q) v[q] = 8 * g + q < R * C ? __m256(acc[(8 * g + q) / C][(8 * g + q) % C]) : _mm256_setzero_ps();
      _mm256_store_ps(sums + 8 * g, hsum8(v));
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) out[r * ors + c] = Acc ? out[r * ors + c] + sums[r * C + c] : sums[r * C + c];
    return;
  }
#endif
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) out[r * ors + c] = Acc ? out[r * ors + c] + xsimd::hadd(acc[r][c]) : xsimd::hadd(acc[r][c]);
}
// Register blocks (tiles x channels). With AVX-512 a block of 24 sums (24 accumulators, and 3 or 4 input
// vectors and one weight vector live: 28-29 of the 32 registers) ends in two shuffle trees (hsum16): 4 x 6, or
// 3 x 8 where the tiles come in threes (the 9x9 maps' 9 tiles). Measured alone, warm data, GFMA/s: 9 tiles x 256
// channels 3 x 8 83, 3 x 5 (one tree) 70-74, 3 x 4 63; 4 tiles x 512 channels 4 x 6 81-84, 4 x 7 81-82, 4 x 5
// 76, 4 x 4 69; in-process pairs, the 256@9 and 512@5 blocks took 0.97-0.98 of the time they took with 3 x 5 and
// 4 x 4, at d 0.25 and 0.75. AVX2 has 16 vector registers: 3 x 4 (12 sums, two hsum8 trees) fills them; 4 x 6
// spilled, and the gated 256@9 block at density 0.75 took 61 ms against 47 with 3 x 4 (2 x 4 and 3 x 3: 47).
constexpr int dot_r = vw >= 16 ? 4 : 3, dot_c = vw >= 16 ? 8 : 4, dot_sums = vw >= 16 ? 24 : 12;
struct reg_block {
  int rows, cols;
};
inline reg_block dot_block(long rows) {
  if (vw < 16) return {dot_r, dot_c};
  return rows % 4 != 0 && rows % 3 == 0 ? reg_block{3, 8} : reg_block{4, 6};
}
// The direct conv1 (stride 2) of a sample with fewer output positions than this runs in dot form, 9 taps per dot
// product, its weights taken by pointer from the open rows: the packed form gathers and transposes all of them
// (c x 9 x cinp floats) per sample for only that many rows of products. Measured, in-process pairs, 2 threads, batch
// 64, dot / packed time: 256->512 s2 (25 positions) 0.80 / 0.77 / 0.76 at densities 0.25 / 0.5 / 0.75, 128->256 s2
// (81) 0.99 / 0.98 / 0.95, 64->128 s2 (289) 1.03-1.04, on a Xeon core (2 MB L2) whose gather from W1p beyond L2
// ran at ~10 GB/s; on a Zen 5 machine 256->512 s2 0.99-1.06 and 128->256 s2 0.94-0.97 while its host was quiet, but
// 1.06-1.18 in a stretch when the dense blocks ran ~1.9x slower. A 4 x 4 block (3 x 4 with AVX2): its 4 weight
// rows, 9 x cinp each (3 x cinp per call from 256 channels: direct_tap_group), stay in L1 while the row blocks
// pass (3 x 5: 1.01-1.02 of its time).
constexpr int direct_dot_positions = 128;
inline constexpr reg_block direct_db{dot_r, 4};
// Taps per call of the direct dot form: all 9 where a column block's weight rows (9 taps x cinp each) fit in L1
// beside the row blocks' inputs, else 3 (the partial sums added to the output). Measured, in-process pairs, 3 / 9
// taps: 256->512 s2 (256 input channels, 36 KB of weight rows) 0.938-0.945 at density 0.25, 0.920-0.923 at 0.5,
// 0.922-0.924 at 0.75; 128->256 s2 (18 KB) 1.03-1.05 at 0.25.
constexpr int direct_tap_group(int cinp) { return direct_db.cols * 9 * cinp * int(sizeof(float)) <= 24 * 1024 ? 9 : 3; }
// A sample's last vector of open channels with this many live lanes or fewer goes to the dot form in conv1's
// packed path: the broadcast micro-kernel costs a whole vector whatever its live lanes, the dot form costs its
// channels (measured, 36 points, 1 thread: 81 tiles x 64 channels, one vector 35 us, dot form 9 us for 1
// channel, 13 for 5, 26 for 10, 35 for 12; 25 x 128: 19 us against 4, 9, 14 and 16). With AVX2 (8 lanes), 3: the
// 64@34 block at density 0.25 took 0.957-0.991 of its time with 5 (in-process pairs, five runs; 2 lanes: 1.05 of
// 3's, 4: 1.005), conv1's products 0.91-0.97.
constexpr int dot_tail_max = vw == 8 ? 3 : vw * 5 / 8;
using dot_fn = void (*)(float*, std::ptrdiff_t, const float* const*, const float* const*, int, int, const std::ptrdiff_t*, std::ptrdiff_t);
inline constexpr std::ptrdiff_t one_segment[1] = {0};
template <bool Acc, int R, int C>
constexpr dot_fn dot_entry() {
  if constexpr (R * C <= dot_sums) return &dot_kernel<R, C, Acc>;
  else return nullptr;
}
template <bool Acc, int R, int... C>
constexpr std::array<dot_fn, sizeof...(C)> dot_row(std::integer_sequence<int, C...>) {
  return {dot_entry<Acc, R, C + 1>()...};
}
template <bool Acc, int... R>
constexpr std::array<std::array<dot_fn, dot_c>, sizeof...(R)> dot_table(std::integer_sequence<int, R...>) {
  return {dot_row<Acc, R + 1>(std::make_integer_sequence<int, dot_c>{})...};
}
// r * c <= dot_sums.
inline dot_fn pick_dot(int r, int c, bool acc = false) {
  static constexpr auto t = dot_table<false>(std::make_integer_sequence<int, dot_r>{});
  static constexpr auto ta = dot_table<true>(std::make_integer_sequence<int, dot_r>{});
  return (acc ? ta : t)[r - 1][c - 1];
}

// Indexed-B form, over `panels` column panels of NV vectors (panel p's B at b + p * b_ps, its C columns from
// p * NV * vw). Naive loop: for p < panels, m < MR, n < NV*vw:
//   c[m*ldc + p*NV*vw + n] = sum_{j < k} a[m*a_rs + j] * b[p*b_ps + idx[j]*b_ld + n]
template <int MR, int NV>
inline void idx_kernel(float* c, std::ptrdiff_t ldc, const float* a, std::ptrdiff_t a_rs, const float* b, std::ptrdiff_t b_ld,
                       const int* idx, int k, int panels, std::ptrdiff_t b_ps) {
  for (int p = 0; p < panels; ++p, b += b_ps, c += NV * vw) {
    vf acc[MR][NV];
#pragma GCC unroll 16
    for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[m][v] = vf(0.f);
    for (int j = 0; j < k; ++j) {
      const float* bp = b + std::ptrdiff_t(idx[j]) * b_ld;
      vf bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) bv[v] = vf::load_unaligned(bp + v * vw);
#pragma GCC unroll 16
      for (int m = 0; m < MR; ++m) {
        const vf av(a[m * a_rs + j]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[m][v] = xsimd::fma(av, bv[v], acc[m][v]);
      }
    }
#pragma GCC unroll 16
    for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[m][v].store_unaligned(c + m * ldc + v * vw);
  }
}
using idx_fn = void (*)(float*, std::ptrdiff_t, const float*, std::ptrdiff_t, const float*, std::ptrdiff_t, const int*, int, int, std::ptrdiff_t);
// Rows of its register block for nv column vectors: a sample's few open channels (nv up to half the full width)
// take up to 12 rows, else ukr_mr. Six rows of one vector keep 6 FMA chains in flight where two FMA units of 4
// cycles' latency need 8 (measured, 25 tiles x 128 channels: one vector 68 -> 88 GFMA/s, two 96 -> 103).
inline constexpr int idx_mr_max = 12;
constexpr bool idx_narrow(int nv) { return 2 * nv <= detail::ukr_nv; }
constexpr int idx_mr(int nv) { return idx_narrow(nv) ? idx_mr_max : detail::ukr_mr; }
template <int NV, int MR>
constexpr idx_fn idx_entry() {
  if constexpr (MR <= idx_mr(NV)) return &idx_kernel<MR, NV>;
  else return nullptr;
}
template <int NV, int... M>
constexpr std::array<idx_fn, sizeof...(M)> idx_row(std::integer_sequence<int, M...>) {
  return {idx_entry<NV, M + 1>()...};
}
template <int... NV>
constexpr std::array<std::array<idx_fn, idx_mr_max>, sizeof...(NV)> idx_table(std::integer_sequence<int, NV...>) {
  return {idx_row<NV + 1>(std::make_integer_sequence<int, idx_mr_max>{})...};
}
// mr <= idx_mr(nv).
inline idx_fn pick_idx(int mr, int nv) {
  static constexpr auto t = idx_table(std::make_integer_sequence<int, detail::ukr_nv>{});
  return t[nv - 1][mr - 1];
}
// f(n0, nv, panels) over the column panels of `cols` columns (a multiple of vw): the whole ones (ukr_nv vectors) in one
// call of the indexed kernel, a narrower last one apart. With a sample's 16 open channels in the reduction, each
// panel on its own paid the call's start and end (its sums zeroed and stored while few FMAs run) for 16 steps: the
// 64@34 block at density 0.25 took 0.946 of the time with its 4 panels in one call (in-process pairs, 60 rounds).
template <class F>
inline void panel_runs(int cols, F f) {
  const int full = cols / detail::panel_w;
  if (full > 0) f(0, detail::ukr_nv, full);
  if (cols % detail::panel_w) f(full * detail::panel_w, cols % detail::panel_w / vw, 1);
}
// f(t0, mr) over register blocks of at most mr_max of `rows` rows, as few as mr_max allows, their sizes differing
// by at most one (25 tiles as 9 + 8 + 8, not 12 + 12 + 1; 9 as 5 + 4, not 6 + 3: with AVX2 a 3 x 2 block keeps
// too few FMA chains in flight, and the 256@9 block took 0.97-0.99 of the time in 5 + 4; with AVX-512 equal
// blocks measured no faster than full ones and a shorter last).
template <class F>
inline void row_blocks(int rows, int mr_max, F f) {
  const int nb = (rows + mr_max - 1) / mr_max;
  for (int b = 0, t0 = 0; b < nb; ++b) {
    const int mr = rows / nb + (b < rows % nb);
    f(t0, mr);
    t0 += mr;
  }
}


#if defined(__AVX512F__)
// Quad form of conv1's packed products, for a sample with few open channels. Each lane holds one of 4 output
// channels and one of 4 consecutive input channels: a tile's 4 inputs are broadcast as one 128-bit value, so that
// open channels fill vectors 4 at a time (the pair form before it, 8 channels x 2 inputs, filled them 8 at a time:
// the masks of the 64@34 benchmark at density 0.25 have 1224 lanes for 1024 open channels in pairs, 1108 in
// quads) and each broadcast load feeds that many FMAs. The four quarters of each channel are summed at the end.
// Measured, in-process pairs, 2 threads, batch 64, 64@34, quad / pair time of the gated block: the benchmark's
// masks at density 0.25 0.974 and 0.973 (order reversed), at 0.1 0.959; every sample with exactly 8, 12, 16,
// 20 or 24 open channels 0.974, 0.947, 0.981, 0.955, 0.976-1.013. Naive loop, for m < MR, n < NV * 4 (b: rows of
// NV * 16 floats):
//   c[m*ldc + n] = sum_{j < kq} sum_{q < 4} a[m*a_rs + 4j + q] * b[j][4n + q]
// c's lanes from NV * 4 to the next multiple of 16 are written 0.
template <int MR, int NV>
inline void quad_kernel(float* c, std::ptrdiff_t ldc, const float* a, std::ptrdiff_t a_rs, const float* b, int kq) {
  vf acc[MR][NV];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[m][v] = vf(0.f);
  for (int j = 0; j < kq; ++j) {
    vf bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      bv[v] = vf::load_unaligned(b + (std::ptrdiff_t(j) * NV + v) * vw);
      in_register(bv[v]);
    }
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      const vf av(_mm512_broadcast_f32x4(_mm_loadu_ps(a + m * a_rs + 4 * j)));
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[m][v] = xsimd::fma(av, bv[v], acc[m][v]);
    }
  }
  // Per 4 vectors: lane_sums4 leaves, in 128-bit lane n, channel n of each of them; one permute puts them in
  // channel order.
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const auto vec = [&](int m, int v) { return v < NV ? __m512(acc[m][v]) : _mm512_setzero_ps(); };
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 2
    for (int g = 0; g < NV; g += 4)
      _mm512_storeu_ps(c + m * ldc + 4 * g, _mm512_permutexvar_ps(order, lane_sums4(vec(m, g), vec(m, g + 1), vec(m, g + 2), vec(m, g + 3))));
}
using quad_fn = void (*)(float*, std::ptrdiff_t, const float*, std::ptrdiff_t, const float*, int);
inline constexpr int quad_nv_max = 6;  // up to 24 open channels
// Rows of its register block for nv quad vectors: up to 24 sums (with nv b vectors and the broadcast, 29-31 of
// the 32 registers). A band of 9 tiles runs as 5 + 4 rows up to 20 channels, 3 x 3 beyond (as one block of 9 rows,
// up to 12 channels, it took 1.03 of the time: 27 sums leave too few registers).
constexpr int quad_mr(int nv) { return nv <= 3 ? 8 : nv == 4 ? 6 : nv == 5 ? 5 : 4; }
template <int NV, int MR>
constexpr quad_fn quad_entry() {
  if constexpr (MR <= quad_mr(NV)) return &quad_kernel<MR, NV>;
  else return nullptr;
}
template <int NV, int... M>
constexpr std::array<quad_fn, 8> quad_row(std::integer_sequence<int, M...>) {
  return {quad_entry<NV, M + 1>()...};
}
template <int... NV>
constexpr std::array<std::array<quad_fn, 8>, sizeof...(NV)> quad_table(std::integer_sequence<int, NV...>) {
  return {quad_row<NV + 1>(std::make_integer_sequence<int, 8>{})...};
}
// mr <= quad_mr(nv), nv <= quad_nv_max.
inline quad_fn pick_quad(int mr, int nv) {
  static constexpr auto t = quad_table(std::make_integer_sequence<int, quad_nv_max>{});
  return t[nv - 1][mr - 1];
}
// The quad kernel's panel: panel[j][g][n][q] = src[4g + n][4j + q] for j < kq (a multiple of 4), g < nv; rows
// 4g + n >= c are zero. 4 x 4 transposes of 128-bit pieces, read straight from the rows.
inline void pack_quads(float* panel, int nv, const float* const* src, int c, int kq) {
  for (int g = 0; g < nv; ++g)
    for (int j0 = 0; j0 < kq; j0 += 4) {
      __m512 r[4];
      for (int q = 0; q < 4; ++q) r[q] = 4 * g + q < c ? _mm512_loadu_ps(src[4 * g + q] + 4 * j0) : _mm512_setzero_ps();
      const __m512 t0 = _mm512_shuffle_f32x4(r[0], r[1], 0x44), t1 = _mm512_shuffle_f32x4(r[0], r[1], 0xEE);  // rows 0, 1
      const __m512 t2 = _mm512_shuffle_f32x4(r[2], r[3], 0x44), t3 = _mm512_shuffle_f32x4(r[2], r[3], 0xEE);  // rows 2, 3
      const __m512 o[4] = {_mm512_shuffle_f32x4(t0, t2, 0x88), _mm512_shuffle_f32x4(t0, t2, 0xDD), _mm512_shuffle_f32x4(t1, t3, 0x88),
                           _mm512_shuffle_f32x4(t1, t3, 0xDD)};
      for (int t = 0; t < 4; ++t) _mm512_storeu_ps(panel + (std::ptrdiff_t(j0 + t) * nv + g) * vw, o[t]);
    }
}
#endif

// panel[k][j] = src[j][k] for k < kp, j < ld (a multiple of vw); rows j >= c are zero. Reads the rows
// through their pointers: no gathered copy of them is written first. tmp: ld * kp floats (used without AVX-512
// or AVX2).
inline void pack_rows(float* panel, int ld, const float* const* src, int c, int kp, float* tmp) {
#if defined(__AVX512F__) || defined(__AVX2__)
  (void)tmp;
  for (int j0 = 0; j0 < ld; j0 += vw)
    for (int k0 = 0; k0 < kp; k0 += vw) {
      blk::reg r[vw];
      for (int q = 0; q < vw; ++q) r[q] = j0 + q < c ? vf::load_unaligned(src[j0 + q] + k0) : vf(0.f);
      blk::transpose(r);
      for (int q = 0; q < vw; ++q) vf(r[q]).store_unaligned(panel + std::ptrdiff_t(k0 + q) * ld + j0);
    }
#else
  for (int j = 0; j < ld; ++j) {
    if (j < c) std::copy_n(src[j], kp, tmp + std::ptrdiff_t(j) * kp);
    else std::fill_n(tmp + std::ptrdiff_t(j) * kp, kp, 0.f);
  }
  detail::transpose(panel, ld, tmp, kp, ld, kp, false);
#endif
}

// ---------------------------------------------------------------------------------------------
// Weight preparation (when the prepared copy is stale).
// ---------------------------------------------------------------------------------------------
// U[xi*xs + k*ks + n] = (G g G^T)[xi] (F(M,3)) of the 3x3 filter between "row" k and "column" n, where
// g = w[co][ci] * scale[co] with (k, n) = (co, ci) if k_is_out, else (ci, co). Columns n >= real stay 0.
// Rows k in [k0, k1).
// panel_k > 0: each xi slice is panel-packed instead (detail::panel_at with panel_k rows; ks unused).
template <int M>
inline void wino_weights(float* U, std::ptrdiff_t xs, std::ptrdiff_t ks, int np, const float* w, int c_out, int c_in,
                         const float* scale, bool k_is_out, int k0, int k1, float* tmp /* 9 * np */, int panel_k) {
  constexpr int A = M + 2;
  const int real_n = k_is_out ? c_in : c_out;
  for (int k = k0; k < k1; ++k) {
    std::fill(tmp, tmp + 9 * np, 0.f);
    for (int n = 0; n < real_n; ++n) {
      const int co = k_is_out ? k : n, ci = k_is_out ? n : k;
      const float s = scale ? scale[co] : 1.f;
      const float* src = w + (std::ptrdiff_t(co) * c_in + ci) * 9;
      for (int t = 0; t < 9; ++t) tmp[t * np + n] = src[t] * s;
    }
    for (int c = 0; c < np; c += vw) {
      vf gg[3][3], u[A * A];
      for (int t = 0; t < 9; ++t) gg[t / 3][t % 3] = vf::load_aligned(tmp + t * np + c);
      detail::wino_weight_tile<M>(gg, u);
      const std::ptrdiff_t at = panel_k ? detail::panel_at(panel_k, np, k, c) : std::ptrdiff_t(k) * ks + c;
      for (int q = 0; q < A * A; ++q) u[q].store_unaligned(U + q * xs + at);
    }
  }
}
inline void wino_weights(int m, float* U, std::ptrdiff_t xs, std::ptrdiff_t ks, int np, const float* w, int c_out, int c_in,
                         const float* scale, bool k_is_out, int k0, int k1, float* tmp, int panel_k = 0) {
  if (m == 3) wino_weights<3>(U, xs, ks, np, w, c_out, c_in, scale, k_is_out, k0, k1, tmp, panel_k);
  else wino_weights<4>(U, xs, ks, np, w, c_out, c_in, scale, k_is_out, k0, k1, tmp, panel_k);
}


// A block's weights in the kernels' layouts (conv1 transformed or packed with BN1's scale folded, conv2
// transformed), kept by the block between calls: at 512 channels they are 54 MB, and writing them on every
// call cost more than the products of a density-0.25 block. They are rebuilt whenever the content key of
// the raw weights and scale changes (an optimizer step, a loaded checkpoint), so a stale copy is never used.
// Like a training forward (BN's running statistics), an eval forward writes to its block: one block must not
// run two forwards at once.
struct prepared_weights {
  prepared_weights() = default;
  // A copy starts empty: the copied block may change its weights independently.
  prepared_weights(const prepared_weights&) {}
  prepared_weights& operator=(const prepared_weights&) {
    key = 0;
    return *this;
  }
  detail::aligned_buffer u1, u2, u3;  // conv1 (Winograd U1 or direct W1p), conv2 U2, the fused shortcut's W3p
  std::uint64_t key = 0;              // content key of what u1, u2, u3 hold; 0: nothing
};

// Content key of part `part` of `parts` of the raw weights (each array split evenly): four interleaved
// multiply-xor streams over the bytes, a ~1 ms read per thread at 512 channels against the 75 MB write it
// saves. The parts' keys are combined by combine_keys.
inline constexpr std::uint64_t key_mul = 0x9E3779B97F4A7C15ull;
inline std::uint64_t content_key(std::initializer_list<std::pair<const float*, std::size_t>> arrays, int part, int parts) {
  constexpr std::uint64_t mul = key_mul;
  std::uint64_t h[4] = {1, 2, 3, 4};
  for (const auto& [whole, total] : arrays) {
    long lo, hi;
    split_range(long(total), parts, part, lo, hi);
    const float* data = whole + lo;
    const std::size_t count = std::size_t(hi - lo);
    std::size_t i = 0;
    for (; i + 8 <= count; i += 8)
      for (int k = 0; k < 4; ++k) {
        std::uint64_t word;
        std::memcpy(&word, data + i + 2 * k, 8);
        h[k] = (h[k] ^ word) * mul;  // a bijection of h for each word: no single change can cancel
      }
    for (; i < count; ++i) {
      std::uint32_t word;
      std::memcpy(&word, data + i, 4);
      h[0] = (h[0] ^ word) * mul;
    }
    h[1] = (h[1] ^ count) * mul;
  }
  return ((h[0] ^ (h[1] >> 29)) * mul) ^ ((h[2] ^ (h[3] >> 31)) * mul);
}
// The key of the whole from the parts' keys, in order, and the layout (Winograd tile size) prepared. Never 0
// (0 marks "nothing prepared").
inline std::uint64_t combine_keys(const std::uint64_t* keys, int parts, int layout) {
  std::uint64_t key = (std::uint64_t(parts) << 8) | std::uint64_t(layout);
  for (int q = 0; q < parts; ++q) key = (key ^ keys[q]) * key_mul;
  return key == 0 ? 1 : key;
}

// ---------------------------------------------------------------------------------------------
// The block's two gated convolutions.
// ---------------------------------------------------------------------------------------------
struct block_params {
  int n, c_in, h, w, c_out, stride;  // conv1: 3x3, padding 1, c_in -> c_out, stride; conv2: 3x3 s1 p1, c_out -> c_out
  int oh() const { return (h + 2 - 3) / stride + 1; }
  int ow() const { return (w + 2 - 3) / stride + 1; }
};

// The block's tail, applied as each sample's conv2 output is written (one pass over the output, not three):
//   out[c][p] = relu(conv2[c][p] * scale[c] + shift[c] + r),  r = residual[c][p] * res_scale[c] + res_shift[c]
// (BN2 folded; the shortcut is x itself, or the downsample conv's output with its BN folded: res_scale null
// means r = residual). With shortcut_w (stride-2 blocks, see fuses_shortcut), the kernel computes the
// downsample conv itself from its own channels-last copy of x: residual is then unused.
struct block_tail {
  const float* scale;
  const float* shift;
  const float* residual;  // [n, c_out, oh, ow]
  const float* res_scale = nullptr;
  const float* res_shift = nullptr;
  const float* shortcut_w = nullptr;  // the downsample 1x1 conv's weights [c_out, c_in], its stride conv1's
  // Channel c's tail as relu(v * scale + residual * rs + sh).
  float rs(int c) const { return res_scale ? res_scale[c] : 1.f; }
  float sh(int c) const { return shift[c] + (res_shift ? res_shift[c] : 0.f); }
};

// o[c*ld + p] = the tail of channel c applied to it in place, c < c_out, p < count; residual laid out like o.
inline void apply_tail(float* o, const block_tail& t, const float* residual, int c_out, std::ptrdiff_t ld, std::ptrdiff_t count) {
  for (int c = 0; c < c_out; ++c) {
    float* oc = o + std::ptrdiff_t(c) * ld;
    const float* rc = residual + std::ptrdiff_t(c) * ld;
    const float rs = t.rs(c), sh = t.sh(c);
    const vf s(t.scale[c]), r(rs), b(sh), zero(0.f);
    std::ptrdiff_t p = 0;
    for (; p + vw <= count; p += vw)
      xsimd::max(xsimd::fma(vf::load_unaligned(oc + p), s, xsimd::fma(vf::load_unaligned(rc + p), r, b)), zero).store_unaligned(oc + p);
    for (; p < count; ++p) oc[p] = std::max(oc[p] * t.scale[c] + (rc[p] * rs + sh), 0.f);
  }
}

#if defined(__AVX512F__) || defined(__AVX2__)
// dst[j*ldd + i] = post_j(i, pre(i, src[i*lds + j])) for i < rows, j < cols, vw channels at a time, in two passes:
//   1. their vw x vw register blocks down all positions, transposed into a staging row per channel (in L1 / L2);
//   2. channel by channel, its row from the staging row: the whole aligned cache lines of dst streamed with
//      non-temporal stores (no line read for ownership first; caller: detail::stream_fence), each from unaligned
//      loads of the staging row, its first and last partial lines stored plainly.
// src rows hold whole vectors (lds >= round_up(cols)). pre(i, j0, v): row i's columns j0.. as loaded. post(j)
// returns channel j's out(i0, n, v): its positions i0.. (the first n below rows) before they are stored, so that
// what it needs per channel is set up once. touch(j): prefetches what out reads for channel j, called `lead`
// channels ahead. ahead: ahead_bytes to bring into L2 meanwhile, a share per channel.
// A row's misalignment is the staging loads' concern, not the registers': the single pass before it, which put each
// channel's lines together from its vectors of two line blocks (a realignment, one blend and two permutes per vector
// with AVX2) and kept two blocks' vectors of vw channels live, spilled; measured alone, one 64-channel 34x34 sample
// (residual in cache, output to memory) took 47 us with it, 26.5 in two passes; in-process pairs, 2 threads, the
// gated blocks at d 0.25 took 0.94-0.98 of the time at every block shape, the outputs equal to the last bit.
// Non-temporal stores: on 64@34 at density 0.25 (paired rounds) 0.41-0.43 of the dense block's time with plain
// stores, 0.35-0.36 streamed. With AVX2 a vector is half a line, and a line's two halves are streamed back to back:
// a line's halves vw channels apart wrote 5 GB/s against 22 for whole lines (a synthetic run, 2 threads, Zen 3).
template <class Pre, class Post, class Touch>
inline void transpose_down(float* dst, std::ptrdiff_t ldd, const float* src, std::ptrdiff_t lds, int rows, int cols, Pre pre,
                           Post post, Touch touch, const void* ahead, std::size_t ahead_bytes) {
  constexpr int L = 64 / int(sizeof(float)), lv = L / vw, lead = 4;
  const std::ptrdiff_t sld = round_up(rows, L);
  float* stage = gscratch(g_stage).get<float>(std::size_t(vw) * sld);
  for (int c = 0; c < std::min(lead, cols); ++c) touch(c);
  for (int j0 = 0; j0 < cols; j0 += vw) {
    const int nc = std::min(vw, cols - j0);
    for (int i0 = 0; i0 < rows; i0 += vw) {
      const int nr = std::min(vw, rows - i0);
      blk::reg r[vw];
      for (int k = 0; k < vw; ++k) r[k] = k < nr ? pre(i0 + k, j0, vf::load_unaligned(src + (i0 + k) * lds + j0)) : vf(0.f);
      blk::transpose(r);
      for (int k = 0; k < nc; ++k) vf(r[k]).store_aligned(stage + k * sld + i0);
    }
    for (int k = 0; k < nc; ++k) {
      const int c = j0 + k;
      if (c + lead < cols) touch(c + lead);
      prefetch_share(ahead, ahead_bytes, c, cols);
      const auto out = post(c);
      float* d = dst + std::ptrdiff_t(c) * ldd;
      const float* st = stage + k * sld;
      const int head = std::min(rows, int((L - reinterpret_cast<std::uintptr_t>(d) / sizeof(float) % L) % L));
      const auto plain = [&](int p0, int p1) {
        for (int p = p0; p < p1; p += vw) {
          const int n = std::min(vw, p1 - p);
          blk::store_first(d + p, n, out(p, n, blk::load_first(st + p, n)));
        }
      };
      plain(0, head);
      int p = head;
      for (; p + L <= rows; p += L)
        for (int h = 0; h < lv; ++h) blk::stream(d + p + h * vw, out(p + h * vw, vw, vf::load_unaligned(st + p + h * vw)));
      plain(p, rows);
    }
  }
}
#endif

// dst[j*ldd + i] = tail_j(src[i*lds + j]) for i < rows, j < cols (positions i, channels j; residual laid out like
// dst): the tail applied to each transposed vector before it is stored, so conv2's output is written once,
// finished. ahead, ahead_bytes: as transpose_down's.
inline void transpose_tail(float* dst, std::ptrdiff_t ldd, const float* src, std::ptrdiff_t lds, int rows, int cols,
                           const block_tail& t, const float* residual, const void* ahead, std::size_t ahead_bytes) {
#if defined(__AVX512F__) || defined(__AVX2__)
  transpose_down(
      dst, ldd, src, lds, rows, cols, [](int, int, vf v) { return v; },
      [&](int c) {
        const float* rc = residual + std::ptrdiff_t(c) * ldd;
        const vf sc(t.scale[c]), rs(t.rs(c)), sh(t.sh(c));
        return [=](int i0, int n, vf v) { return xsimd::max(xsimd::fma(v, sc, xsimd::fma(blk::load_first(rc + i0, n), rs, sh)), vf(0.f)); };
      },
      [&](int c) {  // the row's first lines (the hardware prefetcher takes up longer rows from there)
        const float* rc = residual + std::ptrdiff_t(c) * ldd;
        for (int i = 0; i < std::min(rows, 128); i += 16) __builtin_prefetch(rc + i, 0, 2);
      },
      ahead, ahead_bytes);
#else
  (void)ahead, (void)ahead_bytes;
  detail::transpose(dst, ldd, src, lds, rows, cols, false);
  apply_tail(dst, t, residual, cols, ldd, rows);
#endif
}

// The same with a channels-last residual laid out like src, already scaled (the fused shortcut); sc, sh: the
// tail's scale and shift, padded to whole vectors. Tail first, on channel vectors, then the transpose:
//   dst[j*ldd + i] = relu(src[i*lds + j] * sc[j] + res[i*lds + j] + sh[j])
// Without transpose_down src is overwritten.
inline void transpose_tail_cl(float* dst, std::ptrdiff_t ldd, float* src, std::ptrdiff_t lds, int rows, int cols, const float* sc,
                              const float* sh, const float* res, const void* ahead, std::size_t ahead_bytes) {
  const auto tail = [&](int i, int j0, vf v) {
    const vf r = vf::load_unaligned(res + std::ptrdiff_t(i) * lds + j0) + vf::load_unaligned(sh + j0);
    return xsimd::max(xsimd::fma(v, vf::load_unaligned(sc + j0), r), vf(0.f));
  };
#if defined(__AVX512F__) || defined(__AVX2__)
  transpose_down(dst, ldd, src, lds, rows, cols, tail, [](int) { return [](int, int, vf v) { return v; }; }, [](int) {}, ahead, ahead_bytes);
#else
  (void)ahead, (void)ahead_bytes;
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; j += vw) tail(i, j, vf::load_unaligned(src + std::ptrdiff_t(i) * lds + j)).store_unaligned(src + std::ptrdiff_t(i) * lds + j);
  detail::transpose(dst, ldd, src, lds, rows, cols, false);
#endif
}

// The kernels' Winograd tile size: F(3,3) wherever its tiles need no more products than F(4,3)'s, which adds the
// 17x17 maps (900 per channel pair either way) to the dense conv2d's 9x9 and 5x5. There its 25 transform points
// against 36 mean fewer packs and gathers of a sample's open weight rows, and 36 tiles per sample against 25 fill
// the products' row blocks better. Measured, in-process pairs, 2 threads, batch 64, F(3,3) / F(4,3) time of the
// gated block: 128@17 0.91-0.94 at d 0.25, 0.90-0.91 at 0.5 and 0.75, 0.88 at 1; 64->128 s2 0.94-0.97. The dense
// conv2d keeps F(4,3) at 17x17: F(3,3) took its blocks 1.03-1.08 (128@17) and 1.01-1.05 (64->128 s2) of the time.
inline int tile_size(int oh, int ow) { return detail::wino_products(3, oh, ow) <= detail::wino_products(4, oh, ow) ? 3 : 4; }
// Winograd tiles of one sample's conv2 output. From per_sample_tiles on, samples run as chunks of one (see
// gated_block_forward).
inline int sample_tiles(const block_params& p) {
  const int m = tile_size(p.oh(), p.ow());
  return ((p.oh() + m - 1) / m) * ((p.ow() + m - 1) / m);
}
inline constexpr int per_sample_tiles = 25;
// A sample on its own whose open channels (rounded up to whole vectors) are at most 1 / band_open_ratio of its
// tiles runs conv1 (packed form) and conv2 in bands of band_rows tile rows. Its open weight rows of every transform
// point are packed (conv1: X x c_in x ld floats) or gathered (conv2: X x |A| x c_out) once and stay in L2; then
// band by band come the input transform and conv1's products, or conv2's products and output transform, so that
// the transformed input and conv2's products (746 KB each per sample at 64@34) no longer go through L3 between
// them. Measured at 64@34, gated / dense in separate processes, 8-14 each: d 0.25 0.357 -> 0.342 (conv1), then
// 0.344 -> 0.338 (conv2); d 0.1 0.292 -> 0.270 -> 0.258; d 0.5 0.515 -> 0.497, then a tie. Banded whatever their
// open channels, samples at d 0.75 and 1 took 0.689 against 0.662 and 0.807 against 0.778: their panels crowd L2.
// Two tile rows per band: 0.353 against 0.345 (conv1), 0.339 against 0.334 (conv2).
inline constexpr int band_rows = 1, band_open_ratio = 2;
// f(t0, nt, step) over the runs of tiles of tile rows [r0, r1) that use transform point xi: tiles t0, t0 + step, ..., nt
// of them (counted from the map's first tile). All of them in one run, but where F(2,3) edge tiles (detail::wino_edges)
// skip the point: each row's last tile for the points F(2,3) lacks in x (2 of F(4,3)'s 6, 1 of F(3,3)'s 5), the last
// row for those in y. Where that leaves one tile per row (5x5 maps), those tiles are one run, a row apart. Measured,
// in-process pairs, 2 threads, batch 64, time against whole tiles: 64@34 (2704 products per channel pair instead of
// 2916) 0.960-0.988 at d 0.25, 0.955-0.985 at 0.1, 0.962-0.975 at 0.5, 0.951-0.955 at 0.75; 128@17 (841 instead of
// 900) 0.983-0.991 at d 0.25, 0.974-0.978 at 0.5; the outputs within 1.4e-5 of theirs on values up to 8.4. In the
// shared batch (AVX2, Zen 3), 512@5 (81 instead of 100): 0.88 at d 0.25, 0.97 at 0.5, 0.91 at 0.75 (conv1's
// products 0.86; conv2's 0.90-1.0, its runs of 2 tiles keeping 4 FMA chains in flight instead of 8); 256->512 s2
// (conv2 only) 0.92 and 0.97 at d 0.25 and 0.75.
template <class F>
inline void point_runs(const detail::wino_edges& e, const detail::wino_geom& g, int xi, int r0, int r1, F f) {
  const int a = g.m + 2;
  if (e.y && !detail::edge_point(g.m, xi / a)) r1 = std::min(r1, g.th - 1);
  if (r1 <= r0) return;
  if (!e.x || detail::edge_point(g.m, xi % a)) f(r0 * g.tw, (r1 - r0) * g.tw, 1);
  else if (g.tw == 2) f(r0 * g.tw, r1 - r0, g.tw);
  else
    for (int r = r0; r < r1; ++r) f(r * g.tw, g.tw - 1, 1);
}

// The gate computed inside gated_block_forward, from the channel sums that its channels-last copy of each sample
// of x takes as it goes (a pass over x saved): sample i's channel means of x (c_in values) -> its open output
// channels, increasing. Called from the kernel's threads, for one sample at a time.
using gate_fn = std::function<void(int sample, const float* means, std::vector<int>& open)>;
// Whether gated_block_forward takes a gate_fn for this block: where samples run one at a time.
inline bool fuses_gate(const block_params& p) { return sample_tiles(p) >= per_sample_tiles; }

// Whether gated_block_forward can compute the block's 1x1 downsample (stride p.stride, no padding) itself:
// with stride 2 conv1 runs direct, and its centre tap reads exactly the 1x1 conv's input, x[2y][2x].
inline bool fuses_shortcut(const block_params& p) { return p.stride > 1; }

// Whether gated_block_forward handles this block (else the caller takes its generic path).
inline bool gated_block_supported(const block_params& p) {
  // conv2 must take Winograd (use_winograd's rule: >= 16 channels).
  return p.c_out >= detail::winograd_min_channels;
}

// o[n] (assigned, [n, c_out, oh, ow]) = tail(conv2(relu(conv1(x[n])[A_n] * s1 + b1), w2[:, A_n])) for every
// sample; samples with no open channel get o[n] = tail(0). A_n: lists[n], or, with gate (fuses_gate), what gate
// returns for sample n, stored in lists. Returns the MACs executed, counted as direct-convolution MACs (9 per
// output and reduction channel, as the FLOPs model does) over the channels computed.
inline std::int64_t gated_block_forward(float* o, const float* x, const float* w1, const float* w2, const float* s1,
                                        const float* b1, const block_tail& tail, const block_params& p,
                                        std::vector<std::vector<int>>& lists, prepared_weights& prepared, const gate_fn& gate = {}) {
  const int n = p.n, ci = p.c_in, co = p.c_out, oh = p.oh(), ow = p.ow();
  const std::ptrdiff_t plane = std::ptrdiff_t(oh) * ow, in_plane = std::ptrdiff_t(p.h) * p.w;
  const conv2d_params p1{n, ci, p.h, p.w, co, 3, 3, p.stride, p.stride, 1, 1};
  const bool wino1 = detail::use_winograd(p1);
  const int cinp = int(round_up(ci, vw)), coutp = int(round_up(co, vw));
  const int nth = omp_get_max_threads();

  // Transform-domain geometry of one sample (conv1 input side and conv2 both sides share tiles: same oh x ow
  // when conv1 is stride 1; conv2 always works on oh x ow).
  const int m = tile_size(oh, ow), X = (m + 2) * (m + 2);
  const auto g2full = detail::make_geom(1, co, oh, ow, co, oh, ow, 1, 1, m);
  const int tiles = g2full.th * g2full.tw;  // per sample, conv2 (and conv1 when stride 1)
  const std::ptrdiff_t vld1 = detail::padded_ld(cinp), mld2 = detail::padded_ld(coutp);

  // conv1 weights: Winograd, U1t[xi][co][ci] (BN1 scale folded), or direct, W1p[co][tap][cinp].
  const std::ptrdiff_t u1_ld = vld1, u1_xi = std::ptrdiff_t(co) * u1_ld;
  float* U1 = wino1 ? prepared.u1.get<float>(X * u1_xi) : nullptr;
  float* W1p = wino1 ? nullptr : prepared.u1.get<float>(std::size_t(co) * 9 * cinp);
  // conv2 weights: U2[xi] (ci x coutp), panel-packed: a sample's open rows of one column panel lie in one
  // contiguous block, in increasing order, which the next panel's prefetch and the hardware prefetcher follow.
  const std::ptrdiff_t u2_xi = std::ptrdiff_t(co) * coutp;
  float* U2 = prepared.u2.get<float>(X * u2_xi);
  // The fused shortcut (tail.shortcut_w): W3p (cinp x coutp, panel-packed, BN's scale folded), and the tail's
  // scale and shift as whole vectors.
  const bool fused_sc = tail.shortcut_w != nullptr;
  SSLGATE_CHECK(!fused_sc || fuses_shortcut(p), value_error, "gated_block_forward", "no fused shortcut at stride {}", p.stride);
  float* U3 = fused_sc ? prepared.u3.get<float>(std::size_t(cinp) * coutp) : nullptr;
  std::vector<float> tail_sc(fused_sc ? std::size_t(coutp) : 0), tail_sh(tail_sc.size());
  for (std::size_t c = 0; c < std::size_t(co) && fused_sc; ++c) {
    tail_sc[c] = tail.scale[c];
    tail_sh[c] = tail.sh(int(c));
  }
  std::vector<std::uint64_t> part_keys(static_cast<std::size_t>(nth));
  std::uint64_t key = 0;
  bool stale = true;

  // Open channels per sample and their row stride in the compact arrays M1 / V2 (each xi slice holds the
  // chunk's samples one after another, tiles x ld_n floats each, ld_n = round_up(|A_n|)).
  SSLGATE_CHECK(!gate || fuses_gate(p), value_error, "gated_block_forward", "no fused gate at {} tiles per sample", tiles);
  if (gate) lists.assign(std::size_t(n), {});
  SSLGATE_CHECK(lists.size() == std::size_t(n), shape_error, "gated_block_forward", "{} channel lists for {} samples", lists.size(), n);
  std::vector<int> cnt(n), ldn(n);
  const auto count_open = [&](int i) {
    cnt[i] = int(lists[std::size_t(i)].size());
    ldn[i] = int(round_up(std::max(cnt[i], 1), vw));
  };
  for (int i = 0; i < n && !gate; ++i) count_open(i);
  // Chunks of samples. A chunk streams all transformed weights once, and a sample uses only its open rows of
  // each xi slice. A sample with 25 tiles or more reuses each weight row that often itself, and its own data
  // (1.6 MB and up) outgrows L2: such samples are a chunk each (measured, paired runs: 64@34, 64->128 s2 and
  // 128@17 blocks 5-15% faster at densities 0.25-0.75 than with bigger chunks), run by whichever thread is free
  // without a barrier. With fewer tiles (9x9 maps and smaller) the whole batch is one chunk that the threads
  // share: the products split by transform point (and parts of the output channels or column panels), the transforms
  // by samples, with a barrier between phases (a thread done with its share takes the ends of the others'). Each
  // weight is then read once per call, by one thread, for all the samples of the batch (measured, batch 64:
  // 128->256 s2, 256@9 and 256->512 s2 5-15% faster than a chunk per thread; one thread: chunks of at least
  // 8 MB, twice the weights' bytes, up to the whole batch).
  const std::size_t per_sample_max = std::size_t(X) * tiles * (vld1 + 2 * coutp + mld2) * 4;
  const std::size_t weight_bytes = 4 * (X * std::size_t(u2_xi) + (wino1 ? X * std::size_t(u1_xi) : std::size_t(co) * 9 * cinp));
  const bool per_sample = tiles >= per_sample_tiles;
  const std::size_t chunk_bytes = per_sample ? 0 : std::max<std::size_t>(std::size_t(8) << 20, 2 * weight_bytes);
  const bool whole_batch = !per_sample && nth > 1;
  const int chunk = whole_batch ? n
                                : int(std::clamp<std::size_t>(chunk_bytes / std::max<std::size_t>(per_sample_max, 1), 1,
                                                              std::size_t((n + nth - 1) / nth)));
  const std::size_t v1_xi = std::size_t(chunk) * tiles * vld1, m2_xi = std::size_t(chunk) * tiles * mld2;
  const std::size_t comp_max = std::size_t(X) * (std::size_t(chunk) * tiles * coutp + vw);  // M1 (then V2 in its place), a chunk

  const auto g1 = detail::make_geom(1, ci, p.h, p.w, co, oh, ow, 1, 1, m);  // conv1 Winograd (stride 1: oh = h)
  const auto dg = detail::make_direct_geom(conv2d_params{1, ci, p.h, p.w, co, 3, 3, p.stride, p.stride, 1, 1});

  // The shared chunk's buffers and its samples' offsets in an xi slice of M1 / V2. Buffers whose uses do not
  // overlap share memory, so that less of it leaves the cache between uses: conv2's products M2 take conv1's
  // transformed input V1 (dead once conv1's products are done), and each sample's conv2 transformed input V2
  // its conv1 products M1 (read whole before V2 is written, at the same offsets). With the output rows in the
  // input rows' memory (below), gated / dense at d 0.25 went from 0.371 to 0.363 at 64@34, 0.346 to 0.339 at
  // 128@17 and 0.323 to 0.320 at 256@9.
  const std::size_t v1m2_floats = std::max<std::size_t>(wino1 ? X * v1_xi : 0, X * m2_xi);
  const std::size_t chunk_floats = v1m2_floats + comp_max;
  float* const batch_buf = whole_batch ? gscratch(g_batch).get<float>(chunk_floats) : nullptr;
  std::vector<std::size_t> batch_off(whole_batch ? std::size_t(n) + 1 : 0);
  for (int i = 0; whole_batch && i < n; ++i) batch_off[std::size_t(i) + 1] = batch_off[std::size_t(i)] + std::size_t(tiles) * ldn[i];
  // The direct conv1 (and the fused shortcut) take A's rows at the output positions only, not on the extended
  // grid (its extra column per row is 6-20% more rows at 17x17, 9x9 and 5x5): position q's row in a phase.
  std::vector<std::ptrdiff_t> pos_off(wino1 ? 0 : std::size_t(plane));
  for (std::ptrdiff_t q = 0; q < std::ptrdiff_t(pos_off.size()); ++q) pos_off[std::size_t(q)] = (q / ow * dg.pcol + q % ow) * cinp;
  // The fused shortcut's output, per sample of the chunk, channels-last (plane x coutp).
  const std::size_t res_floats = fused_sc ? std::size_t(plane) * coutp : 0;
  float* const res_batch = fused_sc && whole_batch ? gscratch(g_res_batch).get<float>(std::size_t(n) * res_floats) : nullptr;

  // Phase 3 of the shared batch split by work: conv1's direct products, or the transforms, grow with the open
  // channels; the fused shortcut is the same for every sample. Part `part` of `parts`: samples [lo, hi).
  const auto work_range = [&](int parts, int part, long& lo, long& hi) {
    const double fixed = wino1 ? 1.0 : (fused_sc ? double(co) * ci : 0.0) + 8.0 * ci, per = wino1 ? 1.0 : 9.0 * ci;
    double total = 0, run = 0;
    for (int i = 0; i < n; ++i) total += fixed + per * cnt[i];
    lo = hi = 0;
    for (int i = 0; i < n; ++i) {  // sample i goes to the part its work's midpoint falls in
      const double w = fixed + per * cnt[i], at = (run + w / 2) * parts / total;
      run += w;
      if (at < part) lo = hi = i + 1;
      else if (at < part + 1) hi = i + 1;
    }
  };

  // conv1's products: packed form (a sample's open weight rows packed into a panel) where a sample has many tiles,
  // else dot form. The dot form's items in the shared batch: (xi, a part of the output channels), as many parts
  // as keep each part's slice of U1[xi] within dot_slice_bytes, so that it stays in L2 while every sample uses
  // it. Measured, in-process pairs, 2 threads, batch 64: 256@9 (278 KB slices) whole took 0.963-0.970 of the
  // time of halves at d 0.25, 0.98 at 0.5 and 0.75; 512@5 (1.08 MB) whole took 1.01-1.04 of halves'.
  constexpr std::size_t dot_slice_bytes = std::size_t(768) << 10;
  const bool packed1 = wino1 && tiles * 8 > ci;
  const int parts1 = packed1 ? 1 : int((sizeof(float) * std::size_t(u1_xi) + dot_slice_bytes - 1) / dot_slice_bytes);

  // The shared batch's five phases: a flag per unit of work (samples, or the products' items), see take_units;
  // phase k's flags from taken + k * units.
  const int panels2 = int((coutp + detail::panel_w - 1) / detail::panel_w);  // conv2's items per xi
  const std::size_t units = std::size_t(std::max({n, X * parts1, X * panels2}));
  std::vector<std::atomic<bool>> taken(whole_batch ? 5 * units : 0);
  // Otherwise chunks go to whichever thread is free: samples are independent, so the result does not depend on
  // the assignment, and a thread slowed by a shared core no longer holds the other one at the closing barrier.
  std::atomic<int> next{0};
#pragma omp parallel num_threads(nth)
  {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    const std::size_t sc_w = fused_sc ? std::size_t(co) * ci : 0, sc_s = fused_sc && tail.res_scale ? std::size_t(co) : 0;
    part_keys[std::size_t(tid)] = content_key({{w1, std::size_t(co) * ci * 9}, {w2, std::size_t(co) * co * 9}, {s1, std::size_t(co)},
                                               {tail.shortcut_w, sc_w}, {tail.res_scale, sc_s}},
                                              tid, nt);
#pragma omp barrier
#pragma omp single
    {
      key = combine_keys(part_keys.data(), nt, m + (fused_sc ? 8 : 0));
      stale = key != prepared.key;
      prepared.key = 0;  // until rebuilt below (an exception in between leaves no half-written copy marked valid)
    }
    // --- weights, split by rows, when the prepared copy is stale ---
    if (stale) {
      float* tmp = gscratch(g_t0).get<float>(9 * std::size_t(std::max(cinp, coutp)));
      long lo, hi;
      split_range(co, nt, tid, lo, hi);
      if (wino1) {
        wino_weights(m, U1, u1_xi, u1_ld, cinp, w1, co, ci, s1, true, int(lo), int(hi), tmp);
      } else {
        for (long c = lo; c < hi; ++c)
          for (int t = 0; t < 9; ++t) {
            float* d = W1p + (c * 9 + t) * cinp;
            for (int k = 0; k < cinp; ++k) d[k] = k < ci ? w1[(c * ci + k) * 9 + t] * s1[c] : 0.f;
          }
      }
      wino_weights(m, U2, u2_xi, 0, coutp, w2, co, co, nullptr, false, int(lo), int(hi), tmp, co);
      split_range(coutp, nt, tid, lo, hi);
      for (long c = lo; c < hi && fused_sc; ++c)
        for (int k = 0; k < cinp; ++k)
          U3[detail::panel_at(cinp, coutp, k, int(c))] = c < co && k < ci ? tail.shortcut_w[c * ci + k] * tail.rs(int(c)) : 0.f;
    }
    // Per-thread buffers: xbuf, padded channels-last input rows (conv1's, Winograd, then conv2's), then a
    // sample's conv2 output, channels-last (obuf); x1buf, the direct conv1's packed input; hbuf, the direct
    // conv1's output, channels-last; rbuf, the fused shortcut's output; keep, the lanes below |A_n|.
    const int pc1 = g1.pcols(), pc2 = g2full.pcols();
    float* xbuf = gscratch(g_t0).get<float>(std::max({wino1 ? std::size_t(m * g1.th + 4) * pc1 * cinp : 0,
                                                      std::size_t(m * g2full.th + 4) * pc2 * coutp,
                                                      std::size_t(m) * g2full.th * ow * coutp}));
    float* x1buf = wino1 ? nullptr : gscratch(g_x1).get<float>(dg.img_floats());
    bool x1buf_zeroed = false;  // its padding zeroed by this call (direct_pack_input)
    const float** row_ptr = gscratch(g_t1).get<const float*>(std::max(g1.th, g2full.th) + 1);
    float* ybuf = gscratch(g_t2).get<float>(16ull * std::max(g1.tw, g2full.tw) * coutp);  // conv1's output rows (Winograd)
    float* hbuf = wino1 ? nullptr : gscratch(g_t3).get<float>(std::size_t(coutp) * plane);
    float* const obuf = xbuf;  // xbuf is dead once conv2's input transform is done
    float* rbuf = !fused_sc ? nullptr : whole_batch ? res_batch : gscratch(g_res).get<float>(std::size_t(chunk) * res_floats);
    std::vector<float> shift(static_cast<std::size_t>(coutp));
    std::vector<xsimd::batch_bool<float>> keep(static_cast<std::size_t>(coutp / vw));
    const reg_block db = dot_block(tiles);
    std::vector<const float*> ap(dot_r), bp(dot_c);
    std::vector<int> iota(std::size_t(std::max(ci, co)));
    std::iota(iota.begin(), iota.end(), 0);
    // conv1's packed panel (phase 2, packed form): ld <= coutp columns, cinp rows; pack_rows's scratch. In bands,
    // X panels: conv1's, then conv2's gathered rows.
    const bool bands1 = packed1 && !whole_batch && chunk == 1 && g1.th > band_rows;
    const bool bands2 = !whole_batch && chunk == 1 && g2full.th > band_rows;
    // F(2,3) edge tiles (point_runs), conv1's (Winograd) and conv2's.
    const detail::wino_edges edges1 = wino1 ? detail::wino_edges::of(g1) : detail::wino_edges{}, edges2 = detail::wino_edges::of(g2full);
    const auto banded1 = [&](int i) { return bands1 && band_open_ratio * ldn[i] <= tiles; };
    const auto banded2 = [&](int i) { return bands2 && band_open_ratio * ldn[i] <= tiles; };
    const std::size_t panel_floats = std::size_t(coutp) * std::max(cinp, coutp);
    float* rows = gscratch(g_part).get<float>((bands1 || bands2 ? X + 1 : 2) * panel_floats);
    float* panel = rows + panel_floats;
    std::vector<const float*> open_rows(static_cast<std::size_t>(coutp));
    // The direct conv1 (stride 2): the taps' input offsets; with many output positions, a sample's open rows of
    // W1p in column panels (9 cinp rows each) and the panels' pack scratch.
    const std::ptrdiff_t kt1 = 9 * std::ptrdiff_t(cinp);
    const bool packed_direct = !wino1 && plane >= direct_dot_positions;
    const int direct_taps = direct_tap_group(cinp);
    float* dpanel = packed_direct ? gscratch(g_dpanel).get<float>(std::size_t(kt1) * (coutp + detail::panel_w)) : nullptr;
    float* dtmp = packed_direct ? dpanel + kt1 * coutp : nullptr;
    std::vector<std::ptrdiff_t> aoff(9);
    for (int t = 0; t < 9; ++t) aoff[t] = dg.tap_offset(t);
    std::vector<detail::useg> dsegs(9);
    // The chunk [c0, c1): its buffers, its samples' offsets in an xi slice of M1 / V2 (M1 and V2 are
    // [xi][sample][tile][ld_i], comp_xi floats per xi).
    std::vector<std::size_t> own_off(whole_batch ? 0 : std::size_t(n) + 1);
    std::size_t* const off = whole_batch ? batch_off.data() : own_off.data();
    float* const V1 = whole_batch ? batch_buf : gscratch(g_chunk).get<float>(chunk_floats);
    float* const M2 = V1;
    float* const M1 = M2 + v1m2_floats;
    float* const V2 = M1;
    int c0 = 0, c1 = 0;
    std::ptrdiff_t comp_xi = 0;
#pragma omp barrier
    // --- phase 1: conv1's copy of the input (channels-last: Winograd rows, or the direct conv1's phases), the
    //     gate on its channel means (with gate), conv1's input transform (Winograd); samples [i0, i1), then
    //     sample `after` (or -1), whose x the shared batch brings into L2 meanwhile ---
    std::vector<float> means(gate ? std::size_t(cinp) : 0);
    // Share `part` of `parts` of sample i of x brought into L2 (its copies read 16-channel pieces of a few lines
    // each, too short a stream for the hardware prefetcher).
    const auto prefetch_x = [&](int i, long part, long parts) {
      prefetch_share(x + std::ptrdiff_t(i) * ci * in_plane, sizeof(float) * ci * in_plane, part, parts);
    };
    const auto conv1_input = [&](int i0, int i1, int after) {
      for (int i = i0; i < i1; ++i) {
        const int next = i + 1 < i1 ? i + 1 : after;
        const float* xi = x + std::ptrdiff_t(i) * ci * in_plane;
        if (gate) {  // the channel sums come with the copy, from the vectors it transposes
          std::fill(means.begin(), means.end(), 0.f);
          if (wino1) {
            detail::wino_pack_input(xbuf, row_ptr, xi, g1, 0, g1.th, means.data());
          } else {
            detail::direct_pack_input(x1buf, xi, dg, !x1buf_zeroed, means.data());
            x1buf_zeroed = true;
          }
          for (float& v : means) v /= float(in_plane);
          gate(i, means.data(), lists[std::size_t(i)]);
          count_open(i);
        }
        if (!wino1 || cnt[i] == 0) continue;
        if (!gate) detail::wino_pack_input(xbuf, row_ptr, xi, g1, 0, g1.th);
        if (banded1(i)) continue;  // conv1_bands transforms it
        // In the shared batch, the next sample of this thread comes into L2 meanwhile, a share per tile row.
        const bool prefetch_next = whole_batch && next >= 0;
        for (int r = 0; r < g1.th; ++r) {
          if (prefetch_next) prefetch_x(next, r, g1.th);
          detail::wino_input_transform(V1, std::ptrdiff_t(v1_xi), vld1, long(i - c0) * tiles + long(r) * g1.tw, row_ptr + r, g1, 1,
                                       edges1, r);
        }
      }
    };
    // conv1's dot form for a sample's open channels [j_lo, j_hi) at one transform point: m1, its nt rows (ld floats
    // apart); vbase, its transformed input rows (vs floats apart); ubase, the point's weights. a_bytes of a_next come
    // into L2 meanwhile, a share per column block.
    const auto dot_products = [&](float* m1, std::ptrdiff_t ld, const float* vbase, std::ptrdiff_t vs, int nt, const float* ubase,
                                  const std::vector<int>& A, int j_lo, int j_hi, const float* a_next, std::size_t a_bytes) {
      const int blocks = std::max(1, (j_hi - j_lo + db.cols - 1) / db.cols);
      for (int j0 = j_lo, b = 0; j0 < j_hi; j0 += db.cols, ++b) {
        const int cc = std::min(db.cols, j_hi - j0);
        for (int k = 0; k < cc; ++k) bp[k] = ubase + std::ptrdiff_t(A[std::size_t(j0 + k)]) * u1_ld;
        prefetch_share(a_next, a_bytes, b, blocks);
        for (int t0 = 0; t0 < nt; t0 += db.rows) {
          const int rr = std::min(db.rows, nt - t0);
          for (int r = 0; r < rr; ++r) ap[r] = vbase + (t0 + r) * vs;
          pick_dot(rr, cc)(m1 + std::ptrdiff_t(t0) * ld + j0, ld, ap.data(), bp.data(), cinp / vw, 1, one_segment, 0);
        }
      }
    };
    // conv1's packed form of sample i at transform point xi. pack_open: its open rows of U1[xi] into panel (quad
    // form, or whole vectors of channels; the next xi's rows come into L2 meanwhile: the pack would otherwise wait
    // on L3 for each of them, pointer-chased rows the hardware prefetcher does not follow); packed_products: the
    // products of nt tiles (rows vs floats apart from vbase) into m1 (rows ld floats apart), a short last vector in the
    // dot form.
    // The quad form needs AVX-512.
#if defined(__AVX512F__)
    const auto quad_open = [&](int i) { return cnt[i] <= quad_nv_max * 4; };
#endif
    const auto short_tail = [&](int i) { return cnt[i] % vw <= dot_tail_max ? cnt[i] % vw : 0; };
    const auto pack_open = [&](float* panel, int i, int xi) {
      const auto& A = lists[std::size_t(i)];
      const int c = cnt[i];
      const float* ubase = U1 + xi * u1_xi;
      for (int j = 0; j < c; ++j) open_rows[std::size_t(j)] = ubase + std::ptrdiff_t(A[std::size_t(j)]) * u1_ld;
      if (xi + 1 < X)
        for (int j = 0; j < c; ++j)
          for (int l = 0; l < cinp; l += 64 / int(sizeof(float))) __builtin_prefetch(open_rows[std::size_t(j)] + u1_xi + l, 0, 2);
#if defined(__AVX512F__)
      if (quad_open(i)) return pack_quads(panel, (c + 3) / 4, open_rows.data(), c, cinp / 4);
#endif
      const int cp = c - short_tail(i);
      if (cp > 0) pack_rows(panel, int(round_up(cp, vw)), open_rows.data(), cp, cinp, rows);  // panel[k][j] = U1[xi][A[j]][k]
    };
    const auto packed_products = [&](float* m1, std::ptrdiff_t ld, const float* vbase, std::ptrdiff_t vs, int nt, const float* panel, int i,
                                     int xi) {
      const int c = cnt[i];
#if defined(__AVX512F__)
      // Few open channels: the quad form (the pair form before it, against the packed form, in-process pairs: the
      // 64@34 block 0.93-0.95 of the time at densities 0.1 and 0.25).
      if (quad_open(i)) {
        const int nv = (c + 3) / 4;
        return row_blocks(nt, quad_mr(nv), [&](int t0, int mr) {
          pick_quad(mr, nv)(m1 + t0 * ld, ld, vbase + t0 * vs, vs, panel, (ci + 3) / 4);
        });
      }
#endif
      // Whole vectors of channels in the packed form, a short last one (dot_tail_max) in the dot form.
      const int tail = short_tail(i), cp = c - tail, ldp = int(round_up(cp, vw));
      panel_runs(ldp, [&](int n0, int nv, int panels) {
        row_blocks(nt, idx_mr(nv), [&](int t0, int mr) {
          pick_idx(mr, nv)(m1 + t0 * ld + n0, ld, vbase + t0 * vs, vs, panel + n0, ldp, iota.data(), ci, panels, detail::panel_w);
        });
      });
      if (tail == 0) return;
      for (int t = 0; t < nt; ++t) vf(0.f).store_aligned(m1 + t * ld + cp);  // lanes >= c: 0
      dot_products(m1, ld, vbase, vs, nt, U1 + xi * u1_xi, lists[std::size_t(i)], cp, c, nullptr, 0);
    };
    // --- phase 2: conv1 products of samples [i0, i1), items [q_lo, q_hi) of (xi, part of the output channels),
    //     parts1 per xi ---
    const auto conv1_products = [&](int i0, int i1, int q_lo, int q_hi) {
      // Many tiles per sample: pack the open rows of U1[xi] into a [ci][open] panel (16x16 transposes read
      // straight from the rows) and run the broadcast micro-kernel over the tiles. Few tiles: dot form, no
      // packing, but the sums of each register block reduced at its end. Measured (2 threads, batch 64):
      // packing wins at 81 tiles x 64 channels, ties at 25 x 128, loses at 9 x 256.
      if (packed1) {
        for (int xi = q_lo; xi < q_hi; ++xi)  // one part per xi
          for (int i = i0; i < i1; ++i) {
            if (cnt[i] == 0) continue;
            pack_open(panel, i, xi);
            const float* v1 = V1 + xi * std::ptrdiff_t(v1_xi) + std::ptrdiff_t(i - c0) * tiles * vld1;
            point_runs(edges1, g1, xi, 0, g1.th, [&](int t0, int nt, int step) {
              packed_products(M1 + xi * comp_xi + off[i] + std::ptrdiff_t(t0) * ldn[i], std::ptrdiff_t(step) * ldn[i], v1 + std::ptrdiff_t(t0) * vld1,
                              std::ptrdiff_t(step) * vld1, nt, panel, i, xi);
            });
          }
      } else if (wino1) {
        for (int q = q_lo; q < q_hi; ++q)
          for (int i = i0; i < i1; ++i) {
            const int xi = q / parts1, r_lo = co * (q % parts1) / parts1, r_hi = co * (q % parts1 + 1) / parts1;
            const auto& A = lists[std::size_t(i)];
            const int ld = ldn[i];
            const int j_lo = int(std::lower_bound(A.begin(), A.end(), r_lo) - A.begin());
            const int j_hi = int(std::lower_bound(A.begin() + j_lo, A.end(), r_hi) - A.begin());
            float* m1 = M1 + xi * comp_xi + off[i];
            const float* vbase = V1 + xi * std::ptrdiff_t(v1_xi) + std::ptrdiff_t(i - c0) * tiles * vld1;
            const float* ubase = U1 + xi * u1_xi;
            // The next sample's tile rows go to L2 while this sample's products run, a share per register block
            // (they come from memory: the whole batch's V1 is far larger than L2).
            const float* a_next = vbase + std::ptrdiff_t(tiles) * vld1;
            const std::size_t a_bytes = i + 1 < i1 ? sizeof(float) * tiles * vld1 : 0;
            point_runs(edges1, g1, xi, 0, g1.th, [&](int t0, int nt, int step) {
              dot_products(m1 + std::ptrdiff_t(t0) * ld, std::ptrdiff_t(step) * ld, vbase + std::ptrdiff_t(t0) * vld1, std::ptrdiff_t(step) * vld1, nt,
                           ubase, A, j_lo, j_hi, a_next, a_bytes);
            });
          }
      }
    };
    // --- phases 1-2 of a sample on its own in the packed form (conv1_input's copy done): every xi's panel of its
    //     open rows packed first, then the input transform and the products band by band of band_rows
    //     tile rows, in V1's first floats ---
    const auto conv1_bands = [&](int i) {
      if (cnt[i] == 0) return;
      const int ld = ldn[i];
      const std::ptrdiff_t pstride = std::ptrdiff_t(cinp) * ld, vb_xi = std::ptrdiff_t(band_rows) * g1.tw * vld1;
      for (int xi = 0; xi < X; ++xi) pack_open(panel + xi * pstride, i, xi);
      for (int r0 = 0; r0 < g1.th; r0 += band_rows) {
        detail::wino_input_transform(V1, vb_xi, vld1, 0, row_ptr + r0, g1, std::min(band_rows, g1.th - r0), edges1, r0);
        for (int xi = 0; xi < X; ++xi)
          point_runs(edges1, g1, xi, r0, std::min(r0 + band_rows, g1.th), [&](int t0, int nt, int step) {  // V1 holds the band's tiles
            packed_products(M1 + xi * comp_xi + off[i] + std::ptrdiff_t(t0) * ld, std::ptrdiff_t(step) * ld,
                            V1 + xi * vb_xi + std::ptrdiff_t(t0 - r0 * g1.tw) * vld1, std::ptrdiff_t(step) * vld1, nt,
                            panel + xi * pstride, i, xi);
          });
      }
    };
    // --- phase 3: conv1 output + BN1 shift + ReLU, written channels-last straight into conv2's padded input
    //     rows (no round trip through NCHW), then conv2's input transform; samples [i0, i1), then `after` ---
    const auto conv2_input = [&](int i0, int i1, int after) {
      for (int i = i0; i < i1; ++i) {
        const int next = i + 1 < i1 ? i + 1 : after;
        const auto& A = lists[std::size_t(i)];
        const int c = cnt[i], ld = ldn[i];
        if (!wino1 && (c > 0 || fused_sc) && !gate) {  // with gate, phase 1 packed it (one sample per chunk)
          detail::direct_pack_input(x1buf, x + std::ptrdiff_t(i) * ci * in_plane, dg, !x1buf_zeroed);
          x1buf_zeroed = true;
        }
        if (fused_sc) {  // the downsample conv: x1buf's centre tap times W3p
          const float* a1 = x1buf;
          float* r1 = rbuf + std::size_t(i - c0) * res_floats;
          detail::gemm_taps(int(plane), coutp, cinp, 1, &a1, cinp, aoff.data() + 4, 1, U3, &r1, coutp, dsegs.data(), -1, pos_off.data());
        }
        if (c == 0) continue;
        for (int j = 0; j < ld; ++j) shift[std::size_t(j)] = j < c ? b1[A[std::size_t(j)]] : 0.f;
        for (int k = 0; k < ld; k += vw) keep[std::size_t(k / vw)] = lane_index + float(k) < vf(float(c));
        // h[y][x][.] goes to xbuf[y + 1][x + 1][.] (row stride rs); the lanes >= c are 0, and only the border
        // (row 0, the rows past oh, column 0 and the columns past ow) is zeroed besides.
        const std::ptrdiff_t rs = std::ptrdiff_t(pc2) * ld;
        std::memset(xbuf, 0, sizeof(float) * rs);
        for (int y = 1; y <= oh; ++y) {
          std::memset(xbuf + y * rs, 0, sizeof(float) * ld);
          std::memset(xbuf + y * rs + std::ptrdiff_t(ow + 1) * ld, 0, sizeof(float) * (pc2 - ow - 1) * ld);
        }
        std::memset(xbuf + (oh + 1) * rs, 0, sizeof(float) * rs * (m * g2full.th + 1 - oh));
        const auto put_row = [&](float* dst, const float* src) {  // ow positions of ld channels
          for (int q = 0; q < ow; ++q)
            for (int k = 0; k < ld; k += vw) {
              const vf h = xsimd::max(vf::load_aligned(src + q * ld + k) + vf::load_unaligned(shift.data() + k), vf(0.f));
              xsimd::select(keep[std::size_t(k / vw)], h, vf(0.f)).store_aligned(dst + q * ld + k);
            }
        };
        if (wino1) {
          auto gc = g1;
          gc.cout = c;
          gc.coutp = ld;
          const std::ptrdiff_t yrs = std::ptrdiff_t(ow) * ld;  // wino_output_row's row stride
          for (int r = 0; r < gc.th; ++r) {
            detail::wino_output_row(ybuf, M1 + off[i] + std::ptrdiff_t(r) * gc.tw * ld, comp_xi, ld, gc, edges1, r);
            for (int y = m * r; y < std::min(m * r + m, oh); ++y) put_row(xbuf + (y + 1) * rs + ld, ybuf + (y - m * r) * yrs);
          }
        } else {
          if (!packed_direct) {
            // Few output positions: dot form, 9 taps per dot product, straight from the open rows of W1p (the
            // columns of hbuf from c on are left as they are: put_row drops them).
            for (int j0 = 0; j0 < c; j0 += direct_db.cols) {
              const int cc = std::min(direct_db.cols, c - j0);
              for (int t0 = 0; t0 < 9; t0 += direct_taps) {
                for (int k = 0; k < cc; ++k) bp[k] = W1p + std::ptrdiff_t(A[std::size_t(j0 + k)]) * kt1 + std::ptrdiff_t(t0) * cinp;
                for (std::ptrdiff_t q0 = 0; q0 < plane; q0 += direct_db.rows) {
                  const int rr = int(std::min<std::ptrdiff_t>(direct_db.rows, plane - q0));
                  for (int r = 0; r < rr; ++r) ap[r] = x1buf + pos_off[std::size_t(q0 + r)];
                  pick_dot(rr, cc, t0 > 0)(hbuf + q0 * ld + j0, ld, ap.data(), bp.data(), cinp / vw, direct_taps, aoff.data() + t0, cinp);
                }
              }
            }
          } else {
            // Many output positions: the open rows of W1p, packed once per sample into column panels, serve every
            // position through the broadcast micro-kernel.
            for (int j = 0; j < c; ++j) open_rows[std::size_t(j)] = W1p + std::ptrdiff_t(A[std::size_t(j)]) * kt1;
            for (int n0 = 0; n0 < ld; n0 += detail::panel_w) {
              const int w = std::min(detail::panel_w, ld - n0);
              pack_rows(dpanel + std::ptrdiff_t(n0) * kt1, w, open_rows.data() + n0, std::clamp(c - n0, 0, w), int(kt1), dtmp);
            }
            const float* a1 = x1buf;
            float* h1 = hbuf;
            detail::gemm_taps(int(plane), ld, cinp, 1, &a1, cinp, aoff.data(), 9, dpanel, &h1, ld, dsegs.data(), c, pos_off.data());
          }
          const bool prefetch_next = whole_batch && next >= 0;  // the next sample's x into L2, as in conv1_input
          for (int y = 0; y < oh; ++y) {
            if (prefetch_next) prefetch_x(next, y, oh);
            put_row(xbuf + (y + 1) * rs + ld, hbuf + std::ptrdiff_t(y) * ow * ld);
          }
        }
        for (int r = 0; r < g2full.th; ++r) row_ptr[r] = xbuf + std::ptrdiff_t(m * r) * rs;
        auto gi = g2full;
        gi.cin = c;
        gi.cinp = ld;
        detail::wino_input_transform(V2 + off[i], comp_xi, ld, 0, row_ptr, gi, gi.th, edges2);
      }
    };
    // --- phase 4: conv2 products with indexed weight rows, item `item` of (xi, column panel); the panel of item
    //     `after` (or -1) comes into L2 meanwhile ---
    const auto panel_at = [&](int item) { return U2 + item / panels2 * u2_xi + std::ptrdiff_t(item % panels2 * detail::panel_w) * co; };
    const auto cols_nv = [&](int n0) { return std::min(detail::ukr_nv, (coutp - n0) / vw); };  // vectors of the panel at column n0
    const auto panel_nv = [&](int item) { return cols_nv(item % panels2 * detail::panel_w); };
    const auto conv2_item = [&](int item, int after) {
      const int xi = item / panels2, n0 = item % panels2 * detail::panel_w, nv = panel_nv(item);
      const float* panel = panel_at(item);  // co rows x nv * vw
      // The next panel goes to L2 while this one is used, a share of its lines per sample: the samples'
      // first reads of it would otherwise each wait on memory.
      const float* next = after >= 0 ? panel_at(after) : nullptr;
      const std::size_t next_bytes = after >= 0 ? sizeof(float) * co * panel_nv(after) * vw : 0;
      // A sample on its own that uses few of the rows takes only its open rows of the next panel (the whole
      // panel would be up to 4x the lines from L3).
      const bool own_rows = c1 - c0 == 1 && 2 * cnt[c0] < co && after >= 0;
      if (own_rows) {
        const int nv_next = panel_nv(after);
        for (const int r : lists[std::size_t(c0)])
          for (int l = 0; l < nv_next * vw; l += 64 / int(sizeof(float))) __builtin_prefetch(next + std::ptrdiff_t(r) * nv_next * vw + l, 0, 2);
      }
      for (int i = c0; i < c1; ++i) {
        if (!own_rows) prefetch_share(next, next_bytes, i - c0, c1 - c0);
        const int c = cnt[i], ld = ldn[i];
        if (c == 0) continue;
        const float* a = V2 + xi * comp_xi + off[i];
        float* m2 = M2 + xi * std::ptrdiff_t(m2_xi) + std::ptrdiff_t(i - c0) * tiles * mld2 + n0;
        const int* idx = lists[std::size_t(i)].data();
        point_runs(edges2, g2full, xi, 0, g2full.th, [&](int t1, int nt, int step) {
          row_blocks(nt, idx_mr(nv), [&](int t0, int mr) {
            const std::ptrdiff_t t = t1 + std::ptrdiff_t(t0) * step;
            pick_idx(mr, nv)(m2 + t * mld2, step * mld2, a + t * ld, std::ptrdiff_t(step) * ld, panel, nv * vw, idx, c, 1, 0);
          });
        });
      }
    };
    // --- phases 4-5 of a sample on its own (conv2's products and output transform): its open rows of every
    //     panel of U2 gathered first (read by index per band, they would come from L3 each time), then band by
    //     band the products into M2's first floats and their output transform into obuf ---
    const auto conv2_bands = [&](int i) {
      const int c = cnt[i], ld = ldn[i];
      if (c == 0) return;
      const auto& A = lists[std::size_t(i)];
      float* w = panel;
      for (int item = 0; item < X * panels2; ++item) {
        const int nvw = panel_nv(item) * vw;
        const float* src = panel_at(item);
        for (int j = 0; j < c; ++j, w += nvw) std::memcpy(w, src + std::ptrdiff_t(A[std::size_t(j)]) * nvw, sizeof(float) * nvw);
      }
      const std::ptrdiff_t mb_xi = std::ptrdiff_t(band_rows) * g2full.tw * mld2;
      for (int r0 = 0; r0 < g2full.th; r0 += band_rows) {
        const int rows_b = std::min(band_rows, g2full.th - r0);
        for (int xi = 0; xi < X; ++xi) {
          const float* a = V2 + xi * comp_xi + off[i] + std::ptrdiff_t(r0) * g2full.tw * ld;
          const float* wx = panel + std::ptrdiff_t(xi) * c * coutp;  // the point's gathered rows, column panel by panel
          float* m2 = M2 + xi * mb_xi;                                // the band's tiles
          point_runs(edges2, g2full, xi, r0, r0 + rows_b, [&](int t1, int nt, int step) {
            t1 -= r0 * g2full.tw;
            panel_runs(coutp, [&](int n0, int nv, int panels) {
              row_blocks(nt, idx_mr(nv), [&](int t0, int mr) {
                const std::ptrdiff_t t = t1 + std::ptrdiff_t(t0) * step;
                pick_idx(mr, nv)(m2 + t * mld2 + n0, step * mld2, a + t * ld, std::ptrdiff_t(step) * ld, wx + std::ptrdiff_t(c) * n0, nv * vw,
                                 iota.data(), c, panels, std::ptrdiff_t(c) * detail::panel_w);
              });
            });
          });
        }
        for (int r = r0; r < r0 + rows_b; ++r)
          detail::wino_output_row(obuf + std::ptrdiff_t(m * r) * ow * coutp, M2 + std::ptrdiff_t(r - r0) * g2full.tw * mld2, mb_xi, mld2, g2full,
                                  edges2, r);
      }
    };
    // --- phase 5: conv2 output transform and the block's tail, samples [i0, i1), then sample `after` (or -1),
    //     whose data the last one's transpose brings into L2 ---
    const auto conv2_output = [&](int i0, int i1, int after) {
      for (int i = i0; i < i1; ++i) {
        // Into L2 meanwhile: in the shared batch the next sample's M2 (a share per tile row) and residual (during
        // the transpose), both read from memory; else, after the chunk's last sample, x[after].
        const int next = i + 1 < i1 ? i + 1 : after;
        const bool prefetch_next = whole_batch && next >= 0;
        const float* pf = i + 1 == i1 && after >= 0 ? x + std::ptrdiff_t(after) * ci * in_plane : nullptr;
        std::size_t pf_bytes = pf ? sizeof(float) * ci * in_plane : 0;
        if (prefetch_next) {
          pf = fused_sc ? rbuf + std::size_t(next - c0) * res_floats : tail.residual + std::ptrdiff_t(next) * co * plane;
          pf_bytes = sizeof(float) * (fused_sc ? res_floats : std::size_t(co) * plane);
        }
        float* on = o + std::ptrdiff_t(i) * co * plane;
        if (cnt[i] == 0 && !fused_sc) {
          std::fill(on, on + co * plane, 0.f);
          apply_tail(on, tail, tail.residual + std::ptrdiff_t(i) * co * plane, co, plane, plane);
          continue;
        }
        // The whole sample channels-last in obuf (tile rows follow one another as the plane's rows), then
        // written out 16 channels at a time.
        if (cnt[i] == 0) std::fill(obuf, obuf + plane * coutp, 0.f);
        for (int r = 0; r < g2full.th && cnt[i] > 0 && !banded2(i); ++r) {
          for (int xi = 0; xi < X && prefetch_next; ++xi)
            prefetch_share(M2 + xi * std::ptrdiff_t(m2_xi) + std::ptrdiff_t(next - c0) * tiles * mld2, sizeof(float) * tiles * mld2, r, g2full.th);
          detail::wino_output_row(obuf + std::ptrdiff_t(m * r) * ow * coutp, M2 + (std::ptrdiff_t(i - c0) * tiles + std::ptrdiff_t(r) * g2full.tw) * mld2,
                                  std::ptrdiff_t(m2_xi), mld2, g2full, edges2, r);
        }
        if (fused_sc)
          transpose_tail_cl(on, plane, obuf, coutp, int(plane), co, tail_sc.data(), tail_sh.data(), rbuf + std::size_t(i - c0) * res_floats, pf,
                            pf_bytes);
        else
          transpose_tail(on, plane, obuf, coutp, int(plane), co, tail, tail.residual + std::ptrdiff_t(i) * co * plane, pf, pf_bytes);
      }
    };

    if (whole_batch) {
      c1 = n;
      comp_xi = detail::padded_ld(int(off[n]));
      const auto even = [&](long total) { return [=](int t, long& lo, long& hi) { split_range(total, nt, t, lo, hi); }; };
      const auto samples = [&](auto phase) { return [&, phase](long i, long next) { phase(int(i), int(i) + 1, int(next)); }; };
      take_units(taken.data(), nt, tid, even(n), samples(conv1_input));
#pragma omp barrier
      if (packed1) {  // samples split evenly: each xi's open rows serve a thread's samples in turn
        long lo, hi;
        split_range(n, nt, tid, lo, hi);
        conv1_products(int(lo), int(hi), 0, X);
      } else {
        take_units(taken.data() + units, nt, tid, even(long(X) * parts1), [&](long q, long) { conv1_products(0, n, int(q), int(q) + 1); });
      }
#pragma omp barrier
      take_units(taken.data() + 2 * units, nt, tid, [&](int t, long& lo, long& hi) { work_range(nt, t, lo, hi); }, samples(conv2_input));
#pragma omp barrier
      take_units(taken.data() + 3 * units, nt, tid, even(long(X) * panels2), [&](long q, long next) { conv2_item(int(q), int(next)); });
#pragma omp barrier
      take_units(taken.data() + 4 * units, nt, tid, even(n), samples(conv2_output));
    } else {
      // The next chunk is claimed as this one starts, so that its first input sample can come into L2 during this
      // chunk's output transpose (x is otherwise read from memory by conv1's input copy).
      for (c0 = next.fetch_add(chunk); c0 < n;) {
        const int c_next = next.fetch_add(chunk);
        c1 = std::min(n, c0 + chunk);
        conv1_input(c0, c1, -1);
        off[c0] = 0;
        for (int i = c0; i < c1; ++i) off[i + 1] = off[i] + std::size_t(tiles) * ldn[i];
        comp_xi = detail::padded_ld(int(off[c1]));
        if (banded1(c0)) conv1_bands(c0);
        else conv1_products(c0, c1, 0, X * parts1);
        conv2_input(c0, c1, -1);
        if (banded2(c0)) conv2_bands(c0);
        else
          for (int q = 0; q < X * panels2; ++q) conv2_item(q, q + 1 < X * panels2 ? q + 1 : -1);
        conv2_output(c0, c1, c_next < n ? c_next : -1);
        c0 = c_next;
      }
    }
    detail::stream_fence();
  }
  prepared.key = key;
  std::int64_t macs = fused_sc ? std::int64_t(n) * co * ci * plane : 0;
  for (int i = 0; i < n; ++i) macs += std::int64_t(cnt[i]) * (std::int64_t(ci) + co) * 9 * plane;
  return macs;
}

}  // namespace sslgate::ops::cpu::gated
