/* clock.c — the one clock of the API, and condition variables on it. */
#include "core/clock.h"

#include "edgemux/edgemux.h"

EMX_EXPORT int64_t emx_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * EMX__NS_PER_SEC + ts.tv_nsec;
}

void emx__cond_init_monotonic(pthread_cond_t *cv) {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(cv, &attr);
  pthread_condattr_destroy(&attr);
}
