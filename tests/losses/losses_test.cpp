// SSL losses, budget regularizers, the FLOPs model and the collapse / gate monitors (TESTING.md T3):
// float64 gradchecks, stop-gradient, invariances, edge cases, exact FLOPs constants, the L1-norm gradient
// convention of the bound loss.
#include <sslgate/gating/flops.hpp>
#include <sslgate/losses/barlow_twins.hpp>
#include <sslgate/losses/bound.hpp>
#include <sslgate/losses/byol.hpp>
#include <sslgate/losses/flops_budget.hpp>
#include <sslgate/losses/simclr.hpp>
#include <sslgate/losses/simsiam.hpp>
#include <sslgate/losses/vicreg.hpp>
#include <sslgate/losses/weighted_sum.hpp>
#include <sslgate/train/monitors.hpp>

#include "../test_util.hpp"

#include <cmath>
#include <numeric>

using namespace sslgate;
using testing::random;

namespace {

using in_t = std::span<const tensor<double>>;

// gradcheck where only the inputs flagged in `diff` require a gradient (the others are constants).
template <class F>
void require_gradcheck_some(F&& f, std::vector<tensor<double>> inputs, const std::vector<bool>& diff, gradcheck_options opt = {}) {
  for (std::size_t i = 0; i < inputs.size(); ++i)
    if (diff[i]) inputs[i].set_requires_grad();
  const auto res = gradcheck(std::forward<F>(f), std::move(inputs), opt);
  INFO(res.report);
  REQUIRE(res.ok);
}

double value(const tensor<double>& t) { return t.item(); }

template <class L>
double eval2(const L& l, const tensor<double>& a, const tensor<double>& b) {
  tape<double> tp(grad_mode::off);
  return l(tp, a, b).item();
}

tensor<double> gaussian(const shape& s, std::uint64_t seed, double sd = 1) {
  rng r(seed);
  return tensor<double>::normal(s, r, 0.0, sd);
}

// Brute-force NT-Xent in double from its definition.
double nt_xent_reference(const tensor<double>& z1, const tensor<double>& z2, double tau) {
  const std::int64_t n = z1.dim(0), d = z1.dim(1), m = 2 * n;
  std::vector<std::vector<double>> z(m, std::vector<double>(d));
  for (std::int64_t i = 0; i < m; ++i) {
    const tensor<double>& src = i < n ? z1 : z2;
    const std::int64_t r = i % n;
    double nr = 0;
    for (std::int64_t j = 0; j < d; ++j) nr += src[r * d + j] * src[r * d + j];
    nr = std::max(std::sqrt(nr), 1e-12);
    for (std::int64_t j = 0; j < d; ++j) z[i][j] = src[r * d + j] / nr;
  }
  auto sim = [&](std::int64_t a, std::int64_t b) {
    double s = 0;
    for (std::int64_t j = 0; j < d; ++j) s += z[a][j] * z[b][j];
    return s / tau;
  };
  long double total = 0;
  for (std::int64_t i = 0; i < m; ++i) {
    double mx = -INFINITY;
    for (std::int64_t j = 0; j < m; ++j)
      if (j != i) mx = std::max(mx, sim(i, j));
    long double den = 0;
    for (std::int64_t j = 0; j < m; ++j)
      if (j != i) den += std::exp(static_cast<long double>(sim(i, j) - mx));
    total += mx + std::log(den) - sim(i, (i + n) % m);
  }
  return static_cast<double>(total / m);
}

}  // namespace

// ---------------------------------------------------------------------------------------------- VICReg
TEST_CASE("vicreg: gradcheck of the total and of each term", "[losses][grad]") {
  const auto z1 = random({8, 5}, 1), z2 = random({8, 5}, 2);
  losses::vicreg l;
  testing::require_gradcheck([&](tape<double>& tp, in_t in) { return l(tp, in[0], in[1]); }, {z1, z2});
  testing::require_gradcheck([&](tape<double>& tp, in_t in) { return losses::vicreg::covariance(tp, in[0]); }, {random({6, 7}, 3)});
  testing::require_gradcheck([&](tape<double>& tp, in_t in) { return l.variance(tp, in[0]); }, {random({6, 4}, 4)});
}

