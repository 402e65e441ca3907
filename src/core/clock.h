/* clock.h — monotonic time helpers. */
#ifndef EMX_CORE_CLOCK_H
#define EMX_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

#define EMX__NS_PER_SEC 1000000000LL

/* emx__abstime converts an absolute CLOCK_MONOTONIC time in ns to a timespec
 * (for pthread_cond_timedwait on a monotonic condvar). */
static inline struct timespec emx__abstime(int64_t ns) {
  struct timespec ts = {.tv_sec = (time_t)(ns / EMX__NS_PER_SEC),
                        .tv_nsec = (long)(ns % EMX__NS_PER_SEC)};
  return ts;
}

/* emx__cpu_relax tells the core we are spinning (cheaper for the sibling
 * hyperthread, and avoids a memory-order mis-speculation on exit). */
static inline void emx__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

#endif
