// The pretrain program end to end at toy size: resume is bitwise, interrupted checkpoint writes lose nothing,
// bad checkpoints and bad flags are clear errors.
#include <sslgate/train/checkpoint.hpp>

#include <catch2/catch.hpp>
#include <signal.h>
#include <turbojpeg.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

using namespace sslgate;
namespace fs = std::filesystem;

namespace {

// A CIFAR-10-format training file and test file of random images in a fresh folder.
fs::path toy_cifar(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("sslgate_{}_{}", name, ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  rng r(3);
  for (auto [file, count] : {std::pair{"data_batch_1.bin", 96}, std::pair{"test_batch.bin", 32}}) {
    std::ofstream out(dir / file, std::ios::binary);
    for (int i = 0; i < count; ++i) {
      out.put(static_cast<char>(i % 10));
      for (int k = 0; k < 3072; ++k) out.put(static_cast<char>(r.uniform() * 256));
    }
  }
  return dir;
}

// Runs a program (pretrain by default); its output goes to the test log when it fails.
int run(const std::string& args, const std::string& program = SSLGATE_PRETRAIN) {
  const fs::path log = fs::temp_directory_path() / fmt::format("sslgate_pretrain_{}.log", ::getpid());
  const int status = std::system((program + " " + args + " > " + log.string() + " 2>&1").c_str());
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(log);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  UNSCOPED_INFO(program << " " << args << " -> " << code << "\n" << text.substr(text.size() > 2000 ? text.size() - 2000 : 0));
  return code;
}

nlohmann::json read_json(const fs::path& file) {
  std::ifstream in(file);
  return nlohmann::json::parse(in);
}

std::string toy_flags(const fs::path& data, const fs::path& out, const std::string& lr = "0.02") {
  return fmt::format("--dataset cifar10 --data {} --out {} --width 0.125 --proj-dim 32 --batch 16 --warmup 1 --lr {} --threads 1 "
                     "--workers 1 --evaluate false --keep 5",
                     data.string(), out.string(), lr);
}

std::vector<std::pair<std::string, std::vector<float>>> contents(const fs::path& file) {
  const auto f = io::safetensors_file::read(file);
  std::vector<std::pair<std::string, std::vector<float>>> out;
  for (const auto& e : f.entries()) out.emplace_back(e.name, f.values<float>(e.name));
  return out;
}

}  // namespace

TEST_CASE("resume after K epochs gives bitwise the weights of an uninterrupted run", "[train][slow]") {
  const fs::path data = toy_cifar("resume");
  REQUIRE(run(toy_flags(data, data / "straight") + " --epochs 3") == 0);
  REQUIRE(run(toy_flags(data, data / "split") + " --epochs 3 --max-steps 12") == 0);  // stops inside epoch 2 (6 steps per epoch)
  REQUIRE(fs::exists(data / "split" / "checkpoint-e0001.safetensors"));
  REQUIRE(run(toy_flags(data, data / "split") + " --epochs 3 --resume " + (data / "split" / "checkpoint-e0001.safetensors").string()) == 0);
  const auto a = contents(data / "straight" / "checkpoint-e0002.safetensors");
  const auto b = contents(data / "split" / "checkpoint-e0002.safetensors");
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].first);
    CHECK(a[i] == b[i]);
  }
  fs::remove_all(data);
}

TEST_CASE("kill -9 during a checkpoint write leaves the previous checkpoint loadable", "[train]") {
  const fs::path dir = fs::temp_directory_path() / fmt::format("sslgate_kill_{}", ::getpid());
  fs::create_directories(dir);
  const fs::path file = dir / "checkpoint-e0000.safetensors";
  rng r(1);
  train::checkpoint first{{{"w", tensor<float>::normal({1 << 20}, r)}}, {{"epoch", 0}}};
  train::save_checkpoint(file, first);
  for (int delay_us : {0, 200, 1000, 3000, 8000, 20000}) {
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {  // rewrites the same checkpoint, with other values, until killed
      rng rc(2);
      train::checkpoint next{{{"w", tensor<float>::normal({1 << 20}, rc)}}, {{"epoch", 1}}};
      for (;;) train::save_checkpoint(file, next);
    }
    usleep(static_cast<useconds_t>(delay_us));
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    std::vector<named_tensor<float>> into{{"w", tensor<float>::zeros({1 << 20})}};
    const auto meta = train::load_checkpoint(file, into);  // whichever version is there, it is whole
    CHECK((meta["epoch"] == 0 || meta["epoch"] == 1));
  }
  train::prune_checkpoints(dir, 1);  // removes temporary files of the killed writers
  for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path().filename() == file.filename());
  fs::remove_all(dir);
}

