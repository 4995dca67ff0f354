#pragma once
// Thread control. One knob for the whole library: OpenMP's team size, set by set_num_threads or by
// the SSLGATE_NUM_THREADS environment variable (read once, at first use).
// parallel_for splits [0, n) into fixed contiguous chunks, one per thread, so a given thread count
// always produces the same partition (and so the same floating-point results).
#include <sslgate/core/error.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace sslgate {

namespace detail {
inline int& thread_setting() {
  static int n = [] {
    int v = 0;
    if (const char* env = std::getenv("SSLGATE_NUM_THREADS")) {
      char* end = nullptr;
      long parsed = std::strtol(env, &end, 10);
      if (end == env || *end != '\0' || parsed < 1 || parsed > 4096)
        fail<value_error>("SSLGATE_NUM_THREADS", "expected a positive integer, got '{}'", env);
      v = static_cast<int>(parsed);
#if defined(_OPENMP)
      omp_set_num_threads(v);
#endif
    }
    return v;
  }();
  return n;
}
}  // namespace detail

inline void set_num_threads(int n) {
  SSLGATE_CHECK(n >= 1, value_error, "set_num_threads", "thread count must be at least 1, got {}", n);
  detail::thread_setting() = n;
#if defined(_OPENMP)
  omp_set_num_threads(n);
#endif
}

inline int num_threads() {
  const int set = detail::thread_setting();
#if defined(_OPENMP)
  return set > 0 ? set : omp_get_max_threads();
#else
  (void)set;
  return 1;
#endif
}

// Calls f(begin, end) on disjoint chunks of [0, n); chunk boundaries depend only on n and the thread count.
// Runs inline when n is below grain (not worth waking threads).
template <class F>
void parallel_for(std::int64_t n, std::int64_t grain, F&& f) {
  const int threads = static_cast<int>(std::min<std::int64_t>(num_threads(), std::max<std::int64_t>(1, n / std::max<std::int64_t>(grain, 1))));
  if (threads <= 1 || n <= 0) {
    if (n > 0) f(std::int64_t{0}, n);
    return;
  }
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
  {
    const std::int64_t t = omp_get_thread_num();
    const std::int64_t begin = n * t / threads, end = n * (t + 1) / threads;
    if (begin < end) f(begin, end);
  }
#else
  f(std::int64_t{0}, n);
#endif
}

}  // namespace sslgate
