#pragma once
// k-nearest-neighbour classification of frozen features (METHOD.md §8).
//   euclidean, k = 1, vote weight 1 / (d + 1e-5), no normalization: the paper's offline protocol
//   cosine, k = 20: features l2-normalized, votes weighted by the similarity (the usual monitoring protocol)
// train: [N, D] with labels, test: [M, D]; returns top-1 accuracy in [0, 1].
#include <sslgate/ops/cpu/gemm.hpp>
#include <sslgate/core/parallel.hpp>
#include <sslgate/core/tensor.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

namespace sslgate::eval {

enum class knn_metric { euclidean, cosine };

inline double knn_accuracy(const tensor<float>& train, const std::vector<int>& train_labels, const tensor<float>& test,
                           const std::vector<int>& test_labels, int k, knn_metric metric, int num_classes) {
  check_rank("knn", train, 2, "train features");
  check_rank("knn", test, 2, "test features");
  SSLGATE_CHECK(train.dim(1) == test.dim(1), shape_error, "knn", "train {} and test {} features differ in width", train.dims(), test.dims());
  SSLGATE_CHECK(static_cast<std::int64_t>(train_labels.size()) == train.dim(0) && static_cast<std::int64_t>(test_labels.size()) == test.dim(0),
                shape_error, "knn", "labels do not match the features");
  SSLGATE_CHECK(k >= 1 && k <= train.dim(0), value_error, "knn", "k = {} must be in [1, {}]", k, train.dim(0));
  const std::int64_t n = train.dim(0), m = test.dim(0), d = train.dim(1);
  auto normalized = [&](const tensor<float>& x) {
    tensor<float> y = x.clone();
    for (std::int64_t i = 0; i < x.dim(0); ++i) {
      double s = 0;
      for (std::int64_t j = 0; j < d; ++j) s += double(y[i * d + j]) * y[i * d + j];
      const float inv = static_cast<float>(1.0 / std::max(std::sqrt(s), 1e-12));
      for (std::int64_t j = 0; j < d; ++j) y[i * d + j] *= inv;
    }
    return y;
  };
  const tensor<float> a = metric == knn_metric::cosine ? normalized(train) : train;
  const tensor<float> b = metric == knn_metric::cosine ? normalized(test) : test;
  std::vector<double> train_sq(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (std::int64_t j = 0; j < d; ++j) s += double(a[i * d + j]) * a[i * d + j];
    train_sq[static_cast<std::size_t>(i)] = s;
  }
  std::int64_t correct = 0;
  const std::int64_t chunk = 256;
  std::vector<float> dots(static_cast<std::size_t>(chunk * n));
  for (std::int64_t t0 = 0; t0 < m; t0 += chunk) {
    const std::int64_t rows = std::min(chunk, m - t0);
    ops::cpu::gemm<float>(dots.data(), b.data() + t0 * d, a.data(), rows, n, d, false, true, 0.f);
    std::vector<std::int64_t> hits(static_cast<std::size_t>(rows));
    parallel_for(rows, 1, [&](std::int64_t r0, std::int64_t r1) {
      std::vector<std::pair<double, int>> best;
      for (std::int64_t r = r0; r < r1; ++r) {
        double q = 0;
        for (std::int64_t j = 0; j < d; ++j) q += double(b[(t0 + r) * d + j]) * b[(t0 + r) * d + j];
        best.clear();
        for (std::int64_t i = 0; i < n; ++i) {
          const double dot = dots[static_cast<std::size_t>(r * n + i)];
          // Smaller score = closer: squared distance, or negative similarity.
          const double score = metric == knn_metric::euclidean ? q + train_sq[static_cast<std::size_t>(i)] - 2 * dot : -dot;
          if (static_cast<int>(best.size()) < k) {
            best.emplace_back(score, static_cast<int>(i));
            std::push_heap(best.begin(), best.end());
          } else if (score < best.front().first) {
            std::pop_heap(best.begin(), best.end());
            best.back() = {score, static_cast<int>(i)};
            std::push_heap(best.begin(), best.end());
          }
        }
        std::vector<double> votes(static_cast<std::size_t>(num_classes), 0.0);
        for (const auto& [score, i] : best) {
          const double w = metric == knn_metric::euclidean ? 1.0 / (std::sqrt(std::max(score, 0.0)) + 1e-5) : -score;
          votes[static_cast<std::size_t>(train_labels[static_cast<std::size_t>(i)])] += w;
        }
        const int pred = static_cast<int>(std::max_element(votes.begin(), votes.end()) - votes.begin());
        hits[static_cast<std::size_t>(r)] = pred == test_labels[static_cast<std::size_t>(t0 + r)];
      }
    });
    for (auto h : hits) correct += h;
  }
  return static_cast<double>(correct) / static_cast<double>(m);
}

}  // namespace sslgate::eval
