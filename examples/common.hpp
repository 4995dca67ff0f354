#pragma once
// What the example programs share: the run configuration (written as config.json and stored in every
// checkpoint), the data sets, the network a configuration describes, and the evaluation of both paths.
#include <sslgate/data/augment.hpp>
#include <sslgate/data/dataset.hpp>
#include <sslgate/data/image_folder.hpp>
#include <sslgate/eval/features.hpp>
#include <sslgate/eval/knn.hpp>
#include <sslgate/eval/linear_probe.hpp>
#include <sslgate/models/ssl_network.hpp>

#include <fmt/core.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <string>
#if SSLGATE_WITH_CUDA
#include <sslgate/core/cuda/runtime.hpp>
#endif

namespace sslgate::examples {

using json = nlohmann::json;

struct config {
  std::string dataset = "cifar10", data = "../shared/data/cifar-10-batches-bin", out = "out";
  int depth = 18;
  double width = 1.0;
  int proj_dim = 2048;
  std::string method = "vicreg", mode = "dual";
  double td = 0.5, lambda = 5, gamma = 1, alpha = 0.02, tau = 2.0 / 3.0;
  int epochs = 500, batch = 256, warmup = 10;
  double lr = 0.3, weight_decay = 1e-4;  // lr 0.3 per 256 images = 0.6 at the paper's global batch 512
  int threads = 2, workers = 2;
  std::uint64_t seed = 5;
  std::int64_t max_steps = 0;   // > 0 stops each run after that many steps in total (smoke runs)
  int log_every = 20, keep = 2;
  bool skip_nonfinite = false;
  bool evaluate = true;
  std::int64_t train_limit = 0;       // > 0: train on this many training images spread over the set (quick runs)
  std::int64_t eval_train_limit = 0;  // > 0: at most this many training images in the kNN bank
  int knn_every = 0;                  // > 0: kNN of both paths after every this many epochs (knn.csv)
  std::string device = "cpu";         // cpu, or cuda (GPU 0) in a build with the CUDA backend
};

// config.json and checkpoint metadata: every field by name; a missing key keeps its default.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(config, dataset, data, out, depth, width, proj_dim, method, mode, td, lambda, gamma, alpha, tau,
                                                epochs, batch, warmup, lr, weight_decay, threads, workers, seed, max_steps, log_every, keep,
                                                skip_nonfinite, evaluate, train_limit, eval_train_limit, knn_every, device)

// The device --device names: "cpu", or "cuda" (GPU 0) where the program is built with the CUDA backend and a
// GPU is present; otherwise a clear error.
inline device compute_device(const std::string& name) {
  if (name == "cpu") return cpu;
  SSLGATE_CHECK(name == "cuda", value_error, "--device", "unknown device '{}' (cpu, cuda)", name);
#if SSLGATE_WITH_CUDA
  SSLGATE_CHECK(cuda::device_count() > 0, value_error, "--device", "no CUDA device found");
  return cuda::gpu(0);
#else
  fail<value_error>("--device", "this program is built without the CUDA backend (configure with SSLGATE_WITH_CUDA=ON)");
#endif
}

// Train and test splits of a data set, their transforms and number of classes.
struct splits {
  std::shared_ptr<const data::dataset> train, test;
  int num_classes = 10;
  data::two_view_recipe recipe;
  data::view_recipe eval;
};

// Fashion-MNIST: 28x28 grey, padded to 32x32 and repeated over 3 channels so the CIFAR recipe applies.
inline data::image_array as_rgb32(const data::image_array& g) {
  data::image_array out;
  out.count = g.count, out.h = out.w = 32, out.c = 3, out.labels = g.labels, out.num_classes = g.num_classes;
  out.pixels.assign(static_cast<std::size_t>(g.count) * 32 * 32 * 3, 0);
  for (std::int64_t i = 0; i < g.count; ++i)
    for (int y = 0; y < 28; ++y)
      for (int x = 0; x < 28; ++x)
        for (int c = 0; c < 3; ++c)
          out.pixels[static_cast<std::size_t>(((i * 32 + y + 2) * 32 + x + 2) * 3 + c)] = g.pixels[static_cast<std::size_t>((i * 28 + y) * 28 + x)];
  return out;
}