TEST_CASE("vicreg: terms", "[losses]") {
  losses::vicreg l;
  tape<double> tp(grad_mode::off);
  SECTION("invariance is the MSE") {
    const auto a = random({5, 3}, 5), b = random({5, 3}, 6);
    double mse = 0;
    for (std::int64_t i = 0; i < a.numel(); ++i) mse += (a[i] - b[i]) * (a[i] - b[i]);
    mse /= static_cast<double>(a.numel());
    CHECK(losses::vicreg::invariance(tp, a, b).item() == Approx(mse).epsilon(1e-14));
  }
  SECTION("variance hinge is 0 when every std >= 1") {
    tensor<double> z = random({16, 4}, 7, -10, 10);
    CHECK(l.variance(tp, z).item() == 0.0);
  }
  SECTION("covariance is 0 for a diagonal covariance") {
    // Centered, mutually orthogonal columns (Hadamard rows), scaled differently.
    const tensor<double> z = tensor<double>::from({4, 3}, {1, 2, 3, 1, -2, -3, -1, 2, -3, -1, -2, 3});
    CHECK(std::abs(losses::vicreg::covariance(tp, z).item()) < 1e-30);
  }
  SECTION("the weighted total and the summed branch terms") {
    const auto a = random({6, 4}, 8), b = random({6, 4}, 9);
    const auto r = l.evaluate(tp, a, b);
    CHECK(value(r.term("variance")) == Approx(l.variance(tp, a).item() + l.variance(tp, b).item()));
    CHECK(value(r.term("covariance")) == Approx(losses::vicreg::covariance(tp, a).item() + losses::vicreg::covariance(tp, b).item()));
    CHECK(value(r.total) ==
          Approx(25 * value(r.term("invariance")) + 25 * value(r.term("variance")) + value(r.term("covariance"))).epsilon(1e-14));
  }
  SECTION("N = 2 is finite") {
    tape<double> t2;
    tensor<double> a = random({2, 4}, 10).set_requires_grad(), b = random({2, 4}, 11).set_requires_grad();
    const auto loss = l(t2, a, b);
    t2.backward(loss);
    CHECK(std::isfinite(loss.item()));
    for (double g : a.grad().values()) CHECK(std::isfinite(g));
  }
  SECTION("N = 1 is a clear error") {
    const auto a = random({1, 4}, 12), b = random({1, 4}, 13);
    CHECK_THROWS_AS(l(tp, a, b), shape_error);
    CHECK_THROWS_WITH(l(tp, a, b), Catch::Contains("at least 2 samples"));
  }
  SECTION("shape mismatch") { CHECK_THROWS_AS(l(tp, random({4, 3}, 1), random({4, 2}, 2)), shape_error); }
}

TEST_CASE("vicreg: float agrees with double (forward and gradient)", "[losses]") {
  const auto z1 = random({32, 16}, 21), z2 = random({32, 16}, 22);
  losses::vicreg l;
  testing::require_float_vs_double([&](auto& tp, auto in) { return l(tp, in[0], in[1]); }, {z1, z2}, 64);
}

// ---------------------------------------------------------------------------------------- Barlow Twins
TEST_CASE("barlow_twins: gradcheck", "[losses][grad]") {
  losses::barlow_twins l;
  testing::require_gradcheck([&](tape<double>& tp, in_t in) { return l(tp, in[0], in[1]); }, {random({8, 5}, 31), random({8, 5}, 32)});
}

