#pragma once
// safetensors reader and writer (format of huggingface/safetensors), written on nlohmann-json.
//
// File layout: u64 little-endian header length n, n bytes of UTF-8 JSON (padded with spaces to a
// multiple of 8 by writers), then the data section. The JSON maps tensor names to
// {"dtype", "shape", "data_offsets"} (offsets relative to the data section) plus an optional
// "__metadata__" object of strings. The tensors tile the data section with no gaps or overlaps.
//
// The reader treats every file as untrusted: all structure is validated up front in parse(), and
// every violation is an io_error naming the source and the problem. Every allocation is bounded by
// the size of the input.
#include <sslgate/core/error.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace sslgate::io {

// Element types, spelled as in safetensors headers.
enum class dtype { BOOL, U8, I8, U16, I16, F16, BF16, U32, I32, F32, U64, I64, F64 };

// Bytes per element.
constexpr std::size_t dtype_size(dtype t) noexcept {
  switch (t) {
    case dtype::BOOL: case dtype::U8: case dtype::I8: return 1;
    case dtype::U16: case dtype::I16: case dtype::F16: case dtype::BF16: return 2;
    case dtype::U32: case dtype::I32: case dtype::F32: return 4;
    case dtype::U64: case dtype::I64: case dtype::F64: return 8;
  }
  return 0;
}

// The header spelling ("F32", "BF16", ...).
constexpr std::string_view dtype_name(dtype t) noexcept {
  switch (t) {
    case dtype::BOOL: return "BOOL";
    case dtype::U8: return "U8";
    case dtype::I8: return "I8";
    case dtype::U16: return "U16";
    case dtype::I16: return "I16";
    case dtype::F16: return "F16";
    case dtype::BF16: return "BF16";
    case dtype::U32: return "U32";
    case dtype::I32: return "I32";
    case dtype::F32: return "F32";
    case dtype::U64: return "U64";
    case dtype::I64: return "I64";
    case dtype::F64: return "F64";
  }
  return "?";
}

// Limits the reader enforces (the first is the reference implementation's).
inline constexpr std::uint64_t safetensors_max_header_size = 100'000'000;
inline constexpr std::size_t safetensors_max_name_size = 1024;
inline constexpr std::size_t safetensors_max_depth = 3;  // root object > tensor entry > shape array

namespace detail {

inline std::optional<dtype> try_parse_dtype(std::string_view s) noexcept {
  for (dtype t : {dtype::BOOL, dtype::U8, dtype::I8, dtype::U16, dtype::I16, dtype::F16, dtype::BF16,
                  dtype::U32, dtype::I32, dtype::F32, dtype::U64, dtype::I64, dtype::F64})
    if (dtype_name(t) == s) return t;
  return std::nullopt;
}

// A name for error messages: quoted, escaped, and cut short so hostile input cannot flood the log.
inline std::string show(std::string_view s) {
  constexpr std::size_t max_shown = 64;
  if (s.size() <= max_shown) return fmt::format("{:?}", s);
  return fmt::format("{:?}... ({} bytes)", s.substr(0, max_shown), s.size());
}

// Offset of the first byte that breaks strict UTF-8 (no overlongs, surrogates or code points past
// U+10FFFF), or npos when the text is valid.
inline std::size_t invalid_utf8_at(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) { ++i; continue; }
    std::size_t len;
    unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) { len = 3; lo = 0xA0; }
    else if (c == 0xED) { len = 3; hi = 0x9F; }
    else if (c >= 0xE1 && c <= 0xEF) len = 3;
    else if (c == 0xF0) { len = 4; lo = 0x90; }
    else if (c == 0xF4) { len = 4; hi = 0x8F; }
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else return i;
    if (n - i < len) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (std::size_t k = 2; k < len; ++k)
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
    i += len;
  }
  return std::string_view::npos;
}

// Why a tensor name is unacceptable, or empty when it is fine. Shared by reader and writer so
// everything the writer produces reads back.
inline std::string_view name_problem(std::string_view name) noexcept {
  if (name.empty()) return "is empty";
  if (name.size() > safetensors_max_name_size) return "is longer than 1024 bytes";
  if (name.find('\0') != std::string_view::npos) return "contains a NUL byte";
  return {};
}

