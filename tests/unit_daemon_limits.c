/*
 * unit_daemon_limits.c — edgemuxd's connection limits, as a client and an
 * attacker meet them.
 *
 *   incomplete_apart     connections that have not said hello count for
 *                        --max-incomplete-conns, not for the uid: silent
 *                        sockets cannot use up a user's
 *                        --max-conns-per-uid, and the silent ones past the
 *                        limit are refused with an ERROR naming it
 *   arena_budget_per_uid a uid's arenas together stay under
 *                        --max-arena-bytes-per-uid; the refused client's
 *                        error names the flag
 *   hello_pid_not_trusted a HELLO claiming another pid does not change the
 *                        pid the daemon logs (SO_PEERCRED's)
 *   socket_not_replaced  --socket naming a regular file: the daemon refuses
 *                        to start and the file is intact
 *   socket_mode          --socket-mode sets the socket file's mode
 *   names_validated      LOAD_BYTES with a newline or a space in the name
 *                        is refused (EMX_EINVAL), nothing forged in the log
 *   timeout_near_int64_max INFER with timeout_ns near INT64_MAX runs (the
 *                        saturating deadline; run it under ASan+UBSan too)
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/arena.h"
#include "core/sock.h"
#include "daemon_support.h"
#include "edgemux/client.h"
#include "wire/wire.h"

#define MIB ((size_t)1 << 20)

static int raw_connect(const char *path) {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  return fd;
}

/* connect_client: emx_client_connect with an arena; the error code. */
static int connect_client(const emxt_daemon *d, size_t arena,
                          emx_client **out) {
  emx_client_config cfg;
  emx_client_config_init(&cfg);
  cfg.socket_path = d->socket;
  cfg.arena_bytes = arena;
  *out = NULL;
  int rc = emx_client_connect(out, &cfg);
  if (rc < 0)
    fprintf(stderr, "connect: %s: %s\n", emx_err_name(rc),
            emx_client_last_error(NULL));
  return rc;
}

