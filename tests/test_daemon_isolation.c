/* test_daemon_isolation.c — a device whose driver aborts or hangs, behind
 * edgemuxd: only the request that was running fails (EMX_EDEVICE); the
 * daemon keeps serving, and the device comes back in a new child. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon_support.h"
#include "edgemux/client.h"
#include "support.h"

static int group_setup(void **state) {
  return private_lock_dirs();
}

/* run_through sends `n` requests through the daemon. Each fault (its
 * message naming `fault_word`) fails only the request that was running;
 * while the device restarts, requests fail fast saying no healthy device
 * can run the model; every other request succeeds with the right outputs.
 * Returns the faults; *ok counts the successes. */
static int run_through(const char *fault_word, int n, int *ok) {
  emx_client *c;
  assert_int_equal(emx_client_connect(&c, NULL), 0);
  emx_client_model *m;
  assert_int_equal(emx_client_model_open(c, "face_detection_short_range", &m),
                   0);
  emx_tensor in, out[2];
  assert_int_equal(emx_client_tensor_alloc_input(c, m, 0, &in), 0);
  assert_int_equal(emx_client_tensor_alloc_output(c, m, 0, &out[0]), 0);
  assert_int_equal(emx_client_tensor_alloc_output(c, m, 1, &out[1]), 0);
  fill_random_floats(in.data, in.size / 4, 3);

  /* Expected outputs from a direct interpreter on the same input. */
  emx_engine *e = engine_new("cpu:workers=1", 0);
  emx_model *em = model_load(e, "face", MODEL_FACE_SHORT);
  emx_tensor *want = tensors_outputs(em);
  oracle *o = oracle_create(MODEL_FACE_SHORT);
  oracle_run(o, &in, 1, want, 2);
  oracle_destroy(o);

  int faults = 0;
  *ok = 0;
  for (int i = 0; i < n; i++) {
    int rc = emx_client_infer(c, m, &in, 1, out, 2, NULL);
    if (rc == EMX_EDEVICE) {
      const char *msg = emx_client_last_error(c);
      /* The fault itself names its cause; while the child restarts, the
       * daemon says no healthy device can run the model. */
      assert_true(contains(msg, fault_word) ||
                  contains(msg, "no healthy device"));
      faults += contains(msg, fault_word);
      usleep(50000);
      continue;
    }
    assert_int_equal(rc, 0);
    assert_true(tensors_equal(out, want, 2));
    (*ok)++;
  }
  tensors_free(want, 2);
  emx_engine_destroy(e);
  emx_client_destroy(c);
  return faults;
}

static void abort_in_driver(void **state) {
  emxt_daemon d;
  const char *args[] = {"--device", "sim:0,isolate=1,abort_at=3", NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  /* Each new child aborts at its own 3rd invoke: 2 served per fault. */
  int ok = 0;
  int faults = run_through("signal 6", 12, &ok);
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
  const char *args[] = {"--device", "sim:0,isolate=1,hang_at=2,deadline_ms=300",
                        NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  int ok = 0;
  int faults = run_through("hung", 8, &ok);
  int stopped = emxt_daemon_stop(&d);
  assert_true(faults >= 1);
  assert_true(ok >= faults);
  assert_int_equal(stopped, 0);
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(abort_in_driver),
      cmocka_unit_test(hang_in_driver),
  };
  return cmocka_run_group_tests_name("daemon_isolation", tests, group_setup,
                                     NULL);
}
