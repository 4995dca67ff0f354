// CPU conv2d kernels against the scalar reference: every fast path (Winograd F(4,3) and F(3,3), direct, im2col)
// in double and float, over odd shapes, plus the add-into contract of the backward kernels and
// bitwise repeatability.
#include <sslgate/ops/cpu/conv2d.hpp>

#include <catch2/catch.hpp>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace {

using sslgate::ops::cpu::conv2d_params;
namespace cpu = sslgate::ops::cpu;

struct shape_case {
  int n, c_in, h, w, c_out, kh, kw, sh, sw, ph, pw;
  conv2d_params params() const { return {n, c_in, h, w, c_out, kh, kw, sh, sw, ph, pw}; }
};

// Odd channel counts, 1x1 maps, every padding 0..3, strides 1/2, kernels 1/3/5/7.
const std::vector<shape_case> shapes = {
    {1, 3, 5, 7, 1, 3, 3, 1, 1, 1, 1},      {2, 5, 9, 9, 7, 3, 3, 1, 1, 0, 0},
    {1, 17, 7, 5, 33, 3, 3, 1, 1, 2, 2},    {1, 3, 1, 1, 7, 3, 3, 1, 1, 1, 1},
    {2, 5, 32, 32, 7, 3, 3, 1, 1, 1, 1},    {1, 17, 9, 9, 33, 3, 3, 2, 2, 1, 1},
    {2, 3, 32, 32, 5, 7, 7, 2, 2, 3, 3},    {1, 5, 7, 9, 7, 1, 1, 1, 1, 0, 0},
    {1, 17, 9, 7, 7, 1, 1, 2, 2, 0, 0},     {1, 3, 9, 9, 5, 5, 5, 1, 1, 2, 2},
    {1, 5, 5, 5, 7, 3, 3, 1, 1, 3, 3},      {1, 7, 8, 8, 33, 5, 5, 2, 2, 2, 2},
    {1, 33, 16, 16, 17, 3, 3, 1, 1, 1, 1},  {1, 5, 9, 11, 7, 3, 5, 1, 2, 1, 2},
    {1, 3, 1, 1, 5, 1, 1, 1, 1, 0, 0},      {2, 16, 32, 32, 32, 3, 3, 2, 2, 1, 1},
    {1, 5, 7, 7, 1, 7, 7, 1, 1, 3, 3},      {1, 3, 2, 2, 7, 3, 3, 2, 2, 3, 3},
    {5, 17, 4, 4, 33, 3, 3, 2, 2, 1, 1},    {5, 33, 3, 3, 17, 1, 1, 1, 1, 0, 0},  // image groups
    {2, 40, 17, 17, 72, 1, 1, 2, 2, 0, 0},  {1, 5, 8, 8, 7, 1, 1, 1, 1, 0, 0},    // 1x1 as a plain GEMM: strided,
    {1, 6, 12, 11, 9, 1, 1, 1, 1, 0, 0},                                          // in place, padded lanes
};

template <class T>
std::vector<T> random_vec(std::size_t count, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> d(-1, 1);
  std::vector<T> v(count);
  for (auto& e : v) e = T(d(gen));
  return v;
}

struct sizes {
  std::size_t x, w, y;
};
sizes sizes_of(const conv2d_params& p) {
  return {std::size_t(p.n) * p.c_in * p.h * p.w, std::size_t(p.c_out) * p.c_in * p.kh * p.kw,
          std::size_t(p.n) * p.c_out * p.out_h() * p.out_w()};
}

// Results of the three kernels (backward ones added into a zeroed buffer).
template <class T>
struct results {
  std::vector<T> y, dx, dw;
};
template <class T>
results<T> run_fast(const conv2d_params& p, const std::vector<T>& x, const std::vector<T>& w,
                    const std::vector<T>& dy) {
  const auto s = sizes_of(p);
  results<T> r{std::vector<T>(s.y, T(123)), std::vector<T>(s.x, T(0)), std::vector<T>(s.w, T(0))};
  cpu::conv2d_forward(r.y.data(), x.data(), w.data(), p);
  cpu::conv2d_backward_data(r.dx.data(), dy.data(), w.data(), p);
  cpu::conv2d_backward_weight(r.dw.data(), dy.data(), x.data(), p);
  return r;
}
results<double> run_reference(const conv2d_params& p, const std::vector<double>& x, const std::vector<double>& w,
                              const std::vector<double>& dy) {
  const auto s = sizes_of(p);
  results<double> r{std::vector<double>(s.y), std::vector<double>(s.x, 0.0), std::vector<double>(s.w, 0.0)};
  cpu::conv2d_forward_reference(r.y.data(), x.data(), w.data(), p);
  cpu::conv2d_backward_data_reference(r.dx.data(), dy.data(), w.data(), p);
  cpu::conv2d_backward_weight_reference(r.dw.data(), dy.data(), x.data(), p);
  return r;
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double e : v) m = std::max(m, std::abs(e));
  return m;
}

