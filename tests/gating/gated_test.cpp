#include <sslgate/models/resnet.hpp>

#include "../test_util.hpp"

#include <atomic>
#include <chrono>
#include <numbers>
#include <set>
#include <thread>

using namespace sslgate;
using testing::random;

namespace {

// A random 0/1 mask [n, c] with each entry open with probability d (exactly all or none at 1 and 0).
tensor<double> random_mask(std::int64_t n, std::int64_t c, double d, std::uint64_t seed) {
  rng r(seed);
  tensor<double> m(shape{n, c});
  for (std::int64_t i = 0; i < m.numel(); ++i) m[i] = r.uniform_at(static_cast<std::uint64_t>(i)) < d ? 1.0 : 0.0;
  return m;
}

// Noise u that makes the training gate produce exactly `mask` for these logits: l + g = ±0.5.
tensor<double> noise_for(const tensor<double>& logits, const tensor<double>& mask) {
  tensor<double> u = tensor<double>::empty_like(logits);
  for (std::int64_t i = 0; i < u.numel(); ++i) {
    const double g = (mask[i] != 0 ? 0.5 : -0.5) - logits[i];
    u[i] = 1.0 / (1.0 + std::exp(-g));  // logistic noise is logit(u)
  }
  return u;
}

struct block_run {
  tensor<double> y;
  std::vector<named_tensor<double>> grads, buffers;
  tensor<double> dx;
  std::int64_t macs;
};

block_run run_block(int c_in, int c_out, int stride, const tensor<double>& x0, const tensor<double>& mask, bool fused, bool training) {
  rng init(7);  // the same seed builds the same weights for every run
  gated_basic_block<double> block(c_in, c_out, stride, init);
  forward_state<double> st;
  st.training = training;
  st.route = path::gated;
  st.fused = fused;
  st.skip_always = true;  // the skipping kernels even on shapes where the block would pick the dense one
  tensor<double> x = x0.clone();
  x.set_requires_grad();
  if (training) {
    tape<double> probe(grad_mode::off);
    rng init2(7);
    gated_basic_block<double> twin(c_in, c_out, stride, init2);
    auto g = twin.gate.forward(probe, x0, true, st.tau, nullptr, tensor<double>::full({x0.dim(0), c_out}, 0.5));
    st.given_noise.push_back(noise_for(g.logits, mask));
  } else {
    st.forced_masks.push_back(mask);
  }
  tape<double> tp(training ? grad_mode::on : grad_mode::off);
  block_run out;
  out.y = block.forward(tp, x, st);
  REQUIRE(st.gates[0].mask.to_vector() == mask.to_vector());
  if (training) {
    tp.backward(out.y, random(out.y.dims(), 99));
    out.dx = x.grad();
    for (auto& [name, p] : params_of(block)) out.grads.push_back({name, p.grad().empty() ? tensor<double>::zeros_like(p) : p.grad()});
  }
  out.buffers = buffers_of(block);
  out.macs = st.executed_macs;
  return out;
}

void require_close(const tensor<double>& a, const tensor<double>& b, const std::string& what) {
  INFO(what);
  REQUIRE(a.dims() == b.dims());
  double num = 0, den = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  CHECK(num <= 1e-24 * std::max(den, 1.0));  // NMSE 1e-24: the same sums up to reordering
}

}  // namespace

TEST_CASE("fused gated block equals dense-conv-times-mask, forward and every gradient", "[gating]") {
  struct geometry {
    int c_in, c_out, stride, hw;
  };
  for (const auto& g : {geometry{8, 8, 1, 6}, geometry{12, 20, 2, 7}, geometry{20, 20, 1, 5}}) {
    for (double d : {0.0, 0.1, 0.5, 0.9, 1.0}) {
      for (bool training : {true, false}) {
        INFO("c_in " << g.c_in << " c_out " << g.c_out << " density " << d << (training ? " train" : " eval"));
        const auto x = random({3, g.c_in, g.hw, g.hw}, 11);
        const auto mask = random_mask(3, g.c_out, d, 5);
        const auto fused = run_block(g.c_in, g.c_out, g.stride, x, mask, true, training);
        const auto oracle = run_block(g.c_in, g.c_out, g.stride, x, mask, false, training);
        require_close(fused.y, oracle.y, "y");
        if (training) {
          require_close(fused.dx, oracle.dx, "dx");
          for (std::size_t i = 0; i < fused.grads.size(); ++i) require_close(fused.grads[i].value, oracle.grads[i].value, fused.grads[i].name);
        }
        for (std::size_t i = 0; i < fused.buffers.size(); ++i) require_close(fused.buffers[i].value, oracle.buffers[i].value, fused.buffers[i].name);
        // Closed channels are never computed: fused runs execute fewer MACs unless every channel is open.
        if (d < 1.0 && mask.to_vector() != std::vector<double>(mask.numel(), 1.0)) CHECK(fused.macs < oracle.macs);
      }
    }
  }
}

