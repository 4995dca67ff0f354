#pragma once
// The network of one SSL run: a gated ResNet backbone and the projector shared by both paths, plus a predictor
// for the predictor-based objectives (SimSiam). Parameter names: backbone.*, projector.*, predictor.*.
#include <sslgate/models/resnet.hpp>

#include <optional>

namespace sslgate {

struct ssl_network_config {
  resnet_config backbone;
  int projector_hidden = 2048;
  int projector_out = 2048;
  int predictor_hidden = 0;  // > 0 adds a predictor out -> hidden -> out (SimSiam: 512)
};

// predictor: Linear-BN-ReLU-Linear (names 0, 1, 3).
template <real T>
using predictor_mlp = layers::sequential<layers::linear<T>, layers::batchnorm<T>, layers::relu<T>, layers::linear<T>>;

template <real T>
class ssl_network {
 public:
  using value_type = T;
  ssl_network(const ssl_network_config& cfg, rng& r)
      : backbone(cfg.backbone, r), projector(make_projector<T>(backbone.feature_dim(), cfg.projector_hidden, cfg.projector_out, r)), cfg_(cfg) {
    if (cfg.predictor_hidden > 0)
      predict.emplace(layers::linear<T>(cfg.projector_out, cfg.predictor_hidden, r), layers::batchnorm<T>(cfg.predictor_hidden),
                      layers::relu<T>{}, layers::linear<T>(cfg.predictor_hidden, cfg.projector_out, r));
  }

  template <class V>
  void visit(V& v, const std::string& prefix) const {
    backbone.visit(v, join_name(prefix, "backbone"));
    projector.visit(v, join_name(prefix, "projector"));
    if (predict) predict->visit(v, join_name(prefix, "predictor"));
  }

  // All parameters, and the subset that belongs to the gates (no weight decay, METHOD.md §2).
  std::vector<tensor<T>> parameters() const {
    std::vector<tensor<T>> out;
    for (auto& p : params_of(*this)) out.push_back(p.value);
    return out;
  }
  std::vector<tensor<T>> gate_parameters() const {
    std::vector<tensor<T>> out;
    for (auto& p : params_of(*this))
      if (p.name.find(".gate.") != std::string::npos) out.push_back(p.value);
    return out;
  }
  std::vector<tensor<T>> non_gate_parameters() const {
    std::vector<tensor<T>> out;
    for (auto& p : params_of(*this))
      if (p.name.find(".gate.") == std::string::npos) out.push_back(p.value);
    return out;
  }
  const ssl_network_config& config() const { return cfg_; }

  resnet<T> backbone;
  projector_mlp<T> projector;
  std::optional<predictor_mlp<T>> predict;

 private:
  ssl_network_config cfg_;
};

}  // namespace sslgate
