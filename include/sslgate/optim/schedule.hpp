#pragma once
// Learning-rate schedule: linear warmup then cosine annealing, pl_bolts' LinearWarmupCosineAnnealingLR in its
// closed form (METHOD.md §6; tests/fixtures/README.md "LR"). For t = 0, 1, ... in units of the schedule
// (epochs by default; steps with per_step):
//   t <  warmup:  lr_t = warmup_start + t (base - warmup_start) / max(1, warmup - 1)
//   t >= warmup:  lr_t = eta_min + 0.5 (base - eta_min)(1 + cos(pi (t - warmup) / (total - warmup)))
// Defaults (METHOD.md §6): base 0.6, warmup 10 epochs from 0.003, cosine to 0 at 500 epochs.
// Gate annealing of the bound loss uses the same epoch index: gate_anneal(alpha, e) = exp(-alpha e).
#include <sslgate/core/error.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>

namespace sslgate::optim {

struct warmup_cosine {
  double base_lr = 0.6;
  std::int64_t warmup = 10;      // epochs (or steps)
  std::int64_t total = 500;      // epochs (or steps)
  double warmup_start = 0.003;
  double eta_min = 0.0;

  // The same schedule stepped per optimizer step: warmup and total are multiplied by steps_per_epoch.
  static warmup_cosine per_step(double base_lr, std::int64_t warmup_epochs, std::int64_t max_epochs, std::int64_t steps_per_epoch,
                                double warmup_start = 0.003, double eta_min = 0.0) {
    SSLGATE_CHECK(steps_per_epoch >= 1, value_error, "warmup_cosine", "steps_per_epoch must be >= 1, got {}", steps_per_epoch);
    return {base_lr, warmup_epochs * steps_per_epoch, max_epochs * steps_per_epoch, warmup_start, eta_min};
  }

  // lr at epoch (or step) t >= 0. Past total the cosine continues (pl_bolts' closed form does the same).
  double operator()(std::int64_t t) const {
    SSLGATE_CHECK(t >= 0, value_error, "warmup_cosine", "negative epoch {}", t);
    SSLGATE_CHECK(total > warmup || t < warmup, value_error, "warmup_cosine", "total {} must exceed warmup {}", total, warmup);
    if (t < warmup)
      return warmup_start + static_cast<double>(t) * (base_lr - warmup_start) / static_cast<double>(std::max<std::int64_t>(1, warmup - 1));
    return eta_min + 0.5 * (base_lr - eta_min) *
                         (1 + std::cos(std::numbers::pi * static_cast<double>(t - warmup) / static_cast<double>(total - warmup)));
  }
};

// p(e) = exp(-alpha e): the bound loss's annealing factor at 0-based epoch e (METHOD.md §4).
inline double gate_anneal(double alpha, double epoch) { return std::exp(-alpha * epoch); }

}  // namespace sslgate::optim