namespace {
// The gated path's eval forward under the given mask: fused (the batched kernels) or the unfused oracle.
tensor<float> gated_eval(gated_basic_block<float>& block, const tensor<float>& x, const tensor<float>& mask, bool fused) {
  tape<float> tp(grad_mode::off);
  forward_state<float> st;
  st.training = false;
  st.route = path::gated;
  st.fused = fused;
  st.forced_masks.push_back(mask);
  return block.forward(tp, x, st);
}
}  // namespace

TEST_CASE("float eval: the batched gated-block kernels equal dense-conv-times-mask", "[gating]") {
  // Shapes reaching each form of ops/cpu/gated_conv.hpp: conv1 products packed (many tiles: 34x34, 33x33 and 22x22,
  // their F(2,3) edge tiles of 2, 1 and 2 outputs, and 17x17, edges of 2, with more than one 64-column panel; few
  // tiles with few channels: 9x9 at 16) or in dot form (few tiles: 9x9, and 5x5, whose edge tiles of 2 outputs run a
  // tile row apart), conv1 direct (stride 2: 6x6 and 9x9 outputs in dot form, all 9 taps per call, and 5x5 from 192
  // channels, 3 taps per call; 12x12 packed); chunks per thread (1 thread, or many tiles) and the batch shared by 2
  // threads (few tiles); 3x3 outputs (stride 1, and 2 from 6x6), whose rows of 9 positions are shorter than the
  // output transpose's cache line; random BN statistics so the folding matters.
  struct geometry {
    int c_in, c_out, stride, hw;
  };
  const int threads_before = num_threads();
  const geometry shapes[] = {{16, 16, 1, 34}, {16, 16, 1, 33}, {24, 24, 1, 22}, {96, 96, 1, 17}, {128, 128, 1, 5}, {72, 72, 1, 9},
                             {16, 16, 1, 9},   {32, 64, 2, 12},  {24, 40, 2, 18},  {192, 24, 2, 10}, {16, 24, 2, 24}, {48, 48, 1, 3},
                             {32, 48, 2, 6}};
  for (int threads : {1, 2})
    for (const auto& g : shapes)
      for (double d : {0.0, 0.3, 1.0}) {
        set_num_threads(threads);
        INFO("threads " << threads << " c_in " << g.c_in << " c_out " << g.c_out << " stride " << g.stride << " " << g.hw << "x" << g.hw
                        << " density " << d);
        rng init(21);
        gated_basic_block<float> block(g.c_in, g.c_out, g.stride, init);
        std::vector<layers::batchnorm<float>*> bns{&block.bn1_g, &block.bn2_g};
        if (block.downsample) bns.push_back(&block.downsample->second);
        for (auto* bn : bns) {
          rng r(22);
          bn->running_mean = tensor<float>::uniform({g.c_out}, r, -0.2f, 0.2f);
          bn->running_var = tensor<float>::uniform({g.c_out}, r, 0.5f, 1.5f);
          bn->weight.copy_from(tensor<float>::uniform({g.c_out}, r, 0.5f, 1.5f));
        }
        const tensor<float> x = random({4, g.c_in, g.hw, g.hw}, 23).cast<float>();
        const tensor<float> mask = random_mask(4, g.c_out, d, 24).cast<float>();
        // float rounding of two summation orders
        CHECK(testing::nmse(gated_eval(block, x, mask, true), gated_eval(block, x, mask, false).cast<double>()) <= 1e-10);
      }
  set_num_threads(threads_before);
}

