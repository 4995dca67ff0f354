// safetensors reader/writer: golden byte layouts of the reference serializer, round trips, one
// test per malformed-input rule, atomic writes, and the PyTorch reference fixtures.
#include <sslgate/core/io/safetensors.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#ifndef SSLGATE_FIXTURE_DIR
#error "define SSLGATE_FIXTURE_DIR as the directory holding the reference *.safetensors fixtures"
#endif

namespace {

using namespace sslgate::io;
namespace fs = std::filesystem;
using bytes_t = std::vector<std::byte>;

bytes_t to_bytes(std::string_view s) {
  bytes_t b(s.size());
  if (!s.empty()) std::memcpy(b.data(), s.data(), s.size());
  return b;
}

void append_u64(bytes_t& b, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xFF));
}

// A file with header length n (as given), `rest` after the length field.
bytes_t with_length(std::uint64_t n, std::string_view rest) {
  bytes_t b;
  append_u64(b, n);
  const bytes_t r = to_bytes(rest);
  b.insert(b.end(), r.begin(), r.end());
  return b;
}

// A well-framed file: correct length for `header`, then `data_len` zero bytes.
bytes_t framed(std::string_view header, std::size_t data_len) {
  bytes_t b = with_length(header.size(), header);
  b.resize(b.size() + data_len, std::byte{0});
  return b;
}

// One header entry, e.g. entry("a", "F32", "[2]", 0, 8) -> "a":{...}.
std::string entry(std::string_view name, std::string_view dt, std::string_view shape, std::string_view offsets) {
  return fmt::format(R"("{}":{{"dtype":"{}","shape":{},"data_offsets":{}}})", name, dt, shape, offsets);
}

// A header object of these members: {m1,m2,...}.
std::string object(std::initializer_list<std::string> members) { return fmt::format("{{{}}}", fmt::join(members, ",")); }

// The io_error message parse() gives for `b`; fails the test when parse succeeds or throws
// anything else.
std::string parse_error(const bytes_t& b) {
  try {
    (void)safetensors_file::parse(b, "bad.safetensors");
  } catch (const sslgate::io_error& e) {
    return e.what();
  }
  FAIL("parse() accepted a malformed file");
  return {};
}

#define REQUIRE_REJECTED(bytes, substring)                     \
  do {                                                         \
    const std::string msg_ = parse_error(bytes);               \
    CHECK_THAT(msg_, Catch::Contains("bad.safetensors"));      \
    CHECK_THAT(msg_, Catch::Contains(substring));              \
  } while (0)

bytes_t floats_le(std::initializer_list<float> v) {
  bytes_t b;
  for (float f : v) {
    const auto u = std::bit_cast<std::uint32_t>(f);
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::byte>((u >> (8 * i)) & 0xFF));
  }
  return b;
}

// A fresh empty directory under the system temp dir.
fs::path scratch_dir(std::string_view tag) {
  static int counter = 0;
  const fs::path d = fs::temp_directory_path() /
                     fmt::format("sslgate_st_{}_{}_{}", tag, static_cast<long>(::getpid()), counter++);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

}  // namespace

// ---------------------------------------------------------------- writer: golden layouts

TEST_CASE("safetensors writer: golden layout, one F32 tensor [1,2,3]", "[io]") {
  safetensors_writer w;
  const std::vector<float> v{0, 1, 2, 3, 4, 5};
  w.add<float>("attn.0", {1, 2, 3}, v);
  const std::string header = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
  REQUIRE(header.size() == 64);
  bytes_t expect = with_length(64, header);
  const bytes_t data = floats_le({0, 1, 2, 3, 4, 5});
  expect.insert(expect.end(), data.begin(), data.end());
  const bytes_t got = w.bytes();
  REQUIRE(got.size() == 96);
  CHECK(got == expect);

  const auto f = safetensors_file::parse(got);
  CHECK(f.values<float>("attn.0") == v);
}

TEST_CASE("safetensors writer: golden layout, header padded to a multiple of 8", "[io]") {
  safetensors_writer w;
  const std::vector<float> v{0, 1, 2, 3, 4, 5};
  w.add<float>("attn0", {1, 1, 2, 3}, v);
  const std::string header = R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})";
  REQUIRE(header.size() == 65);
  bytes_t expect = with_length(72, header + std::string(7, ' '));
  const bytes_t data = floats_le({0, 1, 2, 3, 4, 5});
  expect.insert(expect.end(), data.begin(), data.end());
  const bytes_t got = w.bytes();
  REQUIRE(got.size() == 104);
  CHECK(got == expect);
  CHECK(safetensors_file::parse(got).values<float>("attn0") == v);
}

