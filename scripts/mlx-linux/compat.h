/*
 * Force-included (-include) into every mlx-c translation unit and into the bindgen run when
 * Adapt prepares MLX for Linux x86_64. It changes no mlx-c source file; it only fills two gaps
 * of that toolchain:
 *
 * 1. Half-precision types. mlx-c's half.h defines float16_t / bfloat16_t (and HAS_FLOAT16 /
 *    HAS_BFLOAT16, which gate the float16 accessors mlx-rs calls) on ARM only. Here both are
 *    16-bit storage types: they cross the C ABI by pointer only, so any 16-bit type will do.
 *    For bindgen (C) float16_t is __fp16 so the generated bindings match the macOS ones.
 * 2. std::format. mlx-c formats a few error messages with std::format, which libstdc++ 12
 *    lacks. mlx-c only ever uses plain "{}" placeholders, which is all this fallback supports.
 */
#ifndef ADAPT_MLX_LINUX_COMPAT_H
#define ADAPT_MLX_LINUX_COMPAT_H

#include <stdint.h>

#if !defined(__aarch64__) && !defined(HAS_FLOAT16)
#define HAS_FLOAT16
#define HAS_BFLOAT16
#ifdef __cplusplus
typedef uint16_t float16_t;
typedef uint16_t bfloat16_t;
#else
typedef __fp16 float16_t;
typedef uint16_t bfloat16_t;
#endif
#endif

#ifdef __cplusplus
#include <version>
#if !defined(__cpp_lib_format)
#include <sstream>
#include <string>
#include <string_view>

namespace std {
namespace adapt_format_detail {
inline void append(std::ostringstream& out, std::string_view& rest) {
  out << rest;
  rest = std::string_view();
}
template <class First, class... More>
void append(std::ostringstream& out, std::string_view& rest, const First& first,
            const More&... more) {
  const auto hole = rest.find("{}");
  if (hole == std::string_view::npos) {
    append(out, rest);
    return;
  }
  out << rest.substr(0, hole) << first;
  rest = rest.substr(hole + 2);
  append(out, rest, more...);
}
}  // namespace adapt_format_detail

template <class... Args>
std::string format(std::string_view fmt, const Args&... args) {
  std::ostringstream out;
  adapt_format_detail::append(out, fmt, args...);
  return out.str();
}
}  // namespace std
#endif
#endif

#endif
