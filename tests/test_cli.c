/* test_cli.c — the edgemux command against a real edgemuxd: every
 * subcommand's output and exit status, and usage errors (exit 2) that say
 * what was wrong. */
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
#include "support.h"

#define FACE "face_detection_short_range"

static char out[16384]; /* the last command's stdout and stderr */

/* cli runs `edgemux ARGS...` (NULL-terminated) and returns its exit status;
 * what it printed is in `out`. */
static int cli(const char *arg, ...) {
  const char *argv[16] = {EMX_BIN_DIR "/edgemux"};
  int argc = 1;
  va_list ap;
  va_start(ap, arg);
  for (const char *a = arg; a && argc < 15; a = va_arg(ap, const char *))
    argv[argc++] = a;
  va_end(ap);
  argv[argc] = NULL;
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(p[1], 1);
    dup2(p[1], 2);
    close(p[0]);
    close(p[1]);
    emxt_execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(p[1]);
  size_t got = 0;
  ssize_t n;
  while ((n = read(p[0], out + got, sizeof out - 1 - got)) > 0)
    got += (size_t)n;
  out[got] = '\0';
  close(p[0]);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void expect_out(const char *text) {
  if (!contains(out, text))
    fail_msg("expected \"%s\" in:\n%s", text, out);
}

static void usage_errors(void **state) {
  assert_int_equal(cli("--help", NULL), 0);
  expect_out("Commands:");
  assert_int_equal(cli("bench", "--help", NULL), 0);
  expect_out("--batch B");
  assert_int_equal(cli("nosuch", NULL), 2);
  expect_out("unknown command 'nosuch'");
  assert_int_equal(cli("bench", "--batch", "0", FACE, NULL), 2);
  expect_out("--batch wants 1..256");
  assert_int_equal(cli("bench", "-c", "0", FACE, NULL), 2);
  expect_out("-c wants");
  assert_int_equal(cli("info", NULL), 2);
  expect_out("expected MODEL");
  assert_int_equal(cli("ping", "-n", NULL), 2);
  expect_out("option '-n' needs a value");
  assert_int_equal(cli("infer", "--bogus=3", FACE, NULL), 2);
  expect_out("unknown option '--bogus'");
  assert_int_equal(cli("models", "extra", NULL), 2);
  expect_out("unexpected argument 'extra'");
  assert_int_equal(cli("infer", "--random", "--input", "x", FACE, NULL), 2);
  expect_out("--random and --input exclude each other");
  assert_int_equal(cli("status", "--help=yes", NULL), 2);
  expect_out("option '--help' takes no value");
  assert_int_equal(cli("--version", NULL), 0);
  expect_out("edgemux " EMX_VERSION_STRING "\n");
}

/* Every subcommand's --help, generated from its option table: the synopsis,
 * each of its options with its value's name, and the common ones. */
static void help_of_each_command(void **state) {
  static const struct {
    const char *cmd;
    const char *expect[4];
  } rows[] = {
      {"models", {"Usage: edgemux models [OPTIONS]\n", "one name per line"}},
      {"info", {"Usage: edgemux info [OPTIONS] MODEL\n", "quantization"}},
      {"infer",
       {"Usage: edgemux infer [OPTIONS] MODEL\n", "-i, --input FILE",
        "-r, --random", "-s, --seed N"}},
      {"status", {"Usage: edgemux status [OPTIONS]\n", "status report"}},
      {"ping", {"Usage: edgemux ping [OPTIONS]\n", "-n, --count COUNT"}},
      {"bench",
       {"Usage: edgemux bench [OPTIONS] MODEL\n", "-c, --clients CLIENTS",
        "-b, --batch B", "(1..256, default 1)"}},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    assert_int_equal(cli(rows[i].cmd, "--help", NULL), 0);
    for (size_t k = 0; k < 4 && rows[i].expect[k]; k++)
      expect_out(rows[i].expect[k]);
    expect_out("    --socket PATH");
    expect_out("-h, --help");
    expect_out("Exit status: 0 success, 1 failure, 2 usage error.");
    /* -h is --help too, wherever it stands. */
    assert_int_equal(cli(rows[i].cmd, "x", "-h", NULL), 0);
    expect_out(rows[i].expect[0]);
  }
}

static void against_the_daemon(void **state) {
  emxt_daemon d;
  const char *args[] = {"--device", "cpu:workers=1", NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);

  assert_int_equal(cli("models", NULL), 0);
  expect_out(FACE "\n");
  expect_out("hand_landmark_lite\n");
  assert_int_equal(cli("info", FACE, NULL), 0);
  expect_out("float32  [1,128,128,3]");
  expect_out("196608 bytes");
  assert_int_equal(cli("infer", FACE, "--random", NULL), 0);
  expect_out("output 0 regressors: float32 [1,896,16], 57344 bytes");
  assert_int_equal(cli("ping", NULL), 0);
  expect_out("round trip");
  assert_int_equal(cli("status", NULL), 0);
  expect_out("live 1");
  expect_out("ready 1");
  expect_out("device cpu0 kind=cpu healthy=1");

  /* Two clients, 12 requests each, sent 4 at a time as batches. */
  assert_int_equal(
      cli("bench", FACE, "-c", "2", "-n", "12", "--batch", "4", NULL), 0);
  expect_out("requests    24");
  expect_out("errors      0");

  /* A model that is not there: the message says how to list them. */
  assert_int_not_equal(cli("info", "nosuch", NULL), 0);
  expect_out("no model named \"nosuch\"");
  expect_out("edgemux models");
  assert_int_equal(emxt_daemon_stop(&d), 0);

  /* No daemon: the message names the socket. */
  assert_int_not_equal(cli("ping", NULL), 0);
  expect_out(d.socket);
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(usage_errors),
      cmocka_unit_test(help_of_each_command),
      cmocka_unit_test(against_the_daemon),
  };
  return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
