// Every CUDA kernel against the CPU kernel it mirrors, float32 (tags [cuda]). The CPU results are the oracle.
// Tolerance: element-wise relative error <= 1e-5 on well-conditioned data (positive inputs for the long sums,
// so there is no cancellation; entries far below the tensor's scale get an absolute floor of 1e-6 * max|want|),
// and NMSE <= 1e-7 everywhere.
// Without a CUDA device the executable exits 77 before Catch starts (ctest: SKIP_RETURN_CODE 77).
#include <sslgate/core/cuda/ops.hpp>
#include <sslgate/core/cuda/runtime.hpp>
#include <sslgate/gating/channel_gate.hpp>
#include <sslgate/ops/batchnorm.hpp>
#include <sslgate/ops/gated_conv.hpp>
#include <sslgate/ops/normalize.hpp>
#include <sslgate/ops/pool.hpp>
#include <sslgate/ops/reduce.hpp>
#include <sslgate/ops/softmax.hpp>

#include "gpu_compare.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

using namespace sslgate;
using namespace sslgate::test;

namespace {

const bool device_present = [] {
  if (cuda::device_count() == 0) {
    std::puts("no CUDA device: GPU tests skipped (exit 77)");
    std::exit(77);
  }
  return true;
}();

const device gpu = cuda::gpu(0);

float* dp(ftensor& t) { return t.data(); }
const float* dp(const ftensor& t) { return t.data(); }

}  // namespace

TEST_CASE("device tensors: moves, copies, fill, layer moves", "[cuda]") {
  const ftensor x = rand_t({3, 4, 5}, 1);
  const ftensor g = x.to(gpu);
  CHECK(g.dev() == gpu);
  CHECK(g.to(cpu).to_vector() == x.to_vector());
  CHECK(g.to_vector() == x.to_vector());
  ftensor c = g.clone();
  CHECK(c.dev() == gpu);
  CHECK(c.to_vector() == x.to_vector());
  ftensor z = ftensor::zeros({7, 9}, gpu);
  CHECK(z.to_vector() == std::vector<float>(63, 0.f));
  z.fill(2.5f);
  CHECK(z.to_vector() == std::vector<float>(63, 2.5f));
  CHECK(ftensor::full({}, 3.f, gpu).item() == 3.f);
  ftensor back(x.dims());
  back.copy_from(g);
  CHECK(back.to_vector() == x.to_vector());
  CHECK_THROWS_AS(g.cast<double>(), value_error);

  layers::batchnorm<float> bn(6);
  move_to(bn, gpu);
  CHECK(bn.weight.dev() == gpu);
  CHECK(bn.running_var.dev() == gpu);
  CHECK(bn.running_var.to_vector() == std::vector<float>(6, 1.f));
  move_to(bn, cpu);
  CHECK(bn.running_mean.dev() == cpu);

  const auto before = cuda::allocator_statistics();
  { ftensor a({1024}, gpu); }
  { ftensor a({1024}, gpu); }
  CHECK(cuda::allocator_statistics().system_allocs <= before.system_allocs + 1);  // the second one is cached
}

