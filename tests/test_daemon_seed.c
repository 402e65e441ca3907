/* One file, over 800 lines: the seed scenario's parent, its forked
 * children and the expectations they inherit across fork() are one program;
 * the oracle outputs are computed once for all cases. */
/*
 * test_daemon_seed.c — the seed scenario through a real edgemuxd: many
 * processes share one device, and every output is checked bit for bit.
 *
 * The group starts one daemon with ONE cpu device (cpu:workers=1) on the
 * test repository. The parent computes the expected outputs of a small pool
 * of seeded inputs for two models with the direct-TFLite oracle, then forks
 * SEED_PROCESSES children (which inherit those expectations). Each child
 * connects on its own, allocates its tensors in its arena and sends
 * SEED_REQUESTS requests alternating the two models: one
 * emx_client_submit_batch of SEED_BATCH, then groups of emx_client_infer and
 * of emx_client_submit + emx_client_request_wait. A child never asserts
 * (cmocka lives in the parent); it reports its counts on a pipe and exits.
 *
 * Also here: a client inherited across fork() (the child reconnects
 * transparently; the parent keeps its own connection), the usage example of
 * client.h compiled and run, and errors as a client sees them through the
 * daemon. Public API only.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon_support.h"
#include "edgemux/client.h"
#include "support.h"

#define SEED_PROCESSES 8
#define SEED_REQUESTS 300 /* per process: 8 x 300 = 2400 */
#define SEED_BATCH 8      /* one emx_client_submit_batch per process */
#define SEED_GROUP 4      /* requests per infer / submit group */
#define POOL 4            /* distinct inputs per model */
#define MAX_T 8           /* tensors per side a test model may have */
#define CHILD_TIMEOUT_S 50
#define MODELS 2

/* Under emulation (EMX_TEST_TIME_SCALE, make check-arm64) the children get
 * scale times longer and do 1/scale of the requests, still the batch and at
 * least three groups (so submits run too). */
static int child_timeout_s(void) {
  return CHILD_TIMEOUT_S * emxt_time_scale();
}
static int seed_requests(void) {
  int groups = (SEED_REQUESTS / emxt_time_scale() - SEED_BATCH) / SEED_GROUP;
  return SEED_BATCH + (groups < 3 ? 3 : groups) * SEED_GROUP;
}

static const char *const model_names[MODELS] = {"face_detection_short_range",
                                                "hand_landmark_lite"};
static const char *const model_paths[MODELS] = {MODEL_FACE_SHORT,
                                                MODEL_HAND_LITE};

/* seed_model: one model's tensor shapes and the pool of inputs with the
 * outputs the oracle computed for them. */
typedef struct seed_model {
  size_t nin, nout;
  emx_tensor_info in_info[MAX_T], out_info[MAX_T];
  emx_tensor inputs[POOL][MAX_T];
  emx_tensor expected[POOL][MAX_T];
} seed_model;

/* The expectations, computed by the parent before fork (children inherit
 * them). */
static seed_model models[MODELS];

/* ---- helpers ---------------------------------------------------------------
 */

/* prepare_models asks the daemon for the two models' tensors, fills the
 * input pool from fixed seeds and runs the oracle on every input. */
static void prepare_models(void) {
  emx_client_config cfg;
  emx_client_config_init(&cfg);
  cfg.arena_bytes = 0;
  emx_client *c;
  assert_int_equal(emx_client_connect(&c, &cfg), 0);
  for (int k = 0; k < MODELS; k++) {
    seed_model *sm = &models[k];
    if (sm->nin)
      continue; /* done by an earlier case */
    emx_client_model *m;
    int rc = emx_client_model_open(c, model_names[k], &m);
    if (rc < 0)
      print_error("%s\n", emx_client_last_error(c));
    assert_int_equal(rc, 0);
    size_t nin = emx_client_model_input_count(m);
    size_t nout = emx_client_model_output_count(m);
    assert_true(nin >= 1 && nin <= MAX_T && nout >= 1 && nout <= MAX_T);
    for (size_t i = 0; i < nin; i++)
      assert_int_equal(emx_client_model_input_info(m, i, &sm->in_info[i]), 0);
    for (size_t i = 0; i < nout; i++)
      assert_int_equal(emx_client_model_output_info(m, i, &sm->out_info[i]), 0);
    /* The names die with the client. */
    for (size_t i = 0; i < nin; i++)
      sm->in_info[i].name = NULL;
    for (size_t i = 0; i < nout; i++)
      sm->out_info[i].name = NULL;
    oracle *o = oracle_create(model_paths[k]);
    for (int e = 0; e < POOL; e++) {
      for (size_t i = 0; i < nin; i++) {
        emx_tensor *t = &sm->inputs[e][i];
        t->dtype = sm->in_info[i].dtype;
        t->size = sm->in_info[i].bytes;
        t->data = malloc(t->size);
        assert_non_null(t->data);
      }
      for (size_t i = 0; i < nout; i++) {
        emx_tensor *t = &sm->expected[e][i];
        t->dtype = sm->out_info[i].dtype;
        t->size = sm->out_info[i].bytes;
        t->data = malloc(t->size);
        assert_non_null(t->data);
      }
      tensors_fill_random(sm->inputs[e], nin,
                          7000u + 100u * (unsigned)k + (unsigned)e);
      oracle_run(o, sm->inputs[e], nin, sm->expected[e], nout);
    }
    oracle_destroy(o);
    sm->nin = nin;
    sm->nout = nout;
  }
  emx_client_destroy(c);
}

