/* log.c — leveled logging to stderr with timestamps; rate-limited lines. */
#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "edgemux/edgemux.h"

static atomic_int threshold = EMX_LOG_WARN;
static pthread_mutex_t limit_lock = PTHREAD_MUTEX_INITIALIZER;

void emx__log_set_level(int level) {
  atomic_store(&threshold, level);
}

static void vlog(int level, const char *suffix, const char *fmt, va_list ap) {
  static const char *const names[] = {"error", "warn", "info", "debug"};
  struct timespec ts;
  struct tm tm;
  char stamp[32];
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);

  /* One fprintf per line so concurrent lines do not interleave. */
  char line[1024];
  vsnprintf(line, sizeof line, fmt, ap);
  fprintf(stderr, "%s.%03ldZ edgemux %s: %s%s\n", stamp, ts.tv_nsec / 1000000,
          names[level < 0   ? 0
                : level > 3 ? 3
                            : level],
          line, suffix);
}

void emx__log(int level, const char *fmt, ...) {
  if (level > atomic_load(&threshold))
    return;
  va_list ap;
  va_start(ap, fmt);
  vlog(level, "", fmt, ap);
  va_end(ap);
}

bool emx__ratelimit_pass(emx__ratelimit *rl, int64_t now_ns,
                         int64_t interval_ns, uint64_t *held) {
  if (rl->window_ns != 0 && now_ns - rl->window_ns < interval_ns) {
    rl->held++;
    return false;
  }
  *held = rl->held;
  rl->held = 0;
  rl->window_ns = now_ns ? now_ns : 1;
  return true;
}

void emx__log_limited(emx__ratelimit *rl, int level, const char *fmt, ...) {
  if (level > atomic_load(&threshold))
    return;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  uint64_t held = 0;
  pthread_mutex_lock(&limit_lock);
  bool pass =
      emx__ratelimit_pass(rl, (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec,
                          EMX__RATELIMIT_INTERVAL_NS, &held);
  pthread_mutex_unlock(&limit_lock);
  if (!pass)
    return;
  char suffix[96] = "";
  if (held)
    snprintf(suffix, sizeof suffix,
             " (%llu more like this since the last one; at most one a "
             "second is logged)",
             (unsigned long long)held);
  va_list ap;
  va_start(ap, fmt);
  vlog(level, suffix, fmt, ap);
  va_end(ap);
}