TEST_CASE("unary ops and their gradients match the CPU", "[cuda]") {
  struct c {
    cuda::unary_op op;
    double p;
    const char* name;
  };
  const std::vector<c> cases{{cuda::unary_op::neg, 0, "neg"},   {cuda::unary_op::scale, 1.7, "scale"}, {cuda::unary_op::exp, 0, "exp"},
                             {cuda::unary_op::log, 0, "log"},   {cuda::unary_op::sqrt, 0, "sqrt"},     {cuda::unary_op::pow, 2.5, "pow"},
                             {cuda::unary_op::abs, 0, "abs"},   {cuda::unary_op::relu, 0, "relu"},     {cuda::unary_op::sigmoid, 0, "sigmoid"}};
  for (const auto& k : cases) {
    SECTION(k.name) {
      const bool positive = k.op == cuda::unary_op::log || k.op == cuda::unary_op::sqrt || k.op == cuda::unary_op::pow;
      ftensor x = rand_t({4, 33, 7}, 2, positive ? 0.25f : -2.f, 2.f).set_requires_grad();
      const ftensor dy = rand_t(x.dims(), 3, 0.5f, 1.5f);
      tape<float> tp;
      ftensor y;
      switch (k.op) {
        case cuda::unary_op::neg: y = ops::neg(tp, x); break;
        case cuda::unary_op::scale: y = ops::scale(tp, x, k.p); break;
        case cuda::unary_op::exp: y = ops::exp(tp, x); break;
        case cuda::unary_op::log: y = ops::log(tp, x); break;
        case cuda::unary_op::sqrt: y = ops::sqrt(tp, x); break;
        case cuda::unary_op::pow: y = ops::pow(tp, x, k.p); break;
        case cuda::unary_op::abs: y = ops::abs(tp, x); break;
        case cuda::unary_op::relu: y = ops::relu(tp, x); break;
        case cuda::unary_op::sigmoid: y = ops::sigmoid(tp, x); break;
      }
      tp.backward(y, dy);
      const ftensor gx = x.to(gpu), gdy = dy.to(gpu);
      ftensor gy(x.dims(), gpu), gdx = ftensor::zeros(x.dims(), gpu);
      cuda::unary_forward(k.op, dp(gy), dp(gx), x.numel(), k.p);
      cuda::unary_backward(k.op, dp(gdx), dp(gx), dp(gy), dp(gdy), x.numel(), k.p);
      require_close(gy, y);
      require_close(gdx, x.grad());
    }
  }
}

TEST_CASE("broadcast binary ops, their gradients and sums match the CPU", "[cuda]") {
  const std::vector<std::pair<shape, shape>> shapes{{{8, 16, 5, 5}, {1, 16, 1, 1}}, {{8, 16}, {16}}, {{6, 1, 4}, {1, 5, 1}}, {{7, 3}, {}}};
  const std::vector<cuda::binary_op> ops_{cuda::binary_op::add, cuda::binary_op::sub, cuda::binary_op::mul, cuda::binary_op::div};
  for (const auto& [sa, sb] : shapes)
    for (auto op : ops_) {
      ftensor a = rand_t(sa, 5, 0.5f, 2.f).set_requires_grad(), b = rand_t(sb, 6, 0.5f, 2.f).set_requires_grad();
      tape<float> tp;
      ftensor y = op == cuda::binary_op::add ? ops::add(tp, a, b)
                  : op == cuda::binary_op::sub ? ops::sub(tp, a, b)
                  : op == cuda::binary_op::mul ? ops::mul(tp, a, b)
                                               : ops::div(tp, a, b);
      const ftensor dy = rand_t(y.dims(), 7, 0.5f, 1.5f);
      tp.backward(y, dy);
      const ftensor ga = a.to(gpu), gb = b.to(gpu), gdy = dy.to(gpu);
      ftensor gy(y.dims(), gpu), gda = ftensor::zeros(sa, gpu), gdb = ftensor::zeros(sb, gpu);
      cuda::binary_forward(op, dp(gy), y.dims(), dp(ga), sa, dp(gb), sb);
      cuda::binary_backward(op, 0, dp(gda), dp(ga), sa, dp(gb), sb, dp(gdy), y.dims());
      cuda::binary_backward(op, 1, dp(gdb), dp(ga), sa, dp(gb), sb, dp(gdy), y.dims());
      INFO("op " << static_cast<int>(op) << " shapes " << sa.str() << " " << sb.str());
      require_close(gy, y);
      require_close(gda, a.grad());
      require_close(gdb, b.grad());
    }
  SECTION("sum over dims and its broadcast backward") {
    ftensor x = rand_t({16, 32, 6, 6}, 8, 0.f, 1.f).set_requires_grad();
    tape<float> tp;
    const ftensor s = ops::sum(tp, x, {0, 2, 3}, true);
    const ftensor dy = rand_t(s.dims(), 9);
    tp.backward(s, dy);
    ftensor gs = ftensor::zeros(s.dims(), gpu), gdx = ftensor::zeros(x.dims(), gpu);
    cuda::sum_to_add(dp(gs), s.dims(), dp(x.to(gpu)), x.dims());
    cuda::broadcast_add(dp(gdx), x.dims(), dp(dy.to(gpu)), s.dims());
    require_close(gs, s);
    require_close(gdx, x.grad());
    ftensor total = ftensor::zeros({}, gpu);  // a long reduction: one block per output
    cuda::sum_to_add(dp(total), shape{}, dp(x.to(gpu)), x.dims());
    tape<float> t2;
    require_close(total, ops::sum(t2, x));
  }
}