TEST_CASE("safetensors writer: golden layout, no tensors", "[io]") {
  const bytes_t got = safetensors_writer{}.bytes();
  const bytes_t expect = with_length(8, "{}      ");
  REQUIRE(got.size() == 16);
  CHECK(got == expect);
  const auto f = safetensors_file::parse(got);
  CHECK(f.entries().empty());
  CHECK(f.metadata().empty());
}

TEST_CASE("safetensors writer: golden layout, metadata only", "[io]") {
  safetensors_writer w;
  w.set_metadata("framework", "pt");
  const std::string header = R"({"__metadata__":{"framework":"pt"}})";
  REQUIRE(header.size() == 35);
  const bytes_t got = w.bytes();
  REQUIRE(got.size() == 48);
  CHECK(got == with_length(40, header + std::string(5, ' ')));
  const auto f = safetensors_file::parse(got);
  CHECK(f.entries().empty());
  CHECK(f.metadata() == std::map<std::string, std::string>{{"framework", "pt"}});
}

TEST_CASE("safetensors writer: insertion order, metadata first, replaced metadata keeps its place", "[io]") {
  safetensors_writer w;
  w.set_metadata("b", "1");
  w.set_metadata("a", "2");
  w.set_metadata("b", "3");
  const std::vector<std::int32_t> z{7};
  const std::vector<std::int32_t> a{8, 9};
  w.add<std::int32_t>("z", {1}, z);
  w.add<std::int32_t>("a", {2}, a);
  const bytes_t b = w.bytes();
  const std::string text(reinterpret_cast<const char*>(b.data()) + 8, b.size() - 8 - 12);
  CHECK(text.rfind(R"({"__metadata__":{"b":"3","a":"2"},"z":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},)"
                   R"("a":{"dtype":"I32","shape":[2],"data_offsets":[4,12]}})",
                   0) == 0);
  const auto f = safetensors_file::parse(b);
  REQUIRE(f.entries().size() == 2);
  CHECK(f.entries()[0].name == "z");  // file order of data offsets, not name order
  CHECK(f.entries()[1].name == "a");
  CHECK(f.values<std::int32_t>("a") == a);
}

// ---------------------------------------------------------------- round trips

TEST_CASE("safetensors: round trip of every dtype through raw bytes", "[io]") {
  const dtype all[] = {dtype::BOOL, dtype::U8,  dtype::I8,  dtype::U16, dtype::I16, dtype::F16, dtype::BF16,
                       dtype::U32,  dtype::I32, dtype::F32, dtype::U64, dtype::I64, dtype::F64};
  safetensors_writer w;
  std::vector<bytes_t> payloads;
  for (dtype t : all) {
    bytes_t p(6 * dtype_size(t));
    for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<std::byte>(t == dtype::BOOL ? i % 2 : i * 7 + 1);
    w.add(std::string("t_") + std::string(dtype_name(t)), t, {2, 3}, p);
    payloads.push_back(std::move(p));
  }
  const auto f = safetensors_file::parse(w.bytes());
  REQUIRE(f.entries().size() == std::size(all));
  for (std::size_t k = 0; k < std::size(all); ++k) {
    const tensor_entry& e = f.at(std::string("t_") + std::string(dtype_name(all[k])));
    CHECK(e.type == all[k]);
    CHECK(e.shape == std::vector<std::int64_t>{2, 3});
    const auto d = f.data(e);
    CHECK(bytes_t(d.begin(), d.end()) == payloads[k]);
    CHECK(parse_dtype(dtype_name(all[k])) == all[k]);
  }
  CHECK(f.values<bool>("t_BOOL") == std::vector<bool>{false, true, false, true, false, true});
}

