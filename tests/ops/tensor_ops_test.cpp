#include <sslgate/ops/conv2d.hpp>
#include <sslgate/ops/linalg.hpp>
#include <sslgate/ops/shape_ops.hpp>

#include "../test_util.hpp"

using namespace sslgate;
using testing::random;

namespace {
template <class F>
void check(F f, std::vector<tensor<double>> in, double k = 1) {
  testing::require_gradcheck(f, in);
  testing::require_float_vs_double(f, in, k);
}
}  // namespace

TEST_CASE("reductions: sum, mean, var, norms over chosen dims", "[ops][grad]") {
  const std::vector<std::pair<shape, std::vector<int>>> cases = {
      {{2, 3, 5, 7}, {0, 2, 3}}, {{2, 3, 5, 7}, {1}}, {{4, 17}, {0}}, {{4, 17}, {-1}}, {{1, 5, 1, 1}, {1, 3}}, {{3, 1, 9}, {0, 1, 2}}};
  for (const auto& [s, dims] : cases) {
    INFO("shape " << s.str());
    auto x = random(s, 5);
    const double k = static_cast<double>(s.numel());
    for (bool keep : {false, true}) {
      check([&](auto& tp, auto in) { return ops::sum(tp, in[0], dims, keep); }, {x}, k);
      check([&](auto& tp, auto in) { return ops::mean(tp, in[0], dims, keep); }, {x}, k);
      check([&](auto& tp, auto in) { return ops::norm(tp, in[0], 2, dims, keep); }, {x}, k);
      check([&](auto& tp, auto in) { return ops::norm(tp, in[0], 1, dims, keep); }, {x}, k);
      check([&](auto& tp, auto in) { return ops::var(tp, in[0], dims, false, keep); }, {x}, k);
      check([&](auto& tp, auto in) { return ops::var(tp, in[0], dims, true, keep); }, {x}, k);
    }
  }
  tape<double> tp(grad_mode::off);
  auto x = tensor<double>::from({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(ops::sum(tp, x, {0}).to_vector() == std::vector<double>{5, 7, 9});
  CHECK(ops::sum(tp, x, {1}, true).dims() == shape{2, 1});
  CHECK(ops::sum(tp, x).item() == 21);
  CHECK(ops::var(tp, x, {1}).to_vector() == std::vector<double>{1, 1});
  CHECK(ops::var(tp, x, {1}, false)[0] == Approx(2.0 / 3));
  CHECK_THROWS_WITH(ops::var(tp, tensor<double>::zeros({1, 3}), {0}), Catch::Contains("unbiased variance of 1 element"));
  CHECK_THROWS_WITH(ops::sum(tp, x, {2}), "sum: dimension 2 out of range for shape [2, 3]");
}

TEST_CASE("matmul in all transpose modes and linear with bias", "[ops][grad]") {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      auto a = random(ta ? shape{5, 3} : shape{3, 5}, 1), b = random(tb ? shape{7, 5} : shape{5, 7}, 2);
      check([&](auto& tp, auto in) { return ops::matmul(tp, in[0], in[1], ta, tb); }, {a, b}, 5);
    }
  check([](auto& tp, auto in) { return ops::linear(tp, in[0], in[1], in[2]); }, {random({1, 33}, 3), random({17, 33}, 4), random({17}, 5)}, 33);
  check([](auto& tp, auto in) { return ops::linear(tp, in[0], in[1]); }, {random({4, 3}, 3), random({2, 3}, 4)}, 3);
  tape<float> tp;
  CHECK_THROWS_WITH(ops::linear(tp, tensor<float>::zeros({2, 3}), tensor<float>::zeros({4, 5})),
                    "linear: input [2, 3] has 3 features but weight [4, 5] expects 5");
  CHECK_THROWS_AS(ops::matmul(tp, tensor<float>::zeros({2, 3}), tensor<float>::zeros({2, 3})), shape_error);
}

TEST_CASE("transpose, reshape, slice, concat, split, index_select", "[ops][grad]") {
  auto x = random({2, 3, 5, 7}, 9);
  check([](auto& tp, auto in) { return ops::transpose(tp, in[0], 1, 3); }, {x});
  check([](auto& tp, auto in) { return ops::transpose(tp, in[0]); }, {random({4, 17}, 1)});
  check([](auto& tp, auto in) { return ops::reshape(tp, in[0], shape{6, 35}); }, {x});
  check([](auto& tp, auto in) { return ops::slice(tp, in[0], 1, 1, 3); }, {x});
  check([](auto& tp, auto in) { return ops::concat(tp, {in[0], in[1], in[0]}, 1); }, {x, random({2, 1, 5, 7}, 3)});
  check([](auto& tp, auto in) { return ops::concat(tp, {in[0], in[1]}, 0); }, {random({1, 3}, 1), random({2, 3}, 2)});
  check([](auto& tp, auto in) { return ops::split(tp, in[0], {1, 2}, 1)[1]; }, {x});
  check([](auto& tp, auto in) { return ops::index_select(tp, in[0], 1, {2, 0, 2}); }, {x});
  tape<double> tp(grad_mode::off);
  auto m = tensor<double>::from({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(ops::transpose(tp, m).to_vector() == std::vector<double>{1, 4, 2, 5, 3, 6});
  CHECK(ops::index_select(tp, m, 1, {2, 0}).to_vector() == std::vector<double>{3, 1, 6, 4});
  CHECK(ops::concat(tp, {m, m}, 1).to_vector() == std::vector<double>{1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6});
  CHECK_THROWS_WITH(ops::slice(tp, m, 1, 2, 4), Catch::Contains("slice: range [2, 4) out of bounds"));
  CHECK_THROWS_WITH(ops::concat(tp, {m, tensor<double>::zeros({3, 3})}, 1), Catch::Contains("differ outside dimension 1"));
  CHECK_THROWS_AS(ops::index_select(tp, m, 0, {2}), shape_error);
  CHECK_THROWS_AS(ops::split(tp, m, {1, 1}, 1), shape_error);
}

TEST_CASE("conv2d op: gradcheck and float vs double on odd shapes", "[ops][grad]") {
  struct conv_case {
    shape x, w;
    int stride, padding;
  };
  for (const auto& c : {conv_case{{1, 3, 5, 5}, {5, 3, 3, 3}, 1, 1}, conv_case{{2, 3, 9, 9}, {4, 3, 7, 7}, 2, 3}, conv_case{{1, 5, 1, 1}, {3, 5, 1, 1}, 1, 0},
                        conv_case{{2, 4, 6, 6}, {3, 4, 3, 3}, 2, 0}, conv_case{{1, 2, 4, 4}, {2, 2, 3, 3}, 1, 2}}) {
    INFO("x " << c.x.str() << " w " << c.w.str() << " stride " << c.stride << " padding " << c.padding);
    auto f = [&](auto& tp, auto in) { return ops::conv2d(tp, in[0], in[1], c.stride, c.padding); };
    check(f, {random(c.x, 1), random(c.w, 2)}, static_cast<double>(c.w.numel() / c.w[0]));
  }
  tape<float> tp;
  CHECK_THROWS_WITH(ops::conv2d(tp, tensor<float>::zeros({1, 3, 8, 8}), tensor<float>::zeros({4, 5, 3, 3})),
                    "conv2d: input [1, 3, 8, 8] has 3 channels but weight [4, 5, 3, 3] expects 5");
  CHECK_THROWS_AS(ops::conv2d(tp, tensor<float>::zeros({1, 3, 2, 2}), tensor<float>::zeros({4, 3, 5, 5})), shape_error);
}
