// batchnorm, pooling, softmax family and l2_normalize: gradcheck (float64), float vs double (forward and
// gradients), hand-computed values, PyTorch edge semantics and shape errors.
#include <sslgate/ops/batchnorm.hpp>
#include <sslgate/ops/elementwise.hpp>
#include <sslgate/ops/normalize.hpp>
#include <sslgate/ops/pool.hpp>
#include <sslgate/ops/softmax.hpp>

#include "../test_util.hpp"

#include <algorithm>
#include <numeric>

using namespace sslgate;
using testing::random;

namespace {

template <class Span>
using value_of = typename std::decay_t<decltype(std::declval<Span>()[0])>::value_type;

// The gradient of sum(r * f(inputs)) with respect to input k, r a fixed random cotangent: lets
// require_float_vs_double compare backward passes too.
template <class F>
auto grad_of(F f, int k) {
  return [f, k](auto&, auto in) {
    using T = value_of<decltype(in)>;
    std::vector<tensor<T>> xs;
    for (const auto& t : in) {
      xs.push_back(t.clone());
      xs.back().set_requires_grad();
    }
    tape<T> tp;
    tensor<T> y = f(tp, std::span<const tensor<T>>(xs));
    tp.backward(y, random(y.dims(), 99).template cast<T>());
    return xs[k].grad();
  };
}

// gradcheck of f; gradcheck of f applied twice to the same inputs (the second backward finds the slots
// already filled, so an op that assigned instead of adding would fail); float vs double of the forward
// value and of the gradients of the inputs in `grads`. k is the reduction length behind one output.
template <class F>
void check_op(F f, const std::vector<tensor<double>>& inputs, double k, std::vector<int> grads = {0}) {
  testing::require_gradcheck(f, inputs);
  testing::require_gradcheck([f](auto& tp, auto in) { return ops::add(tp, f(tp, in), f(tp, in)); }, inputs);
  testing::require_float_vs_double(f, inputs, k);
  for (int i : grads) {
    INFO("gradient of input " << i);
    testing::require_float_vs_double(grad_of(f, i), inputs, k);
  }
}

// Distinct values (a shuffled grid with spacing 0.01), so max pooling has no ties under perturbation.
tensor<double> distinct(const shape& s, std::uint64_t seed) {
  tensor<double> t(s);
  std::vector<std::int64_t> perm(static_cast<std::size_t>(t.numel()));
  std::iota(perm.begin(), perm.end(), 0);
  rng r(seed);
  const std::uint64_t first = r.advance(perm.size());
  for (std::size_t i = perm.size(); i > 1; --i)
    std::swap(perm[i - 1], perm[static_cast<std::size_t>(r.uniform_at(first + i - 1) * static_cast<double>(i)) % i]);
  for (std::int64_t i = 0; i < t.numel(); ++i) t[i] = 0.01 * static_cast<double>(perm[i]) - 0.005 * static_cast<double>(t.numel());
  return t;
}

// A batchnorm call on inputs {x[, weight, bias]}; running statistics (when used) are fresh per call:
// mean 0.1 c - 0.2, var 0.4 + 0.1 c.
auto bn_fn(bool training, bool affine, bool running) {
  return [=](auto& tp, auto in) {
    using T = value_of<decltype(in)>;
    const std::int64_t c = in[0].dim(1);
    tensor<T> rm, rv;
    if (running) {
      rm = tensor<T>(shape{c});
      rv = tensor<T>(shape{c});
      for (std::int64_t i = 0; i < c; ++i) {
        rm[i] = static_cast<T>(0.1 * i - 0.2);
        rv[i] = static_cast<T>(0.4 + 0.1 * i);
      }
    }
    if (affine) return ops::batchnorm(tp, in[0], in[1], in[2], rm, rv, training);
    return ops::batchnorm(tp, in[0], tensor<T>{}, tensor<T>{}, rm, rv, training);
  };
}

const std::vector<shape> bn_shapes = {{3, 1}, {5, 17}, {4, 33}, {2, 3, 1, 1}, {1, 3, 3, 3}, {2, 3, 5, 7}, {2, 17, 2, 3}};

}  // namespace

TEST_CASE("batchnorm training: gradcheck and float vs double", "[nn][grad]") {
  for (const auto& s : bn_shapes) {
    INFO("x " << s.str());
    const std::int64_t c = s[1], m = s.numel() / c;
    auto x = random(s, 1, -1, 2);
    auto w = random({c}, 2, 0.5, 1.5), b = random({c}, 3);
    check_op(bn_fn(true, true, true), {x, w, b}, static_cast<double>(m), {0, 1, 2});
    check_op(bn_fn(true, false, false), {x}, static_cast<double>(m));
  }
}

