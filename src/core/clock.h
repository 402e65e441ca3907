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

/* emx__deadline_after returns now_ns + dur_ns saturated at INT64_MAX, so
 * no caller-given duration (a timeout near INT64_MAX, say) can overflow
 * into a deadline in the past; dur_ns <= 0 gives now_ns. Every
 * "now + duration" in the engine, the daemon and the client goes through
 * it. */
static inline int64_t emx__deadline_after(int64_t now_ns, int64_t dur_ns) {
  if (dur_ns <= 0)
    return now_ns;
  return now_ns > INT64_MAX - dur_ns ? INT64_MAX : now_ns + dur_ns;
}

#endif
