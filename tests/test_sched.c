/* test_sched.c — scheduling policies, exact: requests are queued while the
 * engine is paused, then the order in which one simulated device runs them
 * (started_ns) is compared with what the policy must do. The tests named
 * virtual_* run on the sim's virtual clock (clock=virtual): every request's
 * start and finish time is known to the nanosecond, and nothing sleeps. */
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

/* run_open_batched makes an engine with one device from `spec` and loads
 * two models: a, allowed batches of max_batch (preferred sizes: a
 * 0-terminated list, or NULL; 0: no batching), and b. */
static void run_open_batched(run *r, const char *spec, int max_batch,
                             const int *preferred) {
  const char *devices[] = {spec};
  emx_engine_config cfg;
  emx_engine_config_init(&cfg);
  cfg.devices = devices;
  cfg.device_count = 1;
  cfg.queue_capacity = 64;
  assert_int_equal(emx_engine_create(&r->e, &cfg), 0);
  emx_model_config mc;
  emx_model_config_init(&mc);
  mc.path = MODEL_FACE_SHORT;
  mc.max_batch = max_batch;
  for (int i = 0; preferred && preferred[i]; i++)
    mc.preferred_batch[i] = preferred[i];
  assert_int_equal(emx_model_load(r->e, "a", &mc, &r->a), 0);
  r->b = model_load(r->e, "b", MODEL_FACE_FULL);
  /* Outputs are never read (outputs=none): one buffer set per model. */
  r->in[0] = tensors_inputs(r->a);
  r->out[0] = tensors_outputs(r->a);
  r->in[1] = tensors_inputs(r->b);
  r->out[1] = tensors_outputs(r->b);
}

static void run_open(run *r, const char *spec) {
  run_open_batched(r, spec, 0, NULL);
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
 * light ones run last; with fair they alternate with the flood at once.
 * (sched=fair charges device time, measured on this real clock: whether
 * the light stream's second run comes right after its first or after one
 * more of the flood's depends on which of the first two runs took longer,
 * so the second position is 2 or 3.) */
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
      assert_in_range(pos[1], 2, 3);
    }
    emx_stream_destroy(flood);
    emx_stream_destroy(light);
    run_close(&r, N);
  }
}

/* submit_all submits on stream until the engine refuses; returns how many
 * were accepted (their handles in reqs) and the refusal in *rc. */
static int submit_all(run *r, emx_stream *stream, emx_request **reqs, int max,
                      int *rc) {
  int n = 0;
  *rc = 0;
  while (n < max) {
    emx_request_desc d;
    request_init(&d, r->a, r->in[0], r->out[0]);
    d.stream = stream;
    *rc = emx_submit(r->e, &d, &reqs[n]);
    if (*rc < 0)
      break;
    n++;
  }
  return n;
}

/* Two flooding streams fill a fair device's queue (64); a light stream is
 * still admitted, up to its share (64 / 3 streams), and no further. Before,
 * a full queue refused everyone: two flooders got a polite client nearly
 * all of its requests refused with EMX_EBUSY. With fifo, a full queue
 * still refuses. */
