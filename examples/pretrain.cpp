// pretrain: self-supervised pre-training of one ResNet whose weights serve a dense and a gated path
// (VICReg-Dual, METHOD.md §5–6), then kNN evaluation of both paths and the gated path's FLOPs reduction.
//   pretrain --dataset cifar10 --data DIR --epochs 500            the paper's recipe (defaults = METHOD.md §6)
//   pretrain --config out/config.json                             replays a resolved configuration
//   pretrain --resume out/checkpoint-e0013.safetensors            continues a run bit for bit
// Writes into --out: config.json, metrics.csv, metrics.jsonl, checkpoint-eNNNN.safetensors (the last --keep).
#include <sslgate/data/augment.hpp>
#include <sslgate/data/dataset.hpp>
#include <sslgate/data/loader.hpp>
#include <sslgate/eval/features.hpp>
#include <sslgate/eval/knn.hpp>
#include <sslgate/losses/barlow_twins.hpp>
#include <sslgate/losses/simclr.hpp>
#include <sslgate/losses/simsiam.hpp>
#include <sslgate/losses/vicreg.hpp>
#include <sslgate/optim/lars.hpp>
#include <sslgate/optim/schedule.hpp>
#include <sslgate/train/checkpoint.hpp>
#include <sslgate/train/dual_step.hpp>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <variant>

using namespace sslgate;
using json = nlohmann::json;

namespace {

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
  std::int64_t eval_train_limit = 0;  // > 0: at most this many training images in the kNN bank
};

void to_json(json& j, const config& c) {
  j = json{{"dataset", c.dataset}, {"data", c.data}, {"out", c.out}, {"depth", c.depth}, {"width", c.width}, {"proj_dim", c.proj_dim},
           {"method", c.method}, {"mode", c.mode}, {"td", c.td}, {"lambda", c.lambda}, {"gamma", c.gamma}, {"alpha", c.alpha}, {"tau", c.tau},
           {"epochs", c.epochs}, {"batch", c.batch}, {"warmup", c.warmup}, {"lr", c.lr}, {"weight_decay", c.weight_decay},
           {"threads", c.threads}, {"workers", c.workers}, {"seed", c.seed}, {"max_steps", c.max_steps}, {"log_every", c.log_every},
           {"keep", c.keep}, {"skip_nonfinite", c.skip_nonfinite}, {"evaluate", c.evaluate}, {"eval_train_limit", c.eval_train_limit}};
}
void from_json(const json& j, config& c) {
  const config d;
  c.dataset = j.value("dataset", d.dataset), c.data = j.value("data", d.data), c.out = j.value("out", d.out);
  c.depth = j.value("depth", d.depth), c.width = j.value("width", d.width), c.proj_dim = j.value("proj_dim", d.proj_dim);
  c.method = j.value("method", d.method), c.mode = j.value("mode", d.mode), c.td = j.value("td", d.td);
  c.lambda = j.value("lambda", d.lambda), c.gamma = j.value("gamma", d.gamma), c.alpha = j.value("alpha", d.alpha), c.tau = j.value("tau", d.tau);
  c.epochs = j.value("epochs", d.epochs), c.batch = j.value("batch", d.batch), c.warmup = j.value("warmup", d.warmup);
  c.lr = j.value("lr", d.lr), c.weight_decay = j.value("weight_decay", d.weight_decay), c.threads = j.value("threads", d.threads);
  c.workers = j.value("workers", d.workers), c.seed = j.value("seed", d.seed), c.max_steps = j.value("max_steps", d.max_steps);
  c.log_every = j.value("log_every", d.log_every), c.keep = j.value("keep", d.keep), c.skip_nonfinite = j.value("skip_nonfinite", d.skip_nonfinite);
  c.evaluate = j.value("evaluate", d.evaluate), c.eval_train_limit = j.value("eval_train_limit", d.eval_train_limit);
}

// Train and test splits of a data set, as images of one size with 3 channels.
struct splits {
  std::shared_ptr<data::image_array> train, test;
  data::two_view_recipe recipe;
  data::view_recipe eval;
};