TEST_CASE("the shared batch's phases: each unit runs once, a thread's own share in order, then the others' from their ends", "[gating]") {
  namespace g = ops::cpu::gated;
  const auto even = [](long total, int nt) { return [=](int t, long& lo, long& hi) { ops::cpu::detail::split_range(total, nt, t, lo, hi); }; };
  SECTION("one thread after another: the first takes everything, its own share first") {
    std::vector<std::atomic<bool>> taken(10);
    std::vector<std::pair<long, long>> runs;  // (unit, next)
    g::take_units(taken.data(), 3, 1, even(10, 3), [&](long u, long next) { runs.emplace_back(u, next); });
    // shares [0, 4) [4, 7) [7, 10): its own in order, then thread 2's and thread 0's from the back
    const std::vector<std::pair<long, long>> want{{4, 5}, {5, 6}, {6, -1}, {9, 8}, {8, 7}, {7, -1}, {3, 2}, {2, 1}, {1, 0}, {0, -1}};
    CHECK(runs == want);
    g::take_units(taken.data(), 3, 0, even(10, 3), [&](long, long) { FAIL("a unit ran twice"); });
  }
  SECTION("threads at once, one of them late: every unit runs exactly once") {
    for (int total : {1, 7, 64}) {
      std::vector<std::atomic<bool>> taken(static_cast<std::size_t>(total));
      std::vector<std::atomic<int>> runs(static_cast<std::size_t>(total));
#pragma omp parallel num_threads(2)
      {
        const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        if (tid == 1) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        g::take_units(taken.data(), nt, tid, even(total, nt), [&](long u, long) {
          runs[std::size_t(u)].fetch_add(1);
          std::this_thread::sleep_for(std::chrono::microseconds(100));
        });
      }
      for (int u = 0; u < total; ++u) CHECK(runs[std::size_t(u)].load() == 1);
    }
  }
}

TEST_CASE("float eval: conv1's open channels split between its packed and its dot form", "[gating]") {
  // Per-sample open counts around the vector width at 81 and 36 tiles per sample (the packed form): whole
  // vectors, whole vectors and a short last one (its channels in dot form), a short one alone, one just too
  // long for the dot form, none. With AVX-512, counts up to 24 take the quad form instead (1 to 6 quad
  // vectors, full or not), and 25 and 26 whole vectors and a short last one. At 81 tiles all but the 47 open
  // channels run in bands of tile rows (band_rows), those in one piece; at 36 tiles, those of one vector or less.
  const int vw = int(ops::cpu::detail::vw), tmax = ops::cpu::gated::dot_tail_max, c = 3 * vw + 3;
  const std::vector<int> counts{2 * vw, vw + 1, vw + tmax, vw + tmax + 1, tmax, 1, 3 * vw - 1, 0, 8, 14, 24, 25};
  const auto n = std::int64_t(counts.size());
  tensor<float> mask(shape{n, c});
  for (std::int64_t i = 0; i < n; ++i)  // q -> (7q + 3i) mod c is one-to-one: exactly counts[i] open
    for (int q = 0; q < c; ++q) mask[i * c + q] = (7 * q + 3 * int(i)) % c < counts[std::size_t(i)] ? 1.f : 0.f;
  const int threads_before = num_threads();
  for (int threads : {1, 2})
    for (int hw : {34, 17}) {
      set_num_threads(threads);
      INFO("threads " << threads << " " << hw << "x" << hw << " channels " << c);
      rng init(31);
      gated_basic_block<float> block(c, c, 1, init);
      for (auto* bn : {&block.bn1_g, &block.bn2_g}) {
        rng r(32);
        bn->running_mean = tensor<float>::uniform({c}, r, -0.2f, 0.2f);
        bn->running_var = tensor<float>::uniform({c}, r, 0.5f, 1.5f);
      }
      const tensor<float> x = random({n, c, hw, hw}, 33).cast<float>();
      CHECK(testing::nmse(gated_eval(block, x, mask, true), gated_eval(block, x, mask, false).cast<double>()) <= 1e-10);
    }
  set_num_threads(threads_before);
}

