// The tape ops, losses, gated block and the whole VICReg-Dual step on device tensors against the same code on
// the CPU, float32 (tags [cuda]): outputs and every input gradient. Tolerances as tests/cuda/cuda_ops_test.cpp
// for single ops; the whole step compares each gradient tensor by NMSE and by its largest error relative to
// its largest entry (float32 rounding through a ResNet differs between cuDNN and the CPU kernels).
// Part of cuda_tests, which exits 77 without a device before any test runs.
#include <sslgate/core/cuda/runtime.hpp>
#include <sslgate/gating/gated_basic_block.hpp>
#include <sslgate/losses/barlow_twins.hpp>
#include <sslgate/losses/simclr.hpp>
#include <sslgate/losses/vicreg.hpp>
#include <sslgate/ops/linalg.hpp>
#include <sslgate/ops/normalize.hpp>
#include <sslgate/ops/pool.hpp>
#include <sslgate/ops/softmax.hpp>
#include <sslgate/optim/lars.hpp>
#include <sslgate/train/dual_step.hpp>

#include "gpu_compare.hpp"

#include <functional>
#include <string>
#include <vector>

using namespace sslgate;
using namespace sslgate::test;

namespace {

const device gpu = cuda::gpu(0);

using op_fn = std::function<ftensor(tape<float>&, std::vector<ftensor>&)>;

struct run_result {
  std::vector<float> y;
  std::vector<std::vector<float>> grads;
};

// y = f(inputs) on device d, then backward from a fixed random dy: y and every input's gradient.
run_result run_on(device d, const std::vector<ftensor>& inputs, const op_fn& f) {
  std::vector<ftensor> in;
  for (const auto& t : inputs) in.push_back((d == cpu ? t.clone() : t.to(d)).set_requires_grad());
  tape<float> tp;
  const ftensor y = f(tp, in);
  REQUIRE(y.dev() == d);
  tp.backward(y, rand_t(y.dims(), 99, 0.5f, 1.5f).to(d));
  run_result r{y.to_vector(), {}};
  for (const auto& t : in) r.grads.push_back(t.grad().empty() ? std::vector<float>(static_cast<std::size_t>(t.numel()), 0.f) : t.grad().to_vector());
  return r;
}

void compare_op(const std::string& name, const std::vector<ftensor>& inputs, const op_fn& f, double rel = 1e-5) {
  INFO("op " << name);
  const run_result want = run_on(cpu, inputs, f), got = run_on(gpu, inputs, f);
  require_close(got.y, want.y, rel);
  for (std::size_t i = 0; i < want.grads.size(); ++i) {
    INFO("gradient of input " << i);
    require_close(got.grads[i], want.grads[i], rel);
  }
}

}  // namespace

