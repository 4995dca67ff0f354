// JPEG / PNG decoding and image folders, good and hostile input (TESTING.md T7): every bad case is an
// io_error naming the file (or, under the skip policy, a counted skip), never a crash.
#include <sslgate/data/image_folder.hpp>
#include <sslgate/data/loader.hpp>

#include <catch2/catch.hpp>
#include <turbojpeg.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>

using namespace sslgate;
using namespace sslgate::data;
namespace fs = std::filesystem;

namespace {

using bytes_t = std::vector<std::uint8_t>;

image_u8 pattern(int h, int w) {
  image_u8 im(h, w, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      im.at(y, x, 0) = static_cast<std::uint8_t>(x * 255 / std::max(w - 1, 1));
      im.at(y, x, 1) = static_cast<std::uint8_t>(y * 255 / std::max(h - 1, 1));
      im.at(y, x, 2) = static_cast<std::uint8_t>((x + y) % 2 ? 40 : 200);
    }
  return im;
}

// TurboJPEG encoder: pixel format pf (TJPF_RGB, TJPF_GRAY, TJPF_CMYK), optionally progressive.
bytes_t jpeg_bytes(const std::uint8_t* px, int h, int w, int pf, int quality = 95, bool progressive = false) {
  tjhandle t = tjInitCompress();
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  const int subsamp = pf == TJPF_GRAY ? TJSAMP_GRAY : TJSAMP_444;
  const int flags = progressive ? TJFLAG_PROGRESSIVE : 0;
  REQUIRE(tjCompress2(t, px, w, 0, h, pf, &buf, &size, subsamp, quality, flags) == 0);
  bytes_t out(buf, buf + size);
  tjFree(buf);
  tjDestroy(t);
  return out;
}

// A minimal PNG writer: colour type ct (0 grey, 2 RGB, 3 palette), bit depth 8 or 16, Adam7 when interlaced.
// sample(y, x, k) gives sample k of pixel (y, x) (palette index for ct 3).
template <class F>
bytes_t png_bytes(int h, int w, int ct, int depth, bool interlaced, F sample, const bytes_t& plte = {}) {
  const int spp = ct == 2 ? 3 : 1, bpp = spp * depth / 8;
  bytes_t raw;
  const auto emit_rows = [&](int x0, int y0, int dx, int dy) {
    if (x0 >= w || y0 >= h) return;
    for (int y = y0; y < h; y += dy) {
      raw.push_back(0);  // filter: none
      for (int x = x0; x < w; x += dx)
        for (int k = 0; k < spp; ++k) {
          const int v = sample(y, x, k);
          if (depth == 16) raw.push_back(static_cast<std::uint8_t>(v >> 8));
          raw.push_back(static_cast<std::uint8_t>(v));
        }
    }
  };
  (void)bpp;
  if (interlaced) {
    const int p[7][4] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
    for (const auto& q : p) emit_rows(q[0], q[1], q[2], q[3]);
  } else {
    emit_rows(0, 0, 1, 1);
  }
  uLongf zlen = compressBound(static_cast<uLong>(raw.size()));
  bytes_t z(zlen);
  REQUIRE(compress(z.data(), &zlen, raw.data(), static_cast<uLong>(raw.size())) == Z_OK);
  z.resize(zlen);
  bytes_t out = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  const auto chunk = [&](const char* type, const bytes_t& data) {
    const auto be = [&](std::uint32_t v) {
      for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(v >> s));
    };
    be(static_cast<std::uint32_t>(data.size()));
    const std::size_t start = out.size();
    out.insert(out.end(), type, type + 4);
    out.insert(out.end(), data.begin(), data.end());
    be(static_cast<std::uint32_t>(crc32(0, out.data() + start, static_cast<uInt>(out.size() - start))));
  };
  bytes_t ihdr;
  for (std::uint32_t v : {static_cast<std::uint32_t>(w), static_cast<std::uint32_t>(h)})
    for (int s = 24; s >= 0; s -= 8) ihdr.push_back(static_cast<std::uint8_t>(v >> s));
  ihdr.insert(ihdr.end(), {static_cast<std::uint8_t>(depth), static_cast<std::uint8_t>(ct), 0, 0, static_cast<std::uint8_t>(interlaced)});
  chunk("IHDR", ihdr);
  if (ct == 3) chunk("PLTE", plte);
  chunk("IDAT", z);
  chunk("IEND", {});
  return out;
}

fs::path dir_for(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / fmt::format("sslgate_img_{}_{}", ::getpid(), name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
void write(const fs::path& p, const bytes_t& b) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}
template <class F>
std::string error_of(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  std::string msg = "(no exception)";
  try {
    f();
  } catch (const io_error& e) {
    msg = e.what();
  }
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1));
  return msg;
}

}  // namespace

