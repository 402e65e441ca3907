/* cmd_models.c — edgemux models: the daemon's model names. */
#include <stdio.h>

#include "cli/cli.h"

static void print_name(const char *name, void *user) {
  (void)user;
  printf("%s\n", name);
}

static int run(const cli_args *a) {
  (void)a;
  emx_client *c;
  int ex = cli_connect(&c, 0);
  if (ex)
    return ex;
  int rc = emx_client_models(c, print_name, NULL);
  ex = rc < 0 ? cli_client_fail(c, rc) : 0;
  emx_client_destroy(c);
  return ex;
}

const cli_command cli_cmd_models = {
    .name = "models",
    .operands = "",
    .summary = "list the daemon's models",
    .about = "List the models edgemuxd serves, one name per line.",
    .run = run,
};
