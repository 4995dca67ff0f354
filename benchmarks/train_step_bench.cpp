// A dense training step of ResNet-18 (width 1, CIFAR stem, 32x32, batch 64): forward in training mode (batch
// statistics), a linear classifier with cross-entropy, backward to every parameter. No optimizer step.
// benchmarks/train_step_torch.py runs the same step in PyTorch (torchvision's resnet18 with the CIFAR stem);
// run the two in one sitting on an otherwise idle machine and compare (docs/benchmarks.md).
#include <sslgate/models/resnet.hpp>
#include <sslgate/ops/linalg.hpp>
#include <sslgate/ops/softmax.hpp>

#include <benchmark/benchmark.h>

using namespace sslgate;

namespace {

void bm_train_step(benchmark::State& state) {
  set_num_threads(int(state.range(0)));
  const int n = 64, classes = 10;
  rng init(5);
  resnet<float> net(resnet_config{18, stem_kind::cifar, 1.0}, init);
  auto fc_w = tensor<float>::normal({classes, net.feature_dim()}, init, 0.f, 0.01f).set_requires_grad();
  auto fc_b = tensor<float>::zeros({classes}).set_requires_grad();
  rng data(7);
  const auto x = tensor<float>::normal({n, 3, 32, 32}, data);
  std::vector<int> labels(n);
  for (int i = 0; i < n; ++i) labels[static_cast<std::size_t>(i)] = i % classes;
  auto step = [&] {
    tape<float> tp;
    forward_state<float> st;
    st.training = true;
    st.route = path::dense;
    const tensor<float> f = net.forward(tp, x, st);
    const tensor<float> loss = ops::cross_entropy(tp, ops::linear(tp, f, fc_w, fc_b), labels);
    tp.backward(loss);
    benchmark::DoNotOptimize(fc_w.grad().data());
  };
  step();  // warm the allocator and the kernels' scratch buffers
  for (auto _ : state) step();
  state.counters["img/s"] = benchmark::Counter(double(n) * double(state.iterations()), benchmark::Counter::kIsRate);
}

BENCHMARK(bm_train_step)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
