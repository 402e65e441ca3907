/* log.c — leveled logging to stderr with timestamps. */
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "edgemux/edgemux.h"

static atomic_int threshold = EMX_LOG_WARN;

void emx__log_set_level(int level) {
  atomic_store(&threshold, level);
}

void emx__log(int level, const char *fmt, ...) {
  static const char *const names[] = {"error", "warn", "info", "debug"};
  if (level > atomic_load(&threshold))
    return;
  struct timespec ts;
  struct tm tm;
  char stamp[32];
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);

  /* One fprintf per line so concurrent lines do not interleave. */
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s.%03ldZ edgemux %s: %s\n", stamp, ts.tv_nsec / 1000000,
          names[level < 0   ? 0
                : level > 3 ? 3
                            : level],
          line);
}
