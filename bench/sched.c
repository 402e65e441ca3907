/*
 * bench/sched.c — what scheduling and batching buy: the device policies on
 * a single-core (simulated) Edge TPU, batched submission through edgemuxd,
 * and dynamic batching on the CPU backend.
 *
 * affinity_vs_fifo: two models, truly interleaved requests: one window of
 * 16 requests kept in flight (each completion submits the next), whose
 * requests alternate model A, B, A, B, ...; 1 ms invoke, 5 ms parameter
 * swap (sim compute_ms=1, swap_ms=5, outputs=none, free transfers). Under
 * sched=fifo the device swaps before every invoke (~6 ms a request); under
 * sched=affinity (max_delay_ms=50) it serves runs of one model. The value
 * is throughput with affinity ÷ with fifo; the line also shows the worst
 * per-model p99 latency under affinity against its bound, max delay + the
 * request's service time (swap + invoke).
 *
 * fairness_p99_ratio: a light client (one request at a time, 2 ms apart)
 * beside a flooding client (32 in flight), on sched=fair: the light
 * client's p99 latency ÷ its p99 alone.
 *
 * batch_submit_gain: through an edgemuxd started here (the one next to this
 * program, on a temporary socket and model repository), one client sends
 * groups of 16 small requests and waits for all 16: as one
 * emx_client_submit_batch (one message) ÷ as 16 emx_client_submit calls
 * (16 messages; the baseline); the synchronous figure (16 emx_client_infer
 * in a row) is printed for information. The device is
 * sim:82,outputs=none,fixed_us=0,bandwidth_mbps=0: a small request costs
 * it nothing (no transfer, no compute, no CPU run for outputs), so what
 * differs between the sides is the per-message cost in the client, the
 * socket and the daemon: a batch is one INFER-sized message in and, to a
 * client that accepts COMPLETE_MANY, one message out. The same is then
 * measured with 20 us of device time per request (sim:83,fixed_us=20), for
 * information: there the device's 320 us per group of 16 dominates. The
 * model is hand_landmark_lite (the simulator zeroes its outputs).
 *
 * dynamic_batching_gain: hand_landmark_lite on one CPU worker of one
 * XNNPACK thread (cpu:workers=1,threads=1), in-process, 8 requests kept in
 * flight: throughput of the model loaded with max_batch=4, preferred {4},
 * batch_delay 2 ms ÷ the same model without batching (both loaded on the
 * one worker, which is pinned to a CPU of its own). Reported, no target:
 * with XNNPACK on one thread an item costs about as much in a batch as
 * alone. Also prints the mean batch size achieved (emx_timings.batch).
 *
 * Both sides of each ratio are measured in ROUNDS alternating slices of
 * SECONDS / ROUNDS (the argument, default 3), so that drift on a noisy
 * machine hits both alike; ratios are medians of per-round ratios. The last
 * lines have the form `name: value (target ...)`.
 */
#include <edgemux/client.h>
#include <edgemux/edgemux.h>

#include "common/baseline.h"
#include "common/daemon.h"
#include "common/sys.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef EMX_MODELS_DIR
#define EMX_MODELS_DIR ".deps/models"
#endif

#define ROUNDS 5

/* SWAP_MS and INVOKE_MS restate SIM's swap_ms and compute_ms (the bound). */
#define SWAP_MS 5
#define INVOKE_MS 1
#define MAX_DELAY_MS 50
#define SIM "outputs=none,compute_ms=1,swap_ms=5,fixed_us=0,bandwidth_mbps=0"
/* In flight for affinity_vs_fifo: fifo swaps on every request whatever the
 * window; affinity serves a run of about this many before the other model's
 * requests are all that is left, so throughput is ~16 / (16 + 5) per ms. */
#define INTERLEAVED_WINDOW 16

#define BATCH_MODEL "hand_landmark_lite"
#define BATCH_WINDOW 8 /* two batches of 4: one runs while the next fills */
#define BATCH_SIZE 4
#define BATCH_DELAY_NS 2000000

