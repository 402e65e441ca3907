/* test_daemon_fair.c — edgemuxd's --client-weight: two users flood one
 * simulated TPU with sched=fair; the user of weight 3 gets about three
 * completions for the other's one. Needs root (to run the second client
 * as another user); skipped otherwise. */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon_support.h"
#include "edgemux/client.h"
#include "support.h"

#define NOBODY 65534
#define WINDOW 16
#define MODEL "face_detection_short_range"

/* flooder: a child's connection with MODEL open, one input and WINDOW
 * sets of outputs in its arena. */
typedef struct flooder {
  emx_client *c;
  emx_client_model *m;
  size_t nout;
  emx_tensor in, outs[WINDOW][2];
} flooder;

/* flooder_open sets f up on `socket`; the child exits 2 on failure. */
static void flooder_open(flooder *f, const char *socket) {
  emx_client_config cfg;
  emx_client_config_init(&cfg);
  cfg.socket_path = socket;
  if (emx_client_connect(&f->c, &cfg) < 0 ||
      emx_client_model_open(f->c, MODEL, &f->m) < 0)
    _exit(2);
  f->nout = emx_client_model_output_count(f->m);
  if (f->nout > 2 || emx_client_tensor_alloc_input(f->c, f->m, 0, &f->in) < 0)
    _exit(2);
  for (int k = 0; k < WINDOW; k++)
    for (size_t i = 0; i < f->nout; i++)
      if (emx_client_tensor_alloc_output(f->c, f->m, i, &f->outs[k][i]) < 0)
        _exit(2);
}

/* flooder_submit submits the input with output set k. */
static int flooder_submit(flooder *f, int k, emx_client_request **r) {
  return emx_client_submit(f->c, f->m, &f->in, 1, f->outs[k], f->nout, NULL, r);
}

/* flood connects and allocates, says so with a byte on `ready`, keeps
 * WINDOW requests in flight for `seconds` once `go` is readable, then
 * writes how many completed to `out`; runs in a child. */
static void flood(const char *socket, int ready, int go, int out,
                  double seconds) {
  flooder f;
  flooder_open(&f, socket);
  char byte = 'r';
  if (write(ready, &byte, 1) != 1 || read(go, &byte, 1) < 0)
    _exit(2);
  emx_client_request *r[WINDOW];
  for (int k = 0; k < WINDOW; k++)
    if (flooder_submit(&f, k, &r[k]) < 0)
      _exit(2);
  long done = 0;
  int64_t end = emx_now_ns() + (int64_t)(seconds * 1e9);
  for (int k = 0;; k = (k + 1) % WINDOW) {
    if (emx_client_request_wait(r[k], -1) < 0)
      _exit(2);
    emx_client_request_destroy(r[k]);
    if (emx_now_ns() >= end)
      break;
    done++;
    if (flooder_submit(&f, k, &r[k]) < 0)
      _exit(2);
  }
  if (write(out, &done, sizeof done) != sizeof done)
    _exit(2);
  _exit(0); /* the daemon drops what is still in flight */
}

static emxt_daemon d; /* stopped by the teardown if an assertion bails */

static int stop_daemon(void **state) {
  if (d.pid)
    emxt_daemon_kill(&d);
  return 0;
}

static int group_setup(void **state) {
  return private_lock_dirs();
}

