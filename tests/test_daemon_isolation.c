/* test_daemon_isolation.c — a device whose driver aborts or hangs, behind
 * edgemuxd: only the request that was running fails (EMX_EDEVICE); the
 * daemon keeps serving, and the device comes back in a new child. The
 * drivers: the sim backend's injected faults, and the stub libedgetpu's. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon_support.h"
#include "edgemux/client.h"
#include "support.h"

#ifndef EMX_STUB_EDGETPU
#error "EMX_STUB_EDGETPU must name the stub library"
#endif

static int group_setup(void **state) {
  /* The injected aborts would otherwise leave core files behind; the
   * daemon and its device processes inherit the limit. */
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  return private_lock_dirs();
}

/* run_through sends `n` requests of model `name` through the daemon. Each
 * fault (its message naming `fault_word`) fails only the request that was
 * running; while the device restarts, requests fail fast saying no healthy
 * device can run the model; every other request succeeds with the outputs
 * of oracle `o`, or, when `o` is NULL (the Edge TPU-compiled fixture on
 * the stub libedgetpu), the stub's function of the input. Returns the
 * faults; *ok counts the successes. */
static int run_through(const char *name, oracle *o, const char *fault_word,
                       int n, int *ok) {
  emx_client *c;
  assert_int_equal(emx_client_connect(&c, NULL), 0);
  emx_client_model *m;
  assert_int_equal(emx_client_model_open(c, name, &m), 0);
  size_t nout = emx_client_model_output_count(m);
  assert_true(nout >= 1 && nout <= 2);
  emx_tensor in, out[2], want[2];
  assert_int_equal(emx_client_tensor_alloc_input(c, m, 0, &in), 0);
  for (size_t i = 0; i < nout; i++) {
    assert_int_equal(emx_client_tensor_alloc_output(c, m, i, &out[i]), 0);
    want[i] = out[i];
    want[i].data = malloc(out[i].size);
    assert_non_null(want[i].data);
  }
  tensors_fill_random(&in, 1, 3);
  if (o)
    oracle_run(o, &in, 1, want, nout);
  else
    stub_edgetpu_expected(&in, 1, want, nout);

  int faults = 0;
  *ok = 0;
  for (int i = 0; i < n; i++) {
    int rc = emx_client_infer(c, m, &in, 1, out, nout, NULL);
    if (rc == EMX_EDEVICE) {
      const char *msg = emx_client_last_error(c);
      /* The fault itself names its cause; while the child restarts, the
       * daemon says no healthy device can run the model. */
      assert_true(contains(msg, fault_word) ||
                  contains(msg, "no healthy device"));
      faults += contains(msg, fault_word);
      /* Pacing, not a sync point: a request while the child restarts is
       * refused and counted above, either outcome is right. */
      usleep(50000);
      continue;
    }
    assert_int_equal(rc, 0);
    assert_true(tensors_equal(out, want, nout));
    (*ok)++;
  }
  for (size_t i = 0; i < nout; i++)
    free(want[i].data);
  emx_client_destroy(c);
  return faults;
}