#define GROUP 16 /* requests per emx_client_submit_batch */
/* The device of batch_submit_gain: a small request costs it nothing, so
 * the figure is the transport's; the second is for information, how fast
 * 20 us of device time per request takes over. */
#define DAEMON_SIM "sim:82,outputs=none,fixed_us=0,bandwidth_mbps=0"
#define DAEMON_SIM_20US "sim:83,outputs=none,fixed_us=20,bandwidth_mbps=0"

#define MAX_TENSORS 8
#define MAX_MODELS 2
#define MAX_WINDOW 32

static char lock_dir[] = "/tmp/emx-bench-XXXXXX";

static emx_engine *engine_for(const char *spec) {
  const char *devices[] = {spec};
  emx_engine_config cfg;
  emx_engine_config_init(&cfg);
  cfg.devices = devices;
  cfg.device_count = 1;
  cfg.log_level = EMX_LOG_ERROR;
  emx_engine *e;
  if (emx_engine_create(&e, &cfg) < 0) {
    fprintf(stderr, "bench-sched: %s\n", emx_engine_last_error(NULL));
    exit(1);
  }
  return e;
}

/* load_batched loads a model file; max_batch 0 leaves batching off,
 * otherwise the preferred size is max_batch. */
static emx_model *load_batched(emx_engine *e, const char *name,
                               const char *file, int max_batch) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", EMX_MODELS_DIR, file);
  emx_model_config cfg;
  emx_model_config_init(&cfg);
  cfg.path = path;
  cfg.max_batch = max_batch;
  if (max_batch > 1) {
    cfg.preferred_batch[0] = max_batch;
    cfg.batch_delay_ns = BATCH_DELAY_NS;
  }
  emx_model *m;
  if (emx_model_load(e, name, &cfg, &m) < 0) {
    fprintf(stderr, "bench-sched: %s\n", emx_engine_last_error(e));
    exit(1);
  }
  return m;
}

static emx_model *load(emx_engine *e, const char *name, const char *file) {
  return load_batched(e, name, file, 0);
}

/* p99 sorts v and returns its 99th percentile. */
static double p99(double *v, long n) {
  qsort(v, (size_t)n, sizeof *v, bench_compare_double);
  return bench_percentile(v, (size_t)n, 99);
}

/* ------------------------------------------------------------------------ */
/* A window of requests kept in flight by completion callbacks              */

typedef struct flow flow;

/* slot is one place in the window: buffers for a request of every model. */
typedef struct slot {
  flow *f;
  int model; /* index in f->models of its request in flight */
  emx_tensor in[MAX_MODELS][MAX_TENSORS];
  emx_tensor out[MAX_MODELS][MAX_TENSORS];
} slot;

/* flow keeps `window` requests in flight on an engine: each completion
 * submits the next request (from the completion callback), and request k
 * is for models[k % model_count], so arrivals interleave the models. */
struct flow {
  emx_engine *e;
  emx_model *models[MAX_MODELS];
  size_t nin[MAX_MODELS], nout[MAX_MODELS]; /* tensors per model */
  int model_count;
  int window;             /* requests in flight */
  slot slots[MAX_WINDOW]; /* one per request in flight */
  atomic_long seq;        /* number of the next request: picks its model */
  atomic_int inflight;    /* submitted, not yet completed */
  atomic_int stop;        /* 1: completions submit nothing more */
  atomic_int error;       /* first failure, 0 if none */
  atomic_long done;       /* successful completions in this slice */
  atomic_long by_batch[EMX_MAX_BATCH + 1]; /* completions per batch size */
  double *lat_ms[MAX_MODELS]; /* latencies, per model, over all slices */
  atomic_long lat_n[MAX_MODELS];
  long lat_cap;
};

static void on_complete(emx_request *req, int status, void *user);

