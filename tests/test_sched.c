/* test_sched.c — scheduling policies, exact: requests are queued while the
 * engine is paused, then the order in which one simulated device runs them
 * (started_ns) is compared with what the policy must do. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "support.h"

#define N 20

static int group_setup(void **state) {
  return private_lock_dirs();
}

typedef struct run {
  emx_engine *e;
  emx_model *a, *b;
  emx_tensor *in[2], *out[2];
  emx_request *req[N];
  int model_of[N]; /* 0 = a, 1 = b */
} run;

static void run_open(run *r, const char *spec) {
  const char *devices[] = {spec};
  emx_engine_config cfg;
  emx_engine_config_init(&cfg);
  cfg.devices = devices;
  cfg.device_count = 1;
  cfg.queue_capacity = 64;
  assert_int_equal(emx_engine_create(&r->e, &cfg), 0);
  r->a = model_load(r->e, "a", MODEL_FACE_SHORT);
  r->b = model_load(r->e, "b", MODEL_FACE_FULL);
  /* Outputs are never read (outputs=none): one buffer set per model. */
  r->in[0] = tensors_inputs(r->a);
  r->out[0] = tensors_outputs(r->a);
  r->in[1] = tensors_inputs(r->b);
  r->out[1] = tensors_outputs(r->b);
}

static void submit(run *r, int i, int which, emx_stream *stream) {
  emx_request_desc d;
  request_init(&d, which ? r->b : r->a, r->in[which], r->out[which]);
  d.stream = stream;
  r->model_of[i] = which;
  assert_int_equal(emx_submit(r->e, &d, &r->req[i]), 0);
}

/* order fills run_order[k] = index of the k-th request to start. */
static void order(run *r, int n, int *run_order) {
  int64_t started[N];
  for (int i = 0; i < n; i++) {
    assert_int_equal(emx_request_wait(r->req[i], -1), 0);
    emx_timings t;
    emx_request_timings(r->req[i], &t);
    started[i] = t.started_ns;
    run_order[i] = i;
  }
  for (int i = 1; i < n; i++) /* insertion sort by start time */
    for (int k = i; k > 0 && started[run_order[k]] < started[run_order[k - 1]];
         k--) {
      int tmp = run_order[k];
      run_order[k] = run_order[k - 1];
      run_order[k - 1] = tmp;
    }
}

static int swaps(run *r, const int *run_order, int n) {
  int s = 0;
  for (int k = 1; k < n; k++)
    s += r->model_of[run_order[k]] != r->model_of[run_order[k - 1]];
  return s;
}

static void run_close(run *r, int n) {
  for (int i = 0; i < n; i++)
    emx_request_destroy(r->req[i]);
  tensors_free(r->in[0], 1);
  tensors_free(r->out[0], 2);
  tensors_free(r->in[1], 1);
  tensors_free(r->out[1], 2);
  emx_engine_destroy(r->e);
}

/* Interleaved a, b, a, b ... queued at once. */
static int interleaved(const char *spec, int *run_order) {
  run r;
  run_open(&r, spec);
  emx_engine_pause(r.e);
  for (int i = 0; i < N; i++)
    submit(&r, i, i % 2, NULL);
  emx_engine_resume(r.e);
  order(&r, N, run_order);
  int s = swaps(&r, run_order, N);
  run_close(&r, N);
  return s;
}

static void fifo_runs_in_arrival_order(void **state) {
  int run_order[N];
  int s = interleaved("sim:60,outputs=none,compute_ms=1", run_order);
  for (int k = 0; k < N; k++)
    assert_int_equal(run_order[k], k);
  assert_int_equal(s, N - 1); /* every invoke swaps the model */
}

/* The first request decides the resident model; it is served while it has
 * work, then the other: one swap instead of N-1. */
static void affinity_groups_by_model(void **state) {
  int run_order[N];
  int s = interleaved("sim:61,outputs=none,compute_ms=1,sched=affinity,"
                      "max_delay_ms=60000",
                      run_order);
  assert_int_equal(s, 1);
  for (int k = 0; k < N / 2; k++)
    assert_int_equal(run_order[k], 2 * k); /* a's, in arrival order */
  for (int k = 0; k < N / 2; k++)
    assert_int_equal(run_order[N / 2 + k], 2 * k + 1);
}

/* max_delay_ms=0: nobody may wait for the resident model's work, so the
 * policy degenerates to arrival order. */
static void affinity_bounded_by_max_delay(void **state) {
  int run_order[N];
  int s = interleaved("sim:62,outputs=none,compute_ms=1,sched=affinity,"
                      "max_delay_ms=0",
                      run_order);
  assert_int_equal(s, N - 1);
  for (int k = 0; k < N; k++)
    assert_int_equal(run_order[k], k);
}

/* A flooding stream queues 18 requests, then a light one 2: with fifo the
 * light ones run last; with fair they alternate with the flood at once. */
static void fair_interleaves_streams(void **state) {
  static const char *const specs[2] = {"sim:63,outputs=none,compute_ms=1",
                                       "sim:64,outputs=none,compute_ms=1,"
                                       "sched=fair"};
  for (int policy = 0; policy < 2; policy++) {
    run r;
    run_open(&r, specs[policy]);
    emx_stream *flood, *light;
    assert_int_equal(emx_stream_create(r.e, &flood), 0);
    assert_int_equal(emx_stream_create(r.e, &light), 0);
    emx_engine_pause(r.e);
    for (int i = 0; i < N - 2; i++)
      submit(&r, i, 0, flood);
    submit(&r, N - 2, 0, light);
    submit(&r, N - 1, 0, light);
    emx_engine_resume(r.e);
    int run_order[N];
    order(&r, N, run_order);
    int pos[2] = {-1, -1};
    for (int k = 0; k < N; k++)
      if (run_order[k] >= N - 2)
        pos[run_order[k] - (N - 2)] = k;
    if (policy == 0) {
      assert_int_equal(pos[0], N - 2);
      assert_int_equal(pos[1], N - 1);
    } else {
      assert_int_equal(pos[0], 1); /* right after the flood's first */
      assert_int_equal(pos[1], 3);
    }
    emx_stream_destroy(flood);
    emx_stream_destroy(light);
    run_close(&r, N);
  }
}

static void bad_sched_spec(void **state) {
  const char *devices[] = {"sim:65,sched=lifo"};
  emx_engine_config cfg;
  emx_engine_config_init(&cfg);
  cfg.devices = devices;
  cfg.device_count = 1;
  emx_engine *e = NULL;
  assert_int_equal(emx_engine_create(&e, &cfg), EMX_EINVAL);
  assert_true(contains(emx_engine_last_error(NULL), "sched must be"));
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fifo_runs_in_arrival_order),
      cmocka_unit_test(affinity_groups_by_model),
      cmocka_unit_test(affinity_bounded_by_max_delay),
      cmocka_unit_test(fair_interleaves_streams),
      cmocka_unit_test(bad_sched_spec),
  };
  return cmocka_run_group_tests_name("sched", tests, group_setup, NULL);
}
