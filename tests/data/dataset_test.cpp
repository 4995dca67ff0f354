// Loaders: the real CIFAR-10 files of ../shared/data (label counts and first pixels from its README),
// Debian's Fashion-MNIST, and small CIFAR-100 / STL-10 files in the official formats written here.
#include <sslgate/data/dataset.hpp>

#include <catch2/catch.hpp>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <fstream>

using namespace sslgate;
using namespace sslgate::data;
namespace fs = std::filesystem;

namespace {
fs::path temp_file(const std::string& name, const std::vector<std::uint8_t>& bytes) {
  const fs::path p = fs::temp_directory_path() / fmt::format("sslgate_ds_{}_{}", ::getpid(), name);
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return p;
}
std::array<int, 10> counts(const image_array& a) {
  std::array<int, 10> c{};
  for (auto l : a.labels) ++c[static_cast<std::size_t>(l)];
  return c;
}
template <class E>
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "(no exception)";
}
}  // namespace

TEST_CASE("spread_subset: n images spread over the set, every class of a sorted set kept", "[data]") {
  auto a = std::make_shared<image_array>();
  a->count = 12, a->h = a->w = 1, a->c = 1, a->num_classes = 3;
  for (int i = 0; i < 12; ++i) a->pixels.push_back(static_cast<std::uint8_t>(i)), a->labels.push_back(i / 4);  // sorted by class
  const spread_subset s(a, 6);
  REQUIRE(s.size() == 6);
  image_u8 scratch;
  std::vector<int> labels, pixels;
  for (std::int64_t i = 0; i < s.size(); ++i) labels.push_back(s.label(i)), pixels.push_back(s.image(i, scratch).data[0]);
  CHECK(pixels == std::vector<int>{0, 2, 4, 6, 8, 10});
  CHECK(labels == std::vector<int>{0, 0, 1, 1, 2, 2});
  CHECK(spread_subset(a, 50).size() == 12);
  CHECK_THROWS_AS(spread_subset(a, 0), value_error);
}

TEST_CASE("CIFAR-10 binary files of ../shared/data", "[data][loader]") {
  const fs::path dir = SSLGATE_SHARED_DATA_DIR;
  if (!fs::exists(dir / "cifar-10-exact-subset")) {
    WARN("skipped: " << dir << " is absent");
    return;
  }
  const auto train = read_cifar10(dir / "cifar-10-exact-subset" / "data_batch_1.bin");
  CHECK(train.count == 4000);
  CHECK(counts(train) == std::array<int, 10>{396, 366, 420, 384, 422, 393, 414, 385, 407, 413});
  CHECK(train.labels[0] == 6);
  const std::array<int, 10> red{59, 43, 50, 68, 98, 119, 139, 145, 149, 149};
  for (int x = 0; x < 10; ++x) CHECK(train.image(0).row(0)[3 * x] == red[x]);  // HWC: channel 0 of row 0
  const auto test = read_cifar10(dir / "cifar-10-exact-subset" / "test_batch.bin");
  CHECK(test.count == 1000);
  CHECK(counts(test) == std::array<int, 10>{103, 89, 100, 103, 90, 86, 112, 102, 106, 109});
  CHECK(test.labels[0] == 3);
  const std::array<int, 10> red_t{158, 159, 165, 166, 160, 156, 162, 159, 158, 159};
  for (int x = 0; x < 10; ++x) CHECK(test.image(0).row(0)[3 * x] == red_t[x]);

  const auto full = read_cifar10(dir / "cifar-10-batches-bin" / "data_batch_1.bin");
  CHECK(full.count == 10000);
  CHECK(counts(full) == std::array<int, 10>{1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981});
  const auto full_test = read_cifar10(dir / "cifar-10-batches-bin" / "test_batch.bin");
  CHECK(counts(full_test) == std::array<int, 10>{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000});
  // Several batches concatenate.
  const auto both = read_cifar10(std::vector<fs::path>{dir / "cifar-10-exact-subset" / "data_batch_1.bin",
                                                       dir / "cifar-10-exact-subset" / "test_batch.bin"});
  CHECK(both.count == 5000);
  CHECK(both.labels[4000] == 3);
}

