// Optimizers and schedules: LARS exclusions and clipping against hand computation, state save/restore,
// AdamW against PyTorch's formula, warmup + cosine schedule and the gate annealing factor.
#include <sslgate/optim/adamw.hpp>
#include <sslgate/optim/lars.hpp>
#include <sslgate/optim/schedule.hpp>

#include "../test_util.hpp"

#include <cmath>

using namespace sslgate;
using testing::random;

namespace {
double norm(const tensor<double>& t) {
  double s = 0;
  for (double v : t.values()) s += v * v;
  return std::sqrt(s);
}
}  // namespace

TEST_CASE("lars: one step against the formula, with its exclusions", "[optim]") {
  const double lr = 0.6, wd = 1e-4, eta = 0.02, m = 0.9;
  tensor<double> w2d = random({4, 3}, 1), b1d = random({4}, 2), gate = random({4, 2, 1, 1}, 3), excl = random({3, 3}, 4);
  const tensor<double> w0 = w2d.clone(), b0 = b1d.clone(), gt0 = gate.clone(), e0 = excl.clone();
  const auto g2d = random({4, 3}, 11, -0.01, 0.01), g1d = random({4}, 12), ggate = random({4, 2, 1, 1}, 13), gex = random({3, 3}, 14);

  optim::param_group<double> regular, gates, excluded;
  regular.params = {w2d, b1d};
  gates.params = {gate};
  gates.weight_decay = 0.0;
  excluded.params = {excl};
  excluded.exclude_from_lars = true;
  optim::lars<double> opt({regular, gates, excluded}, {.lr = lr, .momentum = m, .weight_decay = wd, .eta = eta});
  w2d.set_grad(g2d.clone());
  b1d.set_grad(g1d.clone());
  gate.set_grad(ggate.clone());
  excl.set_grad(gex.clone());
  opt.step();

  // 2-D regular: LARS with weight decay.
  {
    const double q = std::min(eta * norm(w0) / (norm(g2d) + wd * norm(w0) + 1e-8) / lr, 1.0);
    CHECK(opt.last_trust(0, 0) == Approx(q).epsilon(1e-14));
    for (std::int64_t i = 0; i < w0.numel(); ++i) CHECK(w2d[i] == Approx(w0[i] - lr * (g2d[i] + wd * w0[i]) * q).epsilon(1e-14));
  }
  // 1-D: no LARS, no weight decay, plain SGD.
  CHECK(opt.last_trust(0, 1) == -1.0);
  for (std::int64_t i = 0; i < b0.numel(); ++i) CHECK(b1d[i] == Approx(b0[i] - lr * g1d[i]).epsilon(1e-15));
  // Gate: LARS, weight decay 0.
  {
    const double q = std::min(eta * norm(gt0) / (norm(ggate) + 1e-8) / lr, 1.0);
    CHECK(opt.last_trust(1, 0) == Approx(q).epsilon(1e-14));
    for (std::int64_t i = 0; i < gt0.numel(); ++i) CHECK(gate[i] == Approx(gt0[i] - lr * ggate[i] * q).epsilon(1e-14));
  }
  // exclude_from_lars group: plain SGD without weight decay.
  CHECK(opt.last_trust(2, 0) == -1.0);
  for (std::int64_t i = 0; i < e0.numel(); ++i) CHECK(excl[i] == Approx(e0[i] - lr * gex[i]).epsilon(1e-15));
  // Gradients were consumed; the first momentum buffer equals the effective gradient.
  CHECK(w2d.grad().empty());
  CHECK(opt.momentum_buffer(0, 1)[0] == Approx(g1d[0]));

  // Second step: momentum.
  const tensor<double> b1 = b1d.clone();
  b1d.set_grad(g1d.clone());
  opt.step();
  for (std::int64_t i = 0; i < b0.numel(); ++i) CHECK(b1d[i] == Approx(b1[i] - lr * (m * g1d[i] + g1d[i])).epsilon(1e-14));
}

TEST_CASE("lars: zero weight or zero gradient skips LARS and weight decay; clipping", "[optim]") {
  tensor<double> zw = tensor<double>::zeros({2, 2}), w = random({2, 2}, 5);
  optim::lars<double> opt({zw, w}, {.lr = 0.1, .weight_decay = 0.5});
  zw.set_grad(tensor<double>::full({2, 2}, 1.0));
  w.set_grad(tensor<double>::zeros({2, 2}));
  const auto w0 = w.clone();
  opt.step();
  CHECK(opt.last_trust(0, 0) == -1.0);
  CHECK(opt.last_trust(0, 1) == -1.0);
  CHECK(zw[0] == Approx(-0.1));
  for (std::int64_t i = 0; i < 4; ++i) CHECK(w[i] == w0[i]);  // no weight decay applied
  // Clipping: the factor never exceeds 1 (tiny gradient, large trust ratio).
  tensor<double> big = random({3, 3}, 6);
  optim::lars<double> o2({big}, {.lr = 0.6});
  big.set_grad(random({3, 3}, 7, -1e-6, 1e-6));
  o2.step();
  CHECK(o2.last_trust(0, 0) == 1.0);
  // Without clipping it is the raw ratio.
  tensor<double> raw = random({3, 3}, 6);
  optim::lars<double> o3({raw}, {.lr = 0.6, .clip = false});
  raw.set_grad(random({3, 3}, 7, -1e-6, 1e-6));
  o3.step();
  CHECK(o3.last_trust(0, 0) > 1.0);
}