TEST_CASE("batchnorm eval: gradcheck and float vs double", "[nn][grad]") {
  for (const auto& s : bn_shapes) {
    INFO("x " << s.str());
    const std::int64_t c = s[1], m = s.numel() / c;
    auto x = random(s, 4);
    auto w = random({c}, 5, 0.5, 1.5), b = random({c}, 6);
    check_op(bn_fn(false, true, true), {x, w, b}, static_cast<double>(m), {0, 1, 2});
    check_op(bn_fn(false, false, true), {x}, 1);
  }
}

TEST_CASE("batchnorm updates running statistics with the unbiased variance", "[nn]") {
  SECTION("1d, default momentum 0.1") {
    tape<double> tp(grad_mode::off);
    auto x = tensor<double>::from({4, 1}, {1, 2, 3, 6});  // mean 3, biased var 3.5, unbiased 14/3
    auto rm = tensor<double>::from({1}, {0.0});
    auto rv = tensor<double>::from({1}, {1.0});
    auto y = ops::batchnorm(tp, x, tensor<double>{}, tensor<double>{}, rm, rv, true);
    CHECK(rm[0] == Approx(0.3).epsilon(1e-14));
    CHECK(rv[0] == Approx(0.9 + 0.1 * 14.0 / 3.0).epsilon(1e-14));
    for (int i = 0; i < 4; ++i) CHECK(y[i] == Approx((x[i] - 3) / std::sqrt(3.5 + 1e-5)).epsilon(1e-14));
  }
  SECTION("2d in float, momentum 0.5, affine") {
    tape<float> tp(grad_mode::off);
    // channel 0: {1, 3, 5, 7} -> mean 4, biased var 5, unbiased 20/3; channel 1: {2, 2, 2, 2} -> var 0.
    auto x = tensor<float>::from({2, 2, 1, 2}, {1, 3, 2, 2, 5, 7, 2, 2});
    auto w = tensor<float>::from({2}, {2, 3});
    auto b = tensor<float>::from({2}, {0.5f, -1});
    auto rm = tensor<float>::from({2}, {2, 1});
    auto rv = tensor<float>::from({2}, {3, 1});
    auto y = ops::batchnorm(tp, x, w, b, rm, rv, true, 0.5, 1e-5);
    CHECK(rm[0] == Approx(3.0).epsilon(1e-6));
    CHECK(rm[1] == Approx(1.5).epsilon(1e-6));
    CHECK(rv[0] == Approx(1.5 + 0.5 * 20.0 / 3.0).epsilon(1e-6));
    CHECK(rv[1] == Approx(0.5).epsilon(1e-6));
    CHECK(y[0] == Approx(2 * (1 - 4) / std::sqrt(5 + 1e-5) + 0.5).epsilon(1e-6));
    CHECK(y[2] == -1);  // a constant channel maps to its bias
  }
  SECTION("eval uses and keeps the running statistics") {
    tape<double> tp(grad_mode::off);
    auto x = tensor<double>::from({2, 2}, {1, 2, 3, 4});
    auto w = tensor<double>::from({2}, {2, 1});
    auto b = tensor<double>::from({2}, {0, 1});
    auto rm = tensor<double>::from({2}, {1, -1});
    auto rv = tensor<double>::from({2}, {4, 9});
    auto y = ops::batchnorm(tp, x, w, b, rm, rv, false, 0.1, 0.0);
    CHECK(y[0] == 0);  // channel 0: (x - 1) / 2 * 2; channel 1: (x + 1) / 3 + 1
    CHECK(y[1] == Approx(2).epsilon(1e-15));
    CHECK(y[2] == 2);
    CHECK(y[3] == Approx(5.0 / 3 + 1).epsilon(1e-15));
    CHECK(rm.to_vector() == std::vector<double>{1, -1});
    CHECK(rv.to_vector() == std::vector<double>{4, 9});
  }
  SECTION("training without running statistics leaves nothing to update") {
    tape<double> tp(grad_mode::off);
    tensor<double> rm, rv;
    auto y = ops::batchnorm(tp, random({3, 5}, 8), tensor<double>{}, tensor<double>{}, rm, rv, true);
    CHECK(rm.empty());
    for (std::int64_t c = 0; c < 5; ++c) {
      double s = 0;
      for (int n = 0; n < 3; ++n) s += y[n * 5 + c];
      CHECK(s == Approx(0).margin(1e-12));
    }
  }
}

