/*
 * test_stats.c — counters, latency percentiles, devices and defaults.
 */
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

/* ---- model and device counters ------------------------------------------- */

static void assert_zero_stats(const emx_stats *st) {
  assert_int_equal(st->requests, 0);
  assert_int_equal(st->errors, 0);
  assert_int_equal(st->timeouts, 0);
  assert_int_equal(st->queue_depth, 0);
  assert_int_equal(st->busy_ns, 0);
  assert_true(st->latency_p50_us == 0.0);
  assert_true(st->latency_p99_us == 0.0);
}

static void counts_and_latency(void **state) {
  (void)state;
  enum { N = 12, M = 5 };
  emx_engine *engine = engine_new("cpu:workers=2", 0);
  emx_model *face = model_load(engine, "face", MODEL_FACE_SHORT);
  emx_model *hand = model_load(engine, "hand", MODEL_HAND_LITE);
  emx_stats st;
  assert_int_equal(emx_model_stats(face, &st), 0);
  assert_zero_stats(&st);

  emx_tensor *in = tensors_inputs(face);
  emx_tensor *out = tensors_outputs(face);
  tensors_fill_random(in, 1, 77);
  /* Bounds on the latency the engine can have measured: at least the run
   * inside the worker, at most the whole emx_infer call. */
  int64_t min_inside_ns = INT64_MAX, max_call_ns = 0;
  for (int i = 0; i < N; i++) {
    emx_request_desc req;
    request_init(&req, face, in, out);
    emx_timings t;
    int64_t before = emx_now_ns();
    assert_int_equal(emx_infer(engine, &req, &t), 0);
    int64_t after = emx_now_ns();
    if (t.finished_ns - t.submitted_ns < min_inside_ns)
      min_inside_ns = t.finished_ns - t.submitted_ns;
    if (after - before > max_call_ns)
      max_call_ns = after - before;
  }
  for (int i = 0; i < M; i++) {
    emx_request_desc req;
    request_init(&req, face, in, out);
    req.deadline_ns = emx_now_ns() - 1;
    assert_int_equal(emx_infer(engine, &req, NULL), EMX_ETIMEDOUT);
  }

  assert_int_equal(emx_model_stats(face, &st), 0);
  assert_int_equal(st.requests, N + M);
  assert_int_equal(st.errors, M);
  assert_int_equal(st.timeouts, M);
  assert_int_equal(st.queue_depth, 0);
  assert_true(st.busy_ns > 0);
  assert_true(st.latency_p50_us > 0.0);
  assert_true(st.latency_p99_us >= st.latency_p50_us);
  /* Percentiles of successful requests lie within the observed range
   * (about 3% precision, so allow 5%). */
  double lo_us = (double)min_inside_ns / 1000.0 * 0.95;
  double hi_us = (double)max_call_ns / 1000.0 * 1.05;
  if (st.latency_p50_us < lo_us || st.latency_p99_us > hi_us)
    print_error("p50 %.1f us, p99 %.1f us, observed %.1f..%.1f us\n",
                st.latency_p50_us, st.latency_p99_us, lo_us, hi_us);
  assert_true(st.latency_p50_us >= lo_us);
  assert_true(st.latency_p99_us <= hi_us);
  /* busy_ns covers the N runs, each at least its device time. */
  assert_true(st.busy_ns <= (uint64_t)max_call_ns * N);

  /* The other model saw nothing. */
  emx_stats other;
  assert_int_equal(emx_model_stats(hand, &other), 0);
  assert_zero_stats(&other);

  /* The devices together did what the models did. */
  emx_stats sum;
  memset(&sum, 0, sizeof(sum));
  assert_int_equal(emx_engine_device_count(engine), 2);
  for (size_t d = 0; d < 2; d++) {
    emx_stats ds;
    assert_int_equal(emx_engine_device_stats(engine, d, &ds), 0);
    sum.requests += ds.requests;
    sum.errors += ds.errors;
    sum.timeouts += ds.timeouts;
    sum.queue_depth += ds.queue_depth;
    sum.busy_ns += ds.busy_ns;
    assert_true(ds.latency_p99_us >= ds.latency_p50_us);
  }
  assert_int_equal(sum.requests, N + M);
  assert_int_equal(sum.errors, M);
  assert_int_equal(sum.timeouts, M);
  assert_int_equal(sum.queue_depth, 0);
  assert_true(sum.busy_ns > 0);

  tensors_free(in, 1);
  tensors_free(out, 2);
  emx_engine_destroy(engine);
}