static void abort_in_driver(void **state) {
  emxt_daemon d;
  const char *args[] = {"--device", "sim:0,isolate=1,abort_at=3", NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  /* Each new child aborts at its own 3rd invoke: 2 served per fault. */
  int ok = 0;
  oracle *o = oracle_create(MODEL_FACE_SHORT);
  int faults =
      run_through("face_detection_short_range", o, "signal 6", 12, &ok);
  oracle_destroy(o);
  int alive = kill(d.pid, 0) == 0;
  int stopped = emxt_daemon_stop(&d); /* before any assert can bail out */
  assert_true(faults >= 1);
  assert_true(ok >= 2 * faults);
  assert_true(alive);
  assert_true(emxt_log_contains(&d, "device sim0 failed"));
  assert_true(emxt_log_contains(&d, "device sim0 is back"));
  assert_int_equal(stopped, 0);
}

static void hang_in_driver(void **state) {
  emxt_daemon d;
  /* 300 ms is far above a healthy invoke natively; under emulation
   * (EMX_TEST_TIME_SCALE) healthy invokes took longer than that and were
   * killed as hung too (ok < faults on make check-arm64). */
  char spec[96];
  snprintf(spec, sizeof spec, "sim:0,isolate=1,hang_at=2,deadline_ms=%d",
           300 * emxt_time_scale());
  const char *args[] = {"--device", spec, NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  int ok = 0;
  oracle *o = oracle_create(MODEL_FACE_SHORT);
  int faults = run_through("face_detection_short_range", o, "hung", 8, &ok);
  oracle_destroy(o);
  int stopped = emxt_daemon_stop(&d);
  assert_true(faults >= 1);
  assert_true(ok >= faults);
  assert_int_equal(stopped, 0);
}

/* ---- the stub libedgetpu ---------------------------------------------------
 * Its delegate runs the edgetpu-custom-op node of every invoke of an Edge
 * TPU-compiled model and can abort or hang there
 * (tests/stub/edgetpu_stub.c). The daemon gets a repository of two models:
 * the compiled fixture (scripts/gen-fixtures) on the Edge TPU, and the hand
 * landmark model on a CPU worker for a bystander client that must be
 * served all along. */

typedef struct repo {
  char dir[64];       /* the repository */
  char files[6][160]; /* what to remove, in order */
  int count;          /* entries of files */
} repo;

static void repo_add(repo *r, const char *name, const char *model,
                     const char *devices) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", r->dir, name);
  assert_int_equal(mkdir(path, 0700), 0);
  char file[160];
  snprintf(file, sizeof file, "%s/model.tflite", path);
  assert_int_equal(symlink(model, file), 0);
  snprintf(r->files[r->count++], sizeof r->files[0], "%s", file);
  snprintf(file, sizeof file, "%s/config.json", path);
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  fprintf(f, "{\"model\": \"model.tflite\", \"devices\": \"%s\"}\n", devices);
  fclose(f);
  snprintf(r->files[r->count++], sizeof r->files[0], "%s", file);
  snprintf(r->files[r->count++], sizeof r->files[0], "%s", path);
}

static void repo_make(repo *r) {
  memset(r, 0, sizeof *r);
  snprintf(r->dir, sizeof r->dir, "/tmp/emxt-repo-XXXXXX");
  assert_non_null(mkdtemp(r->dir));
  repo_add(r, "edgetpu_classifier", MODEL_Q_EDGETPU, "edgetpu");
  repo_add(r, "hand_landmark_lite", MODEL_HAND_LITE, "cpu");
}

static void repo_remove(repo *r) {
  for (int i = 0; i < r->count; i++)
    remove(r->files[i]);
  if (r->dir[0])
    rmdir(r->dir);
  memset(r, 0, sizeof *r);
}

/* A bystander: its own client, the hand landmark model on the CPU worker,
 * requests back to back until told to stop. No cmocka off the main thread:
 * it counts, and the test asserts. */
typedef struct bystander {
  pthread_t thread;
  emx_tensor want[4]; /* expected outputs (the XNNPACK oracle) */
  size_t nout;        /* outputs of the model */
  atomic_int stop;    /* set by the test */
  bool running;       /* thread is to be joined */
  int served;         /* requests served with the right outputs */
  int failed;         /* 1: a request failed or had other outputs */
  char why[256];      /* what failed; the bystander stopped there */
} bystander;

static void *bystander_main(void *arg) {
  bystander *b = arg;
  emx_client *c = NULL;
  emx_client_model *m = NULL;
  emx_tensor in, out[4];
  int rc = emx_client_connect(&c, NULL);
  if (rc == 0)
    rc = emx_client_model_open(c, "hand_landmark_lite", &m);
  if (rc == 0)
    rc = emx_client_tensor_alloc_input(c, m, 0, &in);
  for (size_t i = 0; rc == 0 && i < b->nout; i++)
    rc = emx_client_tensor_alloc_output(c, m, i, &out[i]);
  if (rc == 0)
    fill_random_floats(in.data, in.size / 4, 11);
  while (rc == 0 && !atomic_load(&b->stop)) {
    rc = emx_client_infer(c, m, &in, 1, out, b->nout, NULL);
    if (rc == 0 && !tensors_equal(out, b->want, b->nout))
      rc = EMX_EINVAL;
    if (rc == 0)
      b->served++;
    usleep(2000); /* a steady background client, not a flood */
  }
  if (rc != 0) {
    b->failed = 1;
    snprintf(b->why, sizeof b->why, "%s: %s", emx_err_name(rc),
             c ? emx_client_last_error(c) : "cannot connect");
  }
  emx_client_destroy(c);
  return NULL;
}

static void bystander_start(bystander *b) {
  memset(b, 0, sizeof *b);
  emx_engine *e = engine_new("cpu:workers=1", 0);
  emx_model *em = model_load(e, "hand", MODEL_HAND_LITE);
  b->nout = emx_model_output_count(em);
  assert_true(b->nout <= 4);
  emx_tensor *in = tensors_inputs(em);
  fill_random_floats(in[0].data, in[0].size / 4, 11);
  emx_tensor *want = tensors_outputs(em);
  direct_run(MODEL_HAND_LITE, in, 1, want, b->nout);
  memcpy(b->want, want, b->nout * sizeof *want);
  free(want); /* the buffers now belong to b->want */
  tensors_free(in, 1);
  emx_engine_destroy(e);
  atomic_init(&b->stop, 0);
  assert_int_equal(pthread_create(&b->thread, NULL, bystander_main, b), 0);
  b->running = true;
}

static void bystander_stop(bystander *b) {
  if (!b->running)
    return;
  atomic_store(&b->stop, 1);
  pthread_join(b->thread, NULL);
  b->running = false;
  for (size_t i = 0; i < b->nout; i++)
    free(b->want[i].data);
}

/* What a stub_daemon test started, file-static so that its teardown can
 * stop it when an assertion bailed out first (cmocka leaves the test by
 * longjmp). */
static repo the_repo;
static emxt_daemon the_daemon;
static bystander the_bystander;

static int stub_daemon_teardown(void **state) {
  bystander_stop(&the_bystander);
  emxt_daemon_kill(&the_daemon); /* nothing when it was stopped */
  repo_remove(&the_repo);
  return 0;
}

/* stub_daemon runs the daemon on the repository above with the stub told
 * `var`=`at`, a client of the compiled model through it (`n` requests,
 * checked against the stub's documented function) and the
 * bystander, then checks that each fault named `fault_word`, at least
 * `ok_per_fault` requests were served per fault, and the bystander never
 * noticed. */
static void stub_daemon(const char *spec, const char *var, const char *at,
                        const char *fault_word, int n, int ok_per_fault) {
  repo *r = &the_repo;
  emxt_daemon *d = &the_daemon;
  bystander *b = &the_bystander;
  repo_make(r);
  setenv("EMX_STUB_EDGETPU_DEVICES", "usb:/daemon0", 1);
  setenv(var, at, 1);
  const char *args[] = {"--models", r->dir,          "--device", spec,
                        "--device", "cpu:workers=1", NULL};
  int started = emxt_daemon_start(d, args);
  unsetenv(var); /* the daemon has its own copy */
  assert_int_equal(started, 0);
  bystander_start(b);
  int ok = 0;
  int faults = run_through("edgetpu_classifier", NULL, fault_word, n, &ok);
  bystander_stop(b);
  int alive = kill(d->pid, 0) == 0;
  int stopped = emxt_daemon_stop(d);
  repo_remove(r);
  if (b->failed)
    print_error("the bystander failed: %s\n", b->why);
  assert_int_equal(b->failed, 0);
  assert_true(b->served > 0);
  assert_true(faults >= 1);
  assert_true(ok >= ok_per_fault * faults);
  assert_true(alive);
  assert_true(emxt_log_contains(d, "device edgetpu0 failed"));
  assert_true(emxt_log_contains(d, "device edgetpu0 is back"));
  assert_int_equal(stopped, 0);
}

/* Each device process aborts at its 3rd invoke: its warm-up, one request
 * served, then the abort. */
static void edgetpu_abort_in_driver(void **state) {
  stub_daemon("edgetpu:usb:0,lib=" EMX_STUB_EDGETPU,
              "EMX_STUB_EDGETPU_ABORT_AT", "3", "signal 6", 10, 1);
}

/* Each device process hangs at its 3rd invoke, until the deadline. */
static void edgetpu_hang_in_driver(void **state) {
  stub_daemon("edgetpu:usb:0,deadline_ms=300,lib=" EMX_STUB_EDGETPU,
              "EMX_STUB_EDGETPU_HANG_AT", "3", "hung", 8, 1);
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(abort_in_driver),
      cmocka_unit_test(hang_in_driver),
      cmocka_unit_test_teardown(edgetpu_abort_in_driver, stub_daemon_teardown),
      cmocka_unit_test_teardown(edgetpu_hang_in_driver, stub_daemon_teardown),
  };
  return cmocka_run_group_tests_name("daemon_isolation", tests, group_setup,
                                     NULL);
}