static void free_models(void) {
  for (int k = 0; k < MODELS; k++) {
    for (int e = 0; e < POOL; e++)
      for (int i = 0; i < MAX_T; i++) {
        free(models[k].inputs[e][i].data);
        free(models[k].expected[e][i].data);
      }
    memset(&models[k], 0, sizeof models[k]);
  }
}

/* pool_index picks request j's input for process p: deterministic. */
static int pool_index(int p, int j) {
  uint64_t state = ((uint64_t)(p + 1) << 32) | (uint64_t)j;
  return (int)(prng_next(&state) % POOL);
}

/* outputs_match compares outputs with the expectation of input e. */
static bool outputs_match(const seed_model *sm, int e, const emx_tensor *out) {
  for (size_t i = 0; i < sm->nout; i++)
    if (out[i].size != sm->expected[e][i].size ||
        memcmp(out[i].data, sm->expected[e][i].data, out[i].size) != 0)
      return false;
  return true;
}

/* status_requests reads "model NAME ... requests=N" from the daemon's status
 * report; -1 if absent. */
static long long status_requests(emx_client *c, const char *name) {
  char *text = NULL;
  if (emx_client_status(c, &text) < 0)
    return -1;
  long long n = -1;
  char prefix[128];
  snprintf(prefix, sizeof prefix, "model %s ", name);
  for (const char *line = text; line && *line;) {
    const char *end = strchr(line, '\n');
    if (strncmp(line, prefix, strlen(prefix)) == 0) {
      const char *r = strstr(line, " requests=");
      if (r && (!end || r < end))
        n = strtoll(r + strlen(" requests="), NULL, 10);
      break;
    }
    line = end ? end + 1 : NULL;
  }
  free(text);
  return n;
}

/* read_full reads exactly `size` bytes before the absolute deadline
 * (emx_now_ns clock); 0, or -1 on EOF, error or timeout. */