TEST_CASE("JPEG decoding: RGB, grey, CMYK", "[data][decode]") {
  const image_u8 src = pattern(20, 30);
  image_u8 out = decode_image(jpeg_bytes(src.px.data(), 20, 30, TJPF_RGB, 100), "rgb.jpg");
  REQUIRE(out.h == 20);
  REQUIRE(out.w == 30);
  REQUIRE(out.c == 3);
  int worst = 0;
  for (std::size_t i = 0; i < out.px.size(); ++i) worst = std::max(worst, std::abs(int(out.px[i]) - int(src.px[i])));
  CHECK(worst <= 40);  // quality 100, 4:4:4, a hard checkerboard in blue

  bytes_t grey(20 * 30);
  for (std::size_t i = 0; i < grey.size(); ++i) grey[i] = static_cast<std::uint8_t>(i % 200);
  out = decode_image(jpeg_bytes(grey.data(), 20, 30, TJPF_GRAY, 100), "grey.jpg");
  CHECK(out.c == 1);
  CHECK(std::abs(int(out.px[5]) - 5) <= 2);

  // CMYK (TurboJPEG writes YCCK with an Adobe marker, i.e. inverted storage): PIL's cmyk2rgb.
  bytes_t cmyk(8 * 8 * 4);
  for (std::size_t i = 0; i < 64; ++i) {
    cmyk[4 * i + 0] = 30, cmyk[4 * i + 1] = 100, cmyk[4 * i + 2] = 200, cmyk[4 * i + 3] = 50;
  }
  out = decode_image(jpeg_bytes(cmyk.data(), 8, 8, TJPF_CMYK, 100), "cmyk.jpg");
  REQUIRE(out.c == 3);
  // The raw CMYK TurboJPEG returns is whatever was stored; PIL treats Adobe CMYK as inverted. Whichever
  // branch, the result is a valid, deterministic RGB image; check it against the formula on the raw values.
  const bool adobe = data::detail::jpeg_has_adobe_marker(jpeg_bytes(cmyk.data(), 8, 8, TJPF_CMYK, 100));
  int c = 30, k = 50;
  if (adobe) c = 255 - c, k = 255 - k;
  const int nk = 255 - k, tmp = c * nk + 128, want = nk - (((tmp >> 8) + tmp) >> 8);
  CHECK(std::abs(int(out.px[0]) - std::max(want, 0)) <= 2);
}

TEST_CASE("PNG decoding: RGB, grey, 16-bit, palette, interlaced", "[data][decode]") {
  const int h = 13, w = 11;
  const auto rgb = [](int y, int x, int k) { return (y * 17 + x * 5 + k * 60) & 255; };
  const image_u8 a = decode_image(png_bytes(h, w, 2, 8, false, rgb), "rgb.png");
  const image_u8 b = decode_image(png_bytes(h, w, 2, 8, true, rgb), "interlaced.png");
  const image_u8 c = decode_image(png_bytes(h, w, 2, 16, false, [&](int y, int x, int k) { return rgb(y, x, k) * 256 + 3; }), "deep.png");
  REQUIRE(a.h == h);
  REQUIRE(a.w == w);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < 3; ++k) {
        REQUIRE(a.at(y, x, k) == rgb(y, x, k));
        REQUIRE(b.at(y, x, k) == rgb(y, x, k));
        REQUIRE(c.at(y, x, k) == rgb(y, x, k));  // high byte of the 16-bit sample
      }
  bytes_t plte;
  for (int i = 0; i < 4; ++i) plte.insert(plte.end(), {static_cast<std::uint8_t>(i * 60), static_cast<std::uint8_t>(255 - i * 60), 7});
  const image_u8 p = decode_image(png_bytes(h, w, 3, 8, true, [](int y, int x, int) { return (x + y) % 4; }, plte), "palette.png");
  CHECK(p.c == 3);
  CHECK(p.at(2, 3, 0) == 60);  // index (2 + 3) % 4 = 1
  CHECK(p.at(2, 3, 1) == 195);
  const image_u8 g = decode_image(png_bytes(h, w, 0, 8, false, [](int y, int x, int) { return y * 10 + x; }), "grey.png");
  CHECK(g.at(4, 2, 0) == 42);
  CHECK(g.at(4, 2, 2) == 42);
}

