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
  for (std::int64_t n = 0; n < mask.dim(0); ++n)
    for (std::int64_t k = 0; k < c; ++k)
      if (mask[n * c + k] != T(0)) lists[static_cast<std::size_t>(n)].push_back(static_cast<int>(k));
  return lists;
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

// Returns the MACs executed.
template <class T>
std::int64_t conv2d_gated_input_forward(T* y, const T* x, const T* w, const conv2d_params& p, const std::vector<std::vector<int>>& active) {
  const std::int64_t kk = static_cast<std::int64_t>(p.kh) * p.kw, in_plane = static_cast<std::int64_t>(p.h) * p.w;
  const std::int64_t out_plane = static_cast<std::int64_t>(p.out_h()) * p.out_w();
  std::vector<T> xs, ws;
  std::int64_t macs = 0;
  for (int n = 0; n < p.n; ++n) {
    const auto& list = active[static_cast<std::size_t>(n)];
    T* yn = y + static_cast<std::int64_t>(n) * p.c_out * out_plane;
    if (list.empty()) {
      std::fill_n(yn, p.c_out * out_plane, T(0));
      continue;
    }
    const int c = static_cast<int>(list.size());
    xs.resize(static_cast<std::size_t>(c * in_plane));
    ws.resize(static_cast<std::size_t>(p.c_out * c * kk));
    gather_rows(xs.data(), x + static_cast<std::int64_t>(n) * p.c_in * in_plane, list, in_plane);
    gather_input_columns(ws.data(), w, p.c_out, p.c_in, list, kk);
    conv2d_params q = p;
    q.n = 1;
    q.c_in = c;
    conv2d_forward(yn, xs.data(), ws.data(), q);
    macs += static_cast<std::int64_t>(p.c_out) * c * kk * out_plane;
  }
  return macs;
}

template <class T>
std::int64_t conv2d_gated_input_backward_weight(T* dw, const T* dy, const T* x, const conv2d_params& p,
                                                const std::vector<std::vector<int>>& active) {
  const std::int64_t kk = static_cast<std::int64_t>(p.kh) * p.kw, in_plane = static_cast<std::int64_t>(p.h) * p.w;
  const std::int64_t out_plane = static_cast<std::int64_t>(p.out_h()) * p.out_w();
  std::vector<T> xs, dws;
  std::int64_t macs = 0;
  for (int n = 0; n < p.n; ++n) {
    const auto& list = active[static_cast<std::size_t>(n)];
    if (list.empty()) continue;
    const int c = static_cast<int>(list.size());
    xs.resize(static_cast<std::size_t>(c * in_plane));
    dws.assign(static_cast<std::size_t>(p.c_out * c * kk), T(0));
    gather_rows(xs.data(), x + static_cast<std::int64_t>(n) * p.c_in * in_plane, list, in_plane);
    conv2d_params q = p;
    q.n = 1;
    q.c_in = c;
    conv2d_backward_weight(dws.data(), dy + static_cast<std::int64_t>(n) * p.c_out * out_plane, xs.data(), q);
    for (int o = 0; o < p.c_out; ++o)
      for (int j = 0; j < c; ++j) {
        T* dst = dw + (static_cast<std::int64_t>(o) * p.c_in + list[static_cast<std::size_t>(j)]) * kk;
        const T* src = dws.data() + (static_cast<std::int64_t>(o) * c + j) * kk;
        for (std::int64_t t = 0; t < kk; ++t) dst[t] += src[t];
      }
    macs += static_cast<std::int64_t>(p.c_out) * c * kk * out_plane;
  }
  return macs;
}

}  // namespace cpu

// Tape op. macs, when given, receives the forward MACs executed.
template <real T>
tensor<T> conv2d_gated_input(tape<T>& tp, const tensor<T>& x, const tensor<T>& w, std::vector<std::vector<int>> active, int stride, int padding,
                             std::int64_t* macs = nullptr) {
  check_cpu("conv2d_gated_input", x);
  const cpu::conv2d_params p = conv2d_geometry(x, w, stride, padding);
  SSLGATE_CHECK(static_cast<std::int64_t>(active.size()) == x.dim(0), shape_error, "conv2d_gated_input",
                "{} channel lists for input {}", active.size(), x.dims());
  for (const auto& list : active)
    for (int c : list)
      SSLGATE_CHECK(c >= 0 && c < p.c_in, shape_error, "conv2d_gated_input", "channel {} out of range for input {}", c, x.dims());
  tensor<T> y(shape{p.n, p.c_out, p.out_h(), p.out_w()});
  const std::int64_t executed = cpu::conv2d_gated_input_forward(y.data(), x.data(), w.data(), p, active);
  if (macs != nullptr) *macs += executed;
  tp.record({x, w}, y, [x, w, p, active = std::move(active)](grad_slots<T>& g, const tensor<T>& dy) {
    if (g.needed(0)) cpu::conv2d_backward_data(g[0].data(), dy.data(), w.data(), p);
    if (g.needed(1)) cpu::conv2d_gated_input_backward_weight(g[1].data(), dy.data(), x.data(), p, active);
  });
  return y;
}

}  // namespace sslgate::ops