TEST_CASE("safetensors: typed round trip and conversions", "[io]") {
  safetensors_writer w;
  const std::vector<float> f32{-1.5f, 0.0f, 3.25f};
  const std::vector<double> f64{1.0 / 3.0, -2.0, 1e300};
  const std::vector<std::int8_t> i8{-128, 0, 127};
  const std::vector<std::uint8_t> u8{0, 200, 255};
  const std::vector<std::int16_t> i16{-32768, 1, 32767};
  const std::vector<std::uint16_t> u16{0, 1, 65535};
  const std::vector<std::int32_t> i32{std::numeric_limits<std::int32_t>::min(), 5, 6};
  const std::vector<std::uint32_t> u32{0, 4000000000u, 7};
  const std::vector<std::int64_t> i64{std::numeric_limits<std::int64_t>::min(), 0, 1099511627779};
  const std::vector<std::uint64_t> u64{0, std::numeric_limits<std::uint64_t>::max(), 9};
  const bool flags[] = {true, false, true};
  w.add<float>("f32", {3}, f32);
  w.add<double>("f64", {3}, f64);
  w.add<std::int8_t>("i8", {3}, i8);
  w.add<std::uint8_t>("u8", {3}, u8);
  w.add<std::int16_t>("i16", {3}, i16);
  w.add<std::uint16_t>("u16", {3}, u16);
  w.add<std::int32_t>("i32", {1, 3}, i32);
  w.add<std::uint32_t>("u32", {3, 1}, u32);
  w.add<std::int64_t>("i64", {3}, i64);
  w.add<std::uint64_t>("u64", {3}, u64);
  w.add<bool>("bool", {3}, flags);
  w.add<float>("empty", {0, 3}, std::span<const float>{});
  const float one = 7.5f;
  w.add<float>("scalar", {}, std::span<const float>(&one, 1));

  const auto f = safetensors_file::parse(w.bytes(), "typed");
  CHECK(f.values<float>("f32") == f32);
  CHECK(f.values<double>("f64") == f64);
  CHECK(f.values<std::int8_t>("i8") == i8);
  CHECK(f.values<std::uint8_t>("u8") == u8);
  CHECK(f.values<std::int16_t>("i16") == i16);
  CHECK(f.values<std::uint16_t>("u16") == u16);
  CHECK(f.values<std::int32_t>("i32") == i32);
  CHECK(f.values<std::uint32_t>("u32") == u32);
  CHECK(f.values<std::int64_t>("i64") == i64);
  CHECK(f.values<std::uint64_t>("u64") == u64);
  CHECK(f.values<bool>("bool") == std::vector<bool>{true, false, true});
  CHECK(f.at("bool").type == dtype::BOOL);
  CHECK(f.at("u32").type == dtype::U32);
  CHECK(f.at("u32").shape == std::vector<std::int64_t>{3, 1});

  // Cross-type conversions.
  CHECK(f.values<double>("f32") == std::vector<double>{-1.5, 0.0, 3.25});
  CHECK(f.values<double>("i8") == std::vector<double>{-128, 0, 127});
  CHECK(f.values<std::int64_t>("u8") == std::vector<std::int64_t>{0, 200, 255});
  CHECK(f.values<float>("bool") == std::vector<float>{1, 0, 1});
  CHECK(std::isinf(f.values<float>("f64")[2]));  // F64 -> float rounds (overflow to inf)

  // Zero-sized and scalar tensors.
  CHECK(f.at("empty").size == 0);
  CHECK(f.at("empty").shape == std::vector<std::int64_t>{0, 3});
  CHECK(f.values<float>("empty").empty());
  CHECK(f.at("scalar").shape.empty());
  CHECK(f.values<double>("scalar") == std::vector<double>{7.5});

  // Conversions that would lose information are value_errors naming the tensor.
  CHECK_THROWS_AS(f.values<std::int32_t>("f32"), sslgate::value_error);   // -1.5 not integral
  CHECK_THROWS_AS(f.values<std::uint8_t>("i8"), sslgate::value_error);    // -128 out of range
  CHECK_THROWS_AS(f.values<std::int64_t>("u64"), sslgate::value_error);   // 2^64-1 out of range
  CHECK_THROWS_AS(f.values<std::int64_t>("f64"), sslgate::value_error);   // 1/3
  CHECK_THROWS_WITH(f.values<std::int8_t>("u8"), Catch::Contains("\"u8\"") && Catch::Contains("int8"));
}

TEST_CASE("safetensors: F16 and BF16 convert exactly", "[io]") {
  const std::uint16_t half[] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x8000, 0x7C00, 0x3555};
  const std::uint16_t bf[] = {0x3F80, 0xC040, 0x0000, 0xFF80};
  bytes_t hb, bb;
  const auto put = [](bytes_t& out, std::uint16_t v) {  // little-endian
    out.push_back(std::byte(v & 0xFF));
    out.push_back(std::byte(v >> 8));
  };
  for (auto h : half) put(hb, h);
  for (auto h : bf) put(bb, h);
  safetensors_writer w;
  w.add("h", dtype::F16, {7}, hb);
  w.add("b", dtype::BF16, {2, 2}, bb);
  const auto f = safetensors_file::parse(w.bytes());
  const auto h = f.values<double>("h");
  CHECK(h[0] == 1.0);
  CHECK(h[1] == -2.0);
  CHECK(h[2] == 65504.0);
  CHECK(h[3] == std::ldexp(1.0, -24));
  CHECK((h[4] == 0.0 && std::signbit(h[4])));
  CHECK((std::isinf(h[5]) && h[5] > 0));
  CHECK(h[6] == Approx(0.333251953125));
  CHECK(f.values<float>("b") == std::vector<float>{1.0f, -3.0f, 0.0f, -std::numeric_limits<float>::infinity()});
  CHECK_THROWS_AS(f.values<std::int32_t>("h"), sslgate::value_error);  // 2^-24 is not an integer
}

// ---------------------------------------------------------------- writer: misuse

