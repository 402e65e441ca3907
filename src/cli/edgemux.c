/* edgemux.c — the command-line client of edgemuxd.
 *
 *   edgemux [--socket PATH] COMMAND [ARGS]
 *
 * Commands: models, info, infer, status, ping, bench (each has --help).
 * Exit status: 0 success, 1 runtime failure, 2 usage error. Uses only the
 * public headers. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edgemux/client.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define MAX_FILES 64 /* --input / --output occurrences */

static const char *socket_path; /* --socket, NULL: the library's default */

/* ---- messages ------------------------------------------------------------ */

static int usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("edgemux: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  fprintf(stderr, "Try 'edgemux %s%s--help'.\n", cmd ? cmd : "",
          cmd ? " " : "");
  return EXIT_USAGE;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("edgemux: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return EXIT_RUNTIME;
}

/* client_fail reports the client's last error (NULL: the last connect). */
static int client_fail(const emx_client *c, int rc) {
  const char *msg = emx_client_last_error(c);
  return fail("%s", msg && *msg ? msg : emx_strerror(rc));
}

/* bad_option explains what getopt_long (opterr = 0, optstring with a
 * leading ':') refused. */
static int bad_option(const char *cmd, int o, char **argv) {
  char shortopt[3] = {'-', (char)optopt, '\0'};
  const char *prev = argv[optind - 1];
  const char *what = strncmp(prev, "--", 2) == 0 || !optopt ? prev : shortopt;
  if (o == ':')
    return usage_error(cmd, "option '%s' needs a value", what);
  return usage_error(cmd, "unknown option '%s'", what);
}

/* ---- shared helpers ------------------------------------------------------ */

static int connect_client(emx_client **c, size_t arena_bytes) {
  emx_client_config cfg;
  emx_client_config_init(&cfg);
  cfg.socket_path = socket_path;
  cfg.arena_bytes = arena_bytes;
  int rc = emx_client_connect(c, &cfg);
  return rc < 0 ? client_fail(NULL, rc) : 0;
}

