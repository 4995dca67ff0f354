#pragma once
// BasicBlock with a channel gate (METHOD.md §1.2–1.3). One set of conv weights, two paths:
//   m   = gate(x)                                   gated path only, from the block input
//   h   = relu(bn1_p(conv1(x))) [* m]               bn1_d / bn1_g per path
//   out = relu(bn2_p(conv2(h)) + shortcut(x))       shortcut = x or bn(conv1x1_s(x)), shared by both paths
// Fused gated path: in training conv2 reduces only over open channels (forward and weight gradient) where
// that beats the batched dense kernel on the masked input (same values: closed channels are zeros); conv1
// stays dense for BN1's batch statistics and the gate's straight-through gradient. In eval, conv1 computes only
// each sample's open output channels with BN1 folded and ReLU fused, and conv2 reduces only over them.
#include <sslgate/gating/forward_state.hpp>
#include <sslgate/layers/batchnorm.hpp>
#include <sslgate/layers/conv2d.hpp>
#include <sslgate/ops/cpu/gated_conv.hpp>
#include <sslgate/ops/gated_conv.hpp>

#include <cmath>
#include <optional>
#include <type_traits>

namespace sslgate {

template <real T>
class gated_basic_block {
 public:
  using value_type = T;
  gated_basic_block() = default;
  gated_basic_block(int c_in, int c_out, int stride, rng& r)
      : conv1(c_in, c_out, 3, stride, 1, r),
        conv2(c_out, c_out, 3, 1, 1, r),
        bn1_d(c_out), bn2_d(c_out), bn1_g(c_out), bn2_g(c_out),
        gate(c_in, c_out, r) {
    if (stride != 1 || c_in != c_out) downsample = {layers::conv2d<T>(c_in, c_out, 1, stride, 0, r), layers::batchnorm<T>(c_out)};
  }

  tensor<T> forward(tape<T>& tp, const tensor<T>& x, forward_state<T>& st) {
    if (st.route == path::dense) return finish(tp, x, conv2_dense(tp, relu_bn(tp, conv1_dense(tp, x, st), bn1_d, st), st), bn2_d, st);
    const std::size_t index = st.gates.size();
    if (st.fused && !st.training && !tp.recording() && cpu_kernel_applies(x) && ops::cpu::gated::fuses_gate(cpu_params(x)))
      return eval_gate_in_kernel(x, st);
    const tensor<T> u = index < st.given_noise.size() ? st.given_noise[index] : tensor<T>{};
    st.gates.push_back(gate.forward(tp, x, st.training, st.tau, st.noise, u));
    if (index < st.forced_masks.size()) force(st.gates.back(), st.forced_masks[index]);
    const gate_result<T>& g = st.gates.back();
    st.executed_macs += gate_macs() * x.dim(0);
    if (st.fused && !st.training && !tp.recording()) return eval_fused(x, g, st);
    const tensor<T> mask = ops::reshape(tp, g.mask, shape{x.dim(0), conv1.c_out(), 1, 1});
    const tensor<T> h = ops::mul(tp, relu_bn(tp, conv1_dense(tp, x, st), bn1_g, st), mask);
    if (!st.fused) return finish(tp, x, conv2_dense(tp, h, st), bn2_g, st);
    auto lists = ops::active_channels(g.mask);
    // On the GPU the gathered implicit GEMM always skips; on the CPU only where that beats the dense kernel.
    if (!st.skip_always && h.on_cpu() && !ops::per_sample_skip_pays(h.dim(2) * h.dim(3), lists))
      return finish(tp, x, conv2_dense(tp, h, st), bn2_g, st);
    const tensor<T> o = ops::conv2d_gated_input(tp, h, conv2.weight, std::move(lists), 1, 1, &st.executed_macs);
    return finish(tp, x, o, bn2_g, st);
  }