TEST_CASE("safetensors writer: rejects bad names, sizes and shapes", "[io]") {
  safetensors_writer w;
  const std::vector<float> two{1, 2};
  w.add<float>("a", {2}, two);
  CHECK_THROWS_WITH(w.add<float>("a", {2}, two), Catch::Contains("duplicate tensor name \"a\""));
  CHECK_THROWS_AS(w.add<float>("b", {3}, two), sslgate::value_error);
  CHECK_THROWS_AS(w.add<float>("b", {-2}, two), sslgate::value_error);
  CHECK_THROWS_AS(w.add<float>("", {2}, two), sslgate::value_error);
  CHECK_THROWS_AS(w.add<float>("__metadata__", {2}, two), sslgate::value_error);
  CHECK_THROWS_AS(w.add<float>(std::string("x\0y", 3), {2}, two), sslgate::value_error);
  CHECK_THROWS_AS(w.add<float>(std::string(1025, 'n'), {2}, two), sslgate::value_error);
  CHECK_THROWS_AS(w.add<float>("\xff", {2}, two), sslgate::value_error);
  CHECK_THROWS_AS(w.add("b", dtype::F64, {2}, to_bytes("12345678")), sslgate::value_error);
  CHECK_THROWS_AS(w.add("b", dtype::U8, {std::numeric_limits<std::int64_t>::max(), 2}, {}), sslgate::value_error);
  CHECK_THROWS_AS(w.set_metadata("k", "\xc0\x80"), sslgate::value_error);
  // The failed calls left nothing behind.
  const auto f = safetensors_file::parse(w.bytes());
  REQUIRE(f.entries().size() == 1);
  CHECK(f.values<float>("a") == two);
}

TEST_CASE("safetensors writer: names are escaped as JSON and read back", "[io]") {
  safetensors_writer w;
  const std::string odd = "q\"uote\\back\nnew\x01" "ctl/\xc3\xa9";
  const std::vector<std::uint8_t> v{1};
  w.add<std::uint8_t>(odd, {1}, v);
  w.set_metadata("note", "tab\there");
  const auto f = safetensors_file::parse(w.bytes());
  CHECK(f.values<std::uint8_t>(odd) == v);
  CHECK(f.metadata().at("note") == "tab\there");
}

TEST_CASE("dtype helpers", "[io]") {
  CHECK(dtype_size(dtype::BOOL) == 1);
  CHECK(dtype_size(dtype::BF16) == 2);
  CHECK(dtype_size(dtype::U32) == 4);
  CHECK(dtype_size(dtype::F64) == 8);
  CHECK(dtype_name(dtype::BF16) == "BF16");
  CHECK(parse_dtype("I64") == dtype::I64);
  CHECK_THROWS_AS(parse_dtype("f32"), sslgate::io_error);
  CHECK_THROWS_WITH(parse_dtype("F8_E4M3"), Catch::Contains("unknown dtype \"F8_E4M3\""));
}

// ---------------------------------------------------------------- reader: malformed input

TEST_CASE("safetensors reject: file shorter than 8 bytes", "[io]") {
  REQUIRE_REJECTED(bytes_t{}, "too short");
  REQUIRE_REJECTED(to_bytes("abc"), "file is 3 bytes");
  REQUIRE_REJECTED(bytes_t(7, std::byte{0}), "too short");
}

TEST_CASE("safetensors reject: header length over the 100 MB cap", "[io]") {
  REQUIRE_REJECTED(with_length(100'000'001, "{}"), "header length 100000001 exceeds the 100000000-byte limit");
}

TEST_CASE("safetensors reject: header length past the end of the file", "[io]") {
  REQUIRE_REJECTED(with_length(64, "{}      "), "header length 64 exceeds the 8 bytes");
  REQUIRE_REJECTED(with_length(1, ""), "header length 1 exceeds the 0 bytes");
}

TEST_CASE("safetensors reject: header length where 8 + n overflows", "[io]") {
  REQUIRE_REJECTED(with_length(std::numeric_limits<std::uint64_t>::max(), "{}"),
                   "header length 18446744073709551615");
  REQUIRE_REJECTED(with_length(std::numeric_limits<std::uint64_t>::max() - 7, "{}"), "header length");
}

TEST_CASE("safetensors reject: header that is not valid UTF-8", "[io]") {
  REQUIRE_REJECTED(framed("{\"a\xff\":1}", 0), "not valid UTF-8 (byte 3");
  REQUIRE_REJECTED(framed("{\"\xc0\x80\":1}", 0), "not valid UTF-8");      // overlong NUL
  REQUIRE_REJECTED(framed("{\"\xed\xa0\x80\":1}", 0), "not valid UTF-8");  // surrogate
  REQUIRE_REJECTED(framed("{\"\xf4\x90\x80\x80\":1}", 0), "not valid UTF-8");  // > U+10FFFF
  REQUIRE_REJECTED(framed("{\"\xe2\x82", 0), "not valid UTF-8");                 // truncated
}

