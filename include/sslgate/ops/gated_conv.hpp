#pragma once
// Convolutions that skip gated channels.
//
// conv2d_gated_input: y = conv(x, w) where sample n's input channels outside active[n] are exactly zero
// (the gated block's conv2 reads h * mask). Naive form: the dense conv. Here each sample reduces only over
// its active channels, and the weight gradient only touches those columns:
//   for n: y[n] = conv(x[n, A_n], w[:, A_n]);  dw[:, A_n] += corr(dy[n], x[n, A_n])
// The data gradient stays dense: the gate's straight-through gradient needs dx on closed channels too.
#include <sslgate/ops/conv2d.hpp>

#include <vector>

namespace sslgate::ops {

// Per-sample lists of open channels of a 0/1 mask [N, C].
template <real T>
std::vector<std::vector<int>> active_channels(const tensor<T>& mask) {
  check_rank("active_channels", mask, 2, "mask");
  std::vector<std::vector<int>> lists(static_cast<std::size_t>(mask.dim(0)));
  const std::int64_t c = mask.dim(1);
  std::vector<T> keep;
  const T* m = host_view(mask, keep);
  for (std::int64_t n = 0; n < mask.dim(0); ++n)
    for (std::int64_t k = 0; k < c; ++k)
      if (m[n * c + k] != T(0)) lists[static_cast<std::size_t>(n)].push_back(static_cast<int>(k));
  return lists;
}

// Whether skipping per sample beats the batched dense kernel on the masked input, which gives the same
// values (closed channels are exact zeros). Each sample's GEMM must have enough rows (output pixels) and
// open channels to pay for gathering and packing its weights. Measured, AVX-512, 2 threads, batch 128,
// density 0.5 (forward + weight gradient vs dense): 16 ch @34 1.15x slower, 32 @17 1.15x faster,
// 64 @9 1.41x slower, 128 @5 3.70x slower.
inline bool per_sample_skip_pays(std::int64_t out_plane, const std::vector<std::vector<int>>& active) {
  std::size_t open = 0;
  for (const auto& l : active) open += l.size();
  return out_plane >= 256 && open >= 16 * active.size();
}

namespace cpu {

// dst[c', ...] = src[list[c'], ...] for rows of `inner` elements of a [rows, inner] array.
template <class T>
void gather_rows(T* dst, const T* src, const std::vector<int>& list, std::int64_t inner) {
  for (std::size_t j = 0; j < list.size(); ++j) std::copy_n(src + list[j] * inner, inner, dst + static_cast<std::int64_t>(j) * inner);
}
// w[:, list] of w: [C_out, C_in, k, k] -> [C_out, |list|, k, k].
template <class T>
void gather_input_columns(T* dst, const T* w, int c_out, int c_in, const std::vector<int>& list, std::int64_t kk) {
  const auto c = static_cast<std::int64_t>(list.size());
  for (int o = 0; o < c_out; ++o) gather_rows(dst + o * c * kk, w + static_cast<std::int64_t>(o) * c_in * kk, list, kk);
}

// Contiguous per-thread ranges of samples with about equal work (open channels), a pure function of the
// lists and the thread count: each sample's kernels then run on one thread, so the result does not depend
// on scheduling, and small per-sample convolutions pay for one parallel region instead of one each.
inline std::vector<int> split_by_work(const std::vector<std::vector<int>>& active, int parts) {
  std::int64_t total = 0;
  for (const auto& l : active) total += static_cast<std::int64_t>(l.size()) + 1;
  std::vector<int> bounds(static_cast<std::size_t>(parts) + 1, static_cast<int>(active.size()));
  bounds[0] = 0;
  std::int64_t run = 0;
  int part = 1;
  for (std::size_t n = 0; n < active.size() && part < parts; ++n) {
    run += static_cast<std::int64_t>(active[n].size()) + 1;
    while (part < parts && run * parts >= total * part) bounds[static_cast<std::size_t>(part++)] = static_cast<int>(n) + 1;
  }
  return bounds;
}

// Runs body(n, xs, ws, part) for every sample n on the thread of its part (see split_by_work); xs and ws are
// that thread's gather buffers.
template <class T, class Body>
void for_each_sample(const std::vector<std::vector<int>>& active, Body&& body) {
  const int threads = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(std::max(1, num_threads())), active.size()));
  const std::vector<int> bounds = split_by_work(active, std::max(1, threads));
  const auto run = [&](int part) {
    thread_local std::vector<T> xs, ws;
    for (int n = bounds[static_cast<std::size_t>(part)]; n < bounds[static_cast<std::size_t>(part) + 1]; ++n) body(n, xs, ws, part);
  };
  if (threads <= 1) return run(0);
#pragma omp parallel num_threads(threads)
  run(omp_get_thread_num());
}