// Fashion-MNIST: 28x28 grey, padded to 32x32 and repeated over 3 channels so the CIFAR recipe applies.
std::shared_ptr<data::image_array> as_rgb32(const data::image_array& g) {
  auto out = std::make_shared<data::image_array>();
  out->count = g.count, out->h = out->w = 32, out->c = 3, out->labels = g.labels, out->num_classes = g.num_classes;
  out->pixels.assign(static_cast<std::size_t>(g.count) * 32 * 32 * 3, 0);
  for (std::int64_t i = 0; i < g.count; ++i)
    for (int y = 0; y < 28; ++y)
      for (int x = 0; x < 28; ++x)
        for (int c = 0; c < 3; ++c)
          out->pixels[static_cast<std::size_t>(((i * 32 + y + 2) * 32 + x + 2) * 3 + c)] = g.pixels[static_cast<std::size_t>((i * 28 + y) * 28 + x)];
  return out;
}

splits load_splits(const config& c) {
  namespace fs = std::filesystem;
  const fs::path dir = c.data;
  splits s;
  if (c.dataset == "cifar10") {
    std::vector<fs::path> train;
    for (int i = 1; i <= 5; ++i)
      if (fs::exists(dir / fmt::format("data_batch_{}.bin", i))) train.push_back(dir / fmt::format("data_batch_{}.bin", i));
    SSLGATE_CHECK(!train.empty(), io_error, "pretrain", "no data_batch_*.bin in {}", dir.string());
    s.train = std::make_shared<data::image_array>(data::read_cifar10(train));
    s.test = std::make_shared<data::image_array>(data::read_cifar10(dir / "test_batch.bin"));
  } else if (c.dataset == "cifar100") {
    s.train = std::make_shared<data::image_array>(data::read_cifar100(dir / "train.bin"));
    s.test = std::make_shared<data::image_array>(data::read_cifar100(dir / "test.bin"));
  } else if (c.dataset == "stl10") {
    s.train = std::make_shared<data::image_array>(data::read_stl10(dir / "train_X.bin", dir / "train_y.bin"));
    s.test = std::make_shared<data::image_array>(data::read_stl10(dir / "test_X.bin", dir / "test_y.bin"));
  } else if (c.dataset == "fashion-mnist") {
    s.train = as_rgb32(data::read_idx(dir / "train-images-idx3-ubyte.gz", dir / "train-labels-idx1-ubyte.gz"));
    s.test = as_rgb32(data::read_idx(dir / "t10k-images-idx3-ubyte.gz", dir / "t10k-labels-idx1-ubyte.gz"));
    const std::array<float, 3> mean{0.2860f, 0.2860f, 0.2860f}, sd{0.3530f, 0.3530f, 0.3530f};
    s.recipe = {data::presets::ssl_view(32, mean, sd, 0), data::presets::ssl_view(32, mean, sd, 0)};
    s.eval = data::presets::eval(32, 0, mean, sd);
    return s;
  } else {
    fail<value_error>("pretrain", "unknown --dataset '{}' (cifar10, cifar100, stl10, fashion-mnist)", c.dataset);
  }
  s.recipe = data::presets::by_name(c.dataset);
  s.eval = data::presets::eval_by_name(c.dataset);
  return s;
}

using any_loss = std::variant<losses::vicreg, losses::barlow_twins, losses::simclr, losses::simsiam>;
any_loss make_loss(const std::string& method) {
  if (method == "vicreg") return losses::vicreg{};
  if (method == "barlow") return losses::barlow_twins{};
  if (method == "simclr") return losses::simclr{};
  if (method == "simsiam") return losses::simsiam{};
  fail<value_error>("pretrain", "unknown --method '{}' (vicreg, barlow, simclr, simsiam)", method);
}
train::objective_mode make_mode(const std::string& mode) {
  if (mode == "dual") return train::objective_mode::dual;
  if (mode == "dense") return train::objective_mode::dense_only;
  if (mode == "gated") return train::objective_mode::gated_only;
  fail<value_error>("pretrain", "unknown --mode '{}' (dual, dense, gated)", mode);
}