TEST_CASE("safetensors reject: header not starting with '{'", "[io]") {
  REQUIRE_REJECTED(framed(" {}     ", 0), "does not start with '{'");
  REQUIRE_REJECTED(framed("[]      ", 0), "does not start with '{'");
  REQUIRE_REJECTED(framed("", 0), "does not start with '{'");
}

TEST_CASE("safetensors reject: invalid JSON", "[io]") {
  REQUIRE_REJECTED(framed("{\"a\":}", 0), "not valid JSON");
  REQUIRE_REJECTED(framed("{\"a\":1", 0), "not valid JSON");
  REQUIRE_REJECTED(framed("{} {}", 0), "not valid JSON");       // trailing content
  bytes_t nul_padded = with_length(8, std::string_view("{}\0\0\0\0\0\0", 8));
  REQUIRE_REJECTED(nul_padded, "NUL byte at byte 2");  // nlohmann alone would stop at the NUL and accept
  REQUIRE_REJECTED(with_length(8, std::string_view("{}\0junk", 8)), "not valid JSON");
  REQUIRE_REJECTED(framed("{\"a\":1e999}", 0), "not valid JSON");  // number overflow
  REQUIRE_REJECTED(framed("{\"\\ud800\":1}", 0), "not valid JSON");  // lone surrogate escape
}

TEST_CASE("safetensors reject: nesting deeper than 3 levels", "[io]") {
  REQUIRE_REJECTED(framed(R"({"a":{"b":{"c":{}}}})", 0), "nests deeper than 3 levels");
  REQUIRE_REJECTED(framed(object({entry("a", "F32", "[[1]]", "[0,4]")}), 4), "nests deeper than 3 levels");
  // Deep input is stopped at the fourth level, not parsed recursively.
  REQUIRE_REJECTED(framed("{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}", 0),
                   "nests deeper than 3 levels");
}

TEST_CASE("safetensors reject: duplicate tensor names and keys", "[io]") {
  REQUIRE_REJECTED(framed(object({entry("a", "F32", "[1]", "[0,4]"), entry("a", "F32", "[1]", "[4,8]")}), 8),
                   "duplicate tensor name \"a\"");
  REQUIRE_REJECTED(framed(R"({"a":{"dtype":"F32","dtype":"F64","shape":[],"data_offsets":[0,4]}})", 4),
                   "duplicate key \"dtype\"");
  REQUIRE_REJECTED(framed(R"({"__metadata__":{},"__metadata__":{}})", 0), "duplicate");
}

