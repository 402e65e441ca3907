/* cmd_bench.c — edgemux bench: benchmark a model from many processes. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"

enum { O_CLIENTS, O_REQUESTS, O_BATCH, O_WARMUP, O_SEED };

static const cli_option options[] = {
    [O_CLIENTS] = {"clients", 'c', CLI_INT, "CLIENTS",
                   "processes, each with its own connection", 1, 1024, 1},
    [O_REQUESTS] = {"requests", 'n', CLI_INT, "REQUESTS",
                    "timed requests per client", 1, 100000000L, 100},
    [O_BATCH] = {"batch", 'b', CLI_INT, "B",
                 "send a client's requests B at a time as one batch message", 1,
                 256, 1},
    [O_WARMUP] = {"warmup", 'w', CLI_INT, "N",
                  "warm-up requests per client, not counted", 0, 1000000L, 1},
    [O_SEED] = {"seed", 's', CLI_INT, "N", "seed of the random inputs", 0,
                0x7fffffffL, 1},
    {0},
};

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

/* bench_child runs in a forked process; never returns. */
static void bench_child(int index, const char *name, size_t arena, long n,
                        long batch, long warmup, long seed, int go_fd,
                        int out_fd) {
  bench_result r;
  memset(&r, 0, sizeof r);
  int64_t *lat = calloc((size_t)n, sizeof *lat);
  emx_client_config cfg;
  emx_client_config_init(&cfg);
  cfg.socket_path = cli_socket;
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
    rc = in && out ? cli_alloc_all(c, m, in, out) : EMX_ENOMEM;
    /* A batch needs its own outputs per request; the input is shared. */
    for (long j = 1; rc == 0 && j < batch; j++)
      for (size_t i = 0; rc == 0 && i < mout; i++)
        rc =
            emx_client_tensor_alloc_output(c, m, i, &out[(size_t)j * mout + i]);
  }
  for (long w = 0; rc == 0 && w < warmup; w++) {
    for (size_t i = 0; i < min; i++)
      cli_fill_random(&in[i], (uint64_t)seed + (uint64_t)index * 1000 + i);
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

static int run(const cli_args *a) {
  long clients = a->opt[O_CLIENTS].num, requests = a->opt[O_REQUESTS].num;
  long warmup = a->opt[O_WARMUP].num, seed = a->opt[O_SEED].num;
  long batch = a->opt[O_BATCH].num;
  const char *name = a->operand[0];

  /* Look the model up once here: a typo fails before anything forks, and
   * the children's arenas are sized to fit. */
  emx_client *probe;
  int ex = cli_connect(&probe, 0);
  if (ex)
    return ex;
  emx_client_model *m;
  int rc = emx_client_model_open(probe, name, &m);
  if (rc < 0) {
    ex = cli_client_fail(probe, rc);
    emx_client_destroy(probe);
    return ex;
  }
  size_t arena = cli_arena_for(m, (size_t)batch);
  emx_client_destroy(probe);

  int go[2];
  if (pipe(go) < 0)
    return cli_fail("pipe: %s", strerror(errno));
  int *res = calloc((size_t)clients, sizeof *res);
  pid_t *pids = calloc((size_t)clients, sizeof *pids);
  if (!res || !pids)
    return cli_fail("out of memory");
  fflush(NULL); /* or the children would flush our buffers again */
  long started = 0;
  for (; started < clients; started++) {
    int p[2];
    if (pipe(p) < 0) {
      ex = cli_fail("pipe: %s", strerror(errno));
      break;
    }
    pid_t pid = fork();
    if (pid < 0) {
      ex = cli_fail("fork: %s", strerror(errno));
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
        cli_fail("%s", r.msg);
      else
        cli_fail("client %ld died during setup", k);
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
      ex = cli_fail("client %ld died while benchmarking", k);
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
    return CLI_EXIT_RUNTIME;
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
    cli_fail("%" PRIu64 " request%s failed; first: %s", errors,
             errors == 1 ? "" : "s", first_error);
    return CLI_EXIT_RUNTIME;
  }
  return ex;
}

const cli_command cli_cmd_bench = {
    .name = "bench",
    .operands = "MODEL",
    .min_operands = 1,
    .max_operands = 1,
    .summary = "benchmark a model from many processes",
    .about =
        "Fork CLIENTS processes; each connects on its own, fills its inputs\n"
        "with seeded random data, runs N warm-up requests, then REQUESTS\n"
        "synchronous inferences. All start together. With --batch B each\n"
        "client sends its requests B at a time, as one batch message, and\n"
        "waits for the B; a request's latency is then from its batch's\n"
        "submit to its completion. Prints requests, errors, wall time,\n"
        "throughput and the latency percentiles over every request of\n"
        "every client.",
    .options = options,
    .run = run,
};
