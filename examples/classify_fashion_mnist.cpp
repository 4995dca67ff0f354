// Trains a small CNN on Fashion-MNIST (Debian's dataset-fashion-mnist, gzipped IDX) and prints the test accuracy.
//   conv3x3(1->16)-BN-ReLU-maxpool2  conv3x3(16->32)-BN-ReLU-maxpool2  linear(1568->10), SGD momentum 0.9.
// Usage: classify_fashion_mnist [--data DIR] [--epochs N] [--batch B] [--lr LR] [--threads T] [--seed S]
#include <sslgate/data/idx.hpp>
#include <sslgate/ops/batchnorm.hpp>
#include <sslgate/ops/conv2d.hpp>
#include <sslgate/ops/linalg.hpp>
#include <sslgate/ops/pool.hpp>
#include <sslgate/ops/shape_ops.hpp>
#include <sslgate/ops/softmax.hpp>
#include <sslgate/optim/sgd.hpp>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <chrono>
#include <cmath>
#include <numeric>

using namespace sslgate;

namespace {

struct split {
  tensor<float> images;  // [N, 1, 28, 28], normalized
  std::vector<int> labels;
};

split load(const std::string& dir, const std::string& prefix) {
  const auto im = data::read_idx_images(dir + "/" + prefix + "-images-idx3-ubyte.gz");
  const auto lb = data::read_idx_labels(dir + "/" + prefix + "-labels-idx1-ubyte.gz", 10);
  SSLGATE_CHECK(static_cast<std::int64_t>(lb.size()) == im.count, io_error, "fashion-mnist", "{} images but {} labels in {}", im.count,
                lb.size(), dir);
  split s{tensor<float>(shape{im.count, 1, im.rows, im.cols}), std::vector<int>(lb.begin(), lb.end())};
  // Fashion-MNIST's pixel mean and standard deviation.
  for (std::size_t i = 0; i < im.pixels.size(); ++i) s.images[static_cast<std::int64_t>(i)] = (im.pixels[i] / 255.f - 0.2860f) / 0.3530f;
  return s;
}

struct model {
  tensor<float> conv1, bn1_w, bn1_b, bn1_mean, bn1_var, conv2, bn2_w, bn2_b, bn2_mean, bn2_var, fc_w, fc_b;

  explicit model(rng& r) {
    // Kaiming-normal (fan_out, ReLU gain) for convs, PyTorch's default uniform for the linear layer.
    conv1 = tensor<float>::normal({16, 1, 3, 3}, r, 0.f, std::sqrt(2.f / (16 * 9)));
    conv2 = tensor<float>::normal({32, 16, 3, 3}, r, 0.f, std::sqrt(2.f / (32 * 9)));
    const float bound = 1.f / std::sqrt(1568.f);
    fc_w = tensor<float>::uniform({10, 1568}, r, -bound, bound);
    fc_b = tensor<float>::uniform({10}, r, -bound, bound);
    bn1_w = tensor<float>::full({16}, 1.f), bn1_b = tensor<float>::zeros({16});
    bn2_w = tensor<float>::full({32}, 1.f), bn2_b = tensor<float>::zeros({32});
    bn1_mean = tensor<float>::zeros({16}), bn1_var = tensor<float>::full({16}, 1.f);
    bn2_mean = tensor<float>::zeros({32}), bn2_var = tensor<float>::full({32}, 1.f);
    for (auto* p : {&conv1, &bn1_w, &bn1_b, &conv2, &bn2_w, &bn2_b, &fc_w, &fc_b}) p->set_requires_grad();
  }
  std::vector<tensor<float>> params() const { return {conv1, bn1_w, bn1_b, conv2, bn2_w, bn2_b, fc_w, fc_b}; }