TEST_CASE("safetensors reject: unknown dtype", "[io]") {
  REQUIRE_REJECTED(framed(object({entry("a", "F8_E4M3", "[1]", "[0,1]")}), 1), "unknown dtype \"F8_E4M3\"");
  REQUIRE_REJECTED(framed(object({entry("a", "f32", "[1]", "[0,4]")}), 4), "unknown dtype \"f32\"");
  REQUIRE_REJECTED(framed(R"({"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", 4), "dtype is not a string");
}

TEST_CASE("safetensors reject: non-integer, negative or float shape entries", "[io]") {
  REQUIRE_REJECTED(framed(object({entry("a", "F32", "[\"1\"]", "[0,4]")}), 4), "not a non-negative integer");
  REQUIRE_REJECTED(framed(object({entry("a", "F32", "[-1]", "[0,4]")}), 4), "negative entry -1");
  REQUIRE_REJECTED(framed(object({entry("a", "F32", "[1.0]", "[0,4]")}), 4), "not a non-negative integer");
  REQUIRE_REJECTED(framed(object({entry("a", "F32", "[1e0]", "[0,4]")}), 4), "not a non-negative integer");
  REQUIRE_REJECTED(framed(object({entry("a", "F32", "[null]", "[0,4]")}), 4), "not a non-negative integer");
  REQUIRE_REJECTED(framed(object({entry("a", "F32", "[9223372036854775808]", "[0,4]")}), 4), "too large");
  REQUIRE_REJECTED(framed(object({entry("a", "F32", "7", "[0,4]")}), 4), "shape is not an array");
}

TEST_CASE("safetensors reject: shape product overflow", "[io]") {
  REQUIRE_REJECTED(framed(object({entry("a", "U8", "[4294967296,4294967296]", "[0,0]")}), 0), "overflows");
  // Fits as an element count, overflows once multiplied by the element size.
  REQUIRE_REJECTED(framed(object({entry("a", "F64", "[2305843009213693952]", "[0,0]")}), 0), "overflows");
  // A zero dim does not excuse an overflowing product of the others.
  REQUIRE_REJECTED(framed(object({entry("a", "U8", "[4294967296,0,4294967296]", "[0,0]")}), 0), "overflows");
}

TEST_CASE("safetensors: zero-sized dims are allowed but the data length must match", "[io]") {
  const std::string header =
      object({entry("e", "F32", "[0,3]", "[0,0]"), entry("a", "F32", "[1]", "[0,4]"), entry("z", "I64", "[2,0]", "[4,4]")});
  const auto f = safetensors_file::parse(framed(header, 4));
  REQUIRE(f.entries().size() == 3);
  CHECK(f.entries()[0].name == "e");
  CHECK(f.entries()[1].name == "a");
  CHECK(f.entries()[2].name == "z");
  CHECK(f.values<float>("e").empty());
  CHECK(f.at("z").shape == std::vector<std::int64_t>{2, 0});
  REQUIRE_REJECTED(framed(object({entry("e", "F32", "[0,3]", "[0,4]")}), 4), "needs 0 bytes");
  REQUIRE_REJECTED(framed(object({entry("a", "F32", "[2]", "[0,4]")}), 4), "needs 8 bytes");
  REQUIRE_REJECTED(framed(object({entry("a", "F32", "[]", "[0,8]")}), 8), "needs 4 bytes");
}

TEST_CASE("safetensors reject: data_offsets not two non-negative integers", "[io]") {
  REQUIRE_REJECTED(framed(object({entry("a", "U8", "[1]", "[0]")}), 1), "not two non-negative integers");
  REQUIRE_REJECTED(framed(object({entry("a", "U8", "[1]", "[0,1,2]")}), 1), "not two non-negative integers");
  REQUIRE_REJECTED(framed(object({entry("a", "U8", "[1]", "[-1,0]")}), 1), "not two non-negative integers");
  REQUIRE_REJECTED(framed(object({entry("a", "U8", "[1]", "[0,1.0]")}), 1), "not two non-negative integers");
  REQUIRE_REJECTED(framed(object({entry("a", "U8", "[1]", "[\"0\",\"1\"]")}), 1), "not two non-negative integers");
  REQUIRE_REJECTED(framed(object({entry("a", "U8", "[1]", "{\"b\":0}")}), 1), "not two non-negative integers");
  REQUIRE_REJECTED(framed(object({entry("a", "U8", "[1]", "[0,18446744073709551616]")}), 1),
                   "not two non-negative integers");
}

TEST_CASE("safetensors reject: data_offsets end before start", "[io]") {
  REQUIRE_REJECTED(framed(object({entry("a", "U8", "[0]", "[4,0]")}), 4), "end before they begin");
}

TEST_CASE("safetensors reject: non-contiguous data", "[io]") {
  // First tensor not at 0.
  REQUIRE_REJECTED(framed(object({entry("a", "F32", "[1]", "[4,8]")}), 8), "the first tensor must start at 0");
  // A hole between tensors.
  REQUIRE_REJECTED(
      framed(object({entry("a", "F32", "[1]", "[0,4]"), entry("b", "F32", "[1]", "[8,12]")}), 12),
      "gap in data: tensor \"b\" starts at 8 but tensor \"a\" ends at 4");
  // Header order need not be data order.
  const auto f = safetensors_file::parse(
      framed(object({entry("b", "F32", "[1]", "[4,8]"), entry("a", "F32", "[1]", "[0,4]")}), 8));
  CHECK(f.entries()[0].name == "a");
  CHECK(f.entries()[1].offset == 4);
}

TEST_CASE("safetensors reject: overlapping tensors", "[io]") {
  REQUIRE_REJECTED(
      framed(object({entry("a", "F32", "[2]", "[0,8]"), entry("b", "F32", "[2]", "[4,12]")}), 12),
      "overlaps tensor \"a\"");
  REQUIRE_REJECTED(
      framed(object({entry("a", "F32", "[2]", "[0,8]"), entry("b", "F32", "[2]", "[0,8]")}), 8),
      "overlaps");
}

TEST_CASE("safetensors reject: data_offsets past the end of the data", "[io]") {
  REQUIRE_REJECTED(framed(object({entry("a", "F32", "[2]", "[0,8]")}), 4), "run past the end of the 4-byte data");
  REQUIRE_REJECTED(framed(object({entry("a", "U8", "[0]", "[9,9]")}), 4), "run past the end");
}

TEST_CASE("safetensors reject: trailing bytes after the last tensor", "[io]") {
  REQUIRE_REJECTED(framed(object({entry("a", "F32", "[1]", "[0,4]")}), 8), "4 trailing bytes");
  REQUIRE_REJECTED(framed("{}", 3), "3 trailing bytes");
}

TEST_CASE("safetensors reject: __metadata__ not an object of strings", "[io]") {
  REQUIRE_REJECTED(framed(R"({"__metadata__":[1]})", 0), "__metadata__ is not an object");
  REQUIRE_REJECTED(framed(R"({"__metadata__":null})", 0), "__metadata__ is not an object");
  REQUIRE_REJECTED(framed(R"({"__metadata__":"pt"})", 0), "__metadata__ is not an object");
  REQUIRE_REJECTED(framed(R"({"__metadata__":{"k":1}})", 0), "__metadata__ value \"k\" is not a string");
  REQUIRE_REJECTED(framed(R"({"__metadata__":{"k":{}}})", 0), "__metadata__ value \"k\" is not a string");
  const auto f = safetensors_file::parse(framed(R"({"__metadata__":{"k":"v","":""}})", 0));
  CHECK(f.metadata().size() == 2);
}

TEST_CASE("safetensors reject: empty, NUL-containing or over-long tensor names", "[io]") {
  REQUIRE_REJECTED(framed(object({entry("", "U8", "[0]", "[0,0]")}), 0), "tensor name \"\" is empty");
  REQUIRE_REJECTED(framed(object({entry("a\\u0000b", "U8", "[0]", "[0,0]")}), 0), "contains a NUL byte");
  REQUIRE_REJECTED(framed(object({entry(std::string(1025, 'n'), "U8", "[0]", "[0,0]")}), 0),
                   "is longer than 1024 bytes");
  // 1 KiB exactly is fine.
  const std::string longest(1024, 'n');
  CHECK(safetensors_file::parse(framed(object({entry(longest, "U8", "[0]", "[0,0]")}), 0)).find(longest));
}

TEST_CASE("safetensors reject: tensor entry with missing or extra keys", "[io]") {
  REQUIRE_REJECTED(framed(R"({"a":{"dtype":"U8","data_offsets":[0,0]}})", 0), "missing key \"shape\"");
  REQUIRE_REJECTED(framed(R"({"a":{"shape":[0],"data_offsets":[0,0]}})", 0), "missing key \"dtype\"");
  REQUIRE_REJECTED(framed(R"({"a":{"dtype":"U8","shape":[0]}})", 0), "missing key \"data_offsets\"");
  REQUIRE_REJECTED(framed(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0],"foo":1}})", 0),
                   "unexpected key \"foo\"");
  REQUIRE_REJECTED(framed(R"({"a":5})", 0), "entry is not an object");
  REQUIRE_REJECTED(framed(R"({"a":[]})", 0), "entry is not an object");
}