TEST_CASE("GEMM through cuBLAS matches the CPU GEMM", "[cuda]") {
  const long m = 37, n = 53, k = 129;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (float beta : {0.f, 1.f}) {
        const ftensor a = rand_t(ta ? shape{k, m} : shape{m, k}, 10, 0.f, 1.f), b = rand_t(tb ? shape{n, k} : shape{k, n}, 11, 0.f, 1.f);
        ftensor c = rand_t({m, n}, 12, 0.f, 1.f);
        ftensor gc = c.to(gpu);
        ops::cpu::gemm<float>(c.data(), a.data(), b.data(), m, n, k, ta, tb, beta);
        cuda::gemm(dp(gc), dp(a.to(gpu)), dp(b.to(gpu)), m, n, k, ta, tb, beta);
        INFO("trans_a " << ta << " trans_b " << tb << " beta " << beta);
        require_close(gc, c);
      }
}

TEST_CASE("batch norm forward, running statistics and backward match the CPU", "[cuda]") {
  for (const shape s : {shape{16, 12, 7, 7}, shape{64, 40}})
    for (bool training : {true, false}) {
      const std::int64_t c = s[1];
      ftensor x = rand_t(s, 13, 0.5f, 2.f).set_requires_grad();
      ftensor w = rand_t({c}, 14, 0.5f, 1.5f).set_requires_grad(), b = rand_t({c}, 15, 0.1f, 0.5f).set_requires_grad();
      ftensor rm = rand_t({c}, 16, 0.9f, 1.1f), rv = rand_t({c}, 17, 0.2f, 0.4f);
      ftensor grm = rm.to(gpu), grv = rv.to(gpu);
      tape<float> tp;
      const ftensor y = ops::batchnorm(tp, x, w, b, rm, rv, training, 0.1, 1e-5);
      const ftensor dy = rand_t(s, 18, 0.5f, 1.5f);
      tp.backward(y, dy);
      const cuda::bn_dims d{s[0], c, s.rank() == 4 ? s[2] * s[3] : 1};
      const ftensor gx = x.to(gpu), gw = w.to(gpu), gb = b.to(gpu);
      ftensor gy(s, gpu), gdx = ftensor::zeros(s, gpu), gdw = ftensor::zeros({c}, gpu), gdb = ftensor::zeros({c}, gpu);
      tensor<double> mean({c}, gpu), invstd({c}, gpu);
      cuda::batchnorm_forward(dp(gy), mean.data(), invstd.data(), dp(gx), dp(gw), dp(gb), dp(grm), dp(grv), training, 0.1, 1e-5, d);
      cuda::batchnorm_backward(dp(gdx), dp(gdw), dp(gdb), dp(dy.to(gpu)), dp(gx), dp(gw), mean.data(), invstd.data(), training, d);
      INFO("shape " << s.str() << " training " << training);
      require_close(gy, y);
      require_close(grm, rm);
      require_close(grv, rv);
      require_close(gdx, x.grad(), 1e-4);  // training dx is a difference of three terms: compared with NMSE and 1e-4
      require_close(gdw, w.grad());
      require_close(gdb, b.grad());
    }
}

