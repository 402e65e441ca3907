/* One file, over 800 lines: both sides of every ratio are measured in
 * alternating slices of the same run, so the baseline loops and the edgemuxd
 * loops live together; bench/common holds what other benchmarks share. */
/*
 * bench/daemon.c — what going through edgemuxd costs: over a bare TFLite
 * interpreter (throughput), over a bare socket round trip (latency), and in
 * memory.
 *
 * The program starts its own edgemuxd (the one next to this executable) on
 * a temporary socket, with one CPU device of one thread and the model
 * repository (--repo). Throughput: CLIENTS processes, each calling
 * emx_client_infer in a closed loop, against the direct baseline — one
 * thread looping over a bare interpreter: copy the input in, invoke, copy
 * the outputs out. Round trip: emx_client_ping (a request that touches no
 * device) against a bare SOCK_SEQPACKET ping-pong of the same 16-byte
 * packets between two processes. Each round measures both sides of a ratio
 * in alternating slices of half a second, so that drift on a noisy machine
 * hits both alike; the results are medians over rounds of per-round ratios.
 * Memory is measured first, on a second daemon started with an empty
 * repository: its resident set after startup, and what 64 idle connections
 * (1 MiB arenas, never touched) add to it. The last four lines have the
 * form `name: value (target ...)`.
 */
#include <edgemux/client.h>
#include <edgemux/edgemux.h>
#include <tensorflow/lite/c/c_api.h>

#include "common/baseline.h"
#include "common/daemon.h"
#include "common/sys.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TENSORS 8

/* Client processes against the daemon's one worker: enough to keep its
 * queue non-empty, so the worker never waits for a client (as bench-engine's
 * 4 client threads). */
#define CLIENTS 4

/* The memory measurement: idle connections, each with an arena this big. */
#define IDLE_CONNECTIONS 64
#define IDLE_ARENA_BYTES ((size_t)1 << 20)

#define PING_BYTES 16     /* a PING (and PONG) packet: the bare header */
#define SLICE_SECONDS 0.5 /* measurements alternate in slices this long */
#define DEVICE_SPEC "cpu:workers=1,threads=1"
#define DEFAULT_MODEL "face_detection_short_range"

typedef struct options {
  double seconds;    /* length of each throughput measurement */
  int rounds;        /* measurement rounds */
  const char *repo;  /* model repository */
  const char *model; /* its model to run */
} options;

/* buffers holds one set of input and output tensors. */
typedef struct buffers {
  size_t input_count;
  size_t output_count;
  emx_tensor inputs[MAX_TENSORS];
  emx_tensor outputs[MAX_TENSORS];
} buffers;

/* tally adds up a throughput measurement taken in slices. */
typedef struct tally {
  uint64_t calls;    /* requests completed inside the windows */
  int64_t ns;        /* total length of the windows */
  int64_t cpu_ns;    /* CPU time of the daemon (all its threads) or of the
                        direct loop's thread meanwhile */
  int64_t worker_ns; /* CPU time of the daemon's busiest thread */
} tally;

static double tally_rate(const tally *t) {
  return t->ns > 0 ? (double)t->calls / ((double)t->ns / 1e9) : 0;
}

/* tally_cpu_ms: CPU milliseconds per request. */
static double tally_cpu_ms(const tally *t, int64_t ns) {
  return t->calls ? (double)ns / 1e6 / (double)t->calls : 0;
}

static int64_t thread_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* stat_cpu_ns reads user + system time from a /proc .../stat file
 * (clock-tick resolution), or -1. */
static int64_t stat_cpu_ns(const char *path) {
  char buf[1024];
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* Fields after the command name, which is in parentheses: state is the
   * 3rd field, utime and stime the 14th and 15th. */
  const char *p = strrchr(buf, ')');
  unsigned long long utime, stime;
  if (!p ||
      sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
             &utime, &stime) != 2)
    return -1;
  long hz = sysconf(_SC_CLK_TCK);
  return (int64_t)((utime + stime) * (1000000000ULL / (unsigned long long)hz));
}

#define MAX_THREADS 64

/* cpu_snapshot is a process's CPU time, in all and per thread. */
typedef struct cpu_snapshot {
  int64_t total;
  int count;
  pid_t tid[MAX_THREADS];
  int64_t ns[MAX_THREADS];
} cpu_snapshot;

static void cpu_snap(pid_t pid, cpu_snapshot *s) {
  char path[96];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  s->total = stat_cpu_ns(path);
  s->count = 0;
  snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
  DIR *dir = opendir(path);
  if (!dir)
    return;
  struct dirent *de;
  while ((de = readdir(dir)) && s->count < MAX_THREADS) {
    if (de->d_name[0] == '.')
      continue;
    pid_t tid = (pid_t)atoi(de->d_name);
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)pid, (int)tid);
    s->tid[s->count] = tid;
    s->ns[s->count++] = stat_cpu_ns(path);
  }
  closedir(dir);
}

/* busiest_delta: the largest CPU time one thread used between a and b (for
 * the daemon under load: its worker). */
