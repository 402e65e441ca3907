/* log.h — leveled logging to stderr with timestamps, and rate-limited
 * lines for causes a peer can repeat at will. */
#ifndef EMX_CORE_LOG_H
#define EMX_CORE_LOG_H

#include <stdbool.h>
#include <stdint.h>

/* emx__log_set_level sets the process-wide threshold (EMX_LOG_*). */
void emx__log_set_level(int level);

/* emx__log writes one line to stderr if level <= the threshold. */
void emx__log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* emx__ratelimit: one cause's window (zero-initialise; a static per call
 * site is the usual owner). A cause a peer can trigger in a loop (a
 * refused connection, say) must not flood the log, as journald's
 * RateLimitBurst does not let a unit flood the journal. */
typedef struct emx__ratelimit {
  int64_t window_ns; /* when the current window began; 0 = none yet */
  uint64_t held;     /* lines not written in the current window */
} emx__ratelimit;

#define EMX__RATELIMIT_INTERVAL_NS 1000000000LL /* one line per second */

/* emx__ratelimit_pass: may a line of rl's cause be written at now_ns? At
 * most one per interval_ns; when true, *held is how many were held back
 * since the last one written (and the count restarts). Not thread-safe:
 * emx__log_limited serialises its callers. */
bool emx__ratelimit_pass(emx__ratelimit *rl, int64_t now_ns,
                         int64_t interval_ns, uint64_t *held);

/* emx__log_limited is emx__log for one cause: one line per second at most,
 * the written one saying how many like it were held back. Any thread. */
void emx__log_limited(emx__ratelimit *rl, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