void check_double(const std::vector<double>& got, const std::vector<double>& want, const char* what) {
  REQUIRE(got.size() == want.size());
  double err = 0;
  for (std::size_t i = 0; i < got.size(); ++i) err = std::max(err, std::abs(got[i] - want[i]));
  INFO(what << ": max abs err " << err << " vs max |ref| " << max_abs(want));
  CHECK(err <= 1e-10 * std::max(1.0, max_abs(want)));
}

// NMSE <= 1e-7 and every element within rtol * sqrt(k) of the reference scale (k: reduction length).
void check_float(const std::vector<float>& got, const std::vector<double>& want, double k, const char* what) {
  REQUIRE(got.size() == want.size());
  long double num = 0, den = 0;
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const long double d = (long double)got[i] - want[i];
    num += d * d;
    den += (long double)want[i] * want[i];
  }
  const double rms = std::sqrt(double(den / std::max<std::size_t>(1, want.size())));
  // 5e-6: float rounding of a k-term sum plus the Winograd transforms' growth (entries up to 8).
  const double tol = 5e-6 * std::sqrt(std::max(k, 1.0));
  std::size_t bad = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double e = std::abs(got[i] - want[i]) / (rms + std::abs(want[i]));
    worst = std::max(worst, e);
    if (!(e <= tol)) ++bad;
  }
  const double nmse = den == 0 ? double(num) : double(num / den);
  INFO(what << ": nmse " << nmse << ", worst scaled err " << worst << " (tol " << tol << ")");
  CHECK(nmse <= 1e-7);
  CHECK(bad == 0);
}

std::string describe(const shape_case& c) {
  return "n=" + std::to_string(c.n) + " c_in=" + std::to_string(c.c_in) + " " + std::to_string(c.h) + "x" +
         std::to_string(c.w) + " c_out=" + std::to_string(c.c_out) + " k=" + std::to_string(c.kh) + "x" +
         std::to_string(c.kw) + " s=" + std::to_string(c.sh) + "," + std::to_string(c.sw) +
         " p=" + std::to_string(c.ph) + "," + std::to_string(c.pw);
}

}  // namespace

TEST_CASE("conv2d kernels match the reference in double", "[conv2d]") {
  for (const auto& c : shapes) {
    INFO(describe(c));
    const auto p = c.params();
    const auto s = sizes_of(p);
    const auto x = random_vec<double>(s.x, 1), w = random_vec<double>(s.w, 2), dy = random_vec<double>(s.y, 3);
    const auto got = run_fast(p, x, w, dy);
    const auto want = run_reference(p, x, w, dy);
    check_double(got.y, want.y, "forward");
    check_double(got.dx, want.dx, "backward_data");
    check_double(got.dw, want.dw, "backward_weight");
  }
}

TEST_CASE("conv2d float kernels match the double reference", "[conv2d]") {
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    for (const auto& c : shapes) {
      INFO(describe(c) << " threads=" << threads);
      const auto p = c.params();
      const auto s = sizes_of(p);
      const auto xf = random_vec<float>(s.x, 4), wf = random_vec<float>(s.w, 5), dyf = random_vec<float>(s.y, 6);
      const std::vector<double> xd(xf.begin(), xf.end()), wd(wf.begin(), wf.end()), dyd(dyf.begin(), dyf.end());
      const auto got = run_fast(p, xf, wf, dyf);
      const auto want = run_reference(p, xd, wd, dyd);
      check_float(got.y, want.y, double(p.c_in) * p.kh * p.kw, "forward");
      check_float(got.dx, want.dx, double(p.c_out) * p.kh * p.kw, "backward_data");
      check_float(got.dw, want.dw, double(p.n) * p.out_h() * p.out_w(), "backward_weight");
    }
  }
  omp_set_num_threads(saved);
}

TEST_CASE("conv2d float kernels on wide layers (shared-chunk and per-thread Winograd paths)", "[conv2d]") {
  // 192x176 channels (transform-domain filter bank > 4 MB) take the shared-chunk paths with 2 threads,
  // the others the per-thread ones (several chunks per thread at 32x32).
  const std::vector<shape_case> wide = {{3, 128, 4, 4, 128, 3, 3, 1, 1, 1, 1},
                                        {2, 192, 4, 4, 176, 3, 3, 1, 1, 1, 1},
                                        {2, 96, 8, 8, 160, 3, 3, 1, 1, 1, 1},
                                        {2, 16, 32, 32, 48, 3, 3, 1, 1, 1, 1},
                                        // Winograd (>= 32 channels) on odd shapes, paddings 0..3, 1x1 maps
                                        {1, 33, 7, 5, 35, 3, 3, 1, 1, 2, 2},
                                        {2, 37, 9, 9, 33, 3, 3, 1, 1, 0, 0},
                                        {1, 32, 1, 1, 40, 3, 3, 1, 1, 1, 1},
                                        {1, 33, 5, 5, 47, 3, 3, 1, 1, 3, 3},
                                        {3, 32, 34, 34, 32, 3, 3, 1, 1, 1, 1},
                                        {2, 64, 8, 8, 96, 3, 3, 2, 2, 1, 1},
                                        // F(3,3) (9x9, 6x6 and 5x5 maps): per-thread chunks, panel mode
                                        {2, 40, 9, 9, 48, 3, 3, 1, 1, 1, 1},
                                        {3, 24, 6, 6, 20, 3, 3, 1, 1, 1, 1},
                                        {2, 256, 5, 5, 256, 3, 3, 1, 1, 1, 1}};
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    for (const auto& c : wide) {
      INFO(describe(c) << " threads=" << threads);
      const auto p = c.params();
      const auto s = sizes_of(p);
      const auto xf = random_vec<float>(s.x, 7), wf = random_vec<float>(s.w, 8), dyf = random_vec<float>(s.y, 9);
      const std::vector<double> xd(xf.begin(), xf.end()), wd(wf.begin(), wf.end()), dyd(dyf.begin(), dyf.end());
      const auto got = run_fast(p, xf, wf, dyf);
      const auto want = run_reference(p, xd, wd, dyd);
      check_float(got.y, want.y, double(p.c_in) * p.kh * p.kw, "forward");
      check_float(got.dx, want.dx, double(p.c_out) * p.kh * p.kw, "backward_data");
      check_float(got.dw, want.dw, double(p.n) * p.out_h() * p.out_w(), "backward_weight");
    }
  }
  omp_set_num_threads(saved);
}