TEST_CASE("batchnorm backward adds into existing gradients", "[nn][grad]") {
  // z = bn(x, w, b) + x + w + b (1d, so [C] broadcasts over rows): each slot is pre-filled by the add.
  auto x = random({4, 3}, 10), w = random({3}, 11, 0.5, 1.5), b = random({3}, 12);
  auto r = random({4, 3}, 13);
  auto grads = [&](bool extra) {
    std::vector<tensor<double>> in{x.clone(), w.clone(), b.clone()};
    for (auto& t : in) t.set_requires_grad();
    tape<double> tp;
    tensor<double> rm, rv;
    auto z = ops::batchnorm(tp, in[0], in[1], in[2], rm, rv, true);
    if (extra) z = ops::add(tp, ops::add(tp, ops::add(tp, z, in[0]), in[1]), in[2]);
    tp.backward(z, r);
    return std::vector<tensor<double>>{in[0].grad(), in[1].grad(), in[2].grad()};
  };
  const auto plain = grads(false), added = grads(true);
  for (int i = 0; i < 12; ++i) CHECK(added[0][i] == Approx(plain[0][i] + r[i]).epsilon(1e-12));
  for (int c = 0; c < 3; ++c) {
    const double rc = r[c] + r[3 + c] + r[6 + c] + r[9 + c];
    CHECK(added[1][c] == Approx(plain[1][c] + rc).epsilon(1e-12));
    CHECK(added[2][c] == Approx(plain[2][c] + rc).epsilon(1e-12));
  }
}

namespace {
// relu(bn(x) [+ r]) fused and composed, on inputs {x, w, b[, r]}; running statistics fresh per call.
auto bn_relu_fn(bool training, bool fused) {
  return [=](auto& tp, auto in) {
    using T = value_of<decltype(in)>;
    const std::int64_t c = in[0].dim(1);
    tensor<T> rm = tensor<T>::full({c}, T(0.1)), rv = tensor<T>::full({c}, T(0.7));
    const tensor<T> r = in.size() > 3 ? in[3] : tensor<T>{};
    if (fused) return ops::batchnorm_relu(tp, in[0], in[1], in[2], rm, rv, training, r);
    tensor<T> z = ops::batchnorm(tp, in[0], in[1], in[2], rm, rv, training);
    return ops::relu(tp, r.empty() ? z : ops::add(tp, z, r));
  };
}
// A residual that puts bn(x) + r at +-[0.1, 1], away from relu's kink (finite differences stay on one side).
tensor<double> residual_off_kink(const tensor<double>& x, const tensor<double>& w, const tensor<double>& b, bool training, std::uint64_t seed) {
  tape<double> none(grad_mode::off);
  tensor<double> rm = tensor<double>::full({x.dim(1)}, 0.1), rv = tensor<double>::full({x.dim(1)}, 0.7);
  const tensor<double> z = ops::batchnorm(none, x, w, b, rm, rv, training);
  tensor<double> r = random(x.dims(), seed, 0.1, 1);
  for (std::int64_t i = 0; i < r.numel(); ++i) r[i] = (i % 3 == 0 ? -r[i] : r[i]) - z[i];
  return r;
}
}  // namespace

TEST_CASE("batchnorm_relu: gradcheck, float vs double, and equal to relu(bn(x) + r)", "[nn][grad]") {
  for (const bool training : {true, false})
    for (const auto& s : std::vector<shape>{{5, 17}, {2, 3, 5, 7}, {2, 17, 2, 3}}) {
      INFO("x " << s.str() << (training ? " training" : " eval"));
      const std::int64_t c = s[1], m = s.numel() / c;
      auto x = random(s, 21, -1, 2), w = random({c}, 22, 0.5, 1.5), b = random({c}, 23);
      const auto r = residual_off_kink(x, w, b, training, 24);
      check_op(bn_relu_fn(training, true), {x, w, b, r}, static_cast<double>(m), {0, 1, 2, 3});
      check_op(bn_relu_fn(training, true), {x, w, b}, static_cast<double>(m), {0, 1, 2});
      // The fused op and the composition: same values and gradients (double, so only rounding differs).
      for (const bool with_r : {true, false}) {
        std::vector<tensor<double>> in{x, w, b};
        if (with_r) in.push_back(r);
        tape<double> none(grad_mode::off);
        const std::span<const tensor<double>> sp(in);
        const auto fused = bn_relu_fn(training, true)(none, sp), composed = bn_relu_fn(training, false)(none, sp);
        for (std::int64_t i = 0; i < fused.numel(); ++i) REQUIRE(fused[i] == Approx(composed[i]).margin(1e-12));
        for (int k = 0; k < static_cast<int>(in.size()); ++k) {
          const auto gf = grad_of(bn_relu_fn(training, true), k)(none, sp), gc = grad_of(bn_relu_fn(training, false), k)(none, sp);
          for (std::int64_t i = 0; i < gf.numel(); ++i) REQUIRE(gf[i] == Approx(gc[i]).margin(1e-12));
        }
      }
    }
}