/* parse_count: a decimal integer in [lo, hi]. */
static int parse_count(const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

/* arena_for: bytes of arena that fit every tensor of m (64-byte aligned)
 * `copies` times, plus slack. */
static size_t arena_for(const emx_client_model *m, size_t copies) {
  size_t total = 4096;
  emx_tensor_info ti;
  for (size_t i = 0; i < emx_client_model_input_count(m); i++)
    if (emx_client_model_input_info(m, i, &ti) == 0)
      total += (ti.bytes + 63) / 64 * 64 + 64;
  for (size_t i = 0; i < emx_client_model_output_count(m); i++)
    if (emx_client_model_output_info(m, i, &ti) == 0)
      total += (ti.bytes + 63) / 64 * 64 + 64;
  return total * copies;
}

static void format_shape(const emx_tensor_info *ti, char *buf, size_t len) {
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

/* fill_random fills t with seeded data: floats uniform in [0, 1), other
 * types random bytes. */
static void fill_random(emx_tensor *t, uint64_t seed) {
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

/* alloc_all allocates every input and output of m in c's arena. */
static int alloc_all(emx_client *c, emx_client_model *m, emx_tensor *in,
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

/* open_sized connects with an arena sized for `copies` sets of m's tensors:
 * a first connection without an arena looks the model up. */
static int open_sized(const char *model, size_t copies, emx_client **cp,
                      emx_client_model **mp) {
  emx_client *probe;
  int rc = connect_client(&probe, 0);
  if (rc)
    return rc;
  emx_client_model *m;
  rc = emx_client_model_open(probe, model, &m);
  if (rc < 0) {
    int ex = client_fail(probe, rc);
    emx_client_destroy(probe);
    return ex;
  }
  size_t arena = arena_for(m, copies);
  emx_client_destroy(probe);
  rc = connect_client(cp, arena);
  if (rc)
    return rc;
  rc = emx_client_model_open(*cp, model, mp);
  if (rc < 0) {
    int ex = client_fail(*cp, rc);
    emx_client_destroy(*cp);
    *cp = NULL;
    return ex;
  }
  return 0;
}

/* parse_simple handles commands whose only options are --socket/--help.
 * Returns -1 to go on, else an exit status. */
static int parse_simple(int argc, char **argv, const char *usage) {
  static const struct option opts[] = {{"socket", required_argument, 0, 'S'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int o;
  optind = 0;
  while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    switch (o) {
    case 'S':
      socket_path = optarg;
      break;
    case 'h':
      fputs(usage, stdout);
      return 0;
    default:
      return bad_option(argv[0], o, argv);
    }
  }
  return -1;
}

/* ---- models -------------------------------------------------------------- */

static const char MODELS_USAGE[] =
    "Usage: edgemux models [--socket PATH]\n"
    "List the models edgemuxd serves, one name per line.\n";

static void print_name(const char *name, void *user) {
  (void)user;
  printf("%s\n", name);
}

static int cmd_models(int argc, char **argv) {
  int ex = parse_simple(argc, argv, MODELS_USAGE);
  if (ex >= 0)
    return ex;
  if (optind != argc)
    return usage_error("models", "unexpected argument '%s'", argv[optind]);
  emx_client *c;
  if ((ex = connect_client(&c, 0)))
    return ex;
  int rc = emx_client_models(c, print_name, NULL);
  ex = rc < 0 ? client_fail(c, rc) : 0;
  emx_client_destroy(c);
  return ex;
}

/* ---- info ---------------------------------------------------------------- */

static const char INFO_USAGE[] =
    "Usage: edgemux info [--socket PATH] MODEL\n"
    "Describe MODEL's inputs and outputs: name, dtype, shape, bytes and\n"
    "quantization.\n";

static void print_tensors(const emx_client_model *m, int output) {
  size_t n = output ? emx_client_model_output_count(m)
                    : emx_client_model_input_count(m);
  printf("%s (%zu):\n", output ? "outputs" : "inputs", n);
  for (size_t i = 0; i < n; i++) {
    emx_tensor_info ti;
    if ((output ? emx_client_model_output_info(m, i, &ti)
                : emx_client_model_input_info(m, i, &ti)) < 0)
      continue;
    char shape[128];
    format_shape(&ti, shape, sizeof shape);
    printf("  %zu  %-24s %-8s %-20s %10zu bytes  ", i, ti.name,
           emx_dtype_name(ti.dtype), shape, ti.bytes);
    if (ti.scale != 0.0f)
      printf("quantized scale=%g zero_point=%" PRId32 "\n", (double)ti.scale,
             ti.zero_point);
    else
      printf("not quantized\n");
  }
}

static int cmd_info(int argc, char **argv) {
  int ex = parse_simple(argc, argv, INFO_USAGE);
  if (ex >= 0)
    return ex;
  if (argc - optind != 1)
    return usage_error("info", "expected one MODEL name");
  const char *name = argv[optind];
  emx_client *c;
  if ((ex = connect_client(&c, 0)))
    return ex;
  emx_client_model *m;
  int rc = emx_client_model_open(c, name, &m);
  if (rc < 0) {
    ex = client_fail(c, rc);
  } else {
    printf("model %s\n", name);
    print_tensors(m, 0);
    print_tensors(m, 1);
  }
  emx_client_destroy(c);
  return ex;
}

/* ---- infer --------------------------------------------------------------- */

static const char INFER_USAGE[] =
    "Usage: edgemux infer [--socket PATH] MODEL (--input FILE... | --random)\n"
    "                     [--seed N] [--output FILE...]\n"
    "Run MODEL once. Each --input FILE holds one input's raw bytes, in input\n"
    "order; its size must equal the tensor's. --random fills every input\n"
    "with seeded random data instead (floats in [0, 1)). Each --output FILE\n"
    "receives one output's raw bytes, in output order; without --output a\n"
    "summary of each output is printed (bytes; min/max/mean for float32).\n";

static int read_exact(const char *path, void *buf, size_t want) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return fail("cannot open input %s: %s", path, strerror(errno));
  size_t got = fread(buf, 1, want, f);
  int extra = fgetc(f) != EOF;
  int err = ferror(f);
  fclose(f);
  if (err)
    return fail("reading %s: %s", path, strerror(errno));
  if (got != want || extra)
    return fail("%s is %s%zu bytes; the model's input needs exactly %zu", path,
                extra ? "more than " : "", got, want);
  return 0;
}

static int write_all_file(const char *path, const void *buf, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f)
    return fail("cannot create output %s: %s", path, strerror(errno));
  size_t put = fwrite(buf, 1, len, f);
  int err = fclose(f);
  if (put != len || err)
    return fail("writing %s: %s", path, strerror(errno));
  return 0;
}

static void summarize(size_t i, const emx_tensor_info *ti,
                      const emx_tensor *t) {
  char shape[128];
  format_shape(ti, shape, sizeof shape);
  printf("output %zu %s: %s %s, %zu bytes", i, ti->name,
         emx_dtype_name(ti->dtype), shape, t->size);
  if (t->dtype == EMX_DTYPE_FLOAT32 && t->size >= sizeof(float)) {
    const float *f = t->data;
    size_t n = t->size / sizeof *f;
    double lo = f[0], hi = f[0], sum = 0;
    for (size_t k = 0; k < n; k++) {
      lo = f[k] < lo ? f[k] : lo;
      hi = f[k] > hi ? f[k] : hi;
      sum += f[k];
    }
    printf(", min %g max %g mean %g", lo, hi, sum / (double)n);
  }
  printf("\n");
}

static int cmd_infer(int argc, char **argv) {
  static const struct option opts[] = {{"socket", required_argument, 0, 'S'},
                                       {"input", required_argument, 0, 'i'},
                                       {"output", required_argument, 0, 'o'},
                                       {"random", no_argument, 0, 'r'},
                                       {"seed", required_argument, 0, 's'},
                                       {"batch", required_argument, 0, 'b'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *inputs[MAX_FILES], *outputs[MAX_FILES];
  size_t nin = 0, nout = 0;
  int random = 0;
  long seed = 1;
  int o;
  optind = 0;
  while ((o = getopt_long(argc, argv, ":i:o:rs:h", opts, NULL)) != -1) {
    switch (o) {
    case 'S':
      socket_path = optarg;
      break;
    case 'i':
      if (nin == MAX_FILES)
        return usage_error("infer", "too many --input files");
      inputs[nin++] = optarg;
      break;
    case 'o':
      if (nout == MAX_FILES)
        return usage_error("infer", "too many --output files");
      outputs[nout++] = optarg;
      break;
    case 'r':
      random = 1;
      break;
    case 's':
      if (parse_count(optarg, 0, 0x7fffffffL, &seed) < 0)
        return usage_error("infer", "--seed wants a non-negative integer");
      break;
    case 'h':
      fputs(INFER_USAGE, stdout);
      return 0;
    default:
      return bad_option("infer", o, argv);
    }
  }
  if (argc - optind != 1)
    return usage_error("infer", "expected one MODEL name");
  if (random && nin)
    return usage_error("infer", "--random and --input exclude each other");
  if (!random && !nin)
    return usage_error("infer", "give the inputs (--input FILE) or --random");
  const char *name = argv[optind];

  emx_client *c;
  emx_client_model *m;
  int ex = open_sized(name, 1, &c, &m);
  if (ex)
    return ex;
  size_t min = emx_client_model_input_count(m);
  size_t mout = emx_client_model_output_count(m);
  emx_tensor *in = calloc(min + 1, sizeof *in);
  emx_tensor *out = calloc(mout + 1, sizeof *out);
  int rc;
  if (!in || !out) {
    ex = fail("out of memory");
    goto done;
  }
  if (!random && nin != min) {
    ex = fail("model %s takes %zu input%s; %zu --input file%s given", name, min,
              min == 1 ? "" : "s", nin, nin == 1 ? "" : "s");
    goto done;
  }
  if (nout && nout != mout) {
    ex = fail("model %s has %zu output%s; %zu --output file%s given", name,
              mout, mout == 1 ? "" : "s", nout, nout == 1 ? "" : "s");
    goto done;
  }
  if ((rc = alloc_all(c, m, in, out)) < 0) {
    ex = client_fail(c, rc);
    goto done;
  }
  for (size_t i = 0; i < min; i++) {
    if (random)
      fill_random(&in[i], (uint64_t)seed + i);
    else if ((ex = read_exact(inputs[i], in[i].data, in[i].size)))
      goto done;
  }
  emx_timings t;
  rc = emx_client_infer(c, m, in, min, out, mout, &t);
  if (rc < 0) {
    ex = client_fail(c, rc);
    goto done;
  }
  for (size_t i = 0; i < mout; i++) {
    emx_tensor_info ti;
    emx_client_model_output_info(m, i, &ti);
    if (nout) {
      if ((ex = write_all_file(outputs[i], out[i].data, out[i].size)))
        goto done;
    } else {
      summarize(i, &ti, &out[i]);
    }
  }
  if (!nout)
    printf("device %d, queued %.1f us, invoke %.1f us, total %.1f us\n",
           t.device, (double)(t.started_ns - t.submitted_ns) / 1e3,
           (double)t.device_ns / 1e3,
           (double)(t.finished_ns - t.submitted_ns) / 1e3);
done:
  free(in);
  free(out);
  emx_client_destroy(c); /* frees the tensors with the arena */
  return ex;
}

/* ---- status, ping -------------------------------------------------------- */

static const char STATUS_USAGE[] =
    "Usage: edgemux status [--socket PATH]\n"
    "Print edgemuxd's status report: devices, queues, per-model counters,\n"
    "latency percentiles, uptime and clients.\n";

static int cmd_status(int argc, char **argv) {
  int ex = parse_simple(argc, argv, STATUS_USAGE);
  if (ex >= 0)
    return ex;
  if (optind != argc)
    return usage_error("status", "unexpected argument '%s'", argv[optind]);
  emx_client *c;
  if ((ex = connect_client(&c, 0)))
    return ex;
  char *text;
  int rc = emx_client_status(c, &text);
  if (rc < 0) {
    ex = client_fail(c, rc);
  } else {
    size_t len = strlen(text);
    fputs(text, stdout);
    if (len && text[len - 1] != '\n')
      fputc('\n', stdout);
    free(text);
  }
  emx_client_destroy(c);
  return ex;
}

static const char PING_USAGE[] =
    "Usage: edgemux ping [--socket PATH] [-n COUNT]\n"
    "Send COUNT pings (default 1) through edgemuxd (no device is touched)\n"
    "and print each round trip in microseconds.\n";

static int cmd_ping(int argc, char **argv) {
  static const struct option opts[] = {{"socket", required_argument, 0, 'S'},
                                       {"count", required_argument, 0, 'n'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  long count = 1;
  int o;
  optind = 0;
  while ((o = getopt_long(argc, argv, ":n:h", opts, NULL)) != -1) {
    switch (o) {
    case 'S':
      socket_path = optarg;
      break;
    case 'n':
      if (parse_count(optarg, 1, 100000000L, &count) < 0)
        return usage_error("ping", "-n wants a positive count");
      break;
    case 'h':
      fputs(PING_USAGE, stdout);
      return 0;
    default:
      return bad_option("ping", o, argv);
    }
  }
  if (optind != argc)
    return usage_error("ping", "unexpected argument '%s'", argv[optind]);
  emx_client *c;
  int ex = connect_client(&c, 0);
  if (ex)
    return ex;
  double lo = 0, hi = 0, sum = 0;
  for (long i = 0; i < count; i++) {
    int64_t t0 = emx_now_ns();
    int rc = emx_client_ping(c);
    double us = (double)(emx_now_ns() - t0) / 1e3;
    if (rc < 0) {
      ex = client_fail(c, rc);
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

/* ---- bench --------------------------------------------------------------- */

static const char BENCH_USAGE[] =
    "Usage: edgemux bench [--socket PATH] MODEL [-c CLIENTS] [-n REQUESTS]\n"
    "                     [--batch B] [--warmup N] [--seed N]\n"
    "Fork CLIENTS processes (default 1); each connects on its own, fills its\n"
    "inputs with seeded random data, runs N warm-up requests (default 1, not\n"
    "counted), then REQUESTS (default 100) synchronous inferences. All start\n"
    "together. With --batch B (1..256, default 1) each client sends its\n"
    "requests B at a time, as one batch message, and waits for the B; a\n"
    "request's latency is then from its batch's submit to its completion.\n"
    "Prints requests, errors, wall time, throughput and the latency\n"
    "percentiles over every request of every client.\n";

/* What a bench child reports on its pipe: a 'R' byte once set up (or 'F'
 * and a result with the error), then the result and `count` latencies. */
typedef struct bench_result {
  int32_t failed;   /* setup failed: msg says why */
  uint32_t count;   /* latencies that follow (int64_t ns each) */
  uint32_t errors;  /* requests that failed */
  int64_t start_ns; /* first request sent (CLOCK_MONOTONIC) */
  int64_t end_ns;   /* last request done */
  char msg[256];    /* setup failure, or the first request error */
} bench_result;

static int write_all(int fd, const void *buf, size_t len) {
  const uint8_t *p = buf;
  while (len) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int read_all(int fd, void *buf, size_t len) {
  uint8_t *p = buf;
  while (len) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* bench_child runs in a forked process; never returns. */
/* run_batch sends k requests (inputs `in`, outputs out[j * mout...]) as one
 * batch and waits for them; lat[j] gets each one's latency. Returns the
 * number that failed; *rc the first failure. */
static long run_batch(emx_client *c, emx_client_model *m, const emx_tensor *in,
                      size_t min, const emx_tensor *out, size_t mout, long k,
                      int64_t *lat, int *rc) {
  emx_client_batch_item items[256];
  emx_client_request *reqs[256];
  for (long j = 0; j < k; j++)
    items[j] =
        (emx_client_batch_item){m, in, min, out + (size_t)j * mout, mout};
  int64_t t0 = emx_now_ns();
  *rc = emx_client_submit_batch(c, items, (size_t)k, NULL, reqs);
  if (*rc < 0)
    return k;
  long failed = 0;
  for (long j = 0; j < k; j++) {
    int st = emx_client_request_wait(reqs[j], -1);
    lat[j] = emx_now_ns() - t0;
    if (st < 0) {
      failed++;
      if (*rc == 0)
        *rc = st;
    }
    emx_client_request_destroy(reqs[j]);
  }
  return failed;
}

static void bench_child(int index, const char *name, size_t arena, long n,
                        long batch, long warmup, long seed, int go_fd,
                        int out_fd) {
  bench_result r;
  memset(&r, 0, sizeof r);
  int64_t *lat = calloc((size_t)n, sizeof *lat);
  emx_client_config cfg;
  emx_client_config_init(&cfg);
  cfg.socket_path = socket_path;
  cfg.arena_bytes = arena;
  emx_client *c = NULL;
  emx_client_model *m = NULL;
  emx_tensor *in = NULL, *out = NULL;
  int rc = lat ? emx_client_connect(&c, &cfg) : EMX_ENOMEM;
  if (rc < 0) {
    snprintf(r.msg, sizeof r.msg, "client %d: %s", index,
             lat ? emx_client_last_error(NULL) : "out of memory");
    goto setup_failed;
  }
  rc = emx_client_model_open(c, name, &m);
  size_t min = m ? emx_client_model_input_count(m) : 0;
  size_t mout = m ? emx_client_model_output_count(m) : 0;
  if (rc == 0) {
    in = calloc(min + 1, sizeof *in);
    out = calloc((size_t)batch * mout + 1, sizeof *out);
    rc = in && out ? alloc_all(c, m, in, out) : EMX_ENOMEM;
    /* A batch needs its own outputs per request; the input is shared. */
    for (long j = 1; rc == 0 && j < batch; j++)
      for (size_t i = 0; rc == 0 && i < mout; i++)
        rc =
            emx_client_tensor_alloc_output(c, m, i, &out[(size_t)j * mout + i]);
  }
  for (long w = 0; rc == 0 && w < warmup; w++) {
    for (size_t i = 0; i < min; i++)
      fill_random(&in[i], (uint64_t)seed + (uint64_t)index * 1000 + i);
    rc = emx_client_infer(c, m, in, min, out, mout, NULL);
  }
  if (rc < 0) {
    snprintf(r.msg, sizeof r.msg, "client %d: %s", index,
             emx_client_last_error(c));
    goto setup_failed;
  }
  if (write_all(out_fd, "R", 1) < 0)
    _exit(1);
  char ignored;
  while (read(go_fd, &ignored, 1) < 0 && errno == EINTR)
    ; /* EOF: the parent closed it — go */

  r.start_ns = emx_now_ns();
  for (long k = 0; batch > 1 && k < n; k += batch) {
    long take = n - k < batch ? n - k : batch;
    long failed = run_batch(c, m, in, min, out, mout, take, lat + r.count, &rc);
    if (failed) {
      if (r.errors == 0)
        snprintf(r.msg, sizeof r.msg, "client %d: %s", index,
                 emx_client_last_error(c));
      r.errors += (uint32_t)failed;
      if (rc == EMX_EDISCONNECTED) {
        r.errors += (uint32_t)(n - k - take);
        break;
      }
      continue;
    }
    r.count += (uint32_t)take;
  }
  for (long k = 0; batch == 1 && k < n; k++) {
    int64_t t0 = emx_now_ns();
    rc = emx_client_infer(c, m, in, min, out, mout, NULL);
    int64_t t1 = emx_now_ns();
    if (rc < 0) {
      if (r.errors++ == 0)
        snprintf(r.msg, sizeof r.msg, "client %d: %s", index,
                 emx_client_last_error(c));
      if (rc == EMX_EDISCONNECTED) {
        r.errors += (uint32_t)(n - k - 1); /* the rest would fail too */
        break;
      }
      continue;
    }
    lat[r.count++] = t1 - t0;
  }
  r.end_ns = emx_now_ns();
  emx_client_destroy(c);
  if (write_all(out_fd, &r, sizeof r) < 0 ||
      write_all(out_fd, lat, r.count * sizeof *lat) < 0)
    _exit(1);
  _exit(0);

setup_failed:
  r.failed = 1;
  emx_client_destroy(c);
  if (write_all(out_fd, "F", 1) == 0)
    write_all(out_fd, &r, sizeof r);
  _exit(1);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* percentile: nearest rank over sorted v[0..n). */
static double percentile_us(const int64_t *v, size_t n, double p) {
  if (n == 0)
    return 0;
  size_t rank = (size_t)ceil(p * (double)n);
  if (rank < 1)
    rank = 1;
  return (double)v[rank - 1] / 1e3;
}

static int cmd_bench(int argc, char **argv) {
  static const struct option opts[] = {{"socket", required_argument, 0, 'S'},
                                       {"clients", required_argument, 0, 'c'},
                                       {"requests", required_argument, 0, 'n'},
                                       {"warmup", required_argument, 0, 'w'},
                                       {"seed", required_argument, 0, 's'},
                                       {"batch", required_argument, 0, 'b'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  long clients = 1, requests = 100, warmup = 1, seed = 1, batch = 1;
  int o;
  optind = 0;
  while ((o = getopt_long(argc, argv, ":c:n:w:s:b:h", opts, NULL)) != -1) {
    switch (o) {
    case 'b':
      if (parse_count(optarg, 1, 256, &batch) < 0)
        return usage_error("bench", "--batch wants 1..256 requests");
      break;
    case 'S':
      socket_path = optarg;
      break;
    case 'c':
      if (parse_count(optarg, 1, 1024, &clients) < 0)
        return usage_error("bench", "-c wants 1..1024 clients");
      break;
    case 'n':
      if (parse_count(optarg, 1, 100000000L, &requests) < 0)
        return usage_error("bench", "-n wants a positive request count");
      break;
    case 'w':
      if (parse_count(optarg, 0, 1000000L, &warmup) < 0)
        return usage_error("bench", "--warmup wants a non-negative count");
      break;
    case 's':
      if (parse_count(optarg, 0, 0x7fffffffL, &seed) < 0)
        return usage_error("bench", "--seed wants a non-negative integer");
      break;
    case 'h':
      fputs(BENCH_USAGE, stdout);
      return 0;
    default:
      return bad_option("bench", o, argv);
    }
  }
  if (argc - optind != 1)
    return usage_error("bench", "expected one MODEL name");
  const char *name = argv[optind];

  /* Look the model up once here: a typo fails before anything forks, and
   * the children's arenas are sized to fit. */
  emx_client *probe;
  int ex = connect_client(&probe, 0);
  if (ex)
    return ex;
  emx_client_model *m;
  int rc = emx_client_model_open(probe, name, &m);
  if (rc < 0) {
    ex = client_fail(probe, rc);
    emx_client_destroy(probe);
    return ex;
  }
  size_t arena = arena_for(m, (size_t)batch);
  emx_client_destroy(probe);

  int go[2];
  if (pipe(go) < 0)
    return fail("pipe: %s", strerror(errno));
  int *res = calloc((size_t)clients, sizeof *res);
  pid_t *pids = calloc((size_t)clients, sizeof *pids);
  if (!res || !pids)
    return fail("out of memory");
  fflush(NULL); /* or the children would flush our buffers again */
  long started = 0;
  for (; started < clients; started++) {
    int p[2];
    if (pipe(p) < 0) {
      ex = fail("pipe: %s", strerror(errno));
      break;
    }
    pid_t pid = fork();
    if (pid < 0) {
      ex = fail("fork: %s", strerror(errno));
      close(p[0]);
      close(p[1]);
      break;
    }
    if (pid == 0) {
      close(go[1]);
      close(p[0]);
      for (long k = 0; k < started; k++)
        close(res[k]);
      bench_child((int)started, name, arena, requests, batch, warmup, seed,
                  go[0], p[1]);
    }
    close(p[1]);
    res[started] = p[0];
    pids[started] = pid;
  }
  close(go[0]);

  /* Wait until every child is ready, then start them together. */
  int setup_failed = ex != 0;
  for (long k = 0; k < started; k++) {
    char tag = 0;
    if (read_all(res[k], &tag, 1) < 0 || tag != 'R') {
      bench_result r;
      if (tag == 'F' && read_all(res[k], &r, sizeof r) == 0)
        fail("%s", r.msg);
      else
        fail("client %ld died during setup", k);
      setup_failed = 1;
    }
  }
  if (setup_failed) /* do not run a benchmark nobody will read */
    for (long k = 0; k < started; k++)
      kill(pids[k], SIGTERM);
  close(go[1]); /* go (children whose setup failed have exited) */

  size_t cap = (size_t)started * (size_t)requests;
  int64_t *all = setup_failed ? NULL : malloc((cap ? cap : 1) * sizeof *all);
  size_t total = 0;
  uint64_t errors = 0;
  int64_t t_start = INT64_MAX, t_end = 0;
  char first_error[256] = "";
  for (long k = 0; k < started && !setup_failed; k++) {
    bench_result r;
    if (!all || read_all(res[k], &r, sizeof r) < 0 || r.failed ||
        r.count > (uint32_t)requests ||
        read_all(res[k], all + total, r.count * sizeof *all) < 0) {
      ex = fail("client %ld died while benchmarking", k);
      errors += (uint64_t)requests;
      continue;
    }
    total += r.count;
    errors += r.errors;
    if (r.errors && !first_error[0])
      snprintf(first_error, sizeof first_error, "%s", r.msg);
    t_start = r.start_ns < t_start ? r.start_ns : t_start;
    t_end = r.end_ns > t_end ? r.end_ns : t_end;
  }
  for (long k = 0; k < started; k++) {
    close(res[k]);
    int st;
    while (waitpid(pids[k], &st, 0) < 0 && errno == EINTR)
      ;
  }
  free(res);
  free(pids);
  if (setup_failed) {
    free(all);
    return EXIT_RUNTIME;
  }

  qsort(all, total, sizeof *all, cmp_i64);
  double wall = t_end > t_start ? (double)(t_end - t_start) / 1e9 : 0;
  printf("model       %s\n", name);
  printf("clients     %ld\n", clients);
  printf("requests    %zu\n", total);
  printf("errors      %" PRIu64 "\n", errors);
  printf("wall        %.3f s\n", wall);
  printf("throughput  %.1f req/s\n", wall > 0 ? (double)total / wall : 0.0);
  printf("latency_us  p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n",
         percentile_us(all, total, 0.50), percentile_us(all, total, 0.90),
         percentile_us(all, total, 0.99),
         total ? (double)all[total - 1] / 1e3 : 0.0);
  free(all);
  if (errors) {
    fail("%" PRIu64 " request%s failed; first: %s", errors,
         errors == 1 ? "" : "s", first_error);
    return EXIT_RUNTIME;
  }
  return ex;
}

/* ---- main ---------------------------------------------------------------- */

typedef struct command {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} command;

static const command commands[] = {
    {"models", cmd_models, "list the daemon's models"},
    {"info", cmd_info, "describe a model's inputs and outputs"},
    {"infer", cmd_infer, "run a model once on files or random data"},
    {"status", cmd_status, "print the daemon's status report"},
    {"ping", cmd_ping, "measure a round trip through the daemon"},
    {"bench", cmd_bench, "benchmark a model from many processes"},
};

static void print_usage(FILE *f) {
  char def[256];
  emx_client_default_socket(def, sizeof def);
  fprintf(f, "Usage: edgemux [--socket PATH] COMMAND [ARGS...]\n"
             "       edgemux --help | --version\n"
             "Talk to edgemuxd, the edgemux inference daemon.\n\n"
             "Commands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
  fprintf(f,
          "\nOptions:\n"
          "  --socket PATH  daemon socket (now: %s;\n"
          "                 from $EDGEMUX_SOCKET, else "
          "$XDG_RUNTIME_DIR/edgemux.sock,\n"
          "                 else /run/edgemux/edgemux.sock)\n"
          "  --help         this text; 'edgemux COMMAND --help' for a "
          "command\n"
          "  --version      print the version\n\n"
          "Exit status: 0 success, 1 failure, 2 usage error.\n",
          def);
}

int main(int argc, char **argv) {
  static const struct option opts[] = {{"socket", required_argument, 0, 'S'},
                                       {"help", no_argument, 0, 'h'},
                                       {"version", no_argument, 0, 'V'},
                                       {0, 0, 0, 0}};
  int o;
  opterr = 0;
  while ((o = getopt_long(argc, argv, "+:hV", opts, NULL)) != -1) {
    switch (o) {
    case 'S':
      socket_path = optarg;
      break;
    case 'h':
      print_usage(stdout);
      return 0;
    case 'V':
      printf("edgemux %s\n", emx_version());
      return 0;
    default:
      return bad_option(NULL, o, argv);
    }
  }
  if (optind == argc)
    return usage_error(NULL, "no command given");
  const char *name = argv[optind];
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(name, commands[i].name) == 0)
      return commands[i].run(argc - optind, argv + optind);
  return usage_error(NULL, "unknown command '%s'", name);
}