TEST_CASE("pools match the CPU", "[cuda]") {
  const ftensor x = rand_t({4, 6, 13, 13}, 19, 0.f, 1.f);
  const ftensor gx = x.to(gpu);
  for (auto [k, s, p] : {std::array{3, 2, 1}, std::array{2, 2, 0}, std::array{3, 1, 1}}) {
    const ops::pool2d_geometry g{24, 13, 13, (13 + 2 * p - k) / s + 1, (13 + 2 * p - k) / s + 1, k, s, p};
    const cuda::pool_geom cg{g.planes, g.h, g.w, g.oh, g.ow, g.k, g.s, g.p};
    const shape ys{4, 6, g.oh, g.ow};
    const ftensor dy = rand_t(ys, 20, 0.5f, 1.5f);
    ftensor y(ys), dx = ftensor::zeros(x.dims()), gy(ys, gpu), gdx = ftensor::zeros(x.dims(), gpu);
    ops::avg_pool2d_forward(y.data(), x.data(), g);
    ops::avg_pool2d_backward(dx.data(), dy.data(), g);
    cuda::avg_pool2d_forward(dp(gy), dp(gx), cg);
    cuda::avg_pool2d_backward(dp(gdx), dp(dy.to(gpu)), cg);
    require_close(gy, y);
    require_close(gdx, dx);
    std::vector<std::int32_t> idx(static_cast<std::size_t>(ys.numel()));
    tensor<float> gidx_store({ys.numel()}, gpu);  // int32 indices in a float-sized buffer
    auto* gidx = reinterpret_cast<std::int32_t*>(gidx_store.data());
    dx.fill(0.f);
    gdx.fill(0.f);
    ops::max_pool2d_forward(y.data(), idx.data(), x.data(), g);
    ops::max_pool2d_backward(dx.data(), dy.data(), idx.data(), g);
    cuda::max_pool2d_forward(dp(gy), gidx, dp(gx), cg);
    cuda::max_pool2d_backward(dp(gdx), dp(dy.to(gpu)), gidx, cg);
    CHECK(gy.to_vector() == y.to_vector());
    CHECK(gdx.to_vector() == dx.to_vector());
  }
  ftensor y(shape{4, 6}), dx = ftensor::zeros(x.dims()), gy(shape{4, 6}, gpu), gdx = ftensor::zeros(x.dims(), gpu);
  const ftensor dy = rand_t({4, 6}, 21);
  ops::global_avg_pool_forward(y.data(), x.data(), 24, 169);
  ops::global_avg_pool_backward(dx.data(), dy.data(), 24, 169);
  cuda::global_avg_pool_forward(dp(gy), dp(gx), 24, 169);
  cuda::global_avg_pool_backward(dp(gdx), dp(dy.to(gpu)), 24, 169);
  require_close(gy, y);
  require_close(gdx, dx);
}

TEST_CASE("softmax family, cross-entropy pieces and l2-normalize match the CPU", "[cuda]") {
  const std::int64_t n = 33, c = 300;
  const ftensor x = rand_t({n, c}, 22, -3.f, 3.f), dy = rand_t({n, c}, 23, 0.5f, 1.5f), coef = rand_t({n}, 24, 0.5f, 1.f);
  const ftensor gx = x.to(gpu);
  ftensor lse({n}), glse({n}, gpu), y({n, c}), gy({n, c}, gpu);
  ops::logsumexp_forward(lse.data(), x.data(), n, c);
  cuda::logsumexp_forward(dp(glse), dp(gx), n, c);
  require_close(glse, lse);
  ops::log_softmax_forward(y.data(), x.data(), n, c);
  cuda::log_softmax_forward(dp(gy), dp(gx), n, c);
  require_close(gy, y, 1e-4);  // values near 0 come out of a difference; NMSE still 1e-7
  ftensor dx = ftensor::zeros({n, c}), gdx = ftensor::zeros({n, c}, gpu);
  ops::log_softmax_backward(dx.data(), dy.data(), y.data(), n, c);
  cuda::log_softmax_backward(dp(gdx), dp(dy.to(gpu)), dp(gy), n, c);
  require_close(gdx, dx, 1e-4);
  std::vector<int> labels(static_cast<std::size_t>(n));
  for (std::int64_t r = 0; r < n; ++r) labels[static_cast<std::size_t>(r)] = static_cast<int>((r * 37) % c);
  tensor<float> glabels_store({n}, gpu);
  auto* glabels = reinterpret_cast<int*>(glabels_store.data());
  cuda_backend()->copy(glabels, gpu, labels.data(), cpu, labels.size() * sizeof(int));
  dx.fill(0.f);
  gdx.fill(0.f);
  ops::softmax_rows_backward(dx.data(), x.data(), lse.data(), coef.data(), labels.data(), n, c);
  cuda::softmax_rows_backward(dp(gdx), dp(gx), dp(glse), dp(coef.to(gpu)), glabels, n, c);
  require_close(gdx, dx, 1e-4);

  ftensor norm({n}), gnorm({n}, gpu);
  ops::l2_normalize_forward(y.data(), norm.data(), x.data(), n, c, 1e-12);
  cuda::l2_normalize_forward(dp(gy), dp(gnorm), dp(gx), n, c, 1e-12);
  require_close(gy, y);
  require_close(gnorm, norm);
  dx.fill(0.f);
  gdx.fill(0.f);
  ops::l2_normalize_backward(dx.data(), dy.data(), y.data(), norm.data(), n, c, 1e-12);
  cuda::l2_normalize_backward(dp(gdx), dp(dy.to(gpu)), dp(gy), dp(gnorm), n, c, 1e-12);
  require_close(gdx, dx, 1e-4);
}