// Everything a checkpoint holds: parameters, buffers, and one momentum buffer per parameter ("optim.<group>.<i>.momentum").
// A parameter that has not stepped yet is saved with a zero buffer: momentum * 0 + g = g, as on a first step.
std::vector<named_tensor<float>> state_of(ssl_network<float>& net, const optim::lars<float>& opt) {
  tensor_visitor<float> v;
  net.visit(v, "");
  std::vector<named_tensor<float>> all = v.params;
  all.insert(all.end(), v.buffers.begin(), v.buffers.end());
  for (std::size_t gi = 0; gi < opt.groups().size(); ++gi)
    for (std::size_t i = 0; i < opt.groups()[gi].params.size(); ++i) {
      const tensor<float>& buf = opt.momentum_buffer(gi, i);
      all.push_back({fmt::format("optim.{}.{}.momentum", optim::detail::group_label(opt.groups()[gi], gi), i),
                     buf.empty() ? tensor<float>::zeros_like(opt.groups()[gi].params[i]) : buf});
    }
  return all;
}

// Restores the momentum buffers read into state (names as state_of).
void restore_optimizer(optim::lars<float>& opt, const std::vector<named_tensor<float>>& state) {
  optim::named_state<float> s;
  for (const auto& [name, t] : state)
    if (name.starts_with("optim.")) s.emplace_back(name.substr(6), t);
  opt.load_state(s);
}

struct metrics_sink {
  std::ofstream csv, jsonl;
  std::vector<std::string> columns;
  metrics_sink(const std::filesystem::path& dir, bool append) {
    const auto mode = append ? std::ios::app : std::ios::trunc;
    csv.open(dir / "metrics.csv", mode);
    jsonl.open(dir / "metrics.jsonl", mode);
  }
  void write(const std::vector<std::pair<std::string, double>>& row) {
    json j = json::object();
    for (const auto& [k, v] : row) j[k] = v;
    jsonl << j.dump() << '\n';
    if (columns.empty()) {
      for (const auto& [k, v] : row) columns.push_back(k);
      if (csv.tellp() == 0) csv << fmt::format("{}\n", fmt::join(columns, ","));
    }
    std::vector<std::string> cells;
    for (const auto& name : columns) {
      auto it = std::find_if(row.begin(), row.end(), [&](const auto& kv) { return kv.first == name; });
      cells.push_back(it == row.end() ? "" : fmt::format("{:.8g}", it->second));
    }
    csv << fmt::format("{}\n", fmt::join(cells, ","));
    csv.flush();
    jsonl.flush();
  }
};

}  // namespace