// Bytes needed by a tensor, or nullopt when the shape is negative or its element count
// (counting zero dims as 1, so downstream stride arithmetic cannot overflow either) times the
// element size exceeds INT64_MAX. Zero-sized dims give 0 bytes.
inline std::optional<std::size_t> byte_size(dtype t, std::span<const std::int64_t> shape) noexcept {
  constexpr std::uint64_t limit = std::numeric_limits<std::int64_t>::max();
  std::uint64_t count = 1;
  bool empty = false;
  for (std::int64_t d : shape) {
    if (d < 0) return std::nullopt;
    if (d == 0) { empty = true; continue; }
    const auto u = static_cast<std::uint64_t>(d);
    if (count > limit / u) return std::nullopt;
    count *= u;
  }
  if (count > limit / dtype_size(t)) return std::nullopt;
  if (count * dtype_size(t) > std::numeric_limits<std::size_t>::max()) return std::nullopt;
  return empty ? 0 : static_cast<std::size_t>(count * dtype_size(t));
}

// Little-endian load/store of a trivially copyable scalar, whatever the host order.
template <class T>
T load_le(const std::byte* p) noexcept {
  std::array<std::byte, sizeof(T)> raw;
  std::memcpy(raw.data(), p, sizeof(T));
  if constexpr (std::endian::native == std::endian::big) std::reverse(raw.begin(), raw.end());
  return std::bit_cast<T>(raw);
}
template <class T>
void store_le(std::byte* p, T v) noexcept {
  auto raw = std::bit_cast<std::array<std::byte, sizeof(T)>>(v);
  if constexpr (std::endian::native == std::endian::big) std::reverse(raw.begin(), raw.end());
  std::memcpy(p, raw.data(), sizeof(T));
}

// IEEE binary16 -> binary32 (exact).
inline float f16_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu;
  const std::uint32_t mant = h & 0x3FFu;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in float
    const float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));  // inf / NaN
  return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
}

// bfloat16 -> binary32 (exact: bf16 is the top half of a float).
inline float bf16_to_float(std::uint16_t b) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

// A short spelling of T for conversion errors.
template <class T>
std::string type_label() {
  if constexpr (std::is_same_v<T, bool>) return "bool";
  else if constexpr (std::is_floating_point_v<T>) return fmt::format("float{}", 8 * sizeof(T));
  else return fmt::format("{}int{}", std::is_signed_v<T> ? "" : "u", 8 * sizeof(T));
}

// Converts one element to T; nullopt when it does not fit exactly (floats to integers must be
// finite integers in range; integers must be in range). Floating targets always succeed.
template <class T, class S>
std::optional<T> convert(S s) noexcept {
  if constexpr (std::is_same_v<T, bool>) {
    return s != S(0);
  } else if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(s);
  } else if constexpr (std::is_floating_point_v<S>) {
    const double v = static_cast<double>(s);
    if (!std::isfinite(v) || std::trunc(v) != v) return std::nullopt;
    const double top = std::ldexp(1.0, std::numeric_limits<T>::digits);  // exclusive bound
    const double bottom = std::is_signed_v<T> ? -top : 0.0;               // inclusive bound
    if (v < bottom || v >= top) return std::nullopt;
    return static_cast<T>(v);
  } else {
    if (!std::in_range<T>(s)) return std::nullopt;
    return static_cast<T>(s);
  }
}

// nlohmann SAX handler building the header DOM. Rejects nesting deeper than
// safetensors_max_depth and duplicate keys while parsing (the DOM would silently keep the last
// duplicate). Used instead of basic_json::parse with a parser_callback_t because that path rescans
// the parent object on every object end: quadratic, ~30 s for a 2 MB header of 40k tensors.
class header_builder {
 public:
  using json = nlohmann::json;

  header_builder(json& root, const std::string& source) : root_(root), source_(source) {}