TEST_CASE("barlow_twins: per-branch standardization", "[losses]") {
  losses::barlow_twins l;
  const auto x = random({32, 6}, 33), y = random({32, 6}, 34);
  // a * x + b per feature, a > 0.
  auto affine = [](const tensor<double>& z, std::uint64_t seed) {
    const auto a = random({z.dim(1)}, seed, 0.5, 2.0), b = random({z.dim(1)}, seed + 1, -1.0, 1.0);
    tensor<double> out = z.clone();
    for (std::int64_t r = 0; r < z.dim(0); ++r)
      for (std::int64_t j = 0; j < z.dim(1); ++j) out[r * z.dim(1) + j] = a[j] * z[r * z.dim(1) + j] + b[j];
    return out;
  };
  SECTION("invariant to a per-feature affine map of either branch (1e-5)") {
    CHECK(std::abs(eval2(l, x, affine(x, 40)) - eval2(l, x, x)) <= 1e-5);
    CHECK(std::abs(eval2(l, affine(x, 42), y) - eval2(l, x, y)) <= 1e-5);
    CHECK(std::abs(eval2(l, x, affine(y, 44)) - eval2(l, x, y)) <= 1e-5);
  }
  SECTION("identical branches: on-diagonal term ~ 0") {
    tape<double> tp(grad_mode::off);
    const auto r = l.evaluate(tp, x, x);
    CHECK(value(r.term("on_diag")) < 1e-8);
  }
  SECTION("the std convention is the biased one (divide by N), eps 1e-5") {
    tape<double> tp(grad_mode::off);
    const auto s = l.standardize(tp, x);
    const std::int64_t n = x.dim(0), d = x.dim(1);
    for (std::int64_t j = 0; j < d; ++j) {
      double m = 0, v = 0, sq = 0;
      for (std::int64_t r = 0; r < n; ++r) m += x[r * d + j];
      m /= n;
      for (std::int64_t r = 0; r < n; ++r) v += (x[r * d + j] - m) * (x[r * d + j] - m);
      v /= n;  // biased
      for (std::int64_t r = 0; r < n; ++r) sq += s[r * d + j] * s[r * d + j];
      CHECK(sq / n == Approx(v / (v + 1e-5)).epsilon(1e-12));
    }
  }
  SECTION("N = 1 is an error") {
    tape<double> tp(grad_mode::off);
    CHECK_THROWS_AS(l(tp, random({1, 3}, 1), random({1, 3}, 2)), shape_error);
  }
}

// ---------------------------------------------------------------------------------------------- SimCLR
TEST_CASE("simclr: matches a brute-force double reference", "[losses]") {
  for (std::int64_t n : {2, 8, 64})
    for (double tau : {0.07, 0.5}) {
      const auto z1 = random({n, 12}, 50 + n), z2 = random({n, 12}, 60 + n);
      losses::simclr l{.temperature = tau};
      const double want = nt_xent_reference(z1, z2, tau), got = eval2(l, z1, z2);
      INFO("N " << n << " tau " << tau);
      CHECK(std::abs(got - want) <= 1e-6 * std::abs(want));
    }
}

TEST_CASE("simclr: gradcheck", "[losses][grad]") {
  for (double tau : {0.1, 0.5}) {
    losses::simclr l{.temperature = tau};
    testing::require_gradcheck([&](tape<double>& tp, in_t in) { return l(tp, in[0], in[1]); }, {random({4, 5}, 71), random({4, 5}, 72)});
  }
}