TEST_CASE("element-wise, reduction and shape ops on the tape match the CPU", "[cuda]") {
  const ftensor a = rand_t({6, 5, 4}, 1, 0.5f, 2.f), b = rand_t({5, 1}, 2, 0.5f, 2.f), c = rand_t({6, 5, 4}, 3, 0.5f, 2.f);
  compare_op("exp", {a}, [](auto& tp, auto& x) { return ops::exp(tp, x[0]); });
  compare_op("log", {a}, [](auto& tp, auto& x) { return ops::log(tp, x[0]); });
  compare_op("sqrt", {a}, [](auto& tp, auto& x) { return ops::sqrt(tp, x[0]); });
  compare_op("pow", {a}, [](auto& tp, auto& x) { return ops::pow(tp, x[0], 1.5); });
  compare_op("sigmoid", {a}, [](auto& tp, auto& x) { return ops::sigmoid(tp, x[0]); });
  compare_op("relu", {rand_t({7, 9}, 4)}, [](auto& tp, auto& x) { return ops::relu(tp, x[0]); });
  compare_op("add_scalar", {a}, [](auto& tp, auto& x) { return ops::add_scalar(tp, x[0], 0.25f); });
  compare_op("add broadcast", {a, b}, [](auto& tp, auto& x) { return ops::add(tp, x[0], x[1]); });
  compare_op("mul broadcast", {a, b}, [](auto& tp, auto& x) { return ops::mul(tp, x[0], x[1]); });
  compare_op("div", {a, c}, [](auto& tp, auto& x) { return ops::div(tp, x[0], x[1]); });
  compare_op("sum dims", {a}, [](auto& tp, auto& x) { return ops::sum(tp, x[0], {0, 2}); });
  compare_op("mean", {a}, [](auto& tp, auto& x) { return ops::mean(tp, x[0]); });
  compare_op("var", {a}, [](auto& tp, auto& x) { return ops::var(tp, x[0], {0}, true); }, 1e-4);
  compare_op("reshape", {a}, [](auto& tp, auto& x) { return ops::reshape(tp, x[0], shape{30, 4}); });
  compare_op("slice", {a}, [](auto& tp, auto& x) { return ops::slice(tp, x[0], 1, 1, 4); });
  compare_op("concat", {a, c}, [](auto& tp, auto& x) { return ops::concat(tp, {x[0], x[1], x[0]}, 2); });
  compare_op("split", {a}, [](auto& tp, auto& x) {
    auto parts = ops::split(tp, x[0], {2, 3}, 1);
    return ops::mul(tp, parts[0], ops::slice(tp, parts[1], 1, 0, 2));
  });
  compare_op("index_select", {a}, [](auto& tp, auto& x) { return ops::index_select(tp, x[0], 1, {4, 0, 4, 2}); });
  compare_op("transpose", {a}, [](auto& tp, auto& x) { return ops::transpose(tp, x[0], 0, 2); });
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      compare_op("matmul", {rand_t(ta ? shape{33, 17} : shape{17, 33}, 5, 0.f, 1.f), rand_t(tb ? shape{9, 33} : shape{33, 9}, 6, 0.f, 1.f)},
                 [ta, tb](auto& tp, auto& x) { return ops::matmul(tp, x[0], x[1], ta, tb); });
  compare_op("linear", {rand_t({8, 20}, 7, 0.f, 1.f), rand_t({12, 20}, 8, 0.f, 1.f), rand_t({12}, 9)},
             [](auto& tp, auto& x) { return ops::linear(tp, x[0], x[1], x[2]); });
}

TEST_CASE("convolution, pool, normalization and softmax ops on the tape match the CPU", "[cuda]") {
  struct conv {
    shape x, w;
    int stride, pad;
  };
  for (const conv& k : {conv{{4, 16, 12, 12}, {32, 16, 3, 3}, 1, 1}, conv{{4, 16, 12, 12}, {32, 16, 3, 3}, 2, 1}, conv{{4, 16, 12, 12}, {8, 16, 1, 1}, 2, 0},
                        conv{{2, 3, 20, 20}, {8, 3, 7, 7}, 2, 3}, conv{{4, 8, 9, 9}, {8, 8, 3, 3}, 1, 2}})
    compare_op("conv2d " + k.w.str(), {rand_t(k.x, 10, 0.f, 1.f), rand_t(k.w, 11, 0.f, 1.f)},
               [k](auto& tp, auto& x) { return ops::conv2d(tp, x[0], x[1], k.stride, k.pad); });
  const ftensor img = rand_t({3, 5, 9, 9}, 12);
  compare_op("avg_pool2d", {img}, [](auto& tp, auto& x) { return ops::avg_pool2d(tp, x[0], 3, 2, 1); });
  compare_op("max_pool2d", {img}, [](auto& tp, auto& x) { return ops::max_pool2d(tp, x[0], 3, 2, 1); });
  compare_op("global_avg_pool", {img}, [](auto& tp, auto& x) { return ops::global_avg_pool(tp, x[0]); });
  const ftensor rows = rand_t({6, 11}, 13, -2.f, 2.f);
  compare_op("log_softmax", {rows}, [](auto& tp, auto& x) { return ops::log_softmax(tp, x[0]); }, 1e-4);
  compare_op("logsumexp", {rows}, [](auto& tp, auto& x) { return ops::logsumexp(tp, x[0]); });
  compare_op("cross_entropy", {rows}, [](auto& tp, auto& x) { return ops::cross_entropy(tp, x[0], {0, 10, 3, 3, 7, 1}); });
  compare_op("l2_normalize", {rows}, [](auto& tp, auto& x) { return ops::l2_normalize(tp, x[0]); });

  for (bool training : {true, false})
    for (const shape& s : {shape{8, 6, 5, 5}, shape{16, 6}}) {
      ftensor rm_cpu = rand_t({6}, 14, -0.2f, 0.2f), rv_cpu = rand_t({6}, 15, 0.5f, 1.5f);
      ftensor rm_gpu = rm_cpu.to(gpu), rv_gpu = rv_cpu.to(gpu);
      const ftensor x = rand_t(s, 16, 0.f, 2.f), w = rand_t({6}, 17, 0.5f, 1.5f), bias = rand_t({6}, 18), res = rand_t(s, 19);
      // The running statistics each device updates are its own: one pair per device.
      const auto bn = [&, training](auto& tp, auto& in) {
        const bool on_gpu = in[0].dev() == gpu;
        return ops::batchnorm_relu(tp, in[0], in[1], in[2], on_gpu ? rm_gpu : rm_cpu, on_gpu ? rv_gpu : rv_cpu, training, in[3]);
      };
      compare_op(std::string("batchnorm_relu ") + (training ? "train " : "eval ") + s.str(), {x, w, bias, res}, bn, 1e-4);
      require_close(rm_gpu, rm_cpu);
      require_close(rv_gpu, rv_cpu);
    }
}

