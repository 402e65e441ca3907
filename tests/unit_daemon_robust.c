/* One file, over 800 lines: every case shares one daemon fixture, its
 * descriptor/memfd baselines and the forked-client helpers below; split, each
 * part would start its own daemon and repeat that setup. */
/*
 * unit_daemon_robust.c — a real edgemuxd when clients and the daemon
 * itself misbehave or die.
 *
 * kill9_clients        50 forked clients killed with SIGKILL at seeded
 *                      random phases (before hello, idle after hello, with
 *                      requests queued, while executing, with replies
 *                      unread); afterwards no session, fd, memfd mapping
 *                      or memory is left behind, a fresh client computes
 *                      the reference, and the killed clients' queued
 *                      requests did not all run.
 * daemon_killed        SIGKILL of the daemon wakes every blocked client
 *                      call with EMX_EDISCONNECTED at once (and every later
 *                      call); a restarted daemon serves a new client.
 * slow_reader_dropped  a client that never reads its replies is dropped at
 *                      --max-outbox-bytes while another client's requests
 *                      all succeed.
 * connection_caps      --max-conns-per-uid refuses the connection over the
 *                      cap, a slot freed is reusable; --max-inflight
 *                      answers the request over the limit with EMX_EBUSY,
 *                      and the client library never surfaces that.
 * sigterm_drains       SIGTERM with requests in flight (including ones
 *                      whose packets the daemon has not read yet, and with
 *                      the client reading only after the daemon exited):
 *                      all complete with 0, the socket file goes, new
 *                      connections are refused, the exit status is 0.
 * sighup_rescan        SIGHUP loads added models and unloads removed ones;
 *                      an open handle to a removed model gets EMX_ENOENT.
 * fd_exhaustion        the daemon out of descriptors (RLIMIT_NOFILE 64)
 *                      keeps serving, does not spin logging failed
 *                      accept()s, and accepts again once fds are free.
 *
 * Timeouts are hang guards only; nothing asserts how long anything took.
 * Children never call cmocka (they _exit with a code); threads other than
 * the main one never assert either.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon_support.h"
#include "edgemux/client.h"
#include "support.h"
#include "core/arena.h"
#include "wire/wire.h"

#define FACE_SHORT "face_detection_short_range"
#define FACE_FULL "face_detection_full_range"
#define HAND_LITE "hand_landmark_lite"
#define HAND_FULL "hand_landmark_full"
#define SEED 0x0b5e55edULL
#define MIB ((size_t)1 << 20)
#define MAX_OUT 4

/* ---- small helpers ----------------------------------------------------------
 */

static int64_t now_ms(void) {
  return emx_now_ns() / 1000000;
}

