#pragma once
// BatchNorm over the channels of [N, C] or [N, C, H, W]: weight 1, bias 0, running stats (0, 1), momentum 0.1, eps 1e-5.
// affine = false drops weight and bias (Barlow Twins' and SimSiam's final BN).
#include <sslgate/layers/module.hpp>
#include <sslgate/ops/batchnorm.hpp>

namespace sslgate::layers {

template <real T>
class batchnorm {
 public:
  using value_type = T;
  batchnorm() = default;
  explicit batchnorm(int channels, bool affine = true)
      : running_mean(tensor<T>::zeros({channels})), running_var(tensor<T>::full({channels}, T(1))) {
    if (affine) {
      weight = tensor<T>::full({channels}, T(1)).set_requires_grad();
      bias = tensor<T>::zeros({channels}).set_requires_grad();
    }
  }

  tensor<T> forward(tape<T>& tp, const tensor<T>& x, bool training) {
    return ops::batchnorm(tp, x, weight, bias, running_mean, running_var, training, momentum, eps);
  }
  // relu(bn(x) + residual), residual optional (ops::batchnorm_relu).
  tensor<T> forward_relu(tape<T>& tp, const tensor<T>& x, bool training, const tensor<T>& residual = {}) {
    return ops::batchnorm_relu(tp, x, weight, bias, running_mean, running_var, training, residual, momentum, eps);
  }
  template <class V>
  void visit(V& v, const std::string& prefix) const {
    if (!weight.empty()) {
      v.param(join_name(prefix, "weight"), weight);
      v.param(join_name(prefix, "bias"), bias);
    }
    v.buffer(join_name(prefix, "running_mean"), running_mean);
    v.buffer(join_name(prefix, "running_var"), running_var);
  }
  int channels() const { return static_cast<int>(running_mean.dim(0)); }

  tensor<T> weight, bias, running_mean, running_var;
  double momentum = 0.1, eps = 1e-5;
};

}  // namespace sslgate::layers