  template <class V>
  void visit(V& v, const std::string& prefix) const {
    conv1.visit(v, join_name(prefix, "conv1"));
    conv2.visit(v, join_name(prefix, "conv2"));
    bn1_d.visit(v, join_name(prefix, "bn1_d"));
    bn2_d.visit(v, join_name(prefix, "bn2_d"));
    bn1_g.visit(v, join_name(prefix, "bn1_g"));
    bn2_g.visit(v, join_name(prefix, "bn2_g"));
    if (downsample) {
      downsample->first.visit(v, join_name(prefix, "downsample.0"));
      downsample->second.visit(v, join_name(prefix, "downsample.1"));
    }
    gate.visit(v, join_name(prefix, "gate"));
  }

  int c_in() const { return conv1.c_in(); }
  int c_out() const { return conv1.c_out(); }
  int stride() const { return conv1.stride; }
  // The gate's two 1x1 convs on 1x1 maps, per sample (METHOD.md §3, F^mask).
  std::int64_t gate_macs() const { return static_cast<std::int64_t>(c_in()) * (c_in() / 4) + static_cast<std::int64_t>(c_in() / 4) * c_out(); }

  layers::conv2d<T> conv1, conv2;
  layers::batchnorm<T> bn1_d, bn2_d, bn1_g, bn2_g;
  std::optional<std::pair<layers::conv2d<T>, layers::batchnorm<T>>> downsample;
  channel_gate<T> gate;

 private:
  ops::cpu::gated::prepared_weights eval_weights_;  // the fused eval kernel's weight layouts (float, CPU)

  static std::int64_t conv_macs(const tensor<T>& y, const tensor<T>& w) { return y.numel() * w.dim(1) * w.dim(2) * w.dim(3); }
  tensor<T> conv1_dense(tape<T>& tp, const tensor<T>& x, forward_state<T>& st) {
    tensor<T> y = conv1.forward(tp, x);
    st.executed_macs += conv_macs(y, conv1.weight);
    return y;
  }
  tensor<T> conv2_dense(tape<T>& tp, const tensor<T>& h, forward_state<T>& st) {
    tensor<T> y = conv2.forward(tp, h);
    st.executed_macs += conv_macs(y, conv2.weight);
    return y;
  }
  static tensor<T> relu_bn(tape<T>& tp, const tensor<T>& x, layers::batchnorm<T>& bn, const forward_state<T>& st) {
    return bn.forward_relu(tp, x, st.training);
  }
  tensor<T> shortcut(tape<T>& tp, const tensor<T>& x, forward_state<T>& st) {
    if (!downsample) return x;
    tensor<T> s = downsample->first.forward(tp, x);
    st.executed_macs += conv_macs(s, downsample->first.weight);
    return downsample->second.forward(tp, s, st.training);
  }
  tensor<T> finish(tape<T>& tp, const tensor<T>& x, const tensor<T>& o, layers::batchnorm<T>& bn2, forward_state<T>& st) {
    return bn2.forward_relu(tp, o, st.training, shortcut(tp, x, st));
  }

