// Two-view batch source: byte-identical batches whatever the number of workers, per-epoch shuffling,
// drop-last, errors from workers reach the consumer.
#include <sslgate/data/loader.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <set>

using namespace sslgate;
using namespace sslgate::data;

namespace {
std::shared_ptr<image_array> synthetic(std::int64_t n, int size = 32) {
  auto a = std::make_shared<image_array>();
  a->count = n;
  a->h = a->w = size;
  a->c = 3;
  a->num_classes = 10;
  a->pixels.resize(static_cast<std::size_t>(n) * size * size * 3);
  rng r(123);
  for (auto& p : a->pixels) p = static_cast<std::uint8_t>(r.uniform() * 256);
  for (std::int64_t i = 0; i < n; ++i) a->labels.push_back(static_cast<std::int32_t>(i % 10));
  return a;
}
std::vector<two_view_batch> epoch(two_view_loader& l, std::int64_t e) {
  l.set_epoch(e);
  std::vector<two_view_batch> out;
  two_view_batch b;
  while (l.next(b)) out.push_back(std::move(b));
  return out;
}
bool same(const two_view_batch& a, const two_view_batch& b) {
  return a.labels == b.labels && a.indices == b.indices && a.view1.numel() == b.view1.numel() &&
         std::memcmp(a.view1.data(), b.view1.data(), sizeof(float) * static_cast<std::size_t>(a.view1.numel())) == 0 &&
         std::memcmp(a.view2.data(), b.view2.data(), sizeof(float) * static_cast<std::size_t>(a.view2.numel())) == 0;
}

class failing_dataset final : public dataset {
 public:
  std::int64_t size() const override { return 40; }
  int label(std::int64_t) const override { return 0; }
  image_view image(std::int64_t i, image_u8& scratch) const override {
    SSLGATE_CHECK(i != 17, io_error, "image_folder", "corrupt.jpg: broken on purpose");
    scratch.resize(8, 8, 3);
    return scratch.view();
  }
};
}  // namespace

TEST_CASE("same seed gives byte-identical batches with 0, 1, 2 and 4 workers", "[data][loader]") {
  const auto ds = synthetic(100);
  loader_options o;
  o.batch_size = 16;
  o.seed = 42;
  std::vector<std::vector<two_view_batch>> runs;
  for (int workers : {0, 1, 2, 4}) {
    o.workers = workers;
    o.prefetch = workers == 4 ? 2 : 3;
    two_view_loader l(ds, presets::cifar100(), o);
    auto e0 = epoch(l, 0);
    auto e1 = epoch(l, 1);
    e0.insert(e0.end(), e1.begin(), e1.end());
    runs.push_back(std::move(e0));
  }
  REQUIRE(runs[0].size() == 12);  // 6 full batches per epoch (drop_last), 2 epochs
  for (std::size_t r = 1; r < runs.size(); ++r)
    for (std::size_t b = 0; b < runs[0].size(); ++b) REQUIRE(same(runs[0][b], runs[r][b]));
  // batch_at agrees with the queue.
  two_view_loader l(ds, presets::cifar100(), o);
  CHECK(same(l.batch_at(1, 3), runs[0][6 + 3]));
  // Epochs differ in order and augmentation; the two views differ.
  CHECK(runs[0][0].indices != runs[0][6].indices);
  CHECK(std::memcmp(runs[0][0].view1.data(), runs[0][0].view2.data(), 4 * 3 * 32 * 32) != 0);
  // A different seed gives different batches.
  o.seed = 43;
  two_view_loader l2(ds, presets::cifar100(), o);
  CHECK(!same(l2.batch_at(0, 0), runs[0][0]));
}

TEST_CASE("an epoch visits a permutation; drop_last and the partial batch", "[data][loader]") {
  const auto ds = synthetic(37, 8);
  auto rc = presets::cifar10();
  rc.view1.size = rc.view2.size = 8;
  loader_options o;
  o.batch_size = 10;
  o.workers = 2;
  {
    two_view_loader l(ds, rc, o);
    CHECK(l.batches_per_epoch() == 3);
    const auto e = epoch(l, 5);
    REQUIRE(e.size() == 3);
    std::set<std::int64_t> seen;
    for (const auto& b : e) {
      CHECK(b.view1.dims() == shape{10, 3, 8, 8});
      for (std::size_t k = 0; k < b.indices.size(); ++k) {
        seen.insert(b.indices[k]);
        CHECK(b.labels[k] == b.indices[k] % 10);
      }
    }
    CHECK(seen.size() == 30);
  }
  o.drop_last = false;
  o.shuffle = false;
  two_view_loader l(ds, rc, o);
  const auto e = epoch(l, 0);
  REQUIRE(e.size() == 4);
  CHECK(e[3].view2.dims() == shape{7, 3, 8, 8});
  CHECK(e[3].indices.front() == 30);
  // Epoch order is a permutation and is reproducible.
  const auto a = epoch_order(1000, 9, 3, true), b = epoch_order(1000, 9, 3, true), c = epoch_order(1000, 9, 4, true);
  CHECK(a == b);
  CHECK(a != c);
  auto s = a;
  std::sort(s.begin(), s.end());
  for (std::int64_t i = 0; i < 1000; ++i) REQUIRE(s[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("grey images (IDX) become three identical planes", "[data][loader]") {
  auto a = std::make_shared<image_array>();
  a->count = 4;
  a->h = a->w = 28;
  a->c = 1;
  a->pixels.assign(4 * 28 * 28, 0);
  for (std::size_t i = 0; i < a->pixels.size(); ++i) a->pixels[i] = static_cast<std::uint8_t>(i * 7);
  auto rc = presets::cifar10();
  rc.view1.size = rc.view2.size = 28;
  rc.view1.mean = rc.view1.std = {0.5f, 0.5f, 0.5f};
  rc.view1.std = {0.5f, 0.5f, 0.5f};
  loader_options o;
  o.batch_size = 4;
  o.workers = 0;
  two_view_loader l(a, rc, o);
  const auto b = l.batch_at(0, 0);
  const float* p = b.view1.data();
  for (int i = 0; i < 28 * 28; ++i) {
    REQUIRE(p[i] == p[i + 784]);
    REQUIRE(p[i] == p[i + 2 * 784]);
  }
}

TEST_CASE("a worker's exception reaches next()", "[data][loader][hostile]") {
  loader_options o;
  o.batch_size = 8;
  auto rc = presets::cifar10();
  rc.view1.size = rc.view2.size = 8;
  for (int workers : {0, 2}) {
    o.workers = workers;
    o.shuffle = false;
    two_view_loader l(std::make_shared<failing_dataset>(), rc, o);
    l.set_epoch(0);
    two_view_batch b;
    CHECK_THROWS_WITH(
        [&] {
          while (l.next(b)) {
          }
        }(),
        Catch::Contains("corrupt.jpg"));
  }
  CHECK_THROWS_AS(two_view_loader(std::make_shared<failing_dataset>(), rc, loader_options{0}), value_error);
}