/* submit_next submits the flow's next request from slot s. */
static void submit_next(slot *s) {
  flow *f = s->f;
  int m = (int)(atomic_fetch_add(&f->seq, 1) % f->model_count);
  s->model = m;
  emx_request_desc d;
  emx_request_desc_init(&d);
  d.model = f->models[m];
  d.inputs = s->in[m];
  d.input_count = f->nin[m];
  d.outputs = s->out[m];
  d.output_count = f->nout[m];
  d.on_complete = on_complete;
  d.user = s;
  /* From a callback a submit must not block; the queue (256) holds the
   * whole window, so EMX_EBUSY would be a bug worth reporting. */
  int rc = emx_submit(f->e, &d, NULL);
  if (rc < 0) {
    int zero = 0;
    atomic_compare_exchange_strong(&f->error, &zero, rc);
    atomic_fetch_sub(&f->inflight, 1);
  }
}

static void on_complete(emx_request *req, int status, void *user) {
  slot *s = user;
  flow *f = s->f;
  if (status == 0) {
    emx_timings t;
    emx_request_timings(req, &t);
    long i = atomic_fetch_add(&f->lat_n[s->model], 1);
    if (i < f->lat_cap)
      f->lat_ms[s->model][i] = (double)(emx_now_ns() - t.submitted_ns) / 1e6;
    if (t.batch >= 1 && t.batch <= EMX_MAX_BATCH)
      atomic_fetch_add(&f->by_batch[t.batch], 1);
    atomic_fetch_add(&f->done, 1);
  } else {
    int zero = 0;
    atomic_compare_exchange_strong(&f->error, &zero, status);
  }
  if (!atomic_load(&f->stop) && !atomic_load(&f->error))
    submit_next(s);
  else
    atomic_fetch_sub(&f->inflight, 1);
}

static void flow_init(flow *f, emx_engine *e, emx_model *const *models,
                      int model_count, int window, double seconds) {
  memset(f, 0, sizeof *f);
  f->e = e;
  f->model_count = model_count;
  f->window = window;
  f->lat_cap = (long)(seconds * 2000) + 1000; /* < 2 per ms and model */
  unsigned seed = 7;
  for (int m = 0; m < model_count; m++) {
    f->models[m] = models[m];
    f->nin[m] = emx_model_input_count(models[m]);
    f->nout[m] = emx_model_output_count(models[m]);
    f->lat_ms[m] = calloc((size_t)f->lat_cap, sizeof *f->lat_ms[m]);
    if (!f->lat_ms[m] || f->nin[m] > MAX_TENSORS || f->nout[m] > MAX_TENSORS) {
      fprintf(stderr, "bench-sched: out of memory or too many tensors\n");
      exit(1);
    }
    for (int w = 0; w < window; w++) {
      slot *s = &f->slots[w];
      s->f = f;
      emx_tensor_info ti;
      int rc = 0;
      for (size_t i = 0; i < f->nin[m]; i++) {
        emx_model_input_info(models[m], i, &ti);
        rc |= bench_tensor_alloc(&s->in[m][i], ti.dtype, ti.bytes);
        bench_fill_random(&s->in[m][i], &seed);
      }
      for (size_t i = 0; i < f->nout[m]; i++) {
        emx_model_output_info(models[m], i, &ti);
        rc |= bench_tensor_alloc(&s->out[m][i], ti.dtype, ti.bytes);
      }
      if (rc < 0) {
        fprintf(stderr, "bench-sched: out of memory\n");
        exit(1);
      }
    }
  }
}

static void flow_free(flow *f) {
  for (int m = 0; m < f->model_count; m++) {
    free(f->lat_ms[m]);
    for (int w = 0; w < f->window; w++) {
      for (size_t i = 0; i < f->nin[m]; i++)
        free(f->slots[w].in[m][i].data);
      for (size_t i = 0; i < f->nout[m]; i++)
        free(f->slots[w].out[m][i].data);
    }
  }
}

/* flow_run keeps the window full for `seconds`, then lets it drain; returns
 * completions per second within the time, or exits on a failure. */
