// GPU benchmarks of the gated block (METHOD.md §1.2) at the ResNet-18 block shapes, batch 256, eval mode:
//   gated_block/<net>/<C>x<H>/d<density>   conv1 on open output channels only (BN1 folded, ReLU fused), conv2
//                                           reducing over them, then BN2 + identity + ReLU; random masks of
//                                           density d (the lists are built on the device inside the timing)
//   dense_block_ours/..., dense_block_cudnn/...   the same block with dense convs (ours / cuDNN), BN1 + ReLU unfused
//   conv3x3_ours/..., conv3x3_cudnn/...    one dense 3x3 stride-1 convolution (the 70%-of-cuDNN criterion)
// And the whole network through the tape ops (ResNet-18 width 1, CIFAR stem, projector 2048, batch 256):
//   network/dual_step        one VICReg-Dual step: gated view 1 + dense view 2, loss, backward, LARS
//   network/eval_dense, network/eval_gated   the backbone's eval forward on each path (counter: density)
// Full float32 everywhere (cuDNN with FMA math, no TF32), timed with a device synchronize per iteration
// (UseManualTime). Counters: GFLOPS of executed MACs (x2), and for gated blocks the fraction of conv FLOPs skipped.
// Host-compiled (.cpp): the kernels live in sslgate::cuda, so this file needs no nvcc.
#include <sslgate/core/cuda/ops.hpp>
#include <sslgate/core/cuda/runtime.hpp>
#include <sslgate/losses/vicreg.hpp>
#include <sslgate/optim/lars.hpp>
#include <sslgate/train/dual_step.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

using namespace sslgate;
using ftensor = tensor<float>;

