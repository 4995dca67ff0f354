#pragma once
// Element functors shared by every backend. Each works on a scalar or an xsimd batch:
// operator() is the forward value, grad(x, y, dy) the input gradient given output y.
#include <xsimd/xsimd.hpp>

#include <cmath>

namespace sslgate::ops::kernels {

template <class V> struct scalar_of { using type = V; };
template <class T, class A> struct scalar_of<xsimd::batch<T, A>> { using type = T; };
// A constant c as a V (scalar or batch).
template <class V> V splat(double c) { return V(static_cast<typename scalar_of<V>::type>(c)); }
// cond ? a : b for a scalar or lane-wise for a batch.
template <class C, class V> V select(const C& cond, V a, V b) {
  if constexpr (std::is_same_v<C, bool>) return cond ? a : b;
  else return select(cond, a, b);
}

struct neg_fn {
  template <class V> V operator()(V x) const { return -x; }
  template <class V> V grad(V, V, V dy) const { return -dy; }
};
struct scale_fn {
  double s;
  template <class V> V operator()(V x) const { return x * splat<V>(s); }
  template <class V> V grad(V, V, V dy) const { return dy * splat<V>(s); }
};
struct exp_fn {
  template <class V> V operator()(V x) const { return xsimd::exp(x); }
  template <class V> V grad(V, V y, V dy) const { return dy * y; }
};
struct log_fn {
  template <class V> V operator()(V x) const { return xsimd::log(x); }
  template <class V> V grad(V x, V, V dy) const { return dy / x; }
};
struct sqrt_fn {
  template <class V> V operator()(V x) const { return xsimd::sqrt(x); }
  template <class V> V grad(V, V y, V dy) const { return dy / (y + y); }
};
struct abs_fn {
  template <class V> V operator()(V x) const { return xsimd::abs(x); }
  template <class V> V grad(V x, V, V dy) const { return select(x > V(0), dy, select(x < V(0), -dy, V(0))); }
};
struct relu_fn {
  template <class V> V operator()(V x) const { return xsimd::max(x, V(0)); }
  template <class V> V grad(V, V y, V dy) const { return select(y > V(0), dy, V(0)); }
};
struct sigmoid_fn {
  template <class V> V operator()(V x) const { return V(1) / (V(1) + xsimd::exp(-x)); }
  template <class V> V grad(V, V y, V dy) const { return dy * y * (V(1) - y); }
};
struct pow_fn {  // x^p for a fixed real exponent p
  double p;
  template <class V> V operator()(V x) const { return xsimd::pow(x, splat<V>(p)); }
  template <class V> V grad(V x, V, V dy) const { return dy * splat<V>(p) * xsimd::pow(x, splat<V>(p - 1)); }
};

// Binary functors: operator()(a, b) and the partial derivatives times dy.
struct add_fn {
  template <class V> V operator()(V a, V b) const { return a + b; }
  template <class V> V grad_a(V, V, V dy) const { return dy; }
  template <class V> V grad_b(V, V, V dy) const { return dy; }
};
struct sub_fn {
  template <class V> V operator()(V a, V b) const { return a - b; }
  template <class V> V grad_a(V, V, V dy) const { return dy; }
  template <class V> V grad_b(V, V, V dy) const { return -dy; }
};
struct mul_fn {
  template <class V> V operator()(V a, V b) const { return a * b; }
  template <class V> V grad_a(V, V b, V dy) const { return dy * b; }
  template <class V> V grad_b(V a, V, V dy) const { return dy * a; }
};
struct div_fn {
  template <class V> V operator()(V a, V b) const { return a / b; }
  template <class V> V grad_a(V, V b, V dy) const { return dy / b; }
  template <class V> V grad_b(V a, V b, V dy) const { return -dy * a / (b * b); }
};

}  // namespace sslgate::ops::kernels