// MACs of a conv that reduces per sample over the listed input channels only.
inline std::int64_t gated_input_macs(const conv2d_params& p, const std::vector<std::vector<int>>& active) {
  std::int64_t open = 0;
  for (const auto& list : active) open += static_cast<std::int64_t>(list.size());
  return open * p.c_out * p.kh * p.kw * p.out_h() * p.out_w();
}

// Returns the MACs executed.
template <class T>
std::int64_t conv2d_gated_input_forward(T* y, const T* x, const T* w, const conv2d_params& p, const std::vector<std::vector<int>>& active) {
  const std::int64_t kk = static_cast<std::int64_t>(p.kh) * p.kw, in_plane = static_cast<std::int64_t>(p.h) * p.w;
  const std::int64_t out_plane = static_cast<std::int64_t>(p.out_h()) * p.out_w();
  for_each_sample<T>(active, [&](int n, std::vector<T>& xs, std::vector<T>& ws, int) {
    const auto& list = active[static_cast<std::size_t>(n)];
    T* yn = y + static_cast<std::int64_t>(n) * p.c_out * out_plane;
    if (list.empty()) {
      std::fill_n(yn, p.c_out * out_plane, T(0));
      return;
    }
    const int c = static_cast<int>(list.size());
    xs.resize(static_cast<std::size_t>(c * in_plane));
    ws.resize(static_cast<std::size_t>(p.c_out * c * kk));
    gather_rows(xs.data(), x + static_cast<std::int64_t>(n) * p.c_in * in_plane, list, in_plane);
    gather_input_columns(ws.data(), w, p.c_out, p.c_in, list, kk);
    conv2d_params q = p;
    q.n = 1;
    q.c_in = c;
    conv2d_forward(yn, xs.data(), ws.data(), q);  // nested in the region above: runs on this thread
  });
  return gated_input_macs(p, active);
}

// dw is added to. Each thread sums its samples into its own copy of dw; the copies are added in thread order.
template <class T>
std::int64_t conv2d_gated_input_backward_weight(T* dw, const T* dy, const T* x, const conv2d_params& p,
                                                const std::vector<std::vector<int>>& active) {
  const std::int64_t kk = static_cast<std::int64_t>(p.kh) * p.kw, in_plane = static_cast<std::int64_t>(p.h) * p.w;
  const std::int64_t out_plane = static_cast<std::int64_t>(p.out_h()) * p.out_w();
  const std::int64_t w_size = static_cast<std::int64_t>(p.c_out) * p.c_in * kk;
  const int parts = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(std::max(1, num_threads())), active.size()));
  std::vector<T> partial(static_cast<std::size_t>(std::max(1, parts) * w_size), T(0));
  for_each_sample<T>(active, [&](int n, std::vector<T>& xs, std::vector<T>& dws, int part) {
    const auto& list = active[static_cast<std::size_t>(n)];
    if (list.empty()) return;
    const int c = static_cast<int>(list.size());
    xs.resize(static_cast<std::size_t>(c * in_plane));
    dws.assign(static_cast<std::size_t>(p.c_out * c * kk), T(0));
    gather_rows(xs.data(), x + static_cast<std::int64_t>(n) * p.c_in * in_plane, list, in_plane);
    conv2d_params q = p;
    q.n = 1;
    q.c_in = c;
    conv2d_backward_weight(dws.data(), dy + static_cast<std::int64_t>(n) * p.c_out * out_plane, xs.data(), q);
    T* mine = partial.data() + part * w_size;
    for (int o = 0; o < p.c_out; ++o)
      for (int j = 0; j < c; ++j) {
        T* dst = mine + (static_cast<std::int64_t>(o) * p.c_in + list[static_cast<std::size_t>(j)]) * kk;
        const T* src = dws.data() + (static_cast<std::int64_t>(o) * c + j) * kk;
        for (std::int64_t t = 0; t < kk; ++t) dst[t] += src[t];
      }
  });
  for (int part = 0; part < std::max(1, parts); ++part)
    for (std::int64_t e = 0; e < w_size; ++e) dw[e] += partial[static_cast<std::size_t>(part * w_size + e)];
  return gated_input_macs(p, active);
}

}  // namespace cpu

