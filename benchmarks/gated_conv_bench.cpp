// The gated BasicBlock against the dense one at the ResNet-18 CIFAR block shapes (batch 64, float, 2 threads),
// and the whole ResNet-18 eval forward, dense path vs gated path at density 0.5 (batch 64 and batch 1).
// Gated runs force random per-sample masks of the given density (forward_state::forced_masks).
// Counters: GFLOP/s = 2 x executed MACs / time (the MACs the kernels report, FLOPs-model convention: direct
// convolution MACs of what runs, gates included); mac_ratio = executed / dense-block MACs.
// Block args: shape index (0..6), density x 100 (-1: the dense path), training (0: eval forward, no tape;
// 1: training forward + backward with the tape). The *_pair benchmarks run the dense and the gated eval forward
// side by side in every iteration and report their ratio. Results and how they were taken: docs/benchmarks.md.
#include <sslgate/core/parallel.hpp>
#include <sslgate/models/resnet.hpp>

#include <benchmark/benchmark.h>
#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace sslgate;

struct block_shape {
  int c_in, c_out, stride, hw;
};
constexpr block_shape shapes[] = {{64, 64, 1, 34},  {64, 128, 2, 34}, {128, 128, 1, 17}, {128, 256, 2, 17},
                                  {256, 256, 1, 9}, {256, 512, 2, 9}, {512, 512, 1, 5}};
constexpr int batch = 64;

tensor<float> random_mask(std::int64_t n, std::int64_t c, double d, std::uint64_t seed) {
  rng r(seed);
  tensor<float> m(shape{n, c});
  for (std::int64_t i = 0; i < m.numel(); ++i) m[i] = r.uniform_at(static_cast<std::uint64_t>(i)) < d ? 1.f : 0.f;
  return m;
}

// Running statistics away from (0, 1) so the folded BN is not an identity.
template <class BN>
void perturb(BN& bn, rng& r) {
  for (std::int64_t i = 0; i < bn.running_mean.numel(); ++i) {
    bn.running_mean[i] = 0.1f * (r.uniform() - 0.5f);
    bn.running_var[i] = 0.5f + r.uniform();
  }
}

// A block of shape index sh with perturbed BNs, its input, and a random mask of density d.
struct block_case {
  gated_basic_block<float> block;
  tensor<float> x, mask;
};
block_case make_block_case(int sh, double d) {
  const block_shape s = shapes[sh];
  rng init(1);
  block_case c{gated_basic_block<float>(s.c_in, s.c_out, s.stride, init), {}, {}};
  rng r(2);
  for (auto* bn : {&c.block.bn1_d, &c.block.bn2_d, &c.block.bn1_g, &c.block.bn2_g}) perturb(*bn, r);
  c.x = tensor<float>::normal({batch, s.c_in, s.hw, s.hw}, r);
  c.mask = random_mask(batch, s.c_out, d, 3);
  return c;
}

// An eval forward's state on route; the gated path takes the given masks.
forward_state<float> eval_state(path route, const std::vector<tensor<float>>& masks) {
  forward_state<float> st;
  st.training = false;
  st.route = route;
  if (route == path::gated) st.forced_masks = masks;
  return st;
}

template <class F>
double seconds(F f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Dense and gated eval forwards side by side in every iteration, the order alternating, so that both meet the
// same load of a shared machine: forward(tape, state) runs one (the gated one with masks). Each side runs twice
// and only its second run is timed, so that a timed call follows one of its own kind, as in the separate
// benchmarks and in a network of one path: right after a dense call, a gated one took 5-11% longer than right
// after a gated one (64@34 and 128@17, density 0.25), and 3-8% longer after a loop of FMAs alone as long as a
// dense call, while the dense calls did not depend on what ran before them. Iteration time: the timed runs';
// counter ratio: the median over the iterations of gated / dense time.
template <class Forward>
void run_pairs(benchmark::State& state, const std::vector<tensor<float>>& masks, Forward forward) {
  const auto run = [&](path route) {
    forward_state<float> st = eval_state(route, masks);
    tape<float> none(grad_mode::off);
    return seconds([&] { benchmark::DoNotOptimize(forward(none, st).data()); });
  };
  const auto settled = [&](path route) {
    run(route);
    return run(route);
  };
  std::vector<double> ratios;
  bool gated_first = false;
  for (auto _ : state) {
    const double first = settled(gated_first ? path::gated : path::dense), second = settled(gated_first ? path::dense : path::gated);
    ratios.push_back(gated_first ? first / second : second / first);
    state.SetIterationTime(first + second);
    gated_first = !gated_first;
  }
  const auto mid = ratios.begin() + std::ptrdiff_t(ratios.size() / 2);
  std::nth_element(ratios.begin(), mid, ratios.end());
  state.counters["ratio"] = *mid;
}

void bm_block(benchmark::State& state) {
  set_num_threads(2);
  const int sh = int(state.range(0));
  const bool dense = state.range(1) < 0, training = state.range(2) != 0;
  block_case c = make_block_case(sh, dense ? 1.0 : state.range(1) / 100.0);
  rng noise(4);
  std::int64_t macs = 0;
  auto run = [&] {
    forward_state<float> st;
    st.training = training;
    st.route = dense ? path::dense : path::gated;
    st.noise = &noise;
    if (!dense) st.forced_masks.push_back(c.mask);
    tape<float> tp(training ? grad_mode::on : grad_mode::off);
    const tensor<float> y = c.block.forward(tp, c.x, st);
    if (training) tp.backward(y, tensor<float>::full(y.dims(), 1e-3f));
    benchmark::DoNotOptimize(y.data());
    macs = st.executed_macs;
  };
  run();  // warm the scratch buffers
  for (auto _ : state) run();
  const block_shape s = shapes[sh];
  const int o = (s.hw + 2 - 3) / s.stride + 1;
  const double dense_macs = double(batch) * 9.0 * o * o * s.c_out * (s.c_in + s.c_out) +
                            (s.stride != 1 || s.c_in != s.c_out ? double(batch) * o * o * s.c_out * s.c_in : 0.0);
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(macs) * (training ? 3 : 1) * 1e-9 * double(state.iterations()),
                                                 benchmark::Counter::kIsRate);
  state.counters["mac_ratio"] = double(macs) / dense_macs;
}

