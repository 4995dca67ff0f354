// The optimizers' device path (core/cuda/optim.hpp) against their CPU path, float32 (tags [cuda]): three steps on
// CPU and GPU copies of the same random parameters and gradients, then parameters and optimizer state compared
// element-wise (relative 1e-5, absolute floor 1e-6 x max|want|: an update that cancels its weight has no
// relative precision to keep), and LARS trust factors within 1e-6 relative (their norms are double sums in
// another order, of weights that differ by float rounding after the first step).
// Part of cuda_tests: cuda_ops_test.cpp exits 77 at static initialization when there is no device.
#include <sslgate/core/cuda/runtime.hpp>
#include <sslgate/optim/adamw.hpp>
#include <sslgate/optim/lars.hpp>
#include <sslgate/optim/sgd.hpp>

#include <catch2/catch.hpp>

#include "gpu_compare.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

using namespace sslgate;
using namespace sslgate::test;

namespace {

// Compared with the CPU's result (element-wise 1e-5 relative, NMSE 1e-7); the GPU value must live on the GPU.
void check_close(const ftensor& got_gpu, const ftensor& want_cpu, const std::string& what) {
  INFO(what);
  REQUIRE(got_gpu.dev() == cuda::gpu(0));
  require_close(got_gpu, want_cpu);
}

// The same parameters on the CPU and on the GPU; gradients of step k drawn per parameter, set on both.
struct twins {
  std::vector<ftensor> cpu_p, gpu_p;
  std::vector<float> grad_scale;  // gradients are uniform in [-scale, scale]; 0: a zero gradient

  void add(const shape& s, float grad_scale_) {
    cpu_p.push_back(rand_t(s, 100 + cpu_p.size(), -1, 1));
    gpu_p.push_back(cpu_p.back().to(cuda::gpu(0)));
    grad_scale.push_back(grad_scale_);
  }
  void set_grads(int step) {
    for (std::size_t i = 0; i < cpu_p.size(); ++i) {
      const float a = grad_scale[i];
      const ftensor g = a == 0 ? ftensor::zeros(cpu_p[i].dims()) : rand_t(cpu_p[i].dims(), 1000 * (step + 1) + i, -a, a);
      cpu_p[i].set_grad(g);
      gpu_p[i].set_grad(g.to(cuda::gpu(0)));
    }
  }
  void check_params() const {
    for (std::size_t i = 0; i < cpu_p.size(); ++i) {
      CHECK(gpu_p[i].grad().empty());  // consumed
      check_close(gpu_p[i], cpu_p[i], "parameter " + std::to_string(i));
    }
  }
};

}  // namespace

