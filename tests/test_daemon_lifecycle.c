/* test_daemon_lifecycle.c — model life cycle under a hung device (issue
 * 11): an UNLOAD marks the model, cancels its queued requests and returns
 * at once, the release following when the last running request ends; a
 * LOAD that a hung device never takes fails with EMX_ETIMEDOUT after
 * --load-timeout-s instead of holding the admin thread (and every LOAD
 * behind it) forever; SIGTERM ends the daemon within --stop-timeout-s even
 * though the hung worker can never be joined; a repository model that
 * leaves and comes back keeps its id, so a client's handle keeps working.
 * Every wait is bounded: a regression fails, it does not hang the suite. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon_support.h"
#include "edgemux/client.h"
#include "support.h"

/* wait_log: the daemon's log gains `text` within 20 s. */
static int wait_log(const emxt_daemon *d, const char *text) {
  return emxt_wait_log(d, text, 20000);
}

static emx_client *connect_to(const char *socket) {
  emx_client_config cfg;
  emx_client_config_init(&cfg);
  cfg.socket_path = socket;
  cfg.arena_bytes = 16 << 20;
  emx_client *c = NULL;
  assert_int_equal(emx_client_connect(&c, &cfg), 0);
  return c;
}

/* ---- a client call with a deadline ---------------------------------------
 * call runs one LOAD or UNLOAD on its own connection in a thread and waits
 * up to limit_ms for it: -1000 when it did not answer in time (the thread
 * is left blocked; the daemon is killed at the end of the test, which
 * ends it with EMX_EDISCONNECTED). */
typedef struct call {
  const char *socket;
  const char *name;
  const void *bytes; /* LOAD these; NULL: UNLOAD name */
  size_t size;
  atomic_int done;
  int rc;
  char msg[512];
} call;

static void *call_main(void *arg) {
  call *k = arg;
  emx_client *c = connect_to(k->socket);
  emx_client_model *m;
  k->rc = k->bytes
              ? emx_client_model_load_bytes(c, k->name, k->bytes, k->size, &m)
              : emx_client_model_unload(c, k->name);
  snprintf(k->msg, sizeof k->msg, "%s", emx_client_last_error(c));
  emx_client_destroy(c);
  atomic_store(&k->done, 1);
  return NULL;
}

static int call_within(call *k, int limit_ms, int64_t *took_ns) {
  pthread_t t;
  atomic_init(&k->done, 0);
  int64_t t0 = emx_now_ns();
  assert_int_equal(pthread_create(&t, NULL, call_main, k), 0);
  for (int i = 0; i < limit_ms && !atomic_load(&k->done); i++)
    emxt_sleep_ms(1);
  if (took_ns)
    *took_ns = emx_now_ns() - t0;
  if (!atomic_load(&k->done)) {
    pthread_detach(t);
    return -1000;
  }
  pthread_join(t, NULL);
  return k->rc;
}

/* padded: the face model with `pad` zero bytes after the flatbuffer:
 * TFLite ignores them, the hash does not, so each is a new model. */
static uint8_t *padded(size_t pad, size_t *size) {
  size_t n;
  uint8_t *face = read_file(MODEL_FACE_SHORT, &n);
  uint8_t *p = calloc(1, n + pad);
  memcpy(p, face, n);
  free(face);
  *size = n + pad;
  return p;
}

/* lock_dir: a folder of this test's own for the sim devices' locks (other
 * test programs may run sims at the same time). */
static const char *lock_dir(void) {
  static char dir[64];
  if (!dir[0]) {
    snprintf(dir, sizeof dir, "/tmp/emxt-simlock-XXXXXX");
    assert_non_null(mkdtemp(dir));
    remove_at_exit(dir);
  }
  return dir;
}

/* current: the test's daemon, killed by teardown if an assertion left it
 * running. */
static emxt_daemon *current;

static int teardown(void **state) {
  if (current && current->pid > 0)
    emxt_daemon_kill(current);
  current = NULL;
  return 0;
}

/* With a slow device running one request of "mine" and another queued:
 * UNLOAD answers at once (it used to wait for both to run) and the queued
 * one is cancelled before the running one ends, which completes. */