TEST_CASE("Fashion-MNIST from Debian's dataset-fashion-mnist (gzipped IDX)", "[data][loader]") {
  const fs::path dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(dir / "t10k-images-idx3-ubyte.gz")) {
    WARN("skipped: " << dir << " is absent (apt-get install dataset-fashion-mnist)");
    return;
  }
  const auto t = read_idx(dir / "t10k-images-idx3-ubyte.gz", dir / "t10k-labels-idx1-ubyte.gz");
  CHECK(t.count == 10000);
  CHECK(t.h == 28);
  CHECK(t.c == 1);
  CHECK(counts(t) == std::array<int, 10>{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000});
  CHECK(t.labels[0] == 9);  // the first test image is an ankle boot
}

TEST_CASE("CIFAR-100 binary: fine and coarse labels, planes to HWC", "[data][loader]") {
  std::vector<std::uint8_t> bytes;
  for (int i = 0; i < 3; ++i) {
    bytes.push_back(static_cast<std::uint8_t>(i * 7));       // coarse
    bytes.push_back(static_cast<std::uint8_t>(i * 31 + 5));  // fine
    for (int ch = 0; ch < 3; ++ch)
      for (int p = 0; p < 1024; ++p) bytes.push_back(static_cast<std::uint8_t>((p + 100 * ch + i) & 255));
  }
  const auto path = temp_file("c100.bin", bytes);
  const auto fine = read_cifar100(path), coarse = read_cifar100(path, cifar100_label::coarse);
  CHECK(fine.count == 3);
  CHECK(fine.num_classes == 100);
  CHECK(coarse.num_classes == 20);
  CHECK(fine.labels == std::vector<std::int32_t>{5, 36, 67});
  CHECK(coarse.labels == std::vector<std::int32_t>{0, 7, 14});
  // Pixel (y 2, x 5) of image 1: plane index p = 2 * 32 + 5.
  const auto im = fine.image(1);
  for (int ch = 0; ch < 3; ++ch) CHECK(im.row(2)[5 * 3 + ch] == ((69 + 100 * ch + 1) & 255));

  // Bad inputs: each an io_error naming the file.
  bytes[3074] = 20;  // coarse label of record 1
  const auto bad = temp_file("c100_badlabel.bin", bytes);
  CHECK_THAT(message_of<io_error>([&] { read_cifar100(bad); }), Catch::Contains("c100_badlabel.bin") && Catch::Contains("coarse label 20"));
  bytes[3074] = 1;
  bytes[3075] = 100;
  const auto bad2 = temp_file("c100_badfine.bin", bytes);
  CHECK_THAT(message_of<io_error>([&] { read_cifar100(bad2); }), Catch::Contains("fine label 100"));
  bytes.pop_back();
  const auto trunc = temp_file("c100_trunc.bin", bytes);
  CHECK_THAT(message_of<io_error>([&] { read_cifar100(trunc); }), Catch::Contains("c100_trunc.bin") && Catch::Contains("3074-byte records"));
  for (const auto& p : {path, bad, bad2, trunc}) fs::remove(p);
}

TEST_CASE("CIFAR-10 bad inputs are io_errors naming the file", "[data][loader][hostile]") {
  std::vector<std::uint8_t> rec(3073, 9);
  rec[0] = 10;  // label out of range
  const auto lab = temp_file("c10_label.bin", rec);
  CHECK_THAT(message_of<io_error>([&] { read_cifar10(lab); }), Catch::Contains("c10_label.bin") && Catch::Contains("label 10 of record 0"));
  rec[0] = 1;
  rec.resize(3000);
  const auto size = temp_file("c10_size.bin", rec);
  CHECK_THAT(message_of<io_error>([&] { read_cifar10(size); }), Catch::Contains("c10_size.bin") && Catch::Contains("3073-byte"));
  const auto empty = temp_file("c10_empty.bin", {});
  CHECK_THAT(message_of<io_error>([&] { read_cifar10(empty); }), Catch::Contains("c10_empty.bin") && Catch::Contains("empty"));
  CHECK_THAT(message_of<io_error>([&] { read_cifar10(fs::path("/nonexistent/data_batch_9.bin")); }),
             Catch::Contains("data_batch_9.bin"));
  CHECK_THAT(message_of<io_error>([&] { read_cifar10(fs::temp_directory_path()); }), Catch::Contains("not a regular file"));
  for (const auto& p : {lab, size, empty}) fs::remove(p);
}