static int64_t busiest_delta(const cpu_snapshot *a, const cpu_snapshot *b) {
  int64_t most = 0;
  for (int i = 0; i < b->count; i++)
    for (int j = 0; j < a->count; j++)
      if (a->tid[j] == b->tid[i] && b->ns[i] - a->ns[j] > most)
        most = b->ns[i] - a->ns[j];
  return most;
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

/* sleep_until sleeps to an absolute emx_now_ns() time (CLOCK_MONOTONIC:
 * one clock for every process of the machine). */
static void sleep_until(int64_t when) {
  struct timespec ts = {when / 1000000000, when % 1000000000};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

/* ------------------------------------------------------------------------ */
/* Buffers: in the heap (the baseline) or in a client's arena                */

static void buffers_free(buffers *b, emx_client *arena_owner) {
  for (size_t i = 0; i < b->input_count; i++)
    if (arena_owner)
      emx_client_tensor_free(arena_owner, &b->inputs[i]);
    else
      free(b->inputs[i].data);
  for (size_t i = 0; i < b->output_count; i++)
    if (arena_owner)
      emx_client_tensor_free(arena_owner, &b->outputs[i]);
    else
      free(b->outputs[i].data);
  memset(b, 0, sizeof *b);
}

static int tensor_alloc(emx_client *c, emx_tensor *t, emx_dtype dtype,
                        size_t size) {
  if (c)
    return emx_client_tensor_alloc(c, dtype, size, t) < 0 ? -1 : 0;
  return bench_tensor_alloc(t, dtype, size);
}

/* buffers_for_model allocates tensors shaped like the model's — in c's
 * arena, or in the heap when c is NULL — with a random input derived from
 * seed (equal seeds give equal inputs). */
static int buffers_for_model(buffers *b, emx_client *c,
                             const emx_client_model *model, uint32_t seed) {
  memset(b, 0, sizeof *b);
  size_t in_count = emx_client_model_input_count(model);
  size_t out_count = emx_client_model_output_count(model);
  if (in_count > MAX_TENSORS || out_count > MAX_TENSORS) {
    fprintf(stderr, "bench-daemon: model has more than %d inputs or outputs\n",
            MAX_TENSORS);
    return -1;
  }
  for (size_t i = 0; i < in_count; i++) {
    emx_tensor_info info;
    emx_client_model_input_info(model, i, &info);
    if (tensor_alloc(c, &b->inputs[b->input_count], info.dtype, info.bytes) < 0)
      goto fail;
    b->input_count++;
    bench_fill_random(&b->inputs[i], &seed);
  }
  for (size_t i = 0; i < out_count; i++) {
    emx_tensor_info info;
    emx_client_model_output_info(model, i, &info);
    if (tensor_alloc(c, &b->outputs[b->output_count], info.dtype, info.bytes) <
        0)
      goto fail;
    b->output_count++;
  }
  return 0;
fail:
  fprintf(stderr, "bench-daemon: out of memory for tensors%s%s\n",
          c ? ": " : "", c ? emx_client_last_error(c) : "");
  buffers_free(b, c);
  return -1;
}

/* ------------------------------------------------------------------------ */
/* The direct baseline                                                       */

/* ---- pinning ----------------------------------------------------------------
 * The device work of both sides (edgemuxd's worker thread, and this process
 * during the direct loop) runs on one CPU, the clients on the other: this
 * VM's two vCPUs drift apart in speed, and work compared across CPUs would
 * measure the host. */
#define DEVICE_CPU 1
#define CALLER_CPU 0

/* direct_loop runs the baseline for `seconds`, adding its calls and time
 * to *t; 0 or -1. */
static int direct_loop(baseline *d, buffers *b, double seconds, tally *t) {
  int64_t cpu = thread_cpu_ns();
  int64_t start = emx_now_ns();
  int64_t end = start + (int64_t)(seconds * 1e9);
  int64_t now = start;
  uint64_t calls = 0;
  while (now < end) {
    if (baseline_run(d, b->inputs, b->input_count, b->outputs,
                     b->output_count) < 0) {
      fprintf(stderr, "bench-daemon: direct invoke failed\n");
      return -1;
    }
    now = emx_now_ns();
    calls++;
  }
  t->calls += calls;
  t->ns += now - start;
  t->cpu_ns += thread_cpu_ns() - cpu;
  return 0;
}

/* direct_side runs the direct loop on the device CPU when pinning. */
static int direct_side(baseline *d, buffers *b, double seconds, tally *t,
                       bool pinned) {
  if (pinned)
    bench_pin(0, DEVICE_CPU);
  int rc = direct_loop(d, b, seconds, t);
  if (pinned)
    bench_pin(0, -1);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* The daemon                                                                */

/* start_daemon runs edgemuxd with one CPU device of one thread, serving
 * repo, and waits until it answers a ping. */
static int start_daemon(bench_daemon *d, const char *repo) {
  const char *args[] = {
      "--models", repo, "--device", DEVICE_SPEC, "--log-level", "warn",
      /* 64 idle connections plus the readiness check: above the default
       * per-user limit of 64. */
      "--max-conns-per-uid", "256", NULL};
  return bench_daemon_start(d, "bench-daemon", args);
}

static int connect_to(const bench_daemon *d, size_t arena_bytes,
                      emx_client **c) {
  int rc = bench_daemon_connect(d, arena_bytes, c);
  if (rc < 0)
    fprintf(stderr, "bench-daemon: emx_client_connect(%s): %s: %s\n", d->socket,
            emx_err_name(rc), emx_client_last_error(NULL));
  return rc;
}

static int client_infer(emx_client *c, emx_client_model *m, buffers *b) {
  int rc = emx_client_infer(c, m, b->inputs, b->input_count, b->outputs,
                            b->output_count, NULL);
  if (rc < 0)
    fprintf(stderr, "bench-daemon: emx_client_infer: %s: %s\n",
            emx_err_name(rc), emx_client_last_error(c));
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Client processes                                                          */

/* A command from the parent: run from start_ns to end_ns (emx_now_ns
 * clock); end_ns 0 means exit. */
typedef struct command {
  int64_t start_ns;
  int64_t end_ns;
} command;

/* A child's answer: requests completed inside the window, or rc < 0. Sent
 * once with done = 0 when the child is ready. */
typedef struct answer {
  int rc;
  uint64_t done;
} answer;

/* worker is one client process as its parent sees it. */
typedef struct worker {
  pid_t pid;
  int cmd_fd; /* parent → child */
  int ans_fd; /* child → parent */
} worker;

/* worker_main: connect, open the model, allocate, then serve commands. */
static void worker_main(const bench_daemon *d, const char *model, int index,
                        int cmd_fd, int ans_fd) {
  answer a = {0, 0};
  emx_client *c = NULL;
  emx_client_model *m = NULL;
  buffers b;
  a.rc = connect_to(d, 8u << 20, &c);
  if (a.rc == 0) {
    a.rc = emx_client_model_open(c, model, &m);
    if (a.rc < 0)
      fprintf(stderr, "bench-daemon: emx_client_model_open(%s): %s\n", model,
              emx_client_last_error(c));
  }
  if (a.rc == 0 && buffers_for_model(&b, c, m, 1000u + (uint32_t)index) < 0)
    a.rc = EMX_ENOMEM;
  if (a.rc == 0)
    a.rc = client_infer(c, m, &b); /* warm */
  if (bench_write_full(ans_fd, &a, sizeof a) < 0 || a.rc < 0)
    _exit(1);
  command cmd;
  while (bench_read_full(cmd_fd, &cmd, sizeof cmd, 0) == 0 && cmd.end_ns != 0) {
    a.done = 0;
    sleep_until(cmd.start_ns);
    for (;;) {
      a.rc = client_infer(c, m, &b);
      int64_t now = emx_now_ns();
      if (a.rc < 0 || now >= cmd.end_ns)
        break; /* a request that finishes after the window is not counted */
      a.done++;
    }
    if (bench_write_full(ans_fd, &a, sizeof a) < 0 || a.rc < 0)
      break;
  }
  emx_client_destroy(c);
  _exit(a.rc < 0 ? 1 : 0);
}

static int workers_start(worker *w, int n, const bench_daemon *d,
                         const char *model) {
  for (int i = 0; i < n; i++) {
    int cmd[2], ans[2];
    if (pipe(cmd) < 0 || pipe(ans) < 0) {
      perror("bench-daemon: pipe");
      return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
      perror("bench-daemon: fork");
      return -1;
    }
    if (pid == 0) {
      close(cmd[1]);
      close(ans[0]);
      for (int j = 0; j < i; j++) {
        close(w[j].cmd_fd);
        close(w[j].ans_fd);
      }
      worker_main(d, model, i, cmd[0], ans[1]);
    }
    close(cmd[0]);
    close(ans[1]);
    w[i] = (worker){pid, cmd[1], ans[0]};
  }
  for (int i = 0; i < n; i++) {
    answer a;
    if (bench_read_full(w[i].ans_fd, &a, sizeof a, 0) < 0 || a.rc < 0) {
      fprintf(stderr, "bench-daemon: client process %d failed to start\n", i);
      return -1;
    }
  }
  return 0;
}

static void workers_stop(worker *w, int n) {
  command quit = {0, 0};
  for (int i = 0; i < n; i++)
    if (w[i].pid > 0) {
      bench_write_full(w[i].cmd_fd, &quit, sizeof quit);
      close(w[i].cmd_fd);
      close(w[i].ans_fd);
    }
  for (int i = 0; i < n; i++)
    if (w[i].pid > 0) {
      while (waitpid(w[i].pid, NULL, 0) < 0 && errno == EINTR) {
      }
      w[i].pid = 0;
    }
}

/* daemon_throughput has the n client processes run closed loops for
 * `seconds`, adding their requests, the window and the daemon's CPU time to
 * *t; 0 or -1. */
static int daemon_throughput(worker *w, int n, double seconds, pid_t daemon,
                             tally *t) {
  static cpu_snapshot before, after;
  cpu_snap(daemon, &before);
  int64_t start = emx_now_ns() + 20000000; /* every child is waiting then */
  command cmd = {start, start + (int64_t)(seconds * 1e9)};
  for (int i = 0; i < n; i++)
    if (bench_write_full(w[i].cmd_fd, &cmd, sizeof cmd) < 0)
      return -1;
  uint64_t total = 0;
  int failed = 0;
  for (int i = 0; i < n; i++) {
    answer a;
    if (bench_read_full(w[i].ans_fd, &a, sizeof a, 0) < 0 || a.rc < 0)
      failed = 1;
    else
      total += a.done;
  }
  if (failed) {
    fprintf(stderr, "bench-daemon: a client process failed\n");
    return -1;
  }
  t->calls += total;
  t->ns += cmd.end_ns - cmd.start_ns;
  cpu_snap(daemon, &after);
  t->cpu_ns += after.total - before.total;
  t->worker_ns += busiest_delta(&before, &after);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Round trips                                                               */

/* ping_loop pings through the daemon for `seconds`, adding each round trip
 * to lat; 0 or -1. */
static int ping_loop(emx_client *c, double seconds, bench_samples *lat) {
  int64_t end = emx_now_ns() + (int64_t)(seconds * 1e9);
  int64_t now = emx_now_ns();
  while (now < end) {
    int64_t before = now;
    int rc = emx_client_ping(c);
    if (rc < 0) {
      fprintf(stderr, "bench-daemon: emx_client_ping: %s: %s\n",
              emx_err_name(rc), emx_client_last_error(c));
      return -1;
    }
    now = emx_now_ns();
    if (bench_samples_add(lat, (double)(now - before)) < 0)
      return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Admin stall                                                               */

/* A 10 MB-class client model, new bytes each time (the pad's last word
 * varies), loaded and unloaded in a loop on its own connection. */
#define STALL_MODEL "hand_landmark_full"
#define STALL_BYTES (10u << 20)

typedef struct stall_loader {
  const bench_daemon *d;
  uint8_t *bytes; /* the model, zero-padded to STALL_BYTES */
  atomic_int stop;
  int loads, errors;
} stall_loader;

static void *stall_loader_main(void *arg) {
  stall_loader *l = arg;
  emx_client *c;
  if (connect_to(l->d, 0, &c) < 0) {
    l->errors++;
    return NULL;
  }
  for (uint32_t n = 1; !atomic_load(&l->stop); n++) {
    memcpy(l->bytes + STALL_BYTES - sizeof n, &n, sizeof n);
    emx_client_model *m;
    if (emx_client_model_load_bytes(c, "stall", l->bytes, STALL_BYTES, &m) <
            0 ||
        emx_client_model_unload(c, "stall") < 0) {
      fprintf(stderr, "bench-daemon: admin stall loader: %s\n",
              emx_client_last_error(c));
      l->errors++;
      break;
    }
    l->loads++;
  }
  emx_client_destroy(c);
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double p99_us(bench_samples *s) {
  qsort(s->values, s->count, sizeof *s->values, cmp_double);
  return bench_percentile(s->values, s->count, 99) / 1e3;
}

/* admin_stall measures another client's PING p99 while a model loads and
 * unloads in a loop, beside the same p99 with the daemon otherwise idle. */
static int admin_stall(const bench_daemon *d, const char *repo, emx_client *c,
                       double seconds, double *quiet, double *loading,
                       int *loads) {
  char path[PATH_MAX];
  int n = snprintf(path, sizeof path, "%s/%s/model.tflite", repo, STALL_MODEL);
  FILE *f = n > 0 && (size_t)n < sizeof path ? fopen(path, "rb") : NULL;
  stall_loader l = {.d = d, .bytes = calloc(1, STALL_BYTES)};
  size_t got = f && l.bytes ? fread(l.bytes, 1, STALL_BYTES, f) : 0;
  if (f)
    fclose(f);
  if (got == 0 || got == STALL_BYTES) {
    fprintf(stderr,
            "bench-daemon: cannot read %s (or it is not under %u "
            "bytes)\n",
            path, STALL_BYTES);
    free(l.bytes);
    return -1;
  }
  bench_samples a = {0}, b = {0};
  int rc = ping_loop(c, seconds / 2, &a);
  pthread_t t;
  if (rc == 0 && pthread_create(&t, NULL, stall_loader_main, &l) == 0) {
    rc = ping_loop(c, seconds, &b);
    atomic_store(&l.stop, 1);
    pthread_join(t, NULL);
  } else {
    rc = -1;
  }
  if (rc == 0 && (l.errors || !a.count || !b.count))
    rc = -1;
  if (rc == 0) {
    *quiet = p99_us(&a);
    *loading = p99_us(&b);
    *loads = l.loads;
  }
  free(a.values);
  free(b.values);
  free(l.bytes);
  return rc;
}

/* bare is the transport baseline: a forked echo process at the other end
 * of a SOCK_SEQPACKET socketpair. */
typedef struct bare {
  int fd;
  pid_t pid;
} bare;

static int bare_open(bare *b) {
  int sv[2];
  b->fd = -1;
  b->pid = 0;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    perror("bench-daemon: socketpair");
    return -1;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    perror("bench-daemon: fork");
    close(sv[0]);
    close(sv[1]);
    return -1;
  }
  if (pid == 0) {
    close(sv[0]);
    char buf[PING_BYTES];
    for (;;) {
      ssize_t n = recv(sv[1], buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0 || send(sv[1], buf, (size_t)n, MSG_NOSIGNAL) != n)
        _exit(0);
    }
  }
  close(sv[1]);
  b->fd = sv[0];
  b->pid = pid;
  return 0;
}

static void bare_close(bare *b) {
  if (b->fd >= 0)
    close(b->fd); /* the echo process sees EOF and exits */
  if (b->pid > 0)
    while (waitpid(b->pid, NULL, 0) < 0 && errno == EINTR) {
    }
  b->fd = -1;
  b->pid = 0;
}

/* bare_loop ping-pongs PING_BYTES packets with the echo process for
 * `seconds`, adding each round trip to lat; 0 or -1. */
static int bare_loop(bare *b, double seconds, bench_samples *lat) {
  /* A PING header: magic "MX", version 1, type 14, length 16, id 0. */
  char msg[PING_BYTES] = {0x4d, 0x58, 1, 14, PING_BYTES}, back[PING_BYTES];
  int64_t end = emx_now_ns() + (int64_t)(seconds * 1e9);
  int64_t now = emx_now_ns();
  while (now < end) {
    int64_t before = now;
    if (send(b->fd, msg, sizeof msg, MSG_NOSIGNAL) != (ssize_t)sizeof msg ||
        recv(b->fd, back, sizeof back, 0) != (ssize_t)sizeof back) {
      perror("bench-daemon: socketpair ping-pong");
      return -1;
    }
    now = emx_now_ns();
    if (bench_samples_add(lat, (double)(now - before)) < 0)
      return -1;
  }
  return 0;
}

/* roundtrip_placed measures the daemon ping and the bare ping-pong with
 * both ends placed alike: this thread (the caller) on CALLER_CPU, and the
 * far end (edgemuxd's I/O thread, the echo process) on `far_cpu`; -1
 * leaves both ends unpinned. Slices alternate the two sides. Returns the
 * ratio of the medians (and the two medians in us), or a negative number
 * on failure. */
static double roundtrip_placed(emx_client *c, pid_t io_tid, bare *pair,
                               int far_cpu, double seconds, double *ping_us,
                               double *bare_us) {
  bench_samples ping = {0}, bar = {0};
  double ratio = -1;
  bool pinned = far_cpu >= 0;
  bench_pin(0, pinned ? CALLER_CPU : -1);
  bench_pin(io_tid, far_cpu);
  bench_pin(pair->pid, far_cpu);
  for (int s = 0; s < 4; s++) {
    if ((s % 2 == 0 ? ping_loop(c, seconds / 4, &ping)
                    : bare_loop(pair, seconds / 4, &bar)) < 0)
      goto out;
  }
  *ping_us = bench_median(ping.values, ping.count) / 1e3;
  *bare_us = bench_median(bar.values, bar.count) / 1e3;
  ratio = *ping_us / *bare_us;
out:
  bench_pin(0, -1);
  bench_pin(pair->pid, -1);
  free(ping.values);
  free(bar.values);
  return ratio;
}

/* ------------------------------------------------------------------------ */
/* Memory                                                                    */

/* measure_memory starts a daemon without models, reads its resident set,
 * opens IDLE_CONNECTIONS connections with small arenas and reads it again;
 * per round, then medians. */
static int measure_memory(const options *opt, long *base, long *per_conn) {
  double *bases = calloc((size_t)opt->rounds, sizeof *bases);
  double *conns = calloc((size_t)opt->rounds, sizeof *conns);
  emx_client **clients = calloc(IDLE_CONNECTIONS, sizeof *clients);
  bench_repo empty = {0};
  int rc = -1;
  if (!bases || !conns || !clients ||
      bench_repo_make(&empty, "bench-daemon", NULL, NULL) < 0)
    goto done;
  for (int r = 0; r < opt->rounds; r++) {
    bench_daemon d;
    if (start_daemon(&d, empty.dir) < 0)
      goto done;
    bench_sleep_ns(100000000); /* let startup settle */
    long before = bench_rss_kib(d.pid);
    int opened = 0;
    for (; opened < IDLE_CONNECTIONS; opened++)
      if (connect_to(&d, IDLE_ARENA_BYTES, &clients[opened]) < 0)
        break;
    /* One round trip on the last: every hello before it was served. */
    if (opened == IDLE_CONNECTIONS && emx_client_ping(clients[opened - 1]) < 0)
      opened = -opened;
    bench_sleep_ns(100000000);
    long after = bench_rss_kib(d.pid);
    for (int i = 0; i < (opened < 0 ? -opened : opened); i++)
      emx_client_destroy(clients[i]);
    int stopped = bench_daemon_stop(&d);
    if (opened != IDLE_CONNECTIONS || before < 0 || after < 0 || stopped != 0) {
      fprintf(stderr, "bench-daemon: memory measurement failed\n");
      goto done;
    }
    bases[r] = (double)before;
    conns[r] = (double)(after - before) / IDLE_CONNECTIONS;
    printf("memory %d/%d: daemon without models %ld KiB, %d idle "
           "connections %+ld KiB (%.1f KiB each)\n",
           r + 1, opt->rounds, before, IDLE_CONNECTIONS, after - before,
           conns[r]);
    fflush(stdout);
  }
  *base = lround(bench_median(bases, (size_t)opt->rounds));
  *per_conn = lround(bench_median(conns, (size_t)opt->rounds));
  rc = 0;
done:
  bench_repo_remove(&empty);
  free(bases);
  free(conns);
  free(clients);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Main                                                                      */

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench-daemon [--seconds S] [--rounds R] [--repo DIR] "
          "[--model NAME]\n"
          "\n"
          "Compares edgemuxd (started here, next to this program, with one\n"
          "CPU device of one thread) with a bare TFLite interpreter loop and\n"
          "a bare socket round trip, and measures the daemon's memory.\n"
          "  --seconds S   length of each throughput measurement; round\n"
          "                trips take S/2 each (default 3)\n"
          "  --rounds R    rounds; results are medians over rounds "
          "(default 5)\n"
          "  --repo DIR    model repository (default %s)\n"
          "  --model NAME  the repository's model to run (default %s)\n",
          EMX_MODELS_DIR "/../repo", DEFAULT_MODEL);
}

/* parse_args returns 0 to run, 1 after --help, -1 on a bad argument. */
static int parse_args(int argc, char **argv, options *opt) {
  opt->seconds = 3;
  opt->rounds = 5;
  opt->repo = EMX_MODELS_DIR "/../repo";
  opt->model = DEFAULT_MODEL;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *value = i + 1 < argc ? argv[i + 1] : "";
    char *end;
    bool ok = true;
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      usage(stdout);
      return 1;
    } else if (strcmp(arg, "--seconds") == 0) {
      opt->seconds = strtod(value, &end);
      ok = *value && !*end && opt->seconds > 0 && opt->seconds < 3600;
      i++;
    } else if (strcmp(arg, "--rounds") == 0) {
      long rounds = strtol(value, &end, 10);
      ok = *value && !*end && rounds >= 1 && rounds <= 1000;
      opt->rounds = (int)rounds;
      i++;
    } else if (strcmp(arg, "--repo") == 0) {
      opt->repo = value;
      ok = *value;
      i++;
    } else if (strcmp(arg, "--model") == 0) {
      opt->model = value;
      ok = *value && !strchr(value, '/');
      i++;
    } else {
      fprintf(stderr, "bench-daemon: unknown argument '%s'\n", arg);
      usage(stderr);
      return -1;
    }
    if (!ok) {
      fprintf(stderr, "bench-daemon: bad value '%s' for %s\n", value, arg);
      usage(stderr);
      return -1;
    }
  }
  return 0;
}

/* round_result holds one round's measurements and ratios. */
typedef struct round_result {
  double throughput; /* daemon (CLIENTS processes) / direct */
  double roundtrip;  /* ping p50 / bare socketpair p50 */
} round_result;

int main(int argc, char **argv) {
  options opt;
  int rc = parse_args(argc, argv, &opt);
  if (rc != 0)
    return rc < 0 ? 2 : 0;
  signal(SIGPIPE, SIG_IGN); /* a dead child shows as a failed write */
  char exe[PATH_MAX], model_path[PATH_MAX];
  if (bench_daemon_path(exe, sizeof exe, "bench-daemon") < 0)
    return 1;
  static char repo_real[PATH_MAX];
  if (realpath(opt.repo, repo_real))
    opt.repo = repo_real;
  if (snprintf(model_path, sizeof model_path, "%s/%s/model.tflite", opt.repo,
               opt.model) >= (int)sizeof model_path) {
    fprintf(stderr, "bench-daemon: repository path too long\n");
    return 2;
  }
  if (access(model_path, R_OK) != 0) {
    fprintf(stderr,
            "bench-daemon: cannot read model %s: %s\n"
            "  run scripts/setup (or make bench) to download the models\n",
            model_path, strerror(errno));
    return 1;
  }
  long nproc = sysconf(_SC_NPROCESSORS_ONLN);
  printf("machine: %ld online cores; TensorFlow Lite %s; edgemux %s\n", nproc,
         TfLiteVersion(), emx_version());
  printf("daemon: %s --device %s\n", exe, DEVICE_SPEC);
  printf("model: %s\n", model_path);
  printf("%d rounds of %.1f s per throughput measurement, %.1f s per round "
         "trip measurement\n\n",
         opt.rounds, opt.seconds, opt.seconds / 2);

  long rss_base, rss_conn;
  if (measure_memory(&opt, &rss_base, &rss_conn) < 0)
    return 1;

  bench_daemon d = {0};
  worker workers[CLIENTS] = {{0}};
  baseline dir = {0};
  emx_client *c = NULL;
  emx_client_model *model;
  buffers direct_buf = {0}, check_buf = {0};
  bench_samples ping_lat = {0}, bare_lat = {0};
  bare pair = {-1, 0};
  round_result *results = calloc((size_t)opt.rounds, sizeof *results);
  rc = 1;
  if (!results || start_daemon(&d, opt.repo) < 0)
    goto done;
  pid_t device_tid = sysconf(_SC_NPROCESSORS_ONLN) >= 2
                         ? bench_thread_named(d.pid, "emx:cpu0")
                         : 0;
  if (device_tid > 0) {
    bench_pin(device_tid, DEVICE_CPU);
    bench_pin(d.pid, CALLER_CPU); /* its I/O thread */
    bench_pin(0, CALLER_CPU);     /* the client processes inherit it */
    printf("pinning: edgemuxd's worker and the direct loop on CPU %d, "
           "clients and edgemuxd's I/O thread on CPU %d\n",
           DEVICE_CPU, CALLER_CPU);
  }
  /* The client processes first: this process has no interpreter yet. */
  if (workers_start(workers, CLIENTS, &d, opt.model) < 0)
    goto done;
  if (device_tid > 0)
    bench_pin(0, -1); /* the round-trip pair below runs unpinned, as before */
  printf("\nclients: %d processes, each a closed loop of emx_client_infer\n",
         CLIENTS);
  if (connect_to(&d, 8u << 20, &c) < 0)
    goto done;
  int orc = emx_client_model_open(c, opt.model, &model);
  if (orc < 0) {
    fprintf(stderr, "bench-daemon: emx_client_model_open(%s): %s\n", opt.model,
            emx_client_last_error(c));
    goto done;
  }
  if (baseline_open_report(&dir, model_path, "bench-daemon") < 0)
    goto done;

  /* Same seed, same input: the daemon must compute what the baseline does,
   * or there is nothing to compare. */
  if (buffers_for_model(&direct_buf, NULL, model, 7) < 0 ||
      buffers_for_model(&check_buf, c, model, 7) < 0)
    goto done;
  if (baseline_run(&dir, direct_buf.inputs, direct_buf.input_count,
                   direct_buf.outputs, direct_buf.output_count) < 0 ||
      client_infer(c, model, &check_buf) < 0)
    goto done;
  for (size_t i = 0; i < direct_buf.output_count; i++)
    if (memcmp(direct_buf.outputs[i].data, check_buf.outputs[i].data,
               direct_buf.outputs[i].size) != 0) {
      fprintf(stderr,
              "bench-daemon: daemon output %zu differs from the direct "
              "interpreter's\n",
              i);
      goto done;
    }

  if (bare_open(&pair) < 0)
    goto done;

  /* Warm up caches, XNNPACK's first-run setup and the daemon's threads. */
  tally warm = {0, 0, 0, 0};
  if (direct_loop(&dir, &direct_buf, 0.2, &warm) < 0 ||
      daemon_throughput(workers, CLIENTS, 0.2, d.pid, &warm) < 0 ||
      ping_loop(c, 0.1, &ping_lat) < 0 || bare_loop(&pair, 0.1, &bare_lat) < 0)
    goto done;

  /* Each measurement is taken in slices of about SLICE_SECONDS, the two
   * sides of a ratio alternating (A B B A A B ...; the other way round in
   * odd rounds), so that load which comes and goes hits both alike. */
  int slices = (int)(opt.seconds / SLICE_SECONDS + 0.5);
  if (slices < 1)
    slices = 1;
  double slice = opt.seconds / slices;
  for (int r = 0; r < opt.rounds; r++) {
    tally via_daemon = {0, 0, 0, 0}, via_direct = {0, 0, 0, 0};
    ping_lat.count = 0;
    bare_lat.count = 0;
    for (int s = 0; s < slices; s++) {
      bool daemon_first = (r + s) % 2 == 0;
      for (int side = 0; side < 2; side++) {
        bool daemon_side = (side == 0) == daemon_first;
        int failed = daemon_side
                         ? daemon_throughput(workers, CLIENTS, slice, d.pid,
                                             &via_daemon) < 0 ||
                               ping_loop(c, slice / 2, &ping_lat) < 0
                         : direct_side(&dir, &direct_buf, slice, &via_direct,
                                       device_tid > 0) < 0 ||
                               bare_loop(&pair, slice / 2, &bare_lat) < 0;
        if (failed)
          goto done;
      }
    }
    double daemon_rate = tally_rate(&via_daemon);
    double direct_rate = tally_rate(&via_direct);
    double ping_us = bench_median(ping_lat.values, ping_lat.count) / 1e3;
    double bare_us = bench_median(bare_lat.values, bare_lat.count) / 1e3;
    results[r].throughput = daemon_rate / direct_rate;
    results[r].roundtrip = ping_us / bare_us;
    /* CPU per request — the daemon's busiest thread (its worker) and all
     * its threads, the direct loop's — depends far less than throughput on
     * how the machine's other load is scheduled. */
    printf("round %d/%d: daemon x%d %.1f/s | direct %.1f/s (%.3f) | cpu/req "
           "worker %.3f ms, daemon %.3f ms, direct %.3f ms | ping p50 %.1f us "
           "| socketpair p50 %.1f us (%.3f) | load %.2f\n",
           r + 1, opt.rounds, CLIENTS, daemon_rate, direct_rate,
           results[r].throughput,
           tally_cpu_ms(&via_daemon, via_daemon.worker_ns),
           tally_cpu_ms(&via_daemon, via_daemon.cpu_ns),
           tally_cpu_ms(&via_direct, via_direct.cpu_ns), ping_us, bare_us,
           results[r].roundtrip, bench_loadavg());
    fflush(stdout);
  }

  double *column = calloc((size_t)opt.rounds, sizeof *column);
  if (!column)
    goto done;
  double ratio[2];
  for (int k = 0; k < 2; k++) {
    for (int r = 0; r < opt.rounds; r++)
      column[r] = k == 0 ? results[r].throughput : results[r].roundtrip;
    ratio[k] = bench_median(column, (size_t)opt.rounds);
  }
  free(column);

  /* The round trip like for like: both ends of each pair placed alike,
   * with nothing else running. The headline is both ends unpinned (the
   * handbook's rule for a ratio); same-core and cross-core show what
   * placement alone does to either side. */
  workers_stop(workers, CLIENTS);
  double rt[3], rt_ping[3], rt_bare[3];
  const int far[3] = {-1, CALLER_CPU, DEVICE_CPU};
  int placements = device_tid > 0 ? 3 : 1;
  for (int k = 0; k < placements; k++) {
    double acc[16];
    int n = 0;
    double pu = 0, bu = 0;
    for (int r = 0; r < opt.rounds && n < 16; r++) {
      acc[n] =
          roundtrip_placed(c, d.pid, &pair, far[k], opt.seconds / 2, &pu, &bu);
      if (acc[n] < 0)
        goto done;
      n++;
    }
    rt[k] = bench_median(acc, (size_t)n);
    rt_ping[k] = pu;
    rt_bare[k] = bu;
  }
  if (device_tid > 0)
    bench_pin(d.pid, CALLER_CPU); /* as the throughput rounds had it */
  ratio[1] = rt[0];
  /* Stop everything before the summary, so that it comes last. */
  bare_close(&pair);
  double stall_quiet = 0, stall_loading = 0;
  int stall_loads = 0;
  if (admin_stall(&d, opt.repo, c, opt.seconds * 2, &stall_quiet,
                  &stall_loading, &stall_loads) < 0)
    goto done;
  buffers_free(&check_buf, c);
  emx_client_destroy(c);
  c = NULL;
  int status = bench_daemon_stop(&d);
  if (status != 0)
    goto done;
  printf("\n");
  printf("daemon_throughput_ratio: %.3f (target >= 0.95)\n", ratio[0]);
  printf("daemon_roundtrip_ratio: %.3f (target <= 1.5; both ends unpinned: "
         "ping %.1f us, socketpair %.1f us)\n",
         ratio[1], rt_ping[0], rt_bare[0]);
  if (placements == 3) {
    printf("daemon_roundtrip_ratio_same_core: %.3f (report; caller and far "
           "end on CPU %d: ping %.1f us, socketpair %.1f us)\n",
           rt[1], CALLER_CPU, rt_ping[1], rt_bare[1]);
    printf("daemon_roundtrip_ratio_cross_core: %.3f (report; caller on CPU "
           "%d, far end on CPU %d: ping %.1f us, socketpair %.1f us)\n",
           rt[2], CALLER_CPU, DEVICE_CPU, rt_ping[2], rt_bare[2]);
  }
  printf("admin_stall_ping_p99_us: %.1f (target <= 1000; %d loads and "
         "unloads of a %u MiB model meanwhile; p99 %.1f us with the daemon "
         "idle)\n",
         stall_loading, stall_loads, STALL_BYTES >> 20, stall_quiet);
  printf("daemon_rss_kib: %ld (report)\n", rss_base);
  printf("daemon_conn_kib: %ld (report)\n", rss_conn);
  rc = 0;
done:
  bare_close(&pair);
  workers_stop(workers, CLIENTS);
  buffers_free(&check_buf, c);
  emx_client_destroy(c);
  bench_daemon_stop(&d); /* nothing when stopped already */
  baseline_close(&dir);
  buffers_free(&direct_buf, NULL);
  free(ping_lat.values);
  free(bare_lat.values);
  free(results);
  return rc;
}
