#pragma once
// Library version and build switches.
#define SSLGATE_VERSION_MAJOR 0
#define SSLGATE_VERSION_MINOR 1
#define SSLGATE_VERSION_PATCH 0

#if defined(__CUDACC__)
#define SSLGATE_HD __host__ __device__
#else
#define SSLGATE_HD
#endif

namespace sslgate {
inline constexpr int version_major = SSLGATE_VERSION_MAJOR;
inline constexpr int version_minor = SSLGATE_VERSION_MINOR;
inline constexpr int version_patch = SSLGATE_VERSION_PATCH;
}  // namespace sslgate
