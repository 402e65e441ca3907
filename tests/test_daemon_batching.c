/* test_daemon_batching.c — dynamic batching configured in a model's
 * config.json, through edgemuxd: a client's batch of four (one message)
 * runs as one invoke of four, and each request gets its own outputs,
 * bit-identical to a direct invoke. Bad settings are refused with a log
 * line naming the file, and the daemon serves on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon_support.h"
#include "edgemux/client.h"
#include "support.h"

#define B 4

static char repo[64];

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* add_model makes repo/<name>/ with a link to `model` and a config. */
static void add_model(const char *name, const char *model, const char *config) {
  assert_int_equal(emxt_repo_add(repo, name, model, config), 0);
}

static void remove_repo(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", repo);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", repo);
}

static void batch_from_config(void **state) {
  snprintf(repo, sizeof repo, "/tmp/emxt-batch-XXXXXX");
  assert_non_null(mkdtemp(repo));
  /* A long queue delay: the first request waits until all four are in,
   * so the batch is certain to form. */
  add_model("hand", MODEL_HAND_LITE,
            "{\"dynamic_batching\": {\"max_batch_size\": 4, "
            "\"preferred_batch_size\": [2, 4], "
            "\"max_queue_delay_us\": 5000000}}");
  add_model("toolarge", MODEL_HAND_LITE,
            "{\"dynamic_batching\": {\"max_batch_size\": 99}}");
  add_model("badpref", MODEL_HAND_LITE,
            "{\"dynamic_batching\": {\"max_batch_size\": 4, "
            "\"preferred_batch_size\": [8]}}");
  add_model("plain", MODEL_HAND_LITE, "{}");

  emxt_daemon d;
  const char *args[] = {"--device", "cpu:workers=1", "--models", repo, NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);

  emx_client *c;
  assert_int_equal(emx_client_connect(&c, NULL), 0);
  emx_client_model *m, *none;
  assert_int_equal(emx_client_model_open(c, "hand", &m), 0);
  assert_int_equal(emx_client_model_open(c, "plain", &none), 0);
  /* Refused at load, named in the log; the daemon goes on. */
  assert_int_equal(emx_client_model_open(c, "toolarge", &none), EMX_ENOENT);
  assert_int_equal(emx_client_model_open(c, "badpref", &none), EMX_ENOENT);
  assert_true(emxt_log_contains(&d, "toolarge/config.json: dynamic_batching"));
  assert_true(emxt_log_contains(&d, "at most max_batch"));

  size_t nout = emx_client_model_output_count(m);
  emx_tensor in[B], out[B][4];
  emx_client_batch_item items[B];
  for (int i = 0; i < B; i++) {
    assert_int_equal(emx_client_tensor_alloc_input(c, m, 0, &in[i]), 0);
    fill_random_floats(in[i].data, in[i].size / sizeof(float), 77 + i);
    for (size_t k = 0; k < nout; k++)
      assert_int_equal(emx_client_tensor_alloc_output(c, m, k, &out[i][k]), 0);
    items[i] = (emx_client_batch_item){m, &in[i], 1, out[i], nout};
  }
  emx_client_request *req[B];
  assert_int_equal(emx_client_submit_batch(c, items, B, NULL, req), 0);

  oracle *o = oracle_create(MODEL_HAND_LITE);
  emx_tensor want[4];
  for (size_t k = 0; k < nout; k++) {
    want[k] = out[0][k];
    want[k].data = malloc(out[0][k].size);
  }
  for (int i = 0; i < B; i++) {
    assert_int_equal(emx_client_request_wait(req[i], -1), 0);
    emx_timings t;
    emx_client_request_timings(req[i], &t);
    assert_int_equal(t.batch, B);
    oracle_run(o, &in[i], 1, want, nout);
    assert_true(tensors_equal(out[i], want, nout));
    emx_client_request_destroy(req[i]);
  }
  /* A model without dynamic_batching runs alone. */
  emx_timings t;
  emx_client_model *plain;
  assert_int_equal(emx_client_model_open(c, "plain", &plain), 0);
  assert_int_equal(emx_client_infer(c, plain, &in[0], 1, out[0], nout, &t), 0);
  assert_int_equal(t.batch, 1);

  /* An edited config.json of a loaded model: SIGHUP applies only the
   * timeout, and the log says so instead of seeming to take the edit. */
  char path[256];
  snprintf(path, sizeof path, "%s/hand/config.json", repo);
  write_text(path, "{\"dynamic_batching\": {\"max_batch_size\": 8}}");
  kill(d.pid, SIGHUP);
  assert_true(emxt_wait_log(&d, "hand/config.json changed", 2000));
  assert_int_equal(emx_client_infer(c, plain, &in[0], 1, out[0], nout, &t), 0);

  for (size_t k = 0; k < nout; k++)
    free(want[k].data);
  oracle_destroy(o);
  emx_client_destroy(c);
  assert_int_equal(emxt_daemon_stop(&d), 0);
  remove_repo();
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(batch_from_config),
  };
  return cmocka_run_group_tests_name("daemon_batching", tests, NULL, NULL);
}