TEST_CASE("hostile JPEG and PNG: clear io_errors naming the file, quickly", "[data][decode][hostile]") {
  const image_u8 src = pattern(64, 64);
  const bytes_t good = jpeg_bytes(src.px.data(), 64, 64, TJPF_RGB);
  image_u8 out;

  bytes_t trunc(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(good.size() / 2));
  CHECK_THAT(error_of([&] { decode_image(trunc, "trunc.jpg", out); }), Catch::Contains("trunc.jpg") && Catch::Contains("truncated"));

  // Corrupted Huffman table: scribble over the DHT segment's code counts.
  bytes_t huff = good;
  for (std::size_t i = 2; i + 1 < huff.size(); ++i)
    if (huff[i] == 0xFF && huff[i + 1] == 0xC4) {
      for (std::size_t k = i + 5; k < i + 21 && k < huff.size(); ++k) huff[k] = 0xFF;
      break;
    }
  CHECK_THAT(error_of([&] { decode_image(huff, "huffman.jpg", out); }), Catch::Contains("huffman.jpg"));

  // Declared 60000 x 60000 (SOF0 height/width patched): refused from the header, before allocating.
  bytes_t huge = good;
  for (std::size_t i = 2; i + 8 < huge.size(); ++i)
    if (huge[i] == 0xFF && (huge[i + 1] == 0xC0 || huge[i + 1] == 0xC2)) {
      huge[i + 5] = 0xEA, huge[i + 6] = 0x60, huge[i + 7] = 0xEA, huge[i + 8] = 0x60;  // 60000
      break;
    }
  CHECK_THAT(error_of([&] { decode_image(huge, "huge.jpg", out); }), Catch::Contains("huge.jpg") && Catch::Contains("60000x60000"));
  bytes_t huge_png = png_bytes(4, 4, 2, 8, false, [](int, int, int) { return 1; });
  for (int k : {16, 20}) huge_png[k] = 0, huge_png[k + 1] = 0, huge_png[k + 2] = 0xEA, huge_png[k + 3] = 0x60;
  const auto crc = crc32(0, huge_png.data() + 12, 17);
  for (int s = 0; s < 4; ++s) huge_png[29 + s] = static_cast<std::uint8_t>(crc >> (24 - 8 * s));
  CHECK_THAT(error_of([&] { decode_image(huge_png, "huge.png", out); }), Catch::Contains("huge.png") && Catch::Contains("exceeds the cap"));

  // Progressive JPEG with thousands of scans: TJFLAG_LIMITSCANS refuses it.
  const bytes_t prog = jpeg_bytes(src.px.data(), 64, 64, TJPF_RGB, 90, true);
  std::size_t last_sos = 0;
  for (std::size_t i = 2; i + 1 < prog.size(); ++i)
    if (prog[i] == 0xFF && prog[i + 1] == 0xDA) last_sos = i;
  REQUIRE(last_sos > 0);
  bytes_t scans(prog.begin(), prog.begin() + static_cast<std::ptrdiff_t>(last_sos));
  const bytes_t scan(prog.begin() + static_cast<std::ptrdiff_t>(last_sos), prog.end() - 2);
  for (int k = 0; k < 3000; ++k) scans.insert(scans.end(), scan.begin(), scan.end());
  scans.insert(scans.end(), {0xFF, 0xD9});
  CHECK_THAT(error_of([&] { decode_image(scans, "scans.jpg", out); }), Catch::Contains("scans.jpg"));

  // Truncated and corrupt PNG.
  const bytes_t png = png_bytes(40, 40, 2, 8, true, [](int y, int x, int k) { return (x * y + k) & 255; });
  const bytes_t png_trunc(png.begin(), png.begin() + static_cast<std::ptrdiff_t>(png.size() - 30));
  CHECK_THAT(error_of([&] { decode_image(png_trunc, "trunc.png", out); }), Catch::Contains("trunc.png"));
  bytes_t png_bad = png;
  png_bad[png.size() / 2] ^= 0x5A;  // breaks the IDAT CRC
  CHECK_THAT(error_of([&] { decode_image(png_bad, "crc.png", out); }), Catch::Contains("crc.png"));

  // Empty and non-image bytes.
  CHECK_THAT(error_of([&] { decode_image(bytes_t{}, "empty.jpg", out); }), Catch::Contains("empty.jpg is empty"));
  const std::string text = "this is not a picture";
  CHECK_THAT(error_of([&] { decode_image(bytes_t(text.begin(), text.end()), "text.jpg", out); }),
             Catch::Contains("text.jpg is neither a JPEG nor a PNG"));
}