TEST_CASE("float eval: the kernel's prepared weights follow every change of the weights", "[gating]") {
  // The fused eval kernel keeps its weight layouts between calls; any change of conv1, conv2 or BN1 (folded
  // into conv1) must show in the next call, and a copied block must not use the original's copy.
  rng init(31);
  gated_basic_block<float> block(32, 32, 1, init);
  const tensor<float> x = random({3, 32, 9, 9}, 32).cast<float>();
  const tensor<float> mask = random_mask(3, 32, 0.5, 33).cast<float>();
  const auto agree = [&](gated_basic_block<float>& b, const char* what) {
    INFO(what);
    const tensor<float> fused = gated_eval(b, x, mask, true), oracle = gated_eval(b, x, mask, false);
    CHECK(testing::nmse(fused, oracle.cast<double>()) <= 1e-10);
    return fused;
  };
  const tensor<float> before = agree(block, "first call");
  agree(block, "second call, weights unchanged");
  block.conv1.weight[5] += 0.5f;
  const tensor<float> after = agree(block, "conv1 changed");
  CHECK(testing::nmse(after, before.cast<double>()) > 1e-8);
  block.conv2.weight[7] -= 0.5f;
  agree(block, "conv2 changed");
  block.bn1_g.running_var[3] *= 4.f;
  agree(block, "BN1 changed");
  gated_basic_block<float> copy = block;
  copy.conv2.weight[11] += 0.5f;
  agree(copy, "copy changed");
  agree(block, "original after the copy changed");
}

TEST_CASE("float eval: the fused shortcut's prepared weights follow the downsample conv and its BN", "[gating]") {
  rng init(34);
  gated_basic_block<float> block(16, 32, 2, init);
  const tensor<float> x = random({3, 16, 10, 10}, 35).cast<float>();
  const tensor<float> mask = random_mask(3, 32, 0.5, 36).cast<float>();
  const auto agree = [&](const char* what) {
    INFO(what);
    const tensor<float> fused = gated_eval(block, x, mask, true);
    CHECK(testing::nmse(fused, gated_eval(block, x, mask, false).cast<double>()) <= 1e-10);
    return fused;
  };
  const tensor<float> before = agree("first call");
  block.downsample->first.weight[3] += 0.5f;
  CHECK(testing::nmse(agree("downsample conv changed"), before.cast<double>()) > 1e-8);
  const tensor<float> mid = agree("second call");
  block.downsample->second.running_var[2] *= 4.f;
  CHECK(testing::nmse(agree("downsample BN changed"), mid.cast<double>()) > 1e-8);
}

TEST_CASE("float eval: the gate run inside the kernel equals the gate's own forward", "[gating]") {
  // Where the kernel runs one sample at a time (34x34 maps, 17x17 outputs) it computes the gate from its own
  // copy of x (its channel sums, taken as it transposes x, a last part-full group of 16 channels included): the
  // same logits up to rounding, the same open channels and output; a forced mask still decides.
  struct geometry {
    int c_in, c_out, stride, hw;
  };
  const int threads_before = num_threads();
  const geometry shapes[] = {{16, 16, 1, 34}, {16, 32, 2, 34}, {48, 48, 1, 17}, {24, 32, 2, 34}, {40, 40, 1, 17}};
  for (int threads : {1, 2})
    for (const auto& g : shapes) {
      set_num_threads(threads);
      INFO("threads " << threads << " c_in " << g.c_in << " c_out " << g.c_out << " stride " << g.stride << " " << g.hw << "x" << g.hw);
      REQUIRE(ops::cpu::gated::fuses_gate({4, g.c_in, g.hw, g.hw, g.c_out, g.stride}));
      rng init(31);
      gated_basic_block<float> block(g.c_in, g.c_out, g.stride, init);
      rng r(32);
      for (auto* bn : {&block.bn1_g, &block.bn2_g, &block.gate.bn}) {
        bn->running_mean = tensor<float>::uniform({bn->channels()}, r, -0.2f, 0.2f);
        bn->running_var = tensor<float>::uniform({bn->channels()}, r, 0.5f, 1.5f);
      }
      tensor<float> x = random({4, g.c_in, g.hw, g.hw}, 33).cast<float>();
      for (std::int64_t i = 0; i < x.numel(); ++i) x[i] += 0.3f;  // channel means away from 0
      const auto run = [&](bool fused, const tensor<float>& forced) {
        tape<float> tp(grad_mode::off);
        forward_state<float> st;
        st.training = false;
        st.route = path::gated;
        st.fused = fused;
        if (!forced.empty()) st.forced_masks.push_back(forced);
        const tensor<float> y = block.forward(tp, x, st);
        return std::pair{y, st.gates.at(0)};
      };
      const auto [y_in, g_in] = run(true, {});
      const auto [y_own, g_own] = run(false, {});
      CHECK(testing::nmse(g_in.logits, g_own.logits.cast<double>()) <= 1e-10);  // float sums in two orders
      int open = 0;
      for (std::int64_t i = 0; i < g_own.logits.numel(); ++i) {
        open += g_own.mask[i] != 0;
        if (std::abs(g_own.logits[i]) > 1e-4f) CHECK(g_in.mask[i] == g_own.mask[i]);
      }
      CHECK(open > 0);
      CHECK(open < g_own.mask.numel());
      CHECK(g_in.active == g_own.active);
      CHECK(testing::nmse(y_in, y_own.cast<double>()) <= 1e-10);
      const tensor<float> forced = random_mask(4, g.c_out, 0.5, 37).cast<float>();
      const auto [y_forced, g_forced] = run(true, forced);
      CHECK(g_forced.mask.to_vector() == forced.to_vector());
      CHECK(g_forced.logits.to_vector() == g_in.logits.to_vector());
      CHECK(testing::nmse(y_forced, run(false, forced).first.cast<double>()) <= 1e-10);
    }
  set_num_threads(threads_before);
}