TEST_CASE("losses on the tape match the CPU", "[cuda]") {
  const ftensor z1 = rand_t({16, 24}, 20, -1.f, 1.f), z2 = rand_t({16, 24}, 21, -1.f, 1.f);
  compare_op("vicreg", {z1, z2}, [](auto& tp, auto& z) { return losses::vicreg{}(tp, z[0], z[1]); }, 1e-4);
  compare_op("vicreg covariance", {z1}, [](auto& tp, auto& z) { return losses::vicreg::covariance(tp, z[0]); }, 1e-4);
  compare_op("barlow twins", {z1, z2}, [](auto& tp, auto& z) { return losses::barlow_twins{}(tp, z[0], z[1]); }, 1e-4);
  compare_op("simclr", {z1, z2}, [](auto& tp, auto& z) { return losses::simclr{}(tp, z[0], z[1]); }, 1e-4);

  const auto flops = gating::resnet_flops::make(0.25, 32, 32, stem_kind::cifar);
  std::vector<ftensor> masks;
  rng r(22);
  for (int l = 0; l < flops.num_blocks(); ++l) {
    ftensor m({8, flops.c_out[static_cast<std::size_t>(l)]});
    for (std::int64_t i = 0; i < m.numel(); ++i) m[i] = r.uniform() < 0.5 ? 1.f : 0.f;
    masks.push_back(m);
  }
  compare_op("flops budget", masks, [&flops](auto& tp, auto& m) { return losses::flops_budget{}.evaluate(tp, flops.rho(tp, m)).total; });
  compare_op("bound", masks, [](auto& tp, auto& m) { return losses::bound{}.evaluate(tp, losses::bound::densities(tp, m), 0.5).total; });
}

TEST_CASE("the gated block on the GPU: fused equals unfused, and both equal the CPU", "[cuda]") {
  for (int stride : {1, 2}) {
    const int c_in = 16, c_out = stride == 1 ? 16 : 32, n = 6;
    rng init_cpu(40), init_gpu(40);
    gated_basic_block<float> on_cpu(c_in, c_out, stride, init_cpu), on_gpu(c_in, c_out, stride, init_gpu);
    move_to(on_gpu, gpu);
    const ftensor x = rand_t({n, c_in, 10, 10}, 41, 0.f, 1.f), u = rand_t({n, c_out}, 42, 0.f, 1.f);
    for (bool training : {true, false}) {
      INFO("stride " << stride << (training ? ", training" : ", eval"));
      // One run: output, the input's and every parameter's gradient (training), the mask.
      const auto run = [&](gated_basic_block<float>& block, device d, bool fused) {
        tensor_visitor<float> v;
        block.visit(v, "");
        forward_state<float> st;
        st.training = training;
        st.route = path::gated;
        st.fused = fused;
        st.given_noise = {u.to(d)};
        ftensor xin = x.to(d).clone();
        xin.set_requires_grad(training);
        tape<float> tp(training ? grad_mode::on : grad_mode::off);
        const ftensor y = block.forward(tp, xin, st);
        std::vector<std::vector<float>> out{y.to_vector(), st.gates[0].mask.to_vector()};
        if (!training) return out;
        tp.backward(y, rand_t(y.dims(), 43, 0.5f, 1.5f).to(d));
        out.push_back(xin.grad().to_vector());
        for (auto& p : v.params) out.push_back(p.value.grad().empty() ? std::vector<float>(static_cast<std::size_t>(p.value.numel()), 0.f) : p.value.grad().to_vector());
        return out;
      };
      const auto want = run(on_cpu, cpu, true), fused = run(on_gpu, gpu, true), unfused = run(on_gpu, gpu, false);
      REQUIRE(fused[1] == want[1]);  // the same gates
      for (std::size_t i = 0; i < want.size(); ++i) {
        INFO("result " << i);
        require_close(fused[i], want[i], 1e-4);
        require_close(fused[i], unfused[i], 1e-4);
      }
    }
  }
}