TEST_CASE("lars on the GPU matches the CPU: exclusions, zero gradient, clipping, state", "[cuda]") {
  twins t;
  t.add({64, 32, 3, 3}, 0.01f);  // 18432 elements, several reduction blocks; small gradient: q clipped to 1
  t.add({600, 500}, 1.f);         // 300000 elements, more than 1024 blocks of 256: strided partial sums; q < 1
  t.add({16}, 1.f);               // 1-D: excluded (exclude_1d), no weight decay
  t.add({5, 5}, 0.f);             // zero gradient: LARS and weight decay skipped
  t.add({6, 2, 1, 1}, 0.5f);      // gate group: weight decay 0
  t.add({3, 3}, 1.f);             // exclude_from_lars group
  auto groups_of = [](const std::vector<ftensor>& p) {
    optim::param_group<float> regular, gates, excluded;
    regular.params = {p[0], p[1], p[2], p[3]};
    gates.name = "gates", gates.params = {p[4]}, gates.weight_decay = 0.0;
    excluded.params = {p[5]}, excluded.exclude_from_lars = true;
    return std::vector<optim::param_group<float>>{regular, gates, excluded};
  };
  const optim::lars<float>::options o{.lr = 0.6, .momentum = 0.9, .weight_decay = 1e-4, .eta = 0.02, .eps = 1e-8, .clip = true};
  optim::lars<float> on_cpu(groups_of(t.cpu_p), o), on_gpu(groups_of(t.gpu_p), o);
  const std::vector<std::pair<std::size_t, std::size_t>> slots{{0, 0}, {0, 1}, {0, 2}, {0, 3}, {1, 0}, {2, 0}};
  for (int step = 0; step < 3; ++step) {
    t.set_grads(step);
    on_cpu.step();
    on_gpu.step();
    for (const auto& [gi, i] : slots) {
      INFO("step " << step << ", group " << gi << ", parameter " << i);
      const double want = on_cpu.last_trust(gi, i), got = on_gpu.last_trust(gi, i);
      if (want < 0) CHECK(got == -1.0);
      else CHECK(std::abs(got - want) <= 1e-6 * want);
    }
  }
  CHECK(on_cpu.last_trust(0, 0) == 1.0);  // the cases the parameters were chosen for
  CHECK(on_cpu.last_trust(0, 1) < 1.0);
  CHECK(on_cpu.last_trust(0, 2) == -1.0);
  CHECK(on_cpu.last_trust(0, 3) == -1.0);
  t.check_params();
  for (const auto& [gi, i] : slots)
    check_close(on_gpu.momentum_buffer(gi, i), on_cpu.momentum_buffer(gi, i), "momentum " + std::to_string(gi) + "." + std::to_string(i));

  // State saved on the CPU restores onto GPU parameters; a gradient on another device is an error.
  optim::lars<float> restored(groups_of(t.gpu_p), o);
  restored.load_state(on_cpu.state());
  check_close(restored.momentum_buffer(0, 1), on_cpu.momentum_buffer(0, 1), "restored momentum");
  t.gpu_p[0].set_grad(ftensor::zeros(t.gpu_p[0].dims()));
  CHECK_THROWS_AS(on_gpu.step(), value_error);
}

TEST_CASE("sgd on the GPU matches the CPU", "[cuda]") {
  twins t;
  t.add({32, 16, 3, 3}, 1.f);
  t.add({300000}, 0.1f);
  t.add({10}, 0.f);
  const optim::sgd<float>::options o{.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4};
  optim::sgd<float> on_cpu(t.cpu_p, o), on_gpu(t.gpu_p, o);
  for (int step = 0; step < 3; ++step) {
    t.set_grads(step);
    on_cpu.step();
    on_gpu.step();
  }
  t.check_params();
  for (std::size_t i = 0; i < t.cpu_p.size(); ++i)
    check_close(on_gpu.momentum_buffer(i), on_cpu.momentum_buffer(i), "momentum " + std::to_string(i));
}

TEST_CASE("adamw on the GPU matches the CPU, state included", "[cuda]") {
  twins t;
  t.add({32, 16, 3, 3}, 1.f);
  t.add({300000}, 0.01f);
  t.add({7, 5}, 1.f);
  auto groups_of = [](const std::vector<ftensor>& p) {
    optim::param_group<float> decayed, no_decay;
    decayed.params = {p[0], p[1]};
    no_decay.params = {p[2]}, no_decay.lr_scale = 0.5, no_decay.weight_decay = 0.0;
    return std::vector<optim::param_group<float>>{decayed, no_decay};
  };
  const optim::adamw<float>::options o{.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 5e-2};
  optim::adamw<float> on_cpu(groups_of(t.cpu_p), o), on_gpu(groups_of(t.gpu_p), o);
  for (int step = 0; step < 3; ++step) {
    t.set_grads(step);
    on_cpu.step();
    on_gpu.step();
  }
  t.check_params();
  const auto want = on_cpu.state(), got = on_gpu.state();
  REQUIRE(got.size() == want.size());
  for (std::size_t k = 0; k < want.size(); ++k) {
    REQUIRE(got[k].first == want[k].first);
    if (got[k].first.ends_with(".step")) CHECK(got[k].second.item() == want[k].second.item());
    else check_close(got[k].second, want[k].second, got[k].first);
  }
}
