#pragma once
// BatchNorm over the channels of [N, C] or [N, C, H, W]: weight 1, bias 0, running stats (0, 1), momentum 0.1, eps 1e-5.
// affine = false drops weight and bias (Barlow Twins' and SimSiam's final BN).
#include <sslgate/layers/module.hpp>
#include <sslgate/ops/batchnorm.hpp>
#include <sslgate/ops/device.hpp>

#include <cmath>
#include <utility>
#include <vector>

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
  // Eval BN as y = x * scale + shift per channel (running statistics), on the host.
  std::pair<std::vector<T>, std::vector<T>> eval_affine() const {
    const auto c = static_cast<std::size_t>(channels());
    std::vector<T> scale(c), shift(c), kw, kb, km, kv;
    const T* w = weight.empty() ? nullptr : ops::host_view(weight, kw);
    const T* b = bias.empty() ? nullptr : ops::host_view(bias, kb);
    const T* mean = ops::host_view(running_mean, km);
    const T* var = ops::host_view(running_var, kv);
    for (std::size_t k = 0; k < c; ++k) {
      const double s = (w ? static_cast<double>(w[k]) : 1.0) / std::sqrt(static_cast<double>(var[k]) + eps);
      scale[k] = static_cast<T>(s);
      shift[k] = static_cast<T>((b ? static_cast<double>(b[k]) : 0.0) - static_cast<double>(mean[k]) * s);
    }
    return {scale, shift};
  }

  tensor<T> weight, bias, running_mean, running_var;
  double momentum = 0.1, eps = 1e-5;
};

}  // namespace sslgate::layers