TEST_CASE("lars: state save and restore continue identically", "[optim]") {
  tensor<double> a = random({3, 4}, 20), b = a.clone();
  optim::param_group<double> ga{.name = "net", .params = {a}}, gb{.name = "net", .params = {b}};
  optim::lars<double> oa({ga}, {}), ob({gb}, {});
  a.set_grad(random({3, 4}, 21));
  oa.step();
  const auto st = oa.state();
  REQUIRE(st.size() == 1);
  CHECK(st[0].first == "net.0.momentum");
  b.copy_from(a);
  ob.load_state(st);
  for (std::uint64_t s = 22; s < 25; ++s) {
    a.set_grad(random({3, 4}, s));
    b.set_grad(random({3, 4}, s));
    oa.step();
    ob.step();
  }
  for (std::int64_t i = 0; i < a.numel(); ++i) CHECK(a[i] == b[i]);
  optim::named_state<double> bad{{"net.0.momentum", tensor<double>::zeros({2})}};
  CHECK_THROWS_AS(ob.load_state(bad), shape_error);
}

TEST_CASE("adamw: PyTorch formula over three steps; state round trip", "[optim]") {
  const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
  tensor<double> w = random({5}, 30);
  std::vector<double> ref(w.values().begin(), w.values().end()), m(5, 0), v(5, 0);
  optim::adamw<double> opt({w}, {.lr = lr, .weight_decay = wd});
  for (int t = 1; t <= 3; ++t) {
    const auto g = random({5}, 30 + t);
    w.set_grad(g.clone());
    opt.step();
    for (int i = 0; i < 5; ++i) {
      ref[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const double mh = m[i] / (1 - std::pow(b1, t)), vh = v[i] / (1 - std::pow(b2, t));
      ref[i] -= lr * mh / (std::sqrt(vh) + eps);
    }
  }
  for (int i = 0; i < 5; ++i) CHECK(w[i] == Approx(ref[i]).epsilon(1e-13));

  tensor<double> w2 = w.clone();
  optim::adamw<double> o2({w2}, {.lr = lr, .weight_decay = wd});
  o2.load_state(opt.state());
  const auto g = random({5}, 40);
  w.set_grad(g.clone());
  w2.set_grad(g.clone());
  opt.step();
  o2.step();
  for (int i = 0; i < 5; ++i) CHECK(w[i] == w2[i]);
}

TEST_CASE("param groups: lr scale and split of 1-D / gate parameters", "[optim]") {
  tensor<double> conv = random({2, 2, 3, 3}, 50), bn = random({2}, 51), gw = random({2, 2, 1, 1}, 52), gbn = random({2}, 53);
  const auto groups = optim::split_groups<double>({conv, bn}, {gw, gbn});
  REQUIRE(groups.size() == 3);
  CHECK(groups[0].params.size() == 1);  // conv
  CHECK(groups[1].params.size() == 2);  // bn + gate bn (1-D)
  CHECK(groups[1].exclude_from_lars);
  CHECK(groups[2].params.size() == 1);  // gate conv
  CHECK(groups[2].weight_decay.value() == 0.0);

  tensor<double> p = tensor<double>::zeros({1, 1});
  optim::param_group<double> g{.params = {p}, .lr_scale = 0.5};
  optim::lars<double> opt({g}, {.lr = 0.2, .clip = false});
  p.set_grad(tensor<double>::full({1, 1}, 1.0));
  opt.step();  // zero weight: plain SGD with lr 0.2 * 0.5
  CHECK(p[0] == Approx(-0.1));
}

TEST_CASE("schedule: warmup from 0.003 then cosine; per-step option; gate annealing", "[optim]") {
  const optim::warmup_cosine s;  // METHOD.md §6 defaults
  CHECK(s(0) == Approx(0.003));
  CHECK(s(1) == Approx(0.003 + (0.6 - 0.003) / 9));
  CHECK(s(9) == Approx(0.6));
  CHECK(s(10) == Approx(0.6));
  CHECK(s(255) == Approx(0.5 * 0.6 * (1 + std::cos(M_PI * 245 / 490))));
  CHECK(s(499) == Approx(0.5 * 0.6 * (1 + std::cos(M_PI * 489 / 490))));
  for (std::int64_t e = 10; e < 499; ++e) CHECK(s(e + 1) <= s(e));
  const auto ps = optim::warmup_cosine::per_step(0.6, 10, 500, 97);
  CHECK(ps(0) == Approx(0.003));
  CHECK(ps(10 * 97 - 1) == Approx(0.6));
  CHECK(ps(10 * 97) == Approx(0.6));
  CHECK(ps(255 * 97) == Approx(s(255)));  // the cosine part agrees at epoch boundaries
  CHECK_THROWS_AS(ps(-1), value_error);
  CHECK(optim::gate_anneal(0.02, 0) == 1.0);
  CHECK(optim::gate_anneal(0.02, 50) == Approx(0.368).epsilon(1e-3));
  CHECK(optim::gate_anneal(0.02, 100) == Approx(0.135).epsilon(1e-2));
}
