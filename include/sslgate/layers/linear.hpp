#pragma once
// linear layer: y = x W^T + b, [N, In] -> [N, Out]; PyTorch's default init U(-1/sqrt(In), 1/sqrt(In)) for W and b.
#include <sslgate/layers/module.hpp>
#include <sslgate/ops/linalg.hpp>

#include <cmath>

namespace sslgate::layers {

template <real T>
class linear {
 public:
  using value_type = T;
  linear() = default;
  linear(int in, int out, rng& r, bool bias = true) {
    const T bound = static_cast<T>(1.0 / std::sqrt(static_cast<double>(in)));
    weight = tensor<T>::uniform({out, in}, r, -bound, bound).set_requires_grad();
    if (bias) this->bias = tensor<T>::uniform({out}, r, -bound, bound).set_requires_grad();
  }

  tensor<T> forward(tape<T>& tp, const tensor<T>& x) const { return ops::linear(tp, x, weight, bias); }
  template <class V>
  void visit(V& v, const std::string& prefix) const {
    v.param(join_name(prefix, "weight"), weight);
    if (!bias.empty()) v.param(join_name(prefix, "bias"), bias);
  }
  int in_features() const { return static_cast<int>(weight.dim(1)); }
  int out_features() const { return static_cast<int>(weight.dim(0)); }

  tensor<T> weight, bias;
};

}  // namespace sslgate::layers
