#pragma once
// SGD with momentum (PyTorch semantics: buf = m * buf + (g + wd * w), w -= lr * buf; the first step sets buf = g + wd * w).
// Parameters on a CUDA device (float32) step there (core/cuda/optim.hpp), rounded where the CPU loop rounds.
#include <sslgate/core/cuda/optim.hpp>
#include <sslgate/core/tensor.hpp>
#include <sslgate/ops/device.hpp>

#include <vector>

namespace sslgate::optim {

template <real T>
class sgd {
 public:
  struct options {
    double lr = 0.1, momentum = 0.9, weight_decay = 0;
  };
  sgd(std::vector<tensor<T>> params, options opt) : params_(std::move(params)), opt_(opt), bufs_(params_.size()) {}

  void set_lr(double lr) { opt_.lr = lr; }
  double lr() const { return opt_.lr; }

  // Applies each parameter's gradient once and clears it; parameters without a gradient are left alone.
  void step() {
    for (std::size_t i = 0; i < params_.size(); ++i) {
      tensor<T>& w = params_[i];
      const tensor<T> g = w.grad();
      if (g.empty()) continue;
      const bool first = bufs_[i].empty();
      if (ops::on_device("sgd", w)) {
        if constexpr (ops::cuda_kernels<T>) {
          ops::check_same_device("sgd", w, {&g, &bufs_[i]});
          if (first) bufs_[i] = tensor<T>::empty_like(w);  // the kernel writes it
          cuda::sgd_update(w.data(), bufs_[i].data(), g.data(), w.numel(), static_cast<float>(opt_.momentum), static_cast<float>(opt_.lr),
                           static_cast<float>(opt_.weight_decay), first);
        }
        w.zero_grad();
        continue;
      }
      if (first) bufs_[i] = tensor<T>::zeros_like(w);
      T* b = bufs_[i].data();
      T* p = w.data();
      const T* d = g.data();
      const T lr = static_cast<T>(opt_.lr), m = static_cast<T>(opt_.momentum), wd = static_cast<T>(opt_.weight_decay);
      for (std::int64_t k = 0; k < w.numel(); ++k) {
        const T gk = d[k] + wd * p[k];
        b[k] = first ? gk : m * b[k] + gk;
        p[k] -= lr * b[k];
      }
      w.zero_grad();
    }
  }

  // Momentum buffer of parameter i (empty until its first step).
  const tensor<T>& momentum_buffer(std::size_t i) const { return bufs_[i]; }

 private:
  std::vector<tensor<T>> params_;
  options opt_;
  std::vector<tensor<T>> bufs_;
};

}  // namespace sslgate::optim