static int read_full(int fd, void *buf, size_t size, int64_t deadline) {
  size_t got = 0;
  while (got < size) {
    int64_t left_ms = (deadline - emx_now_ns()) / 1000000;
    if (left_ms <= 0)
      return -1;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int n = poll(&pfd, 1, (int)(left_ms > 1000 ? 1000 : left_ms));
    if (n < 0 && errno != EINTR)
      return -1;
    if (n <= 0)
      continue;
    ssize_t r = read(fd, (char *)buf + got, size - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    got += (size_t)r;
  }
  return 0;
}

static void write_full(int fd, const void *buf, size_t size) {
  size_t put = 0;
  while (put < size) {
    ssize_t w = write(fd, (const char *)buf + put, size - put);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;
    put += (size_t)w;
  }
}

/* ---- the seed scenario: one child ---------------------------------------- */

/* seed_report is what a child sends its parent. */
typedef struct seed_report {
  int requests;     /* requests attempted */
  int ok;           /* completed with status 0 and checked */
  int errors;       /* failed (any call) */
  int mismatches;   /* completed, but an output differed */
  int infers;       /* sent with emx_client_infer */
  int submits;      /* sent with emx_client_submit */
  int batched;      /* sent with emx_client_submit_batch */
  int wrong_device; /* timings named a device other than 0 */
  char first_error[240];
} seed_report;

/* child_state: one child's connection and tensors (a slot per request in
 * flight, per model). */
typedef struct child_state {
  int index;
  emx_client *c;
  emx_client_model *m[MODELS];
  emx_tensor in[SEED_BATCH][MODELS][MAX_T];
  emx_tensor out[SEED_BATCH][MODELS][MAX_T];
  seed_report rep;
} child_state;

static void child_error(child_state *s, const char *call, int rc,
                        const char *msg) {
  s->rep.errors++;
  if (!s->rep.first_error[0])
    snprintf(s->rep.first_error, sizeof s->rep.first_error,
             "process %d: %s: %s: %s", s->index, call, emx_err_name(rc),
             msg ? msg : "");
}

/* load puts input e of model k into slot `slot` and fills its outputs with
 * the sentinel (so an output nobody wrote cannot pass). */
static void load(child_state *s, int slot, int k, int e) {
  const seed_model *sm = &models[k];
  for (size_t i = 0; i < sm->nin; i++)
    memcpy(s->in[slot][k][i].data, sm->inputs[e][i].data,
           sm->inputs[e][i].size);
  for (size_t i = 0; i < sm->nout; i++)
    memset(s->out[slot][k][i].data, SENTINEL_BYTE, s->out[slot][k][i].size);
}

static void check(child_state *s, int slot, int k, int e) {
  if (outputs_match(&models[k], e, s->out[slot][k]))
    s->rep.ok++;
  else
    s->rep.mismatches++;
}

/* child_setup connects and allocates every tensor; -1 after recording the
 * error. */
static int child_setup(child_state *s) {
  emx_client_config cfg;
  emx_client_config_init(&cfg);
  cfg.arena_bytes = 16u << 20;
  int rc = emx_client_connect(&s->c, &cfg);
  if (rc < 0) {
    child_error(s, "emx_client_connect", rc, emx_client_last_error(NULL));
    return -1;
  }
  for (int k = 0; k < MODELS; k++) {
    rc = emx_client_model_open(s->c, model_names[k], &s->m[k]);
    if (rc < 0) {
      child_error(s, "emx_client_model_open", rc, emx_client_last_error(s->c));
      return -1;
    }
    for (int slot = 0; slot < SEED_BATCH; slot++) {
      for (size_t i = 0; i < models[k].nin && rc == 0; i++)
        rc =
            emx_client_tensor_alloc_input(s->c, s->m[k], i, &s->in[slot][k][i]);
      for (size_t i = 0; i < models[k].nout && rc == 0; i++)
        rc = emx_client_tensor_alloc_output(s->c, s->m[k], i,
                                            &s->out[slot][k][i]);
      if (rc < 0) {
        child_error(s, "emx_client_tensor_alloc", rc,
                    emx_client_last_error(s->c));
        return -1;
      }
    }
  }
  return 0;
}

/* wait_and_check waits for a submitted request in `slot`. */
static void wait_and_check(child_state *s, emx_client_request *r, int slot,
                           int k, int e) {
  int rc = emx_client_request_wait(r, -1);
  if (rc < 0) {
    child_error(s, "emx_client_request_wait", rc, emx_client_request_error(r));
  } else {
    emx_timings t;
    emx_client_request_timings(r, &t);
    if (t.device != 0)
      s->rep.wrong_device++;
    check(s, slot, k, e);
  }
  emx_client_request_destroy(r);
}

/* run_batch: requests j..j+SEED_BATCH-1 in one emx_client_submit_batch. */
static void run_batch(child_state *s, int j) {
  emx_client_batch_item items[SEED_BATCH];
  emx_client_request *reqs[SEED_BATCH];
  int k[SEED_BATCH], e[SEED_BATCH];
  for (int i = 0; i < SEED_BATCH; i++) {
    k[i] = (j + i) % MODELS;
    e[i] = pool_index(s->index, j + i);
    load(s, i, k[i], e[i]);
    items[i] =
        (emx_client_batch_item){s->m[k[i]], s->in[i][k[i]], models[k[i]].nin,
                                s->out[i][k[i]], models[k[i]].nout};
  }
  s->rep.requests += SEED_BATCH;
  s->rep.batched += SEED_BATCH;
  int rc = emx_client_submit_batch(s->c, items, SEED_BATCH, NULL, reqs);
  if (rc < 0) {
    for (int i = 0; i < SEED_BATCH; i++)
      child_error(s, "emx_client_submit_batch", rc,
                  emx_client_last_error(s->c));
    return;
  }
  for (int i = 0; i < SEED_BATCH; i++)
    wait_and_check(s, reqs[i], i, k[i], e[i]);
}

/* run_submits: SEED_GROUP requests submitted one by one, then waited for in
 * order. */
static void run_submits(child_state *s, int j) {
  emx_client_request *reqs[SEED_GROUP] = {0};
  int k[SEED_GROUP], e[SEED_GROUP];
  for (int i = 0; i < SEED_GROUP; i++) {
    k[i] = (j + i) % MODELS;
    e[i] = pool_index(s->index, j + i);
    load(s, i, k[i], e[i]);
    s->rep.requests++;
    s->rep.submits++;
    int rc =
        emx_client_submit(s->c, s->m[k[i]], s->in[i][k[i]], models[k[i]].nin,
                          s->out[i][k[i]], models[k[i]].nout, NULL, &reqs[i]);
    if (rc < 0) {
      child_error(s, "emx_client_submit", rc, emx_client_last_error(s->c));
      reqs[i] = NULL;
    }
  }
  for (int i = 0; i < SEED_GROUP; i++)
    if (reqs[i])
      wait_and_check(s, reqs[i], i, k[i], e[i]);
}

/* run_infers: SEED_GROUP blocking requests. */
static void run_infers(child_state *s, int j) {
  for (int i = 0; i < SEED_GROUP; i++) {
    int k = (j + i) % MODELS, e = pool_index(s->index, j + i);
    load(s, 0, k, e);
    s->rep.requests++;
    s->rep.infers++;
    emx_timings t;
    int rc = emx_client_infer(s->c, s->m[k], s->in[0][k], models[k].nin,
                              s->out[0][k], models[k].nout, &t);
    if (rc < 0) {
      child_error(s, "emx_client_infer", rc, emx_client_last_error(s->c));
      continue;
    }
    if (t.device != 0)
      s->rep.wrong_device++;
    check(s, 0, k, e);
  }
}

/* seed_child runs one process's share; never returns. */
static void seed_child(int index, int report_fd) {
  alarm(child_timeout_s() + 5); /* a hung child dies; the parent sees EOF */
  static child_state s;
  memset(&s, 0, sizeof s);
  s.index = index;
  if (child_setup(&s) == 0) {
    run_batch(&s, 0);
    for (int j = SEED_BATCH; j < seed_requests(); j += SEED_GROUP) {
      /* One group in three is submit + wait, the others infer. */
      if ((j - SEED_BATCH) / SEED_GROUP % 3 == 2)
        run_submits(&s, j);
      else
        run_infers(&s, j);
    }
  }
  write_full(report_fd, &s.rep, sizeof s.rep);
  close(report_fd);
  emx_client_destroy(s.c);
  _exit(0);
}

/* ---- the seed scenario: the parent ----------------------------------------
 */

static void seed_scenario(void **state) {
  (void)state;
  prepare_models();
  emx_client *c;
  assert_int_equal(emx_client_connect(&c, NULL), 0);
  long long before[MODELS];
  for (int k = 0; k < MODELS; k++) {
    before[k] = status_requests(c, model_names[k]);
    assert_true(before[k] >= 0);
  }
  /* Not needed across fork: the children connect on their own. */
  emx_client_destroy(c);

  pid_t pids[SEED_PROCESSES];
  int fds[SEED_PROCESSES];
  fflush(NULL);
  int64_t start = emx_now_ns();
  for (int p = 0; p < SEED_PROCESSES; p++) {
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pids[p] = fork();
    assert_true(pids[p] >= 0);
    if (pids[p] == 0) {
      close(pipefd[0]);
      for (int q = 0; q < p; q++)
        close(fds[q]);
      seed_child(p, pipefd[1]);
    }
    close(pipefd[1]);
    fds[p] = pipefd[0];
  }

  int64_t deadline = emx_now_ns() + (int64_t)child_timeout_s() * 1000000000;
  seed_report total = {0};
  int reported = 0, exited_ok = 0;
  for (int p = 0; p < SEED_PROCESSES; p++) {
    seed_report rep;
    if (read_full(fds[p], &rep, sizeof rep, deadline) == 0) {
      reported++;
      total.requests += rep.requests;
      total.ok += rep.ok;
      total.errors += rep.errors;
      total.mismatches += rep.mismatches;
      total.infers += rep.infers;
      total.submits += rep.submits;
      total.batched += rep.batched;
      total.wrong_device += rep.wrong_device;
      if (rep.first_error[0])
        print_error("%s\n", rep.first_error);
    } else {
      print_error("process %d sent no report (hung or crashed)\n", p);
    }
    close(fds[p]);
  }
  for (int p = 0; p < SEED_PROCESSES; p++) {
    int st = 0;
    if (reported < SEED_PROCESSES)
      kill(pids[p], SIGKILL);
    while (waitpid(pids[p], &st, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
      exited_ok++;
    else
      print_error("process %d: exit status 0x%x\n", p, st);
  }
  double wall_s = (double)(emx_now_ns() - start) / 1e9;
  print_message("seed: %d processes x %d requests in %.2f s (%.0f req/s): "
                "%d ok, %d errors, %d mismatches; infer %d, submit %d, "
                "batch %d\n",
                SEED_PROCESSES, seed_requests(), wall_s, total.ok / wall_s,
                total.ok, total.errors, total.mismatches, total.infers,
                total.submits, total.batched);

  assert_int_equal(reported, SEED_PROCESSES);
  assert_int_equal(exited_ok, SEED_PROCESSES);
  assert_int_equal(total.requests, SEED_PROCESSES * seed_requests());
  assert_int_equal(total.errors, 0);
  assert_int_equal(total.mismatches, 0);
  assert_int_equal(total.ok, SEED_PROCESSES * seed_requests());
  assert_int_equal(total.wrong_device, 0);
  assert_int_equal(total.batched, SEED_PROCESSES * SEED_BATCH);
  assert_true(total.infers > 0 && total.submits > 0);

  /* The daemon counted every request, half per model. Its counters are
   * updated as requests finish, possibly just after the completion went
   * out: allow a moment. */
  assert_int_equal(emx_client_connect(&c, NULL), 0);
  long long want = SEED_PROCESSES * seed_requests() / MODELS, got[MODELS];
  for (int tries = 0; tries < 100 * emxt_time_scale(); tries++) {
    bool done = true;
    for (int k = 0; k < MODELS; k++) {
      got[k] = status_requests(c, model_names[k]) - before[k];
      done = done && got[k] >= want;
    }
    if (done)
      break;
    usleep(20000);
  }
  emx_client_destroy(c);
  for (int k = 0; k < MODELS; k++)
    assert_int_equal(got[k], want);
}

/* ---- fork with a connected client -----------------------------------------
 */

/* Exit codes of the fork child, one per check. */
enum {
  FORK_OK = 0,
  FORK_PENDING = 10,  /* the parent's pending request did not fail here */
  FORK_ALLOC,         /* allocating in the child failed */
  FORK_PARENT_TENSOR, /* a parent tensor was accepted */
  FORK_INFER,         /* an inference failed */
  FORK_MISMATCH,      /* an output differed */
  FORK_PING,          /* ping failed */
};

static int fork_child(emx_client *c, emx_client_model *m,
                      emx_client_request *parent_req,
                      const emx_tensor *parent_in,
                      const emx_tensor *parent_out) {
  const seed_model *sm = &models[0];
  /* The first call resets and reconnects; the parent's request is not this
   * process's to wait for. */
  int rc = emx_client_request_wait(parent_req, -1);
  emx_client_request_destroy(parent_req);
  if (rc >= 0 || rc == EMX_EAGAIN) {
    fprintf(stderr, "fork child: parent's request: %d\n", rc);
    return FORK_PENDING;
  }
  emx_tensor in[MAX_T], out[MAX_T];
  for (size_t i = 0; i < sm->nin; i++)
    if (emx_client_tensor_alloc_input(c, m, i, &in[i]) < 0) {
      fprintf(stderr, "fork child: %s\n", emx_client_last_error(c));
      return FORK_ALLOC;
    }
  for (size_t i = 0; i < sm->nout; i++)
    if (emx_client_tensor_alloc_output(c, m, i, &out[i]) < 0) {
      fprintf(stderr, "fork child: %s\n", emx_client_last_error(c));
      return FORK_ALLOC;
    }
  /* The parent's tensors lie in the parent's arena, not this one. */
  rc = emx_client_infer(c, m, parent_in, sm->nin, out, sm->nout, NULL);
  if (rc != EMX_EINVAL) {
    fprintf(stderr, "fork child: infer with the parent's input: %s\n",
            emx_err_name(rc));
    return FORK_PARENT_TENSOR;
  }
  rc = emx_client_infer(c, m, in, sm->nin, parent_out, sm->nout, NULL);
  if (rc != EMX_EINVAL) {
    fprintf(stderr, "fork child: infer with the parent's output: %s\n",
            emx_err_name(rc));
    return FORK_PARENT_TENSOR;
  }
  for (int j = 0; j < 40; j++) {
    int e = pool_index(99, j);
    for (size_t i = 0; i < sm->nin; i++)
      memcpy(in[i].data, sm->inputs[e][i].data, in[i].size);
    for (size_t i = 0; i < sm->nout; i++)
      memset(out[i].data, SENTINEL_BYTE, out[i].size);
    rc = emx_client_infer(c, m, in, sm->nin, out, sm->nout, NULL);
    if (rc < 0) {
      fprintf(stderr, "fork child: infer: %s: %s\n", emx_err_name(rc),
              emx_client_last_error(c));
      return FORK_INFER;
    }
    if (!outputs_match(sm, e, out))
      return FORK_MISMATCH;
  }
  if (emx_client_ping(c) < 0)
    return FORK_PING;
  for (size_t i = 0; i < sm->nin; i++)
    emx_client_tensor_free(c, &in[i]);
  for (size_t i = 0; i < sm->nout; i++)
    emx_client_tensor_free(c, &out[i]);
  return FORK_OK;
}

/* parent_infers runs n checked requests on the parent's own connection. */
static void parent_infers(emx_client *c, emx_client_model *m, emx_tensor *in,
                          emx_tensor *out, int n) {
  const seed_model *sm = &models[0];
  for (int j = 0; j < n; j++) {
    int e = pool_index(42, j);
    for (size_t i = 0; i < sm->nin; i++)
      memcpy(in[i].data, sm->inputs[e][i].data, in[i].size);
    for (size_t i = 0; i < sm->nout; i++)
      memset(out[i].data, SENTINEL_BYTE, out[i].size);
    int rc = emx_client_infer(c, m, in, sm->nin, out, sm->nout, NULL);
    if (rc < 0)
      print_error("%s\n", emx_client_last_error(c));
    assert_int_equal(rc, 0);
    assert_true(outputs_match(sm, e, out));
  }
}

static void fork_inherited_client(void **state) {
  (void)state;
  prepare_models();
  const seed_model *sm = &models[0];
  emx_client_config cfg;
  emx_client_config_init(&cfg);
  cfg.arena_bytes = 4u << 20;
  emx_client *c;
  assert_int_equal(emx_client_connect(&c, &cfg), 0);
  emx_client_model *m;
  assert_int_equal(emx_client_model_open(c, model_names[0], &m), 0);
  emx_tensor in[MAX_T], out[MAX_T], pin[MAX_T], pout[MAX_T];
  for (size_t i = 0; i < sm->nin; i++) {
    assert_int_equal(emx_client_tensor_alloc_input(c, m, i, &in[i]), 0);
    assert_int_equal(emx_client_tensor_alloc_input(c, m, i, &pin[i]), 0);
  }
  for (size_t i = 0; i < sm->nout; i++) {
    assert_int_equal(emx_client_tensor_alloc_output(c, m, i, &out[i]), 0);
    assert_int_equal(emx_client_tensor_alloc_output(c, m, i, &pout[i]), 0);
  }
  parent_infers(c, m, in, out, 3);

  /* A request in flight across the fork: it is the parent's alone. */
  for (size_t i = 0; i < sm->nin; i++)
    memcpy(pin[i].data, sm->inputs[1][i].data, pin[i].size);
  for (size_t i = 0; i < sm->nout; i++)
    memset(pout[i].data, SENTINEL_BYTE, pout[i].size);
  emx_client_request *r;
  assert_int_equal(
      emx_client_submit(c, m, pin, sm->nin, pout, sm->nout, NULL, &r), 0);

  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    alarm(child_timeout_s());
    int code = fork_child(c, m, r, pin, pout);
    emx_client_destroy(c);
    _exit(code);
  }
  /* The parent goes on as if nothing happened, while the child works. */
  assert_int_equal(emx_client_request_wait(r, -1), 0);
  assert_true(outputs_match(sm, 1, pout));
  emx_client_request_destroy(r);
  parent_infers(c, m, in, out, 40);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    print_error("fork child: status 0x%x (exit codes: 10 pending request, "
                "11 alloc, 12 parent tensor accepted, 13 infer, 14 "
                "mismatch, 15 ping)\n",
                st);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), FORK_OK);
  /* And after the child is gone. */
  parent_infers(c, m, in, out, 3);
  assert_int_equal(emx_client_ping(c), 0);
  emx_client_destroy(c);
}