namespace {

constexpr int batch = 256;
const device gpu = cuda::gpu(0);

struct block_shape {
  const char* net;
  int c, h;
};
const block_shape shapes[] = {{"cifar", 64, 32}, {"cifar", 128, 16}, {"cifar", 256, 8}, {"cifar", 512, 4},
                              {"imagenet", 64, 56}, {"imagenet", 128, 28}, {"imagenet", 256, 14}, {"imagenet", 512, 7}};
const double densities[] = {1.0, 0.75, 0.5, 0.25, 0.1};

// Uniform in [lo, hi), drawn on the device (Philox stream `seed`): a 51M-value input costs no host time.
ftensor rand_t(const shape& s, std::uint64_t seed, float lo, float hi) {
  ftensor t(s, gpu);
  cuda::philox_uniform(t.data(), t.numel(), seed, 0, 0);
  cuda::unary_forward(cuda::unary_op::scale, t.data(), t.data(), t.numel(), hi - lo);
  const ftensor offset = ftensor::full({}, lo, gpu);
  cuda::binary_forward(cuda::binary_op::add, t.data(), s, t.data(), s, offset.data(), offset.dims());
  return t;
}

// Everything one block needs on the device.
struct block_data {
  int c, h;
  ftensor x, w1, w2, h1, o, y, scale1, shift1, scale2, shift2, mask, ones, zeros;
  tensor<double> mean, invstd;
  double density = 1;
  block_data(int c_, int h_, double d) : c(c_), h(h_), density(d) {
    x = rand_t({batch, c, h, h}, 1, 0.f, 1.f);
    w1 = rand_t({c, c, 3, 3}, 2, -0.05f, 0.05f);
    w2 = rand_t({c, c, 3, 3}, 3, -0.05f, 0.05f);
    h1 = ftensor({batch, c, h, h}, gpu);
    o = ftensor({batch, c, h, h}, gpu);
    y = ftensor({batch, c, h, h}, gpu);
    scale1 = rand_t({c}, 4, 0.5f, 1.5f);
    shift1 = rand_t({c}, 5, -0.1f, 0.1f);
    scale2 = rand_t({c}, 6, 0.5f, 1.5f);
    shift2 = rand_t({c}, 7, -0.1f, 0.1f);
    ones = ftensor::full({c}, 1.f, gpu);
    zeros = ftensor::zeros({c}, gpu);
    mean = tensor<double>({c}, gpu);
    invstd = tensor<double>({c}, gpu);
    ftensor m({batch, c});
    rng r(8);
    for (std::int64_t i = 0; i < m.numel(); ++i) m[i] = r.uniform_at(static_cast<std::uint64_t>(i)) < d ? 1.f : 0.f;
    mask = m.to(gpu);
  }
  cuda::conv_geom geom() const { return {batch, c, h, h, c, 3, 3, 1, 1}; }
  cuda::bn_dims bn() const { return {batch, c, static_cast<std::int64_t>(h) * h}; }
  // BN2 (eval, running stats = shift2/scale2 as stand-ins), + identity, ReLU: the tail every variant shares.
  void tail() {
    cuda::batchnorm_forward(y.data(), mean.data(), invstd.data(), o.data(), scale2.data(), shift2.data(), zeros.data(), ones.data(), false, 0.1,
                            1e-5, bn());
    cuda::binary_forward(cuda::binary_op::add, y.data(), y.dims(), y.data(), y.dims(), x.data(), x.dims());
    cuda::unary_forward(cuda::unary_op::relu, y.data(), y.data(), y.numel());
  }
  void gated() {
    const cuda::active_lists a(mask.data(), batch, c);
    cuda::conv2d_gated_output_forward(h1.data(), x.data(), w1.data(), scale1.data(), shift1.data(), geom(), a);
    cuda::conv2d_gated_input_forward(o.data(), h1.data(), w2.data(), geom(), a);
    tail();
  }
  template <bool Cudnn>
  void dense() {
    if constexpr (Cudnn) cuda::cudnn::conv2d_forward(h1.data(), x.data(), w1.data(), geom());
    else cuda::conv2d_forward(h1.data(), x.data(), w1.data(), geom());
    cuda::batchnorm_forward(h1.data(), mean.data(), invstd.data(), h1.data(), scale1.data(), shift1.data(), zeros.data(), ones.data(), false,
                            0.1, 1e-5, bn());
    cuda::unary_forward(cuda::unary_op::relu, h1.data(), h1.data(), h1.numel());
    if constexpr (Cudnn) cuda::cudnn::conv2d_forward(o.data(), h1.data(), w2.data(), geom());
    else cuda::conv2d_forward(o.data(), h1.data(), w2.data(), geom());
    tail();
  }
  double dense_macs() const { return 2.0 * batch * c * static_cast<double>(c) * 9 * h * h; }
  double gated_macs() const {
    const auto m = mask.to_vector();
    double open = 0;
    for (float v : m) open += v;
    return 2.0 * open * c * 9 * h * h;  // conv1: open outputs x C inputs; conv2: C outputs x open inputs
  }
};

template <class F>
void timed(benchmark::State& state, F&& f) {
  f();  // warm-up: algorithm choice, allocator cache
  cuda::synchronize();
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    cuda::synchronize();
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
}

void counters(benchmark::State& state, double macs, double skipped = -1) {
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * macs, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  if (skipped >= 0) state.counters["skipped"] = skipped;
}

// The network cases: one ResNet-18 on the device, two random views.
struct network_data {
  std::unique_ptr<ssl_network<float>> net;
  ftensor x1 = rand_t({batch, 3, 32, 32}, 11, -1.f, 1.f), x2 = rand_t({batch, 3, 32, 32}, 12, -1.f, 1.f);
  network_data() {
    rng init(13);
    net = std::make_unique<ssl_network<float>>(ssl_network_config{{18, stem_kind::cifar, 1.0}, 2048, 2048}, init);
    move_to(*net, gpu);
  }
  // Eval forward of the backbone on one path; returns the executed MACs.
  std::int64_t eval(path route) {
    tape<float> none(grad_mode::off);
    forward_state<float> st;
    st.training = false;
    st.route = route;
    net->backbone.forward(none, x1, st);
    return st.executed_macs;
  }
};

void register_network() {
  benchmark::RegisterBenchmark("network/dual_step", [](benchmark::State& st) {
    network_data d;
    optim::lars<float> opt(optim::split_groups(d.net->non_gate_parameters(), d.net->gate_parameters()), {});
    rng noise(14);
    train::gating_objective gating;
    gating.set_target(0.5);
    double rho = 0;
    timed(st, [&] {
      tape<float> tp;
      const auto out = train::ssl_step(tp, *d.net, d.x1, d.x2, losses::vicreg{}, gating, 0.5, train::objective_mode::dual, &noise);
      tp.backward(out.objective.total);
      opt.step();
      rho = out.rho;
    });
    st.counters["rho"] = rho;
  })->UseManualTime()->Unit(benchmark::kMillisecond);
  for (path route : {path::dense, path::gated})
    benchmark::RegisterBenchmark(route == path::dense ? "network/eval_dense" : "network/eval_gated", [route](benchmark::State& st) {
      network_data d;
      std::int64_t macs = 0;
      timed(st, [&] { macs = d.eval(route); });
      st.counters["density"] = static_cast<double>(macs) / static_cast<double>(d.eval(path::dense));
      counters(st, static_cast<double>(macs));
    })->UseManualTime()->Unit(benchmark::kMillisecond);
}

void register_all() {
  for (const auto& s : shapes) {
    const std::string tag = std::string(s.net) + "/" + std::to_string(s.c) + "x" + std::to_string(s.h);
    for (double d : densities) {
      benchmark::RegisterBenchmark(("gated_block/" + tag + "/d" + std::to_string(d).substr(0, 4)).c_str(), [s, d](benchmark::State& st) {
        block_data b(s.c, s.h, d);
        timed(st, [&] { b.gated(); });
        const double g = b.gated_macs();
        counters(st, g, 1.0 - g / b.dense_macs());
      })->UseManualTime()->Unit(benchmark::kMillisecond);
    }
    benchmark::RegisterBenchmark(("dense_block_ours/" + tag).c_str(), [s](benchmark::State& st) {
      block_data b(s.c, s.h, 1.0);
      timed(st, [&] { b.dense<false>(); });
      counters(st, b.dense_macs());
    })->UseManualTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("dense_block_cudnn/" + tag).c_str(), [s](benchmark::State& st) {
      block_data b(s.c, s.h, 1.0);
      timed(st, [&] { b.dense<true>(); });
      counters(st, b.dense_macs());
    })->UseManualTime()->Unit(benchmark::kMillisecond);
    for (int cudnn = 0; cudnn < 2; ++cudnn)
      benchmark::RegisterBenchmark(((cudnn ? "conv3x3_cudnn/" : "conv3x3_ours/") + tag).c_str(), [s, cudnn](benchmark::State& st) {
        block_data b(s.c, s.h, 1.0);
        timed(st, [&] {
          if (cudnn) cuda::cudnn::conv2d_forward(b.o.data(), b.x.data(), b.w1.data(), b.geom());
          else cuda::conv2d_forward(b.o.data(), b.x.data(), b.w1.data(), b.geom());
        });
        counters(st, b.dense_macs() / 2);
      })->UseManualTime()->Unit(benchmark::kMillisecond);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (cuda::device_count() == 0) {
    std::puts("gated_conv_gpu_bench: no CUDA device");
    return 77;
  }
  benchmark::AddCustomContext("gpu", cuda::device_name(0));
  benchmark::AddCustomContext("cudnn", std::to_string(cuda::cudnn::version()));
  benchmark::AddCustomContext("batch", std::to_string(batch));
  register_all();
  register_network();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