TEST_CASE("safetensors: many tensors parse in linear time", "[io]") {
  // Quadratic DOM building (nlohmann's callback parser rescans each parent) took ~30 s for 40k
  // tensors; this must stay instant.
  std::string h = "{";
  for (int i = 0; i < 40000; ++i) {
    if (i) h += ',';
    h += entry(std::string("t").append(std::to_string(i)), "F32", "[0]", "[0,0]");
  }
  h += "}";
  const auto f = safetensors_file::parse(framed(h, 0));
  CHECK(f.entries().size() == 40000);
  CHECK(f.find("t39999") != nullptr);
}

TEST_CASE("safetensors: lookups and data bounds", "[io]") {
  safetensors_writer w;
  const std::vector<float> v{1, 2};
  w.add<float>("w", {2}, v);
  const auto f = safetensors_file::parse(w.bytes(), "lookup.safetensors");
  CHECK(f.find("w") != nullptr);
  CHECK(f.find("nope") == nullptr);
  CHECK_THROWS_AS(f.at("nope"), sslgate::io_error);
  CHECK_THROWS_WITH(f.at("nope"), Catch::Contains("lookup.safetensors") && Catch::Contains("\"nope\""));
  CHECK_THROWS_AS(f.values<float>("nope"), sslgate::io_error);
  tensor_entry foreign = f.at("w");
  foreign.offset = 4;  // not an entry of this file: must not read out of bounds
  CHECK_THROWS_AS(f.data(foreign), sslgate::value_error);
  CHECK(f.source() == "lookup.safetensors");
}

// ---------------------------------------------------------------- files

TEST_CASE("safetensors write: atomic, leaves no temporary file", "[io]") {
  const fs::path dir = scratch_dir("write");
  const fs::path path = dir / "model.safetensors";
  safetensors_writer w;
  const std::vector<double> v{1.5, -2.5, 3.0};
  w.add<double>("v", {3}, v);
  w.set_metadata("framework", "sslgate");
  w.write(path);

  std::vector<fs::path> listing;
  for (const auto& e : fs::directory_iterator(dir)) listing.push_back(e.path());
  REQUIRE(listing.size() == 1);
  CHECK(listing[0] == path);
  CHECK(fs::file_size(path) == w.bytes().size());
  const auto f = safetensors_file::read(path);
  CHECK(f.values<double>("v") == v);
  CHECK(f.metadata().at("framework") == "sslgate");
  CHECK(f.source() == path.string());

  // Overwriting replaces the file whole.
  safetensors_writer w2;
  w2.write(path);
  CHECK(fs::file_size(path) == 16);
  listing.clear();
  for (const auto& e : fs::directory_iterator(dir)) listing.push_back(e.path());
  CHECK(listing.size() == 1);

  // A directory that does not exist: io_error, nothing created.
  CHECK_THROWS_AS(w.write(dir / "missing" / "x.safetensors"), sslgate::io_error);
  CHECK(!fs::exists(dir / "missing"));
  fs::remove_all(dir);
}

