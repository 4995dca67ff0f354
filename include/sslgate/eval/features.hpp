#pragma once
// Frozen features of a data set through either path of one network, in eval mode (running BN statistics,
// deterministic gates), with the gated path's measured FLOPs density (METHOD.md §3, §8).
#include <sslgate/data/loader.hpp>
#include <sslgate/models/ssl_network.hpp>

#include <vector>

namespace sslgate::eval {

struct feature_set {
  tensor<float> features;           // [N, C4]
  std::vector<int> labels;
  double density = 1.0;             // gated path: mean over images of the FLOPs ratio rho
  std::vector<double> layer_density;  // gated path: mean open-channel fraction per block
};

// Runs every image of ds (eval transform `recipe`) through the backbone on `route`.
inline feature_set extract_features(resnet<float>& net, std::shared_ptr<const data::dataset> ds, const data::view_recipe& recipe, path route,
                                    std::int64_t batch = 256, int workers = 2) {
  data::two_view_loader loader(ds, {recipe, recipe}, {.batch_size = batch, .shuffle = false, .drop_last = false, .workers = workers, .seed = 0});
  loader.set_epoch(0);
  feature_set out;
  out.features = tensor<float>(shape{ds->size(), net.feature_dim()});
  const auto flops = net.flops(recipe.size, recipe.size);
  double macs = 0;
  std::vector<double> open;  // per block: summed open fraction
  data::two_view_batch b;
  std::int64_t row = 0;
  const device dev = device_of(net);  // batches go to the network's device, features come back to the host
  while (loader.next(b)) {
    tape<float> none(grad_mode::off);
    forward_state<float> st;
    st.training = false;
    st.route = route;
    const tensor<float> f = net.forward(none, b.view1.to(dev), st).to(cpu);
    std::copy_n(f.data(), f.numel(), out.features.data() + row * net.feature_dim());
    row += f.dim(0);
    for (int l : b.labels) out.labels.push_back(l);
    if (route == path::gated) {
      std::vector<tensor<float>> masks;
      open.resize(st.gates.size(), 0.0);
      for (std::size_t l = 0; l < st.gates.size(); ++l) {
        masks.push_back(st.gates[l].mask);
        for (int a : st.gates[l].active) open[l] += static_cast<double>(a) / static_cast<double>(st.gates[l].mask.dim(1));
      }
      macs += flops.gated_macs(masks) * static_cast<double>(f.dim(0));
    }
  }
  if (route == path::gated) {
    out.density = macs / static_cast<double>(row) / static_cast<double>(flops.dense_macs);
    for (double& o : open) out.layer_density.push_back(o / static_cast<double>(row));
  }
  return out;
}

}  // namespace sslgate::eval