  bool null() { put(json(nullptr)); return true; }
  bool boolean(bool v) { put(json(v)); return true; }
  bool number_integer(json::number_integer_t v) { put(json(v)); return true; }
  bool number_unsigned(json::number_unsigned_t v) { put(json(v)); return true; }
  bool number_float(json::number_float_t v, const json::string_t&) { put(json(v)); return true; }
  bool string(json::string_t& v) { put(json(std::move(v))); return true; }
  bool binary(json::binary_t& v) { put(json::binary(std::move(v))); return true; }
  bool start_object(std::size_t) { open(json::value_t::object); return true; }
  bool start_array(std::size_t) { open(json::value_t::array); return true; }
  bool end_object() { stack_.pop_back(); return true; }
  bool end_array() { stack_.pop_back(); return true; }

  bool key(json::string_t& k) {
    json& obj = *stack_.back();
    if (obj.contains(k)) [[unlikely]] {
      if (stack_.size() == 1)
        fail<io_error>("safetensors", "{}: duplicate tensor name {} in header", source_, show(k));
      fail<io_error>("safetensors", "{}: duplicate key {} in header", source_, show(k));
    }
    slot_ = &obj[k];
    return true;
  }

  bool parse_error(std::size_t, const std::string&, const json::exception& e) {
    std::string_view what = e.what();
    if (what.size() > 300) what = what.substr(0, 300);  // "last read" can quote the whole header
    fail<io_error>("safetensors", "{}: header is not valid JSON: {}", source_, what);
  }

 private:
  json* put(json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json& top = *stack_.back();
    if (top.is_array()) {
      top.push_back(std::move(v));
      return &top.back();
    }
    *slot_ = std::move(v);
    return slot_;
  }
  void open(json::value_t t) {
    SSLGATE_CHECK(stack_.size() < safetensors_max_depth, io_error, "safetensors",
                  "{}: header nests deeper than {} levels", source_, safetensors_max_depth);
    // Pointers into arrays stay valid: an array gets no new element while a child is open.
    stack_.push_back(put(json(t)));
  }

  json& root_;
  const std::string& source_;
  std::vector<json*> stack_;
  json* slot_ = nullptr;
};

// Throws io_error naming `path` and errno.
[[noreturn]] inline void fail_errno(std::string_view what, const std::filesystem::path& path, int err) {
  fail<io_error>("safetensors", "{}: {}: {}", path.string(), what, std::generic_category().message(err));
}

// Closes a descriptor on scope exit.
struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace detail

// Parses a dtype name. Throws io_error for names not in the enum.
inline dtype parse_dtype(std::string_view s) {
  const auto t = detail::try_parse_dtype(s);
  SSLGATE_CHECK(t.has_value(), io_error, "safetensors", "unknown dtype {}", detail::show(s));
  return *t;
}

// One tensor of a file. offset/size locate its bytes within the data section.
struct tensor_entry {
  std::string name;
  dtype type;
  std::vector<std::int64_t> shape;  // [] for a scalar (one element)
  std::size_t offset, size;
};

