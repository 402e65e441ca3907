/* test_seed_failure.c — the failure edgemux exists for, and its remedy.
 *
 * N processes each open the (simulated) Edge TPU themselves: one wins, all
 * the others fail with "device busy", as with a real TPU held by another
 * process. The same N processes through edgemuxd, which owns the device:
 * every one of them gets correct results. */
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

#define PROCESSES 6
#define REQUESTS 20

static int group_setup(void **state) {
  return private_lock_dirs();
}

/* Each child opens sim:0 itself and reports its status; all hold their
 * engines until the parent has heard from everyone, so exactly one can
 * own the device. */
static void direct_open_fails_for_all_but_one(void **state) {
  int results[2], release[2];
  assert_int_equal(pipe(results), 0);
  assert_int_equal(pipe(release), 0);
  pid_t pids[PROCESSES];
  for (int i = 0; i < PROCESSES; i++) {
    pids[i] = fork();
    assert_true(pids[i] >= 0);
    if (pids[i] == 0) {
      close(results[0]);
      close(release[1]);
      const char *devices[] = {"sim:0"};
      emx_engine_config cfg;
      emx_engine_config_init(&cfg);
      cfg.devices = devices;
      cfg.device_count = 1;
      emx_engine *e = NULL;
      int rc = emx_engine_create(&e, &cfg);
      char line[600];
      int n = snprintf(line, sizeof line, "%d %s\n", rc,
                       rc ? emx_engine_last_error(NULL) : "ok");
      if (write(results[1], line, (size_t)n) < 0)
        _exit(2);
      char c;
      if (read(release[0], &c, 1) < 0) /* hold until released */
        _exit(2);
      emx_engine_destroy(e);
      _exit(0);
    }
  }
  close(results[1]);
  close(release[0]);
  FILE *f = fdopen(results[0], "r");
  int ok = 0, busy = 0;
  char line[600];
  for (int i = 0; i < PROCESSES && fgets(line, sizeof line, f); i++) {
    int rc = atoi(line);
    if (rc == 0)
      ok++;
    else if (rc == EMX_EBUSY && contains(line, "device busy"))
      busy++;
  }
  fclose(f);
  close(release[1]); /* EOF releases every child */
  for (int i = 0; i < PROCESSES; i++) {
    int status;
    waitpid(pids[i], &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  assert_int_equal(ok, 1);
  assert_int_equal(busy, PROCESSES - 1);
}

/* child_through_daemon: REQUESTS infers through edgemuxd; returns the
 * number of wrong or failed ones (the exit code). */
static int child_through_daemon(const emx_tensor *expect_out, uint64_t seed) {
  emx_client *c;
  if (emx_client_connect(&c, NULL) < 0)
    return 100;
  emx_client_model *m;
  if (emx_client_model_open(c, "face_detection_short_range", &m) < 0)
    return 101;
  emx_tensor in, out[2];
  if (emx_client_tensor_alloc_input(c, m, 0, &in) < 0 ||
      emx_client_tensor_alloc_output(c, m, 0, &out[0]) < 0 ||
      emx_client_tensor_alloc_output(c, m, 1, &out[1]) < 0)
    return 102;
  fill_random_floats(in.data, in.size / 4, seed);
  int bad = 0;
  for (int i = 0; i < REQUESTS; i++) {
    if (emx_client_infer(c, m, &in, 1, out, 2, NULL) != 0 ||
        memcmp(out[0].data, expect_out[0].data, out[0].size) != 0 ||
        memcmp(out[1].data, expect_out[1].data, out[1].size) != 0)
      bad++;
  }
  emx_client_destroy(c);
  return bad;
}

static void through_edgemuxd_all_succeed(void **state) {
  emxt_daemon d;
  const char *args[] = {"--device", "sim:0", NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);

  /* Expected outputs, per child seed, from a direct interpreter. */
  emx_engine *e = engine_new("cpu:workers=1", 0);
  emx_model *m = model_load(e, "face", MODEL_FACE_SHORT);
  emx_tensor *expect[PROCESSES];
  oracle *o = oracle_create(MODEL_FACE_SHORT);
  for (int i = 0; i < PROCESSES; i++) {
    emx_tensor *in = tensors_inputs(m);
    fill_random_floats(in[0].data, in[0].size / 4, (uint64_t)i + 1);
    expect[i] = tensors_outputs(m);
    oracle_run(o, in, 1, expect[i], 2);
    tensors_free(in, 1);
  }
  oracle_destroy(o);

  pid_t pids[PROCESSES];
  for (int i = 0; i < PROCESSES; i++) {
    pids[i] = fork();
    assert_true(pids[i] >= 0);
    if (pids[i] == 0)
      _exit(child_through_daemon(expect[i], (uint64_t)i + 1));
  }
  for (int i = 0; i < PROCESSES; i++) {
    int status;
    waitpid(pids[i], &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
  }
  for (int i = 0; i < PROCESSES; i++)
    tensors_free(expect[i], 2);
  emx_engine_destroy(e);
  assert_int_equal(emxt_daemon_stop(&d), 0);
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(direct_open_fails_for_all_but_one),
      cmocka_unit_test(through_edgemuxd_all_succeed),
  };
  return cmocka_run_group_tests_name("seed_failure", tests, group_setup, NULL);
}