TEST_CASE("batchnorm_relu with the input as its own residual", "[nn][grad]") {
  // relu(bn(x) + x): both uses of x add into one gradient slot.
  auto x = random({3, 4, 2, 2}, 31, -1, 2), w = random({4}, 32, 0.5, 1.5), b = random({4}, 33);
  const auto run = [&](bool fused) {
    std::vector<tensor<double>> in{x.clone(), w.clone(), b.clone()};
    for (auto& t : in) t.set_requires_grad();
    tape<double> tp;
    tensor<double> rm = tensor<double>::zeros({4}), rv = tensor<double>::full({4}, 1.0);
    tensor<double> y = fused ? ops::batchnorm_relu(tp, in[0], in[1], in[2], rm, rv, true, in[0])
                             : ops::relu(tp, ops::add(tp, ops::batchnorm(tp, in[0], in[1], in[2], rm, rv, true), in[0]));
    tp.backward(y, random(y.dims(), 34));
    return std::vector<tensor<double>>{y, in[0].grad(), in[1].grad(), in[2].grad()};
  };
  const auto f = run(true), c = run(false);
  for (std::size_t k = 0; k < f.size(); ++k)
    for (std::int64_t i = 0; i < f[k].numel(); ++i) REQUIRE(f[k][i] == Approx(c[k][i]).margin(1e-12));
}

TEST_CASE("batchnorm errors name the op and the shapes", "[nn]") {
  tape<float> tp;
  tensor<float> rm, rv, none;
  auto x = tensor<float>::zeros({2, 3, 4, 4});
  CHECK_THROWS_WITH(ops::batchnorm(tp, x, tensor<float>::zeros({5}), none, rm, rv, true),
                    "batchnorm: input [2, 3, 4, 4] has 3 channels but weight has shape [5]");
  CHECK_THROWS_AS(ops::batchnorm(tp, tensor<float>::zeros({2, 3, 4}), none, none, rm, rv, true), shape_error);
  auto rm3 = tensor<float>::zeros({3}), rv4 = tensor<float>::zeros({4});
  CHECK_THROWS_WITH(ops::batchnorm(tp, x, none, none, rm3, rv4, true),
                    "batchnorm: input [2, 3, 4, 4] has 3 channels but running_var has shape [4]");
  CHECK_THROWS_AS(ops::batchnorm(tp, x, none, none, rm3, rv, true), value_error);  // one of the two running stats
  CHECK_THROWS_AS(ops::batchnorm(tp, x, none, none, rm, rv, false), value_error);  // eval without running stats
  auto one = tensor<float>::zeros({1, 3});
  CHECK_THROWS_WITH(ops::batchnorm(tp, one, none, none, rm, rv, true),
                    "batchnorm: training needs more than 1 value per channel, got input [1, 3] (1 per channel)");
  auto rv3 = tensor<float>::full({3}, 1);
  CHECK_NOTHROW(ops::batchnorm(tp, one, none, none, rm3, rv3, false));  // eval with one value is fine
}

namespace {
struct pool_case {
  shape s;
  int k, stride, pad;
};
const std::vector<pool_case> pool_cases = {
    {{1, 3, 5, 5}, 3, 2, 1}, {{2, 1, 4, 4}, 2, 2, 0}, {{1, 17, 3, 3}, 3, 1, 1}, {{1, 3, 6, 7}, 3, 2, 0},
    {{1, 3, 7, 6}, 5, 2, 2}, {{2, 3, 1, 1}, 1, 1, 0}, {{2, 3, 1, 1}, 3, 1, 1},  {{1, 33, 2, 3}, 2, 1, 1},
};
}  // namespace

