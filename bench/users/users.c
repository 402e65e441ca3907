/*
 * bench/users/users.c — bench-users: N user programs, each with its own
 * TFLite interpreter (bench-users-direct), against the same N programs as
 * clients of one edgemuxd with its default devices (bench-users-client),
 * side by side on this machine, unpinned.
 *
 * Every program does the same work per request (users.h): copy a frame in,
 * run, copy the outputs out, compare them bit for bit with the reference
 * the driver computed before (any mismatch fails the benchmark). Each
 * figure comes from ROUNDS rounds; a round runs both sides one after the
 * other, in alternating order, each a fresh set of processes that warm up
 * and then count the requests that end inside a window of SECONDS. Figures
 * are medians of per-round ratios, with min and max. Memory is the total
 * PSS (/proc/PID/smaps_rollup) of every process of a side — the daemon
 * included — sampled in the middle of the window.
 *
 *   users_closed_ratio_N{1,2,4,8}  throughput, edgemux ÷ separate, every
 *                                  program running face_detection_short_range
 *                                  back to back
 *   users_cpu_per_req_ratio_N{1,2,4,8}  CPU time per request (every
 *                                  process of the side, the daemon's
 *                                  threads included, from their schedstat),
 *                                  separate ÷ edgemux: the throughput ratio
 *                                  the machine would give with its CPUs all
 *                                  theirs. On a machine busy with other
 *                                  work the throughput ratio measures how
 *                                  the kernel shares the CPUs too (programs
 *                                  that sleep between requests, as edgemux
 *                                  clients and workers do, get more than
 *                                  CPU-bound ones); this one much less
 *   users_pss_ratio_N{1,8}         total PSS, edgemux ÷ separate
 *   users_mixed_work_ratio_N{2,4,8} useful work (Σ req/s × the model's
 *                                  single-thread run time, measured each
 *                                  round) for half face, half
 *                                  hand_landmark_full programs
 *   users_mixed_light_share_N4     the face programs' throughput, edgemux ÷
 *                                  separate
 *   camera_fleet_p99_ms            64 programs sending a frame 10 times a
 *                                  second each (phases spread evenly): p99
 *                                  of the time from each frame's scheduled
 *                                  send to its result, beside the same fleet
 *                                  of separate processes
 *
 * Usage: bench-users [--quick] [--rounds R] [--seconds S] [--models DIR]
 * [--only closed|mixed|fleet] [--clients N] (make bench-users [QUICK=1]). Run it on a quiet machine: it measures the
 * machine as much as edgemux.
 */
#include "common/baseline.h"
#include "common/daemon.h"
#include "common/sys.h"
#include "users.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROG "bench-users"
#define FACE "face_detection_short_range"
#define HAND "hand_landmark_full"
#define MAX_USERS 64
#define MAX_ROUNDS 64
#define FLEET_USERS 64
#define FLEET_PERIOD_NS 100000000LL /* 10 frames a second */
#define WARM_NS 300000000LL         /* back-to-back runs before the window */

typedef struct options {
  int rounds;
  double seconds;
  double fleet_seconds;
  const char *models;
  const char *only; /* closed, mixed or fleet; NULL: all */
  int clients;      /* only this many programs (closed, mixed); 0: all */
} options;

/* One model the programs run. */
typedef struct model {
  const char *name;
  char path[PATH_MAX];  /* the .tflite */
  char frame[PATH_MAX]; /* its frame file */
  double single_ms;     /* one run on one thread, alone (latest measure) */
} model;

static char g_dir[PATH_MAX]; /* bench-users' own folder (the generators) */
static char g_tmp[64];       /* frame files */
static model g_models[2] = {{.name = FACE}, {.name = HAND}};

/* ---- one side of a round ------------------------------------------------ */

typedef struct gen {
  pid_t pid;
  FILE *out; /* its stdout */
  int in;    /* its stdin */
  int model; /* index in g_models */
} gen;

/* A side's result. */
typedef struct side {
  double rate[2];       /* req/s of all programs of each model */
  double pss_mib;       /* total PSS in the middle of the window */
  double daemon_mib;    /* edgemuxd's part of it */
  double cpu_s;         /* CPU time of every process of the side in the
                           window (user + system) */
  double daemon_cpu_s;  /* edgemuxd's part of it */
  unsigned long bad;    /* mismatched outputs */
  unsigned long errors; /* failed requests */
  uint32_t *lat_us;     /* paced: every latency */
  size_t nlat, lat_cap;
} side;

