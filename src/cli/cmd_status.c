/* cmd_status.c — edgemux status: the daemon's status report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

enum { O_PROMETHEUS };

static const cli_option options[] = {
    [O_PROMETHEUS] = {"prometheus", 0, CLI_FLAG, NULL,
                      "print the Prometheus text HTTP /metrics serves", 0, 0,
                      0},
    {0},
};

static int run(const cli_args *a) {
  emx_client *c;
  int ex = cli_connect(&c, 0);
  if (ex)
    return ex;
  char *text;
  int rc = a->opt[O_PROMETHEUS].set ? emx_client_metrics(c, &text)
                                    : emx_client_status(c, &text);
  if (rc < 0) {
    ex = cli_client_fail(c, rc);
  } else {
    size_t len = strlen(text);
    fputs(text, stdout);
    if (len && text[len - 1] != '\n')
      fputc('\n', stdout);
    emx_client_free(text);
  }
  emx_client_destroy(c);
  return ex;
}

const cli_command cli_cmd_status = {
    .name = "status",
    .operands = "",
    .summary = "print the daemon's status report",
    .about = "Print edgemuxd's status report: devices, queues, per-model\n"
             "counters, latency percentiles, uptime and clients; with\n"
             "--prometheus, the Prometheus text (format 0.0.4) that HTTP\n"
             "/metrics serves, whether or not the daemon serves HTTP.",
    .options = options,
    .run = run,
};