TEST_CASE("corrupt, truncated and foreign checkpoints fail with a clear error", "[train]") {
  const fs::path dir = fs::temp_directory_path() / fmt::format("sslgate_corrupt_{}", ::getpid());
  fs::create_directories(dir);
  const fs::path file = dir / "c.safetensors";
  rng r(1);
  train::save_checkpoint(file, {{{"a", tensor<float>::normal({64}, r)}, {"b", tensor<float>::normal({4, 4}, r)}}, {{"epoch", 3}}});
  std::vector<named_tensor<float>> into{{"a", tensor<float>::zeros({64})}, {"b", tensor<float>::zeros({4, 4})}};
  CHECK(train::load_checkpoint(file, into)["epoch"] == 3);
  {  // one flipped bit in the data
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-5, std::ios::end);
    char c;
    f.read(&c, 1);
    f.seekp(-5, std::ios::end);
    c ^= 1;
    f.write(&c, 1);
  }
  CHECK_THROWS_WITH(train::load_checkpoint(file, into), Catch::Contains("'b' fails its CRC-32 check"));
  fs::resize_file(file, fs::file_size(file) - 7);
  CHECK_THROWS_AS(train::load_checkpoint(file, into), io_error);
  train::save_checkpoint(file, {{{"a", tensor<float>::zeros({64})}}, {}});
  std::vector<named_tensor<float>> wider{{"a", tensor<float>::zeros({32})}};
  CHECK_THROWS_WITH(train::load_checkpoint(file, wider), Catch::Contains("tensor 'a' has shape [64] but the model expects [32]"));
  std::vector<named_tensor<float>> other{{"z", tensor<float>::zeros({1})}};
  CHECK_THROWS_WITH(train::load_checkpoint(file, other), Catch::Contains("no tensor 'z'"));
  fs::remove_all(dir);
}

TEST_CASE("pretrain: a diverging run stops with an error naming the step, or skips the step on request", "[train]") {
  const fs::path data = toy_cifar("nan");
  CHECK(run(toy_flags(data, data / "a", "1e6") + " --epochs 3") == 1);
  CHECK(run(toy_flags(data, data / "b", "1e6") + " --epochs 3 --skip-nonfinite") == 0);
  fs::remove_all(data);
}

TEST_CASE("pretrain --device cuda trains on the GPU where there is one, else exits 2", "[train]") {
  const fs::path data = toy_cifar("device");
  const int code = run(toy_flags(data, data / "gpu") + " --epochs 1 --evaluate true --device cuda");
  if (code == 2) {  // no GPU here, or a build without the CUDA backend: refused before any work
    CHECK_FALSE(fs::exists(data / "gpu" / "config.json"));
    return;
  }
  REQUIRE(code == 0);
  CHECK(fs::exists(data / "gpu" / "checkpoint-e0000.safetensors"));
  const auto eval = read_json(data / "gpu" / "eval.json");
  CHECK(eval["gated"]["flops_reduction"].get<double>() >= 0.0);
}

TEST_CASE("pretrain: bad flags exit with status 2, --help lists the flags", "[train]") {
  CHECK(run("--width -1") == 2);
  CHECK(run("--no-such-flag") == 2);
  CHECK(run("--epochs many") == 2);
  CHECK(run("--config /nonexistent.json") == 2);
  CHECK(run("--device tpu") == 2);
  CHECK(run("--help") == 0);
  const fs::path data = toy_cifar("flags");
  CHECK(run(toy_flags(data, data / "o") + " --method nonsense --epochs 1") == 1);  // a clear error, not a crash
  fs::remove_all(data);
}