/* queue_depth counts requests waiting, not yet started. */
static void queue_depth(void **state) {
  (void)state;
  enum { COUNT = 30 };
  emx_engine *engine = engine_new("cpu:workers=1", 64);
  emx_model *hand = model_load(engine, "hand", MODEL_HAND_LITE);
  emx_tensor *in = tensors_inputs(hand);
  emx_tensor *out[COUNT];
  emx_request *req[COUNT];
  for (int i = 0; i < COUNT; i++) {
    out[i] = tensors_outputs(hand);
    emx_request_desc desc;
    request_init(&desc, hand, in, out[i]);
    assert_int_equal(emx_submit(engine, &desc, &req[i]), 0);
  }
  /* Thirty invokes of a few ms each: most are still waiting. */
  emx_stats st, ds;
  assert_int_equal(emx_model_stats(hand, &st), 0);
  assert_int_equal(emx_engine_device_stats(engine, 0, &ds), 0);
  assert_in_range(st.queue_depth, 1, COUNT);
  assert_in_range(ds.queue_depth, 1, COUNT);
  assert_true(st.requests + st.queue_depth <= COUNT);

  for (int i = 0; i < COUNT; i++) {
    assert_int_equal(emx_request_wait(req[i], -1), 0);
    emx_request_destroy(req[i]);
    tensors_free(out[i], 4);
  }
  assert_int_equal(emx_model_stats(hand, &st), 0);
  assert_int_equal(st.queue_depth, 0);
  assert_int_equal(st.requests, COUNT);
  assert_int_equal(st.errors, 0);
  tensors_free(in, 1);
  emx_engine_destroy(engine);
}

/* ---- devices ------------------------------------------------------------- */

static void device_info(void **state) {
  (void)state;
  emx_engine *engine = engine_new("cpu:workers=3", 0);
  assert_int_equal(emx_engine_device_count(engine), 3);
  for (size_t d = 0; d < 3; d++) {
    emx_device_info info;
    memset(&info, 0x5A, sizeof(info));
    assert_int_equal(emx_engine_device_info(engine, d, &info), 0);
    char want[32];
    snprintf(want, sizeof(want), "cpu%zu", d);
    assert_string_equal(info.name, want);
    assert_string_equal(info.kind, "cpu");
    assert_string_equal(info.spec, "cpu:workers=3");
    assert_int_equal(info.healthy, 1);

    emx_stats st;
    assert_int_equal(emx_engine_device_stats(engine, d, &st), 0);
    assert_zero_stats(&st);
  }
  emx_engine_destroy(engine);
}

static void default_config(void **state) {
  (void)state;
  emx_engine_config cfg;
  memset(&cfg, 0x5A, sizeof(cfg));
  emx_engine_config_init(&cfg);
  assert_null(cfg.devices);
  assert_int_equal(cfg.device_count, 0);
  assert_int_equal(cfg.queue_capacity, 256);
  assert_int_equal(cfg.log_level, EMX_LOG_WARN);

  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  assert_true(cores >= 1);
  emx_engine *engine = NULL;
  assert_int_equal(emx_engine_create(&engine, &cfg), 0);
  assert_int_equal(emx_engine_device_count(engine), (size_t)cores);
  for (size_t d = 0; d < (size_t)cores; d++) {
    emx_device_info info;
    assert_int_equal(emx_engine_device_info(engine, d, &info), 0);
    char want[32];
    snprintf(want, sizeof(want), "cpu%zu", d);
    assert_string_equal(info.name, want);
    assert_string_equal(info.kind, "cpu");
    assert_int_equal(info.healthy, 1);
  }
  emx_engine_destroy(engine);

  /* A "cpu" spec without options is the same pool. */
  engine = engine_new("cpu", 0);
  assert_int_equal(emx_engine_device_count(engine), (size_t)cores);
  emx_engine_destroy(engine);
}

static void request_defaults(void **state) {
  (void)state;
  emx_request_desc desc;
  memset(&desc, 0x5A, sizeof(desc));
  emx_request_desc_init(&desc);
  assert_null(desc.model);
  assert_null(desc.inputs);
  assert_int_equal(desc.input_count, 0);
  assert_null(desc.outputs);
  assert_int_equal(desc.output_count, 0);
  assert_int_equal(desc.priority, EMX_PRIORITY_NORMAL);
  assert_int_equal(desc.deadline_ns, 0);
  assert_int_equal(desc.enqueue_timeout_ns, 0);
  assert_null(desc.stream);
  assert_null(desc.on_complete);
  assert_null(desc.user);

  /* emx_now_ns is CLOCK_MONOTONIC and moves forward. */
  int64_t a = emx_now_ns();
  int64_t b = emx_now_ns();
  assert_true(a > 0);
  assert_true(b >= a);
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(counts_and_latency), cmocka_unit_test(queue_depth),
      cmocka_unit_test(device_info),        cmocka_unit_test(default_config),
      cmocka_unit_test(request_defaults),
  };
  return cmocka_run_group_tests_name("stats", tests, NULL, NULL);
}