static long pss_kib(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  long kib = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "Pss: %ld kB", &kib) == 1)
      break;
  fclose(f);
  return kib;
}

/* cpu_ns: the CPU time pid's threads have run so far, from each
 * thread's schedstat (ns; /proc/PID/stat counts 10 ms ticks). */
static long long cpu_ns(pid_t pid) {
  char path[96];
  snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
  DIR *dir = opendir(path);
  if (!dir)
    return 0;
  long long ns = 0;
  struct dirent *e;
  while ((e = readdir(dir))) {
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof path, "/proc/%d/task/%.20s/schedstat", (int)pid,
             e->d_name);
    FILE *f = fopen(path, "r");
    long long run = 0;
    if (f) {
      if (fscanf(f, "%lld", &run) == 1)
        ns += run;
      fclose(f);
    }
  }
  closedir(dir);
  return ns;
}

/* side_cpu_ns: the CPU time of a side's programs and its daemon. */
static long long side_cpu_ns(const gen *g, int n, pid_t daemon) {
  long long t = daemon > 0 ? cpu_ns(daemon) : 0;
  for (int i = 0; i < n; i++)
    t += cpu_ns(g[i].pid);
  return t;
}

/* save_smaps copies /proc/PID/smaps into $BENCH_USERS_SMAPS (a folder),
 * when set, as SIDE-PID.smaps: the moment the PSS is sampled, for
 * scripts/smaps-breakdown to say where it goes. */
static void save_smaps(pid_t pid, const char *who) {
  const char *dir = getenv("BENCH_USERS_SMAPS");
  if (!dir || !*dir)
    return;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "/proc/%d/smaps", (int)pid);
  FILE *in = fopen(path, "r");
  snprintf(path, sizeof path, "%s/%s-%d.smaps", dir, who, (int)pid);
  FILE *out = in ? fopen(path, "w") : NULL;
  char buf[65536];
  size_t n;
  while (out && (n = fread(buf, 1, sizeof buf, in)) > 0)
    fwrite(buf, 1, n, out);
  if (out)
    fclose(out);
  if (in)
    fclose(in);
}

/* tree_pss_kib: pid's PSS and that of its children (edgemuxd's device
 * hosts, where it has any). */
static long tree_pss_kib(pid_t pid) {
  long kib = pss_kib(pid);
  save_smaps(pid, "edgemuxd");
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
  FILE *f = fopen(path, "r");
  if (f) {
    int child;
    while (fscanf(f, "%d", &child) == 1)
      kib += tree_pss_kib((pid_t)child);
    fclose(f);
  }
  return kib;
}

static int spawn(gen *g, int m, const bench_daemon *d) {
  int to[2], from[2];
  if (pipe(to) < 0 || pipe(from) < 0) {
    fprintf(stderr, PROG ": pipe: %s\n", strerror(errno));
    return -1;
  }
  char exe[PATH_MAX + 32];
  snprintf(exe, sizeof exe, "%s/%s", g_dir,
           d ? "bench-users-client" : "bench-users-direct");
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, PROG ": fork: %s\n", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    dup2(to[0], 0);
    dup2(from[1], 1);
    close(to[0]);
    close(to[1]);
    close(from[0]);
    close(from[1]);
    if (d)
      execl(exe, exe, g_models[m].frame, d->socket, g_models[m].name,
            (char *)NULL);
    else
      execl(exe, exe, g_models[m].frame, g_models[m].path, (char *)NULL);
    fprintf(stderr, PROG ": %s: %s\n", exe, strerror(errno));
    _exit(127);
  }
  close(to[0]);
  close(from[1]);
  g->pid = pid;
  g->in = to[1];
  g->out = fdopen(from[0], "r");
  g->model = m;
  return g->out ? 0 : -1;
}

