/* test_batching.c — dynamic batching on the CPU backend, with real models:
 * which requests share an invoke (emx_timings.batch), and that every
 * request's outputs are bit-identical to its own direct batch-1 invoke. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon_support.h"
#include "support.h"

#define MODEL_FACE_SPARSE                                                      \
  EMX_MODELS_DIR "/face_detection_full_range_sparse.tflite"
#define MAXREQ 8

typedef struct batch_run {
  emx_engine *e;
  emx_model *m;
  const char *path;
  size_t nin, nout;
  emx_tensor *in[MAXREQ], *out[MAXREQ];
  emx_request *req[MAXREQ];
} batch_run;

static void open_run(batch_run *r, const char *path, int max_batch,
                     const int *preferred, int64_t delay_ns) {
  memset(r, 0, sizeof *r);
  r->e = engine_new("cpu:workers=1", 64);
  emx_model_config mc;
  emx_model_config_init(&mc);
  mc.path = path;
  mc.max_batch = max_batch;
  for (int i = 0; preferred && preferred[i]; i++)
    mc.preferred_batch[i] = preferred[i];
  mc.batch_delay_ns = delay_ns;
  if (emx_model_load(r->e, "m", &mc, &r->m) < 0)
    fail_msg("load: %s", emx_engine_last_error(r->e));
  r->path = path;
  r->nin = emx_model_input_count(r->m);
  r->nout = emx_model_output_count(r->m);
}

static void submit_one(batch_run *r, int i) {
  r->in[i] = tensors_inputs(r->m);
  r->out[i] = tensors_outputs(r->m);
  tensors_fill_random(r->in[i], r->nin, 1000 + (uint64_t)i);
  emx_request_desc d;
  request_init(&d, r->m, r->in[i], r->out[i]);
  assert_int_equal(emx_submit(r->e, &d, &r->req[i]), 0);
}

/* finish waits for every request, checks its outputs against the oracle
 * (a direct batch-1 invoke of the same input) and its batch size. */
static void finish(batch_run *r, int n, const int *want_batch) {
  oracle *o = oracle_create(r->path);
  emx_tensor *want = tensors_outputs(r->m);
  for (int i = 0; i < n; i++) {
    assert_int_equal(emx_request_wait(r->req[i], -1), 0);
    emx_timings t;
    emx_request_timings(r->req[i], &t);
    if (t.batch != want_batch[i])
      fail_msg("request %d ran in a batch of %d, want %d", i, t.batch,
               want_batch[i]);
    oracle_run(o, r->in[i], r->nin, want, r->nout);
    if (!tensors_equal(r->out[i], want, r->nout))
      fail_msg("request %d: outputs differ from a direct invoke", i);
  }
  tensors_free(want, r->nout);
  oracle_destroy(o);
  for (int i = 0; i < n; i++) {
    emx_request_destroy(r->req[i]);
    tensors_free(r->in[i], r->nin);
    tensors_free(r->out[i], r->nout);
  }
  emx_engine_destroy(r->e);
}

/* Eight queued requests of hand_landmark_lite, max_batch 4: two invokes of
 * four, each request's outputs exactly its own. */
static void merges_queued_requests(void **state) {
  batch_run r;
  open_run(&r, MODEL_HAND_LITE, 4, NULL, 0);
  emx_engine_pause(r.e);
  for (int i = 0; i < 8; i++)
    submit_one(&r, i);
  emx_engine_resume(r.e);
  static const int want[8] = {4, 4, 4, 4, 4, 4, 4, 4};
  finish(&r, 8, want);
}

/* Preferred sizes 2 and 4: seven queued run as 4, then 2, then 1. */
static void uses_preferred_sizes(void **state) {
  static const int preferred[] = {2, 4, 0};
  batch_run r;
  open_run(&r, MODEL_HAND_LITE, 8, preferred, 0);
  emx_engine_pause(r.e);
  for (int i = 0; i < 7; i++)
    submit_one(&r, i);
  emx_engine_resume(r.e);
  static const int want[7] = {4, 4, 4, 4, 2, 2, 1};
  finish(&r, 7, want);
}