/* ---- the example of client.h ------------------------------------------------
 */

/* client_example_result is what the example leaves behind: copies of its
 * outputs (the arena dies with the client). */
typedef struct client_example_result {
  emx_tensor outputs[2];
} client_example_result;

static void keep_outputs(client_example_result *res, const emx_tensor *out) {
  for (int i = 0; i < 2; i++) {
    res->outputs[i].dtype = out[i].dtype;
    res->outputs[i].size = out[i].size;
    res->outputs[i].data = malloc(out[i].size);
    if (res->outputs[i].data)
      memcpy(res->outputs[i].data, out[i].data, out[i].size);
  }
}

/* client_header_example is the example verbatim, except that where the
 * header writes "..." the copy has code (see lines_match). Returns 1 where
 * the example does, else 0 with the inference's status in *status. */
static int client_header_example(const void *pixels, client_example_result *res,
                                 int *status) {
  // clang-format off
  /* ---- from client.h ---- */
  emx_client *c;
  if (emx_client_connect(&c, NULL) < 0) {          // default socket
    fprintf(stderr, "%s\n", emx_client_last_error(NULL));
    return 1;
  }
  emx_client_model *m;
  if (emx_client_model_open(c, "face_detection_short_range", &m) < 0) { emx_client_destroy(c); return 1; }
  emx_tensor in, out[2];
  emx_client_tensor_alloc_input(c, m, 0, &in);     // in the arena
  emx_client_tensor_alloc_output(c, m, 0, &out[0]);
  emx_client_tensor_alloc_output(c, m, 1, &out[1]);
  memcpy(in.data, pixels, in.size);
  int rc = emx_client_infer(c, m, &in, 1, out, 2, NULL);
  keep_outputs(res, out); /* ... read out[0].data ... */
  emx_client_tensor_free(c, &in);  emx_client_tensor_free(c, &out[0]); emx_client_tensor_free(c, &out[1]);
  emx_client_destroy(c);
  /* ---- end of the example ---- */
  // clang-format on
  *status = rc;
  return 0;
}

