// evaluate: both paths of one pre-trained checkpoint (METHOD.md §8): kNN top-1 (k=1 Euclidean as the paper's
// scripts, k=20 cosine), a linear probe on frozen features, and for the gated path the measured FLOPs density
// and reduction on the test set with the open fraction of every block.
//   evaluate out/checkpoint-e0013.safetensors                     data set and architecture from the checkpoint
//   evaluate CKPT --data DIR --probe-epochs 0 --json eval.json      another data folder, kNN only, results as JSON
#include "common.hpp"

#include <sslgate/train/checkpoint.hpp>

#include <CLI/CLI.hpp>

#include <fstream>

using namespace sslgate;
using namespace sslgate::examples;

int main(int argc, char** argv) {
  CLI::App app{"kNN and linear-probe evaluation of the dense and the gated path of one checkpoint"};
  std::string checkpoint, data_dir, json_out;
  eval_options o{.train_limit = 0, .probe_epochs = 100, .workers = 2};
  int threads = 2;
  app.add_option("checkpoint", checkpoint, "A checkpoint written by pretrain")->required()->check(CLI::ExistingFile);
  app.add_option("--data", data_dir, "Data folder (default: the one the checkpoint was trained on)");
  app.add_option("--probe-epochs", o.probe_epochs, "Linear-probe epochs (SGD, momentum 0.9, cosine from 0.1, batch 256; 0: no probe)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--train-limit", o.train_limit, "At most this many training images in the kNN bank and the probe (0: all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--threads", threads, "Compute threads")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--workers", o.workers, "Data-loading threads")->capture_default_str()->check(CLI::Range(0, 256));
  app.add_option("--json", json_out, "Also write the results to this file");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    set_num_threads(threads);
    // The configuration travels in the checkpoint's metadata: read it first to build the right network.
    const auto file = io::safetensors_file::read(checkpoint);
    const auto meta_it = file.metadata().find("sslgate");
    SSLGATE_CHECK(meta_it != file.metadata().end(), io_error, "evaluate", "{} is not an sslgate checkpoint", checkpoint);
    const json meta = json::parse(meta_it->second, nullptr, false);
    SSLGATE_CHECK(!meta.is_discarded(), io_error, "evaluate", "{}: corrupt metadata", checkpoint);
    config c = meta.get<config>();
    if (!data_dir.empty()) c.data = data_dir;

    rng init(c.seed);
    ssl_network<float> net = make_network(c, init);
    auto state = model_state(net);
    train::load_checkpoint(checkpoint, state);  // verifies names, shapes and CRC-32s
    const splits data = load_splits(c);
    fmt::print("evaluate: {} (epoch {}), ResNet-{} width {}, {} ({} training, {} test images)\n", checkpoint, meta.value("epoch", -1) + 1,
               c.depth, c.width, c.dataset, data.train->size(), data.test->size());
    const json result = evaluate_paths(net, data, o);
    print_table_row(c.dataset, c.td, result);
    if (!json_out.empty()) std::ofstream(json_out) << result.dump(2) << '\n';
  } catch (const sslgate::error& e) {
    fmt::print(stderr, "evaluate: {}\n", e.what());
    return 1;
  }
}