TEST_CASE("avg_pool2d and max_pool2d: gradcheck and float vs double", "[nn][grad]") {
  for (const auto& pc : pool_cases) {
    INFO("x " << pc.s.str() << " kernel " << pc.k << " stride " << pc.stride << " padding " << pc.pad);
    const int k = pc.k, st = pc.stride, p = pc.pad;
    check_op([=](auto& tp, auto in) { return ops::avg_pool2d(tp, in[0], k, st, p); }, {random(pc.s, 20)}, k * k);
    check_op([=](auto& tp, auto in) { return ops::max_pool2d(tp, in[0], k, st, p); }, {distinct(pc.s, 21)}, 1);
  }
}

TEST_CASE("pooling values follow PyTorch", "[nn]") {
  tape<double> tp;
  SECTION("avg_pool2d counts padding in the divisor") {
    tape<double> off(grad_mode::off);
    auto x = tensor<double>::from({1, 1, 2, 2}, {1, 2, 3, 4});
    auto y = ops::avg_pool2d(off, x, 3, 1, 1);  // every 3x3 window covers all four values
    CHECK(y.to_vector() == std::vector<double>(4, 10.0 / 9));
  }
  SECTION("max_pool2d: padding never wins, ties go to the first in scan order") {
    auto neg = tensor<double>::from({1, 1, 2, 2}, {-4, -3, -2, -1});
    neg.set_requires_grad();
    auto y = ops::max_pool2d(tp, neg, 3, 2, 1);
    CHECK(y.to_vector() == std::vector<double>{-1});
    auto tie = tensor<double>::from({1, 1, 2, 3}, {5, 1, 5, 5, 0, 5});
    tie.set_requires_grad();
    auto z = ops::max_pool2d(tp, tie, 2, 1, 0);  // windows {5,1,5,0} and {1,5,0,5}
    CHECK(z.to_vector() == std::vector<double>{5, 5});
    tp.backward(z, tensor<double>::from(z.dims(), {1, 10}));
    CHECK(tie.grad().to_vector() == std::vector<double>{1, 0, 10, 0, 0, 0});
  }
  SECTION("max_pool2d propagates NaN") {
    tape<float> off(grad_mode::off);
    auto x = tensor<float>::from({1, 1, 2, 2}, {1, std::nanf(""), 3, 4});
    CHECK(std::isnan(ops::max_pool2d(off, x, 2, 2, 0)[0]));
  }
}

TEST_CASE("global_avg_pool: gradcheck, float vs double, exact values", "[nn][grad]") {
  for (const shape& s : std::vector<shape>{{2, 3, 5, 7}, {1, 33, 1, 1}, {1, 17, 4, 4}, {3, 1, 2, 9}}) {
    INFO("x " << s.str());
    check_op([](auto& tp, auto in) { return ops::global_avg_pool(tp, in[0]); }, {random(s, 30)}, static_cast<double>(s[2] * s[3]));
  }
  tape<float> tp(grad_mode::off);
  auto x = tensor<float>::from({1, 2, 2, 2}, {1, 2, 3, 6, -1, -1, -1, -1});
  CHECK(ops::global_avg_pool(tp, x).to_vector() == std::vector<float>{3, -1});
}

TEST_CASE("pooling errors name the op and the shapes", "[nn]") {
  tape<float> tp;
  auto x = tensor<float>::zeros({1, 2, 2, 2});
  CHECK_THROWS_WITH(ops::max_pool2d(tp, x, 5, 1, 1), "max_pool2d: kernel 5 does not fit input [1, 2, 2, 2] with padding 1");
  CHECK_THROWS_AS(ops::avg_pool2d(tp, tensor<float>::zeros({2, 2}), 2, 2, 0), shape_error);
  CHECK_THROWS_AS(ops::avg_pool2d(tp, x, 2, 2, 2), value_error);  // padding above kernel / 2
  CHECK_THROWS_WITH(ops::global_avg_pool(tp, tensor<float>::zeros({2, 3})),
                    "global_avg_pool: input must be [N, C, H, W], got shape [2, 3]");
}

namespace {
const std::vector<shape> row_shapes = {{1, 1}, {3, 17}, {2, 33}, {4, 3}};
std::vector<int> labels_for(const shape& s) {
  std::vector<int> t(static_cast<std::size_t>(s[0]));
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<int>((7 * i + 2) % static_cast<std::size_t>(s[1]));
  return t;
}
}  // namespace