static void client_example_runs(void **state) {
  (void)state;
  prepare_models();
  const seed_model *sm = &models[0];
  client_example_result res;
  memset(&res, 0, sizeof res);
  int rc = -1;
  assert_int_equal(client_header_example(sm->inputs[2][0].data, &res, &rc), 0);
  assert_int_equal(rc, 0);
  assert_non_null(res.outputs[0].data);
  assert_non_null(res.outputs[1].data);
  assert_int_equal(res.outputs[0].size, 57344);
  assert_int_equal(res.outputs[1].size, 3584);
  assert_true(outputs_match(sm, 2, res.outputs));
  free(res.outputs[0].data);
  free(res.outputs[1].data);
}

/* next_line returns the next line of *text (trimmed of spaces and, for the
 * header, its " * " comment prefix) in buf, skipping blank ones; NULL at the
 * end. As in test_header_example.c. */
static const char *next_line(const char **text, bool comment, char *buf,
                             size_t size) {
  while (**text != '\0') {
    const char *start = *text, *end = strchr(start, '\n');
    if (end == NULL)
      end = start + strlen(start);
    *text = *end ? end + 1 : end;
    while (start < end && (*start == ' ' || *start == '\t'))
      start++;
    if (comment && start < end && *start == '*' &&
        (start + 1 == end || start[1] == ' ')) {
      start++;
      while (start < end && *start == ' ')
        start++;
    }
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
      end--;
    if (end == start)
      continue;
    size_t n =
        (size_t)(end - start) < size - 1 ? (size_t)(end - start) : size - 1;
    memcpy(buf, start, n);
    buf[n] = '\0';
    return buf;
  }
  return NULL;
}

