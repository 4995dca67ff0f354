#pragma once
// Linear probe on frozen features: Linear(D, classes) trained with cross-entropy by SGD (momentum 0.9,
// weight decay 0, cosine from lr to 0, batch 256) on features extracted once with the evaluation transform
// (no augmentation: the probe is cheap enough to run for both paths after every run). Features are
// standardized with the training set's per-dimension mean and std. Returns test top-1 accuracy in [0, 1].
#include <sslgate/ops/linalg.hpp>
#include <sslgate/ops/shape_ops.hpp>
#include <sslgate/ops/softmax.hpp>
#include <sslgate/optim/sgd.hpp>

#include <cmath>
#include <numeric>
#include <vector>

namespace sslgate::eval {

struct probe_options {
  int epochs = 100;
  std::int64_t batch = 256;
  double lr = 0.1;
  std::uint64_t seed = 0;
};

inline double linear_probe_accuracy(const tensor<float>& train, const std::vector<int>& train_labels, const tensor<float>& test,
                                    const std::vector<int>& test_labels, int num_classes, const probe_options& opt = {}) {
  check_rank("linear_probe", train, 2, "train features");
  const std::int64_t n = train.dim(0), d = train.dim(1);
  std::vector<double> mean(static_cast<std::size_t>(d), 0), sd(static_cast<std::size_t>(d), 0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < d; ++j) mean[j] += train[i * d + j];
  for (auto& m : mean) m /= static_cast<double>(n);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < d; ++j) sd[j] += (train[i * d + j] - mean[j]) * (train[i * d + j] - mean[j]);
  for (auto& s : sd) s = std::sqrt(s / static_cast<double>(n)) + 1e-6;
  auto standardize = [&](const tensor<float>& x) {
    tensor<float> y = x.clone();
    for (std::int64_t i = 0; i < x.dim(0); ++i)
      for (std::int64_t j = 0; j < d; ++j) y[i * d + j] = static_cast<float>((x[i * d + j] - mean[j]) / sd[j]);
    return y;
  };
  const tensor<float> xs = standardize(train), xt = standardize(test);
  rng r(opt.seed);
  auto w = tensor<float>::zeros({num_classes, d}).set_requires_grad();
  auto b = tensor<float>::zeros({num_classes}).set_requires_grad();
  optim::sgd<float> sgd({w, b}, {opt.lr, 0.9, 0.0});
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  const std::int64_t steps = (n + opt.batch - 1) / opt.batch, total = steps * opt.epochs;
  for (int e = 0; e < opt.epochs; ++e) {
    std::iota(order.begin(), order.end(), 0);
    for (std::int64_t i = n - 1; i > 0; --i) std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(r.uniform() * double(i + 1))]);
    for (std::int64_t s = 0; s < steps; ++s) {
      const std::vector<std::int64_t> rows(order.begin() + s * opt.batch, order.begin() + std::min(n, (s + 1) * opt.batch));
      std::vector<int> labels;
      for (auto i : rows) labels.push_back(train_labels[static_cast<std::size_t>(i)]);
      sgd.set_lr(0.5 * opt.lr * (1 + std::cos(3.141592653589793 * static_cast<double>(e * steps + s) / static_cast<double>(total))));
      tape<float> tp;
      const tensor<float> x = [&] {
        tape<float> none(grad_mode::off);
        return ops::index_select(none, xs, 0, rows);
      }();
      tp.backward(ops::cross_entropy(tp, ops::linear(tp, x, w, b), labels));
      sgd.step();
    }
  }
  tape<float> none(grad_mode::off);
  const tensor<float> logits = ops::linear(none, xt, w, b);
  std::int64_t correct = 0;
  for (std::int64_t i = 0; i < logits.dim(0); ++i) {
    const float* row = logits.data() + i * num_classes;
    correct += (std::max_element(row, row + num_classes) - row) == test_labels[static_cast<std::size_t>(i)];
  }
  return static_cast<double>(correct) / static_cast<double>(logits.dim(0));
}

}  // namespace sslgate::eval