TEST_CASE("the GPU draws the same gate noise and gates as the CPU", "[cuda]") {
  rng r(1234, 7);
  r.advance(1000);
  const std::uint64_t first = r.offset();
  const ftensor u = ftensor::uniform({64, 128}, r);
  ftensor gu({64, 128}, gpu);
  cuda::philox_uniform(dp(gu), gu.numel(), 1234, 7, first);
  CHECK(gu.to_vector() == u.to_vector());  // bit-identical

  ftensor logits = rand_t({64, 128}, 25, -2.f, 2.f).set_requires_grad();
  tape<float> tp;
  const ftensor b = ops::gate_sample(tp, logits, u, default_gate_tau);
  const ftensor dy = rand_t(b.dims(), 26);
  tp.backward(b, dy);
  ftensor gb(b.dims(), gpu), soft(b.dims(), gpu), gdl = ftensor::zeros(b.dims(), gpu);
  const ftensor gl = logits.to(gpu);
  cuda::gate_sample_forward(dp(gb), dp(soft), dp(gl), dp(gu), b.numel(), default_gate_tau);
  cuda::gate_sample_backward(dp(gdl), dp(dy.to(gpu)), dp(soft), b.numel(), default_gate_tau);
  CHECK(gb.to_vector() == b.to_vector());
  require_close(gdl, logits.grad());
  cuda::gate_threshold(dp(gb), dp(gl), b.numel());
  CHECK(gb.to_vector() == ops::gate_threshold(logits).to_vector());
}

namespace {
struct conv_case {
  int n, c_in, h, c_out, k, stride, pad;
};
ops::cpu::conv2d_params cpu_params(const conv_case& c) { return {c.n, c.c_in, c.h, c.h, c.c_out, c.k, c.k, c.stride, c.stride, c.pad, c.pad}; }
cuda::conv_geom gpu_geom(const conv_case& c) { return {c.n, c.c_in, c.h, c.h, c.c_out, c.k, c.k, c.stride, c.pad}; }
}  // namespace

TEST_CASE("our convolution kernels and cuDNN's match the CPU", "[cuda]") {
  for (const conv_case cc : {conv_case{4, 64, 16, 64, 3, 1, 1}, conv_case{3, 32, 15, 48, 3, 2, 1}, conv_case{2, 40, 9, 24, 1, 2, 0},
                             conv_case{2, 3, 20, 16, 7, 2, 3}}) {
    const auto p = cpu_params(cc);
    const auto g = gpu_geom(cc);
    const shape xs{cc.n, cc.c_in, cc.h, cc.h}, ws{cc.c_out, cc.c_in, cc.k, cc.k}, ys{cc.n, cc.c_out, p.out_h(), p.out_w()};
    const ftensor x = rand_t(xs, 27, 0.f, 1.f), w = rand_t(ws, 28, 0.f, 1.f), dy = rand_t(ys, 29, 0.f, 1.f);
    ftensor y(ys), dx = ftensor::zeros(xs), dw = ftensor::zeros(ws);
    ops::cpu::conv2d_forward(y.data(), x.data(), w.data(), p);
    ops::cpu::conv2d_backward_data(dx.data(), dy.data(), w.data(), p);
    ops::cpu::conv2d_backward_weight(dw.data(), dy.data(), x.data(), p);
    const ftensor gx = x.to(gpu), gw = w.to(gpu), gdy = dy.to(gpu);
    INFO("conv n=" << cc.n << " c_in=" << cc.c_in << " h=" << cc.h << " c_out=" << cc.c_out << " k=" << cc.k << " s=" << cc.stride);
    {
      ftensor gy(ys, gpu), gdx = ftensor::zeros(xs, gpu), gdw = ftensor::zeros(ws, gpu);
      cuda::conv2d_forward(dp(gy), dp(gx), dp(gw), g);
      cuda::conv2d_backward_data(dp(gdx), dp(gdy), dp(gw), g);
      cuda::conv2d_backward_weight(dp(gdw), dp(gdy), dp(gx), g);
      require_close(gy, y);
      require_close(gdx, dx);
      require_close(gdw, dw);
    }
    {
      ftensor gy(ys, gpu), gdx = ftensor::zeros(xs, gpu), gdw = ftensor::zeros(ws, gpu);
      cuda::cudnn::conv2d_forward(dp(gy), dp(gx), dp(gw), g);
      cuda::cudnn::conv2d_backward_data(dp(gdx), dp(gdy), dp(gw), g);
      cuda::cudnn::conv2d_backward_weight(dp(gdw), dp(gdy), dp(gx), g);
      require_close(gy, y);
      require_close(gdx, dx);
      require_close(gdw, dw);
    }
  }
}