/* lines_match: equal, or — where the header line elides code with "..." —
 * the pieces between the "..."s occur in the copy in order, the first one
 * at its start (unless the header line starts with "...") and the last at
 * its end (unless it ends with "..."). */
static bool lines_match(const char *header, const char *copy) {
  if (strcmp(header, copy) == 0)
    return true;
  if (!strstr(header, "..."))
    return false;
  const char *h = header, *s = copy;
  bool first = true;
  for (;;) {
    const char *dots = strstr(h, "...");
    size_t len = dots ? (size_t)(dots - h) : strlen(h);
    if (first && len > 0) {
      if (strncmp(s, h, len) != 0)
        return false;
      s += len;
    } else if (!dots) {
      size_t slen = strlen(s);
      return slen >= len && strcmp(s + slen - len, h) == 0;
    } else if (len > 0) {
      char piece[256];
      if (len >= sizeof piece)
        return false;
      memcpy(piece, h, len);
      piece[len] = '\0';
      const char *at = strstr(s, piece);
      if (!at)
        return false;
      s = at + len;
    }
    first = false;
    if (!dots)
      return true;
    h = dots + 3;
  }
}

static char *read_text(const char *path) {
  size_t size = 0;
  char *bytes = read_file(path, &size);
  assert_non_null(bytes);
  char *text = realloc(bytes, size + 1);
  assert_non_null(text);
  text[size] = '\0';
  return text;
}