/* daemon_alive: running and not a zombie (kill(pid, 0) succeeds on one). */
static int daemon_alive(emxt_daemon *d) {
  if (!d->pid)
    return 0;
  int st;
  pid_t r = waitpid(d->pid, &st, WNOHANG);
  if (r == d->pid) {
    fprintf(stderr, "edgemuxd died: %s %d\n",
            WIFEXITED(st) ? "exit status" : "signal",
            WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    d->pid = 0;
    return 0;
  }
  return kill(d->pid, 0) == 0;
}

static void start(emxt_daemon *d, const char *const *args) {
  int rc = emxt_daemon_start(d, args);
  assert_int_equal(rc, 0);
}

/* rm_daemon_dir removes a stopped daemon's temp folder (log, socket). */
static void rm_daemon_dir(emxt_daemon *d) {
  unlink(d->log);
  unlink(d->socket);
  rmdir(d->dir);
}

/* print_log_line prints the daemon's first log line containing `text`. */
static void print_log_line(const emxt_daemon *d, const char *text) {
  FILE *f = fopen(d->log, "r");
  if (!f)
    return;
  char line[1024];
  while (fgets(line, sizeof line, f))
    if (strstr(line, text)) {
      fprintf(stderr, "daemon log: %s", line);
      break;
    }
  fclose(f);
}

/* ---- temporary model repositories
 * --------------------------------------------- */

static void repo_add(const char *dir, const char *model) {
  char target[512];
  snprintf(target, sizeof target, "%s/%s.tflite", EMX_MODELS_DIR, model);
  assert_int_equal(emxt_repo_add(dir, model, target, NULL), 0);
}

static void repo_remove(const char *dir, const char *model) {
  char sub[512], link[600];
  snprintf(sub, sizeof sub, "%s/%s", dir, model);
  snprintf(link, sizeof link, "%s/model.tflite", sub);
  assert_int_equal(unlink(link), 0);
  assert_int_equal(rmdir(sub), 0);
}

/* ---- clients
 * ------------------------------------------------------------------ */

/* cli: a library client with one model open and its tensors in the arena.
 * The functions return codes instead of asserting: children use them. */
typedef struct cli {
  emx_client *c;
  emx_client_model *m;
  emx_tensor in, out[MAX_OUT];
  size_t nout;
} cli;

static int cli_open(cli *k, const char *socket_path, const char *model,
                    size_t arena) {
  memset(k, 0, sizeof *k);
  emx_client_config cfg;
  emx_client_config_init(&cfg);
  cfg.socket_path = socket_path;
  cfg.arena_bytes = arena;
  int rc = emx_client_connect(&k->c, &cfg);
  if (rc < 0)
    return rc;
  if (!model)
    return 0;
  rc = emx_client_model_open(k->c, model, &k->m);
  if (rc < 0)
    return rc;
  k->nout = emx_client_model_output_count(k->m);
  if (emx_client_model_input_count(k->m) != 1 || k->nout > MAX_OUT)
    return EMX_ECOUNT;
  rc = emx_client_tensor_alloc_input(k->c, k->m, 0, &k->in);
  for (size_t i = 0; rc == 0 && i < k->nout; i++)
    rc = emx_client_tensor_alloc_output(k->c, k->m, i, &k->out[i]);
  if (rc == 0)
    fill_random_floats(k->in.data, k->in.size / sizeof(float), SEED);
  return rc;
}

static void cli_close(cli *k) {
  emx_client_destroy(k->c);
  memset(k, 0, sizeof *k);
}

static int cli_infer(cli *k) {
  for (size_t i = 0; i < k->nout; i++)
    memset(k->out[i].data, SENTINEL_BYTE, k->out[i].size);
  return emx_client_infer(k->c, k->m, &k->in, 1, k->out, k->nout, NULL);
}

static int cli_submit(cli *k, int priority, emx_client_request **r) {
  emx_client_options o;
  emx_client_options_init(&o);
  o.priority = priority;
  return emx_client_submit(k->c, k->m, &k->in, 1, k->out, k->nout, &o, r);
}

/* ref: a model's outputs for the SEED input. */
typedef struct ref {
  size_t nout;
  void *out[MAX_OUT];
  size_t size[MAX_OUT];
} ref;

static void ref_take(ref *r, const cli *k) {
  r->nout = k->nout;
  for (size_t i = 0; i < k->nout; i++) {
    r->size[i] = k->out[i].size;
    r->out[i] = malloc(r->size[i]);
    assert_non_null(r->out[i]);
    memcpy(r->out[i], k->out[i].data, r->size[i]);
  }
}

static int ref_equal(const ref *r, const cli *k) {
  if (r->nout != k->nout)
    return 0;
  for (size_t i = 0; i < k->nout; i++)
    if (r->size[i] != k->out[i].size ||
        memcmp(r->out[i], k->out[i].data, r->size[i]) != 0)
      return 0;
  return 1;
}

static void ref_free(ref *r) {
  for (size_t i = 0; i < r->nout; i++)
    free(r->out[i]);
  memset(r, 0, sizeof *r);
}

/* cli_ref opens `model` on d, infers once and keeps the outputs. */
static void cli_ref(cli *k, ref *r, const emxt_daemon *d, const char *model,
                    size_t arena) {
  int rc = cli_open(k, d->socket, model, arena);
  if (rc < 0)
    fprintf(stderr, "client: %s\n", emx_client_last_error(k->c));
  assert_int_equal(rc, 0);
  rc = cli_infer(k);
  if (rc < 0)
    fprintf(stderr, "infer: %s\n", emx_client_last_error(k->c));
  assert_int_equal(rc, 0);
  ref_take(r, k);
}

/* ---- status text
 * ------------------------------------------------------------- */

/* noinline: inlined at -O2, GCC 12 mistakes strstr's result on the returned
 * text for a pointer into the local `text` (-Wdangling-pointer). */
__attribute__((noinline)) static char *status_text(emx_client *c) {
  char *text = NULL;
  int rc = emx_client_status(c, &text);
  if (rc < 0)
    fprintf(stderr, "status: %s\n", emx_client_last_error(c));
  assert_int_equal(rc, 0);
  return text;
}

static int status_clients(emx_client *c) {
  char *text = status_text(c);
  const char *p = strstr(text, "\nclients ");
  int n = p ? atoi(p + 9) : -1;
  free(text);
  return n;
}

/* model_field reads key=N from the status line of `model`; -1 if none. */
static long long model_field(emx_client *c, const char *model,
                             const char *key) {
  char *text = status_text(c);
  char prefix[128], k[64];
  snprintf(prefix, sizeof prefix, "\nmodel %s ", model);
  snprintf(k, sizeof k, " %s=", key);
  long long v = -1;
  const char *line = strstr(text, prefix);
  if (line) {
    const char *end = strchr(line + 1, '\n');
    const char *at = strstr(line + 1, k);
    if (at && (!end || at < end))
      v = atoll(at + strlen(k));
  }
  free(text);
  return v;
}

/* wait_clients polls until the daemon counts `n` clients (hang guard). */
static void wait_clients(emx_client *c, int n) {
  int64_t until = now_ms() + 30000 * emxt_slow();
  int have;
  while ((have = status_clients(c)) != n && now_ms() < until)
    emxt_sleep_ms(10);
  if (have != n)
    fprintf(stderr, "daemon counts %d clients, expected %d\n", have, n);
  assert_int_equal(have, n);
}

/* wait_fds polls until the daemon's fd count and memfd mappings equal the
 * given numbers (arenas go when their last request does), then asserts. */
static void wait_fds(pid_t pid, int fds, int maps) {
  int64_t until = now_ms() + 10000 * emxt_slow();
  int f, m;
  do {
    f = emxt_fd_count(pid);
    m = emxt_memfd_maps(pid);
    if (f == fds && m == maps)
      return;
    emxt_sleep_ms(10);
  } while (now_ms() < until);
  fprintf(stderr, "daemon fds %d (want %d), memfd maps %d (want %d)\n", f, fds,
          m, maps);
  assert_int_equal(f, fds);
  assert_int_equal(m, maps);
}

/* ---- 1. kill -9 of clients at random phases
 * ----------------------------------- */

enum {
  PH_BEFORE_HELLO, /* raw socket connected, nothing said */
  PH_IDLE,         /* hello done, model open, no request */
  PH_QUEUED,       /* 20 async requests just submitted */
  PH_EXECUTING,    /* sync infers in a loop, killed after 0-20 ms */
  PH_MID_REPLY,    /* 200 async requests, replies never read */
  PH_COUNT
};
static const char *const phase_name[PH_COUNT] = {
    "before hello", "idle", "queued", "executing", "mid-reply"};

#define KILLS 50
#define QUEUED_REQS 20
#define MID_REPLY_REQS 200

typedef struct shared {
  atomic_ulong submitted; /* requests children handed to the library */
} shared;

static void child_ready(int wfd) {
  char b = 'r';
  if (write(wfd, &b, 1) != 1)
    _exit(10);
}

static void child_idle(void) {
  for (;;)
    pause();
}

/* child_main runs in the forked child; it never returns. */
static void child_main(int phase, int wfd, shared *sh) {
  if (phase == PH_BEFORE_HELLO) {
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", getenv("EDGEMUX_SOCKET"));
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
      _exit(2);
    child_ready(wfd);
    child_idle();
  }
  cli k;
  if (cli_open(&k, NULL, FACE_FULL, 4 * MIB) < 0)
    _exit(3);
  emx_client_request *r;
  switch (phase) {
  case PH_IDLE:
    child_ready(wfd);
    child_idle();
    break;
  case PH_QUEUED:
  case PH_MID_REPLY: {
    int n = phase == PH_QUEUED ? QUEUED_REQS : MID_REPLY_REQS;
    for (int i = 0; i < n; i++) {
      atomic_fetch_add(&sh->submitted, 1);
      if (cli_submit(&k, EMX_PRIORITY_NORMAL, &r) < 0)
        _exit(4);
    }
    child_ready(wfd);
    child_idle();
    break;
  }
  case PH_EXECUTING:
    atomic_fetch_add(&sh->submitted, 1);
    if (cli_infer(&k) < 0)
      _exit(5);
    child_ready(wfd);
    for (;;) {
      atomic_fetch_add(&sh->submitted, 1);
      if (cli_infer(&k) < 0)
        _exit(6);
    }
  }
  _exit(7);
}

/* kill_one forks a child for `phase`, waits until it is there, and kills
 * it (for PH_EXECUTING after a random 0-20 ms). */
static void kill_one(int phase, uint64_t *prng, shared *sh) {
  int p[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(p[0]);
    child_main(phase, p[1], sh);
    _exit(1);
  }
  close(p[1]);
  struct pollfd pf = {.fd = p[0], .events = POLLIN};
  int n;
  do
    n = poll(&pf, 1, 30000 * emxt_slow());
  while (n < 0 && errno == EINTR);
  char b = 0;
  ssize_t got = n > 0 ? read(p[0], &b, 1) : -1;
  close(p[0]);
  if (got != 1) {
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    fprintf(stderr, "child (%s) never got ready: %s %d\n", phase_name[phase],
            WIFEXITED(st) ? "exit" : "signal",
            WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    fail();
  }
  /* The random delay is the point: it picks where in its infer loop the
   * child dies (the pipe said only that the loop has begun). */
  if (phase == PH_EXECUTING)
    emxt_sleep_ms((int)(prng_next(prng) % 21));
  assert_int_equal(kill(pid, SIGKILL), 0);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
    fprintf(stderr, "child (%s) ended with %s %d before the kill\n",
            phase_name[phase], WIFEXITED(st) ? "exit" : "signal",
            WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

static void kill9_clients(void **state) {
  (void)state;
  emxt_daemon d;
  const char *args[] = {"--device", "cpu:workers=1", NULL};
  start(&d, args);

  /* The watcher: status only, no arena. Wait until it is alone. */
  cli st;
  assert_int_equal(cli_open(&st, d.socket, NULL, 0), 0);
  wait_clients(st.c, 1);
  const int base_fds = emxt_fd_count(d.pid);
  const int base_maps = emxt_memfd_maps(d.pid);
  assert_true(base_fds > 0);
  assert_int_equal(base_maps, 0);

  shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  assert_true(sh != MAP_FAILED);
  atomic_init(&sh->submitted, 0);

  /* The reference, from a client that then goes away. */
  cli k;
  ref want;
  cli_ref(&k, &want, &d, FACE_FULL, 4 * MIB);
  atomic_fetch_add(&sh->submitted, 1);
  cli_close(&k);

  /* Warm-up: one of each phase, so that the RSS baseline includes what
   * the daemon keeps once it has seen them all. */
  uint64_t prng = SEED;
  for (int ph = 0; ph < PH_COUNT; ph++)
    kill_one(ph, &prng, sh);
  wait_clients(st.c, 1);
  wait_fds(d.pid, base_fds, base_maps);
  const long base_rss = emxt_rss_kib(d.pid);
  assert_true(base_rss > 0);

  /* 50 kills, 10 per phase, in a seeded shuffled order. */
  int plan[KILLS];
  for (int i = 0; i < KILLS; i++)
    plan[i] = i % PH_COUNT;
  for (int i = KILLS - 1; i > 0; i--) {
    int j = (int)(prng_next(&prng) % (uint64_t)(i + 1));
    int t = plan[i];
    plan[i] = plan[j];
    plan[j] = t;
  }
  for (int i = 0; i < KILLS; i++)
    kill_one(plan[i], &prng, sh);
  assert_true(daemon_alive(&d));

  /* Everything of the killed clients goes: sessions, fds, arenas. */
  wait_clients(st.c, 1);
  int64_t until = now_ms() + 30000 * emxt_slow();
  while (model_field(st.c, FACE_FULL, "queue") != 0 && now_ms() < until)
    emxt_sleep_ms(10);
  assert_int_equal(model_field(st.c, FACE_FULL, "queue"), 0);
  wait_fds(d.pid, base_fds, base_maps);
  long rss = emxt_rss_kib(d.pid);
  /* ASan's quarantine and TSan's shadow keep freed memory: only a plain
   * build's RSS says something about leaks. */
  long tolerance_kib = emxt_sanitized() ? 1024 * 1024 : 16 * 1024;
  fprintf(stderr, "daemon RSS %ld KiB after warm-up, %ld KiB after %d kills\n",
          base_rss, rss, KILLS);
  assert_true(rss <= base_rss + tolerance_kib);

  /* Queued requests of killed clients never ran: fewer successes than
   * submissions, and some completed as canceled (errors). */
  long long requests = model_field(st.c, FACE_FULL, "requests");
  long long errors = model_field(st.c, FACE_FULL, "errors");
  unsigned long submitted = atomic_load(&sh->submitted);
  fprintf(stderr,
          "%s: %lu submitted by clients, %lld completed, %lld of "
          "them errors (canceled)\n",
          FACE_FULL, submitted, requests, errors);
  assert_true(requests >= 0 && errors >= 0);
  assert_true(errors > 0);
  assert_true((unsigned long long)(requests - errors) < submitted);

  /* A fresh client still computes the reference. */
  cli fresh;
  assert_int_equal(cli_open(&fresh, d.socket, FACE_FULL, 4 * MIB), 0);
  assert_int_equal(cli_infer(&fresh), 0);
  assert_true(ref_equal(&want, &fresh));
  cli_close(&fresh);

  ref_free(&want);
  munmap(sh, sizeof *sh);
  cli_close(&st);
  assert_true(daemon_alive(&d));
  assert_int_equal(emxt_daemon_stop(&d), 0);
  rm_daemon_dir(&d);
}

/* ---- 2. the daemon dies under blocked clients
 * ------------------------------------ */

typedef struct blocked {
  pthread_t thread;
  cli *k;
  emx_client_request *r; /* NULL: block in emx_client_infer instead */
  atomic_int started;    /* about to block */
  atomic_int done;
  int rc;
} blocked;

static void *block_thread(void *arg) {
  blocked *b = arg;
  atomic_store(&b->started, 1);
  b->rc = b->r ? emx_client_request_wait(b->r, -1) : cli_infer(b->k);
  atomic_store(&b->done, 1);
  return NULL;
}

/* wait_done: hang guard for a blocked thread; joins it when it is done. */
static int wait_done(blocked *b, int ms) {
  int64_t until = now_ms() + ms;
  while (!atomic_load(&b->done) && now_ms() < until)
    emxt_sleep_ms(1);
  if (!atomic_load(&b->done))
    return 0;
  pthread_join(b->thread, NULL);
  return 1;
}

#define LONG_QUEUE 100

static void daemon_killed(void **state) {
  (void)state;
  emxt_daemon d;
  /* fifo: the sync infer must queue behind the long queue (a cpu device
   * is sched=fair by default, which would serve its stream next). */
  const char *args[] = {"--device", "cpu:workers=1,sched=fifo", NULL};
  start(&d, args);

  /* b runs another model on the same worker: its queue count is the
   * signal that its sync infer has reached the daemon. */
  cli a, b, st;
  ref want;
  cli_ref(&a, &want, &d, FACE_FULL, 8 * MIB);
  assert_int_equal(cli_open(&b, d.socket, FACE_SHORT, 8 * MIB), 0);
  assert_int_equal(cli_open(&st, d.socket, NULL, 0), 0);

  /* A long queue: LONG_QUEUE requests of a few ms on one worker. */
  emx_client_request *reqs[LONG_QUEUE];
  for (int i = 0; i < LONG_QUEUE; i++)
    assert_int_equal(cli_submit(&a, EMX_PRIORITY_NORMAL, &reqs[i]), 0);
  /* Blocked: one thread waiting for the last request, one in a sync infer
   * on another client (queued behind all of them). */
  blocked w = {.k = &a, .r = reqs[LONG_QUEUE - 1]};
  blocked w2 = {.k = &a, .r = reqs[LONG_QUEUE - 2]}; /* same client */
  blocked s = {.k = &b, .r = NULL};
  blocked *all[] = {&w, &w2, &s};
  for (int i = 0; i < 3; i++) {
    atomic_init(&all[i]->started, 0);
    atomic_init(&all[i]->done, 0);
    assert_int_equal(
        pthread_create(&all[i]->thread, NULL, block_thread, all[i]), 0);
  }
  /* Ready: every thread at its call, and the sync infer queued in the
   * daemon (behind the long queue, so it stays there). */
  int64_t until = now_ms() + 10000 * emxt_slow();
  int ready = 0;
  while (!ready && now_ms() < until) {
    ready = model_field(st.c, FACE_SHORT, "queue") == 1;
    for (int i = 0; i < 3; i++)
      ready = ready && atomic_load(&all[i]->started);
    if (!ready)
      emxt_sleep_ms(1);
  }
  cli_close(&st);
  /* All must still be blocked, or the test proves nothing. */
  assert_false(atomic_load(&w.done));
  assert_false(atomic_load(&w2.done));
  if (atomic_load(&s.done))
    fprintf(stderr, "the sync infer returned before the kill: rc %d (%s)\n",
            s.rc, emx_client_last_error(b.c));
  assert_false(atomic_load(&s.done));
  assert_true(ready);

  emxt_daemon_kill(&d);
  int guard = 2000 * emxt_slow();
  int w_ok = wait_done(&w, guard), w2_ok = wait_done(&w2, guard),
      s_ok = wait_done(&s, guard);
  if (!w_ok || !w2_ok || !s_ok)
    fprintf(stderr,
            "a blocked call did not return within %d ms of the "
            "daemon's death (waits: %d %d, infer: %d)\n",
            guard, w_ok, w2_ok, s_ok);
  assert_true(w_ok);
  assert_true(w2_ok);
  assert_true(s_ok);
  assert_int_equal(w.rc, EMX_EDISCONNECTED);
  assert_int_equal(w2.rc, EMX_EDISCONNECTED);
  assert_int_equal(s.rc, EMX_EDISCONNECTED);

  /* Every pending request completed: 0 if it ran before the kill, else
   * EMX_EDISCONNECTED; never still pending. */
  int disconnected = 0;
  for (int i = 0; i < LONG_QUEUE; i++) {
    int rc = emx_client_request_wait(reqs[i], 0);
    if (rc != 0 && rc != EMX_EDISCONNECTED)
      fprintf(stderr, "request %d: %s\n", i, emx_err_name(rc));
    assert_true(rc == 0 || rc == EMX_EDISCONNECTED);
    disconnected += rc == EMX_EDISCONNECTED;
    emx_client_request_destroy(reqs[i]);
  }
  assert_true(disconnected > 0);

  /* Later calls fail the same way, without blocking. */
  emx_client_request *r = NULL;
  emx_client_model *m = NULL;
  char *text = NULL;
  assert_int_equal(emx_client_ping(a.c), EMX_EDISCONNECTED);
  assert_int_equal(cli_infer(&a), EMX_EDISCONNECTED);
  assert_int_equal(cli_submit(&a, EMX_PRIORITY_NORMAL, &r), EMX_EDISCONNECTED);
  assert_null(r);
  assert_int_equal(emx_client_model_open(a.c, FACE_SHORT, &m),
                   EMX_EDISCONNECTED);
  assert_int_equal(emx_client_status(b.c, &text), EMX_EDISCONNECTED);
  assert_int_equal(cli_infer(&b), EMX_EDISCONNECTED);
  cli_close(&a);
  cli_close(&b);

  /* A new daemon (same flags, a new socket) serves a new client. */
  emxt_daemon d2;
  start(&d2, args);
  cli c;
  assert_int_equal(cli_open(&c, d2.socket, FACE_FULL, 8 * MIB), 0);
  assert_int_equal(cli_infer(&c), 0);
  assert_true(ref_equal(&want, &c));
  cli_close(&c);
  ref_free(&want);
  assert_int_equal(emxt_daemon_stop(&d2), 0);
  rm_daemon_dir(&d);
  rm_daemon_dir(&d2);
}

/* ---- 3. a client that never reads its replies
 * ------------------------------------- */

typedef struct steady {
  pthread_t thread;
  cli *k;
  const ref *want;
  atomic_int stop;
  atomic_int ok, failed, wrong;
  char last_error[256];
} steady;

/* steady_thread: request after request, each waited for, at high priority
 * (a sync infer that does not queue behind the flood), a few ms apart. */
static void *steady_thread(void *arg) {
  steady *s = arg;
  while (!atomic_load(&s->stop)) {
    for (size_t i = 0; i < s->k->nout; i++)
      memset(s->k->out[i].data, SENTINEL_BYTE, s->k->out[i].size);
    emx_client_request *r;
    int rc = cli_submit(s->k, EMX_PRIORITY_HIGH, &r);
    if (rc == 0) {
      rc = emx_client_request_wait(r, -1);
      emx_client_request_destroy(r);
    }
    if (rc != 0) {
      snprintf(s->last_error, sizeof s->last_error, "%s: %s", emx_err_name(rc),
               emx_client_last_error(s->k->c));
      atomic_fetch_add(&s->failed, 1);
    } else if (!ref_equal(s->want, s->k)) {
      atomic_fetch_add(&s->wrong, 1);
    } else {
      atomic_fetch_add(&s->ok, 1);
    }
    /* Paced: the flood must get the worker too, or its replies (and the
     * drop) take long to come. */
    emxt_sleep_ms(5);
  }
  return NULL;
}

/* raw_flooder: hello with a real arena, OPEN, then INFERs without reading. */
typedef struct raw {
  int fd;
  emx__arena arena;
  uint32_t model;
} raw;

static uint64_t rawbuf[EMX_WIRE_MAX_MSG / 8 + 8];

static int raw_connect(const char *path) {
  int fd = emxt_raw_connect(path);
  assert_true(fd >= 0);
  return fd;
}

static void raw_send(int fd, const void *buf, size_t len, int pass_fd) {
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctl;
  if (pass_fd >= 0) {
    memset(&ctl, 0, sizeof ctl);
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof ctl.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pass_fd, sizeof pass_fd);
  }
  assert_int_equal(sendmsg(fd, &mh, MSG_NOSIGNAL), (ssize_t)len);
}

/* raw_recv: one packet within timeout_ms, decoded; returns its length, 0 on
 * EOF, or -errno (-ETIMEDOUT). */
static ssize_t raw_recv(int fd, emx__wire_msg *m, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int n;
  do
    n = poll(&p, 1, timeout_ms);
  while (n < 0 && errno == EINTR);
  if (n == 0)
    return -ETIMEDOUT;
  ssize_t got = recv(fd, rawbuf, sizeof rawbuf, MSG_DONTWAIT);
  if (got < 0)
    return errno == EAGAIN ? -ETIMEDOUT : -errno;
  if (got > 0) {
    emx__errbuf err;
    assert_int_equal(emx__wire_decode(rawbuf, (size_t)got, m, &err), 0);
  }
  return got;
}

static void raw_expect(int fd, uint8_t type, emx__wire_msg *m) {
  ssize_t n = raw_recv(fd, m, 10000 * emxt_slow());
  assert_true(n > 0);
  if (m->hdr.type == EMX_WIRE_ERROR && type != EMX_WIRE_ERROR)
    fprintf(stderr, "ERROR %d: %.*s\n", m->u.error.e->status,
            (int)m->u.error.e->msg_len, m->u.error.text);
  assert_int_equal(m->hdr.type, type);
}

static void raw_session(raw *r, const char *path, const char *model) {
  r->fd = raw_connect(path);
  emx__errbuf err;
  assert_int_equal(emx__arena_create(&r->arena, 4 * MIB, &err), 0);
  uint64_t pkt[64];
  emx__wire_buf b;
  emx__wire_begin(&b, pkt, EMX_WIRE_HELLO, 0);
  emx__wire_hello h = {.proto = EMX_WIRE_VERSION,
                       .arena_size = r->arena.size,
                       .pid = (uint32_t)getpid()};
  emx__wire_put(&b, &h, sizeof h);
  raw_send(r->fd, pkt, emx__wire_end(&b), r->arena.fd);
  emx__wire_msg m;
  raw_expect(r->fd, EMX_WIRE_HELLO_OK, &m);
  emx__wire_begin(&b, pkt, EMX_WIRE_OPEN, 1);
  emx__wire_name n = {.len = (uint32_t)strlen(model)};
  emx__wire_put(&b, &n, sizeof n);
  emx__wire_put(&b, model, n.len);
  raw_send(r->fd, pkt, emx__wire_end(&b), -1);
  raw_expect(r->fd, EMX_WIRE_MODEL, &m);
  r->model = m.u.model.m->model;
}

/* raw_infer_pkt: an INFER of `k`'s model layout (1 input, nout outputs)
 * laid out from offset 0 of r's arena. */
static size_t raw_infer_pkt(void *pkt, const raw *r, const cli *k,
                            uint64_t id) {
  emx__wire_buf b;
  emx__wire_begin(&b, pkt, EMX_WIRE_INFER, id);
  emx__wire_infer in = {.model = r->model,
                        .priority = EMX_PRIORITY_NORMAL,
                        .nin = 1,
                        .nout = (uint8_t)k->nout};
  emx__wire_put(&b, &in, sizeof in);
  uint64_t off = 0;
  for (size_t i = 0; i <= k->nout; i++) {
    const emx_tensor *t = i == 0 ? &k->in : &k->out[i - 1];
    emx__wire_ref wr = {
        .offset = off, .length = t->size, .dtype = (uint32_t)t->dtype};
    emx__wire_put(&b, &wr, sizeof wr);
    off += (t->size + 63) & ~(size_t)63;
  }
  assert_true(off <= r->arena.size);
  return emx__wire_end(&b);
}

static void raw_close(raw *r) {
  if (r->fd >= 0)
    close(r->fd);
  r->fd = -1;
  emx__arena_close(&r->arena);
}

/* raw_wait_eof drains r until the daemon closes it (hang guard). */
static int raw_wait_eof(raw *r) {
  int64_t until = now_ms() + 10000 * emxt_slow();
  while (now_ms() < until) {
    emx__wire_msg m;
    ssize_t n = raw_recv(r->fd, &m, 100);
    if (n == 0 || n == -ECONNRESET)
      return 1;
    if (n < 0 && n != -ETIMEDOUT)
      return 0;
  }
  return 0;
}

#define FLOOD_BURST 4000

static void slow_reader_dropped(void **state) {
  (void)state;
  emxt_daemon d;
  const char *args[] = {"--device",
                        "cpu:workers=1",
                        "--max-outbox-bytes",
                        "65536",
                        "--max-inflight",
                        "100000",
                        "--queue-capacity",
                        "100000",
                        NULL};
  start(&d, args);
  cli st;
  assert_int_equal(cli_open(&st, d.socket, NULL, 0), 0);
  wait_clients(st.c, 1);
  const int base_fds = emxt_fd_count(d.pid);

  cli good;
  ref want;
  cli_ref(&good, &want, &d, FACE_SHORT, 4 * MIB);
  steady s = {.k = &good, .want = &want};
  atomic_init(&s.stop, 0);
  atomic_init(&s.ok, 0);
  atomic_init(&s.failed, 0);
  atomic_init(&s.wrong, 0);
  assert_int_equal(pthread_create(&s.thread, NULL, steady_thread, &s), 0);

  /* The flood: requests, never a read. A burst first, then about one per
   * millisecond (what the worker completes), until the daemon gives up on
   * it. How many it takes depends on the kernel's socket buffer. */
  raw r;
  raw_session(&r, d.socket, FACE_SHORT);
  memcpy(r.arena.base, good.in.data, good.in.size);
  uint64_t pkt[256];
  int sent = 0, dropped = 0;
  int64_t until = now_ms() + 120000 * emxt_slow();
  while (!dropped && now_ms() < until) {
    size_t len = raw_infer_pkt(pkt, &r, &good, (uint64_t)sent + 10);
    ssize_t n = send(r.fd, pkt, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n == (ssize_t)len) {
      sent++;
      if (sent < FLOOD_BURST && sent % 64)
        continue;
    } else if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
      break; /* dropped: the daemon shut the connection */
    } else if (n < 0 && errno != EAGAIN && errno != ENOBUFS) {
      fprintf(stderr, "flood send: %s\n", strerror(errno));
      fail();
    }
    dropped = emxt_log_contains(&d, "does not read");
    if (!dropped)
      emxt_sleep_ms(1);
  }
  fprintf(stderr, "flood: %d requests sent before the drop\n", sent);
  until = now_ms() + 10000 * emxt_slow();
  while (!emxt_log_contains(&d, "does not read") && now_ms() < until)
    emxt_sleep_ms(10);
  assert_true(emxt_log_contains(&d, "does not read"));
  print_log_line(&d, "does not read");
  assert_true(raw_wait_eof(&r));
  raw_close(&r);

  /* The good client kept working through it, and goes on doing so. */
  int ok_at_drop = atomic_load(&s.ok);
  until = now_ms() + 30000 * emxt_slow();
  while (atomic_load(&s.ok) < ok_at_drop + 3 && now_ms() < until &&
         !atomic_load(&s.failed))
    emxt_sleep_ms(5);
  atomic_store(&s.stop, 1);
  pthread_join(s.thread, NULL);
  if (atomic_load(&s.failed))
    fprintf(stderr, "good client failed %d times; last: %s\n",
            atomic_load(&s.failed), s.last_error);
  fprintf(stderr, "good client: %d requests right, %d wrong, %d failed\n",
          atomic_load(&s.ok), atomic_load(&s.wrong), atomic_load(&s.failed));
  assert_int_equal(atomic_load(&s.failed), 0);
  assert_int_equal(atomic_load(&s.wrong), 0);
  assert_true(atomic_load(&s.ok) >= ok_at_drop + 3);

  /* The dropped client's queued requests were canceled, not run. */
  until = now_ms() + 60000 * emxt_slow();
  while (model_field(st.c, FACE_SHORT, "queue") != 0 && now_ms() < until)
    emxt_sleep_ms(10);
  assert_int_equal(model_field(st.c, FACE_SHORT, "queue"), 0);
  assert_true(model_field(st.c, FACE_SHORT, "errors") > 0);

  cli_close(&good);
  ref_free(&want);
  wait_clients(st.c, 1);
  wait_fds(d.pid, base_fds, 0);
  cli_close(&st);
  assert_int_equal(emxt_daemon_stop(&d), 0);
  rm_daemon_dir(&d);
}

/* ---- 4. connection and in-flight caps
 * ------------------------------------------------ */

static void connection_caps(void **state) {
  (void)state;
  emxt_daemon d;
  const char *args[] = {"--device", "cpu:workers=1",  "--max-conns-per-uid",
                        "3",        "--max-inflight", "4",
                        NULL};
  start(&d, args);

  cli a, b, c, x;
  assert_int_equal(cli_open(&a, d.socket, HAND_FULL, 8 * MIB), 0);
  wait_clients(a.c, 1); /* the startup probe has gone */
  assert_int_equal(cli_open(&b, d.socket, NULL, 0), 0);
  assert_int_equal(cli_open(&c, d.socket, NULL, 0), 0);
  assert_int_equal(status_clients(a.c), 3);

  /* The 4th: refused with an ERROR that names the limit and its flag
   * (not a bare "Broken pipe"), and the client reports it. */
  emx_client_config cfg;
  emx_client_config_init(&cfg);
  cfg.socket_path = d.socket;
  cfg.arena_bytes = 0;
  emx_client *over = NULL;
  int rc = emx_client_connect(&over, &cfg);
  fprintf(stderr, "4th connect: %s (%s)\n", emx_err_name(rc),
          emx_client_last_error(NULL));
  assert_int_equal(rc, EMX_EBUSY);
  assert_non_null(strstr(emx_client_last_error(NULL), "--max-conns-per-uid"));
  assert_null(over);
  assert_true(emxt_log_contains(&d, "--max-conns-per-uid"));
  assert_int_equal(status_clients(a.c), 3);

  /* A slot freed is a slot usable. */
  cli_close(&c);
  wait_clients(a.c, 2);
  assert_int_equal(cli_open(&x, d.socket, NULL, 0), 0);
  assert_int_equal(emx_client_ping(x.c), 0);
  cli_close(&x);
  cli_close(&b);
  wait_clients(a.c, 1);

  /* --max-inflight 4 on a raw connection: a keeps the one worker busy with
   * its own 4 slow requests, so the raw connection's first 4 stay queued
   * while its 5th arrives. */
  cli k; /* layout of face_detection_short_range, for the raw refs */
  assert_int_equal(cli_open(&k, d.socket, FACE_SHORT, 4 * MIB), 0);
  raw r;
  raw_session(&r, d.socket, FACE_SHORT);
  memcpy(r.arena.base, k.in.data, k.in.size);
  emx_client_request *busy[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(cli_submit(&a, EMX_PRIORITY_NORMAL, &busy[i]), 0);
  uint64_t pkt[256];
  for (uint64_t id = 1; id <= 5; id++)
    raw_send(r.fd, pkt, raw_infer_pkt(pkt, &r, &k, id), -1);
  int completes = 0, busy_errors = 0;
  while (completes + busy_errors < 5) {
    emx__wire_msg m;
    ssize_t n = raw_recv(r.fd, &m, 30000 * emxt_slow());
    assert_true(n > 0);
    if (m.hdr.type == EMX_WIRE_ERROR) {
      fprintf(stderr, "request %llu: ERROR %d: %.*s\n",
              (unsigned long long)m.hdr.id, m.u.error.e->status,
              (int)m.u.error.e->msg_len, m.u.error.text);
      assert_int_equal(m.hdr.id, 5);
      assert_int_equal(m.u.error.e->status, EMX_EBUSY);
      busy_errors++;
    } else {
      assert_int_equal(m.hdr.type, EMX_WIRE_COMPLETE);
      assert_true(m.hdr.id >= 1 && m.hdr.id <= 4);
      assert_int_equal(m.u.complete.c->status, 0);
      completes++;
    }
  }
  assert_int_equal(busy_errors, 1);
  assert_int_equal(completes, 4);
  /* Slots are free again: a 6th request runs. */
  raw_send(r.fd, pkt, raw_infer_pkt(pkt, &r, &k, 6), -1);
  emx__wire_msg m;
  raw_expect(r.fd, EMX_WIRE_COMPLETE, &m);
  assert_int_equal(m.hdr.id, 6);
  assert_int_equal(m.u.complete.c->status, 0);
  raw_close(&r);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(emx_client_request_wait(busy[i], -1), 0);
    emx_client_request_destroy(busy[i]);
  }

  /* The library honours max_inflight itself: 12 submits in a row never
   * see EMX_EBUSY. */
  emx_client_request *reqs[12];
  for (int i = 0; i < 12; i++)
    assert_int_equal(cli_submit(&k, EMX_PRIORITY_NORMAL, &reqs[i]), 0);
  for (int i = 0; i < 12; i++) {
    assert_int_equal(emx_client_request_wait(reqs[i], -1), 0);
    emx_client_request_destroy(reqs[i]);
  }
  cli_close(&k);
  cli_close(&a);
  assert_int_equal(emxt_daemon_stop(&d), 0);
  rm_daemon_dir(&d);
}

/* ---- 5. SIGTERM with requests in flight
 * ---------------------------------------------- */

#define DRAIN_READ 40  /* submitted, then a ping: surely read */
#define DRAIN_SENT 160 /* submitted right before the signal */
#define DRAIN_REQS (DRAIN_READ + DRAIN_SENT)

/* SIGTERM with requests in flight. Some of them the daemon has surely
 * read (a round trip behind them); the others were submitted (the library
 * returned 0) while the daemon's I/O thread was busy with a SIGHUP rescan
 * loading a model, and SIGTERM follows before it reads them. Every one was
 * submitted before the signal and must complete with 0.
 *
 * The client reads nothing until the daemon has exited, and submits one
 * more request after the drain began (that one may fail): replies the
 * daemon sent before it exited are in the client's socket and must still
 * be delivered, whatever the daemon left unread when it closed. */
static void sigterm_drains(void **state) {
  (void)state;
  char repo[] = "/tmp/emxt-repo-XXXXXX";
  assert_non_null(mkdtemp(repo));
  repo_add(repo, FACE_FULL);
  emxt_daemon d;
  const char *args[] = {"--device", "cpu:workers=1", "--models", repo, NULL};
  start(&d, args);
  cli k;
  ref want;
  cli_ref(&k, &want, &d, FACE_FULL, 8 * MIB);

  emx_client_request *reqs[DRAIN_REQS];
  for (int i = 0; i < DRAIN_READ; i++)
    assert_int_equal(cli_submit(&k, EMX_PRIORITY_NORMAL, &reqs[i]), 0);
  assert_int_equal(emx_client_ping(k.c), 0);

  /* Keep the I/O thread busy: a rescan that loads a model. */
  repo_add(repo, HAND_FULL);
  assert_int_equal(kill(d.pid, SIGHUP), 0);
  int64_t until = now_ms() + 10000 * emxt_slow();
  while (!emxt_log_contains(&d, "SIGHUP: rescanning") && now_ms() < until)
    emxt_sleep_ms(1);
  assert_true(emxt_log_contains(&d, "SIGHUP: rescanning"));
  for (int i = DRAIN_READ; i < DRAIN_REQS; i++)
    assert_int_equal(cli_submit(&k, EMX_PRIORITY_NORMAL, &reqs[i]), 0);
  int pending = 0;
  for (int i = 0; i < DRAIN_REQS; i++)
    pending += emx_client_request_poll(reqs[i]) == EMX_EAGAIN;
  assert_true(pending > 0); /* or SIGTERM would find nothing in flight */

  char sock[sizeof d.socket];
  snprintf(sock, sizeof sock, "%s", d.socket);
  assert_int_equal(kill(d.pid, SIGTERM), 0);
  /* No new connections while draining: the socket file goes. */
  until = now_ms() + 30000 * emxt_slow();
  while (access(sock, F_OK) == 0 && now_ms() < until)
    emxt_sleep_ms(1);
  assert_int_equal(access(sock, F_OK), -1);
  cli late;
  assert_int_equal(cli_open(&late, sock, NULL, 0), EMX_EDISCONNECTED);
  /* A request after the signal: refused, dropped or run; never a hang.
   * The daemon removes its socket file as it starts draining, right before
   * it reads every connection dry and stops reading them, so this one is
   * most likely never read. Then it closes the connection with it unread,
   * which the kernel reports to this side as ECONNRESET ahead of the
   * replies still queued here. */
  emx_client_request *after = NULL;
  int after_rc = cli_submit(&k, EMX_PRIORITY_NORMAL, &after);

  /* The daemon finishes and exits 0 without the client reading. */
  int stopped = emxt_daemon_stop(&d);
  if (after_rc == 0) {
    after_rc = emx_client_request_wait(after, -1);
    emx_client_request_destroy(after);
  }
  fprintf(stderr, "request submitted after SIGTERM: %s\n",
          emx_err_name(after_rc));

  /* Every request completes normally. Failures are counted (and asserted
   * after the cleanup): read-before-the-ping ones and the others. */
  int failed_read = 0, failed_sent = 0, first_failed = -1, first_rc = 0;
  for (int i = 0; i < DRAIN_REQS; i++) {
    int rc = emx_client_request_wait(reqs[i], -1);
    if (rc != 0) {
      if (first_failed < 0) {
        first_failed = i;
        first_rc = rc;
        fprintf(stderr, "request %d after SIGTERM: %s (%s)\n", i,
                emx_err_name(rc), emx_client_request_error(reqs[i]));
      }
      *(i < DRAIN_READ ? &failed_read : &failed_sent) += 1;
    }
    emx_client_request_destroy(reqs[i]);
  }
  if (first_failed >= 0)
    fprintf(stderr,
            "after SIGTERM: %d of %d requests the daemon had read "
            "and %d of %d sent during the rescan failed (first: "
            "request %d, %s)\n",
            failed_read, DRAIN_READ, failed_sent, DRAIN_SENT, first_failed,
            emx_err_name(first_rc));
  /* Cleanup before the verdicts: a failure must not leak the client. */
  int same = ref_equal(&want, &k);
  int ping = emx_client_ping(k.c);
  cli_close(&k);
  ref_free(&want);
  repo_remove(repo, FACE_FULL);
  repo_remove(repo, HAND_FULL);
  rmdir(repo);
  assert_int_equal(stopped, 0);
  assert_int_equal(access(sock, F_OK), -1);
  assert_int_equal(ping, EMX_EDISCONNECTED);
  assert_int_equal(failed_read, 0);
  assert_int_equal(failed_sent, 0);
  assert_true(same);
  rm_daemon_dir(&d);
}

/* ---- 6. SIGHUP rescans the repository
 * ---------------------------------------------- */

typedef struct names {
  char list[1024];
} names;

static void collect(const char *name, void *user) {
  names *n = user;
  size_t used = strlen(n->list);
  snprintf(n->list + used, sizeof n->list - used, "[%s]", name);
}

static int has_model(emx_client *c, const char *model) {
  names n = {{0}};
  int rc = emx_client_models(c, collect, &n);
  assert_int_equal(rc, 0);
  char want[128];
  snprintf(want, sizeof want, "[%s]", model);
  return strstr(n.list, want) != NULL;
}

/* wait_model polls the model list until `model` is (present) or is not. */
static void wait_model(emx_client *c, const char *model, int present) {
  int64_t until = now_ms() + 30000 * emxt_slow();
  while (has_model(c, model) != present && now_ms() < until)
    emxt_sleep_ms(10);
  if (has_model(c, model) != present)
    fprintf(stderr, "model %s still %s after SIGHUP\n", model,
            present ? "missing" : "listed");
  assert_int_equal(has_model(c, model), present);
}

static void sighup_rescan(void **state) {
  (void)state;
  char repo[] = "/tmp/emxt-repo-XXXXXX";
  assert_non_null(mkdtemp(repo));
  repo_add(repo, FACE_SHORT);
  repo_add(repo, HAND_LITE);
  emxt_daemon d;
  const char *args[] = {"--device", "cpu:workers=1", "--models", repo, NULL};
  start(&d, args);

  cli st;
  assert_int_equal(cli_open(&st, d.socket, NULL, 0), 0);
  assert_true(has_model(st.c, FACE_SHORT));
  assert_true(has_model(st.c, HAND_LITE));
  assert_false(has_model(st.c, FACE_FULL)); /* not in this repository */

  /* Added + SIGHUP: it appears and serves. */
  repo_add(repo, FACE_FULL);
  assert_int_equal(kill(d.pid, SIGHUP), 0);
  wait_model(st.c, FACE_FULL, 1);
  cli full;
  ref want_full;
  cli_ref(&full, &want_full, &d, FACE_FULL, 4 * MIB);

  /* A client holds the hand model open, with requests in flight when it
   * is removed: the running one completes; the queued ones may be
   * cancelled (the unload never waits for them, issue 11), and say so. */
  cli hand;
  ref want_hand;
  cli_ref(&hand, &want_hand, &d, HAND_LITE, 8 * MIB);
  emx_client_request *reqs[10];
  for (int i = 0; i < 10; i++)
    assert_int_equal(cli_submit(&hand, EMX_PRIORITY_NORMAL, &reqs[i]), 0);
  assert_int_equal(emx_client_ping(hand.c), 0); /* all read by the daemon */
  repo_remove(repo, HAND_LITE);
  assert_int_equal(kill(d.pid, SIGHUP), 0);
  wait_model(st.c, HAND_LITE, 0);
  for (int i = 0; i < 10; i++) {
    int rc = emx_client_request_wait(reqs[i], -1);
    if (rc != 0 && rc != EMX_ECANCELED)
      fprintf(stderr, "request %d in flight at unload: %s (%s)\n", i,
              emx_err_name(rc), emx_client_request_error(reqs[i]));
    if (rc == EMX_ECANCELED)
      assert_non_null(strstr(emx_client_request_error(reqs[i]), "cancel"));
    else
      assert_int_equal(rc, 0);
    emx_client_request_destroy(reqs[i]);
  }
  assert_true(ref_equal(&want_hand, &hand));

  /* The open handle now names nothing: EMX_ENOENT, and the connection
   * lives on. */
  int rc = cli_infer(&hand);
  if (rc != EMX_ENOENT)
    fprintf(stderr, "infer on a removed model: %s (%s)\n", emx_err_name(rc),
            emx_client_last_error(hand.c));
  assert_int_equal(rc, EMX_ENOENT);
  emx_client_model *m = NULL;
  assert_int_equal(emx_client_model_open(hand.c, HAND_LITE, &m), EMX_ENOENT);
  assert_int_equal(emx_client_ping(hand.c), 0);
  assert_true(emxt_log_contains(&d, "unloaded"));

  /* The other models are untouched. */
  assert_int_equal(cli_infer(&full), 0);
  assert_true(ref_equal(&want_full, &full));

  /* Back again, the same bytes: the same id (ids stay stable, issue 11),
   * so the old handle serves again, and a fresh open works. */
  repo_add(repo, HAND_LITE);
  assert_int_equal(kill(d.pid, SIGHUP), 0);
  wait_model(st.c, HAND_LITE, 1);
  assert_int_equal(cli_infer(&hand), 0);
  assert_true(ref_equal(&want_hand, &hand));
  cli again;
  assert_int_equal(cli_open(&again, d.socket, HAND_LITE, 8 * MIB), 0);
  assert_int_equal(cli_infer(&again), 0);
  assert_true(ref_equal(&want_hand, &again));
  cli_close(&again);

  cli_close(&hand);
  cli_close(&full);
  cli_close(&st);
  ref_free(&want_hand);
  ref_free(&want_full);
  assert_true(daemon_alive(&d));
  assert_int_equal(emxt_daemon_stop(&d), 0);
  rm_daemon_dir(&d);
  repo_remove(repo, FACE_SHORT);
  repo_remove(repo, HAND_LITE);
  repo_remove(repo, FACE_FULL);
  assert_int_equal(rmdir(repo), 0);
}

/* ---- 7. the daemon runs out of file descriptors
 * ------------------------------------ */

#define FD_LIMIT 64

/* hello0: a raw connection that says hello without an arena; 1 when the
 * daemon answered (it accepted the connection), 0 when it did not in
 * timeout_ms (the connection waits in the listen backlog). */
static int hello0(int fd, int timeout_ms) {
  uint64_t pkt[8];
  emx__wire_buf b;
  emx__wire_begin(&b, pkt, EMX_WIRE_HELLO, 0);
  emx__wire_hello h = {.proto = EMX_WIRE_VERSION, .pid = (uint32_t)getpid()};
  emx__wire_put(&b, &h, sizeof h);
  raw_send(fd, pkt, emx__wire_end(&b), -1);
  emx__wire_msg m;
  ssize_t n = raw_recv(fd, &m, timeout_ms);
  return n > 0 && m.hdr.type == EMX_WIRE_HELLO_OK;
}

static int count_log_lines(const emxt_daemon *d, long from, const char *text) {
  FILE *f = fopen(d->log, "r");
  if (!f)
    return -1;
  fseek(f, from, SEEK_SET);
  char line[1024];
  int n = 0;
  while (fgets(line, sizeof line, f))
    n += strstr(line, text) != NULL;
  fclose(f);
  return n;
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* A local user opens connections until the daemon has no descriptor left
 * (RLIMIT_NOFILE 64, inherited from this process). The daemon must keep
 * serving its clients, must not spin on the listener logging a warning per
 * failed accept(), and must accept again once descriptors are free. */
static void fd_exhaustion(void **state) {
  (void)state;
  struct rlimit old, low;
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
  low = old;
  if (low.rlim_cur == RLIM_INFINITY || low.rlim_cur > FD_LIMIT)
    low.rlim_cur = FD_LIMIT;
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
  emxt_daemon d;
  const char *args[] = {"--device", "cpu:workers=1", "--max-conns-per-uid",
                        "1000", NULL};
  int started = emxt_daemon_start(&d, args);
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
  assert_int_equal(started, 0);

  cli good;
  ref want;
  cli_ref(&good, &want, &d, FACE_SHORT, 4 * MIB);
  wait_clients(good.c, 1);
  const int base_fds = emxt_fd_count(d.pid);

  /* Connections with hello until one gets no answer, then a few more. */
  int conns[2 * FD_LIMIT];
  int n = 0, unanswered = 0;
  while (n < 2 * FD_LIMIT && unanswered < 3) {
    conns[n] = raw_connect(d.socket);
    if (!hello0(conns[n], unanswered ? 100 : 1000 * emxt_slow()))
      unanswered++;
    n++;
  }
  assert_true(unanswered > 0);
  fprintf(stderr, "daemon out of descriptors after %d connections (%d fds)\n",
          n - unanswered, emxt_fd_count(d.pid));

  /* While it lasts: clients are served, the log stays quiet. */
  /* A 1 s window is the point here: a listener spinning on accept()
   * logs hundreds of lines in it; no event marks "did not spin". */
  long mark = file_size(d.log);
  for (int i = 0; i < 20; i++) {
    assert_int_equal(cli_infer(&good), 0);
    assert_true(ref_equal(&want, &good));
    emxt_sleep_ms(50);
  }
  assert_true(daemon_alive(&d));
  int lines = count_log_lines(&d, mark, "accept");
  long grew = file_size(d.log) - mark;
  fprintf(stderr,
          "during 1 s without descriptors the daemon logged %d "
          "accept lines (%ld bytes)\n",
          lines, grew);
  print_log_line(&d, "accept");

  /* Descriptors back: the waiting connections and new ones are served. */
  for (int i = 0; i < n; i++)
    close(conns[i]);
  wait_clients(good.c, 1);
  cli fresh;
  assert_int_equal(cli_open(&fresh, d.socket, FACE_SHORT, 4 * MIB), 0);
  assert_int_equal(cli_infer(&fresh), 0);
  assert_true(ref_equal(&want, &fresh));
  cli_close(&fresh);
  wait_clients(good.c, 1);
  wait_fds(d.pid, base_fds, 1);
  cli_close(&good);
  ref_free(&want);
  assert_int_equal(emxt_daemon_stop(&d), 0);
  /* A correct daemon logs the condition once, or a few times; one line
   * per wake-up of a level-triggered listener is a busy loop. */
  assert_true(lines <= 20);
  rm_daemon_dir(&d);
}

int main(void) {
  filters_from_env();
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(kill9_clients),       cmocka_unit_test(daemon_killed),
      cmocka_unit_test(slow_reader_dropped), cmocka_unit_test(connection_caps),
      cmocka_unit_test(sigterm_drains),      cmocka_unit_test(sighup_rescan),
      cmocka_unit_test(fd_exhaustion),
  };
  return cmocka_run_group_tests_name("daemon_robust", tests, NULL, NULL);
}