static double flow_run(flow *f, double seconds) {
  atomic_store(&f->done, 0);
  atomic_store(&f->stop, 0);
  int64_t t0 = emx_now_ns();
  for (int w = 0; w < f->window; w++) {
    atomic_fetch_add(&f->inflight, 1);
    submit_next(&f->slots[w]);
  }
  bench_sleep_ns((int64_t)(seconds * 1e9));
  long done = atomic_load(&f->done);
  double secs = (double)(emx_now_ns() - t0) / 1e9;
  atomic_store(&f->stop, 1);
  while (atomic_load(&f->inflight) > 0)
    bench_sleep_ns(1000000);
  int err = atomic_load(&f->error);
  if (err) {
    fprintf(stderr, "bench-sched: a request failed: %s\n", emx_err_name(err));
    exit(1);
  }
  return (double)done / secs;
}

/* flow_p99 is the larger of the per-model p99 latencies (ms). */
static double flow_p99(flow *f) {
  double worst = 0;
  for (int m = 0; m < f->model_count; m++) {
    long n = atomic_load(&f->lat_n[m]);
    if (n > f->lat_cap)
      n = f->lat_cap;
    double p = n ? p99(f->lat_ms[m], n) : 0;
    if (p > worst)
      worst = p;
  }
  return worst;
}

/* ------------------------------------------------------------------------ */
/* affinity_vs_fifo                                                          */

typedef struct affinity_result {
  double ratio;     /* median of per-round affinity / fifo */
  double fifo, aff; /* median requests/s */
  double fifo_p99;  /* worst per-model p99 (ms), all rounds */
  double aff_p99;
} affinity_result;

static void affinity_vs_fifo(double seconds, affinity_result *out) {
  char spec[2][256];
  snprintf(spec[0], sizeof spec[0], "sim:80," SIM ",sched=fifo");
  snprintf(spec[1], sizeof spec[1],
           "sim:81," SIM ",sched=affinity,max_delay_ms=%d", MAX_DELAY_MS);
  emx_engine *e[2];
  flow f[2];
  for (int i = 0; i < 2; i++) {
    e[i] = engine_for(spec[i]);
    emx_model *m[2] = {load(e[i], "a", "face_detection_short_range.tflite"),
                       load(e[i], "b", "face_detection_full_range.tflite")};
    flow_init(&f[i], e[i], m, 2, INTERLEAVED_WINDOW, seconds + 1);
  }
  double rate[2][ROUNDS], ratio[ROUNDS];
  double slice = seconds / ROUNDS;
  for (int r = 0; r < ROUNDS; r++) {
    for (int k = 0; k < 2; k++) {
      int i = (r + k) % 2; /* fifo first in even rounds */
      rate[i][r] = flow_run(&f[i], slice);
    }
    ratio[r] = rate[1][r] / rate[0][r];
  }
  out->ratio = bench_median(ratio, ROUNDS);
  out->fifo = bench_median(rate[0], ROUNDS);
  out->aff = bench_median(rate[1], ROUNDS);
  out->fifo_p99 = flow_p99(&f[0]);
  out->aff_p99 = flow_p99(&f[1]);
  for (int i = 0; i < 2; i++) {
    emx_engine_destroy(e[i]);
    flow_free(&f[i]);
  }
}

/* ------------------------------------------------------------------------ */
/* fairness_p99_ratio                                                        */

/* side is one client of the fairness measurement: a submitter thread that
 * keeps `window` requests in flight on its own stream. */
typedef struct side {
  emx_engine *e;
  emx_model *m;
  emx_stream *stream;
  emx_tensor in[1], out[2];
  int window;       /* in flight */
  int64_t think_ns; /* pause between a completion and the next submit */
  atomic_int stop;
  long done;
  double *lat_ms; /* latencies of completed requests */
  long lat_cap;
} side;

static void buffers(side *s) {
  emx_tensor_info ti;
  emx_model_input_info(s->m, 0, &ti);
  s->in[0] = (emx_tensor){ti.dtype, calloc(1, ti.bytes), ti.bytes};
  for (size_t i = 0; i < 2; i++) {
    emx_model_output_info(s->m, i, &ti);
    s->out[i] = (emx_tensor){ti.dtype, calloc(1, ti.bytes), ti.bytes};
  }
}