static void client_example_is_verbatim(void **state) {
  (void)state;
  /* The matcher itself. */
  assert_true(lines_match("a(b) ...", "a(b) c();"));
  assert_false(lines_match("a(b) ...", "x a(b) c();"));
  assert_true(lines_match("... read x ...", "f(); /* ... read x ... */"));
  assert_false(lines_match("... read x ...", "f();"));
  assert_false(lines_match("a;", "a; b;"));

  char *header = read_text(EMX_SOURCE_DIR "/include/edgemux/client.h");
  char *source = read_text(__FILE__);
  const char *h = strstr(header, "Example (compiled and run by");
  assert_non_null(h);
  h = strchr(h, '\n') + 1;
  const char *h_end = strstr(h, "*/");
  assert_non_null(h_end);
  const char *s = strstr(source, "/* ---- from client.h ---- */");
  assert_non_null(s);
  s = strchr(s, '\n') + 1;
  const char *s_end = strstr(s, "/* ---- end of the example ---- */");
  assert_non_null(s_end);

  char hl[256], sl[256];
  int lines = 0;
  for (;;) {
    const char *a = h < h_end ? next_line(&h, true, hl, sizeof hl) : NULL;
    if (a != NULL && h > h_end)
      a = NULL; /* that was the closing line */
    const char *b = s < s_end ? next_line(&s, false, sl, sizeof sl) : NULL;
    if (b != NULL && s > s_end)
      b = NULL;
    if (a == NULL && b == NULL)
      break;
    if (a == NULL || b == NULL || !lines_match(a, b))
      print_error("line %d: header \"%s\", test \"%s\"\n", lines + 1,
                  a ? a : "(end)", b ? b : "(end)");
    assert_non_null(a);
    assert_non_null(b);
    assert_true(lines_match(a, b));
    lines++;
  }
  assert_true(lines > 15);
  free(header);
  free(source);
}

/* ---- errors through the daemon ---------------------------------------------
 */

static void unknown_model(void **state) {
  (void)state;
  emx_client *c;
  assert_int_equal(emx_client_connect(&c, NULL), 0);
  emx_client_model *m = (emx_client_model *)&m;
  assert_int_equal(emx_client_model_open(c, "no_such_model_here", &m),
                   EMX_ENOENT);
  assert_null(m);
  assert_true(contains(emx_client_last_error(c), "no_such_model_here"));
  /* The connection survives a refused request. */
  assert_int_equal(emx_client_ping(c), 0);
  assert_int_equal(emx_client_model_open(c, model_names[0], &m), 0);
  emx_client_destroy(c);
}

/* open_face connects and allocates correct tensors for the face model. */
static emx_client *open_face(emx_client_model **m, emx_tensor *in,
                             emx_tensor *out) {
  emx_client *c;
  assert_int_equal(emx_client_connect(&c, NULL), 0);
  assert_int_equal(emx_client_model_open(c, model_names[0], m), 0);
  assert_int_equal(emx_client_tensor_alloc_input(c, *m, 0, &in[0]), 0);
  assert_int_equal(emx_client_tensor_alloc_output(c, *m, 0, &out[0]), 0);
  assert_int_equal(emx_client_tensor_alloc_output(c, *m, 1, &out[1]), 0);
  return c;
}