static void unload_cancels_queued(void **state) {
  char spec[160];
  snprintf(spec, sizeof spec, "sim:0,compute_ms=1500,lock_dir=%s", lock_dir());
  static emxt_daemon d;
  const char *args[] = {"--device", spec, NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  current = &d;
  emx_client *c = connect_to(d.socket);
  size_t size;
  uint8_t *mine = padded(8, &size);
  emx_client_model *m;
  assert_int_equal(emx_client_model_load_bytes(c, "mine", mine, size, &m), 0);
  emx_tensor in, out[2];
  assert_int_equal(emx_client_tensor_alloc_input(c, m, 0, &in), 0);
  for (size_t i = 0; i < 2; i++)
    assert_int_equal(emx_client_tensor_alloc_output(c, m, i, &out[i]), 0);
  emx_client_request *running, *queued;
  int64_t t0 = emx_now_ns();
  assert_int_equal(emx_client_submit(c, m, &in, 1, out, 2, NULL, &running), 0);
  assert_int_equal(emx_client_submit(c, m, &in, 1, out, 2, NULL, &queued), 0);
  assert_int_equal(emx_client_ping(c), 0);
  call un = {.socket = d.socket, .name = "mine"};
  int64_t took;
  int rc = call_within(&un, 10000, &took);
  fprintf(stderr,
          "UNLOAD with a request running and one queued: %s in "
          "%.1f ms\n",
          rc == -1000 ? "no answer" : emx_err_name(rc), took / 1e6);
  assert_int_equal(rc, 0);
  assert_true(took < 1000 * 1000000LL);
  rc = emx_client_request_wait(queued, 10000 * 1000000LL);
  int64_t queued_at = emx_now_ns() - t0;
  assert_int_equal(emx_client_request_wait(running, 10000 * 1000000LL), 0);
  int64_t running_at = emx_now_ns() - t0;
  fprintf(stderr, "queued: %s at %.0f ms; running: ok at %.0f ms\n",
          emx_err_name(rc), queued_at / 1e6, running_at / 1e6);
  /* Cancelled, never run (cancels complete on the device's worker, so no
   * sooner than the running one ends). */
  assert_int_equal(rc, EMX_ECANCELED);
  assert_true(wait_log(&d, "model \"mine\" unloaded"));
  emx_client_request_destroy(running);
  emx_client_request_destroy(queued);
  emx_client_destroy(c);
  free(mine);
  assert_int_equal(emxt_daemon_stop(&d), 0);
}

/* stop_within sends SIGTERM and returns the exit status, failing the test
 * if the daemon is still there after limit_ms. */
static int stop_within(emxt_daemon *d, int limit_ms) {
  assert_int_equal(kill(d->pid, SIGTERM), 0);
  int status = 0;
  for (int i = 0; i < limit_ms / 10; i++) {
    pid_t p = waitpid(d->pid, &status, WNOHANG);
    assert_true(p >= 0);
    if (p == d->pid) {
      d->pid = 0;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    emxt_sleep_ms(10);
  }
  fprintf(stderr, "the daemon outlived SIGTERM by %d ms\n", limit_ms);
  emxt_daemon_kill(d);
  fail();
  return -1;
}

/* With the only device hung in a request of model "mine" and a second
 * request queued behind it: UNLOAD answers at once and cancels the queued
 * one (it used to wait on the admin thread for both, forever); a LOAD the
 * hung worker cannot take fails with EMX_ETIMEDOUT after --load-timeout-s
 * (it used to wait forever, and every LOAD and UNLOAD after it too); the
 * I/O thread answers PING throughout; SIGTERM ends the daemon within
 * --stop-timeout-s (it used to hang on the hung worker forever). */
static void hung_device_never_wedges(void **state) {
  char spec[160];
  snprintf(spec, sizeof spec, "sim:0,hang_at=1,lock_dir=%s", lock_dir());
  static emxt_daemon d;
  const char *args[] = {"--device",
                        spec,
                        "--load-timeout-s",
                        "1",
                        "--stop-timeout-s",
                        "3",
                        "--log-level",
                        "info",
                        NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  current = &d;
  emx_client *c = connect_to(d.socket);
  size_t size;
  uint8_t *mine = padded(16, &size);
  emx_client_model *m;
  int rc = emx_client_model_load_bytes(c, "mine", mine, size, &m);
  if (rc != 0)
    fprintf(stderr, "load: %s\n", emx_client_last_error(c));
  assert_int_equal(rc, 0);
  emx_tensor in, out[2];
  assert_int_equal(emx_client_tensor_alloc_input(c, m, 0, &in), 0);
  for (size_t i = 0; i < 2; i++)
    assert_int_equal(emx_client_tensor_alloc_output(c, m, i, &out[i]), 0);
  emx_client_request *hung, *queued;
  assert_int_equal(emx_client_submit(c, m, &in, 1, out, 2, NULL, &hung), 0);
  assert_int_equal(emx_client_submit(c, m, &in, 1, out, 2, NULL, &queued), 0);
  assert_int_equal(emx_client_ping(c), 0); /* the daemon has both */
  assert_int_equal(emx_client_request_wait(hung, 50 * 1000000LL), EMX_EAGAIN);

  call un = {.socket = d.socket, .name = "mine"};
  int64_t took;
  rc = call_within(&un, 5000, &took);
  fprintf(stderr, "UNLOAD with a request hung on the device: %s in %.1f ms\n",
          rc == -1000 ? "no answer" : emx_err_name(rc), took / 1e6);
  assert_int_equal(rc, 0);
  /* The queued request was cancelled, but cancels complete on the
   * device's worker, and that one is hung: it stays pending. */
  assert_int_equal(emx_client_request_poll(hung), EMX_EAGAIN);
  assert_int_equal(emx_client_ping(c), 0);

  /* Two LOADs in a row: each ends after --load-timeout-s; the second
   * proves the first did not keep the admin thread. */
  for (int i = 0; i < 2; i++) {
    size_t osize;
    uint8_t *other = padded(32 + (size_t)i * 16, &osize);
    call ld = {.socket = d.socket,
               .name = i ? "third" : "other",
               .bytes = other,
               .size = osize};
    rc = call_within(&ld, 10000, &took);
    fprintf(stderr, "LOAD %d while the device hangs: %s in %.0f ms: %s\n", i,
            rc == -1000 ? "no answer" : emx_err_name(rc), took / 1e6, ld.msg);
    assert_int_equal(rc, EMX_ETIMEDOUT);
    assert_true(contains(ld.msg, "hung"));
    assert_true(took < 8000 * 1000000LL);
    if (rc != -1000)
      free(other); /* else the blocked thread still reads it */
    emx_client *p = connect_to(d.socket);
    assert_int_equal(emx_client_ping(p), 0);
    emx_client_destroy(p);
  }

  int64_t t0 = emx_now_ns();
  int status = stop_within(&d, 8000);
  fprintf(stderr, "SIGTERM with a hung device: exit %d after %.0f ms\n", status,
          (emx_now_ns() - t0) / 1e6);
  assert_int_not_equal(status, 0); /* the watchdog's exit, not a clean one */
  assert_true(emxt_log_contains(&d, "--stop-timeout-s"));
  emx_client_request_destroy(hung);
  emx_client_request_destroy(queued);
  emx_client_destroy(c);
  free(mine);
}

/* A SIGHUP whose rescan unloads a model with a request hung on the device
 * finishes the rescan at once (it used to wait for the request, forever):
 * a LOAD posted after the SIGHUP, which the admin thread runs after the
 * rescan, is answered. */
static void sighup_unload_never_waits(void **state) {
  char repo[64], dir[128], away[160];
  assert_int_equal(emxt_repo_with(repo, "face", MODEL_FACE_SHORT), 0);
  snprintf(dir, sizeof dir, "%s/face", repo);
  char spec[160];
  snprintf(spec, sizeof spec, "sim:0,hang_at=1,lock_dir=%s", lock_dir());
  static emxt_daemon d;
  const char *args[] = {"--device",
                        spec,
                        "--models",
                        repo,
                        "--load-timeout-s",
                        "1",
                        "--stop-timeout-s",
                        "2",
                        "--log-level",
                        "info",
                        NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  current = &d;
  emx_client *c = connect_to(d.socket);
  emx_client_model *m;
  assert_int_equal(emx_client_model_open(c, "face", &m), 0);
  emx_tensor in, out[2];
  assert_int_equal(emx_client_tensor_alloc_input(c, m, 0, &in), 0);
  for (size_t i = 0; i < 2; i++)
    assert_int_equal(emx_client_tensor_alloc_output(c, m, i, &out[i]), 0);
  emx_client_request *hung;
  assert_int_equal(emx_client_submit(c, m, &in, 1, out, 2, NULL, &hung), 0);
  assert_int_equal(emx_client_ping(c), 0);
  /* The request must be running (hung), not still queued: a queued one
   * is cancelled by the unload and the device never hangs. The device's
   * queue empties when its worker takes the request. */
  bool running = false;
  for (int i = 0; i < 2000 && !running; i++) {
    char *text = NULL;
    assert_int_equal(emx_client_status(c, &text), 0);
    const char *line = strstr(text, "device sim0 ");
    const char *end = line ? strchr(line, '\n') : NULL;
    const char *q = line ? strstr(line, " queue=0 ") : NULL;
    running = q && (!end || q < end);
    free(text);
    if (!running)
      usleep(10000);
  }
  assert_true(running);

  snprintf(away, sizeof away, "%s/.face-away", repo);
  assert_int_equal(rename(dir, away), 0);
  assert_int_equal(kill(d.pid, SIGHUP), 0);
  assert_true(wait_log(&d, "model \"face\" unloaded"));
  /* A LOAD queued behind the rescan on the admin thread is answered
   * (EMX_ETIMEDOUT after --load-timeout-s: the hung worker cannot take
   * it), so the rescan did not wait for the hung request. */
  size_t size;
  uint8_t *face = read_file(MODEL_FACE_SHORT, &size);
  call ld = {.socket = d.socket, .name = "again", .bytes = face, .size = size};
  int64_t took;
  int rc = call_within(&ld, 5000, &took);
  fprintf(stderr, "LOAD after a SIGHUP unload: %s in %.1f ms: %s\n",
          rc == -1000 ? "no answer" : emx_err_name(rc), took / 1e6, ld.msg);
  assert_int_equal(rc, EMX_ETIMEDOUT);
  assert_int_equal(emx_client_ping(c), 0);
  assert_true(stop_within(&d, 6000) != 0);
  if (rc != -1000)
    free(face);
  emx_client_request_destroy(hung);
  emx_client_destroy(c);
}

/* A repository model whose folder leaves and comes back (two SIGHUPs)
 * keeps its id: a client's handle from before keeps working. It used to
 * get a new id, and the old handle EMX_ENOENT forever. */
static void model_comes_back_keeps_id(void **state) {
  char repo[64], dir[128], away[160];
  assert_int_equal(emxt_repo_with(repo, "face", MODEL_FACE_SHORT), 0);
  snprintf(dir, sizeof dir, "%s/face", repo);
  static emxt_daemon d;
  const char *args[] = {"--device",    "cpu",  "--models", repo,
                        "--log-level", "info", NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  current = &d;
  emx_client *c = connect_to(d.socket);
  emx_client_model *m;
  assert_int_equal(emx_client_model_open(c, "face", &m), 0);
  emx_tensor in, out[2];
  assert_int_equal(emx_client_tensor_alloc_input(c, m, 0, &in), 0);
  for (size_t i = 0; i < 2; i++)
    assert_int_equal(emx_client_tensor_alloc_output(c, m, i, &out[i]), 0);
  assert_int_equal(emx_client_infer(c, m, &in, 1, out, 2, NULL), 0);

  snprintf(away, sizeof away, "%s/.face-away", repo);
  assert_int_equal(rename(dir, away), 0);
  assert_int_equal(kill(d.pid, SIGHUP), 0);
  assert_true(wait_log(&d, "model \"face\" unloaded"));
  assert_int_equal(emx_client_infer(c, m, &in, 1, out, 2, NULL), EMX_ENOENT);
  assert_int_equal(rename(away, dir), 0);
  assert_int_equal(kill(d.pid, SIGHUP), 0);
  /* Ready: the second "loaded" line for face. */
  for (int i = 0; i < 2000; i++) {
    FILE *f = fopen(d.log, "r");
    char line[1024];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
      n += strstr(line, "model \"face\" loaded") != NULL;
    if (f)
      fclose(f);
    if (n >= 2)
      break;
    emxt_sleep_ms(10);
  }
  int rc = emx_client_infer(c, m, &in, 1, out, 2, NULL);
  if (rc != 0)
    fprintf(stderr, "infer on the old handle: %s: %s\n", emx_err_name(rc),
            emx_client_last_error(c));
  assert_int_equal(rc, 0);
  emx_client_destroy(c);
  assert_int_equal(emxt_daemon_stop(&d), 0);
}

/* A client's name meets a repository model added later under the same
 * name: the repository wins (its model is "face"), and the client's model
 * keeps its id and bytes under its hash name "model-<16 hex>". Before
 * issue 11 the client's name shadowed the repository's model. */
static void repository_name_wins(void **state) {
  char repo[64];
  assert_int_equal(emxt_repo_with(repo, NULL, NULL), 0);
  static emxt_daemon d;
  const char *args[] = {"--device",    "cpu",  "--models", repo,
                        "--log-level", "info", NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  current = &d;
  emx_client *c = connect_to(d.socket);
  size_t size;
  void *hand = read_file(MODEL_HAND_LITE, &size);
  emx_client_model *mine;
  assert_int_equal(emx_client_model_load_bytes(c, "face", hand, size, &mine),
                   0);
  assert_int_equal(emx_client_model_output_count(mine), 4);
  assert_int_equal(emxt_repo_add(repo, "face", MODEL_FACE_SHORT, NULL), 0);
  assert_int_equal(kill(d.pid, SIGHUP), 0);
  /* Ready: the rescan's report (the client's LOAD logged "loaded" too). */
  assert_true(wait_log(&d, "was a client's name for other bytes"));
  assert_true(wait_log(&d, "model \"face\" loaded from /"));
  emx_client_model *face;
  assert_int_equal(emx_client_model_open(c, "face", &face), 0);
  assert_int_equal(emx_client_model_output_count(face), 2);
  char hex[65], name[64];
  FILE *p = popen("sha256sum " MODEL_HAND_LITE, "r");
  assert_non_null(p);
  assert_int_equal(fscanf(p, "%64s", hex), 1);
  pclose(p);
  snprintf(name, sizeof name, "model-%.16s", hex);
  emx_client_model *renamed;
  assert_int_equal(emx_client_model_open(c, name, &renamed), 0);
  assert_int_equal(emx_client_model_output_count(renamed), 4);
  /* The client's handle from before still reaches its own model. */
  emx_tensor in, out[4];
  assert_int_equal(emx_client_tensor_alloc_input(c, mine, 0, &in), 0);
  for (size_t i = 0; i < 4; i++)
    assert_int_equal(emx_client_tensor_alloc_output(c, mine, i, &out[i]), 0);
  assert_int_equal(emx_client_infer(c, mine, &in, 1, out, 4, NULL), 0);
  free(hand);
  emx_client_destroy(c);
  assert_int_equal(emxt_daemon_stop(&d), 0);
}

/* --model-idle-s: a client's model nobody uses for that long is unloaded
 * (by the admin thread's sweep); one in use stays. */
static void idle_client_model_unloaded(void **state) {
  static emxt_daemon d;
  const char *args[] = {"--device", "cpu", "--model-idle-s", "1", "--log-level",
                        "info",     NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  current = &d;
  emx_client *c = connect_to(d.socket);
  size_t sa, sb;
  uint8_t *a = padded(8, &sa), *b = padded(24, &sb);
  emx_client_model *idle, *busy;
  assert_int_equal(emx_client_model_load_bytes(c, "idle", a, sa, &idle), 0);
  assert_int_equal(emx_client_model_load_bytes(c, "busy", b, sb, &busy), 0);
  emx_tensor in, out[2];
  assert_int_equal(emx_client_tensor_alloc_input(c, busy, 0, &in), 0);
  for (size_t i = 0; i < 2; i++)
    assert_int_equal(emx_client_tensor_alloc_output(c, busy, i, &out[i]), 0);
  /* "busy" is used every 200 ms (the pace is the point: well inside its
   * idle limit) until the log says "idle" went; 20 s hang guard. */
  int64_t t0 = emx_now_ns();
  while (!emxt_log_contains(&d, "model \"idle\": unused") &&
         emx_now_ns() - t0 < 20 * 1000000000LL * emxt_time_scale()) {
    assert_int_equal(emx_client_infer(c, busy, &in, 1, out, 2, NULL), 0);
    emxt_sleep_ms(200);
  }
  assert_true(emxt_log_contains(&d, "model \"idle\": unused"));
  emx_client_model *again;
  assert_int_equal(emx_client_model_open(c, "idle", &again), EMX_ENOENT);
  assert_int_equal(emx_client_infer(c, busy, &in, 1, out, 2, NULL), 0);
  assert_false(emxt_log_contains(&d, "model \"busy\": unused"));
  free(a);
  free(b);
  emx_client_destroy(c);
  assert_int_equal(emxt_daemon_stop(&d), 0);
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(unload_cancels_queued, teardown),
      cmocka_unit_test_teardown(hung_device_never_wedges, teardown),
      cmocka_unit_test_teardown(sighup_unload_never_waits, teardown),
      cmocka_unit_test_teardown(model_comes_back_keeps_id, teardown),
      cmocka_unit_test_teardown(repository_name_wins, teardown),
      cmocka_unit_test_teardown(idle_client_model_unloaded, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
