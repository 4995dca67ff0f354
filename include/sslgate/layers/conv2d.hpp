#pragma once
// conv2d layer: y = conv(x, weight), no bias (every conv of the ResNet is followed by BN).
//   x: [N, C_in, H, W] -> [N, C_out, H', W']
#include <sslgate/layers/module.hpp>
#include <sslgate/ops/conv2d.hpp>

namespace sslgate::layers {

template <real T>
class conv2d {
 public:
  using value_type = T;
  conv2d() = default;
  conv2d(int c_in, int c_out, int kernel, int stride, int padding, rng& r)
      : weight(kaiming_normal_fan_out<T>(shape{c_out, c_in, kernel, kernel}, r)), stride(stride), padding(padding) {}

  tensor<T> forward(tape<T>& tp, const tensor<T>& x) const { return ops::conv2d(tp, x, weight, stride, padding); }
  template <class V>
  void visit(V& v, const std::string& prefix) const { v.param(join_name(prefix, "weight"), weight); }

  int c_in() const { return static_cast<int>(weight.dim(1)); }
  int c_out() const { return static_cast<int>(weight.dim(0)); }

  tensor<T> weight;  // [C_out, C_in, k, k]
  int stride = 1, padding = 0;
};

}  // namespace sslgate::layers
