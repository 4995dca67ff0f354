#include <sslgate/ops/elementwise.hpp>

#include "../test_util.hpp"

using namespace sslgate;
using testing::random;

namespace {
// Shapes that exercise broadcasting over batch and channel, odd sizes (not a multiple of the SIMD width),
// N=1 and 1x1 maps.
const std::vector<std::pair<shape, shape>> broadcast_cases = {
    {{2, 3, 5, 7}, {2, 3, 5, 7}}, {{2, 3, 5, 7}, {1, 3, 1, 1}}, {{1, 3, 1, 1}, {2, 3, 5, 7}},
    {{2, 17}, {17}},              {{2, 17}, {2, 1}},            {{1, 5, 1, 1}, {1, 5, 1, 1}},
    {{3, 1, 4}, {1, 2, 1}},       {{2, 3}, {}},                 {{1, 33, 3, 3}, {1, 1, 3, 3}},
};
}  // namespace

template <class Op>
void check_binary(Op op, double lo_b = -1, double hi_b = 1) {
  for (const auto& [sa, sb] : broadcast_cases) {
    INFO("a " << sa.str() << " b " << sb.str());
    auto a = random(sa, 1), b = random(sb, 2, lo_b, hi_b);
    auto f = [&](auto& tp, auto in) { return op(tp, in[0], in[1]); };
    testing::require_gradcheck(f, {a, b});
    testing::require_float_vs_double(f, {a, b});
  }
}

TEST_CASE("add, sub, mul, div with broadcasting: gradcheck and float vs double", "[ops][grad]") {
  check_binary([](auto& tp, auto& a, auto& b) { return ops::add(tp, a, b); });
  check_binary([](auto& tp, auto& a, auto& b) { return ops::sub(tp, a, b); });
  check_binary([](auto& tp, auto& a, auto& b) { return ops::mul(tp, a, b); });
  check_binary([](auto& tp, auto& a, auto& b) { return ops::div(tp, a, b); }, 0.5, 2.0);
}

TEST_CASE("unary ops: gradcheck and float vs double", "[ops][grad]") {
  const std::vector<shape> shapes = {{1}, {2, 3, 5, 7}, {1, 17, 1, 1}, {33}};
  for (const auto& s : shapes) {
    INFO("shape " << s.str());
    auto x = random(s, 3);
    // Inputs of relu and abs stay away from the kink at 0; log, sqrt and pow get positive inputs.
    auto away = x.clone();
    for (auto& v : away.values()) v = v < 0 ? v - 0.05 : v + 0.05;
    auto pos = random(s, 4, 0.2, 2.0);
    auto run = [&](auto op, const tensor<double>& in) {
      auto f = [&](auto& tp, auto v) { return op(tp, v[0]); };
      testing::require_gradcheck(f, {in});
      testing::require_float_vs_double(f, {in});
    };
    run([](auto& tp, auto& v) { return ops::neg(tp, v); }, x);
    run([](auto& tp, auto& v) { return ops::scale(tp, v, -2.5); }, x);
    run([](auto& tp, auto& v) { return ops::exp(tp, v); }, x);
    run([](auto& tp, auto& v) { return ops::log(tp, v); }, pos);
    run([](auto& tp, auto& v) { return ops::sqrt(tp, v); }, pos);
    run([](auto& tp, auto& v) { return ops::pow(tp, v, 2.5); }, pos);
    run([](auto& tp, auto& v) { return ops::pow(tp, v, -1.0); }, pos);
    run([](auto& tp, auto& v) { return ops::abs(tp, v); }, away);
    run([](auto& tp, auto& v) { return ops::relu(tp, v); }, away);
    run([](auto& tp, auto& v) { return ops::sigmoid(tp, v); }, x);
  }
}

TEST_CASE("element-wise values are exact on small integers", "[ops]") {
  tape<float> tp(grad_mode::off);
  auto a = tensor<float>::from({2, 3}, {1, 2, 3, 4, 5, 6});
  auto b = tensor<float>::from({3}, {10, 20, 30});
  CHECK(ops::add(tp, a, b).to_vector() == std::vector<float>{11, 22, 33, 14, 25, 36});
  CHECK(ops::mul(tp, a, tensor<float>::from({2, 1}, {2, 3})).to_vector() == std::vector<float>{2, 4, 6, 12, 15, 18});
  CHECK(ops::relu(tp, tensor<float>::from({3}, {-1, 0, 2})).to_vector() == std::vector<float>{0, 0, 2});
  CHECK(ops::add_scalar(tp, a, 1.0f)[5] == 7);
}

TEST_CASE("element-wise backward adds into existing gradients of a shared input", "[ops][grad]") {
  auto x = tensor<double>::from({1, 3, 1, 1}, {1, 2, 3});
  x.set_requires_grad();
  tape<double> tp;
  auto big = random({2, 3, 4, 5}, 7);
  auto y = ops::add(tp, ops::mul(tp, big, x), x);  // x used twice, once broadcast
  tp.backward(y, tensor<double>::full(y.dims(), 1.0));
  for (int c = 0; c < 3; ++c) {
    double want = 2 * 4 * 5;  // from "+ x" broadcast over N, H, W
    for (int n = 0; n < 2; ++n)
      for (int i = 0; i < 20; ++i) want += big[(n * 3 + c) * 20 + i];
    CHECK(x.grad()[c] == Approx(want).epsilon(1e-12));
  }
}

TEST_CASE("element-wise shape errors name the op and the shapes", "[ops]") {
  tape<float> tp;
  auto a = tensor<float>::zeros({2, 3});
  auto b = tensor<float>::zeros({4});
  CHECK_THROWS_WITH(ops::add(tp, a, b), "add: shapes [2, 3] and [4] do not broadcast");
  CHECK_THROWS_AS(ops::mul(tp, a, tensor<float>{}), shape_error);
}
