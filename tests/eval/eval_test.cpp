#include <sslgate/eval/knn.hpp>
#include <sslgate/eval/linear_probe.hpp>

#include <catch2/catch.hpp>

using namespace sslgate;

namespace {
// n points per class around well-separated random centres in d dimensions.
void clusters(int classes, int n, int d, std::uint64_t seed, tensor<float>& x, std::vector<int>& labels) {
  rng r(seed);
  rng centres(99);
  const auto c = tensor<float>::normal({classes, d}, centres, 0.f, 3.f);
  x = tensor<float>(shape{classes * n, d});
  labels.clear();
  for (int k = 0; k < classes; ++k)
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < d; ++j) x[(k * n + i) * d + j] = c[k * d + j] + static_cast<float>(r.normal());
      labels.push_back(k);
    }
}
}  // namespace

TEST_CASE("kNN (k=1 euclidean, k=20 cosine) and the linear probe separate clusters", "[eval]") {
  tensor<float> train, test;
  std::vector<int> ytrain, ytest;
  clusters(5, 60, 16, 1, train, ytrain);
  clusters(5, 20, 16, 2, test, ytest);
  CHECK(eval::knn_accuracy(train, ytrain, test, ytest, 1, eval::knn_metric::euclidean, 5) >= 0.95);
  CHECK(eval::knn_accuracy(train, ytrain, test, ytest, 20, eval::knn_metric::cosine, 5) >= 0.95);
  CHECK(eval::linear_probe_accuracy(train, ytrain, test, ytest, 5, {.epochs = 20}) >= 0.95);
  // Shuffled labels: chance level, not a plumbing artefact.
  std::vector<int> shuffled(ytrain.rbegin(), ytrain.rend());
  rng r(3);
  for (std::size_t i = shuffled.size() - 1; i > 0; --i) std::swap(shuffled[i], shuffled[static_cast<std::size_t>(r.uniform() * double(i + 1))]);
  CHECK(eval::knn_accuracy(train, shuffled, test, ytest, 1, eval::knn_metric::euclidean, 5) < 0.5);
}

TEST_CASE("kNN: the exact neighbour wins, and bad arguments are errors", "[eval]") {
  auto train = tensor<float>::from({3, 2}, {0, 0, 10, 0, 0, 10});
  auto test = tensor<float>::from({3, 2}, {9, 1, 1, 9, 0.5f, 0.5f});
  CHECK(eval::knn_accuracy(train, {0, 1, 2}, test, {1, 2, 0}, 1, eval::knn_metric::euclidean, 3) == 1.0);
  CHECK_THROWS_AS(eval::knn_accuracy(train, {0, 1, 2}, test, {1, 2, 0}, 4, eval::knn_metric::euclidean, 3), value_error);
  CHECK_THROWS_AS(eval::knn_accuracy(train, {0, 1}, test, {1, 2, 0}, 1, eval::knn_metric::euclidean, 3), shape_error);
}
