/*
 * bench/users/direct.c — bench-users-direct FRAME MODEL: one user's program
 * with its own TFLite interpreter (XNNPACK, one thread: what an edgemuxd
 * CPU worker runs), the "separate processes" side of bench-users. Each
 * request copies the frame in, invokes, copies the outputs out and
 * compares them with the reference (see users.h).
 */
#include "common/baseline.h"
#include "users.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "bench-users-direct"

typedef struct direct {
  baseline b;
  users_frame frame;
  emx_tensor in[USERS_MAX_TENSORS], out[USERS_MAX_TENSORS];
} direct;

static int work(void *ctx) {
  direct *d = ctx;
  if (baseline_run(&d->b, d->in, d->frame.input_count, d->out,
                   d->frame.output_count) < 0)
    return -1;
  for (size_t i = 0; i < d->frame.output_count; i++)
    if (memcmp(d->out[i].data, d->frame.output[i], d->out[i].size) != 0)
      return 1;
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s FRAME MODEL (run by bench-users)\n", PROG);
    return 2;
  }
  static direct d;
  if (users_frame_read(argv[1], &d.frame, PROG) < 0)
    return 1;
  /* TFLite says "Created TensorFlow Lite XNNPACK delegate" on stderr: once
   * per program, 64 lines for a fleet. Errors are still reported below. */
  fflush(stderr);
  int saved = dup(2), null = open("/dev/null", O_WRONLY);
  if (null >= 0)
    dup2(null, 2);
  int rc = baseline_open(&d.b, argv[2]);
  if (saved >= 0)
    dup2(saved, 2);
  if (rc < 0) {
    fprintf(stderr, "%s: cannot open model %s (error %d)\n", PROG, argv[2], rc);
    return 1;
  }
  /* A private copy of the frame, as a program's own buffers would be. */
  for (size_t i = 0; i < d.frame.input_count; i++) {
    d.in[i].size = d.frame.input_size[i];
    d.in[i].data = malloc(d.in[i].size);
    if (!d.in[i].data)
      return 1;
    memcpy(d.in[i].data, d.frame.input[i], d.in[i].size);
  }
  for (size_t i = 0; i < d.frame.output_count; i++) {
    d.out[i].size = d.frame.output_size[i];
    d.out[i].data = calloc(1, d.out[i].size);
    if (!d.out[i].data)
      return 1;
  }
  rc = users_run(work, &d, PROG);
  baseline_close(&d.b);
  return rc;
}