  tensor<float> forward(tape<float>& tp, const tensor<float>& x, bool training) {
    auto h = ops::conv2d(tp, x, conv1, 1, 1);
    h = ops::max_pool2d(tp, ops::relu(tp, ops::batchnorm(tp, h, bn1_w, bn1_b, bn1_mean, bn1_var, training)), 2, 2);
    h = ops::conv2d(tp, h, conv2, 1, 1);
    h = ops::max_pool2d(tp, ops::relu(tp, ops::batchnorm(tp, h, bn2_w, bn2_b, bn2_mean, bn2_var, training)), 2, 2);
    return ops::linear(tp, ops::reshape(tp, h, shape{h.dim(0), 1568}), fc_w, fc_b);
  }
};

tensor<float> gather_rows(const tensor<float>& x, const std::vector<std::int64_t>& rows) {
  tape<float> none(grad_mode::off);
  return ops::index_select(none, x, 0, rows);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train a small CNN on Fashion-MNIST and print its test accuracy"};
  std::string dir = "/usr/share/datasets/fashion-mnist";
  int epochs = 2, batch = 128, threads = 2;
  double lr = 0.05;
  std::uint64_t seed = 0;
  app.add_option("--data", dir, "Folder with the four gzipped IDX files")->capture_default_str();
  app.add_option("--epochs", epochs, "Passes over the 60,000 training images")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--batch", batch, "Images per step")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--lr", lr, "Peak learning rate (cosine decay to 0)")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "Worker threads")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "Random seed")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    set_num_threads(threads);
    const split train = load(dir, "train"), test = load(dir, "t10k");
    rng r(seed);
    model m(r);
    optim::sgd<float> opt(m.params(), {lr, 0.9, 5e-4});
    const std::int64_t n = train.images.dim(0), steps_per_epoch = n / batch, total = steps_per_epoch * epochs;
    std::vector<std::int64_t> order(static_cast<std::size_t>(n));
    const auto t0 = std::chrono::steady_clock::now();
    for (int e = 0; e < epochs; ++e) {
      std::iota(order.begin(), order.end(), 0);
      for (std::int64_t i = n - 1; i > 0; --i)  // Fisher-Yates from the counter-based stream
        std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(r.uniform() * static_cast<double>(i + 1))]);
      double loss_sum = 0;
      for (std::int64_t s = 0; s < steps_per_epoch; ++s) {
        const std::vector<std::int64_t> rows(order.begin() + s * batch, order.begin() + (s + 1) * batch);
        std::vector<int> labels;
        for (auto i : rows) labels.push_back(train.labels[static_cast<std::size_t>(i)]);
        const double progress = static_cast<double>(e * steps_per_epoch + s) / static_cast<double>(total);
        opt.set_lr(0.5 * lr * (1 + std::cos(3.141592653589793 * progress)));
        tape<float> tp;
        auto loss = ops::cross_entropy(tp, m.forward(tp, gather_rows(train.images, rows), true), labels);
        loss_sum += loss.item();
        tp.backward(loss);
        opt.step();
      }
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      fmt::print("epoch {}  train loss {:.4f}  {:.0f} s\n", e + 1, loss_sum / static_cast<double>(steps_per_epoch), secs);
    }
    // Test accuracy with the running BN statistics, no tape.
    std::int64_t correct = 0;
    const std::int64_t nt = test.images.dim(0);
    for (std::int64_t b = 0; b < nt; b += 500) {
      std::vector<std::int64_t> rows(static_cast<std::size_t>(std::min<std::int64_t>(500, nt - b)));
      std::iota(rows.begin(), rows.end(), b);
      tape<float> none(grad_mode::off);
      const auto logits = m.forward(none, gather_rows(test.images, rows), false);
      for (std::int64_t i = 0; i < logits.dim(0); ++i) {
        const float* row = logits.data() + i * 10;
        correct += (std::max_element(row, row + 10) - row) == test.labels[static_cast<std::size_t>(b + i)];
      }
    }
    fmt::print("Fashion-MNIST test accuracy: {:.2f}% ({} / {})\n", 100.0 * static_cast<double>(correct) / static_cast<double>(nt), correct, nt);
  } catch (const sslgate::error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
}