  // Eval, no tape: per sample, conv1 on the open output channels only (BN1 folded into the gathered
  // weights, ReLU fused), then conv2 reducing over exactly those channels.
  tensor<T> eval_fused(const tensor<T>& x, const gate_result<T>& g, forward_state<T>& st) {
    const int n = static_cast<int>(x.dim(0)), c_in = this->c_in(), c_out = this->c_out();
    const ops::cpu::conv2d_params p1 = ops::conv2d_geometry(x, conv1.weight, conv1.stride, conv1.padding);
    const int ho = p1.out_h(), wo = p1.out_w();
    const std::int64_t plane = static_cast<std::int64_t>(ho) * wo, in_plane = x.dim(2) * x.dim(3);
    const auto [s1, b1] = bn1_g.eval_affine();
    if (ops::on_device("gated_basic_block", x)) {
      if constexpr (ops::cuda_kernels<T>) {
        const cuda::active_lists open(g.mask.data(), n, c_out);
        const auto scale = ops::to_device_buffer(s1, x.dev()), shift = ops::to_device_buffer(b1, x.dev());
        tensor<T> h(shape{n, c_out, ho, wo}, x.dev()), o(shape{n, c_out, ho, wo}, x.dev());
        cuda::conv2d_gated_output_forward(h.data(), x.data(), conv1.weight.data(), scale.data(), shift.data(), ops::detail::device_geometry(p1), open);
        cuda::conv2d_gated_input_forward(o.data(), h.data(), conv2.weight.data(), {n, c_out, ho, wo, c_out, 3, 3, 1, 1}, open);
        for (int c : g.active) st.executed_macs += static_cast<std::int64_t>(c) * (static_cast<std::int64_t>(c_in) + c_out) * 9 * plane;
        tape<T> none(grad_mode::off);
        return finish(none, x, o, bn2_g, st);
      }
    }
    std::vector<std::vector<int>> lists = ops::active_channels(g.mask);
    if (cpu_kernel_applies(x)) return cpu_kernel(x, lists, {}, st);
    tensor<T> o = tensor<T>::zeros(shape{n, c_out, ho, wo});
    std::vector<T> w1, w2, h;
    for (int i = 0; i < n; ++i) {
      const auto& list = lists[static_cast<std::size_t>(i)];
      const int c = static_cast<int>(list.size());
      if (c == 0) continue;  // conv2 of all-zero input: o stays 0
      w1.resize(static_cast<std::size_t>(c) * c_in * 9);
      for (int j = 0; j < c; ++j) {
        const int a = list[static_cast<std::size_t>(j)];
        for (std::int64_t t = 0; t < static_cast<std::int64_t>(c_in) * 9; ++t)
          w1[static_cast<std::size_t>(j * c_in * 9 + t)] = conv1.weight[a * c_in * 9 + t] * s1[static_cast<std::size_t>(a)];
      }
      h.resize(static_cast<std::size_t>(c * plane));
      ops::cpu::conv2d_params q1 = p1;
      q1.n = 1;
      q1.c_out = c;
      ops::cpu::conv2d_forward(h.data(), x.data() + static_cast<std::int64_t>(i) * c_in * in_plane, w1.data(), q1);
      for (int j = 0; j < c; ++j) {
        const T shift = b1[static_cast<std::size_t>(list[static_cast<std::size_t>(j)])];
        T* hj = h.data() + j * plane;
        for (std::int64_t t = 0; t < plane; ++t) hj[t] = std::max(hj[t] + shift, T(0));
      }
      w2.resize(static_cast<std::size_t>(c_out) * c * 9);
      ops::cpu::gather_input_columns(w2.data(), conv2.weight.data(), c_out, c_out, list, 9);
      ops::cpu::conv2d_params q2{1, c, ho, wo, c_out, 3, 3, 1, 1, 1, 1};
      ops::cpu::conv2d_forward(o.data() + static_cast<std::int64_t>(i) * c_out * plane, h.data(), w2.data(), q2);
      st.executed_macs += static_cast<std::int64_t>(c) * (static_cast<std::int64_t>(c_in) + c_out) * 9 * plane;
    }
    tape<T> none(grad_mode::off);
    return finish(none, x, o, bn2_g, st);
  }

  // Whether the float CPU kernels of the fused eval path (ops/cpu/gated_conv.hpp) take this block and input.
  bool cpu_kernel_applies(const tensor<T>& x) const {
    return std::is_same_v<T, float> && x.on_cpu() && conv1.padding == 1 && conv2.padding == 1 && conv1.weight.dim(2) == 3 &&
           ops::cpu::gated::gated_block_supported(cpu_params(x));
  }
  ops::cpu::gated::block_params cpu_params(const tensor<T>& x) const {
    return {static_cast<int>(x.dim(0)), c_in(), static_cast<int>(x.dim(2)), static_cast<int>(x.dim(3)), c_out(), conv1.stride};
  }

