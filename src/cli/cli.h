/* cli.h — what the edgemux command's files share: the table-driven option
 * parser (opts.c), messages and client helpers (common.c), and one
 * `cli_command` per subcommand (cmd_*.c), listed in main.c.
 *
 * Exit status everywhere: 0 success, CLI_EXIT_RUNTIME (1) a failure,
 * CLI_EXIT_USAGE (2) a usage error. Uses only the public client API. */
#ifndef EMX_CLI_CLI_H
#define EMX_CLI_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "edgemux/client.h"

#define CLI_EXIT_RUNTIME 1
#define CLI_EXIT_USAGE 2
#define CLI_MAX_OPTIONS 16 /* per command, besides --socket and --help */
#define CLI_MAX_LIST 64    /* values of one repeatable option */
#define CLI_MAX_OPERANDS 8

/* ---- options (opts.c) ---------------------------------------------------- */

typedef enum cli_kind {
  CLI_FLAG,   /* no value */
  CLI_STRING, /* one value; the last one given wins */
  CLI_LIST,   /* a value each time it is given, up to CLI_MAX_LIST */
  CLI_INT,    /* a decimal integer in [min, max] */
} cli_kind;

/* cli_option is one row of a command's option table; the table ends with a
 * row whose name is NULL. */
typedef struct cli_option {
  const char *name;  /* long name, without "--" */
  char short_name;   /* 0: none */
  cli_kind kind;     /* what follows it */
  const char *value; /* the value's name in --help ("FILE", "N") */
  const char *help;  /* one line for --help */
  long min, max;     /* CLI_INT: accepted range */
  long def;          /* CLI_INT: value when not given */
} cli_option;

/* cli_value is what the command line said for one option. */
typedef struct cli_value {
  int set;                        /* given at least once */
  long num;                       /* CLI_INT: the value (def when not set) */
  const char *str;                /* CLI_STRING: the last value */
  const char *list[CLI_MAX_LIST]; /* CLI_LIST: every value, in order */
  size_t count;                   /* CLI_LIST: how many */
} cli_value;

/* cli_args is a parsed command line: options by their table index, then
 * the operands. */
typedef struct cli_args {
  cli_value opt[CLI_MAX_OPTIONS];
  const char *operand[CLI_MAX_OPERANDS];
  size_t operands;
  int rest; /* the top level (name NULL): argv index of the command, or 0 */
} cli_args;

typedef struct cli_command {
  const char *name;     /* "infer"; NULL: the top level, whose parse stops
                            at the first operand (the command) */
  const char *operands; /* synopsis of the operands, "MODEL"; "" none */
  size_t min_operands;  /* how many operands it takes */
  size_t max_operands;
  const char *summary; /* one line for 'edgemux --help' */
  const char *about;   /* paragraphs for 'edgemux COMMAND --help' */
  const cli_option *options;
  int (*run)(const cli_args *a);
} cli_command;

/* cli_parse parses argv[1..argc) for `cmd` (argv[0] is its name) into *a:
 * the command's options, --socket PATH (sets cli_socket) and --help (prints
 * the help generated from the table). Returns -1 to go on, 0 after --help,
 * or CLI_EXIT_USAGE after saying what was wrong. */
int cli_parse(const cli_command *cmd, int argc, char **argv, cli_args *a);

/* cli_print_help writes cmd's --help text, generated from its table. */
void cli_print_help(const cli_command *cmd);

/* ---- messages and helpers (common.c) ------------------------------------- */

extern const char *cli_socket; /* --socket; NULL: the library's default */

/* cli_usage_error says what was wrong and how to get help; returns
 * CLI_EXIT_USAGE. cmd may be NULL (the top level). */
int cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* cli_fail prints "edgemux: MESSAGE"; returns CLI_EXIT_RUNTIME. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* cli_client_fail reports c's last error (NULL: the last connect). */
int cli_client_fail(const emx_client *c, int rc);

/* cli_connect connects to cli_socket with an arena of arena_bytes; 0 or an
 * exit status (the failure reported). */
int cli_connect(emx_client **c, size_t arena_bytes);

/* cli_open_sized connects with an arena that holds `copies` sets of the
 * model's tensors (a first connection without an arena looks it up) and
 * opens the model: a name the daemon has, or a .tflite file (a path ending
 * in ".tflite" or holding a '/'), read here and sent, named after its
 * stem; 0 or an exit status. */
int cli_open_sized(const char *model, size_t copies, emx_client **cp,
                   emx_client_model **mp);

/* cli_arena_for: bytes of arena for `copies` sets of m's tensors. */
size_t cli_arena_for(const emx_client_model *m, size_t copies);

/* cli_alloc_all allocates every input and output of m in c's arena. */
int cli_alloc_all(emx_client *c, emx_client_model *m, emx_tensor *in,
                  emx_tensor *out);

/* cli_fill_random fills t with data from `seed`: floats uniform in [0, 1),
 * other types random bytes. */
void cli_fill_random(emx_tensor *t, uint64_t seed);

/* cli_format_shape writes "[1,128,128,3]". */
void cli_format_shape(const emx_tensor_info *ti, char *buf, size_t len);

/* ---- .npy files (npy.c) -------------------------------------------------- */

/* cli_is_npy: path ends in ".npy". */
int cli_is_npy(const char *path);

/* cli_npy_read reads a .npy file into buf (size bytes) after checking its
 * type, shape and order against ti; 0 or an exit status (reported). */
int cli_npy_read(const char *path, const emx_tensor_info *ti, void *buf,
                 size_t size);

/* cli_npy_write writes data as a .npy file of ti's type and shape. */
int cli_npy_write(const char *path, const emx_tensor_info *ti, const void *data,
                  size_t size);

/* ---- the subcommands (cmd_*.c) ------------------------------------------- */

extern const cli_command cli_cmd_models, cli_cmd_info, cli_cmd_infer,
    cli_cmd_status, cli_cmd_ping, cli_cmd_bench;

#endif
