#pragma once
// Error types. Every message names the operation and, where there are any, the shapes involved:
//   "conv2d: input [2, 3, 8, 8] has 3 channels but weight [4, 5, 3, 3] expects 5"
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>
#include <string>

namespace sslgate {

struct error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct shape_error : error {      // operands whose shapes do not fit the op
  using error::error;
};
struct value_error : error {      // a bad argument or configuration value
  using error::error;
};
struct io_error : error {         // a file that cannot be read, written or trusted
  using error::error;
};
struct numeric_error : error {    // NaN or Inf where a finite value is required
  using error::error;
};

template <class E = error, class... Args>
[[noreturn]] void fail(std::string_view op, fmt::format_string<Args...> f, Args&&... args) {
  throw E(fmt::format("{}: {}", op, fmt::format(f, std::forward<Args>(args)...)));
}

}  // namespace sslgate

// SSLGATE_CHECK(cond, E, op, fmt, args...): throws E("op: message") when cond is false.
#define SSLGATE_CHECK(cond, E, op, ...)                        \
  do {                                                         \
    if (!(cond)) [[unlikely]] ::sslgate::fail<E>(op, __VA_ARGS__); \
  } while (0)