  // The fused eval block on the CPU kernels (float): channel lists given, or gate (ops::cpu::gated::gate_fn) run
  // inside. BN2, the shortcut (its BN folded too; at stride 2 the downsample conv itself) and the ReLU run inside
  // the kernel as each output is written.
  tensor<T> cpu_kernel(const tensor<T>& x, std::vector<std::vector<int>>& lists, const ops::cpu::gated::gate_fn& gate, forward_state<T>& st) {
    if constexpr (!std::is_same_v<T, float>) {
      throw value_error("gated_basic_block: the CPU block kernels are float only");
    } else {
      const ops::cpu::gated::block_params bp = cpu_params(x);
      tape<T> none(grad_mode::off);
      const auto [s1, b1] = bn1_g.eval_affine();
      const auto [s2, b2] = bn2_g.eval_affine();
      ops::cpu::gated::block_tail tail{s2.data(), b2.data(), x.data()};
      tensor<T> residual;
      std::pair<std::vector<T>, std::vector<T>> res_bn;
      if (downsample) {
        res_bn = downsample->second.eval_affine();
        const layers::conv2d<T>& ds = downsample->first;
        if (ops::cpu::gated::fuses_shortcut(bp) && ds.stride == conv1.stride && ds.padding == 0 && ds.weight.dim(2) == 1) {
          tail = {s2.data(), b2.data(), nullptr, res_bn.first.data(), res_bn.second.data(), ds.weight.data()};  // computed inside
        } else {
          residual = downsample->first.forward(none, x);
          st.executed_macs += conv_macs(residual, downsample->first.weight);
          tail = {s2.data(), b2.data(), residual.data(), res_bn.first.data(), res_bn.second.data()};
        }
      }
      tensor<T> o(shape{bp.n, c_out(), bp.oh(), bp.ow()});
      st.executed_macs += ops::cpu::gated::gated_block_forward(o.data(), x.data(), conv1.weight.data(), conv2.weight.data(), s1.data(),
                                                               b1.data(), tail, bp, lists, eval_weights_, gate);
      return o;
    }
  }

  // Eval where the kernel runs one sample at a time (ops::cpu::gated::fuses_gate): the gate too, on the channel
  // means of the kernel's own copy of each sample, so that x is read once for both. Its logits equal the gate's
  // forward up to float rounding; a forced mask still decides what opens.
  tensor<T> eval_gate_in_kernel(const tensor<T>& x, forward_state<T>& st) {
    const std::size_t index = st.gates.size();
    const std::int64_t n = x.dim(0), c = c_out();
    gate_result<T> g;
    g.logits = tensor<T>(shape{n, c});
    std::vector<T> keep;
    const T* forced = nullptr;
    if (index < st.forced_masks.size()) {
      check_same_shape("gated_basic_block", g.logits, st.forced_masks[index]);
      forced = ops::host_view(st.forced_masks[index], keep);
    }
    const auto eval_gate = gate.eval_form();
    std::vector<std::vector<int>> lists;
    const ops::cpu::gated::gate_fn open = [&](int i, const float* means, std::vector<int>& list) {
      T* l = g.logits.data() + i * c;
      if constexpr (std::is_same_v<T, float>) eval_gate.logits(means, l);  // the kernels are float only
      for (int k = 0; k < c; ++k)
        if (forced ? forced[i * c + k] != T(0) : l[k] >= T(0)) list.push_back(k);
    };
    tensor<T> o = cpu_kernel(x, lists, open, st);
    g.mask = forced ? st.forced_masks[index] : ops::gate_threshold(g.logits);
    g.active = open_counts(g.mask);
    st.gates.push_back(std::move(g));
    st.executed_macs += gate_macs() * n;
    return o;
  }

  static void force(gate_result<T>& g, const tensor<T>& mask) {
    check_same_shape("gated_basic_block", g.mask, mask);
    g.mask = mask;
    g.active = open_counts(mask);
  }
};

}  // namespace sslgate