static void free_buffers(side *s) {
  free(s->in[0].data);
  free(s->out[0].data);
  free(s->out[1].data);
  free(s->lat_ms);
}

/* submitter keeps `window` requests of its model in flight, waiting for
 * them in order (their stream completes them in order). */
static void *submitter(void *arg) {
  side *s = arg;
  emx_request *ring[64];
  int64_t sent[64];
  int head = 0, count = 0;
  emx_request_desc d;
  emx_request_desc_init(&d);
  d.model = s->m;
  d.inputs = s->in;
  d.input_count = 1;
  d.outputs = s->out;
  d.output_count = 2;
  d.stream = s->stream;
  d.enqueue_timeout_ns = -1;
  while (!atomic_load(&s->stop) || count) {
    if (!atomic_load(&s->stop) && count < s->window) {
      int at = (head + count) % 64;
      sent[at] = emx_now_ns();
      if (emx_submit(s->e, &d, &ring[at]) == 0)
        count++;
      continue;
    }
    emx_request_wait(ring[head], -1);
    double ms = (emx_now_ns() - sent[head]) / 1e6;
    emx_request_destroy(ring[head]);
    head = (head + 1) % 64;
    count--;
    if (s->done < s->lat_cap)
      s->lat_ms[s->done] = ms;
    s->done++;
    if (s->think_ns)
      usleep((useconds_t)(s->think_ns / 1000));
  }
  return NULL;
}

static void side_init(side *s, emx_engine *e, emx_model *m, int window,
                      int64_t think_ns, double seconds) {
  memset(s, 0, sizeof *s);
  s->e = e;
  s->m = m;
  s->window = window;
  s->think_ns = think_ns;
  s->lat_cap = (long)(seconds * 5000) + 1000;
  s->lat_ms = calloc((size_t)s->lat_cap, sizeof *s->lat_ms);
  emx_stream_create(e, &s->stream);
  buffers(s);
}

/* light_p99: the light client's p99 (ms), with or without a flood. */
static double light_p99(int with_flood, double seconds) {
  emx_engine *e = engine_for("sim:81," SIM ",sched=fair");
  emx_model *m = load(e, "a", "face_detection_short_range.tflite");
  side light, flood;
  side_init(&light, e, m, 1, 2000000, seconds);
  side_init(&flood, e, m, 32, 0, seconds);
  pthread_t th[2];
  pthread_create(&th[0], NULL, submitter, &light);
  if (with_flood)
    pthread_create(&th[1], NULL, submitter, &flood);
  usleep((useconds_t)(seconds * 1e6));
  atomic_store(&light.stop, 1);
  atomic_store(&flood.stop, 1);
  pthread_join(th[0], NULL);
  if (with_flood)
    pthread_join(th[1], NULL);
  long n = light.done < light.lat_cap ? light.done : light.lat_cap;
  double p = n ? p99(light.lat_ms, n) : 0;
  emx_stream_destroy(light.stream);
  emx_stream_destroy(flood.stream);
  free_buffers(&light);
  free_buffers(&flood);
  emx_engine_destroy(e);
  return p;
}

/* ------------------------------------------------------------------------ */
/* batch_submit_gain: the client                                             */

enum { AS_BATCH, AS_SUBMITS, AS_INFERS, MODES };

/* group_client holds one input (read-only, shared) and GROUP sets of
 * outputs, all in the client's arena. */
typedef struct group_client {
  emx_client *c;
  emx_client_model *m;
  size_t nin, nout;
  emx_tensor in[MAX_TENSORS];
  emx_tensor out[GROUP][MAX_TENSORS];
} group_client;

static int client_fail(group_client *g, const char *what, int rc) {
  fprintf(stderr, "bench-sched: %s: %s: %s\n", what, emx_err_name(rc),
          emx_client_last_error(g->c));
  return -1;
}

