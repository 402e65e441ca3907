/* cmd_ping.c — edgemux ping: round trips through the daemon. */
#include <stdio.h>

#include "cli/cli.h"

enum { O_COUNT };

static const cli_option options[] = {
    [O_COUNT] = {"count", 'n', CLI_INT, "COUNT", "pings to send", 1, 100000000L,
                 1},
    {0},
};

static int run(const cli_args *a) {
  long count = a->opt[O_COUNT].num;
  emx_client *c;
  int ex = cli_connect(&c, 0);
  if (ex)
    return ex;
  double lo = 0, hi = 0, sum = 0;
  for (long i = 0; i < count; i++) {
    int64_t t0 = emx_now_ns();
    int rc = emx_client_ping(c);
    double us = (double)(emx_now_ns() - t0) / 1e3;
    if (rc < 0) {
      ex = cli_client_fail(c, rc);
      break;
    }
    if (count <= 10)
      printf("round trip %.1f us\n", us);
    lo = i == 0 || us < lo ? us : lo;
    hi = us > hi ? us : hi;
    sum += us;
  }
  if (!ex && count > 1)
    printf("%ld pings: min %.1f us, mean %.1f us, max %.1f us\n", count, lo,
           sum / (double)count, hi);
  emx_client_destroy(c);
  return ex;
}

const cli_command cli_cmd_ping = {
    .name = "ping",
    .operands = "",
    .summary = "measure a round trip through the daemon",
    .about = "Send COUNT pings through edgemuxd (no device is touched) and\n"
             "print each round trip in microseconds.",
    .options = options,
    .run = run,
};
