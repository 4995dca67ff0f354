// pretrain: self-supervised pre-training of one ResNet whose weights serve a dense and a gated path
// (VICReg-Dual, METHOD.md §5–6), then kNN evaluation of both paths and the gated path's FLOPs reduction.
//   pretrain --dataset cifar10 --data DIR --epochs 500            the paper's recipe (defaults = METHOD.md §6)
//   pretrain --config out/config.json                             replays a resolved configuration
//   pretrain --resume out/checkpoint-e0013.safetensors            continues a run bit for bit
// Writes into --out: config.json, metrics.csv, metrics.jsonl, checkpoint-eNNNN.safetensors (the last --keep), eval.json,
// and knn.csv with --knn-every. tools/plot turns them into PNG curves.
#include "common.hpp"

#include <sslgate/data/loader.hpp>
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
using namespace sslgate::examples;

namespace {

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
  std::vector<named_tensor<float>> all = model_state(net);
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
  device dev = cpu;
  CLI::App app{"Self-supervised pre-training of a dense + gated ResNet (VICReg-Dual), then kNN evaluation of both paths"};
  app.set_config();  // no INI files: --config below is JSON
  std::string config_file, resume;
  app.add_option("--config", config_file, "Replay a resolved configuration (config.json of an earlier run); later flags override it");
  app.add_option("--dataset", c.dataset, "cifar10, cifar100, stl10, imagenet100 (image folders DIR/train, DIR/val) or fashion-mnist")->capture_default_str();
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
  app.add_option("--train-limit", c.train_limit, "Train on this many training images, spread evenly over the set (0: all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--eval-train-limit", c.eval_train_limit, "At most this many training images in the kNN bank (0: all)")->capture_default_str();
  app.add_option("--knn-every", c.knn_every, "kNN of both paths every this many epochs, into knn.csv (0: only at the end)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--device", c.device, "cpu, or cuda (GPU 0; needs the CUDA backend)")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
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
    dev = compute_device(c.device);
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
    ssl_network<float> net = make_network(c, init);
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
    if (dev != cpu) {
      move_to(net, dev);
      opt.load_state(opt.state());  // the momentum buffers follow their parameters
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
    fmt::print("pretrain: {} ({} images), ResNet-{} width {}, {} {}, t_d {}, batch {}, {} epochs of {} steps, on {}\n", c.dataset,
               data.train->size(), c.depth, c.width, c.method, c.mode, c.td, c.batch, c.epochs, steps_per_epoch, dev.str());
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
            [&](const auto& l) { return train::ssl_step(tp, net, b.view1.to(dev), b.view2.to(dev), l, gating, p, mode, &noise); }, loss);
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
          std::vector<float> keep;
          const float* v = ops::host_view(g, keep);
          for (std::int64_t i = 0; i < g.numel(); ++i)
            if (!std::isfinite(v[i])) finite = false;
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
      if (c.knn_every > 0 && (epoch + 1) % c.knn_every == 0) {
        const json r = evaluate_paths(net, data, {.train_limit = c.eval_train_limit, .probe_epochs = 0, .workers = c.workers});
        const bool fresh = !fs::exists(fs::path(c.out) / "knn.csv");
        std::ofstream knn(fs::path(c.out) / "knn.csv", std::ios::app);
        if (fresh) knn << "epoch,dense_knn20,gated_knn20,dense_knn1,gated_knn1,gated_flops_reduction\n";
        knn << fmt::format("{},{:.4f},{:.4f},{:.4f},{:.4f},{:.4f}\n", epoch + 1, r["dense"]["knn20_cosine"].get<double>(),
                           r["gated"]["knn20_cosine"].get<double>(), r["dense"]["knn1_euclidean"].get<double>(),
                           r["gated"]["knn1_euclidean"].get<double>(), r["gated"]["flops_reduction"].get<double>());
        fmt::print("epoch {}: kNN k=20 dense {:.2f}%, gated {:.2f}% (FLOPs reduction {:.1f}%)\n", epoch + 1,
                   100 * r["dense"]["knn20_cosine"].get<double>(), 100 * r["gated"]["knn20_cosine"].get<double>(),
                   100 * r["gated"]["flops_reduction"].get<double>());
      }
    }
    const double train_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    fmt::print("training: {:.1f} s\n", train_secs);

    if (c.evaluate) {
      const json result = evaluate_paths(net, data, {.train_limit = c.eval_train_limit, .probe_epochs = 0, .workers = c.workers});
      std::ofstream(fs::path(c.out) / "eval.json") << result.dump(2) << '\n';
      print_table_row(c.dataset, c.td, result);
    }
  } catch (const sslgate::error& e) {
    fmt::print(stderr, "pretrain: {}\n", e.what());
    return 1;
  }
}