TEST_CASE("evaluate reproduces the run's own kNN; --knn-every and tools/plot", "[train]") {
  const fs::path data = toy_cifar("evaluate");
  const fs::path out = data / "run";
  std::string flags = toy_flags(data, out);
  flags.replace(flags.find("--evaluate false"), 16, "--evaluate true");
  REQUIRE(run(flags + " --epochs 2 --knn-every 1") == 0);
  const auto own = read_json(out / "eval.json");
  REQUIRE(run((out / "checkpoint-e0001.safetensors").string() + " --threads 1 --workers 1 --probe-epochs 3 --json " +
                  (out / "again.json").string(),
              SSLGATE_EVALUATE) == 0);
  const auto again = read_json(out / "again.json");
  for (const char* p : {"dense", "gated"}) {
    INFO(p);
    // Same weights, data and protocol: the same accuracies and densities.
    CHECK(again[p]["knn1_euclidean"] == own[p]["knn1_euclidean"]);
    CHECK(again[p]["knn20_cosine"] == own[p]["knn20_cosine"]);
    CHECK(again[p]["flops_density"] == own[p]["flops_density"]);
    const double probe = again[p]["linear_probe"];
    CHECK((probe >= 0 && probe <= 1));
  }
  CHECK(again["dense"]["flops_density"] == 1.0);
  const double rho = again["gated"]["flops_density"];
  CHECK((rho > 0 && rho <= 1));
  CHECK(again["gated"]["layer_density"].size() == 8);
  // knn.csv: a header and one row per epoch, the last equal to eval.json's.
  std::ifstream knn(out / "knn.csv");
  std::vector<std::string> lines;
  for (std::string l; std::getline(knn, l);) lines.push_back(l);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] == "epoch,dense_knn20,gated_knn20,dense_knn1,gated_knn1,gated_flops_reduction");
  CHECK(lines[2].starts_with(fmt::format("2,{:.4f},{:.4f},", own["dense"]["knn20_cosine"].get<double>(), own["gated"]["knn20_cosine"].get<double>())));
  // Errors: a missing checkpoint is a flag error (2), a file that is not a checkpoint a clear error (1).
  CHECK(run("/nonexistent.safetensors", SSLGATE_EVALUATE) == 2);
  CHECK(run((out / "config.json").string(), SSLGATE_EVALUATE) == 1);

  if (std::system("command -v gnuplot > /dev/null 2>&1") != 0) {
    WARN("gnuplot not installed: tools/plot not exercised");
  } else {
    REQUIRE(run(out.string(), SSLGATE_PLOT) == 0);
    for (const char* png : {"loss.png", "density.png", "lr.png", "speed.png", "knn.png"}) {
      INFO(png);
      std::ifstream f(out / "plots" / png, std::ios::binary);
      char magic[8] = {};
      f.read(magic, 8);
      CHECK(std::string(magic + 1, 3) == "PNG");
    }
    CHECK(run((data / "no-such-run").string(), SSLGATE_PLOT) == 2);
  }
  fs::remove_all(data);
}

TEST_CASE("pretrain and evaluate on an ImageNet-100-style image folder", "[train]") {
  // DIR/{train,val}/<class>/*.jpg, three classes of small JPEGs (the recipe crops and resizes them to 224).
  const fs::path dir = fs::temp_directory_path() / fmt::format("sslgate_folder_{}", ::getpid());
  fs::remove_all(dir);
  rng r(4);
  tjhandle t = tjInitCompress();
  for (auto [split, per_class] : {std::pair{"train", 8}, std::pair{"val", 2}})
    for (const char* cls : {"n01", "n02", "n03"}) {
      fs::create_directories(dir / split / cls);
      for (int i = 0; i < per_class; ++i) {
        std::vector<unsigned char> px(40 * 48 * 3);
        for (auto& v : px) v = static_cast<unsigned char>(r.uniform() * 256);
        unsigned char* buf = nullptr;
        unsigned long size = 0;
        REQUIRE(tjCompress2(t, px.data(), 48, 0, 40, TJPF_RGB, &buf, &size, TJSAMP_420, 90, 0) == 0);
        std::ofstream(dir / split / cls / fmt::format("{}.jpg", i), std::ios::binary).write(reinterpret_cast<const char*>(buf), static_cast<std::streamsize>(size));
        tjFree(buf);
      }
    }
  tjDestroy(t);
  const fs::path out = dir / "run";
  REQUIRE(run(fmt::format("--dataset imagenet100 --data {} --out {} --width 0.125 --proj-dim 32 --batch 6 --epochs 1 --warmup 0 --threads 1 "
                          "--workers 1 --train-limit 21",
                          dir.string(), out.string())) == 0);
  const auto e = read_json(out / "eval.json");
  const double rho = e["gated"]["flops_density"];
  CHECK((rho > 0 && rho <= 1));
  REQUIRE(run((out / "checkpoint-e0000.safetensors").string() + " --threads 1 --workers 1 --probe-epochs 0 --json " + (out / "again.json").string(),
              SSLGATE_EVALUATE) == 0);
  CHECK(read_json(out / "again.json")["gated"]["knn20_cosine"] == e["gated"]["knn20_cosine"]);
  // Class folders that differ between train and val are a clear error.
  fs::create_directories(dir / "val" / "n04");
  CHECK(run(fmt::format("--dataset imagenet100 --data {} --out {} --epochs 1", dir.string(), (dir / "bad").string())) == 1);
  fs::remove_all(dir);
}