TEST_CASE("safetensors read: errors name the file", "[io]") {
  const fs::path dir = scratch_dir("read");
  const fs::path missing = dir / "nope.safetensors";
  CHECK_THROWS_AS(safetensors_file::read(missing), sslgate::io_error);
  CHECK_THROWS_WITH(safetensors_file::read(missing), Catch::Contains(missing.string()));
  CHECK_THROWS_WITH(safetensors_file::read(dir), Catch::Contains("not a regular file"));
  const fs::path bad = dir / "bad.safetensors";
  {
    std::ofstream out(bad, std::ios::binary);
    out << "short";
  }
  CHECK_THROWS_WITH(safetensors_file::read(bad), Catch::Contains(bad.string()) && Catch::Contains("too short"));
  fs::remove_all(dir);
}

TEST_CASE("safetensors read: every reference fixture parses", "[io]") {
  const fs::path dir = SSLGATE_FIXTURE_DIR;
  REQUIRE(fs::is_directory(dir));
  int files = 0;
  for (const auto& item : fs::directory_iterator(dir)) {
    if (item.path().extension() != ".safetensors") continue;
    INFO(item.path().string());
    const auto f = safetensors_file::read(item.path());
    ++files;
    CHECK(!f.entries().empty());
    CHECK(f.metadata().at("case") == item.path().stem().string());
    std::size_t total = 0;
    for (const tensor_entry& e : f.entries()) {
      CHECK((e.type == dtype::F64 || e.type == dtype::F32 || e.type == dtype::I64));
      CHECK(e.offset == total);
      total += e.size;
      CHECK(f.values<double>(e.name).size() * dtype_size(e.type) == e.size);
    }
    // Re-serialising the parsed tensors reads back identically.
    safetensors_writer w;
    for (const tensor_entry& e : f.entries()) w.add(e.name, e.type, e.shape, f.data(e));
    for (const auto& [k, v] : f.metadata()) w.set_metadata(k, v);
    const auto g = safetensors_file::parse(w.bytes());
    REQUIRE(g.entries().size() == f.entries().size());
    for (const tensor_entry& e : f.entries()) {
      const auto a = f.data(e);
      const auto b = g.data(g.at(e.name));
      CHECK(std::equal(a.begin(), a.end(), b.begin(), b.end()));
    }
  }
  CHECK(files >= 30);
}

TEST_CASE("safetensors read: known fixture values", "[io]") {
  const fs::path dir = SSLGATE_FIXTURE_DIR;
  const auto f = safetensors_file::read(dir / "safetensors_dtypes.safetensors");
  CHECK(f.entries().size() == 8);
  CHECK(f.values<float>("f32") == std::vector<float>{-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f});  // 0.5 k - 1
  const auto f64 = f.values<double>("f64");
  REQUIRE(f64.size() == 6);
  for (int k = 0; k < 6; ++k) CHECK(f64[k] == k / 3.0);
  CHECK(f.values<std::int64_t>("i64") == std::vector<std::int64_t>{0, -1, 7, 1099511627779, -34359738368});
  const auto sp = f.values<float>("f32_special");
  REQUIRE(sp.size() == 5);
  CHECK((sp[0] == 0.0f && std::signbit(sp[0])));
  CHECK(sp[1] == std::numeric_limits<float>::denorm_min());
  CHECK(sp[2] == std::numeric_limits<float>::max());
  CHECK(sp[3] == std::numeric_limits<float>::min());
  CHECK(sp[4] == -2.5f);
  CHECK(f.at("scalar_f32").shape.empty());
  CHECK(f.values<float>("scalar_f32") == std::vector<float>{0.1f});
  CHECK(f.values<double>("scalar_f64") == std::vector<double>{0.1});
  CHECK(f.values<std::int64_t>("scalar_i64") == std::vector<std::int64_t>{-3});
  CHECK(f.at("f32_nchw").shape == std::vector<std::int64_t>{2, 3, 2, 2});

  const auto conv = safetensors_file::read(dir / "conv2d_3x3_s1_p1.safetensors");
  CHECK(conv.at("x").shape == std::vector<std::int64_t>{2, 3, 8, 8});
  CHECK(conv.at("weight").type == dtype::F64);
  CHECK(conv.values<std::int64_t>("cfg.stride") == std::vector<std::int64_t>{1});
  CHECK(conv.values<int>("cfg.padding") == std::vector<int>{1});
  CHECK(conv.values<double>("out.y").size() == 2 * 4 * 8 * 8);
  CHECK(conv.metadata().at("torch") == "1.13.0a0");
}
