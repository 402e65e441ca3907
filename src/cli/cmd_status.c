/* cmd_status.c — edgemux status: the daemon's status report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static int run(const cli_args *a) {
  (void)a;
  emx_client *c;
  int ex = cli_connect(&c, 0);
  if (ex)
    return ex;
  char *text;
  int rc = emx_client_status(c, &text);
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
             "counters, latency percentiles, uptime and clients.",
    .run = run,
};