TEST_CASE("gated convolutions match the CPU, and fused equals unfused on the GPU", "[cuda]") {
  for (double density : {1.0, 0.5, 0.1, 0.0}) {
    const conv_case cc{6, 64, 8, 64, 3, 1, 1};
    const auto p = cpu_params(cc);
    const auto g = gpu_geom(cc);
    const shape xs{cc.n, cc.c_in, cc.h, cc.h}, ws{cc.c_out, cc.c_in, 3, 3}, ys{cc.n, cc.c_out, cc.h, cc.h};
    rng r(30);
    ftensor mask({cc.n, cc.c_in});
    for (std::int64_t i = 0; i < mask.numel(); ++i) mask[i] = r.uniform_at(static_cast<std::uint64_t>(i)) < density ? 1.f : 0.f;
    // conv2's input h = relu(...) * mask: zero on closed channels.
    ftensor x = rand_t(xs, 31, 0.f, 1.f);
    for (std::int64_t i = 0; i < x.numel(); ++i) x[i] *= mask[i / (cc.h * cc.h)];
    const ftensor w = rand_t(ws, 32, 0.f, 1.f), dy = rand_t(ys, 33, 0.f, 1.f);
    const auto lists = ops::active_channels(mask);
    ftensor y(ys), dw = ftensor::zeros(ws);
    ops::cpu::conv2d_gated_input_forward(y.data(), x.data(), w.data(), p, lists);
    ops::cpu::conv2d_gated_input_backward_weight(dw.data(), dy.data(), x.data(), p, lists);
    const ftensor gx = x.to(gpu), gw = w.to(gpu), gmask = mask.to(gpu);
    const cuda::active_lists a(dp(gmask), cc.n, cc.c_in);
    ftensor gy(ys, gpu), gdw = ftensor::zeros(ws, gpu), dense(ys, gpu), gdw_dense = ftensor::zeros(ws, gpu);
    cuda::conv2d_gated_input_forward(dp(gy), dp(gx), dp(gw), g, a);
    cuda::conv2d_gated_input_backward_weight(dp(gdw), dp(dy.to(gpu)), dp(gx), g, a);
    cuda::conv2d_forward(dp(dense), dp(gx), dp(gw), g);
    cuda::conv2d_backward_weight(dp(gdw_dense), dp(dy.to(gpu)), dp(gx), g);
    INFO("density " << density);
    require_close(gy, y);
    require_close(gdw, dw);
    require_close(gy, dense.to(cpu));  // fused == unfused (dense conv of the masked input)
    require_close(gdw, gdw_dense.to(cpu));

    // conv1 in eval: only open output channels, BN folded, ReLU fused; unfused = dense conv, affine, relu, mask.
    const ftensor scale = rand_t({cc.c_out}, 34, 0.5f, 1.5f), shift = rand_t({cc.c_out}, 35, 0.1f, 0.5f);
    ftensor ref(ys);
    ops::cpu::conv2d_forward(ref.data(), x.data(), w.data(), p);
    const std::int64_t plane = cc.h * cc.h;
    for (std::int64_t i = 0; i < ref.numel(); ++i) {
      const std::int64_t o = (i / plane) % cc.c_out, smp = i / (plane * cc.c_out);
      ref[i] = mask[smp * cc.c_out + o] != 0.f ? std::max(ref[i] * scale[o] + shift[o], 0.f) : 0.f;
    }
    ftensor gh(ys, gpu);
    cuda::conv2d_gated_output_forward(dp(gh), dp(gx), dp(gw), dp(scale.to(gpu)), dp(shift.to(gpu)), g, a);
    require_close(gh, ref);
  }
}