// An in-memory array as a data set of the splits.
inline std::shared_ptr<const data::dataset> held(data::image_array a) { return std::make_shared<const data::image_array>(std::move(a)); }

// Train and test splits of c.dataset, read from the official files in c.data.
inline splits load_splits_all(const config& c) {
  namespace fs = std::filesystem;
  const fs::path dir = c.data;
  splits s;
  if (c.dataset == "cifar10") {
    std::vector<fs::path> train;
    for (int i = 1; i <= 5; ++i)
      if (fs::exists(dir / fmt::format("data_batch_{}.bin", i))) train.push_back(dir / fmt::format("data_batch_{}.bin", i));
    SSLGATE_CHECK(!train.empty(), io_error, "pretrain", "no data_batch_*.bin in {}", dir.string());
    s.train = held(data::read_cifar10(train));
    s.test = held(data::read_cifar10(dir / "test_batch.bin"));
  } else if (c.dataset == "cifar100") {
    s.train = held(data::read_cifar100(dir / "train.bin"));
    s.test = held(data::read_cifar100(dir / "test.bin"));
    s.num_classes = 100;
  } else if (c.dataset == "stl10") {
    s.train = held(data::read_stl10(dir / "train_X.bin", dir / "train_y.bin"));
    s.test = held(data::read_stl10(dir / "test_X.bin", dir / "test_y.bin"));
  } else if (c.dataset == "imagenet100") {
    // ImageFolder layout: DIR/train/<class>/*.jpg and DIR/val/<class>/*.jpg, the same class folders in both.
    auto train = std::make_shared<const data::image_folder>(dir / "train");
    auto test = std::make_shared<const data::image_folder>(dir / "val");
    SSLGATE_CHECK(train->classes() == test->classes(), io_error, "pretrain", "{} and {} hold different class folders", (dir / "train").string(),
                  (dir / "val").string());
    s.num_classes = static_cast<int>(train->classes().size());
    s.train = train;
    s.test = test;
  } else if (c.dataset == "fashion-mnist") {
    s.train = held(as_rgb32(data::read_idx(dir / "train-images-idx3-ubyte.gz", dir / "train-labels-idx1-ubyte.gz")));
    s.test = held(as_rgb32(data::read_idx(dir / "t10k-images-idx3-ubyte.gz", dir / "t10k-labels-idx1-ubyte.gz")));
    const std::array<float, 3> mean{0.2860f, 0.2860f, 0.2860f}, sd{0.3530f, 0.3530f, 0.3530f};
    s.recipe = {data::presets::ssl_view(32, mean, sd, 0), data::presets::ssl_view(32, mean, sd, 0)};
    s.eval = data::presets::eval(32, 0, mean, sd);
    return s;
  } else {
    fail<value_error>("pretrain", "unknown --dataset '{}' (cifar10, cifar100, stl10, imagenet100, fashion-mnist)", c.dataset);
  }
  s.recipe = data::presets::by_name(c.dataset);
  s.eval = data::presets::eval_by_name(c.dataset);
  return s;
}

// At most n images of a spread over it (n <= 0: all of it).
inline std::shared_ptr<const data::dataset> limit(std::shared_ptr<const data::dataset> a, std::int64_t n) {
  if (n <= 0 || n >= a->size()) return a;
  return std::make_shared<const data::spread_subset>(std::move(a), n);
}

// As load_splits_all, with c.train_limit applied to the training split.
inline splits load_splits(const config& c) {
  splits s = load_splits_all(c);
  s.train = limit(s.train, c.train_limit);
  return s;
}