// A validated safetensors file held in memory. Owns the bytes; entries and spans stay valid for
// the object's lifetime (moves included).
class safetensors_file {
 public:
  // Reads and validates the whole file (one allocation, sized from the file). Errors name `path`.
  static safetensors_file read(const std::filesystem::path& path) {
    detail::fd_guard f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (f.fd < 0) detail::fail_errno("cannot open", path, errno);
    struct stat st {};
    if (::fstat(f.fd, &st) != 0) detail::fail_errno("cannot stat", path, errno);
    SSLGATE_CHECK(S_ISREG(st.st_mode), io_error, "safetensors", "{}: not a regular file", path.string());
    const auto size = static_cast<std::uint64_t>(st.st_size);
    std::vector<std::byte> bytes;
    try {
      SSLGATE_CHECK(size <= bytes.max_size(), io_error, "safetensors", "{}: file of {} bytes is too large",
                    path.string(), size);
      bytes.resize(static_cast<std::size_t>(size));
    } catch (const std::bad_alloc&) {
      fail<io_error>("safetensors", "{}: cannot allocate {} bytes to load the file", path.string(), size);
    }
    std::size_t got = 0;
    while (got < bytes.size()) {
      const ::ssize_t r = ::read(f.fd, bytes.data() + got, bytes.size() - got);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) detail::fail_errno("read failed", path, errno);
      SSLGATE_CHECK(r > 0, io_error, "safetensors", "{}: file shrank while reading ({} of {} bytes)",
                    path.string(), got, bytes.size());
      got += static_cast<std::size_t>(r);
    }
    return parse(std::move(bytes), path.string());
  }

  // Validates `bytes` as a safetensors file; `source` names it in errors. Throws io_error on any
  // violation of the format (see the file comment).
  static safetensors_file parse(std::vector<std::byte> bytes, std::string source = "<memory>") {
    safetensors_file f;
    f.bytes_ = std::move(bytes);
    f.source_ = std::move(source);
    f.validate();
    return f;
  }

  // Tensors sorted by data offset (zero-sized ties by name).
  const std::vector<tensor_entry>& entries() const noexcept { return entries_; }

  // The tensor called `name`, or nullptr.
  const tensor_entry* find(std::string_view name) const noexcept {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &entries_[it->second];
  }

  // The tensor called `name`; throws io_error naming it and the file when absent.
  const tensor_entry& at(std::string_view name) const {
    const tensor_entry* e = find(name);
    SSLGATE_CHECK(e != nullptr, io_error, "safetensors", "{}: no tensor named {}", source_, detail::show(name));
    return *e;
  }

  // Raw little-endian bytes of `e`, which must come from this file (checked against its bounds).
  std::span<const std::byte> data(const tensor_entry& e) const {
    const std::size_t n = bytes_.size() - data_start_;
    SSLGATE_CHECK(e.offset <= n && e.size <= n - e.offset, value_error, "safetensors",
                  "{}: entry {} [{}, +{}) lies outside the {}-byte data section", source_, detail::show(e.name),
                  e.offset, e.size, n);
    return std::span<const std::byte>(bytes_).subspan(data_start_ + e.offset, e.size);
  }

  // The elements of `name`, row-major, converted to arithmetic T from any dtype (BOOL as 0/1,
  // F16/BF16 exactly). Conversions to floating T always succeed (F64 -> float rounds); to integral
  // T they must be exact (in range, and integral for float sources) or value_error is thrown.
  template <class T>
  std::vector<T> values(std::string_view name) const {
    static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, char> && !std::is_same_v<T, long double>,
                  "values<T>: T must be bool, a signed/unsigned integer, float or double");
    const tensor_entry& e = at(name);
    const std::span<const std::byte> raw = data(e);
    switch (e.type) {
      case dtype::BOOL: return convert_all<T, std::uint8_t>(e, raw, [](std::uint8_t v) { return v != 0 ? 1 : 0; });
      case dtype::U8: return convert_all<T, std::uint8_t>(e, raw);
      case dtype::I8: return convert_all<T, std::int8_t>(e, raw);
      case dtype::U16: return convert_all<T, std::uint16_t>(e, raw);
      case dtype::I16: return convert_all<T, std::int16_t>(e, raw);
      case dtype::F16: return convert_all<T, std::uint16_t>(e, raw, detail::f16_to_float);
      case dtype::BF16: return convert_all<T, std::uint16_t>(e, raw, detail::bf16_to_float);
      case dtype::U32: return convert_all<T, std::uint32_t>(e, raw);
      case dtype::I32: return convert_all<T, std::int32_t>(e, raw);
      case dtype::F32: return convert_all<T, float>(e, raw);
      case dtype::U64: return convert_all<T, std::uint64_t>(e, raw);
      case dtype::I64: return convert_all<T, std::int64_t>(e, raw);
      case dtype::F64: return convert_all<T, double>(e, raw);
    }
    fail<value_error>("safetensors", "{}: tensor {} has an invalid dtype", source_, detail::show(name));
  }

  // The "__metadata__" strings (empty when the header has none).
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

  // The name given to read()/parse(), used in errors.
  const std::string& source() const noexcept { return source_; }

 private:
  using json = nlohmann::json;

  safetensors_file() = default;

  template <class T, class S, class F = std::identity>
  std::vector<T> convert_all(const tensor_entry& e, std::span<const std::byte> raw, F widen = {}) const {
    const std::size_t n = raw.size() / sizeof(S);
    std::vector<T> out(n);
    if constexpr (std::is_same_v<T, S> && std::is_same_v<F, std::identity> &&
                  std::endian::native == std::endian::little) {
      if (n != 0) std::memcpy(out.data(), raw.data(), n * sizeof(T));
    } else {
      for (std::size_t i = 0; i < n; ++i) {
        const auto v = widen(detail::load_le<S>(raw.data() + i * sizeof(S)));
        const std::optional<T> t = detail::convert<T>(v);
        if (!t) [[unlikely]]
          fail<value_error>("safetensors", "{}: tensor {} ({}) element {} = {} does not fit in {}", source_,
                            detail::show(e.name), dtype_name(e.type), i, v, detail::type_label<T>());
        out[i] = *t;
      }
    }
    return out;
  }

  template <class... Args>
  [[noreturn]] void bad(fmt::format_string<Args...> f, Args&&... args) const {
    fail<io_error>("safetensors", "{}: {}", source_, fmt::format(f, std::forward<Args>(args)...));
  }

  void validate() {
    const std::size_t total = bytes_.size();
    if (total < 8) bad("file is {} bytes, too short for the 8-byte header length", total);
    const auto n = detail::load_le<std::uint64_t>(bytes_.data());
    if (n > safetensors_max_header_size)
      bad("header length {} exceeds the {}-byte limit", n, safetensors_max_header_size);
    if (n > std::numeric_limits<std::size_t>::max() - 8) bad("header length {} overflows", n);
    if (8 + n > total) bad("header length {} exceeds the {} bytes after the length field", n, total - 8);
    data_start_ = static_cast<std::size_t>(8 + n);
    const std::string_view header(reinterpret_cast<const char*>(bytes_.data()) + 8, static_cast<std::size_t>(n));

    if (const std::size_t at = detail::invalid_utf8_at(header); at != std::string_view::npos)
      bad("header is not valid UTF-8 (byte {} of the header)", at);
    if (header.empty() || header.front() != '{') bad("header does not start with '{{'");
    // nlohmann's lexer takes a NUL byte for the end of input, so "{...}\0junk" would pass; JSON
    // text cannot contain a raw NUL anywhere.
    if (const std::size_t at = header.find('\0'); at != std::string_view::npos)
      bad("header is not valid JSON: NUL byte at byte {} of the header", at);

    json root;
    try {
      detail::header_builder sax(root, source_);
      json::sax_parse(header.data(), header.data() + header.size(), &sax);
    } catch (const json::exception& e) {  // the builder reports parse errors itself; this is a backstop
      bad("header is not valid JSON: {}", e.what());
    }
    if (!root.is_object()) bad("header is not a JSON object");

    const std::size_t data_size = total - data_start_;
    for (auto& [name, value] : root.items()) {
      if (name == "__metadata__") {
        read_metadata(value);
        continue;
      }
      entries_.push_back(read_entry(name, value, data_size));
    }

    // Tensors must tile the data section: sorted by start, each starting where the last ended.
    std::sort(entries_.begin(), entries_.end(), [](const tensor_entry& a, const tensor_entry& b) {
      return std::tie(a.offset, a.size, a.name) < std::tie(b.offset, b.size, b.name);
    });
    std::size_t end = 0;
    const tensor_entry* prev = nullptr;
    for (const tensor_entry& e : entries_) {
      if (e.offset < end)
        bad("tensor {} (data_offsets [{}, {}]) overlaps tensor {} (ends at {})", detail::show(e.name), e.offset,
            e.offset + e.size, detail::show(prev->name), end);
      if (e.offset > end) {
        if (!prev) bad("tensor {} starts at {}: the first tensor must start at 0", detail::show(e.name), e.offset);
        bad("gap in data: tensor {} starts at {} but tensor {} ends at {}", detail::show(e.name), e.offset,
            detail::show(prev->name), end);
      }
      end = e.offset + e.size;
      prev = &e;
    }
    if (end != data_size) bad("{} trailing bytes after the last tensor (data section is {} bytes)", data_size - end, data_size);

    for (std::size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].name, i);
  }

  void read_metadata(const json& value) {
    if (!value.is_object()) bad("__metadata__ is not an object");
    for (auto& [k, v] : value.items()) {
      if (!v.is_string()) bad("__metadata__ value {} is not a string", detail::show(k));
      metadata_.emplace(k, v.get<std::string>());
    }
  }

  tensor_entry read_entry(const std::string& name, const json& value, std::size_t data_size) const {
    const std::string shown = detail::show(name);
    if (const auto p = detail::name_problem(name); !p.empty()) bad("tensor name {} {}", shown, p);
    if (!value.is_object()) bad("tensor {}: entry is not an object", shown);
    for (const char* k : {"dtype", "shape", "data_offsets"})
      if (!value.contains(k)) bad("tensor {}: missing key \"{}\"", shown, k);
    for (auto& [k, v] : value.items())
      if (k != "dtype" && k != "shape" && k != "data_offsets") bad("tensor {}: unexpected key {}", shown, detail::show(k));

    tensor_entry e;
    e.name = name;
    const json& jt = value["dtype"];
    if (!jt.is_string()) bad("tensor {}: dtype is not a string", shown);
    const auto t = detail::try_parse_dtype(jt.get_ref<const std::string&>());
    if (!t) bad("tensor {}: unknown dtype {}", shown, detail::show(jt.get_ref<const std::string&>()));
    e.type = *t;

    const json& js = value["shape"];
    if (!js.is_array()) bad("tensor {}: shape is not an array", shown);
    e.shape.reserve(js.size());
    for (const json& d : js) {
      const auto u = as_count(d);
      if (!u && d.is_number_integer()) bad("tensor {}: shape has negative entry {}", shown, d.dump());
      if (!u) bad("tensor {}: shape entry {} is not a non-negative integer", shown, detail::show(d.dump()));
      if (*u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        bad("tensor {}: shape entry {} is too large", shown, *u);
      e.shape.push_back(static_cast<std::int64_t>(*u));
    }
    const auto need = detail::byte_size(e.type, e.shape);
    if (!need) bad("tensor {}: shape {} of {} overflows the element count", shown, fmt::join(e.shape, ", "), dtype_name(e.type));

    const json& jo = value["data_offsets"];
    const bool pair = jo.is_array() && jo.size() == 2;
    const auto begin_v = pair ? as_count(jo[0]) : std::nullopt;
    const auto end_v = pair ? as_count(jo[1]) : std::nullopt;
    if (!begin_v || !end_v)
      bad("tensor {}: data_offsets {} is not two non-negative integers", shown, detail::show(jo.dump()));
    const std::uint64_t begin = *begin_v, end = *end_v;
    if (end < begin) bad("tensor {}: data_offsets [{}, {}] end before they begin", shown, begin, end);
    if (end > data_size)
      bad("tensor {}: data_offsets [{}, {}] run past the end of the {}-byte data section", shown, begin, end, data_size);
    if (end - begin != *need)
      bad("tensor {}: shape [{}] of {} needs {} bytes but data_offsets [{}, {}] hold {}", shown,
          fmt::join(e.shape, ", "), dtype_name(e.type), *need, begin, end, end - begin);
    e.offset = static_cast<std::size_t>(begin);
    e.size = static_cast<std::size_t>(end - begin);
    return e;
  }

  // A non-negative JSON integer. nlohmann stores non-negative integer literals as unsigned,
  // negative ones (and "-0") as signed, anything with a fraction or exponent as float.
  static std::optional<std::uint64_t> as_count(const json& v) noexcept {
    if (v.is_number_unsigned()) return v.get<std::uint64_t>();
    if (v.is_number_integer() && v.get<std::int64_t>() == 0) return 0;
    return std::nullopt;
  }

  std::vector<std::byte> bytes_;
  std::size_t data_start_ = 0;
  std::string source_;
  std::vector<tensor_entry> entries_;
  std::map<std::string, std::size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

// Builds a safetensors file. Tensors are laid out and listed in insertion order; "__metadata__"
// comes first in the header when any key is set. Output matches the reference serializer byte for
// byte: compact JSON, header padded with spaces to a multiple of 8.
class safetensors_writer {
 public:
  // Adds a tensor from raw little-endian bytes. Throws value_error when the name is empty, has a
  // NUL, is over 1 KiB, is not UTF-8, is "__metadata__" or is already taken, when a dim is
  // negative, or when data.size() != prod(shape) * dtype_size(type).
  void add(std::string name, dtype type, std::vector<std::int64_t> shape, std::span<const std::byte> data) {
    const std::string shown = detail::show(name);
    if (const auto p = detail::name_problem(name); !p.empty())
      fail<value_error>("safetensors_writer::add", "tensor name {} {}", shown, p);
    SSLGATE_CHECK(detail::invalid_utf8_at(name) == std::string_view::npos, value_error, "safetensors_writer::add",
                  "tensor name {} is not valid UTF-8", shown);
    SSLGATE_CHECK(name != "__metadata__", value_error, "safetensors_writer::add",
                  "tensor name \"__metadata__\" is reserved");
    SSLGATE_CHECK(!index_.contains(name), value_error, "safetensors_writer::add", "duplicate tensor name {}", shown);
    const auto need = detail::byte_size(type, shape);
    SSLGATE_CHECK(need.has_value(), value_error, "safetensors_writer::add",
                  "tensor {}: shape [{}] of {} is negative or overflows", shown, fmt::join(shape, ", "),
                  dtype_name(type));
    SSLGATE_CHECK(data.size() == *need, value_error, "safetensors_writer::add",
                  "tensor {}: {} data bytes but shape [{}] of {} needs {}", shown, data.size(),
                  fmt::join(shape, ", "), dtype_name(type), *need);
    index_.emplace(name, tensors_.size());
    tensors_.push_back(tensor_entry{std::move(name), type, std::move(shape), data_.size(), data.size()});
    data_.insert(data_.end(), data.begin(), data.end());
  }

  // Adds a tensor of arithmetic T (float -> F32, double -> F64, bool -> BOOL, integers -> the
  // I/U dtype of their width), stored little-endian. Same checks as the raw overload.
  template <class T>
  void add(std::string name, std::vector<std::int64_t> shape, std::span<const T> values) {
    static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, long double>,
                  "safetensors_writer::add: T must be bool, an integer, float or double");
    std::vector<std::byte> raw(values.size() * sizeof(T));
    for (std::size_t i = 0; i < values.size(); ++i) detail::store_le(raw.data() + i * sizeof(T), values[i]);
    add(std::move(name), dtype_of<T>(), std::move(shape), raw);
  }

  // Sets (or replaces) a "__metadata__" entry. Both strings must be valid UTF-8 (value_error).
  void set_metadata(std::string key, std::string value) {
    SSLGATE_CHECK(detail::invalid_utf8_at(key) == std::string_view::npos &&
                      detail::invalid_utf8_at(value) == std::string_view::npos,
                  value_error, "safetensors_writer::set_metadata", "key {} or its value is not valid UTF-8",
                  detail::show(key));
    const auto it = metadata_index_.find(key);
    if (it != metadata_index_.end()) {
      metadata_[it->second].second = std::move(value);
      return;
    }
    metadata_index_.emplace(key, metadata_.size());
    metadata_.emplace_back(std::move(key), std::move(value));
  }

  // The complete file.
  std::vector<std::byte> bytes() const {
    // Built by hand rather than through ordered_json, whose key lookup is linear (quadratic files).
    std::string h = "{";
    const auto quoted = [](const std::string& s) { return nlohmann::json(s).dump(); };
    if (!metadata_.empty()) {
      h += "\"__metadata__\":{";
      for (std::size_t i = 0; i < metadata_.size(); ++i) {
        if (i) h += ',';
        h += quoted(metadata_[i].first);
        h += ':';
        h += quoted(metadata_[i].second);
      }
      h += '}';
    }
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      const tensor_entry& t = tensors_[i];
      if (i || !metadata_.empty()) h += ',';
      h += fmt::format("{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}", quoted(t.name),
                       dtype_name(t.type), fmt::join(t.shape, ","), t.offset, t.offset + t.size);
    }
    h += '}';
    h.append((8 - h.size() % 8) % 8, ' ');
    SSLGATE_CHECK(h.size() <= safetensors_max_header_size, value_error, "safetensors_writer",
                  "header of {} bytes exceeds the {}-byte limit readers enforce", h.size(),
                  safetensors_max_header_size);

    std::vector<std::byte> out(8 + h.size() + data_.size());
    detail::store_le<std::uint64_t>(out.data(), h.size());
    std::memcpy(out.data() + 8, h.data(), h.size());
    if (!data_.empty()) std::memcpy(out.data() + 8 + h.size(), data_.data(), data_.size());
    return out;
  }

  // Writes the file atomically: to "<path>.tmp-<pid>", fsync, rename over `path`, fsync the
  // directory. On failure the temporary is removed and `path` is untouched; throws io_error.
  void write(const std::filesystem::path& path) const {
    const std::vector<std::byte> buf = bytes();
    std::filesystem::path tmp = path;
    tmp += ".tmp-" + std::to_string(::getpid());

    struct tmp_guard {  // unlinks the temporary unless the rename happened
      const std::filesystem::path& p;
      bool armed = true;
      ~tmp_guard() {
        if (armed) ::unlink(p.c_str());
      }
    } cleanup{tmp};

    {
      detail::fd_guard f{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
      if (f.fd < 0) {
        const int err = errno;
        cleanup.armed = false;  // not ours: it may be someone else's file we could not open
        detail::fail_errno("cannot create temporary file " + tmp.string(), path, err);
      }
      std::size_t done = 0;
      while (done < buf.size()) {
        const ::ssize_t r = ::write(f.fd, buf.data() + done, buf.size() - done);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) detail::fail_errno("write failed", path, errno);
        done += static_cast<std::size_t>(r);
      }
      if (::fsync(f.fd) != 0) detail::fail_errno("fsync failed", path, errno);
      const int fd = std::exchange(f.fd, -1);
      if (::close(fd) != 0) detail::fail_errno("close failed", path, errno);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) detail::fail_errno("cannot rename temporary file over", path, errno);
    cleanup.armed = false;

    // Make the rename itself durable.
    std::filesystem::path dir = path.parent_path();
    if (dir.empty()) dir = ".";
    detail::fd_guard d{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (d.fd < 0) detail::fail_errno("cannot open directory to fsync", dir, errno);
    if (::fsync(d.fd) != 0) detail::fail_errno("directory fsync failed", dir, errno);
  }

 private:
  template <class T>
  static constexpr dtype dtype_of() noexcept {
    if constexpr (std::is_same_v<T, bool>) return dtype::BOOL;
    else if constexpr (std::is_same_v<T, float>) return dtype::F32;
    else if constexpr (std::is_same_v<T, double>) { static_assert(sizeof(double) == 8); return dtype::F64; }
    else if constexpr (sizeof(T) == 1) return std::is_signed_v<T> ? dtype::I8 : dtype::U8;
    else if constexpr (sizeof(T) == 2) return std::is_signed_v<T> ? dtype::I16 : dtype::U16;
    else if constexpr (sizeof(T) == 4) return std::is_signed_v<T> ? dtype::I32 : dtype::U32;
    else {
      static_assert(sizeof(T) == 8, "safetensors_writer::add: unsupported integer width");
      return std::is_signed_v<T> ? dtype::I64 : dtype::U64;
    }
  }

  std::vector<tensor_entry> tensors_;
  std::map<std::string, std::size_t, std::less<>> index_;
  std::vector<std::byte> data_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  std::map<std::string, std::size_t, std::less<>> metadata_index_;
};

}  // namespace sslgate::io
