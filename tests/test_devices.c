/* test_devices.c — engines with several devices: placement (pinning,
 * tiers), least-loaded dispatch, failover of queued work, CPU fallback. */
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

static int group_setup(void **state) {
  return private_lock_dirs();
}

static emx_engine *engine_of(const char *const *specs, size_t n) {
  emx_engine_config cfg;
  emx_engine_config_init(&cfg);
  cfg.devices = specs;
  cfg.device_count = n;
  emx_engine *e = NULL;
  int rc = emx_engine_create(&e, &cfg);
  if (rc)
    fprintf(stderr, "%s\n", emx_engine_last_error(NULL));
  assert_int_equal(rc, 0);
  return e;
}

static emx_model *load_on(emx_engine *e, const char *placement) {
  emx_model_config mc;
  emx_model_config_init(&mc);
  mc.path = MODEL_FACE_SHORT;
  mc.devices = placement;
  emx_model *m = NULL;
  int rc = emx_model_load(e, "face", &mc, &m);
  if (rc)
    fprintf(stderr, "%s\n", emx_engine_last_error(e));
  assert_int_equal(rc, 0);
  return m;
}

/* job: one async request with its own buffers. */
typedef struct job {
  emx_tensor *in, *out;
  emx_request *req;
} job;

/* submit_jobs prepares every buffer first, then submits in a burst, so
 * all requests are queued before the first can fail. */
static void submit_jobs_by(emx_engine *e, emx_model *m, job *jobs, int n,
                           int64_t deadline_ns) {
  for (int i = 0; i < n; i++) {
    jobs[i].in = tensors_inputs(m);
    jobs[i].out = tensors_outputs(m);
    tensors_fill_random(jobs[i].in, 1, (uint64_t)i + 1);
  }
  for (int i = 0; i < n; i++) {
    emx_request_desc d;
    request_init(&d, m, jobs[i].in, jobs[i].out);
    d.enqueue_timeout_ns = -1;
    d.deadline_ns = deadline_ns;
    assert_int_equal(emx_submit(e, &d, &jobs[i].req), 0);
  }
}

static void submit_jobs(emx_engine *e, emx_model *m, job *jobs, int n) {
  submit_jobs_by(e, m, jobs, n, 0);
}

static void free_jobs(job *jobs, int n) {
  for (int i = 0; i < n; i++) {
    emx_request_destroy(jobs[i].req);
    tensors_free(jobs[i].in, 1);
    tensors_free(jobs[i].out, 2);
  }
}

static void check_outputs(emx_model *m, job *jobs, int n) {
  oracle *o = oracle_create(MODEL_FACE_SHORT);
  for (int i = 0; i < n; i++) {
    if (emx_request_wait(jobs[i].req, 0) != 0)
      continue;
    emx_tensor *want = tensors_outputs(m);
    oracle_run(o, jobs[i].in, 1, want, 2);
    assert_true(tensors_equal(jobs[i].out, want, 2));
    tensors_free(want, 2);
  }
  oracle_destroy(o);
}

static int device_of(emx_request *r) {
  emx_timings t;
  emx_request_timings(r, &t);
  return t.device;
}

/* A model placed on the sims runs only there, spread over both. */
static void placement_by_kind(void **state) {
  const char *specs[] = {"sim:31,compute_ms=5", "sim:32,compute_ms=5",
                         "cpu:workers=1"};
  emx_engine *e = engine_of(specs, 3);
  emx_model *m = load_on(e, "sim");
  job jobs[12];
  submit_jobs(e, m, jobs, 12);
  int used[3] = {0, 0, 0};
  for (int i = 0; i < 12; i++) {
    assert_int_equal(emx_request_wait(jobs[i].req, -1), 0);
    used[device_of(jobs[i].req)]++;
  }
  assert_int_equal(used[2], 0); /* never the CPU */
  assert_true(used[0] > 0 && used[1] > 0);
  check_outputs(m, jobs, 12);
  free_jobs(jobs, 12);
  emx_engine_destroy(e);
}

static void placement_pinned(void **state) {
  const char *specs[] = {"sim:33", "sim:34"};
  emx_engine *e = engine_of(specs, 2);
  emx_model *m = load_on(e, "sim1");
  job jobs[6];
  submit_jobs(e, m, jobs, 6);
  for (int i = 0; i < 6; i++) {
    assert_int_equal(emx_request_wait(jobs[i].req, -1), 0);
    assert_int_equal(device_of(jobs[i].req), 1);
  }
  free_jobs(jobs, 6);
  emx_engine_destroy(e);
}

static void placement_errors(void **state) {
  const char *specs[] = {"sim:35", "cpu:workers=1"};
  emx_engine *e = engine_of(specs, 2);
  emx_model_config mc;
  emx_model_config_init(&mc);
  mc.path = MODEL_FACE_SHORT;
  mc.devices = "edgetpu,cpu";
  assert_int_equal(emx_model_load(e, "x", &mc, NULL), EMX_EINVAL);
  assert_true(
      contains(emx_engine_last_error(e), "\"edgetpu\" names no device"));
  assert_true(contains(emx_engine_last_error(e), "sim0, cpu0"));
  mc.devices = "sim0|cpu0";
  assert_int_equal(emx_model_load(e, "y", &mc, NULL), 0);
  mc.path = NULL;
  assert_int_equal(emx_model_load(e, "z", &mc, NULL), EMX_EINVAL);
  emx_engine_destroy(e);
}

/* One of two devices fails mid-queue: only the running request fails; the
 * queued ones move to the healthy device and succeed. */