static int group_client_open(group_client *g, const bench_daemon *d) {
  memset(g, 0, sizeof *g);
  int rc = bench_daemon_connect(d, (size_t)8 << 20, &g->c);
  if (rc < 0) {
    fprintf(stderr, "bench-sched: emx_client_connect: %s\n",
            emx_client_last_error(NULL));
    return -1;
  }
  if ((rc = emx_client_model_open(g->c, BATCH_MODEL, &g->m)) < 0)
    return client_fail(g, "emx_client_model_open", rc);
  g->nin = emx_client_model_input_count(g->m);
  g->nout = emx_client_model_output_count(g->m);
  if (g->nin > MAX_TENSORS || g->nout > MAX_TENSORS)
    return client_fail(g, "too many tensors", EMX_ECOUNT);
  for (size_t i = 0; i < g->nin; i++)
    if ((rc = emx_client_tensor_alloc_input(g->c, g->m, i, &g->in[i])) < 0)
      return client_fail(g, "emx_client_tensor_alloc_input", rc);
  for (int k = 0; k < GROUP; k++)
    for (size_t i = 0; i < g->nout; i++)
      if ((rc = emx_client_tensor_alloc_output(g->c, g->m, i, &g->out[k][i])) <
          0)
        return client_fail(g, "emx_client_tensor_alloc_output", rc);
  return 0;
}

/* group_run sends GROUP requests the way `mode` says and waits for all. */
static int group_run(group_client *g, int mode) {
  emx_client_request *r[GROUP];
  int rc = 0;
  if (mode == AS_INFERS) {
    for (int k = 0; k < GROUP && rc == 0; k++)
      rc =
          emx_client_infer(g->c, g->m, g->in, g->nin, g->out[k], g->nout, NULL);
    return rc < 0 ? client_fail(g, "emx_client_infer", rc) : 0;
  }
  if (mode == AS_BATCH) {
    emx_client_batch_item items[GROUP];
    for (int k = 0; k < GROUP; k++)
      items[k] =
          (emx_client_batch_item){g->m, g->in, g->nin, g->out[k], g->nout};
    if ((rc = emx_client_submit_batch(g->c, items, GROUP, NULL, r)) < 0)
      return client_fail(g, "emx_client_submit_batch", rc);
  } else {
    for (int k = 0; k < GROUP; k++)
      if ((rc = emx_client_submit(g->c, g->m, g->in, g->nin, g->out[k], g->nout,
                                  NULL, &r[k])) < 0) {
        while (k-- > 0)
          emx_client_request_destroy(r[k]);
        return client_fail(g, "emx_client_submit", rc);
      }
  }
  int first = 0;
  for (int k = 0; k < GROUP; k++) {
    rc = emx_client_request_wait(r[k], -1);
    if (rc < 0 && !first)
      first = rc;
    emx_client_request_destroy(r[k]);
  }
  return first < 0 ? client_fail(g, "a request", first) : 0;
}

/* group_rate runs groups for `seconds`; requests per second, or -1. */
static double group_rate(group_client *g, int mode, double seconds) {
  int64_t t0 = emx_now_ns(), end = t0 + (int64_t)(seconds * 1e9), now = t0;
  long requests = 0;
  while (now < end) {
    if (group_run(g, mode) < 0)
      return -1;
    requests += GROUP;
    now = emx_now_ns();
  }
  return (double)requests / ((double)(now - t0) / 1e9);
}

typedef struct submit_result {
  double gain;        /* median of per-round batch / submits */
  double rate[MODES]; /* median requests/s per mode */
} submit_result;