static int reap(gen *g) {
  if (g->out)
    fclose(g->out);
  if (g->in >= 0)
    close(g->in);
  int status = 0;
  if (g->pid > 0)
    while (waitpid(g->pid, &status, 0) < 0 && errno == EINTR) {
    }
  g->out = NULL;
  g->in = -1;
  g->pid = 0;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int add_latency(side *s, uint32_t us) {
  if (s->nlat == s->lat_cap) {
    size_t cap = s->lat_cap ? s->lat_cap * 2 : 1024;
    uint32_t *p = realloc(s->lat_us, cap * sizeof *p);
    if (!p)
      return -1;
    s->lat_us = p;
    s->lat_cap = cap;
  }
  s->lat_us[s->nlat++] = us;
  return 0;
}

/* parse_done reads a generator's "done ..." line into s. */
static int parse_done(gen *g, side *s, double window_s) {
  static char line[65536];
  if (!fgets(line, sizeof line, g->out)) {
    fprintf(stderr, PROG ": a load generator ended without a result\n");
    return -1;
  }
  char *p = line;
  if (strncmp(p, "done ", 5) != 0)
    return -1;
  p += 5;
  unsigned long count = strtoul(p, &p, 10);
  s->bad += strtoul(p, &p, 10);
  s->errors += strtoul(p, &p, 10);
  s->rate[g->model] += (double)count / window_s;
  for (;;) {
    char *end;
    unsigned long us = strtoul(p, &end, 10);
    if (end == p)
      break;
    p = end;
    if (add_latency(s, (uint32_t)us) < 0)
      return -1;
  }
  return 0;
}

/* The edgemux side's daemon, and its arguments, set by with_daemon. */
static bench_daemon *g_daemon;
static const char *const *g_daemon_args;

/* daemon_for_side has edgemuxd running for the edgemux side and stopped
 * for the separate one. An idle edgemuxd beside the separate programs
 * maps TFLite, libstdc++ and libc as they do, so each of their pages
 * counted a third less in their PSS (three mappers: the driver, edgemuxd
 * and a program, instead of two): at N1 the separate side looked ~0.5 MiB
 * smaller than a machine without edgemuxd. A fresh daemon per edgemux side
 * loads its model on the first request, before the window, as before. */
static int daemon_for_side(bool mux) {
  if (!g_daemon)
    return 0;
  if (!mux && g_daemon->pid > 0)
    return bench_daemon_stop(g_daemon) == 0 ? 0 : -1;
  if (mux && g_daemon->pid == 0)
    return bench_daemon_start(g_daemon, PROG, g_daemon_args);
  return 0;
}

/* run_side runs n programs (model of program i: models[i]) against d (NULL:
 * separate processes), closed loop, or paced when paced is true. */
static int run_side(const bench_daemon *d, int n, const int *models,
                    double seconds, bool paced, side *s) {
  memset(s, 0, sizeof *s);
  if (daemon_for_side(d != NULL) < 0)
    return -1;
  gen g[MAX_USERS];
  int spawned = 0, rc = 0;
  for (int i = 0; i < n; i++) {
    g[i].pid = 0;
    g[i].out = NULL;
    g[i].in = -1;
  }
  for (; spawned < n && rc == 0; spawned++)
    rc = spawn(&g[spawned], models[spawned], d);
  char line[256];
  for (int i = 0; i < spawned && rc == 0; i++)
    if (!fgets(line, sizeof line, g[i].out) || strcmp(line, "ready\n") != 0) {
      fprintf(stderr, PROG ": a load generator failed to start\n");
      rc = -1;
    }
  int64_t start = users_now_ns() + WARM_NS;
  int64_t end = start + (int64_t)(seconds * 1e9);
  for (int i = 0; i < spawned && rc == 0; i++) {
    int len = paced
                  ? snprintf(line, sizeof line, "paced %lld %lld %lld %lld\n",
                             (long long)start, (long long)end, FLEET_PERIOD_NS,
                             (long long)(FLEET_PERIOD_NS * i / n))
                  : snprintf(line, sizeof line, "closed %lld %lld\n",
                             (long long)start, (long long)end);
    if (write(g[i].in, line, (size_t)len) != len)
      rc = -1;
  }
  if (rc == 0) {
    /* CPU per request: on a machine busy with other work the throughput
     * measures the load too; what each side spends per request does
     * much less. */
    users_sleep_until(start);
    long long t0 = side_cpu_ns(g, spawned, d ? d->pid : 0);
    long long d0 = d ? cpu_ns(d->pid) : 0;
    users_sleep_until(start + (end - start) / 2);
    long kib = d ? tree_pss_kib(d->pid) : 0;
    s->daemon_mib = (double)kib / 1024.0;
    for (int i = 0; i < spawned; i++) {
      kib += pss_kib(g[i].pid);
      save_smaps(g[i].pid, d ? "client" : "direct");
    }
    s->pss_mib = (double)kib / 1024.0;
    users_sleep_until(end);
    long long t1 = side_cpu_ns(g, spawned, d ? d->pid : 0);
    s->daemon_cpu_s = d ? (double)(cpu_ns(d->pid) - d0) / 1e9 : 0;
    s->cpu_s = (double)(t1 - t0) / 1e9;
  }
  for (int i = 0; i < spawned && rc == 0; i++)
    rc = parse_done(&g[i], s, seconds);
  for (int i = 0; i < spawned; i++) {
    if (rc < 0 && g[i].pid > 0)
      kill(g[i].pid, SIGKILL);
    if (reap(&g[i]) < 0 && rc == 0) {
      fprintf(stderr, PROG ": a load generator failed\n");
      rc = -1;
    }
  }
  if (rc == 0 && (s->bad || s->errors)) {
    fprintf(stderr,
            PROG ": %s: %lu requests gave outputs that differ from the "
                 "reference, %lu failed\n",
            d ? "edgemux" : "separate processes", s->bad, s->errors);
    rc = -1;
  }
  return rc;
}

/* ---- frames and single-thread times ------------------------------------- */

static emx_dtype dtype_of(TfLiteType t) {
  return t == kTfLiteFloat32 ? EMX_DTYPE_FLOAT32 : EMX_DTYPE_UINT8;
}

/* make_frame writes m's frame file: a random input and the outputs of one
 * run (the reference); and measures m's single-thread run time. */
static int make_frame(model *m, unsigned seed) {
  baseline b;
  if (baseline_open_report(&b, m->path, PROG) < 0)
    return -1;
  users_frame f = {0};
  emx_tensor in[USERS_MAX_TENSORS], out[USERS_MAX_TENSORS];
  int nin = TfLiteInterpreterGetInputTensorCount(b.interpreter);
  int nout = TfLiteInterpreterGetOutputTensorCount(b.interpreter);
  int rc = nin <= USERS_MAX_TENSORS && nout <= USERS_MAX_TENSORS ? 0 : -1;
  for (int i = 0; rc == 0 && i < nin; i++) {
    const TfLiteTensor *t = TfLiteInterpreterGetInputTensor(b.interpreter, i);
    rc = bench_tensor_alloc(&in[i], dtype_of(TfLiteTensorType(t)),
                            TfLiteTensorByteSize(t));
    if (rc == 0) {
      bench_fill_random(&in[i], &seed);
      f.input[f.input_count] = in[i].data;
      f.input_size[f.input_count++] = in[i].size;
    }
  }
  for (int i = 0; rc == 0 && i < nout; i++) {
    const TfLiteTensor *t = TfLiteInterpreterGetOutputTensor(b.interpreter, i);
    rc = bench_tensor_alloc(&out[i], dtype_of(TfLiteTensorType(t)),
                            TfLiteTensorByteSize(t));
    if (rc == 0) {
      f.output[f.output_count] = out[i].data;
      f.output_size[f.output_count++] = out[i].size;
    }
  }
  if (rc == 0)
    rc = baseline_run(&b, in, f.input_count, out, f.output_count);
  snprintf(m->frame, sizeof m->frame, "%s/%s.frame", g_tmp, m->name);
  if (rc == 0 && users_frame_write(m->frame, &f) < 0) {
    fprintf(stderr, PROG ": %s: %s\n", m->frame, strerror(errno));
    rc = -1;
  }
  users_frame_free(&f);
  baseline_close(&b);
  return rc;
}

/* measure_single sets m->single_ms: the median of runs of one interpreter
 * on one thread with the machine otherwise idle (for this benchmark). */
static int measure_single(model *m, double seconds) {
  baseline b;
  users_frame f;
  if (baseline_open_report(&b, m->path, PROG) < 0)
    return -1;
  if (users_frame_read(m->frame, &f, PROG) < 0) {
    baseline_close(&b);
    return -1;
  }
  emx_tensor in[USERS_MAX_TENSORS], out[USERS_MAX_TENSORS];
  for (size_t i = 0; i < f.input_count; i++)
    in[i] = (emx_tensor){.data = f.input[i], .size = f.input_size[i]};
  for (size_t i = 0; i < f.output_count; i++)
    out[i] = (emx_tensor){.data = f.output[i], .size = f.output_size[i]};
  double times[4096];
  size_t n = 0;
  int64_t end = users_now_ns() + (int64_t)(seconds * 1e9);
  int rc = 0;
  for (int warm = 0; warm < 3 && rc == 0; warm++)
    rc = baseline_run(&b, in, f.input_count, out, f.output_count);
  while (rc == 0 && n < 4096 && (n < 5 || users_now_ns() < end)) {
    int64_t t0 = users_now_ns();
    rc = baseline_run(&b, in, f.input_count, out, f.output_count);
    times[n++] = (double)(users_now_ns() - t0) / 1e6;
  }
  if (rc == 0)
    m->single_ms = bench_median(times, n);
  users_frame_free(&f);
  baseline_close(&b);
  return rc;
}

/* ---- figures ------------------------------------------------------------ */

static void print_figure(const char *name, double *values, int n,
                         const char *target) {
  double med = bench_median(values, (size_t)n); /* sorts */
  printf("%s: %.3f (min %.3f, max %.3f over %d rounds; %s)\n", name, med,
         values[0], values[n - 1], n, target);
  fflush(stdout);
}

/* cpu_ms_per_req: the side's CPU time per request in the window. */
static double cpu_ms_per_req(const side *s, double seconds) {
  double reqs = (s->rate[0] + s->rate[1]) * seconds;
  return reqs > 0 ? s->cpu_s * 1e3 / reqs : 0;
}

/* cpu_ratio: CPU per request, separate (a) ÷ edgemux (b). */
static double cpu_ratio(const side *a, const side *b, double seconds) {
  double ca = cpu_ms_per_req(a, seconds), cb = cpu_ms_per_req(b, seconds);
  return cb > 0 ? ca / cb : 0;
}

/* round_pair runs both sides of one round, the order alternating. */
static int round_pair(const bench_daemon *d, int n, const int *models,
                      double seconds, int round, side *direct, side *mux) {
  int rc = 0;
  if (round % 2 == 0) {
    rc = run_side(NULL, n, models, seconds, false, direct);
    rc = rc ? rc : run_side(d, n, models, seconds, false, mux);
  } else {
    rc = run_side(d, n, models, seconds, false, mux);
    rc = rc ? rc : run_side(NULL, n, models, seconds, false, direct);
  }
  free(direct->lat_us);
  free(mux->lat_us);
  return rc;
}

static int closed(const options *o, const bench_daemon *d) {
  static const int counts[4] = {1, 2, 4, 8};
  int models[MAX_USERS] = {0}; /* all face */
  for (int c = 0; c < 4; c++) {
    int n = counts[c];
    if (o->clients && n != o->clients)
      continue;
    double ratio[MAX_ROUNDS], pss[MAX_ROUNDS], cpu[MAX_ROUNDS];
    double pss_mux = 0, pss_direct = 0;
    for (int r = 0; r < o->rounds; r++) {
      side a, b;
      if (round_pair(d, n, models, o->seconds, r, &a, &b) < 0)
        return -1;
      ratio[r] = (a.rate[0] + a.rate[1]) > 0
                     ? (b.rate[0] + b.rate[1]) / (a.rate[0] + a.rate[1])
                     : 0;
      pss[r] = a.pss_mib > 0 ? b.pss_mib / a.pss_mib : 0;
      pss_mux += b.pss_mib / o->rounds;
      pss_direct += a.pss_mib / o->rounds;
      cpu[r] = cpu_ratio(&a, &b, o->seconds);
      fprintf(stderr,
              "  closed N%d round %d: separate %.0f req/s, edgemux %.0f "
              "req/s; CPU per request %.3f / %.3f ms (edgemuxd %.3f); PSS "
              "%.1f / %.1f MiB (edgemuxd %.1f); load %.1f\n",
              n, r, a.rate[0], b.rate[0], cpu_ms_per_req(&a, o->seconds),
              cpu_ms_per_req(&b, o->seconds),
              b.rate[0] > 0 ? b.daemon_cpu_s * 1e3 / (b.rate[0] * o->seconds)
                            : 0,
              a.pss_mib, b.pss_mib, b.daemon_mib, bench_loadavg());
    }
    char name[64];
    snprintf(name, sizeof name, "users_closed_ratio_N%d", n);
    print_figure(name, ratio, o->rounds, "target >= 0.95");
    snprintf(name, sizeof name, "users_cpu_per_req_ratio_N%d", n);
    print_figure(name, cpu, o->rounds,
                 "CPU time per request, separate ÷ edgemux: what the "
                 "throughput ratio would be with the CPUs all theirs; report");
    if (n == 1 || n == 8) {
      char target[128];
      snprintf(target, sizeof target,
               "mean edgemux %.1f MiB, separate %.1f MiB; %s", pss_mux,
               pss_direct, n == 1 ? "target <= 1.1" : "report");
      snprintf(name, sizeof name, "users_pss_ratio_N%d", n);
      print_figure(name, pss, o->rounds, target);
    }
  }
  return 0;
}

static int mixed(const options *o, const bench_daemon *d) {
  static const int counts[3] = {2, 4, 8};
  int models[MAX_USERS];
  for (int i = 0; i < MAX_USERS; i++)
    models[i] = i % 2; /* face, hand, face, hand ... */
  for (int c = 0; c < 3; c++) {
    int n = counts[c];
    if (o->clients && n != o->clients)
      continue;
    double ratio[MAX_ROUNDS], light[MAX_ROUNDS];
    for (int r = 0; r < o->rounds; r++) {
      /* The weights of useful work, measured in this round. */
      for (int m = 0; m < 2; m++)
        if (measure_single(&g_models[m], o->seconds / 4) < 0)
          return -1;
      side a, b;
      if (round_pair(d, n, models, o->seconds, r, &a, &b) < 0)
        return -1;
      double wa =
          a.rate[0] * g_models[0].single_ms + a.rate[1] * g_models[1].single_ms;
      double wb =
          b.rate[0] * g_models[0].single_ms + b.rate[1] * g_models[1].single_ms;
      ratio[r] = wa > 0 ? wb / wa : 0;
      light[r] = a.rate[0] > 0 ? b.rate[0] / a.rate[0] : 0;
      fprintf(stderr,
              "  mixed N%d round %d (face %.2f ms, hand %.2f ms): separate "
              "%.0f + %.0f req/s, edgemux %.0f + %.0f req/s; load %.1f\n",
              n, r, g_models[0].single_ms, g_models[1].single_ms, a.rate[0],
              a.rate[1], b.rate[0], b.rate[1], bench_loadavg());
    }
    char name[64];
    snprintf(name, sizeof name, "users_mixed_work_ratio_N%d", n);
    print_figure(name, ratio, o->rounds, "target >= 0.95");
    if (n == 4)
      print_figure("users_mixed_light_share_N4", light, o->rounds,
                   "target >= 0.8");
  }
  return 0;
}

static int compare_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

static double p99_ms(side *s) {
  if (!s->nlat)
    return 0;
  qsort(s->lat_us, s->nlat, sizeof *s->lat_us, compare_u32);
  size_t i = (size_t)((double)(s->nlat - 1) * 0.99);
  return s->lat_us[i] / 1000.0;
}

static int fleet(const options *o, const bench_daemon *d) {
  int models[MAX_USERS] = {0};
  side a = {0}, b = {0};
  int rc = run_side(NULL, FLEET_USERS, models, o->fleet_seconds, true, &a);
  rc = rc ? rc : run_side(d, FLEET_USERS, models, o->fleet_seconds, true, &b);
  if (rc == 0)
    printf("camera_fleet_p99_ms: %.2f (separate processes %.2f ms; %d "
           "clients of %s at 10 frames/s, %zu frames each side; PSS %.0f "
           "MiB vs %.0f MiB)\n",
           p99_ms(&b), p99_ms(&a), FLEET_USERS, FACE, b.nlat, b.pss_mib,
           a.pss_mib);
  free(a.lat_us);
  free(b.lat_us);
  return rc;
}

/* ---- main --------------------------------------------------------------- */

/* repo_add links model m into the repository folder dir. */
static int repo_add(const char *dir, const model *m) {
  char sub[PATH_MAX], link[PATH_MAX + 16], target[PATH_MAX];
  if (!realpath(m->path, target))
    return -1;
  snprintf(sub, sizeof sub, "%s/%s", dir, m->name);
  snprintf(link, sizeof link, "%s/model.tflite", sub);
  return mkdir(sub, 0700) == 0 && symlink(target, link) == 0 ? 0 : -1;
}

static void repo_drop(const char *dir, const model *m) {
  char sub[PATH_MAX], link[PATH_MAX + 16];
  snprintf(sub, sizeof sub, "%s/%s", dir, m->name);
  snprintf(link, sizeof link, "%s/model.tflite", sub);
  unlink(link);
  rmdir(sub);
}

/* with_daemon runs fn against an edgemuxd with its default devices serving
 * the models [0, nmodels). */
static int with_daemon(const options *o, int nmodels,
                       int (*fn)(const options *, const bench_daemon *),
                       int (*fn2)(const options *, const bench_daemon *)) {
  bench_repo repo;
  if (bench_repo_make(&repo, PROG, NULL, NULL) < 0)
    return -1;
  int rc = 0;
  for (int m = 0; m < nmodels && rc == 0; m++)
    if (repo_add(repo.dir, &g_models[m]) < 0) {
      fprintf(stderr, PROG ": making the model repository: %s\n",
              strerror(errno));
      rc = -1;
    }
  bench_daemon d;
  const char *args[] = {
      "--models", repo.dir, "--log-level", "warn", "--max-conns-per-uid",
      "256",      NULL};
  if (rc == 0 && bench_daemon_start(&d, PROG, args) < 0)
    rc = -1;
  else if (rc == 0) {
    g_daemon = &d;
    g_daemon_args = args;
    rc = fn(o, &d);
    if (rc == 0 && fn2)
      rc = fn2(o, &d);
    g_daemon = NULL;
    g_daemon_args = NULL;
    if (d.pid > 0 && bench_daemon_stop(&d) != 0)
      rc = -1;
  }
  for (int m = 0; m < nmodels; m++)
    repo_drop(repo.dir, &g_models[m]);
  bench_repo_remove(&repo);
  return rc;
}

static void remove_frames(void) {
  for (int m = 0; m < 2; m++)
    if (g_models[m].frame[0])
      unlink(g_models[m].frame);
  if (g_tmp[0])
    rmdir(g_tmp);
}

int main(int argc, char **argv) {
  options o = {.rounds = 8,
               .seconds = 1.0,
               .fleet_seconds = 5.0,
               .models = EMX_MODELS_DIR};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      o.rounds = 3;
      o.seconds = 0.5;
      o.fleet_seconds = 2.0;
    } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
      o.rounds = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      o.seconds = atof(argv[++i]);
    } else if (strcmp(argv[i], "--models") == 0 && i + 1 < argc) {
      o.models = argv[++i];
    } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
      o.only = argv[++i];
    } else if (strcmp(argv[i], "--clients") == 0 && i + 1 < argc) {
      o.clients = atoi(argv[++i]);
    } else {
      fprintf(stderr,
              "usage: %s [--quick] [--rounds R] [--seconds S] [--models "
              "DIR] [--only closed|mixed|fleet] [--clients N]\n",
              PROG);
      return 2;
    }
  }
  if (o.rounds < 1 || o.rounds > MAX_ROUNDS || o.seconds <= 0) {
    fprintf(stderr, PROG ": rounds must be 1..%d and seconds above 0\n",
            MAX_ROUNDS);
    return 2;
  }
  ssize_t len = readlink("/proc/self/exe", g_dir, sizeof g_dir - 1);
  if (len <= 0)
    return 1;
  g_dir[len] = '\0';
  *strrchr(g_dir, '/') = '\0';
  snprintf(g_tmp, sizeof g_tmp, "/tmp/bench-users-XXXXXX");
  if (!mkdtemp(g_tmp)) {
    fprintf(stderr, PROG ": mkdtemp: %s\n", strerror(errno));
    return 1;
  }
  int rc = 0;
  for (int m = 0; m < 2 && rc == 0; m++) {
    snprintf(g_models[m].path, sizeof g_models[m].path, "%s/%s.tflite",
             o.models, g_models[m].name);
    rc = make_frame(&g_models[m], 1234u + (unsigned)m);
  }
  printf("bench-users: %d rounds of %.1f s per side, unpinned, load %.1f "
         "(on a loaded machine the figures measure the load too)\n",
         o.rounds, o.seconds, bench_loadavg());
  /* Only face for the closed programs and the fleet: the daemon holds
   * what the separate programs hold, and no more. */
  bool all = !o.only;
  if (rc == 0 &&
      (all || strcmp(o.only, "closed") == 0 || strcmp(o.only, "fleet") == 0))
    rc = with_daemon(&o, 1, all || strcmp(o.only, "fleet") ? closed : fleet,
                     all ? fleet : NULL);
  if (rc == 0 && (all || strcmp(o.only, "mixed") == 0))
    rc = with_daemon(&o, 2, mixed, NULL);
  remove_frames();
  return rc == 0 ? 0 : 1;
}
