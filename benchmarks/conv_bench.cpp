// conv2d CPU kernels at the ResNet-18 CIFAR shapes (batch 64, 3x3, float): forward, and
// forward + backward_data + backward_weight. Args: c_in, c_out, spatial size, stride, threads.
// PyTorch reference numbers and how they were taken: docs/benchmarks.md.
#include <sslgate/ops/cpu/conv2d.hpp>

#include <benchmark/benchmark.h>
#include <omp.h>
#include <xsimd/xsimd.hpp>

#include <random>
#include <string>
#include <vector>

namespace {

namespace cpu = sslgate::ops::cpu;

struct conv_setup {
  cpu::conv2d_params p;
  std::vector<float> x, w, y, dy, dx, dw;
  double flops;  // 2 * MACs of one conv
  explicit conv_setup(const benchmark::State& state) {
    const int c_in = int(state.range(0)), c_out = int(state.range(1)), hw = int(state.range(2)),
              s = int(state.range(3));
    p = cpu::conv2d_params{64, c_in, hw, hw, c_out, 3, 3, s, s, 1, 1};
    std::mt19937 gen(0);
    std::normal_distribution<float> d;
    auto fill = [&](std::vector<float>& v, std::size_t n) {
      v.resize(n);
      for (auto& e : v) e = d(gen);
    };
    const std::size_t ny = std::size_t(p.n) * c_out * p.out_h() * p.out_w();
    fill(x, std::size_t(p.n) * c_in * hw * hw);
    fill(w, std::size_t(c_out) * c_in * 9);
    fill(dy, ny);
    y.resize(ny);
    dx.assign(x.size(), 0.f);
    dw.assign(w.size(), 0.f);
    flops = 2.0 * p.n * c_out * c_in * 9.0 * p.out_h() * p.out_w();
  }
};

void bm_conv2d_forward(benchmark::State& state) {
  omp_set_num_threads(int(state.range(4)));
  conv_setup c(state);
  cpu::conv2d_forward(c.y.data(), c.x.data(), c.w.data(), c.p);  // warm the scratch buffers
  for (auto _ : state) {
    cpu::conv2d_forward(c.y.data(), c.x.data(), c.w.data(), c.p);
    benchmark::DoNotOptimize(c.y.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(c.flops * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}

void bm_conv2d_forward_backward(benchmark::State& state) {
  omp_set_num_threads(int(state.range(4)));
  conv_setup c(state);
  for (auto _ : state) {
    cpu::conv2d_forward(c.y.data(), c.x.data(), c.w.data(), c.p);
    // The tape zeroes gradients once per step; the kernels add.
    cpu::conv2d_backward_data(c.dx.data(), c.dy.data(), c.w.data(), c.p);
    cpu::conv2d_backward_weight(c.dw.data(), c.dy.data(), c.x.data(), c.p);
    benchmark::DoNotOptimize(c.dx.data());
    benchmark::DoNotOptimize(c.dw.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(3 * c.flops * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"cin", "cout", "hw", "stride", "threads"});
  for (int threads : {1, 2}) {
    b->Args({64, 64, 32, 1, threads});
    b->Args({128, 128, 16, 1, threads});
    b->Args({256, 256, 8, 1, threads});
    b->Args({512, 512, 4, 1, threads});
    b->Args({64, 128, 32, 2, threads});
  }
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK(bm_conv2d_forward)->Apply(shapes);
BENCHMARK(bm_conv2d_forward_backward)->Apply(shapes);

const int simd_context = [] {
  benchmark::AddCustomContext("simd", std::string(xsimd::default_arch::name()) + " (" +
                                          std::to_string(xsimd::batch<float>::size) + " float lanes)");
  return 0;
}();

}  // namespace
