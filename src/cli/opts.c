/* opts.c — the one option parser of the edgemux command: each subcommand
 * describes its options in a table (cli.h: cli_option), and this file
 * parses argv against it, checks values and ranges, and generates --help.
 * GNU conventions: long options as --name VALUE or --name=VALUE, short ones
 * as -x VALUE or -xVALUE, options and operands in any order, "--" ends the
 * options. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

enum { COMMON_SOCKET, COMMON_HELP, COMMON_COUNT };

/* Options every command takes, after its own. */
static const cli_option common[] = {
    [COMMON_SOCKET] = {"socket", 0, CLI_STRING, "PATH",
                       "edgemuxd's socket (default: $EDGEMUX_SOCKET, else "
                       "$XDG_RUNTIME_DIR/edgemux.sock, else "
                       "/run/edgemux/edgemux.sock)",
                       0, 0, 0},
    [COMMON_HELP] = {"help", 'h', CLI_FLAG, NULL, "print this help", 0, 0, 0},
    {0},
};

static size_t count_options(const cli_option *o) {
  size_t n = 0;
  while (o && o[n].name)
    n++;
  return n;
}

/* find looks an option up in the command's table, then in `common`; *index
 * is its row, *is_common says which table. NULL when neither has it. */
static const cli_option *find(const cli_command *cmd, const char *name,
                              size_t name_len, char short_name, size_t *index,
                              int *is_common) {
  const cli_option *tables[2] = {cmd->options, common};
  for (int t = 0; t < 2; t++)
    for (size_t i = 0; tables[t] && tables[t][i].name; i++) {
      const cli_option *o = &tables[t][i];
      if (short_name ? o->short_name == short_name
                     : strlen(o->name) == name_len &&
                           strncmp(o->name, name, name_len) == 0) {
        *index = i;
        *is_common = t == 1;
        return o;
      }
    }
  return NULL;
}

/* take stores one value of option o (spelled `as` on the command line). */
static int take(const cli_command *cmd, const cli_option *o, const char *as,
                const char *value, cli_value *v) {
  v->set = 1;
  switch (o->kind) {
  case CLI_FLAG:
    return 0;
  case CLI_STRING:
    v->str = value;
    return 0;
  case CLI_LIST:
    if (v->count == CLI_MAX_LIST)
      return cli_usage_error(cmd->name, "%s given more than %d times", as,
                             CLI_MAX_LIST);
    v->list[v->count++] = value;
    return 0;
  case CLI_INT: {
    char *end;
    errno = 0;
    long n = strtol(value, &end, 10);
    if (errno || end == value || *end || n < o->min || n > o->max)
      return cli_usage_error(cmd->name, "%s wants %ld..%ld, not '%s'", as,
                             o->min, o->max, value);
    v->num = n;
    return 0;
  }
  }
  return 0;
}

