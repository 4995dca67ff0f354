#pragma once
// What one forward pass of a (gated) network needs besides its input, and what it reports back.
#include <sslgate/gating/channel_gate.hpp>
#include <sslgate/layers/module.hpp>

#include <vector>

namespace sslgate {

template <real T>
struct forward_state {
  bool training = true;
  path route = path::dense;
  bool fused = true;                   // gated path: skip closed channels; false runs dense conv x mask (the oracle)
  bool skip_always = false;            // fused training conv2: skip per sample even where the batched dense kernel is faster
  double tau = default_gate_tau;
  rng* noise = nullptr;                // gate noise for the gated path in training
  std::vector<tensor<T>> given_noise;  // optional per-block uniform noise u [N, C_out] (reference cases)
  std::vector<tensor<T>> forced_masks; // optional per-block 0/1 masks replacing the gates' decisions (tests, ablations)
  std::vector<gate_result<T>> gates;   // filled by the gated blocks, in order
  std::int64_t executed_macs = 0;      // convolution and gate MACs launched, summed over the batch
};

}  // namespace sslgate