TEST_CASE("STL-10 binary is column-major per channel (no transpose)", "[data][loader]") {
  // Asymmetric pattern: value depends on x only (gradient along x), and a marker at (y 3, x 70).
  constexpr int n = 2;
  std::vector<std::uint8_t> img(static_cast<std::size_t>(n) * 27648);
  for (int i = 0; i < n; ++i)
    for (int ch = 0; ch < 3; ++ch)
      for (int x = 0; x < 96; ++x)
        for (int y = 0; y < 96; ++y) {
          std::uint8_t v = static_cast<std::uint8_t>(2 * x + ch + i);
          if (y == 3 && x == 70) v = 255;
          img[static_cast<std::size_t>(i) * 27648 + ch * 9216 + x * 96 + y] = v;  // column-major: x * 96 + y
        }
  const auto xp = temp_file("stl_X.bin", img);
  const auto yp = temp_file("stl_y.bin", {3, 10});
  const auto a = read_stl10(xp, yp);
  CHECK(a.count == 2);
  CHECK(a.labels == std::vector<std::int32_t>{2, 9});
  const auto im = a.image(1);
  for (int y : {0, 50, 95})
    for (int x : {0, 1, 40, 95})
      for (int ch = 0; ch < 3; ++ch) REQUIRE(im.row(y)[x * 3 + ch] == static_cast<std::uint8_t>(2 * x + ch + 1));
  CHECK(im.row(3)[70 * 3] == 255);
  CHECK(im.row(70)[3 * 3] != 255);  // a transpose would put the marker here
  // Unlabelled split.
  const auto u = read_stl10(xp);
  CHECK(u.labels.empty());
  CHECK(u.label(0) == -1);

  // Bad inputs.
  const auto badlab = temp_file("stl_badlabel.bin", {0, 10});
  CHECK_THAT(message_of<io_error>([&] { read_stl10(xp, badlab); }), Catch::Contains("stl_badlabel.bin") && Catch::Contains("label 0"));
  const auto fewlab = temp_file("stl_fewlabels.bin", {1});
  CHECK_THAT(message_of<io_error>([&] { read_stl10(xp, fewlab); }), Catch::Contains("1 labels"));
  img.resize(27648 + 5);
  const auto badsize = temp_file("stl_size.bin", img);
  CHECK_THAT(message_of<io_error>([&] { read_stl10(badsize); }), Catch::Contains("stl_size.bin") && Catch::Contains("27648-byte"));
  const auto empty = temp_file("stl_empty.bin", {});
  CHECK_THAT(message_of<io_error>([&] { read_stl10(empty); }), Catch::Contains("empty"));
  for (const auto& p : {xp, yp, badlab, fewlab, badsize, empty}) fs::remove(p);
}

TEST_CASE("IDX adapter checks that images and labels agree", "[data][loader][hostile]") {
  auto hdr = [](std::uint32_t magic, std::vector<std::uint32_t> dims) {
    std::vector<std::uint8_t> b;
    for (auto v : std::vector<std::uint32_t>{magic}) dims.insert(dims.begin(), v);
    for (auto v : dims)
      for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(v >> s));
    return b;
  };
  auto im = hdr(0x803, {2, 3, 4});
  im.resize(im.size() + 24, 7);
  auto lab = hdr(0x801, {3});
  lab.insert(lab.end(), {1, 2, 3});
  const auto ip = temp_file("idx_im", im), lp = temp_file("idx_lab", lab);
  CHECK_THAT(message_of<io_error>([&] { read_idx(ip, lp); }), Catch::Contains("3 labels") && Catch::Contains("2 images"));
  auto zero = hdr(0x803, {0, 0, 5});
  const auto zp = temp_file("idx_zero", zero);
  auto lab0 = hdr(0x801, {0});
  const auto lp0 = temp_file("idx_lab0", lab0);
  CHECK_THAT(message_of<io_error>([&] { read_idx(zp, lp0); }), Catch::Contains("not usable"));
  // count x rows x cols overflowing 64 bits must not pass the payload check.
  const auto ov = temp_file("idx_overflow", hdr(0x803, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}));
  CHECK_THAT(message_of<io_error>([&] { read_idx(ov, lp); }), Catch::Contains("idx_overflow"));
  for (const auto& p : {ip, lp, zp, lp0, ov}) fs::remove(p);
}