TEST_CASE("simclr: invariant to permuting the pairs; finite for identical and zero embeddings", "[losses]") {
  losses::simclr l;
  const auto z1 = random({6, 5}, 81), z2 = random({6, 5}, 82);
  const std::vector<std::int64_t> perm{3, 0, 5, 1, 4, 2};
  tape<double> none(grad_mode::off);
  const auto p1 = ops::index_select(none, z1, 0, perm), p2 = ops::index_select(none, z2, 0, perm);
  CHECK(eval2(l, p1, p2) == Approx(eval2(l, z1, z2)).epsilon(1e-13));

  auto finite_with_grad = [&](const tensor<double>& a0, const tensor<double>& b0) {
    tensor<double> a = a0.clone().set_requires_grad(), b = b0.clone().set_requires_grad();
    tape<double> tp;
    const auto loss = l(tp, a, b);
    tp.backward(loss);
    bool ok = std::isfinite(loss.item());
    for (double g : a.grad().values()) ok = ok && std::isfinite(g);
    for (double g : b.grad().values()) ok = ok && std::isfinite(g);
    return std::pair{ok, loss.item()};
  };
  SECTION("identical embeddings") {
    tensor<double> same = tensor<double>::full({6, 5}, 0.3);
    CHECK(finite_with_grad(same, same).first);
  }
  SECTION("zero embeddings: loss = log(2N - 1)") {
    const auto [ok, v] = finite_with_grad(tensor<double>::zeros({6, 5}), tensor<double>::zeros({6, 5}));
    CHECK(ok);
    CHECK(v == Approx(std::log(11.0)).epsilon(1e-14));
  }
}

// ------------------------------------------------------------------------------------ SimSiam and BYOL
TEST_CASE("simsiam: gradcheck on the predictor outputs, exactly zero gradient into z", "[losses][grad]") {
  losses::simsiam l;
  const auto p1 = random({5, 6}, 91), p2 = random({5, 6}, 92), z1 = random({5, 6}, 93), z2 = random({5, 6}, 94);
  require_gradcheck_some([&](tape<double>& tp, in_t in) { return l(tp, in[0], in[1], in[2], in[3]); }, {p1, p2, z1, z2},
                         {true, true, false, false});
  tensor<double> a = p1.clone().set_requires_grad(), b = p2.clone().set_requires_grad();
  tensor<double> c = z1.clone().set_requires_grad(), d = z2.clone().set_requires_grad();
  tape<double> tp;
  const auto loss = l(tp, a, b, c, d);
  tp.backward(loss);
  CHECK(!a.grad().empty());
  const auto zero = [](const tensor<double>& g) { return g.empty() || std::all_of(g.values().begin(), g.values().end(), [](double v) { return v == 0.0; }); };
  CHECK(zero(c.grad()));
  CHECK(zero(d.grad()));
}

TEST_CASE("simsiam: in [-1, 1] and symmetric in the two views", "[losses]") {
  losses::simsiam l;
  tape<double> tp(grad_mode::off);
  const auto p1 = random({7, 4}, 101), p2 = random({7, 4}, 102), z1 = random({7, 4}, 103), z2 = random({7, 4}, 104);
  const double v = l(tp, p1, p2, z1, z2).item();
  CHECK(v >= -1.0);
  CHECK(v <= 1.0);
  CHECK(l(tp, p2, p1, z2, z1).item() == Approx(v).epsilon(1e-15));
  CHECK(l(tp, z2, z1, z1, z2).item() == Approx(-1.0).epsilon(1e-14));  // predictor = target: perfect agreement
}

TEST_CASE("byol: loss, stop-gradient, EMA momentum schedule", "[losses][grad]") {
  losses::byol l;
  const auto p1 = random({5, 6}, 111), p2 = random({5, 6}, 112), z1 = random({5, 6}, 113), z2 = random({5, 6}, 114);
  require_gradcheck_some([&](tape<double>& tp, in_t in) { return l(tp, in[0], in[1], in[2], in[3]); }, {p1, p2, z1, z2},
                         {true, true, false, false});
  {
    tensor<double> c = z1.clone().set_requires_grad();
    tape<double> tp;
    tensor<double> a = p1.clone().set_requires_grad();
    tp.backward(l(tp, a, p2, c, z2));
    CHECK(c.grad().empty());
  }
  tape<double> none(grad_mode::off);
  CHECK(l(none, z2, z1, z1, z2).item() == Approx(0.0).margin(1e-14));
  // 2 - 2 cos per direction: in [0, 4] each, summed
  const double v = l(none, p1, p2, z1, z2).item();
  CHECK(v >= 0.0);
  CHECK(v <= 8.0);

  losses::ema_updater ema{.base_tau = 0.996};
  CHECK(ema.tau(0, 100) == Approx(0.996).epsilon(1e-15));
  CHECK(ema.tau(100, 100) == Approx(1.0).epsilon(1e-15));
  CHECK(ema.tau(50, 100) == Approx(1 - 0.004 * 0.5).epsilon(1e-15));
  std::vector<tensor<double>> target{tensor<double>::zeros({3})}, online{tensor<double>::from({3}, {1.0, 2.0, 3.0})};
  losses::ema_updater::update(target, online, 0.75);
  CHECK(target[0][1] == Approx(0.5));
  losses::ema_updater::initialize(target, online);
  CHECK(target[0][2] == 3.0);
}

