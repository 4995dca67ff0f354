#pragma once
// Element-wise ops with numpy broadcasting (right-aligned; size-1 dimensions stretch), forward and backward.
//   unary:  neg, scale, exp, log, sqrt, pow, abs, relu, sigmoid         x -> y, same shape
//   binary: add, sub, mul, div                                           a, b -> broadcast(a, b)
// Backward adds into the input gradients; a broadcast operand receives the sum over its stretched dims.
#include <sslgate/autograd/tape.hpp>
#include <sslgate/ops/cpu/loop.hpp>
#include <sslgate/ops/device.hpp>
#include <sslgate/ops/kernels/elementwise.hpp>

#include <type_traits>
#include <utility>

namespace sslgate::ops {

template <real T>
cpu::operand<T> arg(const tensor<T>& x) {
  return {x.data(), x.dims()};
}

inline shape broadcast_shape(std::string_view op, const shape& a, const shape& b) {
  const int r = std::max(a.rank(), b.rank());
  std::array<std::int64_t, shape::max_rank> d{};
  for (int i = 0; i < r; ++i) {
    const std::int64_t x = i < r - a.rank() ? 1 : a[i - (r - a.rank())];
    const std::int64_t y = i < r - b.rank() ? 1 : b[i - (r - b.rank())];
    SSLGATE_CHECK(x == y || x == 1 || y == 1, shape_error, op, "shapes {} and {} do not broadcast", a, b);
    d[i] = x == 1 ? y : x;
  }
  return shape(std::span<const std::int64_t>(d.data(), r));
}

namespace detail {
// The device kernel code of an element-wise functor and its parameter (scale factor, exponent).
template <class F>
std::pair<cuda::unary_op, double> device_unary(const F& f) {
  using namespace kernels;
  if constexpr (std::is_same_v<F, neg_fn>) return {cuda::unary_op::neg, 0};
  else if constexpr (std::is_same_v<F, scale_fn>) return {cuda::unary_op::scale, f.s};
  else if constexpr (std::is_same_v<F, exp_fn>) return {cuda::unary_op::exp, 0};
  else if constexpr (std::is_same_v<F, log_fn>) return {cuda::unary_op::log, 0};
  else if constexpr (std::is_same_v<F, sqrt_fn>) return {cuda::unary_op::sqrt, 0};
  else if constexpr (std::is_same_v<F, pow_fn>) return {cuda::unary_op::pow, f.p};
  else if constexpr (std::is_same_v<F, abs_fn>) return {cuda::unary_op::abs, 0};
  else if constexpr (std::is_same_v<F, relu_fn>) return {cuda::unary_op::relu, 0};
  else {
    static_assert(std::is_same_v<F, sigmoid_fn>, "no device kernel for this functor");
    return {cuda::unary_op::sigmoid, 0};
  }
}
template <class F>
cuda::binary_op device_binary() {
  using namespace kernels;
  if constexpr (std::is_same_v<F, add_fn>) return cuda::binary_op::add;
  else if constexpr (std::is_same_v<F, sub_fn>) return cuda::binary_op::sub;
  else if constexpr (std::is_same_v<F, mul_fn>) return cuda::binary_op::mul;
  else {
    static_assert(std::is_same_v<F, div_fn>, "no device kernel for this functor");
    return cuda::binary_op::div;
  }
}

// dst += src on dst's device (same shape): the accumulation of gradient slots.
template <real T>
void add_into(tensor<T>& dst, const tensor<T>& src) {
  if (on_device("add_into", dst)) {
    if constexpr (cuda_kernels<T>) cuda::binary_forward(cuda::binary_op::add, dst.data(), dst.dims(), dst.data(), dst.dims(), src.data(), dst.dims());
    return;
  }
  cpu::map<T>([](auto d, auto v) { return d + v; }, dst.data(), dst.dims(), arg(dst), cpu::operand<T>{src.data(), dst.dims()});
}
}  // namespace detail

// y = f(x) with dx += f.grad(x, y, dy).
template <real T, class F>
tensor<T> unary(tape<T>& tp, const tensor<T>& x, F f, std::string_view op) {
  const bool dev = on_device(op, x);
  tensor<T> y = tensor<T>::empty_like(x);
  if (dev) {
    if constexpr (cuda_kernels<T>) {
      const auto [code, param] = detail::device_unary(f);
      cuda::unary_forward(code, y.data(), x.data(), x.numel(), param);
      tp.record({x}, y, [x, y, code, param](grad_slots<T>& g, const tensor<T>& dy) {
        cuda::unary_backward(code, g[0].data(), x.data(), y.data(), dy.data(), x.numel(), param);
      });
    }
    return y;
  }
  cpu::map<T>([f](auto v) { return f(v); }, y.data(), y.dims(), arg(x));
  tp.record({x}, y, [x, y, f](grad_slots<T>& g, const tensor<T>& dy) {
    auto [dx, fresh] = g.slot(0);
    if (fresh) cpu::map<T>([f](auto xv, auto yv, auto dyv) { return f.grad(xv, yv, dyv); }, dx.data(), dx.dims(), arg(x), arg(y), arg(dy));
    else cpu::map<T>([f](auto d, auto xv, auto yv, auto dyv) { return d + f.grad(xv, yv, dyv); }, dx.data(), dx.dims(), arg(dx), arg(x), arg(y), arg(dy));
  });
  return y;
}

namespace detail {
// slot i += sum-to-shape(h(a, b, dy)) for operand i of a broadcast binary op.
template <real T, class H>
void binary_grad(grad_slots<T>& slots, int i, const tensor<T>& a, const tensor<T>& b, const tensor<T>& dy, H h) {
  const auto pa = arg(a), pb = arg(b), pdy = arg(dy);
  if ((i == 0 ? a : b).dims() == dy.dims()) {
    auto [d, fresh] = slots.slot(i);
    if (fresh) cpu::map<T>(h, d.data(), d.dims(), pa, pb, pdy);
    else cpu::map<T>([h](auto dv, auto av, auto bv, auto g) { return dv + h(av, bv, g); }, d.data(), d.dims(), arg(d), pa, pb, pdy);
    return;
  }
  tensor<T>& d = slots[i];
  tensor<T> full(dy.dims());
  cpu::map<T>(h, full.data(), full.dims(), pa, pb, pdy);
  cpu::sum_to_add(d.data(), d.dims(), full.data(), full.dims());
}
}  // namespace detail

template <real T, class F>
tensor<T> binary(tape<T>& tp, const tensor<T>& a, const tensor<T>& b, F f, std::string_view op) {
  const bool dev = on_device(op, a);
  SSLGATE_CHECK(!b.empty(), shape_error, op, "second input is empty");
  check_same_device(op, a, {&b});
  tensor<T> y(broadcast_shape(op, a.dims(), b.dims()), a.dev());
  if (dev) {
    if constexpr (cuda_kernels<T>) {
      const cuda::binary_op code = detail::device_binary<F>();
      cuda::binary_forward(code, y.data(), y.dims(), a.data(), a.dims(), b.data(), b.dims());
      tp.record({a, b}, y, [a, b, code](grad_slots<T>& g, const tensor<T>& dy) {
        for (int i = 0; i < 2; ++i)
          if (g.needed(i)) cuda::binary_backward(code, i, g[i].data(), a.data(), a.dims(), b.data(), b.dims(), dy.data(), dy.dims());
      });
    }
    return y;
  }
  cpu::map<T>([f](auto av, auto bv) { return f(av, bv); }, y.data(), y.dims(), arg(a), arg(b));
  tp.record({a, b}, y, [a, b, f](grad_slots<T>& g, const tensor<T>& dy) {
    if (g.needed(0)) detail::binary_grad(g, 0, a, b, dy, [f](auto av, auto bv, auto d) { return f.grad_a(av, bv, d); });
    if (g.needed(1)) detail::binary_grad(g, 1, a, b, dy, [f](auto av, auto bv, auto d) { return f.grad_b(av, bv, d); });
  });
  return y;
}

template <real T> tensor<T> neg(tape<T>& tp, const tensor<T>& x) { return unary(tp, x, kernels::neg_fn{}, "neg"); }
template <real T> tensor<T> scale(tape<T>& tp, const tensor<T>& x, double s) { return unary(tp, x, kernels::scale_fn{s}, "scale"); }
template <real T> tensor<T> exp(tape<T>& tp, const tensor<T>& x) { return unary(tp, x, kernels::exp_fn{}, "exp"); }
template <real T> tensor<T> log(tape<T>& tp, const tensor<T>& x) { return unary(tp, x, kernels::log_fn{}, "log"); }
template <real T> tensor<T> sqrt(tape<T>& tp, const tensor<T>& x) { return unary(tp, x, kernels::sqrt_fn{}, "sqrt"); }
template <real T> tensor<T> pow(tape<T>& tp, const tensor<T>& x, double p) { return unary(tp, x, kernels::pow_fn{p}, "pow"); }
template <real T> tensor<T> abs(tape<T>& tp, const tensor<T>& x) { return unary(tp, x, kernels::abs_fn{}, "abs"); }
template <real T> tensor<T> relu(tape<T>& tp, const tensor<T>& x) { return unary(tp, x, kernels::relu_fn{}, "relu"); }
template <real T> tensor<T> sigmoid(tape<T>& tp, const tensor<T>& x) { return unary(tp, x, kernels::sigmoid_fn{}, "sigmoid"); }

template <real T> tensor<T> add(tape<T>& tp, const tensor<T>& a, const tensor<T>& b) { return binary(tp, a, b, kernels::add_fn{}, "add"); }
template <real T> tensor<T> sub(tape<T>& tp, const tensor<T>& a, const tensor<T>& b) { return binary(tp, a, b, kernels::sub_fn{}, "sub"); }
template <real T> tensor<T> mul(tape<T>& tp, const tensor<T>& a, const tensor<T>& b) { return binary(tp, a, b, kernels::mul_fn{}, "mul"); }
template <real T> tensor<T> div(tape<T>& tp, const tensor<T>& a, const tensor<T>& b) { return binary(tp, a, b, kernels::div_fn{}, "div"); }

// x + c for a constant c.
template <real T>
tensor<T> add_scalar(tape<T>& tp, const tensor<T>& x, T c) {
  return add(tp, x, tensor<T>::full(shape{}, c, x.dev()));
}

}  // namespace sslgate::ops