static void fair_admission_shares_the_queue(void **state) {
  (void)state;
  static const char *const specs[2] = {"sim:65,outputs=none,compute_ms=1",
                                       "sim:66,outputs=none,compute_ms=1,"
                                       "sched=fair"};
  for (int policy = 0; policy < 2; policy++) {
    run r;
    run_open(&r, specs[policy]);
    emx_stream *flood[2], *light;
    assert_int_equal(emx_stream_create(r.e, &flood[0]), 0);
    assert_int_equal(emx_stream_create(r.e, &flood[1]), 0);
    assert_int_equal(emx_stream_create(r.e, &light), 0);
    emx_engine_pause(r.e);
    static emx_request *fr[2][200], *lr[200];
    int rc, nf[2];
    nf[0] = submit_all(&r, flood[0], fr[0], 200, &rc);
    assert_int_equal(rc, EMX_EBUSY);
    nf[1] = submit_all(&r, flood[1], fr[1], 200, &rc);
    assert_int_equal(rc, EMX_EBUSY);
    int nl = submit_all(&r, light, lr, 200, &rc);
    assert_int_equal(rc, EMX_EBUSY);
    fprintf(stderr, "%s: flood %d + %d, light %d\n", policy ? "fair" : "fifo",
            nf[0], nf[1], nl);
    if (policy == 0) {
      assert_int_equal(nf[0], 64);
      assert_int_equal(nf[1], 0);
      assert_int_equal(nl, 0);
    } else {
      assert_int_equal(nf[0], 64);
      assert_int_equal(nf[1], 32); /* its share with the first: 64 / 2 */
      assert_int_equal(nl, 21);    /* 64 / 3 */
    }
    emx_engine_resume(r.e);
    for (int k = 0; k < 2; k++)
      for (int i = 0; i < nf[k]; i++) {
        assert_int_equal(emx_request_wait(fr[k][i], -1), 0);
        emx_request_destroy(fr[k][i]);
      }
    for (int i = 0; i < nl; i++) {
      assert_int_equal(emx_request_wait(lr[i], -1), 0);
      emx_request_destroy(lr[i]);
    }
    emx_stream_destroy(flood[0]);
    emx_stream_destroy(flood[1]);
    emx_stream_destroy(light);
    run_close(&r, 0);
  }
}

/* ---- on the virtual clock ------------------------------------------------
 * One simulated TPU: an invoke costs 1 ms, plus 5 ms when the model's
 * parameters must be swapped in; transfers are free. Every request below is
 * queued at virtual time 0. */
#define MS 1000000LL
#define VSPEC(id, extra)                                                       \
  "sim:" #id ",outputs=none,clock=virtual,fixed_us=0,bandwidth_mbps=0,"        \
  "compute_ms=1,swap_ms=5" extra

/* finished_at waits for request i and returns its finish time in ms (exact
 * multiples are asserted). */
static int64_t finished_at(run *r, int i, int want_status) {
  assert_int_equal(emx_request_wait(r->req[i], -1), want_status);
  emx_timings t;
  emx_request_timings(r->req[i], &t);
  assert_int_equal(t.submitted_ns, 0);
  if (want_status != 0)
    return -1;
  assert_int_equal(t.finished_ns % MS, 0);
  return t.finished_ns / MS;
}

static void expect_finishes(run *r, int n, const int64_t *want_ms) {
  for (int i = 0; i < n; i++) {
    int64_t got = finished_at(r, i, 0);
    if (got != want_ms[i])
      fail_msg("request %d finished at %lld ms, want %lld ms", i,
               (long long)got, (long long)want_ms[i]);
  }
}

/* interleaved_exact queues a, b, a, b... (8) on one virtual device with
 * `spec`, lets them run, and checks their finish times. */
static void interleaved_exact(const char *spec, const int64_t *want_ms) {
  run r;
  run_open(&r, spec);
  emx_engine_pause(r.e);
  for (int i = 0; i < 8; i++)
    submit(&r, i, i % 2, NULL);
  emx_engine_resume(r.e);
  expect_finishes(&r, 8, want_ms);
  run_close(&r, 8);
}

/* fifo: a, b, a, b... each run swaps: request k finishes at 6(k+1) ms. */
static void virtual_fifo_exact(void **state) {
  static const int64_t want[8] = {6, 12, 18, 24, 30, 36, 42, 48};
  interleaved_exact(VSPEC(70, ""), want);
}

/* affinity without a bound: a's four (6, 7, 8, 9), then b's (15..18). The
 * same work in 18 ms instead of 48. */
static void virtual_affinity_exact(void **state) {
  static const int64_t want[8] = {6, 15, 7, 16, 8, 17, 9, 18};
  interleaved_exact(VSPEC(71, ",sched=affinity,max_delay_ms=60000"), want);
}

/* affinity, max_delay 8 ms: a0 (0-6), a2 (6-7), a4 (7-8); at 8 ms b1 has
 * waited 8 ms, no longer under the bound, so it runs (8-14); the oldest
 * now, b3 and b5, are for the resident model (15, 16); then a6, oldest and
 * overdue (16-22), and b7 last (22-28). */
static void virtual_affinity_max_delay_exact(void **state) {
  static const int64_t want[8] = {6, 14, 7, 15, 8, 16, 22, 28};
  interleaved_exact(VSPEC(72, ",sched=affinity,max_delay_ms=8"), want);
}