// ---------------------------------------------------------------------------------------- FLOPs model
TEST_CASE("resnet_flops: exact MAC constants (METHOD.md §3)", "[losses][flops]") {
  using gating::resnet_flops;
  using gating::stem_kind;
  const auto cifar = resnet_flops::make(1.0, 32, 32, stem_kind::cifar);
  const auto stl = resnet_flops::make(1.0, 96, 96, stem_kind::imagenet);
  const auto in100 = resnet_flops::make(1.0, 224, 224, stem_kind::imagenet);
  CHECK(cifar.dense_macs == 703'560'448);
  CHECK(stl.dense_macs == 333'103'104);
  CHECK(in100.dense_macs == 1'813'561'344);
  CHECK(cifar.stem_macs == 1'997'568);
  CHECK(stl.stem_macs == 21'676'032);
  CHECK(in100.stem_macs == 118'013'952);
  CHECK(cifar.a == std::vector<std::int64_t>{1331712, 1331712, 499392, 665856, 279936, 373248, 172800, 230400});
  CHECK(cifar.f_ds == std::vector<std::int64_t>{0, 0, 2367488, 0, 2654208, 0, 3276800, 0});
  CHECK(stl.a == std::vector<std::int64_t>{663552, 663552, 248832, 331776, 124416, 165888, 62208, 82944});
  CHECK(in100.a == std::vector<std::int64_t>{3612672, 3612672, 1354752, 1806336, 677376, 903168, 338688, 451584});
  CHECK(in100.f_ds == std::vector<std::int64_t>{0, 0, 6422528, 0, 6422528, 0, 6422528, 0});
  CHECK(cifar.out_h == std::vector<std::int64_t>{34, 34, 17, 17, 9, 9, 5, 5});
  CHECK(in100.out_h == std::vector<std::int64_t>{56, 56, 28, 28, 14, 14, 7, 7});
  for (const auto* f : {&cifar, &stl, &in100}) CHECK(std::accumulate(f->f_mask.begin(), f->f_mask.end(), std::int64_t{0}) == 240'640);
  // Floors (all gates closed) = (stem + downsample + mask) / dense: 1.50%, 7.64%, 7.58%.
  CHECK(100.0 * cifar.fixed_macs / cifar.dense_macs == Approx(1.50).margin(0.005));
  CHECK(100.0 * stl.fixed_macs / stl.dense_macs == Approx(7.64).margin(0.005));
  CHECK(100.0 * in100.fixed_macs / in100.dense_macs == Approx(7.58).margin(0.005));
  // Width multiplier and a non-square input.
  const auto narrow = resnet_flops::make(0.25, 32, 32, stem_kind::cifar);
  CHECK(narrow.widths == std::array<std::int64_t, 4>{16, 32, 64, 128});
  CHECK(narrow.dense_macs == 44'347'072);
  const auto rect = resnet_flops::make(1.0, 32, 48, stem_kind::cifar);
  CHECK(rect.out_w[0] == 50);
  CHECK(rect.out_h[0] == 34);
  CHECK_THROWS_AS(resnet_flops::make(0.0, 32, 32, stem_kind::cifar), value_error);
  CHECK_THROWS_AS(resnet_flops::make(1.0, 32, 32, stem_kind::cifar, 50), value_error);
  // ResNet-34: 3, 4, 6, 3 blocks; the same stem, and per-block formulas, so its total is the 18's plus the extra blocks.
  const auto r34 = resnet_flops::make(1.0, 32, 32, stem_kind::cifar, 34);
  CHECK(r34.num_blocks() == 16);
  std::int64_t extra = 0;
  for (const int l : {2, 5, 6, 9, 10, 11, 12, 15}) extra += r34.f_full[static_cast<std::size_t>(l)];
  CHECK(r34.dense_macs == 703'560'448 + extra);
  CHECK(r34.f_full[2] == 2 * 9 * 34 * 34 * 64 * 64);  // layer1.2: two 3x3 convs, 64 -> 64 on 34x34
}

namespace {
std::vector<tensor<double>> random_masks(const gating::resnet_flops& f, std::int64_t n, std::uint64_t seed, double p_open = 0.5) {
  std::vector<tensor<double>> m;
  for (int l = 0; l < f.num_blocks(); ++l) {
    auto u = random({n, f.c_out[l]}, seed + l, 0, 1);
    for (auto& v : u.values()) v = v < p_open ? 1.0 : 0.0;
    m.push_back(u);
  }
  return m;
}
}  // namespace

TEST_CASE("rho, L_spar and L_bound: values and gradients vs the formulas", "[losses][flops][grad]") {
  const auto f = gating::resnet_flops::make(0.125, 32, 32, gating::stem_kind::cifar);
  const std::int64_t n = 3;
  auto masks = random_masks(f, n, 200, 0.3);
  for (auto& m : masks) m.set_requires_grad();
  const losses::flops_budget spar{.lambda = 5, .target = 0.3};
  const losses::bound bnd{.gamma = 1, .target = 0.3};
  const double p = 0.6;

  // rho from its definition
  double num = static_cast<double>(f.stem_macs);
  for (int l = 0; l < 8; ++l) {
    double open = 0;
    for (double v : masks[l].values()) open += v;
    num += f.a[l] * open / n + f.f_ds[l] + f.f_mask[l];
  }
  const double rho_want = num / static_cast<double>(f.dense_macs);

  SECTION("L_spar: plain sum, gradient on every entry") {
    tape<double> tp;
    const auto rho = f.rho(tp, masks);
    CHECK(rho.item() == Approx(rho_want).epsilon(1e-14));
    const auto loss = spar(tp, rho);
    CHECK(loss.item() == Approx(5 * (rho_want - 0.3) * (rho_want - 0.3)).epsilon(1e-13));
    tp.backward(loss);
    for (int l = 0; l < 8; ++l) {
      const double want = 2 * 5 * (rho_want - 0.3) * f.a[l] / (n * static_cast<double>(f.dense_macs));
      for (double g : masks[l].grad().values()) CHECK(g == Approx(want).epsilon(1e-12));
    }
  }
  SECTION("L_bound: L1 convention, zero gradient at closed channels") {
    tape<double> tp;
    const auto d = losses::bound::densities(tp, masks);
    const auto loss = bnd(tp, d, p);
    const double lo = p * std::sqrt(0.3), hi = 1 - p + p * std::sqrt(0.3);
    double want = 0;
    std::vector<double> dl(8);
    for (int l = 0; l < 8; ++l) {
      double open = 0;
      for (double v : masks[l].values()) open += v;
      const double dd = open / static_cast<double>(masks[l].numel());
      CHECK(d[l] == Approx(dd).epsilon(1e-15));
      const double below = std::max(lo - dd, 0.0), above = std::max(dd - hi, 0.0);
      want += (below * below + above * above) / 8;
      dl[l] = (-2 * below + 2 * above) / 8;
    }
    CHECK(loss.item() == Approx(want).epsilon(1e-13));
    tp.backward(loss);
    for (int l = 0; l < 8; ++l) {
      const auto g = masks[l].grad();
      for (std::int64_t i = 0; i < g.numel(); ++i) {
        if (masks[l][i] == 0) CHECK(g[i] == 0.0);
        else CHECK(g[i] == Approx(dl[l] / static_cast<double>(masks[l].numel())).epsilon(1e-12).margin(1e-300));
      }
    }
  }
  SECTION("gradcheck of rho and L_spar (linear in the masks, no kink)") {
    std::vector<tensor<double>> in;
    for (const auto& m : masks) in.push_back(m.clone());
    testing::require_gradcheck(
        [&](tape<double>& tp, in_t x) { return spar(tp, f.rho(tp, std::vector<tensor<double>>(x.begin(), x.end()))); }, in);
  }
  SECTION("gradcheck of L_bound from densities away from the band edges") {
    const auto d = tensor<double>::from({4}, {0.05, 0.5, 0.95, 0.2});
    testing::require_gradcheck([&](tape<double>& tp, in_t x) { return bnd(tp, x[0], 0.9); }, {d});
  }
}

TEST_CASE("bound: exactly 0 inside the band, annealing", "[losses][flops]") {
  const losses::bound b{.gamma = 1, .target = 0.25, .alpha = 0.02};
  CHECK(b.anneal(0) == 1.0);
  CHECK(b.anneal(50) == Approx(std::exp(-1.0)));
  CHECK(b.lower_bound(1.0) == Approx(0.5));
  CHECK(b.upper_bound(1.0) == Approx(0.5));
  const double p = 0.5;  // band [0.25, 0.75]
  std::vector<tensor<double>> masks;
  for (std::int64_t c : {4, 8, 16}) {
    tensor<double> m = tensor<double>::zeros({2, c});
    for (std::int64_t i = 0; i < m.numel(); i += 2) m[i] = 1;  // density 0.5
    masks.push_back(m.set_requires_grad());
  }
  tensor<double> edge = tensor<double>::zeros({4, 4});  // density exactly 0.25 = the lower bound
  for (std::int64_t i = 0; i < 4; ++i) edge[i * 4] = 1;
  masks.push_back(edge.set_requires_grad());
  tape<double> tp;
  const auto r = b.evaluate(tp, masks, p);
  CHECK(r.total.item() == 0.0);
  tp.backward(r.total);
  for (const auto& m : masks)
    for (double g : m.grad().values()) CHECK(g == 0.0);
}

// ------------------------------------------------------------------------------------------ weighted sum
TEST_CASE("weighted_sum: total, named terms, gradients add", "[losses][grad]") {
  const auto f = gating::resnet_flops::make(0.125, 32, 32, gating::stem_kind::cifar);
  auto masks = random_masks(f, 4, 300, 0.6);
  const auto z1 = random({6, 5}, 301), z2 = random({6, 5}, 302);
  losses::weighted_sum<losses::vicreg, losses::flops_budget, losses::bound> obj;
  obj.get<1>().target = 0.3;
  obj.get<2>().target = 0.3;
  obj.weights = {1.0, 2.0, 1.0};

  tensor<double> a = z1.clone().set_requires_grad();
  for (auto& m : masks) m.set_requires_grad();
  tape<double> tp;
  const auto rho = f.rho(tp, masks);
  const auto d = losses::bound::densities(tp, masks);
  const auto r = obj(tp, std::forward_as_tuple(a, z2), std::forward_as_tuple(rho), std::forward_as_tuple(d, 0.5));
  tape<double> none(grad_mode::off);
  const double v = losses::vicreg{}(none, z1, z2).item();
  const double s = losses::flops_budget{.target = 0.3}(none, rho).item();
  const double bo = losses::bound{.target = 0.3}(none, d, 0.5).item();
  CHECK(r.total.item() == Approx(v + 2 * s + bo).epsilon(1e-14));
  CHECK(r.value("total") == Approx(r.total.item()));
  CHECK(r.value("vicreg") == Approx(v));
  CHECK(r.value("flops_budget") == Approx(2 * s));
  CHECK(r.value("flops_budget.rho") == Approx(rho.item()));
  CHECK(r.value("bound.lower") >= 0.0);
  CHECK(r.value("vicreg.invariance") > 0.0);
  tp.backward(r.total);
  CHECK(!a.grad().empty());
  CHECK(!masks[0].grad().empty());

  // Dynamic composition gives the same total.
  losses::term_sum<double> ts;
  ts.add("vicreg", 1.0, losses::vicreg{}.evaluate(none, z1, z2));
  ts.add("spar", 2.0, losses::flops_budget{.target = 0.3}.evaluate(none, rho));
  ts.add("bound", 1.0, losses::bound{.target = 0.3}(none, d, 0.5));
  CHECK(ts.total(none).item() == Approx(r.total.item()).epsilon(1e-14));
}

// -------------------------------------------------------------------------------------------- monitors
TEST_CASE("collapse metrics (TESTING.md T3)", "[monitors]") {
  SECTION("std of l2-normalized isotropic Gaussian = 1/sqrt(d) +- 10%; constant rows 0") {
    const std::int64_t n = 4096, d = 2048;
    const auto z = gaussian({n, d}, 400).cast<float>();
    const double s = train::std_of_l2_normalized(z);
    CHECK(s == Approx(1 / std::sqrt(static_cast<double>(d))).epsilon(0.10));
    const auto c = tensor<float>::full({64, 32}, 0.7f);
    CHECK(train::std_of_l2_normalized(c) == Approx(0.0).margin(1e-7));
  }
  SECTION("RankMe of rank-k data is within 10% of k") {
    for (std::int64_t k : {1, 8, 32}) {
      tape<double> none(grad_mode::off);
      const auto z = ops::matmul(none, gaussian({1024, k}, 410 + k), gaussian({k, 256}, 420 + k));
      const double r = train::rankme(z);
      INFO("k " << k << " rankme " << r);
      CHECK(r == Approx(static_cast<double>(k)).epsilon(0.10));
    }
    // Full-rank isotropic data is close to its dimension; agrees with the data SVD.
    const auto iso = gaussian({2000, 64}, 430);
    CHECK(train::rankme(iso) == Approx(64).epsilon(0.10));
    const auto s1 = ops::cpu::singular_values(iso.data(), 2000, 64), s2 = ops::cpu::gram_singular_values(iso.data(), 2000, 64);
    REQUIRE(s1.size() == s2.size());
    for (std::size_t i = 0; i < s1.size(); ++i) CHECK(s2[i] == Approx(s1[i]).epsilon(1e-9));
  }
  SECTION("collapse warning after 3 consecutive low evaluations") {
    train::collapse_detector det;
    const double low = 0.05 / std::sqrt(2048.0), ok = 1 / std::sqrt(2048.0);
    CHECK(!det.observe(low, 2048));
    CHECK(!det.observe(low, 2048));
    CHECK(!det.observe(ok, 2048));
    CHECK(!det.observe(low, 2048));
    CHECK(!det.observe(low, 2048));
    CHECK(det.observe(low, 2048));
  }
}

TEST_CASE("gate monitors: density, always off / always on over a window", "[monitors]") {
  // Layer 0: 4 channels; channel 0 always on, channel 3 always off, 1 and 2 mixed.
  auto batch = [](double c1, double c2) {
    return std::vector<tensor<double>>{tensor<double>::from({2, 4}, {1, c1, 0, 0, 1, 0, c2, 0})};
  };
  train::gate_window w(2);
  w.observe(batch(1, 1));
  CHECK(w.always_on()[0] == Approx(0.25));
  CHECK(w.always_off()[0] == Approx(0.25));
  CHECK(w.density()[0] == Approx(4.0 / 8));
  w.observe(batch(0, 0));
  CHECK(w.always_off()[0] == Approx(0.25));
  w.observe(batch(0, 0));  // the first batch leaves the window: channels 1, 2 now never open
  CHECK(w.always_off()[0] == Approx(0.75));
  CHECK(w.always_on()[0] == Approx(0.25));
  CHECK(train::gate_density(batch(1, 0))[0] == Approx(3.0 / 8));
}