static int batch_submit_gain(double seconds, const char *device,
                             submit_result *out) {
  /* The sim lock folder goes to the daemon with the environment
   * (EMX_SIM_LOCK_DIR). */
  bench_repo repo;
  bench_daemon d;
  if (bench_repo_make(&repo, "bench-sched", BATCH_MODEL,
                      EMX_MODELS_DIR "/" BATCH_MODEL ".tflite") < 0)
    return -1;
  const char *args[] = {"--models",    repo.dir, "--device", device,
                        "--log-level", "warn",   NULL};
  if (bench_daemon_start(&d, "bench-sched", args) < 0) {
    bench_repo_remove(&repo);
    return -1;
  }
  group_client g;
  int rc = group_client_open(&g, &d);
  double rate[MODES][ROUNDS], gain[ROUNDS];
  double slice = seconds / ROUNDS;
  for (int mode = 0; mode < MODES && rc == 0; mode++) /* warm up */
    if (group_rate(&g, mode, 0.1) < 0)
      rc = -1;
  for (int r = 0; r < ROUNDS && rc == 0; r++) {
    for (int k = 0; k < MODES && rc == 0; k++) {
      int mode = (r + k) % MODES; /* each mode leads some rounds */
      rate[mode][r] = group_rate(&g, mode, slice);
      if (rate[mode][r] < 0)
        rc = -1;
    }
    gain[r] = rc == 0 ? rate[AS_BATCH][r] / rate[AS_SUBMITS][r] : 0;
  }
  if (rc == 0) {
    out->gain = bench_median(gain, ROUNDS);
    for (int mode = 0; mode < MODES; mode++)
      out->rate[mode] = bench_median(rate[mode], ROUNDS);
  }
  emx_client_destroy(g.c); /* its tensors and requests go with it */
  if (bench_daemon_stop(&d) != 0)
    rc = -1;
  bench_repo_remove(&repo);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* dynamic_batching_gain                                                     */

/* The worker runs on a CPU of its own, as in bench-engine: this VM's two
 * vCPUs drift apart in speed, and work compared across CPUs would measure
 * the host. (This thread only sleeps; the completion callbacks that submit
 * run on the worker.) */
#define DEVICE_CPU 1

typedef struct batching_result {
  double gain;       /* median of per-round batched / plain */
  double plain, bat; /* median requests/s */
  double mean_batch; /* requests per invoke, batched model */
  int pinned;
} batching_result;

static void dynamic_batching_gain(double seconds, batching_result *out) {
  emx_engine *e = engine_for("cpu:workers=1,threads=1");
  /* With one CPU there is none to spare for the worker alone. */
  pid_t worker = sysconf(_SC_NPROCESSORS_ONLN) >= 2
                     ? bench_thread_named(0, "emx:cpu0")
                     : 0;
  out->pinned = worker > 0 && bench_pin(worker, DEVICE_CPU) == 0;
  emx_model *plain = load_batched(e, "plain", BATCH_MODEL ".tflite", 0);
  emx_model *bat =
      load_batched(e, "batched", BATCH_MODEL ".tflite", BATCH_SIZE);
  flow f[2];
  flow_init(&f[0], e, &plain, 1, BATCH_WINDOW, seconds + 1);
  flow_init(&f[1], e, &bat, 1, BATCH_WINDOW, seconds + 1);
  /* Warm up: XNNPACK's first-run setup, and the batched copy of the
   * interpreter (built, and tried in a child, on the first batch). */
  for (int i = 0; i < 2; i++)
    flow_run(&f[i], 0.3);
  for (int b = 0; b <= EMX_MAX_BATCH; b++)
    atomic_store(&f[1].by_batch[b], 0);
  double rate[2][ROUNDS], gain[ROUNDS];
  double slice = seconds / ROUNDS;
  for (int r = 0; r < ROUNDS; r++) {
    for (int k = 0; k < 2; k++) {
      int i = (r + k) % 2;
      rate[i][r] = flow_run(&f[i], slice);
    }
    gain[r] = rate[1][r] / rate[0][r];
  }
  out->gain = bench_median(gain, ROUNDS);
  out->plain = bench_median(rate[0], ROUNDS);
  out->bat = bench_median(rate[1], ROUNDS);
  double requests = 0, invokes = 0;
  for (int b = 1; b <= EMX_MAX_BATCH; b++) {
    double n = (double)atomic_load(&f[1].by_batch[b]);
    requests += n;
    invokes += n / b;
  }
  out->mean_batch = invokes > 0 ? requests / invokes : 0;
  emx_engine_destroy(e);
  flow_free(&f[0]);
  flow_free(&f[1]);
}

/* ------------------------------------------------------------------------ */

/* remove_lock_dir removes the sim lock files (sim:80..83) and the folder. */
static void remove_lock_dir(void) {
  for (int id = 80; id <= 83; id++) {
    char path[128];
    snprintf(path, sizeof path, "%s/edgemux-sim-%d.lock", lock_dir, id);
    unlink(path);
  }
  rmdir(lock_dir);
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 3;
  if (argc > 1 && (seconds <= 0 || argv[1][0] == '-')) {
    printf("usage: bench-sched [SECONDS per measurement, default 3]\n");
    return strcmp(argv[1], "--help") == 0 ? 0 : 2;
  }
  if (!mkdtemp(lock_dir))
    return 1;
  setenv("EMX_SIM_LOCK_DIR", lock_dir, 1); /* the daemon inherits it */
  printf("%d alternating rounds of %.2f s per side\n", ROUNDS,
         seconds / ROUNDS);

  affinity_result aff;
  affinity_vs_fifo(seconds, &aff);
  printf("interleaved A,B,A,B... (%d in flight): fifo %.1f req/s, p99 %.1f ms "
         "| affinity %.1f req/s, p99 %.1f ms\n",
         INTERLEAVED_WINDOW, aff.fifo, aff.fifo_p99, aff.aff, aff.aff_p99);

  double alone = light_p99(0, seconds);
  double beside = light_p99(1, seconds);
  printf("light client p99: alone %.2f ms, beside a flood %.2f ms\n", alone,
         beside);

  submit_result sub, sub20;
  const char *const sims[2] = {DAEMON_SIM, DAEMON_SIM_20US};
  submit_result *const subs[2] = {&sub, &sub20};
  int sub_rc = 0;
  for (int i = 0; i < 2 && sub_rc == 0; i++) {
    submit_result *r = subs[i];
    sub_rc = batch_submit_gain(seconds, sims[i], r);
    if (sub_rc == 0)
      printf("edgemuxd (%s), groups of %d: submit_batch %.0f req/s | %d "
             "submits then wait all %.0f req/s (batch / these %.2f) | %d "
             "sync infers %.0f req/s (batch / sync %.2f)\n",
             sims[i], GROUP, r->rate[AS_BATCH], GROUP, r->rate[AS_SUBMITS],
             r->gain, GROUP, r->rate[AS_INFERS],
             r->rate[AS_BATCH] / r->rate[AS_INFERS]);
  }

  batching_result bat;
  dynamic_batching_gain(seconds, &bat);
  printf("%s on cpu:workers=1,threads=1%s, %d in flight: no batching %.1f "
         "req/s | max_batch %d (preferred %d, delay %.0f ms) %.1f req/s, "
         "mean batch %.2f\n",
         BATCH_MODEL, bat.pinned ? " (worker pinned)" : "", BATCH_WINDOW,
         bat.plain, BATCH_SIZE, BATCH_SIZE, BATCH_DELAY_NS / 1e6, bat.bat,
         bat.mean_batch);

  /* The bound of a request under affinity: it waits at most the max delay,
   * then costs a swap and its invoke. */
  double bound = MAX_DELAY_MS + SWAP_MS + INVOKE_MS;
  printf("\naffinity_vs_fifo: %.3f (target >= 3; affinity p99 %.1f ms, "
         "bound %.0f ms)\n",
         aff.ratio, aff.aff_p99, bound);
  printf("fairness_p99_ratio: %.3f (target <= 3)\n", beside / alone);
  if (sub_rc == 0)
    printf("batch_submit_gain: %.3f (target >= 1.5; vs %d emx_client_submit "
           "then wait all)\n",
           sub.gain, GROUP);
  else
    printf("batch_submit_gain: failed (target >= 1.5)\n");
  printf("dynamic_batching_gain: %.3f (report; merging is off by default)\n",
         bat.gain);
  remove_lock_dir();
  return sub_rc == 0 ? 0 : 1;
}