/* With a long batch delay the first request waits for the batch to fill:
 * four submitted one after another run as one batch, long before the
 * delay is over. */
static void delay_waits_for_a_full_batch(void **state) {
  batch_run r;
  open_run(&r, MODEL_HAND_LITE, 4, NULL, 9LL * 1000000000);
  int64_t t0 = emx_now_ns();
  for (int i = 0; i < 4; i++)
    submit_one(&r, i);
  assert_int_equal(emx_request_wait(r.req[3], 8LL * 1000000000), 0);
  assert_true(emx_now_ns() - t0 < 8LL * 1000000000);
  static const int want[4] = {4, 4, 4, 4};
  finish(&r, 4, want);
}

/* A lone request waits out the delay, then runs alone. */
static void delay_is_bounded(void **state) {
  batch_run r;
  open_run(&r, MODEL_HAND_LITE, 4, NULL, 100LL * 1000000);
  int64_t t0 = emx_now_ns();
  submit_one(&r, 0);
  assert_int_equal(emx_request_wait(r.req[0], -1), 0);
  int64_t took = emx_now_ns() - t0;
  assert_true(took >= 100LL * 1000000);
  assert_true(took < emxt_time_scale() * 5LL * 1000000000);
  static const int want[1] = {1};
  finish(&r, 1, want);
}

/* face_detection's graph fixes its batch at 1 (a reshape to [1, ...]); the
 * sparse variant even crashes TFLite 2.9 when resized (in a trial child,
 * not here). Both run their gathered requests back to back, exactly. */
static void unresizable_models_run_back_to_back(void **state) {
  const char *paths[2] = {MODEL_FACE_SHORT, MODEL_FACE_SPARSE};
  for (int k = 0; k < 2; k++) {
    batch_run r;
    open_run(&r, paths[k], 4, NULL, 0);
    emx_engine_pause(r.e);
    for (int i = 0; i < 4; i++)
      submit_one(&r, i);
    emx_engine_resume(r.e);
    static const int want[4] = {1, 1, 1, 1};
    finish(&r, 4, want);
  }
}

static void bad_configs_are_refused(void **state) {
  emx_engine *e = engine_new("cpu:workers=1", 0);
  struct {
    int max;
    int pref[3];
    int64_t delay;
    const char *why;
  } bad[] = {
      {EMX_MAX_BATCH + 1, {0}, 0, "max_batch"},
      {-1, {0}, 0, "max_batch"},
      {8, {4, 2, 0}, 0, "ascending"},
      {4, {8, 0}, 0, "at most max_batch"},
      {4, {1, 0}, 0, "above 1"},
      {4, {0}, -1, "batch_delay_ns"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    emx_model_config mc;
    emx_model_config_init(&mc);
    mc.path = MODEL_HAND_LITE;
    mc.max_batch = bad[i].max;
    memcpy(mc.preferred_batch, bad[i].pref, sizeof bad[i].pref);
    mc.batch_delay_ns = bad[i].delay;
    emx_model *m = NULL;
    assert_int_equal(emx_model_load(e, "m", &mc, &m), EMX_EINVAL);
    assert_null(m);
    if (!contains(emx_engine_last_error(e), bad[i].why))
      fail_msg("case %zu: %s", i, emx_engine_last_error(e));
  }
  emx_engine_destroy(e);
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(merges_queued_requests),
      cmocka_unit_test(uses_preferred_sizes),
      cmocka_unit_test(delay_waits_for_a_full_batch),
      cmocka_unit_test(delay_is_bounded),
      cmocka_unit_test(unresizable_models_run_back_to_back),
      cmocka_unit_test(bad_configs_are_refused),
  };
  return cmocka_run_group_tests_name("batching", tests, NULL, NULL);
}