static void failover_moves_queue(void **state) {
  const char *specs[] = {"sim:36,compute_ms=10,fail_at=3",
                         "sim:37,compute_ms=10"};
  emx_engine *e = engine_of(specs, 2);
  emx_model *m = load_on(e, NULL);
  enum { N = 24 };
  job jobs[N];
  submit_jobs(e, m, jobs, N);
  int failed = 0;
  for (int i = 0; i < N; i++) {
    int rc = emx_request_wait(jobs[i].req, -1);
    if (rc != 0) {
      assert_int_equal(rc, EMX_EDEVICE);
      assert_true(contains(emx_request_error(jobs[i].req), "injected"));
      failed++;
    }
  }
  assert_int_equal(failed, 1);
  check_outputs(m, jobs, N);
  emx_device_info di;
  emx_engine_device_info(e, 0, &di);
  assert_int_equal(di.faults, 1);
  free_jobs(jobs, N);
  emx_engine_destroy(e);
}

/* One device fails mid-queue and comes back at its first re-probe: only
 * the running request fails; the ones queued behind it wait for the
 * re-probe and then run (they used to fail with it). */
static void single_device_fault_fails_only_the_running(void **state) {
  const char *specs[] = {"sim:40,compute_ms=5,fail_at=3"};
  emx_engine *e = engine_of(specs, 1);
  emx_model *m = load_on(e, NULL);
  enum { N = 16 };
  job jobs[N];
  submit_jobs(e, m, jobs, N);
  for (int i = 0; i < N; i++) {
    int rc = emx_request_wait(jobs[i].req, -1);
    if (i == 2) {
      assert_int_equal(rc, EMX_EDEVICE);
      assert_true(contains(emx_request_error(jobs[i].req), "injected"));
    } else if (rc != 0) {
      fail_msg("request %d: %s: %s", i, emx_err_name(rc),
               emx_request_error(jobs[i].req));
    }
  }
  check_outputs(m, jobs, N);
  emx_device_info di;
  emx_engine_device_info(e, 0, &di);
  assert_int_equal(di.faults, 1);
  assert_true(di.healthy);
  free_jobs(jobs, N);
  emx_engine_destroy(e);
}

/* The only device vanishes for good: the requests held for its re-probe
 * end at their own deadline (EMX_ETIMEDOUT), not before and not with the
 * fault's status. */
static void held_requests_end_at_their_deadline(void **state) {
  const char *specs[] = {"sim:41,compute_ms=5,vanish_at=1"};
  emx_engine *e = engine_of(specs, 1);
  emx_model *m = load_on(e, NULL);
  enum { N = 5 };
  job jobs[N];
  int64_t deadline = emx_now_ns() + 300 * 1000000LL;
  submit_jobs_by(e, m, jobs, N, deadline);
  assert_int_equal(emx_request_wait(jobs[0].req, -1), EMX_EDEVICE);
  assert_true(contains(emx_request_error(jobs[0].req), "vanished"));
  for (int i = 1; i < N; i++) {
    assert_int_equal(emx_request_wait(jobs[i].req, -1), EMX_ETIMEDOUT);
    assert_true(emx_now_ns() > deadline);
    assert_true(contains(emx_request_error(jobs[i].req), "deadline"));
  }
  free_jobs(jobs, N);
  emx_engine_destroy(e);
}

/* No other device can run the model: the queued requests wait for the
 * re-probe a bounded time (1 s), then fail clearly, instead of waiting for
 * a device that may never return. */
static void failover_without_a_peer(void **state) {
  const char *specs[] = {"sim:38,compute_ms=10,vanish_at=1", "cpu:workers=1"};
  emx_engine *e = engine_of(specs, 2);
  emx_model *m = load_on(e, "sim0");
  enum { N = 5 };
  job jobs[N];
  submit_jobs(e, m, jobs, N);
  for (int i = 0; i < N; i++)
    assert_int_equal(emx_request_wait(jobs[i].req, -1), EMX_EDEVICE);
  assert_true(contains(emx_request_error(jobs[0].req), "vanished"));
  for (int i = 1; i < N; i++)
    assert_true(contains(emx_request_error(jobs[i].req),
                         "no other healthy device can run model \"face\""));
  free_jobs(jobs, N);
  emx_engine_destroy(e);
}

/* "sim,cpu": the CPU serves only while the sim is down. */
static void cpu_fallback(void **state) {
  const char *specs[] = {"sim:39,vanish_at=3,return_after=1000000",
                         "cpu:workers=1"};
  emx_engine *e = engine_of(specs, 2);
  emx_model *m = load_on(e, "sim,cpu");
  int devices[8];
  for (int i = 0; i < 8; i++) {
    job j;
    submit_jobs(e, m, &j, 1);
    int rc = emx_request_wait(j.req, -1);
    devices[i] = device_of(j.req);
    if (i == 2) {
      assert_int_equal(rc, EMX_EDEVICE); /* the vanishing invoke */
    } else {
      assert_int_equal(rc, 0);
      check_outputs(m, &j, 1);
    }
    free_jobs(&j, 1);
  }
  assert_int_equal(devices[0], 0);
  assert_int_equal(devices[1], 0);
  for (int i = 3; i < 8; i++)
    assert_int_equal(devices[i], 1);
  assert_true(emx_model_healthy(m));
  emx_engine_destroy(e);
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(placement_by_kind),
      cmocka_unit_test(placement_pinned),
      cmocka_unit_test(placement_errors),
      cmocka_unit_test(failover_moves_queue),
      cmocka_unit_test(failover_without_a_peer),
      cmocka_unit_test(single_device_fault_fails_only_the_running),
      cmocka_unit_test(held_requests_end_at_their_deadline),
      cmocka_unit_test(cpu_fallback),
  };
  return cmocka_run_group_tests_name("devices", tests, group_setup, NULL);
}
