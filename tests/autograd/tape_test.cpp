#include <sslgate/ops/elementwise.hpp>

#include "../test_util.hpp"

using namespace sslgate;

TEST_CASE("tape: a weight used twice receives the sum of both gradients", "[autograd]") {
  auto w = tensor<double>::from({3}, {1, 2, 3});
  w.set_requires_grad();
  auto a = tensor<double>::from({3}, {4, 5, 6});
  auto b = tensor<double>::from({3}, {-1, 0, 2});
  tape<double> tp;
  auto y = ops::add(tp, ops::mul(tp, w, a), ops::mul(tp, w, b));  // y = w*a + w*b
  tp.backward(y, tensor<double>::full({3}, 1.0));
  CHECK(w.grad().to_vector() == std::vector<double>{3, 5, 8});
  CHECK(tp.size() == 0);
}

TEST_CASE("tape: parameter gradients are assigned, not accumulated across steps", "[autograd]") {
  auto w = tensor<double>::from({2}, {1, 2});
  w.set_requires_grad();
  w.set_grad(tensor<double>::full({2}, std::numeric_limits<double>::infinity()));
  for (int step = 0; step < 2; ++step) {
    tape<double> tp;
    auto y = ops::scale(tp, w, 3.0);
    tp.backward(y, tensor<double>::full({2}, 1.0));
    CHECK(w.grad().to_vector() == std::vector<double>{3, 3});
  }
}

TEST_CASE("tape: grad_mode::off keeps nothing, constants are not recorded", "[autograd]") {
  auto w = tensor<double>::from({2}, {1, 2});
  w.set_requires_grad();
  tape<double> off(grad_mode::off);
  auto y = ops::exp(off, w);
  CHECK(off.size() == 0);
  CHECK_FALSE(y.requires_grad());
  tape<double> on;
  auto c = ops::exp(on, tensor<double>::from({2}, {1, 2}));
  CHECK(on.size() == 0);
  CHECK_FALSE(c.requires_grad());
  CHECK_THROWS_AS(on.backward(w), shape_error);  // not a single value
  CHECK_THROWS_AS(ops::exp(on, w).set_requires_grad(), value_error);
}

TEST_CASE("gradcheck catches a wrong gradient", "[autograd]") {
  // An op with a deliberately wrong backward: y = 2x, dx += dy.
  auto wrong = [](tape<double>& tp, std::span<const tensor<double>> in) {
    const tensor<double>& x = in[0];
    tensor<double> y = x.clone();
    for (auto& v : y.values()) v *= 2;
    tp.record({x}, y, [](grad_slots<double>& g, const tensor<double>& dy) {
      auto& dx = g[0];
      for (std::int64_t i = 0; i < dx.numel(); ++i) dx[i] += dy[i];
    });
    return y;
  };
  auto x = testing::random({4}, 1);
  x.set_requires_grad();
  const auto res = gradcheck(wrong, {x});
  CHECK_FALSE(res.ok);
  CHECK_THAT(res.report, Catch::Contains("input 0"));
}
