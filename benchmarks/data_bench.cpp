// Two-view augmented images per second (items_per_second; one item = one image, two views) through
// two_view_loader, with 1 and 2 worker threads:
//   cifar/<workers>      CIFAR-10 recipe (METHOD.md §7), 32x32, batch 256; the real ../shared/data
//                        CIFAR-10 subset when present, else random pixels (same cost).
//   imagenet/<workers>   ImageNet-100 recipe, 224x224 crops of 500x375 JPEGs decoded per sample
//                        (libjpeg-turbo), batch 64.
// img_per_cpu_s divides by the CPU time of all threads (the per-core rate, insensitive to other load).
// Run: ./benchmarks/data_bench --benchmark_min_time=2
#include <sslgate/data/decode.hpp>
#include <sslgate/data/loader.hpp>

#include <benchmark/benchmark.h>
#include <turbojpeg.h>

#include <ctime>
#include <filesystem>

using namespace sslgate;
using namespace sslgate::data;

namespace {

std::shared_ptr<const dataset> cifar() {
  static const auto ds = [] {
    const std::filesystem::path p = std::filesystem::path(SSLGATE_SHARED_DATA_DIR) / "cifar-10-exact-subset" / "data_batch_1.bin";
    if (std::filesystem::exists(p)) return std::make_shared<const image_array>(read_cifar10(p));
    auto a = std::make_shared<image_array>();
    a->count = 4000;
    a->h = a->w = 32;
    a->c = 3;
    a->pixels.resize(4000 * 3072);
    rng r(1);
    for (auto& v : a->pixels) v = static_cast<std::uint8_t>(r.uniform() * 256);
    a->labels.assign(4000, 0);
    return std::shared_ptr<const image_array>(a);
  }();
  return ds;
}

// JPEG files held in memory, decoded on every access (as an image folder does, without the disk).
class jpeg_memory final : public dataset {
 public:
  explicit jpeg_memory(int n) {
    tjhandle t = tjInitCompress();
    image_u8 im(375, 500, 3);
    for (int i = 0; i < n; ++i) {
      for (int y = 0; y < im.h; ++y)
        for (int x = 0; x < im.w; ++x) {  // smooth content with some texture, like a photograph
          im.at(y, x, 0) = static_cast<std::uint8_t>(128 + 100 * std::sin(x / (9.0 + i)) * std::cos(y / 13.0));
          im.at(y, x, 1) = static_cast<std::uint8_t>((x + 3 * i) & 255);
          im.at(y, x, 2) = static_cast<std::uint8_t>(((x ^ y) + i) & 255);
        }
      unsigned char* buf = nullptr;
      unsigned long size = 0;
      tjCompress2(t, im.px.data(), im.w, 0, im.h, TJPF_RGB, &buf, &size, TJSAMP_420, 90, 0);
      files_.emplace_back(buf, buf + size);
      tjFree(buf);
    }
    tjDestroy(t);
  }
  std::int64_t size() const override { return static_cast<std::int64_t>(files_.size()); }
  int label(std::int64_t) const override { return 0; }
  image_view image(std::int64_t i, image_u8& scratch) const override {
    decode_image(files_[static_cast<std::size_t>(i)], "memory.jpg", scratch);
    return scratch.view();
  }

 private:
  std::vector<std::vector<std::uint8_t>> files_;
};

void run(benchmark::State& state, std::shared_ptr<const dataset> ds, const two_view_recipe& rc, std::int64_t batch) {
  loader_options o;
  o.batch_size = batch;
  o.workers = static_cast<int>(state.range(0));
  o.prefetch = 4;
  two_view_loader l(std::move(ds), rc, o);
  std::int64_t epoch = 0, images = 0;
  l.set_epoch(epoch);
  two_view_batch b;
  const std::clock_t c0 = std::clock();  // CPU time of every thread of the process
  for (auto _ : state) {
    if (!l.next(b)) {
      l.set_epoch(++epoch);
      l.next(b);
    }
    images += b.view1.dims()[0];
    benchmark::DoNotOptimize(b.view1.data());
  }
  state.SetItemsProcessed(images);
  // Images per CPU-second of all threads: the per-core rate, which other load on the machine does not change.
  const double cpu_s = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
  state.counters["img_per_cpu_s"] = cpu_s > 0 ? static_cast<double>(images) / cpu_s : 0.0;
}

void bm_cifar(benchmark::State& state) { run(state, cifar(), presets::cifar10(), 256); }
void bm_cifar100(benchmark::State& state) { run(state, cifar(), presets::cifar100(), 256); }
void bm_imagenet(benchmark::State& state) {
  static const auto ds = std::make_shared<const jpeg_memory>(64);
  run(state, ds, presets::imagenet100(), 64);
}

}  // namespace

BENCHMARK(bm_cifar)->Name("cifar10_two_view")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(bm_cifar100)->Name("cifar100_two_view")->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(bm_imagenet)->Name("imagenet_jpeg224_two_view")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