/* Five requests for a: finishes at 6, 7, 8, 9, 10 ms. Request 2 has deadline
 * 7 ms and starts exactly at 7: it runs. Request 3 has 7.5 ms and would
 * start at 8: it never runs, and request 4 takes its place (8-9). */
static void virtual_deadline_exact(void **state) {
  run r;
  run_open(&r, VSPEC(73, ""));
  emx_engine_pause(r.e);
  static const int64_t deadline[5] = {0, 0, 7 * MS, 7 * MS + MS / 2, 0};
  for (int i = 0; i < 5; i++) {
    emx_request_desc d;
    request_init(&d, r.a, r.in[0], r.out[0]);
    d.deadline_ns = deadline[i];
    r.model_of[i] = 0;
    assert_int_equal(emx_submit(r.e, &d, &r.req[i]), 0);
  }
  emx_engine_resume(r.e);
  assert_int_equal(finished_at(&r, 0, 0), 6);
  assert_int_equal(finished_at(&r, 1, 0), 7);
  assert_int_equal(finished_at(&r, 2, 0), 8);
  finished_at(&r, 3, EMX_ETIMEDOUT);
  emx_timings t;
  emx_request_timings(r.req[3], &t);
  assert_int_equal(t.started_ns, 0); /* never ran */
  assert_int_equal(finished_at(&r, 4, 0), 9);
  emx_stats st;
  assert_int_equal(emx_model_stats(r.a, &st), 0);
  assert_int_equal(st.timeouts, 1);
  run_close(&r, 5);
}

/* Low, normal, high queued in that order run high, normal, low. */
static void virtual_priority_exact(void **state) {
  run r;
  run_open(&r, VSPEC(74, ""));
  emx_engine_pause(r.e);
  for (int i = 0; i < 3; i++) {
    emx_request_desc d;
    request_init(&d, r.a, r.in[0], r.out[0]);
    d.priority = i; /* LOW, NORMAL, HIGH */
    r.model_of[i] = 0;
    assert_int_equal(emx_submit(r.e, &d, &r.req[i]), 0);
  }
  emx_engine_resume(r.e);
  static const int64_t want[3] = {8, 7, 6};
  expect_finishes(&r, 3, want);
  run_close(&r, 3);
}

static void expect_batches(run *r, int n, const int *want) {
  for (int i = 0; i < n; i++) {
    emx_timings t;
    emx_request_timings(r->req[i], &t);
    if (t.batch != want[i])
      fail_msg("request %d ran in a batch of %d, want %d", i, t.batch, want[i]);
  }
}

/* Dynamic batching on a device that cannot resize (the sim as it comes,
 * like an Edge TPU): fifo, but model a allows batches of 4, so a's queued
 * requests are gathered and run back to back, one invoke each (batch 1),
 * before b's first: 6, 7, 8, 9 for a, then b's at 15, 16, 17, 18. Without
 * batching fifo would swap on every request (virtual_fifo_exact: 48 ms). */
