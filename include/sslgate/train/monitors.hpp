#pragma once
// Training monitors: representation collapse and gate health. Plain values, outside the tape.
//   std_of_l2_normalized(z)  z: [N, D] -> mean_j std_n(z_n / ||z_n||)[j] (unbiased std over the batch, as
//                            solo-learn's logging). ~ 1/sqrt(D) for isotropic embeddings, 0 when collapsed.
//   rankme(z)                z: [N, D] -> exp(-sum_k p_k log p_k), p_k = s_k / sum s + eps, s the singular
//                            values of z (Garrido et al. 2023, RankMe); k for k equal non-zero singular values.
//   collapse_detector        warns when std_of_l2_normalized < factor / sqrt(D) for `patience` evals in a row.
//   gate_density(masks)      per-layer mean of the hard masks (fraction of open channels).
//   gate_window              per-layer fraction of channels always off / always on over the last `window`
//                            batches (a channel counts as always on if it was open for every sample seen).
#include <sslgate/core/tensor.hpp>
#include <sslgate/ops/cpu/svd.hpp>

#include <algorithm>
#include <cmath>
#include <deque>
#include <vector>

namespace sslgate::train {

template <real T>
double std_of_l2_normalized(const tensor<T>& z, double eps = 1e-12) {
  check_rank("std_of_l2_normalized", z, 2, "z");
  const std::int64_t n = z.dim(0), d = z.dim(1);
  SSLGATE_CHECK(n >= 2, shape_error, "std_of_l2_normalized", "needs N >= 2 rows, got {}", z.dims());
  std::vector<double> inv(static_cast<std::size_t>(n)), mean(static_cast<std::size_t>(d), 0.0), sq(static_cast<std::size_t>(d), 0.0);
  const T* x = z.data();
  for (std::int64_t r = 0; r < n; ++r) {
    double s = 0;
    for (std::int64_t j = 0; j < d; ++j) s += static_cast<double>(x[r * d + j]) * x[r * d + j];
    inv[r] = 1.0 / std::max(std::sqrt(s), eps);
    for (std::int64_t j = 0; j < d; ++j) mean[j] += x[r * d + j] * inv[r];
  }
  for (auto& m : mean) m /= static_cast<double>(n);
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t j = 0; j < d; ++j) {
      const double c = x[r * d + j] * inv[r] - mean[j];
      sq[j] += c * c;
    }
  double total = 0;
  for (std::int64_t j = 0; j < d; ++j) total += std::sqrt(sq[j] / static_cast<double>(n - 1));
  return total / static_cast<double>(d);
}

template <real T>
double rankme(const tensor<T>& z, double eps = 1e-7) {
  check_rank("rankme", z, 2, "z");
  const std::vector<double> s = ops::cpu::gram_singular_values(z.data(), z.dim(0), z.dim(1));
  double l1 = 0;
  for (double v : s) l1 += v;
  if (l1 == 0) return 1.0;  // all zero: exp(0) up to eps terms
  double h = 0;
  for (double v : s) {
    const double p = v / l1 + eps;
    h -= p * std::log(p);
  }
  return std::exp(h);
}

class collapse_detector {
 public:
  explicit collapse_detector(double factor = 0.1, int patience = 3) : factor_(factor), patience_(patience) {}
  // Records one evaluation; true when the warning is raised (std below factor / sqrt(D) `patience` times in a row).
  bool observe(double std_value, std::int64_t dim) {
    const bool low = std_value < factor_ / std::sqrt(static_cast<double>(dim));
    run_ = low ? run_ + 1 : 0;
    return run_ >= patience_;
  }
  int consecutive() const { return run_; }

 private:
  double factor_;
  int patience_;
  int run_ = 0;
};

template <real T>
std::vector<double> gate_density(const std::vector<tensor<T>>& masks) {
  std::vector<double> d;
  for (const auto& m : masks) {
    double s = 0;
    for (std::int64_t i = 0; i < m.numel(); ++i) s += m[i];
    d.push_back(m.numel() == 0 ? 0.0 : s / static_cast<double>(m.numel()));
  }
  return d;
}

class gate_window {
 public:
  explicit gate_window(std::size_t window = 50) : window_(window) {
    SSLGATE_CHECK(window >= 1, value_error, "gate_window", "window must be >= 1");
  }

  // One batch of hard masks, masks[l]: [N, C_l] (values 0/1; > 0.5 counts as open).
  template <real T>
  void observe(const std::vector<tensor<T>>& masks) {
    batch b;
    for (const auto& m : masks) {
      check_rank("gate_window", m, 2, "mask");
      const std::int64_t n = m.dim(0), c = m.dim(1);
      std::vector<std::int64_t> open(static_cast<std::size_t>(c), 0);
      for (std::int64_t r = 0; r < n; ++r)
        for (std::int64_t j = 0; j < c; ++j) open[j] += m[r * c + j] > T(0.5);
      b.open.push_back(std::move(open));
      b.samples.push_back(n);
    }
    if (!batches_.empty())
      SSLGATE_CHECK(batches_.front().open.size() == b.open.size(), shape_error, "gate_window", "{} layers, earlier batches had {}",
                    b.open.size(), batches_.front().open.size());
    batches_.push_back(std::move(b));
    if (batches_.size() > window_) batches_.pop_front();
  }
  std::size_t batches() const { return batches_.size(); }
  void reset() { batches_.clear(); }

  // Per layer: fraction of channels never open over the window.
  std::vector<double> always_off() const { return fraction([](std::int64_t open, std::int64_t) { return open == 0; }); }
  // Per layer: fraction of channels open for every sample of the window.
  std::vector<double> always_on() const { return fraction([](std::int64_t open, std::int64_t total) { return open == total; }); }
  // Per layer: mean density over the window.
  std::vector<double> density() const {
    std::vector<double> out;
    if (batches_.empty()) return out;
    for (std::size_t l = 0; l < batches_.front().open.size(); ++l) {
      double open = 0, total = 0;
      for (const auto& b : batches_) {
        for (auto v : b.open[l]) open += static_cast<double>(v);
        total += static_cast<double>(b.samples[l]) * static_cast<double>(b.open[l].size());
      }
      out.push_back(total == 0 ? 0.0 : open / total);
    }
    return out;
  }

 private:
  struct batch {
    std::vector<std::vector<std::int64_t>> open;  // [layer][channel] open count
    std::vector<std::int64_t> samples;            // [layer]
  };
  template <class P>
  std::vector<double> fraction(P pred) const {
    std::vector<double> out;
    if (batches_.empty()) return out;
    for (std::size_t l = 0; l < batches_.front().open.size(); ++l) {
      const std::size_t c = batches_.front().open[l].size();
      std::int64_t total = 0;
      for (const auto& b : batches_) total += b.samples[l];
      std::size_t hits = 0;
      for (std::size_t j = 0; j < c; ++j) {
        std::int64_t open = 0;
        for (const auto& b : batches_) open += b.open[l][j];
        hits += pred(open, total);
      }
      out.push_back(c == 0 ? 0.0 : static_cast<double>(hits) / static_cast<double>(c));
    }
    return out;
  }
  std::size_t window_;
  std::deque<batch> batches_;
};

}  // namespace sslgate::train