static void incomplete_apart(void **state) {
  (void)state;
  emxt_daemon d;
  const char *args[] = {"--device",
                        "cpu:workers=1",
                        "--max-conns-per-uid",
                        "2",
                        "--max-incomplete-conns",
                        "3",
                        "--handshake-timeout-ms",
                        "60000",
                        NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  /* Three silent sockets: the old daemon counted them for the uid and
   * refused the clients below. */
  int silent[3];
  for (int i = 0; i < 3; i++)
    silent[i] = raw_connect(d.socket);
  /* A round trip through a client would need a 4th incomplete slot;
   * ping only after the first client is in. The first client's socket is
   * the 4th incomplete one for a moment: refused, with the reason. */
  emx_client *a = NULL, *b = NULL, *c = NULL;
  assert_int_equal(connect_client(&d, 0, &a), EMX_EBUSY);
  assert_non_null(
      strstr(emx_client_last_error(NULL), "--max-incomplete-conns"));
  assert_true(emxt_log_contains(&d, "--max-incomplete-conns"));
  close(silent[2]);
  /* Slots: one incomplete free; the uid's 2 unused by the silent ones. */
  for (int i = 0; i < 200; i++) {
    if (connect_client(&d, 0, &a) == 0)
      break;
    usleep(10000);
  }
  assert_non_null(a);
  assert_int_equal(connect_client(&d, 0, &b), 0);
  assert_int_equal(emx_client_ping(b), 0);
  /* The uid's limit is still there, and says its name. */
  assert_int_equal(connect_client(&d, 0, &c), EMX_EBUSY);
  assert_non_null(strstr(emx_client_last_error(NULL), "--max-conns-per-uid"));
  close(silent[0]);
  close(silent[1]);
  emx_client_destroy(a);
  emx_client_destroy(b);
  assert_int_equal(emxt_daemon_stop(&d), 0);
}

static void arena_budget_per_uid(void **state) {
  (void)state;
  emxt_daemon d;
  const char *args[] = {"--device", "cpu:workers=1",
                        "--max-arena-bytes-per-uid", "12582912", /* 12 MiB */
                        NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  emx_client *a = NULL, *b = NULL, *c = NULL;
  assert_int_equal(connect_client(&d, 8 * MIB, &a), 0);
  assert_int_equal(connect_client(&d, 8 * MIB, &b), EMX_EBUSY);
  assert_non_null(
      strstr(emx_client_last_error(NULL), "--max-arena-bytes-per-uid"));
  assert_null(b);
  assert_int_equal(connect_client(&d, 2 * MIB, &c), 0);
  assert_int_equal(emx_client_ping(c), 0);
  /* A closed connection gives its bytes back. */
  emx_client_destroy(a);
  for (int i = 0; i < 200 && connect_client(&d, 8 * MIB, &b) < 0; i++)
    usleep(10000);
  assert_non_null(b);
  emx_client_destroy(b);
  emx_client_destroy(c);
  assert_int_equal(emxt_daemon_stop(&d), 0);
}

static void hello_pid_not_trusted(void **state) {
  (void)state;
  emxt_daemon d;
  const char *args[] = {"--device", "cpu:workers=1", "--log-level", "info",
                        NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  int fd = raw_connect(d.socket);
  uint64_t pkt[8];
  emx__wire_buf b;
  emx__wire_begin(&b, pkt, EMX_WIRE_HELLO, 0);
  emx__wire_hello h = {.proto = EMX_WIRE_VERSION, .pid = 424242};
  emx__wire_put(&b, &h, sizeof h);
  assert_true(emx__sock_send(fd, pkt, emx__wire_end(&b), -1, 0) > 0);
  struct pollfd p = {.fd = fd, .events = POLLIN};
  assert_int_equal(poll(&p, 1, 10000), 1);
  uint64_t rx[EMX_WIRE_MAX_MSG / 8];
  int fds[EMX__SOCK_MAX_FDS], nfds;
  assert_true(emx__sock_recv(fd, rx, sizeof rx, fds, &nfds, 0) > 0);
  close(fd);
  char want[64];
  snprintf(want, sizeof want, "hello from pid %d ", (int)getpid());
  for (int i = 0; i < 200 && !emxt_log_contains(&d, want); i++)
    usleep(10000);
  assert_true(emxt_log_contains(&d, want));
  assert_false(emxt_log_contains(&d, "pid 424242"));
  assert_int_equal(emxt_daemon_stop(&d), 0);
}

/* run_daemon: edgemuxd with args, to its exit (it must not stay up). */
static int run_daemon(const char *const *args) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    execv(args[0], (char *const *)args);
    _exit(127);
  }
  int st;
  for (int i = 0; i < 1000; i++) {
    if (waitpid(pid, &st, WNOHANG) == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    usleep(10000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return -1;
}

static void socket_not_replaced(void **state) {
  (void)state;
  char dir[] = "/tmp/emx-limits-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof path, "%s/precious.conf", dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("keep me\n", f);
  fclose(f);
  const char *args[] = {EMX_BIN_DIR "/edgemuxd", "--socket", path, "--device",
                        "cpu:workers=1",         NULL};
  int rc = run_daemon(args);
  assert_true(rc > 0 && rc < 128);
  char buf[32] = "";
  f = fopen(path, "r");
  assert_non_null(f); /* the old daemon unlinked it */
  assert_non_null(fgets(buf, sizeof buf, f));
  fclose(f);
  assert_string_equal(buf, "keep me\n");
  unlink(path);
  rmdir(dir);
}

static void socket_mode(void **state) {
  (void)state;
  emxt_daemon d;
  const char *args[] = {"--device", "cpu:workers=1", "--socket-mode", "0600",
                        NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  struct stat st;
  assert_int_equal(stat(d.socket, &st), 0);
  assert_true(S_ISSOCK(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(emxt_daemon_stop(&d), 0);
  /* A mode with execute bits or without owner access is refused. */
  const char *bad[] = {EMX_BIN_DIR "/edgemuxd", "--socket-mode", "0777", NULL};
  assert_int_equal(run_daemon(bad), 2);
}

/* A client's model name with a newline or a space is refused before
 * anything is loaded: it would forge log lines and STATUS fields. */
static void names_validated(void **state) {
  (void)state;
  emxt_daemon d;
  const char *args[] = {"--device", "cpu:workers=1", NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  emx_client *c = NULL;
  assert_int_equal(connect_client(&d, 4 * MIB, &c), 0);
  FILE *f = fopen(EMX_MODELS_DIR "/face_detection_short_range.tflite", "rb");
  static char bytes[1 << 20];
  size_t n = 0;
  if (f) {
    n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
  }
  if (n == 0) { /* any bytes do: the name is checked first */
    memset(bytes, 0, 1024);
    n = 1024;
  }
  emx_client_model *m = NULL;
  const char *bad[] = {"evil\n2026-01-01T00:00:00.000Z edgemux error: forged",
                       "two words", "tab\t"};
  for (size_t i = 0; i < 3; i++) {
    int rc = emx_client_model_load_bytes(c, bad[i], bytes, n, &m);
    fprintf(stderr, "load \"%s\": %s: %s\n", bad[i], emx_err_name(rc),
            emx_client_last_error(c));
    assert_int_equal(rc, EMX_EINVAL);
    assert_non_null(strstr(emx_client_last_error(c), "model name"));
  }
  assert_false(emxt_log_contains(&d, "forged"));
  assert_int_equal(emx_client_ping(c), 0);
  emx_client_destroy(c);
  assert_int_equal(emxt_daemon_stop(&d), 0);
}

/* INFER with timeout_ns near INT64_MAX: "now + timeout" saturates in
 * the client and the daemon (signed overflow before: a deadline in the
 * past, EMX_ETIMEDOUT at once; ASan+UBSan aborted the daemon). */
static void timeout_near_int64_max(void **state) {
  (void)state;
  emxt_daemon d;
  const char *args[] = {"--device", "cpu:workers=1", NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  emx_client *c = NULL;
  assert_int_equal(connect_client(&d, 4 * MIB, &c), 0);
  emx_client_model *m = NULL;
  assert_int_equal(emx_client_model_open(c, "face_detection_short_range", &m),
                   0);
  emx_tensor in, out[2];
  assert_int_equal(emx_client_tensor_alloc_input(c, m, 0, &in), 0);
  size_t nout = emx_client_model_output_count(m);
  assert_true(nout <= 2);
  for (size_t i = 0; i < nout; i++)
    assert_int_equal(emx_client_tensor_alloc_output(c, m, i, &out[i]), 0);
  const int64_t timeouts[] = {INT64_MAX, INT64_MAX - 1, INT64_MAX / 2 + 1};
  for (size_t k = 0; k < 3; k++) {
    emx_client_options o;
    emx_client_options_init(&o);
    o.timeout_ns = timeouts[k];
    emx_client_request *r = NULL;
    assert_int_equal(emx_client_submit(c, m, &in, 1, out, nout, &o, &r), 0);
    int rc = emx_client_request_wait(r, -1);
    if (rc < 0)
      fprintf(stderr, "timeout %lld: %s\n", (long long)timeouts[k],
              emx_err_name(rc));
    assert_int_equal(rc, 0);
    emx_client_request_destroy(r);
  }
  assert_int_equal(emx_client_ping(c), 0);
  emx_client_destroy(c);
  assert_int_equal(emxt_daemon_stop(&d), 0); /* alive, exits 0 */
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(incomplete_apart),
      cmocka_unit_test(arena_budget_per_uid),
      cmocka_unit_test(hello_pid_not_trusted),
      cmocka_unit_test(socket_not_replaced),
      cmocka_unit_test(socket_mode),
      cmocka_unit_test(names_validated),
      cmocka_unit_test(timeout_near_int64_max),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