// Tape op. macs, when given, receives the forward MACs executed.
template <real T>
tensor<T> conv2d_gated_input(tape<T>& tp, const tensor<T>& x, const tensor<T>& w, std::vector<std::vector<int>> active, int stride, int padding,
                             std::int64_t* macs = nullptr) {
  const bool dev = on_device("conv2d_gated_input", x);
  check_same_device("conv2d_gated_input", x, {&w});
  const cpu::conv2d_params p = conv2d_geometry(x, w, stride, padding);
  SSLGATE_CHECK(static_cast<std::int64_t>(active.size()) == x.dim(0), shape_error, "conv2d_gated_input",
                "{} channel lists for input {}", active.size(), x.dims());
  for (const auto& list : active)
    for (int c : list)
      SSLGATE_CHECK(c >= 0 && c < p.c_in, shape_error, "conv2d_gated_input", "channel {} out of range for input {}", c, x.dims());
  tensor<T> y(shape{p.n, p.c_out, p.out_h(), p.out_w()}, x.dev());
  if (dev) {
    if constexpr (cuda_kernels<T>) {
      // The lists go to the device as a 0/1 mask, from which the kernels' index lists are built there.
      std::vector<float> open(static_cast<std::size_t>(p.n) * p.c_in, 0.f);
      for (std::size_t i = 0; i < active.size(); ++i)
        for (int c : active[i]) open[i * static_cast<std::size_t>(p.c_in) + static_cast<std::size_t>(c)] = 1.f;
      const cuda::active_lists lists(to_device_buffer(open, x.dev()).data(), p.n, p.c_in);
      const cuda::conv_geom g = detail::device_geometry(p);
      cuda::conv2d_gated_input_forward(y.data(), x.data(), w.data(), g, lists);
      if (macs != nullptr) *macs += cpu::gated_input_macs(p, active);
      tp.record({x, w}, y, [x, w, g, lists](grad_slots<T>& gs, const tensor<T>& dy) {
        if (gs.needed(0)) detail::device_conv::backward_data(gs[0].data(), dy.data(), w.data(), g);
        if (gs.needed(1)) cuda::conv2d_gated_input_backward_weight(gs[1].data(), dy.data(), x.data(), g, lists);
      });
    }
    return y;
  }
  const std::int64_t executed = cpu::conv2d_gated_input_forward(y.data(), x.data(), w.data(), p, active);
  if (macs != nullptr) *macs += executed;
  tp.record({x, w}, y, [x, w, p, active = std::move(active)](grad_slots<T>& g, const tensor<T>& dy) {
    if (g.needed(0)) {
      auto [dx, fresh] = g.slot(0);
      cpu::conv2d_backward_data(dx.data(), dy.data(), w.data(), p, !fresh);
    }
    if (g.needed(1)) cpu::conv2d_gated_input_backward_weight(g[1].data(), dy.data(), x.data(), p, active);
  });
  return y;
}

}  // namespace sslgate::ops