TEST_CASE("the whole VICReg-Dual step on the GPU matches the CPU: loss terms, every gradient, one LARS step", "[cuda]") {
  const ssl_network_config cfg{{18, stem_kind::cifar, 0.25}, 64, 64};
  rng init_cpu(50), init_gpu(50);
  ssl_network<float> net_cpu(cfg, init_cpu), net_gpu(cfg, init_gpu);
  move_to(net_gpu, gpu);
  const ftensor x1 = rand_t({8, 3, 32, 32}, 51), x2 = rand_t({8, 3, 32, 32}, 52);
  std::vector<ftensor> noise;
  for (int l = 0; l < 8; ++l) noise.push_back(rand_t({8, net_cpu.backbone.flops(32, 32).c_out[static_cast<std::size_t>(l)]}, 60 + l, 0.f, 1.f));

  const auto step = [&](ssl_network<float>& net, device d) {
    std::vector<ftensor> u;
    for (const auto& t : noise) u.push_back(t.to(d));
    tape<float> tp;
    train::gating_objective gating;
    gating.set_target(0.5);
    auto out = train::ssl_step(tp, net, x1.to(d), x2.to(d), losses::vicreg{}, gating, 0.5, train::objective_mode::dual, nullptr, u);
    tp.backward(out.objective.total);
    return out;
  };
  const auto want = step(net_cpu, cpu), got = step(net_gpu, gpu);
  for (const char* term : {"vicreg", "vicreg.invariance", "vicreg.variance", "vicreg.covariance", "flops_budget", "bound"}) {
    INFO("term " << term);
    CHECK(got.objective.value(term) == Approx(want.objective.value(term)).epsilon(1e-4).margin(1e-6));
  }
  CHECK(got.rho == want.rho);  // the same masks
  for (std::size_t l = 0; l < want.first.masks.size(); ++l) CHECK(got.first.masks[l].to_vector() == want.first.masks[l].to_vector());

  tensor_visitor<float> vc, vg;
  net_cpu.visit(vc, "");
  net_gpu.visit(vg, "");
  REQUIRE(vc.params.size() == vg.params.size());
  const auto close = [](const std::vector<float>& g, const std::vector<float>& w) {
    double scale = 0, err = 0;
    for (std::size_t i = 0; i < w.size(); ++i) {
      scale = std::max(scale, static_cast<double>(std::abs(w[i])));
      err = std::max(err, std::abs(static_cast<double>(g[i]) - w[i]));
    }
    CHECK(nmse(g, w) <= 1e-6);
    CHECK(err <= 1e-3 * scale + 1e-7);
  };
  for (std::size_t i = 0; i < vc.params.size(); ++i) {
    INFO("gradient of " << vc.params[i].name);
    const ftensor gc = vc.params[i].value.grad(), gg = vg.params[i].value.grad();
    REQUIRE(gc.empty() == gg.empty());
    if (!gc.empty()) close(gg.to_vector(), gc.to_vector());
  }
  for (std::size_t i = 0; i < vc.buffers.size(); ++i) {
    INFO("buffer " << vc.buffers[i].name);
    close(vg.buffers[i].value.to_vector(), vc.buffers[i].value.to_vector());
  }

  const auto lars_step = [](ssl_network<float>& net) {
    optim::lars<float> opt(optim::split_groups(net.non_gate_parameters(), net.gate_parameters()), {});
    opt.step();
  };
  lars_step(net_cpu);
  lars_step(net_gpu);
  for (std::size_t i = 0; i < vc.params.size(); ++i) {
    INFO("parameter after LARS " << vc.params[i].name);
    close(vg.params[i].value.to_vector(), vc.params[i].value.to_vector());
  }
}

TEST_CASE("device ops refuse mixed devices and float64 device tensors with a clear error", "[cuda]") {
  const ftensor a = rand_t({4, 4}, 70), b = a.to(gpu);
  tape<float> tp;
  CHECK_THROWS_WITH(ops::add(tp, b, a), Catch::Contains("operands on cuda:0 and cpu"));
  CHECK_THROWS_WITH(ops::matmul(tp, a, b), Catch::Contains("operands on"));
  tape<double> tpd;
  const tensor<double> d = tensor<double>::zeros({4, 4}, gpu);
  CHECK_THROWS_WITH(ops::relu(tpd, d), Catch::Contains("float32"));
}