static void weights_share_the_device(void **state) {
  if (geteuid() != 0)
    skip(); /* a second user needs root */
  const char *args[] = {"--device",
                        "sim:96,outputs=none,compute_ms=2,fixed_us=0,"
                        "bandwidth_mbps=0,sched=fair",
                        "--allow-uid",
                        "65534",
                        "--client-weight",
                        "0:3",
                        NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  /* The other user must reach the socket in the test's private folder. */
  assert_int_equal(chmod(d.dir, 0711), 0);
  assert_int_equal(chmod(d.socket, 0666), 0);

  int go[2], ready[2], res[2][2];
  assert_int_equal(pipe(go), 0);
  assert_int_equal(pipe(ready), 0);
  pid_t pid[2];
  for (int i = 0; i < 2; i++) {
    assert_int_equal(pipe(res[i]), 0);
    pid[i] = fork();
    assert_true(pid[i] >= 0);
    if (pid[i] == 0) {
      close(go[1]);
      close(ready[0]);
      if (i == 1 && (setgid(NOBODY) < 0 || setuid(NOBODY) < 0))
        _exit(3);
      flood(d.socket, ready[1], go[0], res[i][1], 1.5);
    }
    close(res[i][1]);
  }
  close(go[0]);
  close(ready[1]);
  /* Both connected and their tensors allocated (a child that failed
   * closes its end: EOF, and the test fails here rather than later). */
  for (int i = 0; i < 2; i++) {
    char byte;
    assert_int_equal(read(ready[0], &byte, 1), 1);
  }
  close(ready[0]);
  close(go[1]); /* go */
  long done[2] = {0, 0};
  for (int i = 0; i < 2; i++) {
    assert_int_equal(read(res[i][0], &done[i], sizeof done[i]), sizeof done[i]);
    close(res[i][0]);
    int status;
    assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  double ratio = (double)done[0] / (double)(done[1] ? done[1] : 1);
  fprintf(stderr, "root (weight 3): %ld, nobody (weight 1): %ld, ratio %.2f\n",
          done[0], done[1], ratio);
  /* 3 with some slack: a few requests per client are in flight, queued or
   * waiting on the socket at any moment. */
  assert_true(ratio > 2.2 && ratio < 4.0);
  assert_int_equal(emxt_daemon_stop(&d), 0);
}

/* flood_busy keeps WINDOW requests in flight until `stop` is readable,
 * counting EMX_EBUSY refusals as well as completions (a flooder is
 * expected to be refused); says it is flooding with a byte on `ready`
 * after its first full window. Runs in a child. */
static void flood_busy(const char *socket, int ready, int stop) {
  flooder f;
  flooder_open(&f, socket);
  emx_client_request *r[WINDOW];
  for (int k = 0; k < WINDOW; k++)
    if (flooder_submit(&f, k, &r[k]) < 0)
      _exit(2);
  char byte = 'r';
  if (write(ready, &byte, 1) != 1)
    _exit(2);
  struct pollfd p = {.fd = stop, .events = POLLIN};
  for (int k = 0;; k = (k + 1) % WINDOW) {
    int rc = emx_client_request_wait(r[k], -1);
    if (rc < 0 && rc != EMX_EBUSY)
      _exit(2);
    emx_client_request_destroy(r[k]);
    if (poll(&p, 1, 0) != 0)
      break;
    if (flooder_submit(&f, k, &r[k]) < 0)
      _exit(2);
  }
  _exit(0);
}

/* Two flooders fill a sched=fair device's queue; a polite client (one
 * request at a time) is never refused EMX_EBUSY. Before, admission
 * ignored the scheduler: the queue was the flooders', and the polite
 * client's requests were refused (636 of 653 in the run). */
static void polite_client_admitted(void **state) {
  (void)state;
  const char *args[] = {"--device",
                        "sim:97,outputs=none,compute_ms=2,fixed_us=0,"
                        "bandwidth_mbps=0,sched=fair",
                        "--queue-capacity", "24", NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  int ready[2], stop[2];
  assert_int_equal(pipe(ready), 0);
  assert_int_equal(pipe(stop), 0);
  pid_t pid[2];
  for (int i = 0; i < 2; i++) {
    pid[i] = fork();
    assert_true(pid[i] >= 0);
    if (pid[i] == 0) {
      close(ready[0]);
      close(stop[1]);
      flood_busy(d.socket, ready[1], stop[0]);
    }
  }
  close(ready[1]);
  close(stop[0]);
  for (int i = 0; i < 2; i++) {
    char byte;
    assert_int_equal(read(ready[0], &byte, 1), 1);
  }
  close(ready[0]);

  emx_client_config cfg;
  emx_client_config_init(&cfg);
  cfg.socket_path = d.socket;
  emx_client *c;
  emx_client_model *m;
  assert_int_equal(emx_client_connect(&c, &cfg), 0);
  assert_int_equal(emx_client_model_open(c, MODEL, &m), 0);
  size_t nout = emx_client_model_output_count(m);
  emx_tensor in, outs[2];
  assert_int_equal(emx_client_tensor_alloc_input(c, m, 0, &in), 0);
  for (size_t i = 0; i < nout; i++)
    assert_int_equal(emx_client_tensor_alloc_output(c, m, i, &outs[i]), 0);
  int ok = 0, busy = 0;
  for (int i = 0; i < 40; i++) {
    int rc = emx_client_infer(c, m, &in, 1, outs, nout, NULL);
    if (rc == EMX_EBUSY)
      busy++;
    else if (rc == 0)
      ok++;
    else
      fail_msg("polite infer: %s: %s", emx_err_name(rc),
               emx_client_last_error(c));
  }
  fprintf(stderr, "polite client: %d ok, %d refused EMX_EBUSY\n", ok, busy);
  emx_client_destroy(c);
  close(stop[1]); /* stop the flooders */
  for (int i = 0; i < 2; i++) {
    int status;
    assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  assert_int_equal(busy, 0);
  assert_int_equal(ok, 40);
  assert_int_equal(emxt_daemon_stop(&d), 0);
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(weights_share_the_device, stop_daemon),
      cmocka_unit_test_teardown(polite_client_admitted, stop_daemon),
  };
  return cmocka_run_group_tests_name("daemon_fair", tests, group_setup, NULL);
}