TEST_CASE("conv2d backward kernels add into their output", "[conv2d]") {
  for (const shape_case& c : {shapes[2], shapes[5], shapes[6], shapes[12]}) {
    INFO(describe(c));
    const auto p = c.params();
    const auto s = sizes_of(p);
    for (bool is_float : {false, true}) {
      INFO((is_float ? "float" : "double"));
      const auto x = random_vec<double>(s.x, 10), w = random_vec<double>(s.w, 11), dy = random_vec<double>(s.y, 12);
      std::vector<double> gdx(s.x, 0.0), gdw(s.w, 0.0);
      cpu::conv2d_backward_data_reference(gdx.data(), dy.data(), w.data(), p);
      cpu::conv2d_backward_weight_reference(gdw.data(), dy.data(), x.data(), p);
      const auto pat_x = random_vec<double>(s.x, 13), pat_w = random_vec<double>(s.w, 14);
      auto check = [&](const auto& dx, const auto& dw) {
        for (std::size_t i = 0; i < s.x; ++i) REQUIRE(std::abs(double(dx[i]) - (pat_x[i] + gdx[i])) <= 1e-3);
        for (std::size_t i = 0; i < s.w; ++i) REQUIRE(std::abs(double(dw[i]) - (pat_w[i] + gdw[i])) <= 1e-3);
      };
      if (is_float) {
        std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end()), dyf(dy.begin(), dy.end());
        std::vector<float> dx(pat_x.begin(), pat_x.end()), dw(pat_w.begin(), pat_w.end());
        cpu::conv2d_backward_data(dx.data(), dyf.data(), wf.data(), p);
        cpu::conv2d_backward_weight(dw.data(), dyf.data(), xf.data(), p);
        check(dx, dw);
      } else {
        std::vector<double> dx = pat_x, dw = pat_w;
        cpu::conv2d_backward_data(dx.data(), dy.data(), w.data(), p);
        cpu::conv2d_backward_weight(dw.data(), dy.data(), x.data(), p);
        check(dx, dw);
      }
    }
  }
}

TEST_CASE("conv2d kernels are bitwise repeatable", "[conv2d]") {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(2);
  for (const shape_case& c : {shapes[4], shapes[6], shapes[15], shape_case{3, 128, 4, 4, 128, 3, 3, 1, 1, 1, 1}}) {
    INFO(describe(c));
    const auto p = c.params();
    const auto s = sizes_of(p);
    const auto x = random_vec<float>(s.x, 15), w = random_vec<float>(s.w, 16), dy = random_vec<float>(s.y, 17);
    const auto a = run_fast(p, x, w, dy);
    const auto b = run_fast(p, x, w, dy);
    CHECK(a.y == b.y);
    CHECK(a.dx == b.dx);
    CHECK(a.dw == b.dw);
  }
  omp_set_num_threads(saved);
}

TEST_CASE("conv2d_params validation", "[conv2d]") {
  conv2d_params ok{1, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1};
  CHECK_NOTHROW(ok.validate());
  CHECK(ok.out_h() == 8);
  CHECK(conv2d_params{1, 3, 8, 8, 4, 3, 3, 2, 2, 1, 1}.out_w() == 4);
  auto bad = ok;
  bad.c_in = 0;
  CHECK_THROWS_AS(bad.validate(), sslgate::value_error);
  bad = ok;
  bad.stride_h = 0;
  CHECK_THROWS_AS(bad.validate(), sslgate::value_error);
  bad = ok;
  bad.pad_w = -1;
  CHECK_THROWS_AS(bad.validate(), sslgate::value_error);
  bad = conv2d_params{1, 3, 2, 2, 4, 5, 5, 1, 1, 0, 0};  // kernel larger than the input
  CHECK_THROWS_AS(bad.validate(), sslgate::value_error);
  std::vector<float> y(1), x(1), w(1);
  CHECK_THROWS_AS(cpu::conv2d_forward(y.data(), x.data(), w.data(), bad), sslgate::value_error);
}