// The network a configuration describes (weights drawn from init).
inline ssl_network<float> make_network(const config& c, rng& init) {
  const bool large = c.dataset == "stl10" || c.dataset == "imagenet100";  // 96x96 and 224x224: the ImageNet stem
  return ssl_network<float>({{c.depth, large ? stem_kind::imagenet : stem_kind::cifar, c.width}, c.proj_dim, c.proj_dim,
                             c.method == "simsiam" ? std::max(c.proj_dim / 4, 1) : 0},
                            init);
}

// Parameters and BN buffers under the reference state-dict names.
inline std::vector<named_tensor<float>> model_state(ssl_network<float>& net) {
  tensor_visitor<float> v;
  net.visit(v, "");
  std::vector<named_tensor<float>> all = v.params;
  all.insert(all.end(), v.buffers.begin(), v.buffers.end());
  return all;
}

struct eval_options {
  std::int64_t train_limit = 0;  // > 0: at most this many training images in the kNN bank and the probe
  int probe_epochs = 0;          // 0: no linear probe
  int workers = 2;
};

// kNN (k=1 Euclidean, k=20 cosine) and optionally a linear probe on frozen backbone features of both paths;
// for the gated path the measured FLOPs density on the test set and the mean open fraction of every block.
inline json evaluate_paths(ssl_network<float>& net, const splits& data, const eval_options& o) {
  const auto bank = limit(data.train, o.train_limit);
  const int classes = data.num_classes;
  json result = json::object();
  for (path route : {path::dense, path::gated}) {
    const auto tr = eval::extract_features(net.backbone, bank, data.eval, route, 256, o.workers);
    const auto te = eval::extract_features(net.backbone, data.test, data.eval, route, 256, o.workers);
    json r = {{"knn1_euclidean", eval::knn_accuracy(tr.features, tr.labels, te.features, te.labels, 1, eval::knn_metric::euclidean, classes)},
              {"knn20_cosine", eval::knn_accuracy(tr.features, tr.labels, te.features, te.labels, 20, eval::knn_metric::cosine, classes)},
              {"flops_density", te.density},
              {"flops_reduction", 1 - te.density}};
    if (route == path::gated) r["layer_density"] = te.layer_density;
    if (o.probe_epochs > 0)
      r["linear_probe"] = eval::linear_probe_accuracy(tr.features, tr.labels, te.features, te.labels, classes, {.epochs = o.probe_epochs});
    result[route == path::dense ? "dense" : "gated"] = r;
  }
  return result;
}

// The paper's Table 1 row (METHOD.md §9) for one run.
inline void print_table_row(const std::string& dataset, double td, const json& r) {
  const auto pct = [](const json& v) { return 100 * v.get<double>(); };
  const json &d = r["dense"], &g = r["gated"];
  fmt::print("\n| data set | t_d | dense kNN k=1 | dense kNN k=20 | gated kNN k=1 | gated kNN k=20 | gated FLOPs reduction |\n");
  fmt::print("|---|---|---|---|---|---|---|\n");
  fmt::print("| {} | {:.0f}% | {:.2f}% | {:.2f}% | {:.2f}% | {:.2f}% | {:.2f}% |\n", dataset, 100 * td, pct(d["knn1_euclidean"]), pct(d["knn20_cosine"]),
             pct(g["knn1_euclidean"]), pct(g["knn20_cosine"]), pct(g["flops_reduction"]));
  if (d.contains("linear_probe"))
    fmt::print("linear probe: dense {:.2f}%, gated {:.2f}%\n", pct(d["linear_probe"]), pct(g["linear_probe"]));
  std::vector<std::string> layers;
  for (const auto& v : g["layer_density"]) layers.push_back(fmt::format("{:.3f}", v.get<double>()));
  fmt::print("gated path, open fraction per block: {}\n", fmt::join(layers, " "));
}

}  // namespace sslgate::examples