TEST_CASE("an all-ones mask gives the dense block", "[gating]") {
  const auto x = random({2, 8, 5, 5}, 3);
  rng init(1);
  gated_basic_block<double> block(8, 16, 2, init);
  block.bn1_g.weight.copy_from(block.bn1_d.weight);  // same BN parameters on both paths
  for (bool training : {true, false}) {
    tape<double> tp(grad_mode::off);
    forward_state<double> dense, gated;
    dense.training = gated.training = training;
    gated.route = path::gated;
    gated.forced_masks.push_back(tensor<double>::full({2, 16}, 1.0));
    if (training) gated.given_noise.push_back(tensor<double>::full({2, 16}, 0.5));
    const auto yd = block.forward(tp, x, dense);
    const auto yg = block.forward(tp, x, gated);
    require_close(yg, yd, training ? "train" : "eval");
  }
}

TEST_CASE("eval gates are deterministic and draw no noise", "[gating]") {
  rng init(2);
  gated_basic_block<double> block(8, 8, 1, init);
  const auto x = random({4, 8, 6, 6}, 4);
  rng noise(123);
  forward_state<double> st;
  st.training = false;
  st.route = path::gated;
  st.noise = &noise;
  tape<double> tp(grad_mode::off);
  const auto y1 = block.forward(tp, x, st);
  const auto y2 = block.forward(tp, x, st);
  CHECK(noise.offset() == 0);
  CHECK(y1.to_vector() == y2.to_vector());
  CHECK(st.gates[0].mask.to_vector() == st.gates[1].mask.to_vector());
  for (std::int64_t i = 0; i < st.gates[0].logits.numel(); ++i) CHECK(st.gates[0].mask[i] == (st.gates[0].logits[i] >= 0 ? 1.0 : 0.0));
  // Training draws exactly N * C_out values.
  st.training = true;
  tape<double> train;
  block.forward(train, x, st);
  CHECK(noise.offset() == 4 * 8);
}

TEST_CASE("logistic gate noise: mean 0, variance pi^2/3 over 10^6 draws", "[gating]") {
  rng r(2024);
  const int n = 1'000'000;
  double sum = 0, sq = 0;
  int non_finite = 0;
  for (int i = 0; i < n; ++i) {
    const double g = ops::logistic_noise(r.uniform());
    non_finite += !std::isfinite(g);
    sum += g;
    sq += g * g;
  }
  CHECK(non_finite == 0);
  const double mean = sum / n, var = sq / n - mean * mean;
  CHECK(std::abs(mean) < 0.01);
  CHECK(std::abs(var / (std::numbers::pi * std::numbers::pi / 3) - 1) < 0.02);
}

