/* main.c — the edgemux command, the command-line client of edgemuxd:
 *
 *   edgemux [--socket PATH] COMMAND [OPTIONS] [OPERANDS]
 *
 * Each COMMAND lives in its own cmd_*.c as a cli_command (its option table
 * and its run function); opts.c parses every command line against those
 * tables and generates each --help. Uses only the public client API. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const cli_command *const commands[] = {
    &cli_cmd_models, &cli_cmd_info, &cli_cmd_infer,
    &cli_cmd_status, &cli_cmd_ping, &cli_cmd_bench,
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

enum { O_VERSION };

static const cli_option top_options[] = {
    [O_VERSION] = {"version", 'V', CLI_FLAG, NULL, "print the version", 0, 0,
                   0},
    {0},
};

int main(int argc, char **argv) {
  /* The top level's --help lists the commands, from their own table rows. */
  static char about[1024];
  size_t n = (size_t)snprintf(about, sizeof about,
                              "Talk to edgemuxd, the edgemux inference "
                              "daemon.\n'edgemux COMMAND --help' describes a "
                              "command.\n\nCommands:");
  for (size_t i = 0; i < NCOMMANDS && n < sizeof about; i++)
    n += (size_t)snprintf(about + n, sizeof about - n, "\n  %-8s %s",
                          commands[i]->name, commands[i]->summary);
  const cli_command top = {
      .name = NULL,
      .operands = "COMMAND [ARGS...]",
      .about = about,
      .options = top_options,
  };

  cli_args a;
  int ex = cli_parse(&top, argc, argv, &a);
  if (ex >= 0)
    return ex;
  if (a.opt[O_VERSION].set) {
    printf("edgemux %s\n", emx_version());
    return 0;
  }
  if (!a.rest)
    return cli_usage_error(NULL, "no command given");
  const char *name = argv[a.rest];
  for (size_t i = 0; i < NCOMMANDS; i++) {
    if (strcmp(name, commands[i]->name) != 0)
      continue;
    ex = cli_parse(commands[i], argc - a.rest, argv + a.rest, &a);
    return ex >= 0 ? ex : commands[i]->run(&a);
  }
  return cli_usage_error(NULL, "unknown command '%s'", name);
}