static void virtual_batch_back_to_back(void **state) {
  run r;
  run_open_batched(&r, VSPEC(75, ""), 4, NULL);
  emx_engine_pause(r.e);
  for (int i = 0; i < 8; i++)
    submit(&r, i, i % 2, NULL);
  emx_engine_resume(r.e);
  static const int64_t want[8] = {6, 15, 7, 16, 8, 17, 9, 18};
  expect_finishes(&r, 8, want);
  static const int batch[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  expect_batches(&r, 8, batch);
  run_close(&r, 8);
}

/* A sim that takes batches (max_batch=8): eight queued for a, batches of 4.
 * The first invoke costs the swap once and 4 x 1 ms (9 ms); the second
 * 4 ms more (13). Then interleaved with b: a's four run as one invoke and
 * b's, which do not batch, one by one after it. */
static void virtual_batch_merges_exact(void **state) {
  run r;
  run_open_batched(&r, VSPEC(78, ",max_batch=8"), 4, NULL);
  emx_engine_pause(r.e);
  for (int i = 0; i < 8; i++)
    submit(&r, i, 0, NULL);
  emx_engine_resume(r.e);
  static const int64_t want[8] = {9, 9, 9, 9, 13, 13, 13, 13};
  expect_finishes(&r, 8, want);
  static const int batch[8] = {4, 4, 4, 4, 4, 4, 4, 4};
  expect_batches(&r, 8, batch);
  for (int i = 0; i < 8; i++)
    emx_request_destroy(r.req[i]);

  emx_engine_pause(r.e);
  for (int i = 0; i < 8; i++)
    submit(&r, i, i % 2, NULL);
  emx_engine_resume(r.e);
  /* The clock goes on from 13 ms, with a still resident: a's four take
   * 4 ms (17); b's first swaps b in (23), the rest follow (24, 25, 26). */
  static const int64_t mixed[8] = {17, 23, 17, 24, 17, 25, 17, 26};
  for (int i = 0; i < 8; i++) {
    assert_int_equal(emx_request_wait(r.req[i], -1), 0);
    emx_timings t;
    emx_request_timings(r.req[i], &t);
    assert_int_equal(t.submitted_ns, 13 * MS);
    assert_int_equal(t.finished_ns, mixed[i] * MS);
  }
  static const int mixed_batch[8] = {4, 1, 4, 1, 4, 1, 4, 1};
  expect_batches(&r, 8, mixed_batch);
  run_close(&r, 8);
}

/* Preferred sizes {2, 4}, max 8: seven queued run as 4 (0-9 ms), 2 (9-11)
 * and 1 (11-12). */
static void virtual_batch_preferred_exact(void **state) {
  static const int preferred[] = {2, 4, 0};
  run r;
  run_open_batched(&r, VSPEC(79, ",max_batch=8"), 8, preferred);
  emx_engine_pause(r.e);
  for (int i = 0; i < 7; i++)
    submit(&r, i, 0, NULL);
  emx_engine_resume(r.e);
  static const int64_t want[7] = {9, 9, 9, 9, 11, 11, 12};
  expect_finishes(&r, 7, want);
  static const int batch[7] = {4, 4, 4, 4, 2, 2, 1};
  expect_batches(&r, 7, batch);
  run_close(&r, 7);
}

/* Weighted fair share: a stream of weight 3 and one of weight 1, both
 * flooding (10 each, queued alternately). The device serves them 3:1 in
 * device time. The first run (0-6 ms) swaps the model in and is charged to
 * the heavy stream (6 ms / 3 = 2 ms of its share), so the light one runs
 * twice before it comes back: h l l h l h h l h h h l ... — the light
 * stream's first four finish at 7, 8, 10 and 13 ms. */
static void virtual_fair_weights_exact(void **state) {
  run r;
  run_open(&r, VSPEC(77, ",sched=fair"));
  emx_stream *heavy, *light;
  assert_int_equal(emx_stream_create(r.e, &heavy), 0);
  assert_int_equal(emx_stream_create(r.e, &light), 0);
  assert_int_equal(emx_stream_set_weight(heavy, 3), 0);
  assert_int_equal(emx_stream_set_weight(light, 0), EMX_EINVAL);
  assert_int_equal(emx_stream_set_weight(light, EMX_MAX_STREAM_WEIGHT + 1),
                   EMX_EINVAL);
  emx_engine_pause(r.e);
  for (int i = 0; i < N; i++) /* even: heavy, odd: light */
    submit(&r, i, 0, i % 2 ? light : heavy);
  emx_engine_resume(r.e);
  static const int64_t light_ms[4] = {7, 8, 10, 13};
  for (int j = 0; j < 4; j++)
    assert_int_equal(finished_at(&r, 2 * j + 1, 0), light_ms[j]);
  /* The heavy stream's ten are all done by 20 ms; the light one's last
   * five follow. */
  int64_t heavy_last = 0;
  for (int i = 0; i < N; i += 2) {
    int64_t t = finished_at(&r, i, 0);
    heavy_last = t > heavy_last ? t : heavy_last;
  }
  assert_int_equal(heavy_last, 20);
  assert_int_equal(finished_at(&r, N - 1, 0), 6 + N - 1);
  emx_stream_destroy(heavy);
  emx_stream_destroy(light);
  run_close(&r, N);
}

/* Fair by device time: one stream floods model a (face short: 0.26 MB of
 * tensors), another model b (face full: 0.6 MB); at 100 MB/s a run of b
 * takes about twice as long as one of a. Queued alternately, the device
 * shares its time, not its turns: while both streams wait, their device
 * time never differs by more than one run, so the light stream runs about
 * twice as often. (Turn by turn, the difference would grow by 3.4 ms with
 * every pair.) */
static void virtual_fair_by_device_time(void **state) {
  run r;
  run_open(&r, "sim:78,outputs=none,clock=virtual,fixed_us=0,"
               "bandwidth_mbps=100,compute_ms=1,swap_ms=0,sched=fair");
  emx_stream *st[2];
  assert_int_equal(emx_stream_create(r.e, &st[0]), 0);
  assert_int_equal(emx_stream_create(r.e, &st[1]), 0);
  emx_engine_pause(r.e);
  for (int i = 0; i < N; i++) /* even: a, odd: b */
    submit(&r, i, i % 2, st[i % 2]);
  emx_engine_resume(r.e);
  int run_order[N];
  order(&r, N, run_order);
  int64_t cost[2] = {0, 0}, served[2] = {0, 0};
  int ran[2] = {0, 0};
  for (int k = 0; k < N; k++) {
    int i = run_order[k], m = r.model_of[i];
    emx_timings t;
    emx_request_timings(r.req[i], &t);
    int64_t took = t.finished_ns - t.started_ns;
    assert_true(took > 0);
    if (cost[m])
      assert_int_equal(took, cost[m]); /* a virtual run: always the same */
    cost[m] = took;
    if (ran[0] == N / 2 || ran[1] == N / 2)
      break; /* one stream is done: the other has the device alone */
    served[m] += took;
    ran[m]++;
    int64_t most = cost[0] > cost[1] ? cost[0] : cost[1];
    int64_t diff = served[0] - served[1];
    if (diff > most || -diff > most)
      fail_msg("after %d runs of a and %d of b, a had %lld us of device "
               "time and b %lld us: more than one run (%lld us) apart",
               ran[0], ran[1], (long long)(served[0] / 1000),
               (long long)(served[1] / 1000), (long long)(most / 1000));
  }
  assert_true(cost[1] > cost[0] * 3 / 2);
  /* When a's ten are done, b has run about half as many. */
  assert_int_equal(ran[0], N / 2);
  assert_in_range(ran[1], 4, 6);
  emx_stream_destroy(st[0]);
  emx_stream_destroy(st[1]);
  run_close(&r, N);
}

static void virtual_clock_specs(void **state) {
  const char *bad[] = {"sim:76,clock=sundial",
                       "sim:76,clock=virtual,isolate=1"};
  const char *why[] = {"clock must be real or virtual", "in-process only"};
  for (int i = 0; i < 2; i++) {
    const char *devices[] = {bad[i]};
    emx_engine_config cfg;
    emx_engine_config_init(&cfg);
    cfg.devices = devices;
    cfg.device_count = 1;
    emx_engine *e = NULL;
    assert_int_equal(emx_engine_create(&e, &cfg), EMX_EINVAL);
    if (!contains(emx_engine_last_error(NULL), why[i]))
      fail_msg("\"%s\": %s", bad[i], emx_engine_last_error(NULL));
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
      cmocka_unit_test(fair_admission_shares_the_queue),
      cmocka_unit_test(bad_sched_spec),
      cmocka_unit_test(virtual_fifo_exact),
      cmocka_unit_test(virtual_affinity_exact),
      cmocka_unit_test(virtual_affinity_max_delay_exact),
      cmocka_unit_test(virtual_deadline_exact),
      cmocka_unit_test(virtual_priority_exact),
      cmocka_unit_test(virtual_batch_back_to_back),
      cmocka_unit_test(virtual_batch_merges_exact),
      cmocka_unit_test(virtual_batch_preferred_exact),
      cmocka_unit_test(virtual_fair_weights_exact),
      cmocka_unit_test(virtual_fair_by_device_time),
      cmocka_unit_test(virtual_clock_specs),
  };
  return cmocka_run_group_tests_name("sched", tests, group_setup, NULL);
}