int main(int argc, char** argv) {
  config c;
  CLI::App app{"Self-supervised pre-training of a dense + gated ResNet (VICReg-Dual), then kNN evaluation of both paths"};
  app.set_config();  // no INI files: --config below is JSON
  std::string config_file, resume;
  app.add_option("--config", config_file, "Replay a resolved configuration (config.json of an earlier run); later flags override it");
  app.add_option("--dataset", c.dataset, "cifar10, cifar100, stl10 or fashion-mnist")->capture_default_str();
  app.add_option("--data", c.data, "Folder with the data set's official files")->capture_default_str();
  app.add_option("--out", c.out, "Output folder")->capture_default_str();
  app.add_option("--depth", c.depth, "ResNet depth: 18 or 34")->capture_default_str()->check(CLI::IsMember({18, 34}));
  app.add_option("--width", c.width, "Width multiplier (1, 0.5, 0.25, ...)")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--proj-dim", c.proj_dim, "Projector width (hidden and output)")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--method", c.method, "SSL loss: vicreg, barlow, simclr, simsiam")->capture_default_str();
  app.add_option("--mode", c.mode, "dual (gated view 1 vs dense view 2), dense (Baseline-1), gated (Baseline-2)")->capture_default_str();
  app.add_option("--td", c.td, "Target FLOPs density t_d")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  app.add_option("--lambda", c.lambda, "FLOPs budget weight")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--gamma", c.gamma, "Bound loss weight")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--alpha", c.alpha, "Bound annealing rate: p = exp(-alpha * epoch)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--tau", c.tau, "Gate temperature")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--epochs", c.epochs, "Epochs")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--batch", c.batch, "Images per step")->capture_default_str()->check(CLI::Range(2, 1 << 20));
  app.add_option("--lr", c.lr, "Base learning rate (LARS)")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--warmup", c.warmup, "Warm-up epochs (linear from 0.003)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--weight-decay", c.weight_decay, "Weight decay (not on 1-D or gate parameters)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--threads", c.threads, "Compute threads")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--workers", c.workers, "Data-loading threads (0: on the training thread)")->capture_default_str()->check(CLI::Range(0, 256));
  app.add_option("--seed", c.seed, "Random seed")->capture_default_str();
  app.add_option("--max-steps", c.max_steps, "Stop after this many steps in total (0: no limit)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--log-every", c.log_every, "Steps between log lines when not on a terminal")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--keep", c.keep, "Checkpoints kept")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_flag("--skip-nonfinite", c.skip_nonfinite, "Skip a step whose loss or gradients are not finite instead of stopping");
  app.add_option("--evaluate", c.evaluate, "kNN evaluation of both paths at the end")->capture_default_str();
  app.add_option("--eval-train-limit", c.eval_train_limit, "At most this many training images in the kNN bank (0: all)")->capture_default_str();
  app.add_option("--resume", resume, "Checkpoint to continue from");
  try {
    app.parse(argc, argv);
    if (!config_file.empty()) {
      std::ifstream in(config_file);
      SSLGATE_CHECK(in.good(), io_error, "pretrain", "cannot read --config {}", config_file);
      json j = json::parse(in, nullptr, false);
      SSLGATE_CHECK(!j.is_discarded(), io_error, "pretrain", "--config {} is not valid JSON", config_file);
      // Flags given on the command line win over the file.
      json given = c;
      for (auto* opt : app.get_options())
        if (opt->count() > 0 && opt->get_name() != "--config" && opt->get_name() != "--resume") {
          std::string key = opt->get_name().substr(2);
          std::replace(key.begin(), key.end(), '-', '_');
          if (given.contains(key)) j[key] = given[key];
        }
      c = j.get<config>();
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const sslgate::error& e) {
    fmt::print(stderr, "pretrain: {}\n", e.what());
    return 2;
  }

  try {
    namespace fs = std::filesystem;
    set_num_threads(c.threads);
    fs::create_directories(c.out);
    const splits data = load_splits(c);
    const auto mode = make_mode(c.mode);
    const any_loss loss = make_loss(c.method);
    rng init(c.seed);
    ssl_network<float> net({{c.depth, c.dataset == "stl10" ? stem_kind::imagenet : stem_kind::cifar, c.width}, c.proj_dim, c.proj_dim,
                            c.method == "simsiam" ? std::max(c.proj_dim / 4, 1) : 0},
                           init);
    optim::lars<float> opt(optim::split_groups(net.non_gate_parameters(), net.gate_parameters()), {.lr = c.lr, .weight_decay = c.weight_decay});
    data::two_view_loader loader(data.train, data.recipe, {.batch_size = c.batch, .workers = c.workers, .seed = c.seed});
    const std::int64_t steps_per_epoch = loader.batches_per_epoch();
    SSLGATE_CHECK(steps_per_epoch > 0, value_error, "pretrain", "batch {} is larger than the {} training images", c.batch, data.train->size());
    const optim::warmup_cosine schedule{c.lr, c.warmup, c.epochs};
    train::gating_objective gating;
    gating.set_target(c.td);
    gating.budget.lambda = c.lambda;
    gating.bound.gamma = c.gamma;
    gating.bound.alpha = c.alpha;
    gating.tau = c.tau;

    int start_epoch = 0;
    std::uint64_t noise_offset = 0;
    if (!resume.empty()) {
      auto state = state_of(net, opt);
      const json meta = train::load_checkpoint(resume, state);
      restore_optimizer(opt, state);
      SSLGATE_CHECK(meta.value("width", -1.0) == c.width && meta.value("depth", -1) == c.depth, value_error, "pretrain",
                    "checkpoint {} is of another architecture", resume);
      start_epoch = meta.at("epoch").get<int>() + 1;
      noise_offset = meta.at("noise_offset").get<std::uint64_t>();
      fmt::print("resumed from {} at epoch {}\n", resume, start_epoch);
    }
    {
      std::ofstream(fs::path(c.out) / "config.json") << json(c).dump(2) << '\n';
    }
    metrics_sink metrics(c.out, start_epoch > 0);
    rng noise(c.seed, 0x6761746573ull);  // the gates' noise stream ("gates")
    noise.set_offset(noise_offset);
    const bool tty = isatty(STDOUT_FILENO);
    std::int64_t global_step = static_cast<std::int64_t>(start_epoch) * steps_per_epoch;
    const auto t_start = std::chrono::steady_clock::now();
    fmt::print("pretrain: {} ({} images), ResNet-{} width {}, {} {}, t_d {}, batch {}, {} epochs of {} steps\n", c.dataset, data.train->size(),
               c.depth, c.width, c.method, c.mode, c.td, c.batch, c.epochs, steps_per_epoch);
    bool stop = false;
    for (int epoch = start_epoch; epoch < c.epochs && !stop; ++epoch) {
      const double lr = schedule(epoch), p = std::exp(-c.alpha * epoch);
      opt.set_lr(lr);
      loader.set_epoch(epoch);
      const auto t_epoch = std::chrono::steady_clock::now();
      data::two_view_batch b;
      std::int64_t step = 0;
      while (loader.next(b)) {
        tape<float> tp;
        auto out = std::visit(
            [&](const auto& l) { return train::ssl_step(tp, net, b.view1, b.view2, l, gating, p, mode, &noise); }, loss);
        const double total = out.objective.value("total");
        bool finite = std::isfinite(total);
        if (!finite) {
          std::string bad;
          for (const auto& [k, v] : out.objective.terms)
            if (!std::isfinite(v)) bad += (bad.empty() ? "" : ", ") + k;
          SSLGATE_CHECK(c.skip_nonfinite, numeric_error, "pretrain", "non-finite loss at epoch {} step {} (terms: {})", epoch, step, bad);
        }
        if (finite) tp.backward(out.objective.total);
        for (const auto& t : net.parameters()) {
          const tensor<float> g = t.grad();
          if (g.empty()) continue;
          for (float v : g.values())
            if (!std::isfinite(v)) finite = false;
        }
        if (!finite) {
          SSLGATE_CHECK(c.skip_nonfinite, numeric_error, "pretrain", "non-finite gradient at epoch {} step {}", epoch, step);
          for (auto t : net.parameters()) t.zero_grad();
          fmt::print("epoch {} step {}: non-finite loss or gradient, step skipped\n", epoch, step);
        } else {
          opt.step();
        }
        ++step;
        ++global_step;
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_epoch).count();
        std::vector<std::pair<std::string, double>> row{{"epoch", epoch}, {"step", static_cast<double>(global_step)}, {"lr", lr}, {"p", p}};
        for (const auto& kv : out.objective.terms) row.push_back(kv);
        row.emplace_back("rho", out.rho);
        for (std::size_t l = 0; l < out.layer_density.size(); ++l) row.emplace_back(fmt::format("density.{}", l), out.layer_density[l]);
        row.emplace_back("images_per_s", static_cast<double>(step * c.batch) / secs);
        metrics.write(row);
        const double eta = secs / static_cast<double>(step) *
                           static_cast<double>((c.epochs - epoch) * steps_per_epoch - step);
        const std::string line = fmt::format("epoch {}/{} step {}/{} | {:.0f} img/s | ETA {:.0f} s | loss {:.4f} ({} {:.4f}) rho {:.3f} lr {:.4f}", epoch + 1,
                                             c.epochs, step, steps_per_epoch, static_cast<double>(step * c.batch) / secs, eta, total,
                                             out.objective.terms[1].first, out.objective.terms[1].second, out.rho, lr);
        if (tty) fmt::print("\r{:<110}", line), std::fflush(stdout);
        else if (global_step % c.log_every == 0 || step == steps_per_epoch) fmt::print("{}\n", line), std::fflush(stdout);
        if (c.max_steps > 0 && global_step >= c.max_steps) {
          stop = true;
          break;
        }
      }
      if (tty) fmt::print("\n");
      const double epoch_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_epoch).count();
      fmt::print("epoch {} done in {:.1f} s\n", epoch + 1, epoch_secs);
      json meta = c;
      meta["epoch"] = epoch;
      meta["global_step"] = global_step;
      meta["noise_offset"] = noise.offset();
      meta["loader_epoch"] = epoch + 1;
      auto state = state_of(net, opt);
      train::save_checkpoint(train::checkpoint_path(c.out, epoch), {state, meta});
      train::prune_checkpoints(c.out, static_cast<std::size_t>(c.keep));
    }
    const double train_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    fmt::print("training: {:.1f} s\n", train_secs);

    if (c.evaluate) {
      std::shared_ptr<data::image_array> bank = data.train;
      if (c.eval_train_limit > 0 && c.eval_train_limit < bank->size()) {
        auto sub = std::make_shared<data::image_array>(*bank);
        const std::int64_t per = static_cast<std::int64_t>(sub->h) * sub->w * sub->c;
        sub->count = c.eval_train_limit;
        sub->pixels.resize(static_cast<std::size_t>(sub->count * per));
        sub->labels.resize(static_cast<std::size_t>(sub->count));
        bank = sub;
      }
      const int classes = std::max(data.train->num_classes, 10);
      json result = json::object();
      for (path route : {path::dense, path::gated}) {
        const auto tr = eval::extract_features(net.backbone, bank, data.eval, route, 256, c.workers);
        const auto te = eval::extract_features(net.backbone, data.test, data.eval, route, 256, c.workers);
        const double k1 = eval::knn_accuracy(tr.features, tr.labels, te.features, te.labels, 1, eval::knn_metric::euclidean, classes);
        const double k20 = eval::knn_accuracy(tr.features, tr.labels, te.features, te.labels, 20, eval::knn_metric::cosine, classes);
        const std::string name = route == path::dense ? "dense" : "gated";
        result[name] = {{"knn1_euclidean", k1}, {"knn20_cosine", k20}, {"flops_reduction", 1 - te.density}, {"layer_density", te.layer_density}};
      }
      std::ofstream(fs::path(c.out) / "eval.json") << result.dump(2) << '\n';
      const auto& d = result["dense"];
      const auto& g = result["gated"];
      fmt::print("\n| data set | t_d | dense kNN k=1 | dense kNN k=20 | gated kNN k=1 | gated kNN k=20 | gated FLOPs R. |\n");
      fmt::print("|---|---|---|---|---|---|---|\n");
      fmt::print("| {} | {:.0f}% | {:.2f}% | {:.2f}% | {:.2f}% | {:.2f}% | {:.2f}% |\n", c.dataset, 100 * c.td, 100 * d["knn1_euclidean"].get<double>(),
                 100 * d["knn20_cosine"].get<double>(), 100 * g["knn1_euclidean"].get<double>(), 100 * g["knn20_cosine"].get<double>(),
                 100 * g["flops_reduction"].get<double>());
    }
  } catch (const sslgate::error& e) {
    fmt::print(stderr, "pretrain: {}\n", e.what());
    return 1;
  }
}
