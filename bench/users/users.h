/*
 * bench/users/users.h — what the bench-users driver and its two load
 * generators share: a model's frame file (the input a client sends every
 * time, and the outputs it must get back, bit for bit), the line protocol
 * between the driver and a load generator, and a clock.
 *
 * A load generator is one user's program: bench-users-direct runs its own
 * TFLite interpreter, bench-users-client is a client of edgemuxd (it links
 * the client library only). Both do the same work per request: copy the
 * frame into the input tensors, run, copy the outputs out, compare them with
 * the reference.
 *
 * Protocol, one line each way on the generator's stdin and stdout:
 *   generator: "ready"                      set up, waiting
 *   driver:    "closed START END"           run back to back; count the
 *                                           requests that end in the window
 *   driver:    "paced START END PERIOD PHASE"  send one at START + PHASE +
 *                                           k * PERIOD for every k in the
 *                                           window (ns, CLOCK_MONOTONIC)
 *   generator: "done COUNT MISMATCHES ERRORS [LAT_US...]"
 *                                           paced: latency of each, from its
 *                                           scheduled send time, in us
 */
#ifndef EMX_BENCH_USERS_H
#define EMX_BENCH_USERS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define USERS_MAX_TENSORS 8

/* users_frame: one model's frame file, loaded. */
typedef struct users_frame {
  size_t input_count, output_count;
  size_t input_size[USERS_MAX_TENSORS];
  size_t output_size[USERS_MAX_TENSORS];
  void *input[USERS_MAX_TENSORS];  /* what every request sends */
  void *output[USERS_MAX_TENSORS]; /* what it must get back */
} users_frame;

/* users_frame_write stores f at path; 0 or -1 (errno set). */
int users_frame_write(const char *path, const users_frame *f);

/* users_frame_read loads path into f (free with users_frame_free); 0, or
 * -1 after saying why on stderr, prefixed with prog. */
int users_frame_read(const char *path, users_frame *f, const char *prog);

void users_frame_free(users_frame *f);

/* users_now_ns: CLOCK_MONOTONIC, one clock for every process. */
static inline int64_t users_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* users_sleep_until sleeps to an absolute users_now_ns() time. */
void users_sleep_until(int64_t when);

/* users_run is one load generator's measurement, after its setup: it says
 * "ready", reads the driver's command, runs `work` per request as the
 * command says, and answers "done ...". work returns 0 (outputs equal to
 * the reference), 1 (outputs differ) or -1 (the request failed). Returns
 * the process's exit status. */
typedef int (*users_work_fn)(void *ctx);
int users_run(users_work_fn work, void *ctx, const char *prog);

#endif