int cli_parse(const cli_command *cmd, int argc, char **argv, cli_args *a) {
  memset(a, 0, sizeof *a);
  size_t n = count_options(cmd->options);
  if (n > CLI_MAX_OPTIONS) /* a programming error, said loudly */
    return cli_fail("command %s has %zu options; raise CLI_MAX_OPTIONS",
                    cmd->name, n);
  for (size_t i = 0; i < n; i++)
    a->opt[i].num = cmd->options[i].def;
  cli_value common_v[COMMON_COUNT];
  memset(common_v, 0, sizeof common_v);

  int only_operands = 0;
  const char *extra = NULL; /* the first operand too many */
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (only_operands || arg[0] != '-' || arg[1] == '\0') {
      if (!cmd->name) { /* the top level: the rest is the command's */
        a->rest = i;
        break;
      }
      /* Said after the loop, so that a --help anywhere still helps. */
      if (a->operands == cmd->max_operands || a->operands == CLI_MAX_OPERANDS)
        extra = extra ? extra : arg;
      else
        a->operand[a->operands++] = arg;
      continue;
    }
    if (strcmp(arg, "--") == 0) {
      only_operands = 1;
      continue;
    }
    /* One option (or, for short flags, a cluster such as -rh). */
    const char *p = arg + 1;
    int is_long = *p == '-';
    while (*p) {
      size_t index;
      int is_common;
      const cli_option *o;
      char as[64];
      const char *inline_value = NULL;
      if (is_long) {
        const char *name = p + 1, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        o = find(cmd, name, len, 0, &index, &is_common);
        snprintf(as, sizeof as, "--%.*s", (int)(len < 40 ? len : 40), name);
        if (eq)
          inline_value = eq + 1;
        p += strlen(p);
      } else {
        o = find(cmd, NULL, 0, *p, &index, &is_common);
        snprintf(as, sizeof as, "-%c", *p);
        p++;
        if (o && o->kind != CLI_FLAG && *p) {
          inline_value = p;
          p += strlen(p);
        }
      }
      if (!o)
        return cli_usage_error(cmd->name, "unknown option '%s'", as);
      const char *value = NULL;
      if (o->kind == CLI_FLAG) {
        if (inline_value)
          return cli_usage_error(cmd->name, "option '%s' takes no value", as);
      } else if (inline_value) {
        value = inline_value;
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return cli_usage_error(cmd->name, "option '%s' needs a value", as);
      }
      cli_value *v = is_common ? &common_v[index] : &a->opt[index];
      int rc = take(cmd, o, as, value, v);
      if (rc)
        return rc;
      if (is_common && index == COMMON_HELP) {
        cli_print_help(cmd);
        return 0;
      }
    }
  }
  if (common_v[COMMON_SOCKET].set)
    cli_socket = common_v[COMMON_SOCKET].str;
  if (extra)
    return cli_usage_error(cmd->name, "unexpected argument '%s'", extra);
  if (cmd->name && a->operands < cmd->min_operands)
    return cli_usage_error(cmd->name, "expected %s", cmd->operands);
  return -1;
}

#define HELP_COLUMN 26 /* where an option's help text starts */
#define HELP_WIDTH 79

/* print_wrapped writes text from column `col`, breaking at spaces before
 * HELP_WIDTH and indenting continuation lines to HELP_COLUMN. */
static void print_wrapped(const char *text, int col) {
  while (*text) {
    int room = HELP_WIDTH - col;
    int len = (int)strlen(text);
    int take = len;
    if (len > room) {
      take = room;
      while (take > 0 && text[take] != ' ')
        take--;
      if (take == 0) /* one long word: let it overflow */
        take = (int)strcspn(text, " ");
    }
    printf("%.*s", take, text);
    text += take;
    while (*text == ' ')
      text++;
    if (*text) {
      printf("\n%*s", HELP_COLUMN, "");
      col = HELP_COLUMN;
    }
  }
  printf("\n");
}

/* print_options writes one entry per row: "  -c, --clients N   help". */
static void print_options(const cli_option *o) {
  for (; o && o->name; o++) {
    char left[64], help[512];
    int n = snprintf(
        left, sizeof left, "  %c%c%c --%s%s%s", o->short_name ? '-' : ' ',
        o->short_name ? o->short_name : ' ', o->short_name ? ',' : ' ', o->name,
        o->value ? " " : "", o->value ? o->value : "");
    if (o->kind == CLI_INT)
      snprintf(help, sizeof help, "%s (%ld..%ld, default %ld)", o->help, o->min,
               o->max, o->def);
    else
      snprintf(help, sizeof help, "%s%s", o->help,
               o->kind == CLI_LIST ? " (repeatable)" : "");
    if (n + 2 > HELP_COLUMN) { /* a long option: its help on the next line */
      printf("%s\n%*s", left, HELP_COLUMN, "");
    } else {
      printf("%-*s", HELP_COLUMN, left);
    }
    print_wrapped(help, HELP_COLUMN);
  }
}

void cli_print_help(const cli_command *cmd) {
  printf("Usage: edgemux %s%s[OPTIONS]%s%s\n", cmd->name ? cmd->name : "",
         cmd->name ? " " : "", *cmd->operands ? " " : "", cmd->operands);
  printf("%s\n\nOptions:\n", cmd->about);
  print_options(cmd->options);
  print_options(common);
  printf("\nExit status: 0 success, 1 failure, 2 usage error.\n");
}
