/*
 * mlx-rs seeds its random generator with macOS's mach_approximate_time(). On Linux that symbol
 * does not exist, so Adapt's set-up links this replacement: a monotonic clock in nanoseconds
 * (on macOS the unit is "mach ticks"; only a changing seed is needed).
 */
#include <stdint.h>
#include <time.h>

static uint64_t adapt_monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t mach_absolute_time(void) { return adapt_monotonic_ns(); }
uint64_t mach_approximate_time(void) { return adapt_monotonic_ns(); }
