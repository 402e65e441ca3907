/*
 * bench/http.c — what edgemuxd's HTTP door (KServe v2 with Triton's binary
 * tensors) costs, measured side by side in one run:
 *
 *   http_throughput_ratio  4 keep-alive HTTP clients posting binary infers
 *                          of face_detection_short_range ÷ 4 Unix-socket
 *                          clients, same daemon (one CPU worker): all eight
 *                          stay connected and the two sides take turns in
 *                          short slices (--seconds, 16 rounds); each side's
 *                          requests over its own time.
 *   http_overhead_ratio    p50 of a binary infer on a device with no work
 *                          (sim, fixed_us=0, outputs=none, free transfers)
 *                          ÷ p50 of a bare libmicrohttpd server in this
 *                          process that echoes the same request bytes: the
 *                          floor of this stack. Alternating slices.
 *   http_rss_kib_per_conn  what 1000 idle keep-alive connections add to
 *                          the daemon's resident set, per connection.
 *
 * The last three lines have the form `name: value (target ...)`.
 */
#include <edgemux/client.h>
#include <edgemux/edgemux.h>

#include "common/baseline.h"
#include "common/daemon.h"
#include "common/sys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROG "bench-http"
#define MODEL "face_detection_short_range"
#define CLIENTS 4
#define IDLE_CONNS 1000
#define MAX_T 8
#define OVERHEAD_SLICES 12 /* of 100 round trips a side */

typedef struct options {
  double seconds; /* each side's slice of a throughput round */
  int rounds;
  const char *models; /* folder of .tflite files */
  bool overhead_only; /* --overhead-only: skip throughput and memory */
} options;

/* ---- a minimal HTTP/1.1 client (keep-alive, Content-Length bodies) ---- */

static int tcp_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  if (fd >= 0)
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  return fd;
}