static void wrong_size(void **state) {
  (void)state;
  emx_client_model *m;
  emx_tensor in, out[2];
  emx_client *c = open_face(&m, &in, out);
  emx_tensor small_in;
  assert_int_equal(emx_client_tensor_alloc(c, in.dtype, in.size - 4, &small_in),
                   0);
  assert_int_equal(emx_client_infer(c, m, &small_in, 1, out, 2, NULL),
                   EMX_ESIZE);
  assert_true(contains(emx_client_last_error(c), "bytes"));
  emx_tensor big_out[2] = {out[0], out[1]};
  emx_tensor bigger;
  assert_int_equal(
      emx_client_tensor_alloc(c, out[1].dtype, out[1].size + 64, &bigger), 0);
  big_out[1] = bigger;
  assert_int_equal(emx_client_infer(c, m, &in, 1, big_out, 2, NULL), EMX_ESIZE);
  emx_client_request *r = (emx_client_request *)&r;
  assert_int_equal(emx_client_submit(c, m, &small_in, 1, out, 2, NULL, &r),
                   EMX_ESIZE);
  assert_null(r);
  /* Nothing broke: the right sizes still work. */
  assert_int_equal(emx_client_infer(c, m, &in, 1, out, 2, NULL), 0);
  emx_client_tensor_free(c, &small_in);
  emx_client_tensor_free(c, &bigger);
  emx_client_destroy(c);
}

static void tensor_outside_arena(void **state) {
  (void)state;
  emx_client_model *m;
  emx_tensor in, out[2];
  emx_client *c = open_face(&m, &in, out);
  emx_tensor heap_in = {in.dtype, calloc(1, in.size), in.size};
  assert_non_null(heap_in.data);
  assert_int_equal(emx_client_infer(c, m, &heap_in, 1, out, 2, NULL),
                   EMX_EINVAL);
  assert_true(contains(emx_client_last_error(c), "arena"));
  emx_tensor heap_out[2] = {out[0],
                            {out[1].dtype, malloc(out[1].size), out[1].size}};
  assert_non_null(heap_out[1].data);
  assert_int_equal(emx_client_infer(c, m, &in, 1, heap_out, 2, NULL),
                   EMX_EINVAL);
  /* A tensor of another client's arena is not in this one either. */
  emx_client_model *m2;
  emx_tensor in2, out2[2];
  emx_client *c2 = open_face(&m2, &in2, out2);
  assert_int_equal(emx_client_infer(c, m, &in2, 1, out, 2, NULL), EMX_EINVAL);
  assert_int_equal(emx_client_infer(c2, m2, &in2, 1, out2, 2, NULL), 0);
  assert_int_equal(emx_client_infer(c, m, &in, 1, out, 2, NULL), 0);
  free(heap_in.data);
  free(heap_out[1].data);
  emx_client_destroy(c2);
  emx_client_destroy(c);
}

static void no_daemon(void **state) {
  (void)state;
  char dir[] = "/tmp/emxt-nodaemon-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof path, "%s/edgemux.sock", dir);

  emx_client_config cfg;
  emx_client_config_init(&cfg);
  cfg.socket_path = path;
  emx_client *c = (emx_client *)&c;
  int rc = emx_client_connect(&c, &cfg);
  assert_true(rc < 0);
  assert_int_equal(rc, EMX_EDISCONNECTED);
  assert_null(c);
  const char *msg = emx_client_last_error(NULL);
  if (!contains(msg, path))
    print_error("message: %s\n", msg);
  assert_true(contains(msg, path));

  /* The same through $EDGEMUX_SOCKET (what the daemon's own tests set). */
  char *saved =
      strdup(getenv("EDGEMUX_SOCKET") ? getenv("EDGEMUX_SOCKET") : "");
  assert_non_null(saved);
  setenv("EDGEMUX_SOCKET", path, 1);
  rc = emx_client_connect(&c, NULL);
  if (*saved)
    setenv("EDGEMUX_SOCKET", saved, 1);
  else
    unsetenv("EDGEMUX_SOCKET");
  free(saved);
  assert_true(rc < 0);
  assert_true(contains(emx_client_last_error(NULL), path));
  rmdir(dir);
}

/* ---- the group: one daemon, one device -------------------------------------
 */

static emxt_daemon daemon_;

static int group_setup(void **state) {
  (void)state;
  static const char *const args[] = {"--device", "cpu:workers=1", NULL};
  return emxt_daemon_start(&daemon_, args) == 0 ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  free_models();
  int rc = emxt_daemon_stop(&daemon_);
  if (rc != 0)
    fprintf(stderr, "edgemuxd exited with status %d (log: %s)\n", rc,
            daemon_.log);
  return rc == 0 ? 0 : -1;
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(seed_scenario),
      cmocka_unit_test(fork_inherited_client),
      cmocka_unit_test(client_example_is_verbatim),
      cmocka_unit_test(client_example_runs),
      cmocka_unit_test(unknown_model),
      cmocka_unit_test(wrong_size),
      cmocka_unit_test(tensor_outside_arena),
      cmocka_unit_test(no_daemon),
  };
  return cmocka_run_group_tests_name("daemon_seed", tests, group_setup,
                                     group_teardown);
}
