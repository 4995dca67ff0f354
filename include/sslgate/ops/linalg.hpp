#pragma once
// Matrix products and transposes.
//   matmul: a [M, K] (or [K, M] with trans_a), b [K, N] (or [N, K] with trans_b) -> [M, N]
//   linear: x [N, In], w [Out, In], b [Out] or empty -> x w^T + b: [N, Out]
//   transpose: swaps two dimensions (a copy; tensors are contiguous)
#include <sslgate/ops/cpu/gemm.hpp>
#include <sslgate/ops/reduce.hpp>

namespace sslgate::ops {

template <real T>
tensor<T> matmul(tape<T>& tp, const tensor<T>& a, const tensor<T>& b, bool trans_a = false, bool trans_b = false) {
  check_rank("matmul", a, 2, "a");
  check_rank("matmul", b, 2, "b");
  const long m = trans_a ? a.dim(1) : a.dim(0), k = trans_a ? a.dim(0) : a.dim(1);
  const long n = trans_b ? b.dim(0) : b.dim(1), kb = trans_b ? b.dim(1) : b.dim(0);
  SSLGATE_CHECK(k == kb, shape_error, "matmul", "inner sizes differ: a {}{} and b {}{}", a.dims(), trans_a ? "^T" : "", b.dims(),
                trans_b ? "^T" : "");
  check_same_device("matmul", a, {&b});
  const bool dev = on_device("matmul", a);
  // C[M, N] = beta C + A' B' on the operands' device.
  const auto gemm = [dev](T* c, const T* x, const T* y, long mm, long nn, long kk, bool ta, bool tb, T beta) {
    if (dev) {
      if constexpr (cuda_kernels<T>) cuda::gemm(c, x, y, mm, nn, kk, ta, tb, beta);
    } else {
      cpu::gemm<T>(c, x, y, mm, nn, kk, ta, tb, beta);
    }
  };
  tensor<T> y(shape{m, n}, a.dev());
  gemm(y.data(), a.data(), b.data(), m, n, k, trans_a, trans_b, T(0));
  tp.record({a, b}, y, [a, b, m, n, k, trans_a, trans_b, gemm](grad_slots<T>& g, const tensor<T>& dy) {
    // y = A'B': dA' = dy B'^T, dB' = A'^T dy, written in each operand's storage order.
    if (g.needed(0)) {
      if (!trans_a) gemm(g[0].data(), dy.data(), b.data(), m, k, n, false, !trans_b, T(1));
      else gemm(g[0].data(), b.data(), dy.data(), k, m, n, trans_b, true, T(1));
    }
    if (g.needed(1)) {
      if (!trans_b) gemm(g[1].data(), a.data(), dy.data(), k, n, m, !trans_a, false, T(1));
      else gemm(g[1].data(), dy.data(), a.data(), n, k, m, true, trans_a, T(1));
    }
  });
  return y;
}

template <real T>
tensor<T> linear(tape<T>& tp, const tensor<T>& x, const tensor<T>& w, const tensor<T>& b = {}) {
  check_rank("linear", x, 2, "input");
  check_rank("linear", w, 2, "weight");
  SSLGATE_CHECK(x.dim(1) == w.dim(1), shape_error, "linear", "input {} has {} features but weight {} expects {}", x.dims(), x.dim(1),
                w.dims(), w.dim(1));
  tensor<T> y = matmul(tp, x, w, false, true);
  if (b.empty()) return y;
  SSLGATE_CHECK(b.rank() == 1 && b.dim(0) == w.dim(0), shape_error, "linear", "bias {} does not match weight {}", b.dims(), w.dims());
  return add(tp, y, b);
}

template <real T>
tensor<T> transpose(tape<T>& tp, const tensor<T>& x, int d0 = 0, int d1 = 1) {
  const bool dev = on_device("transpose", x);
  const int a0 = x.dims().axis(d0), a1 = x.dims().axis(d1);
  shape out = x.dims();
  std::swap(out[a0], out[a1]);
  tensor<T> y(out, x.dev());
  if (dev) {
    if constexpr (cuda_kernels<T>) {
      cuda::swap_axes(y.data(), x.data(), x.dims(), a0, a1, false);
      tp.record({x}, y, [out, a0, a1](grad_slots<T>& g, const tensor<T>& dy) { cuda::swap_axes(g[0].data(), dy.data(), out, a0, a1, true); });
    }
    return y;
  }
  // Source strides permuted to the output's index order: y[i] = x[permuted index].
  auto permute = [a0, a1](T* dst, const T* src, const shape& in) {
    shape o = in;
    std::swap(o[a0], o[a1]);
    std::array<std::int64_t, shape::max_rank> st{};
    for (int i = 0; i < in.rank(); ++i) st[i] = in.stride(i);
    std::swap(st[a0], st[a1]);
    const std::int64_t n = in.numel();
    for (std::int64_t i = 0; i < n; ++i) {
      std::int64_t rem = i, off = 0;
      for (int d = o.rank() - 1; d >= 0; --d) {
        off += (rem % o[d]) * st[d];
        rem /= o[d];
      }
      dst[i] = src[off];
    }
  };
  permute(y.data(), x.data(), x.dims());
  tp.record({x}, y, [permute, out](grad_slots<T>& g, const tensor<T>& dy) {
    tensor<T> back(g[0].dims());
    permute(back.data(), dy.data(), out);
    cpu::map<T>([](auto d, auto v) { return d + v; }, g[0].data(), g[0].dims(), arg(g[0]), arg(back));
  });
  return y;
}

}  // namespace sslgate::ops
