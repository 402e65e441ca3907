/*
 * bench/users/frames.c — the frame file and the driver protocol of
 * users.h. Linked into the driver and both load generators; it uses libc
 * only, so the edgemuxd client's process holds no TFLite.
 */
#include "users.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int users_frame_write(const char *path, const users_frame *f) {
  FILE *out = fopen(path, "wb");
  if (!out)
    return -1;
  uint64_t counts[2] = {f->input_count, f->output_count};
  int ok = fwrite(counts, sizeof counts, 1, out) == 1;
  for (size_t i = 0; ok && i < f->input_count; i++) {
    uint64_t n = f->input_size[i];
    ok = fwrite(&n, sizeof n, 1, out) == 1 &&
         fwrite(f->input[i], 1, n, out) == n;
  }
  for (size_t i = 0; ok && i < f->output_count; i++) {
    uint64_t n = f->output_size[i];
    ok = fwrite(&n, sizeof n, 1, out) == 1 &&
         fwrite(f->output[i], 1, n, out) == n;
  }
  if (fclose(out) != 0)
    ok = 0;
  return ok ? 0 : -1;
}

static void *read_blob(FILE *in, size_t *size) {
  uint64_t n;
  if (fread(&n, sizeof n, 1, in) != 1 || n > ((uint64_t)1 << 30))
    return NULL;
  void *p = malloc(n ? n : 1);
  if (p && fread(p, 1, n, in) != n) {
    free(p);
    return NULL;
  }
  *size = n;
  return p;
}

int users_frame_read(const char *path, users_frame *f, const char *prog) {
  memset(f, 0, sizeof *f);
  FILE *in = fopen(path, "rb");
  if (!in) {
    fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
    return -1;
  }
  uint64_t counts[2];
  int ok = fread(counts, sizeof counts, 1, in) == 1 &&
           counts[0] <= USERS_MAX_TENSORS && counts[1] <= USERS_MAX_TENSORS;
  for (size_t i = 0; ok && i < counts[0]; i++) {
    f->input[i] = read_blob(in, &f->input_size[i]);
    ok = f->input[i] != NULL;
    f->input_count += ok;
  }
  for (size_t i = 0; ok && i < counts[1]; i++) {
    f->output[i] = read_blob(in, &f->output_size[i]);
    ok = f->output[i] != NULL;
    f->output_count += ok;
  }
  fclose(in);
  if (!ok) {
    fprintf(stderr, "%s: %s: not a frame file\n", prog, path);
    users_frame_free(f);
    return -1;
  }
  return 0;
}

void users_frame_free(users_frame *f) {
  for (size_t i = 0; i < f->input_count; i++)
    free(f->input[i]);
  for (size_t i = 0; i < f->output_count; i++)
    free(f->output[i]);
  memset(f, 0, sizeof *f);
}

void users_sleep_until(int64_t when) {
  struct timespec ts = {when / 1000000000, when % 1000000000};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

/* The most paced requests one generator reports (10 per second for 10
 * minutes). */
#define MAX_PACED 6000

int users_run(users_work_fn work, void *ctx, const char *prog) {
  /* One run first: a program's first is slow (XNNPACK sets up), and a
   * camera app has started before it is measured. */
  int first = work(ctx);
  if (first != 0) {
    fprintf(stderr, "%s: the first request %s\n", prog,
            first < 0 ? "failed"
                      : "gave outputs that differ from the "
                        "reference");
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  char line[256];
  if (!fgets(line, sizeof line, stdin)) {
    fprintf(stderr, "%s: no command from the driver\n", prog);
    return 1;
  }
  long long start, end, period = 0, phase = 0;
  int paced = sscanf(line, "paced %lld %lld %lld %lld", &start, &end, &period,
                     &phase) == 4;
  if (!paced && sscanf(line, "closed %lld %lld", &start, &end) != 2) {
    fprintf(stderr, "%s: bad command: %s", prog, line);
    return 1;
  }
  unsigned long count = 0, mismatches = 0, errors = 0;
  static uint32_t lat_us[MAX_PACED];
  size_t nlat = 0;
  if (!paced) {
    /* Back to back from now: the runs before START warm caches up. */
    for (int64_t now = users_now_ns(); now < end;) {
      int rc = work(ctx);
      now = users_now_ns();
      if (now >= start && now < end) {
        count++;
        mismatches += rc == 1;
        errors += rc < 0;
      }
      if (rc < 0)
        break;
    }
  } else {
    for (int64_t k = 0;; k++) {
      int64_t due = start + phase + k * period;
      if (due >= end)
        break;
      users_sleep_until(due); /* returns at once when behind */
      int rc = work(ctx);
      int64_t took = users_now_ns() - due;
      count++;
      mismatches += rc == 1;
      errors += rc < 0;
      if (nlat < MAX_PACED)
        lat_us[nlat++] = (uint32_t)(took / 1000);
      if (rc < 0)
        break;
    }
  }
  printf("done %lu %lu %lu", count, mismatches, errors);
  for (size_t i = 0; i < nlat; i++)
    printf(" %u", lat_us[i]);
  printf("\n");
  fflush(stdout);
  return errors ? 1 : 0;
}