TEST_CASE("log_softmax, logsumexp, cross_entropy: gradcheck and float vs double", "[nn][grad]") {
  for (const auto& s : row_shapes) {
    INFO("x " << s.str());
    auto x = random(s, 40, -3, 3);
    const double c = static_cast<double>(s[1]);
    check_op([](auto& tp, auto in) { return ops::log_softmax(tp, in[0]); }, {x}, c);
    check_op([](auto& tp, auto in) { return ops::logsumexp(tp, in[0]); }, {x}, c);
    const auto t = labels_for(s);
    check_op([t](auto& tp, auto in) { return ops::cross_entropy(tp, in[0], t); }, {x}, c * static_cast<double>(s[0]));
  }
}

TEST_CASE("softmax family values and stability", "[nn]") {
  tape<double> tp(grad_mode::off);
  auto big = tensor<double>::from({2, 3}, {1000, 1001, 1002, -1000, -1001, -1002});
  const double l = std::log(1 + std::exp(-1.0) + std::exp(-2.0));
  auto lse = ops::logsumexp(tp, big);
  CHECK(lse[0] == Approx(1002 + l).epsilon(1e-15));
  CHECK(lse[1] == Approx(-1000 + l).epsilon(1e-15));
  auto ls = ops::log_softmax(tp, big);
  CHECK(ls[2] == Approx(-l).epsilon(1e-14));
  CHECK(ls[3] == Approx(-l).epsilon(1e-14));
  const double inf = std::numeric_limits<double>::infinity();
  auto ninf = tensor<double>::from({1, 2}, {-inf, -inf});
  CHECK(ops::logsumexp(tp, ninf)[0] == -inf);
  auto zeros = tensor<double>::zeros({2, 4});
  CHECK(ops::cross_entropy(tp, zeros, {0, 3}).item() == Approx(std::log(4.0)).epsilon(1e-15));
  CHECK(ops::cross_entropy(tp, zeros, {0, 3}).dims() == shape{});
  // cross entropy = mean of -log_softmax at the labels
  auto x = random({3, 5}, 41);
  auto lsx = ops::log_softmax(tp, x);
  CHECK(ops::cross_entropy(tp, x, {4, 0, 2}).item() == Approx(-(lsx[4] + lsx[5] + lsx[12]) / 3).epsilon(1e-14));
}

TEST_CASE("softmax family errors", "[nn]") {
  tape<float> tp;
  auto x = tensor<float>::zeros({2, 4});
  CHECK_THROWS_WITH(ops::cross_entropy(tp, x, {0, 4}), "cross_entropy: label 4 at index 1 is out of range [0, 4) for logits [2, 4]");
  CHECK_THROWS_AS(ops::cross_entropy(tp, x, {-1, 0}), value_error);
  CHECK_THROWS_WITH(ops::cross_entropy(tp, x, {0}), "cross_entropy: logits [2, 4] have 2 rows but 1 labels were given");
  CHECK_THROWS_WITH(ops::log_softmax(tp, tensor<float>::zeros({2, 3, 4})), "log_softmax: input must be [N, C], got shape [2, 3, 4]");
  CHECK_THROWS_AS(ops::logsumexp(tp, tensor<float>::zeros({2, 0})), shape_error);
}

TEST_CASE("l2_normalize: gradcheck, float vs double, unit rows, zero rows", "[nn][grad]") {
  for (const shape& s : std::vector<shape>{{1, 1}, {3, 17}, {2, 33}, {5, 3}}) {
    INFO("x " << s.str());
    check_op([](auto& tp, auto in) { return ops::l2_normalize(tp, in[0]); }, {random(s, 50)}, static_cast<double>(s[1]));
  }
  tape<double> tp;
  auto x = random({3, 33}, 51);
  for (int i = 0; i < 33; ++i) x[33 + i] = 0;  // row 1 is zero
  x.set_requires_grad();
  auto y = ops::l2_normalize(tp, x);
  for (int r : {0, 2}) {
    double s = 0;
    for (int i = 0; i < 33; ++i) s += y[r * 33 + i] * y[r * 33 + i];
    CHECK(s == Approx(1).epsilon(1e-14));
  }
  for (int i = 0; i < 33; ++i) CHECK(y[33 + i] == 0);
  auto dy = random(y.dims(), 52);
  tp.backward(y, dy);
  for (int i = 0; i < 33; ++i) {
    CHECK(std::isfinite(x.grad()[33 + i]));
    CHECK(x.grad()[33 + i] == Approx(dy[33 + i] / 1e-12).epsilon(1e-14));  // F.normalize: dy / eps
  }
  tape<float> tf;
  CHECK_THROWS_WITH(ops::l2_normalize(tf, tensor<float>::zeros({2, 3, 4})), "l2_normalize: input must be [N, D], got shape [2, 3, 4]");
}