/* roundtrip sends req and reads one response into buf; its status, or -1. */
static int roundtrip(int fd, const void *req, size_t len, char *buf,
                     size_t cap) {
  if (bench_write_full(fd, req, len) < 0)
    return -1;
  size_t have = 0, need = SIZE_MAX, hl = 0;
  while (have < need) {
    if (have == cap)
      return -1;
    ssize_t n = recv(fd, buf + have, cap - have, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    have += (size_t)n;
    if (!hl) {
      char *end = memmem(buf, have, "\r\n\r\n", 4);
      if (!end)
        continue;
      hl = (size_t)(end - buf) + 4;
      char *cl = memmem(buf, hl, "Content-Length: ", 16);
      if (!cl)
        return -1;
      need = hl + strtoull(cl + 16, NULL, 10);
    }
  }
  return atoi(buf + 9);
}

/* infer_request builds a binary infer of the model's one FP32 input. */
static char *infer_request(const char *path, size_t in_bytes, size_t *len) {
  char hdr[512];
  int h = snprintf(hdr, sizeof hdr,
                   "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,128,128,3],"
                   "\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\""
                   ":%zu}}],\"parameters\":{\"binary_data_output\":true}}",
                   in_bytes);
  char head[512];
  int n = snprintf(head, sizeof head,
                   "POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: "
                   "%zu\r\nInference-Header-Content-Length: %d\r\n\r\n",
                   path, (size_t)h + in_bytes, h);
  char *req = malloc((size_t)n + (size_t)h + in_bytes);
  memcpy(req, head, (size_t)n);
  memcpy(req + n, hdr, (size_t)h);
  unsigned seed = 7;
  emx_tensor t = {EMX_DTYPE_FLOAT32, req + n + h, in_bytes};
  bench_fill_random(&t, &seed);
  *len = (size_t)n + (size_t)h + in_bytes;
  return req;
}

static int log_port(const bench_daemon *d) {
  FILE *f = fopen(d->log, "r");
  char line[512];
  int port = 0;
  while (f && fgets(line, sizeof line, f))
    if (strstr(line, "HTTP (KServe v2)") && strstr(line, "(port "))
      port = atoi(strstr(line, "(port ") + 6);
  if (f)
    fclose(f);
  return port;
}

/* proc_cpu_us: user + system time the process has used, microseconds. */
static double proc_cpu_us(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  unsigned long long ut = 0, st = 0;
  int ok = 0;
  if (f) {
    /* Fields 14 and 15; the name (field 2) may hold spaces, so skip to
     * its closing parenthesis first. */
    char line[1024];
    char *p = fgets(line, sizeof line, f) ? strrchr(line, ')') : NULL;
    ok = p && sscanf(p + 2,
                     "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                     "%llu %llu",
                     &ut, &st) == 2;
    fclose(f);
  }
  return ok ? (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK) : 0;
}

/* ---- throughput: child processes ------------------------------------- */

/* Both sides' clients run for the whole measurement, connected, and take
 * turns: the parent opens one side at a time for a short slice, so that
 * whatever else the machine does meanwhile lands on both sides alike
 * (with rounds seconds long, a burst of other work decided a round). A
 * client waits for its side's turn on a futex, off the CPU. */
enum { PAUSE = 0, SIDE_UNIX = 1, SIDE_HTTP = 2, STOP = 3 };

typedef struct shared {
  _Atomic uint32_t phase;        /* PAUSE, SIDE_*, STOP */
  _Atomic int busy[2 * CLIENTS]; /* in a request (or about to start one) */
  _Atomic uint64_t done[2 * CLIENTS];
  _Atomic int failed; /* a client could not go on */
} shared;

static void futex_wait(_Atomic uint32_t *w, uint32_t v) {
  syscall(SYS_futex, w, FUTEX_WAIT, v, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *w) {
  syscall(SYS_futex, w, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

/* turn waits for `side`'s turn; false at STOP. On true, busy[i] is set:
 * the parent's pause waits for the request this client now starts. */
static bool turn(shared *sh, int i, uint32_t side) {
  for (;;) {
    atomic_store(&sh->busy[i], 1);
    uint32_t ph = atomic_load(&sh->phase);
    if (ph == side)
      return true;
    atomic_store(&sh->busy[i], 0);
    if (ph == STOP)
      return false;
    futex_wait(&sh->phase, ph);
  }
}

static void served(shared *sh, int i) {
  atomic_fetch_add(&sh->done[i], 1);
  atomic_store(&sh->busy[i], 0);
}

/* http_child posts binary infers whenever it is HTTP's turn. */
static void http_child(int port, shared *sh, int i) {
  size_t len;
  char *req =
      infer_request("/v2/models/" MODEL "/infer", 128 * 128 * 3 * 4, &len);
  char *buf = malloc(1 << 20);
  int fd = tcp_connect(port);
  while (fd >= 0 && turn(sh, i, SIDE_HTTP)) {
    if (roundtrip(fd, req, len, buf, 1 << 20) != 200)
      break;
    served(sh, i);
  }
  if (atomic_load(&sh->phase) != STOP)
    atomic_store(&sh->failed, 1);
  atomic_store(&sh->busy[i], 0);
  _exit(0);
}

/* unix_child runs infers through the client library on Unix's turn. */
static void unix_child(const bench_daemon *d, shared *sh, int i) {
  emx_client *c = NULL;
  emx_client_model *m = NULL;
  emx_tensor in[MAX_T], outs[MAX_T];
  if (bench_daemon_connect(d, 4u << 20, &c) < 0 ||
      emx_client_model_open(c, MODEL, &m) < 0)
    goto out;
  size_t nin = emx_client_model_input_count(m);
  size_t nout = emx_client_model_output_count(m);
  unsigned seed = 7;
  for (size_t k = 0; k < nin; k++) {
    emx_tensor_info ti;
    emx_client_model_input_info(m, k, &ti);
    if (emx_client_tensor_alloc(c, ti.dtype, ti.bytes, &in[k]) < 0)
      goto out;
    bench_fill_random(&in[k], &seed);
  }
  for (size_t k = 0; k < nout; k++) {
    emx_tensor_info ti;
    emx_client_model_output_info(m, k, &ti);
    if (emx_client_tensor_alloc(c, ti.dtype, ti.bytes, &outs[k]) < 0)
      goto out;
  }
  while (turn(sh, i, SIDE_UNIX)) {
    if (emx_client_infer(c, m, in, nin, outs, nout, NULL) < 0)
      goto out;
    served(sh, i);
  }
out:
  if (atomic_load(&sh->phase) != STOP)
    atomic_store(&sh->failed, 1);
  atomic_store(&sh->busy[i], 0);
  _exit(0);
}

/* One side's account over all its slices. */
typedef struct side_sum {
  uint64_t requests;
  double seconds, daemon_us, clients_us;
} side_sum;

static uint64_t side_done(shared *sh, uint32_t side) {
  uint64_t n = 0;
  for (int i = 0; i < CLIENTS; i++)
    n += atomic_load(&sh->done[(side == SIDE_HTTP ? CLIENTS : 0) + i]);
  return n;
}

static double side_cpu_us(const pid_t *kids, uint32_t side) {
  double us = 0;
  for (int i = 0; i < CLIENTS; i++)
    us += proc_cpu_us(kids[(side == SIDE_HTTP ? CLIENTS : 0) + i]);
  return us;
}

/* slice opens `side` for `seconds`, then pauses it and waits for its
 * requests in flight; adds what it served, in how long, to *sum. */
static int slice(shared *sh, const bench_daemon *d, const pid_t *kids,
                 uint32_t side, double seconds, side_sum *sum) {
  uint64_t n0 = side_done(sh, side);
  double d0 = proc_cpu_us(d->pid), c0 = side_cpu_us(kids, side);
  int64_t t0 = emx_now_ns();
  atomic_store(&sh->phase, side);
  futex_wake(&sh->phase);
  struct timespec ts = {(time_t)seconds,
                        (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
  atomic_store(&sh->phase, PAUSE);
  for (int i = 0; i < 2 * CLIENTS; i++)
    while (atomic_load(&sh->busy[i]))
      if (atomic_load(&sh->failed))
        return -1;
      else
        sched_yield();
  if (atomic_load(&sh->failed))
    return -1;
  if (sum) {
    sum->seconds += (double)(emx_now_ns() - t0) / 1e9;
    sum->requests += side_done(sh, side) - n0;
    sum->daemon_us += proc_cpu_us(d->pid) - d0;
    sum->clients_us += side_cpu_us(kids, side) - c0;
  }
  return 0;
}

/* throughput: HTTP's rate ÷ Unix's over `rounds` pairs of slices (the
 * order alternating), each side's requests over its own time; -1 when a
 * client failed. */
static double throughput(const bench_daemon *d, int port, const options *o) {
  shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED)
    return -1;
  memset(sh, 0, sizeof *sh);
  pid_t kids[2 * CLIENTS];
  int started = 0;
  for (; started < 2 * CLIENTS; started++) {
    kids[started] = fork();
    if (kids[started] < 0)
      break;
    if (kids[started] == 0) {
      if (started < CLIENTS)
        unix_child(d, sh, started);
      http_child(port, sh, started);
    }
  }
  double ratio = -1;
  side_sum u = {0}, h = {0};
  double *rounds = calloc((size_t)o->rounds, sizeof *rounds);
  /* A warm-up pair, not counted: connections, the model's first runs. */
  if (!rounds || started < 2 * CLIENTS ||
      slice(sh, d, kids, SIDE_UNIX, 0.3, NULL) < 0 ||
      slice(sh, d, kids, SIDE_HTTP, 0.3, NULL) < 0)
    goto out;
  for (int r = 0; r < o->rounds; r++) {
    side_sum ur = {0}, hr = {0};
    uint32_t first = r % 2 ? SIDE_HTTP : SIDE_UNIX;
    uint32_t second = first == SIDE_HTTP ? SIDE_UNIX : SIDE_HTTP;
    if (slice(sh, d, kids, first, o->seconds, first == SIDE_HTTP ? &hr : &ur) <
            0 ||
        slice(sh, d, kids, second, o->seconds,
              second == SIDE_HTTP ? &hr : &ur) < 0)
      goto out;
    rounds[r] = ur.requests ? ((double)hr.requests / hr.seconds) /
                                  ((double)ur.requests / ur.seconds)
                            : 0;
    u.requests += ur.requests, u.seconds += ur.seconds;
    u.daemon_us += ur.daemon_us, u.clients_us += ur.clients_us;
    h.requests += hr.requests, h.seconds += hr.seconds;
    h.daemon_us += hr.daemon_us, h.clients_us += hr.clients_us;
  }
  if (!u.requests || !h.requests)
    goto out;
  ratio = ((double)h.requests / h.seconds) / ((double)u.requests / u.seconds);
  double lo = rounds[0], hi = rounds[0];
  for (int r = 1; r < o->rounds; r++) {
    lo = rounds[r] < lo ? rounds[r] : lo;
    hi = rounds[r] > hi ? rounds[r] : hi;
  }
  double med = bench_median(rounds, (size_t)o->rounds);
  printf("throughput: %d rounds of %.2f s a side, alternating: http x%d "
         "%.1f/s | unix x%d %.1f/s; per-round ratios min %.3f median "
         "%.3f max %.3f\n",
         o->rounds, o->seconds, CLIENTS, (double)h.requests / h.seconds,
         CLIENTS, (double)u.requests / u.seconds, lo, med, hi);
  printf("throughput: CPU per request, daemon + clients: http %.0f + %.0f "
         "us | unix %.0f + %.0f us\n",
         h.daemon_us / (double)h.requests, h.clients_us / (double)h.requests,
         u.daemon_us / (double)u.requests, u.clients_us / (double)u.requests);
  fflush(stdout);
out:
  if (atomic_load(&sh->failed))
    fprintf(stderr, PROG ": a client failed (see the daemon's log)\n");
  atomic_store(&sh->phase, STOP);
  futex_wake(&sh->phase);
  for (int i = 0; i < started; i++)
    waitpid(kids[i], NULL, 0);
  free(rounds);
  munmap(sh, sizeof *sh);
  return ratio;
}

/* ---- overhead: a bare libmicrohttpd echo server ----------------------- */

typedef struct echo_req {
  char *buf;
  size_t len, cap;
} echo_req;

static enum MHD_Result echo(void *cls, struct MHD_Connection *c,
                            const char *url, const char *method,
                            const char *version, const char *upload,
                            size_t *upload_size, void **con_cls) {
  echo_req *r = *con_cls;
  if (!r) {
    *con_cls = calloc(1, sizeof *r);
    return *con_cls ? MHD_YES : MHD_NO;
  }
  if (*upload_size) {
    if (r->len + *upload_size > r->cap) {
      r->cap = (r->len + *upload_size) * 2;
      r->buf = realloc(r->buf, r->cap);
    }
    memcpy(r->buf + r->len, upload, *upload_size);
    r->len += *upload_size;
    *upload_size = 0;
    return MHD_YES;
  }
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(r->len, r->buf, MHD_RESPMEM_MUST_FREE);
  r->buf = NULL;
  enum MHD_Result rc = MHD_queue_response(c, 200, resp);
  MHD_destroy_response(resp);
  return rc;
}

static void echo_done(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
  echo_req *r = *con_cls;
  if (r)
    free(r->buf);
  free(r);
  *con_cls = NULL;
}

/* latency_slice adds n sequential round trips on fd to s. */
static int latency_slice(int fd, const char *req, size_t len, int n,
                         bench_samples *s, char *buf) {
  for (int i = 0; i < n; i++) {
    int64_t t0 = emx_now_ns();
    if (roundtrip(fd, req, len, buf, 1 << 20) != 200)
      return -1;
    bench_samples_add(s, (double)(emx_now_ns() - t0));
  }
  return 0;
}

static double overhead(const options *o, const bench_repo *repo) {
  bench_daemon d = {0};
  /* The sim's exclusive-open lock in this run's own folder: another
   * program's sim:0 on the machine must not make this one busy. */
  char sim[4200];
  snprintf(sim, sizeof sim,
           "sim:0,fixed_us=0,outputs=none,bandwidth_mbps=0,lock_dir=%s",
           repo->dir);
  const char *args[] = {"--models", repo->dir,     "--device", sim,
                        "--http",   "127.0.0.1:0", NULL};
  /* Like for like: libmicrohttpd configured as edgemuxd configures it by
   * default (two polling threads, suspend/resume allowed, 16 KiB of
   * connection memory: --http-threads, --http-max-header-bytes). */
  struct MHD_Daemon *mhd = MHD_start_daemon(
      MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC, 0,
      NULL, NULL, echo, NULL, MHD_OPTION_NOTIFY_COMPLETED, echo_done, NULL,
      MHD_OPTION_THREAD_POOL_SIZE, 2u, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
      (size_t)16384, MHD_OPTION_END);
  if (!mhd || bench_daemon_start(&d, PROG, args) < 0) {
    if (mhd)
      MHD_stop_daemon(mhd);
    return -1;
  }
  int eport = MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_BIND_PORT)->port;
  size_t ilen, elen;
  char *ireq =
      infer_request("/v2/models/" MODEL "/infer", 128 * 128 * 3 * 4, &ilen);
  char *ereq = infer_request("/echo", 128 * 128 * 3 * 4, &elen);
  char *buf = malloc(1 << 20);
  bench_samples si = {0}, se = {0};
  int fi = tcp_connect(log_port(&d)), fe = tcp_connect(eport);
  double ratio = -1;
  int slices = OVERHEAD_SLICES;
  /* Warm both up, then alternate slices so drift hits both alike. */
  bench_samples warm = {0};
  if (fi < 0 || fe < 0 || latency_slice(fi, ireq, ilen, 50, &warm, buf) < 0 ||
      latency_slice(fe, ereq, elen, 50, &warm, buf) < 0)
    goto out;
  for (int k = 0; k < slices; k++)
    if (latency_slice(fi, ireq, ilen, 100, &si, buf) < 0 ||
        latency_slice(fe, ereq, elen, 100, &se, buf) < 0)
      goto out;
  double pi = bench_median(si.values, si.count);
  double pe = bench_median(se.values, se.count);
  printf("overhead: binary infer on sim (no work) p50 %.1f us | bare "
         "libmicrohttpd echo p50 %.1f us\n",
         pi / 1e3, pe / 1e3);
  ratio = pi / pe;
out:
  if (fi >= 0)
    close(fi);
  if (fe >= 0)
    close(fe);
  free(warm.values);
  free(si.values);
  free(se.values);
  free(buf);
  free(ireq);
  free(ereq);
  MHD_stop_daemon(mhd);
  bench_daemon_stop(&d);
  return ratio;
}

/* ---- memory ------------------------------------------------------------ */

static double rss_per_conn(const bench_daemon *d, int port) {
  static int fds[IDLE_CONNS];
  char buf[4096];
  const char *ping = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n";
  long before = bench_rss_kib(d->pid);
  int n = 0;
  for (; n < IDLE_CONNS; n++) {
    fds[n] = tcp_connect(port);
    /* One request each, so that every connection is accepted and has
     * had its buffers, as a client between requests has. */
    if (fds[n] < 0 ||
        roundtrip(fds[n], ping, strlen(ping), buf, sizeof buf) != 200)
      break;
  }
  long after = bench_rss_kib(d->pid);
  for (int i = 0; i < n; i++)
    close(fds[i]);
  if (n < IDLE_CONNS) {
    fprintf(stderr, PROG ": only %d of %d connections: %s\n", n, IDLE_CONNS,
            strerror(errno));
    return -1;
  }
  return (double)(after - before) / IDLE_CONNS;
}

int main(int argc, char **argv) {
  options o = {.seconds = 0.25, .rounds = 16, .models = EMX_MODELS_DIR};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
      o.seconds = atof(argv[++i]);
    else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
      o.rounds = atoi(argv[++i]);
    else if (strcmp(argv[i], "--models") == 0 && i + 1 < argc)
      o.models = argv[++i];
    else if (strcmp(argv[i], "--overhead-only") == 0)
      o.overhead_only = true;
    else {
      fprintf(stderr,
              "usage: %s [--seconds S] [--rounds N] [--models DIR] "
              "[--overhead-only]\n",
              argv[0]);
      return 2;
    }
  }
  if (o.seconds <= 0 || o.rounds < 1)
    return 2;
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
  setrlimit(RLIMIT_NOFILE, &rl);

  char file[4096];
  snprintf(file, sizeof file, "%s/" MODEL ".tflite", o.models);
  bench_repo repo;
  memset(&repo, 0, sizeof repo);
  bench_daemon d = {0};
  int rc = 1;
  if (bench_repo_make(&repo, PROG, MODEL, file) < 0)
    return 1;
  if (o.overhead_only) {
    double over = overhead(&o, &repo);
    if (over >= 0)
      printf("\nhttp_overhead_ratio: %.3f (target <= 1.5)\n", over);
    bench_repo_remove(&repo);
    return over >= 0 ? 0 : 1;
  }
  const char *args[] = {"--models",
                        repo.dir,
                        "--device",
                        "cpu:workers=1,threads=1",
                        "--http",
                        "127.0.0.1:0",
                        "--max-conns-per-uid",
                        "256",
                        NULL};
  if (bench_daemon_start(&d, PROG, args) < 0)
    goto done;
  int port = log_port(&d);
  double throughput_ratio = throughput(&d, port, &o);
  if (throughput_ratio < 0)
    goto done;
  double per_conn = rss_per_conn(&d, port);
  if (bench_daemon_stop(&d) != 0 || per_conn < 0)
    goto done;
  double over = overhead(&o, &repo);
  if (over < 0)
    goto done;
  printf("\n");
  printf("http_throughput_ratio: %.3f (target >= 0.9)\n", throughput_ratio);
  printf("http_overhead_ratio: %.3f (target <= 1.5)\n", over);
  printf("http_rss_kib_per_conn: %.1f (report)\n", per_conn);
  rc = 0;
done:
  bench_daemon_stop(&d);
  bench_repo_remove(&repo);
  return rc;
}