TEST_CASE("image folder: classes, class list, labels, decoding through the loader", "[data][folder]") {
  const fs::path root = dir_for("folder");
  const image_u8 src = pattern(40, 48);
  write(root / "b_dog" / "x1.JPEG", jpeg_bytes(src.px.data(), 40, 48, TJPF_RGB));
  write(root / "b_dog" / "x0.png", png_bytes(40, 48, 2, 8, false, [&](int y, int x, int k) { return src.at(y, x, k); }));
  write(root / "a_cat" / "sub" / "c.jpg", jpeg_bytes(src.px.data(), 40, 48, TJPF_RGB));
  write(root / "a_cat" / "notes.txt", {1, 2, 3});
  write(root / "c_fox" / "f.png", png_bytes(8, 9, 0, 8, false, [](int, int, int) { return 9; }));

  image_folder all(root);
  CHECK(all.classes() == std::vector<std::string>{"a_cat", "b_dog", "c_fox"});
  REQUIRE(all.size() == 4);
  CHECK(all.files()[1].filename() == "x0.png");  // sorted within the class
  CHECK(all.label(0) == 0);
  CHECK(all.label(2) == 1);
  CHECK(all.label(3) == 2);
  image_u8 scratch;
  const auto v = all.image(1, scratch);
  CHECK(v.h == 40);
  CHECK(v.row(3)[3 * 7 + 1] == src.at(3, 7, 1));

  std::ofstream(root / "classes.txt") << "# the usual list\nc_fox\n\nb_dog  \n";
  image_folder_options o;
  o.class_list = root / "classes.txt";
  image_folder some(root, o);
  CHECK(some.classes() == std::vector<std::string>{"c_fox", "b_dog"});
  CHECK(some.size() == 3);
  CHECK(some.label(0) == 0);
  CHECK(some.label(1) == 1);

  std::ofstream(root / "bad_classes.txt") << "b_dog\nzebra\n";
  o.class_list = root / "bad_classes.txt";
  CHECK_THAT(error_of([&] { image_folder(root, o); }), Catch::Contains("zebra"));
  o.class_list = root / "missing.txt";
  CHECK_THAT(error_of([&] { image_folder(root, o); }), Catch::Contains("missing.txt"));
  CHECK_THAT(error_of([&] { image_folder(root / "nowhere"); }), Catch::Contains("nowhere"));

  // ImageNet-style two views from the folder.
  auto rc = presets::imagenet100();
  rc.view1.size = rc.view2.size = 24;
  loader_options lo;
  lo.batch_size = 2;
  lo.workers = 2;
  two_view_loader l(std::make_shared<image_folder>(root), rc, lo);
  const auto b0 = l.batch_at(0, 0), b1 = l.batch_at(0, 1);
  CHECK(b0.view1.dims() == shape{2, 3, 24, 24});
  fs::remove_all(root);
}

TEST_CASE("image folder: bad files fail or are skipped and counted", "[data][folder][hostile]") {
  const fs::path root = dir_for("badfolder");
  const image_u8 src = pattern(16, 16);
  const bytes_t good = jpeg_bytes(src.px.data(), 16, 16, TJPF_RGB);
  write(root / "k" / "good.jpg", good);
  write(root / "k" / "empty.jpg", {});
  write(root / "k" / "text.jpg", {'h', 'e', 'l', 'l', 'o'});
  write(root / "k" / "trunc.jpg", bytes_t(good.begin(), good.begin() + 20));
  bytes_t huge = good;
  for (std::size_t i = 2; i + 8 < huge.size(); ++i)
    if (huge[i] == 0xFF && huge[i + 1] == 0xC0) {
      huge[i + 5] = 0xEA, huge[i + 6] = 0x60, huge[i + 7] = 0xEA, huge[i + 8] = 0x60;
      break;
    }
  write(root / "k" / "huge.jpg", huge);
  fs::create_directories(root / "k" / "folder.jpg");                         // not a file
  fs::create_symlink(root / "k" / "gone.jpg", root / "k" / "dangling.jpg");  // unreadable
  fs::create_symlink(root / "k", root / "k" / "loop");                       // symlink loop

  image_folder_options o;
  o.policy = bad_file_policy::skip;
  std::vector<std::string> log;
  o.log = [&](const std::string& s) { log.push_back(s); };
  image_folder f(root, o);
  REQUIRE(f.size() == 1);
  CHECK(f.files()[0].filename() == "good.jpg");
  CHECK(f.skipped() == 6);  // dangling, empty, huge, text, trunc (truncated header), loop
  CHECK_THAT(log.back(), Catch::Contains("skipped 6 bad file(s), kept 1"));

  // verify = full also catches a file whose header is fine but whose data is cut.
  bytes_t cut(good.begin(), good.end() - 200);
  write(root / "k" / "cut.jpg", cut);
  o.verify = verify_mode::header;
  CHECK(image_folder(root, o).size() == 2);
  o.verify = verify_mode::full;
  CHECK(image_folder(root, o).size() == 1);

  o.policy = bad_file_policy::fail;
  o.verify = verify_mode::header;
  CHECK_THAT(error_of([&] { image_folder(root, o); }), Catch::Contains("loop: symlink loop"));
  fs::remove(root / "k" / "loop");
  CHECK_THAT(error_of([&] { image_folder(root, o); }), Catch::Contains("dangling.jpg"));
  fs::remove(root / "k" / "dangling.jpg");
  CHECK_THAT(error_of([&] { image_folder(root, o); }), Catch::Contains("empty.jpg"));
  fs::remove_all(root);
}