// The eval block, dense and gated side by side. Args: shape index, density x 100.
void bm_block_pair(benchmark::State& state) {
  set_num_threads(2);
  block_case c = make_block_case(int(state.range(0)), state.range(1) / 100.0);
  run_pairs(state, {c.mask}, [&](tape<float>& tp, forward_state<float>& st) { return c.block.forward(tp, c.x, st); });
}

// Whole ResNet-18 (width 1, CIFAR stem, 32x32) with perturbed BNs, and random masks of density 0.5 for a batch of n.
resnet<float>& resnet18() {
  static std::unique_ptr<resnet<float>> net;
  if (!net) {
    rng init(5);
    net = std::make_unique<resnet<float>>(resnet_config{18, stem_kind::cifar, 1.0}, init);
    rng r(6);
    for (auto& b : net->blocks)
      for (auto* bn : {&b.bn1_d, &b.bn2_d, &b.bn1_g, &b.bn2_g}) perturb(*bn, r);
  }
  return *net;
}
std::vector<tensor<float>> half_masks(std::int64_t n) {
  std::vector<tensor<float>> masks;
  std::uint64_t seed = 100;
  for (auto& b : resnet18().blocks) masks.push_back(random_mask(n, b.c_out(), 0.5, seed++));
  return masks;
}

// Eval forward. Args: batch, gated (0/1).
void bm_resnet18(benchmark::State& state) {
  set_num_threads(2);
  const int n = int(state.range(0));
  const bool gated = state.range(1) != 0;
  resnet<float>& net = resnet18();
  rng data(7);
  const auto x = tensor<float>::normal({n, 3, 32, 32}, data);
  const std::vector<tensor<float>> masks = half_masks(n);
  std::int64_t macs = 0;
  auto run = [&] {
    forward_state<float> st = eval_state(gated ? path::gated : path::dense, masks);
    tape<float> none(grad_mode::off);
    const tensor<float> y = net.forward(none, x, st);
    benchmark::DoNotOptimize(y.data());
    macs = st.executed_macs;
  };
  run();
  for (auto _ : state) run();
  const auto flops = net.flops(32, 32);
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(macs) * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["mac_ratio"] = double(macs) / (double(flops.dense_macs) * n);
  state.counters["rho"] = gated ? flops.rho_value(masks) : 1.0;
}

// The eval forward, dense and gated side by side. Args: batch.
void bm_resnet18_pair(benchmark::State& state) {
  set_num_threads(2);
  const int n = int(state.range(0));
  resnet<float>& net = resnet18();
  rng data(7);
  const auto x = tensor<float>::normal({n, 3, 32, 32}, data);
  run_pairs(state, half_masks(n), [&](tape<float>& tp, forward_state<float>& st) { return net.forward(tp, x, st); });
}

// With --benchmark_repetitions: the fastest repetition, the least disturbed by other load on a shared machine.
double fastest(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

void block_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"shape", "density_pct", "train"});
  for (int train : {0, 1})
    for (int sh = 0; sh < 7; ++sh)
      for (int d : {-1, 100, 75, 50, 25, 10}) b->Args({sh, d, train});
  b->UseRealTime()->Unit(benchmark::kMillisecond)->ComputeStatistics("min", fastest);
}

BENCHMARK(bm_block)->Apply(block_args);
BENCHMARK(bm_block_pair)->ArgNames({"shape", "density_pct"})->ArgsProduct({{0, 1, 2, 3, 4, 5, 6}, {75, 50, 25}})->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(bm_resnet18)->ArgNames({"batch", "gated"})->Args({64, 0})->Args({64, 1})->Args({1, 0})->Args({1, 1})->UseRealTime()->Unit(benchmark::kMillisecond)->ComputeStatistics("min", fastest);
BENCHMARK(bm_resnet18_pair)->ArgNames({"batch"})->Arg(64)->Arg(1)->UseManualTime()->Unit(benchmark::kMillisecond);

const int context = [] {
  benchmark::AddCustomContext("simd", std::string(xsimd::default_arch::name()) + " (" + std::to_string(xsimd::batch<float>::size) +
                                          " float lanes)");
  benchmark::AddCustomContext("threads", "2 (sslgate::set_num_threads)");
  benchmark::AddCustomContext("block shapes", "0: 64->64@34 s1, 1: 64->128 s2 34->17, 2: 128->128@17, 3: 128->256 s2 17->9, "
                                              "4: 256->256@9, 5: 256->512 s2 9->5, 6: 512->512@5");
  return 0;
}();

}  // namespace
