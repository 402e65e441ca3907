/* clock.c — the one clock of the API. */
#include "core/clock.h"

#include "edgemux/edgemux.h"

EMX_EXPORT int64_t emx_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * EMX__NS_PER_SEC + ts.tv_nsec;
}