TEST_CASE("straight-through gate: values in {0,1}, gradient s(1-s)/tau", "[gating][grad]") {
  const auto logits = random({3, 5}, 8, -2, 2);
  const auto u = random({3, 5}, 9, 0.05, 0.95);
  auto l = logits.clone();
  l.set_requires_grad();
  tape<double> tp;
  const double tau = 2.0 / 3.0;
  const auto b = ops::gate_sample(tp, l, u, tau);
  const auto dy = random({3, 5}, 10);
  tp.backward(b, dy);
  for (std::int64_t i = 0; i < b.numel(); ++i) {
    CHECK((b[i] == 0.0 || b[i] == 1.0));
    const double s = 1 / (1 + std::exp(-(logits[i] + ops::logistic_noise(u[i])) / tau));
    CHECK(b[i] == (s >= 0.5 ? 1.0 : 0.0));
    CHECK(l.grad()[i] == Approx(dy[i] * s * (1 - s) / tau).epsilon(1e-12));
  }
}

TEST_CASE("resnet: shapes, parameter names and executed MACs", "[gating][model]") {
  rng init(3);
  resnet<float> net({18, stem_kind::cifar, 0.125}, init);
  tensor_visitor<float> v;
  net.visit(v, "backbone");
  std::set<std::string> names;
  for (auto& p : v.params) names.insert(p.name);
  CHECK(names.count("backbone.conv1.weight"));
  CHECK(names.count("backbone.blocks.2.downsample.0.weight"));
  CHECK(names.count("backbone.blocks.7.gate.fc2.weight"));
  CHECK(names.count("backbone.blocks.0.bn1_g.weight"));
  // The reference state dict (dual_step fixture): 134 parameters and 92 buffers with the projector's 10 and 4.
  CHECK(v.params.size() == 124);
  CHECK(v.buffers.size() == 88);
  rng data(4);
  const auto x = tensor<float>::normal({2, 3, 32, 32}, data);
  tape<float> none(grad_mode::off);
  forward_state<float> dense;
  dense.training = false;
  CHECK(net.forward(none, x, dense).dims() == shape{2, 64});
  // Dense width-1/8 network: the closed form of METHOD.md §3 (stem + blocks + downsamples), per image.
  const std::int64_t per_image = 9 * 34 * 34 * 8 * 3 + 2 * (2 * 9 * 34 * 34 * 8 * 8) + (9 * 17 * 17 * 16 * 8 + 9 * 17 * 17 * 16 * 16 + 17 * 17 * 16 * 8) +
                                 2 * 9 * 17 * 17 * 16 * 16 + (9 * 9 * 9 * 32 * 16 + 9 * 9 * 9 * 32 * 32 + 9 * 9 * 32 * 16) + 2 * 9 * 9 * 9 * 32 * 32 +
                                 (9 * 5 * 5 * 64 * 32 + 9 * 5 * 5 * 64 * 64 + 5 * 5 * 64 * 32) + 2 * 9 * 5 * 5 * 64 * 64;
  CHECK(dense.executed_macs == 2 * per_image);
  CHECK_THROWS_AS(net.forward(none, tensor<float>::zeros({2, 1, 32, 32}), dense), shape_error);
}

TEST_CASE("executed MACs of the fused eval network equal the FLOPs model", "[gating][model]") {
  rng init(5);
  resnet<float> net({18, stem_kind::cifar, 0.25}, init);
  // Shift every gate's BN so that some channels open and some close.
  for (auto& block : net.blocks) block.gate.bn.bias.fill(0.3f);
  rng data(6);
  const auto x = tensor<float>::normal({4, 3, 32, 32}, data);
  tape<float> none(grad_mode::off);
  forward_state<float> st;
  st.training = false;
  st.route = path::gated;
  net.forward(none, x, st);
  std::vector<tensor<float>> masks;
  for (auto& g : st.gates) masks.push_back(g.mask);
  const auto flops = net.flops(32, 32);
  const double model = flops.gated_macs(masks) * 4;  // the model counts per image (batch mean)
  CHECK(static_cast<double>(st.executed_macs) == Approx(model).epsilon(1e-12));
  const double rho = flops.rho_value(masks);
  CHECK(rho > flops.fixed_macs / static_cast<double>(flops.dense_macs));
  CHECK(rho < 1.0);
  // The dense path executes exactly the dense total.
  forward_state<float> dense;
  dense.training = false;
  net.forward(none, x, dense);
  CHECK(dense.executed_macs == 4 * flops.dense_macs);
}
