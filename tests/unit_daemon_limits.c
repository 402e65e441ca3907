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
 *   model_fd_not_regular LOAD_BYTES carrying a pipe, a socket or a FIFO
 *                        instead of a memfd is refused with an error that
 *                        says what it got; nothing blocks, the connection
 *                        and the daemon serve on
 */
#include <errno.h>
#include <fcntl.h>
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
#include "support.h"
#include "wire/wire.h"

#define MIB ((size_t)1 << 20)

static int raw_connect(const char *path) {
  int fd = emxt_raw_connect(path);
  assert_true(fd >= 0);
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

/* refused: a connection over a limit gets EMX_EBUSY and an error naming
 * the limit's flag (not a bare "Broken pipe"), and no client. */
static void refused(const emxt_daemon *d, size_t arena, const char *flag) {
  emx_client *c = NULL;
  assert_int_equal(connect_client(d, arena, &c), EMX_EBUSY);
  assert_non_null(strstr(emx_client_last_error(NULL), flag));
  assert_null(c);
}

/* connect_once_freed: a connection that succeeds once the daemon has seen
 * a close free its slot (it notices asynchronously); a hang guard of 2 s
 * (x EMX_TEST_TIME_SCALE). */
static emx_client *connect_once_freed(const emxt_daemon *d, size_t arena) {
  emx_client *c = NULL;
  int64_t until = emx_now_ns() + 2000000000LL * emxt_time_scale();
  while (connect_client(d, arena, &c) < 0 && emx_now_ns() < until)
    usleep(10000);
  assert_non_null(c);
  return c;
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
  emx_client *b = NULL;
  refused(&d, 0, "--max-incomplete-conns");
  assert_true(emxt_log_contains(&d, "--max-incomplete-conns"));
  close(silent[2]);
  /* Slots: one incomplete free; the uid's 2 unused by the silent ones. */
  emx_client *a = connect_once_freed(&d, 0);
  assert_int_equal(connect_client(&d, 0, &b), 0);
  assert_int_equal(emx_client_ping(b), 0);
  /* The uid's limit is still there, and says its name. */
  refused(&d, 0, "--max-conns-per-uid");
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
  emx_client *a = NULL, *c = NULL;
  assert_int_equal(connect_client(&d, 8 * MIB, &a), 0);
  refused(&d, 8 * MIB, "--max-arena-bytes-per-uid");
  assert_int_equal(connect_client(&d, 2 * MIB, &c), 0);
  assert_int_equal(emx_client_ping(c), 0);
  /* A closed connection gives its bytes back. */
  emx_client_destroy(a);
  emx_client_destroy(connect_once_freed(&d, 8 * MIB));
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
  assert_true(emxt_wait_log(&d, want, 2000));
  assert_false(emxt_log_contains(&d, "pid 424242"));
  assert_int_equal(emxt_daemon_stop(&d), 0);
}

/* run_daemon: edgemuxd with args, to its exit (it must not stay up).
 * Through EMX_EXEC_WRAPPER (make check-arm64): under qemu-user a plain exec
 * of the arm64 edgemuxd fails (no binfmt_misc) and the child exits 127,
 * which socket_not_replaced took for the daemon's refusal. */
static int run_daemon(const char *const *args) {
  return emxt_run(args[0], (char *const *)args);
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

/* raw_hello: a raw connection that said hello without an arena. */
static int raw_hello(const char *path) {
  int fd = raw_connect(path);
  uint64_t pkt[8];
  emx__wire_buf b;
  emx__wire_begin(&b, pkt, EMX_WIRE_HELLO, 0);
  emx__wire_hello h = {.proto = EMX_WIRE_VERSION, .pid = (uint32_t)getpid()};
  emx__wire_put(&b, &h, sizeof h);
  assert_true(emx__sock_send(fd, pkt, emx__wire_end(&b), -1, 0) > 0);
  return fd;
}

/* raw_answer: the next packet on fd (10 s hang guard, x the time scale),
 * decoded into m (its text in rx). */
static void raw_answer(int fd, uint64_t *rx, size_t cap, emx__wire_msg *m) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  assert_int_equal(poll(&p, 1, 10000 * emxt_time_scale()), 1);
  int fds[EMX__SOCK_MAX_FDS], nfds = 0;
  ssize_t n = emx__sock_recv(fd, rx, cap, fds, &nfds, 0);
  assert_true(n > 0);
  for (int i = 0; i < nfds; i++)
    close(fds[i]);
  emx__errbuf err;
  assert_int_equal(emx__wire_decode(rx, (size_t)n, m, &err), 0);
}

/* A model must come as a memfd. A pipe, a socket or a FIFO in its place
 * is refused by what it is (fstat, S_ISREG) before the daemon touches it:
 * reading one could block the daemon for good. The FIFO is opened
 * read-write, so nothing on this side blocks either. */
static void model_fd_not_regular(void **state) {
  (void)state;
  emxt_daemon d;
  const char *args[] = {"--device", "cpu:workers=1", NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  int fd = raw_hello(d.socket);
  static uint64_t rx[EMX_WIRE_MAX_MSG / 8];
  emx__wire_msg m;
  raw_answer(fd, rx, sizeof rx, &m);
  assert_int_equal(m.hdr.type, EMX_WIRE_HELLO_OK);

  int p[2], sp[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
  char fifo[] = "/tmp/emxt-fifo-XXXXXX";
  assert_non_null(mkdtemp(fifo));
  char fifo_path[64];
  snprintf(fifo_path, sizeof fifo_path, "%s/model.tflite", fifo);
  assert_int_equal(mkfifo(fifo_path, 0600), 0);
  int ff = open(fifo_path, O_RDWR | O_CLOEXEC);
  assert_true(ff >= 0);
  const struct {
    int fd;
    const char *kind;
  } bad[] = {{p[0], "a pipe or FIFO"},
             {p[1], "a pipe or FIFO"},
             {sp[0], "a socket"},
             {ff, "a pipe or FIFO"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint64_t pkt[16];
    emx__wire_buf b;
    emx__wire_begin(&b, pkt, EMX_WIRE_LOAD_BYTES, 1 + i);
    emx__wire_load_bytes lb = {.size = 4096};
    emx__wire_put(&b, &lb, sizeof lb);
    emx__wire_name n = {.len = 4};
    emx__wire_put(&b, &n, sizeof n);
    emx__wire_put(&b, "pipe", 4);
    assert_true(emx__sock_send(fd, pkt, emx__wire_end(&b), bad[i].fd, 0) > 0);
    raw_answer(fd, rx, sizeof rx, &m);
    assert_int_equal(m.hdr.type, EMX_WIRE_ERROR);
    assert_int_equal(m.hdr.id, 1 + i);
    char text[512];
    snprintf(text, sizeof text, "%.*s", (int)m.u.error.e->msg_len,
             m.u.error.text);
    fprintf(stderr, "LOAD_BYTES with %s: %s: %s\n", bad[i].kind,
            emx_err_name(m.u.error.e->status), text);
    assert_int_equal(m.u.error.e->status, EMX_EINVAL);
    assert_non_null(strstr(text, bad[i].kind));
    assert_non_null(strstr(text, "not a memfd"));
  }
  /* The connection and the daemon serve on. */
  uint64_t ping[4];
  emx__wire_buf b;
  emx__wire_begin(&b, ping, EMX_WIRE_PING, 99);
  assert_true(emx__sock_send(fd, ping, emx__wire_end(&b), -1, 0) > 0);
  raw_answer(fd, rx, sizeof rx, &m);
  assert_int_equal(m.hdr.id, 99);
  assert_int_equal(m.hdr.type, EMX_WIRE_PONG);
  close(fd);
  close(ff);
  unlink(fifo_path);
  rmdir(fifo);
  for (int i = 0; i < 2; i++) {
    close(p[i]);
    close(sp[i]);
  }
  assert_int_equal(emxt_daemon_stop(&d), 0);
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
      cmocka_unit_test(model_fd_not_regular),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
