/* common.c — what several subcommands need: messages, connecting, arena
 * sizing, tensor allocation and test data. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

const char *cli_socket;

int cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("edgemux: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  fprintf(stderr, "Try 'edgemux %s%s--help'.\n", cmd ? cmd : "",
          cmd ? " " : "");
  return CLI_EXIT_USAGE;
}

int cli_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("edgemux: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return CLI_EXIT_RUNTIME;
}

int cli_client_fail(const emx_client *c, int rc) {
  const char *msg = emx_client_last_error(c);
  return cli_fail("%s", msg && *msg ? msg : emx_strerror(rc));
}

int cli_connect(emx_client **c, size_t arena_bytes) {
  emx_client_config cfg;
  emx_client_config_init(&cfg);
  cfg.socket_path = cli_socket;
  cfg.arena_bytes = arena_bytes;
  int rc = emx_client_connect(c, &cfg);
  return rc < 0 ? cli_client_fail(NULL, rc) : 0;
}

size_t cli_arena_for(const emx_client_model *m, size_t copies) {
  size_t total = 4096; /* slack */
  emx_tensor_info ti;
  /* Each tensor is 64-byte aligned in the arena. */
  for (size_t i = 0; i < emx_client_model_input_count(m); i++)
    if (emx_client_model_input_info(m, i, &ti) == 0)
      total += (ti.bytes + 63) / 64 * 64 + 64;
  for (size_t i = 0; i < emx_client_model_output_count(m); i++)
    if (emx_client_model_output_info(m, i, &ti) == 0)
      total += (ti.bytes + 63) / 64 * 64 + 64;
  return total * copies;
}

/* is_model_file: MODEL names a file rather than a model of the daemon. */
static int is_model_file(const char *model) {
  size_t n = strlen(model);
  return strchr(model, '/') || (n > 7 && strcmp(model + n - 7, ".tflite") == 0);
}

/* open_model opens a model by name, or sends a .tflite file: named after
 * its stem, or "<stem>-<hash of the bytes' length and path>" when the stem
 * is taken by other bytes (the daemon shares equal bytes whatever the
 * name). */
static int open_model(emx_client *c, const char *model, emx_client_model **m) {
  if (!is_model_file(model))
    return emx_client_model_open(c, model, m);
  const char *base = strrchr(model, '/');
  base = base ? base + 1 : model;
  char name[64];
  size_t n = strcspn(base, ".");
  if (n == 0 || n > 40)
    n = n ? 40 : 0;
  snprintf(name, sizeof name, "%.*s", (int)n, n ? base : "model");
  int rc = emx_client_model_load(c, name, model, m);
  if (rc == EMX_EEXIST) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a of the path */
    for (const char *p = model; *p; p++)
      h = (h ^ (unsigned char)*p) * 1099511628211ull;
    char alt[96];
    snprintf(alt, sizeof alt, "%s-%012llx", name,
             (unsigned long long)(h & 0xffffffffffffull));
    rc = emx_client_model_load(c, alt, model, m);
  }
  return rc;
}

int cli_open_sized(const char *model, size_t copies, emx_client **cp,
                   emx_client_model **mp) {
  emx_client *probe;
  int rc = cli_connect(&probe, 0);
  if (rc)
    return rc;
  emx_client_model *m;
  rc = open_model(probe, model, &m);
  if (rc < 0) {
    int ex = cli_client_fail(probe, rc);
    emx_client_destroy(probe);
    return ex;
  }
  size_t arena = cli_arena_for(m, copies);
  emx_client_destroy(probe);
  rc = cli_connect(cp, arena);
  if (rc)
    return rc;
  rc = open_model(*cp, model, mp);
  if (rc < 0) {
    int ex = cli_client_fail(*cp, rc);
    emx_client_destroy(*cp);
    *cp = NULL;
    return ex;
  }
  return 0;
}

int cli_alloc_all(emx_client *c, emx_client_model *m, emx_tensor *in,
                  emx_tensor *out) {
  for (size_t i = 0; i < emx_client_model_input_count(m); i++) {
    int rc = emx_client_tensor_alloc_input(c, m, i, &in[i]);
    if (rc < 0)
      return rc;
  }
  for (size_t i = 0; i < emx_client_model_output_count(m); i++) {
    int rc = emx_client_tensor_alloc_output(c, m, i, &out[i]);
    if (rc < 0)
      return rc;
  }
  return 0;
}

void cli_format_shape(const emx_tensor_info *ti, char *buf, size_t len) {
  size_t n = (size_t)snprintf(buf, len, "[");
  for (int d = 0; d < ti->rank && n < len; d++)
    n += (size_t)snprintf(buf + n, len - n, "%s%" PRId32, d ? "," : "",
                          ti->dims[d]);
  if (n < len)
    snprintf(buf + n, len - n, "]");
}

/* xorshift64*: seeded, reproducible test data. */
static uint64_t rng_next(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ULL;
}

void cli_fill_random(emx_tensor *t, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
  if (s == 0)
    s = 1;
  if (t->dtype == EMX_DTYPE_FLOAT32) {
    float *f = t->data;
    for (size_t i = 0; i < t->size / sizeof *f; i++)
      f[i] = (float)(rng_next(&s) >> 40) / (float)(1u << 24);
  } else if (t->dtype == EMX_DTYPE_FLOAT64) {
    double *d = t->data;
    for (size_t i = 0; i < t->size / sizeof *d; i++)
      d[i] = (double)(rng_next(&s) >> 11) / 9007199254740992.0;
  } else {
    uint8_t *b = t->data;
    for (size_t i = 0; i < t->size; i++)
      b[i] = (uint8_t)(rng_next(&s) >> 56);
  }
}
