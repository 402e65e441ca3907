/*
 * bench/engine.c — what the edgemux engine costs over a bare TFLite
 * interpreter.
 *
 * The direct baseline is one thread looping over a bare interpreter: copy the
 * input in, invoke, copy the outputs out — the work an engine worker does per
 * request. Each round measures the engine and the baseline back to back, so
 * that drift on a noisy machine hits both alike; the results are medians over
 * rounds of per-round ratios. The last four lines have the
 * form `name: value (target ...)`.
 *
 * Memory is measured first, in children forked while this process still has
 * a single thread (fork and threads do not mix).
 */
#include <edgemux/edgemux.h>
#include <tensorflow/lite/c/c_api.h>

#include "common/baseline.h"
#include "common/sys.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TENSORS 8

/* The engine drivers use 4 client threads against one worker: enough to keep
 * its queue non-empty, so the worker never waits for a client. */
#define ONE_WORKER_CLIENTS 4

/* Slices of each round's latency measurement (sync and direct alternate). */
#define LATENCY_SLICES 8

typedef struct options {
  double seconds;    /* length of each measurement */
  int rounds;        /* measurement rounds */
  const char *model; /* .tflite path */
} options;

/* buffers holds one client's input and output tensors. */
typedef struct buffers {
  size_t input_count;
  size_t output_count;
  emx_tensor inputs[MAX_TENSORS];
  emx_tensor outputs[MAX_TENSORS];
} buffers;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

static void buffers_free(buffers *b) {
  for (size_t i = 0; i < b->input_count; i++)
    free(b->inputs[i].data);
  for (size_t i = 0; i < b->output_count; i++)
    free(b->outputs[i].data);
  memset(b, 0, sizeof *b);
}

/* buffers_for_model allocates tensors shaped like the model's, with a random
 * input derived from seed (equal seeds give equal inputs). */
static int buffers_for_model(buffers *b, const emx_model *model,
                             uint32_t seed) {
  memset(b, 0, sizeof *b);
  size_t in_count = emx_model_input_count(model);
  size_t out_count = emx_model_output_count(model);
  if (in_count > MAX_TENSORS || out_count > MAX_TENSORS) {
    fprintf(stderr, "bench-engine: model has more than %d inputs or outputs\n",
            MAX_TENSORS);
    return -1;
  }
  for (size_t i = 0; i < in_count; i++) {
    emx_tensor_info info;
    emx_model_input_info(model, i, &info);
    if (bench_tensor_alloc(&b->inputs[b->input_count++], info.dtype,
                           info.bytes) < 0)
      goto fail;
    bench_fill_random(&b->inputs[i], &seed);
  }
  for (size_t i = 0; i < out_count; i++) {
    emx_tensor_info info;
    emx_model_output_info(model, i, &info);
    if (bench_tensor_alloc(&b->outputs[b->output_count++], info.dtype,
                           info.bytes) < 0)
      goto fail;
  }
  return 0;
fail:
  fprintf(stderr, "bench-engine: out of memory\n");
  buffers_free(b);
  return -1;
}

/* ------------------------------------------------------------------------ */
/* The direct baseline                                                       */

/* direct_loop runs the baseline for `seconds`, recording each call's latency;
 * returns calls per second, or -1 on failure. */
static double direct_loop(baseline *d, buffers *b, double seconds,
                          bench_samples *latencies) {
  int64_t start = emx_now_ns();
  int64_t end = start + (int64_t)(seconds * 1e9);
  int64_t now = start;
  uint64_t calls = 0;
  while (now < end) {
    int64_t before = now;
    if (baseline_run(d, b->inputs, b->input_count, b->outputs,
                     b->output_count) < 0) {
      fprintf(stderr, "bench-engine: direct invoke failed\n");
      return -1;
    }
    now = emx_now_ns();
    calls++;
    if (bench_samples_add(latencies, (double)(now - before)) < 0)
      return -1;
  }
  return (double)calls / ((double)(now - start) / 1e9);
}

/* ------------------------------------------------------------------------ */
/* Engine drivers                                                            */

static int engine_open(const char *spec, const char *path, emx_engine **engine,
                       emx_model **model) {
  const char *devices[1] = {spec};
  emx_engine_config cfg;
  emx_engine_config_init(&cfg);
  cfg.devices = devices;
  cfg.device_count = 1;
  int rc = emx_engine_create(engine, &cfg);
  if (rc < 0) {
    fprintf(stderr, "bench-engine: emx_engine_create(\"%s\"): %s: %s\n", spec,
            emx_err_name(rc), emx_engine_last_error(NULL));
    return rc;
  }
  rc = emx_model_load_file(*engine, "bench", path, model);
  if (rc < 0) {
    fprintf(stderr, "bench-engine: emx_model_load_file(%s): %s: %s\n", path,
            emx_err_name(rc), emx_engine_last_error(*engine));
    emx_engine_destroy(*engine);
    *engine = NULL;
  }
  return rc;
}

static int engine_infer(emx_engine *engine, emx_model *model, buffers *b) {
  emx_request_desc req;
  emx_request_desc_init(&req);
  req.model = model;
  req.inputs = b->inputs;
  req.input_count = b->input_count;
  req.outputs = b->outputs;
  req.output_count = b->output_count;
  /* Closed-loop clients never overfill a queue; waiting rather than failing
   * keeps a surprise EMX_EBUSY from ending a measurement. */
  req.enqueue_timeout_ns = -1;
  int rc = emx_infer(engine, &req, NULL);
  if (rc < 0)
    fprintf(stderr, "bench-engine: emx_infer: %s: %s\n", emx_err_name(rc),
            emx_engine_last_error(engine));
  return rc;
}

/* closed_loop is shared by the client threads of one throughput run. */
typedef struct closed_loop {
  emx_engine *engine;
  emx_model *model;
  pthread_barrier_t start; /* clients + the timing thread */
  atomic_bool stop;
  atomic_int failed; /* first error code, 0 if none */
} closed_loop;

typedef struct client {
  closed_loop *loop;
  buffers buf;
  uint64_t done; /* requests completed before stop */
  pthread_t thread;
} client;

static void *client_main(void *arg) {
  client *c = arg;
  closed_loop *loop = c->loop;
  pthread_barrier_wait(&loop->start);
  while (!atomic_load(&loop->stop)) {
    int rc = engine_infer(loop->engine, loop->model, &c->buf);
    if (rc < 0) {
      int none = 0;
      atomic_compare_exchange_strong(&loop->failed, &none, rc);
      break;
    }
    /* A request that finishes after the timer stopped is not counted. */
    if (!atomic_load(&loop->stop))
      c->done++;
  }
  return NULL;
}

/* engine_throughput drives the engine from `threads` closed-loop clients for
 * `seconds`; returns requests per second, or -1 on failure. */
static double engine_throughput(emx_engine *engine, emx_model *model,
                                int threads, double seconds) {
  closed_loop loop = {.engine = engine, .model = model};
  atomic_init(&loop.stop, false);
  atomic_init(&loop.failed, 0);
  client *clients = calloc((size_t)threads, sizeof *clients);
  if (!clients)
    return -1;
  double rate = -1;
  for (int i = 0; i < threads; i++) {
    clients[i].loop = &loop;
    if (buffers_for_model(&clients[i].buf, model, 1000u + (uint32_t)i) < 0)
      goto done;
  }
  pthread_barrier_init(&loop.start, NULL, (unsigned)threads + 1);
  for (int i = 0; i < threads; i++)
    if (pthread_create(&clients[i].thread, NULL, client_main, &clients[i])) {
      /* The clients already started would wait at the barrier forever. */
      fprintf(stderr, "bench-engine: pthread_create failed\n");
      exit(1);
    }
  pthread_barrier_wait(&loop.start);
  int64_t start = emx_now_ns();
  bench_sleep_ns((int64_t)(seconds * 1e9));
  atomic_store(&loop.stop, true);
  int64_t end = emx_now_ns();
  uint64_t total = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(clients[i].thread, NULL);
    total += clients[i].done;
  }
  pthread_barrier_destroy(&loop.start);
  if (atomic_load(&loop.failed) == 0)
    rate = (double)total / ((double)(end - start) / 1e9);
done:
  for (int i = 0; i < threads; i++)
    buffers_free(&clients[i].buf);
  free(clients);
  return rate;
}

/* engine_sync_loop calls emx_infer from this thread for `seconds`, recording
 * each call's latency; returns 0 or -1. */
static int engine_sync_loop(emx_engine *engine, emx_model *model, buffers *b,
                            double seconds, bench_samples *latencies) {
  int64_t end = emx_now_ns() + (int64_t)(seconds * 1e9);
  int64_t now = emx_now_ns();
  while (now < end) {
    int64_t before = now;
    if (engine_infer(engine, model, b) < 0)
      return -1;
    now = emx_now_ns();
    if (bench_samples_add(latencies, (double)(now - before)) < 0)
      return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Pinning                                                                   */

/* The device work of both sides runs on one pinned CPU (the engine's worker
 * thread, and this thread during the direct loop), callers on another: on a
 * VM whose two vCPUs differ in speed from moment to moment, comparing work
 * done on different CPUs measures the host, not edgemux. */
#define DEVICE_CPU 1
#define CALLER_CPU 0

/* ------------------------------------------------------------------------ */
/* Memory                                                                    */

/* rss_of_direct returns what one prepared, once-invoked bare interpreter adds
 * to the resident set. */
static long rss_of_direct(const char *path) {
  long before = bench_rss_kib(0);
  baseline d;
  if (baseline_open_report(&d, path, "bench-engine") < 0)
    return -1;
  if (TfLiteInterpreterInvoke(d.interpreter) != kTfLiteOk)
    return -1;
  long after = bench_rss_kib(0);
  baseline_close(&d);
  return after - before;
}

/* rss_of_engine returns what a one-worker engine with the model loaded and
 * one request served adds to the resident set. */
static long rss_of_engine(const char *path) {
  long before = bench_rss_kib(0);
  emx_engine *engine;
  emx_model *model;
  if (engine_open("cpu:workers=1,threads=1", path, &engine, &model) < 0)
    return -1;
  buffers b;
  if (buffers_for_model(&b, model, 1) < 0 ||
      engine_infer(engine, model, &b) < 0)
    return -1;
  long after = bench_rss_kib(0);
  buffers_free(&b);
  emx_engine_destroy(engine);
  return after - before;
}

/* in_child runs fn in a forked child, so that each measurement starts from
 * the same clean process, and returns its result through a pipe. */
static int in_child(long (*fn)(const char *), const char *path, long *out) {
  int fds[2];
  if (pipe(fds) < 0) {
    perror("bench-engine: pipe");
    return -1;
  }
  fflush(NULL); /* or the child's exit would print buffered output twice */
  pid_t pid = fork();
  if (pid < 0) {
    perror("bench-engine: fork");
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    close(fds[0]);
    long value = fn(path);
    int ok = value >= 0 &&
             write(fds[1], &value, sizeof value) == (ssize_t)sizeof value;
    _exit(ok ? 0 : 1);
  }
  close(fds[1]);
  ssize_t n;
  do
    n = read(fds[0], out, sizeof *out);
  while (n < 0 && errno == EINTR);
  close(fds[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (n != (ssize_t)sizeof *out || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0) {
    fprintf(stderr, "bench-engine: memory measurement child failed\n");
    return -1;
  }
  return 0;
}

/* measure_rss returns the median over rounds of (engine - bare interpreter)
 * resident growth, in KiB. */
static int measure_rss(const options *opt, long *overhead) {
  double *deltas = calloc((size_t)opt->rounds, sizeof *deltas);
  if (!deltas)
    return -1;
  for (int r = 0; r < opt->rounds; r++) {
    long bare, engine;
    if (in_child(rss_of_direct, opt->model, &bare) < 0 ||
        in_child(rss_of_engine, opt->model, &engine) < 0) {
      free(deltas);
      return -1;
    }
    deltas[r] = (double)(engine - bare);
    printf("memory %d/%d: bare interpreter +%ld KiB, engine +%ld KiB, "
           "overhead %+ld KiB\n",
           r + 1, opt->rounds, bare, engine, engine - bare);
  }
  *overhead = (long)bench_median(deltas, (size_t)opt->rounds);
  free(deltas);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Main                                                                      */

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench-engine [--seconds S] [--rounds R] [--model PATH]\n"
          "\n"
          "Compares the edgemux engine with a bare TFLite interpreter loop.\n"
          "  --seconds S   length of each measurement (default 2)\n"
          "  --rounds R    rounds; results are medians over rounds "
          "(default 5)\n"
          "  --model PATH  .tflite model (default %s)\n",
          EMX_MODELS_DIR "/face_detection_short_range.tflite");
}

/* parse_args returns 0 to run, 1 after --help, -1 on a bad argument. */
static int parse_args(int argc, char **argv, options *opt) {
  opt->seconds = 2;
  opt->rounds = 5;
  opt->model = EMX_MODELS_DIR "/face_detection_short_range.tflite";
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
    } else if (strcmp(arg, "--model") == 0) {
      opt->model = value;
      ok = *value;
      i++;
    } else {
      fprintf(stderr, "bench-engine: unknown argument '%s'\n", arg);
      usage(stderr);
      return -1;
    }
    if (!ok) {
      fprintf(stderr, "bench-engine: bad value '%s' for %s\n", value, arg);
      usage(stderr);
      return -1;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  options opt;
  int rc = parse_args(argc, argv, &opt);
  if (rc != 0)
    return rc < 0 ? 2 : 0;
  if (access(opt.model, R_OK) != 0) {
    fprintf(stderr,
            "bench-engine: cannot read model %s: %s\n"
            "  run scripts/setup (or make bench) to download the models\n",
            opt.model, strerror(errno));
    return 1;
  }
  long nproc = sysconf(_SC_NPROCESSORS_ONLN);
  if (nproc < 1)
    nproc = 1;
  printf("machine: %ld online cores; TensorFlow Lite %s; edgemux %s\n", nproc,
         TfLiteVersion(), emx_version());
  printf("model: %s\n", opt.model);
  printf("%d rounds of %.1f s per measurement; one XNNPACK thread per "
         "interpreter\n\n",
         opt.rounds, opt.seconds);

  /* Before any thread exists: see in_child. */
  long rss_overhead;
  if (measure_rss(&opt, &rss_overhead) < 0)
    return 1;

  baseline d = {0};
  emx_engine *one = NULL, *all = NULL;
  emx_model *one_model, *all_model;
  buffers direct_buf = {0}, sync_buf = {0};
  bench_samples direct_lat = {0}, sync_lat = {0}, rate_lat = {0};
  /* Per-round ratios, one row of opt.rounds each. */
  double *ratios = calloc(3 * (size_t)opt.rounds, sizeof *ratios);
  double *throughput_ratio = ratios;               /* engine x4 / direct */
  double *sync_ratio = ratios + opt.rounds;        /* sync p50 / direct p50 */
  double *scaling_ratio = ratios + 2 * opt.rounds; /* all cores / engine x4 */
  rc = 1;
  if (!ratios || baseline_open_report(&d, opt.model, "bench-engine") < 0)
    goto done;
  if (engine_open("cpu:workers=1,threads=1", opt.model, &one, &one_model) < 0)
    goto done;
  /* Found before the second engine exists: it has an "emx:cpu0" too. */
  pid_t one_worker = bench_thread_named(0, "emx:cpu0");
  int pinned = nproc >= 2 && one_worker > 0;
  if (pinned) {
    bench_pin(one_worker, DEVICE_CPU);
    printf("pinning: the engine's worker and the direct loop on CPU %d, "
           "callers on CPU %d\n",
           DEVICE_CPU, CALLER_CPU);
  }
  if (engine_open("cpu", opt.model, &all, &all_model) < 0)
    goto done;
  int all_clients = 2 * (int)nproc;
  printf("\nengines: 1 worker with %d clients; %zu workers (\"cpu\") with %d "
         "clients\n",
         ONE_WORKER_CLIENTS, emx_engine_device_count(all), all_clients);

  /* Same seed, same input: the engine must compute what the baseline does,
   * or there is nothing to compare. */
  if (buffers_for_model(&direct_buf, one_model, 7) < 0 ||
      buffers_for_model(&sync_buf, one_model, 7) < 0)
    goto done;
  if (baseline_run(&d, direct_buf.inputs, direct_buf.input_count,
                   direct_buf.outputs, direct_buf.output_count) < 0 ||
      engine_infer(one, one_model, &sync_buf) < 0)
    goto done;
  for (size_t i = 0; i < direct_buf.output_count; i++)
    if (memcmp(direct_buf.outputs[i].data, sync_buf.outputs[i].data,
               direct_buf.outputs[i].size) != 0) {
      fprintf(stderr,
              "bench-engine: engine output %zu differs from the "
              "direct interpreter's\n",
              i);
      goto done;
    }

  /* Warm up caches, XNNPACK's first-run setup and the worker threads. */
  if (direct_loop(&d, &direct_buf, 0.2, &direct_lat) < 0 ||
      engine_sync_loop(one, one_model, &sync_buf, 0.2, &sync_lat) < 0 ||
      engine_throughput(all, all_model, all_clients, 0.2) < 0)
    goto done;

  for (int r = 0; r < opt.rounds; r++) {
    /* Order: every ratio divides two back-to-back measurements (sync |
     * direct, direct | engine x4, engine x4 | all cores), so load that comes
     * and goes on a shared machine skews the pairs as little as it can. */
    /* Latency: sync and direct in interleaved slices (A B B A ...), so a
     * host whose speed drifts within the round (seen here: p50 0.84 vs
     * 1.15 ms a few seconds apart) slows both alike. */
    sync_lat.count = 0;
    direct_lat.count = 0;
    for (int slice = 0; slice < LATENCY_SLICES; slice++) {
      int sync_turn = slice % 4 == 0 || slice % 4 == 3;
      if (pinned)
        bench_pin(0, sync_turn ? CALLER_CPU : DEVICE_CPU);
      int failed =
          sync_turn
              ? engine_sync_loop(one, one_model, &sync_buf,
                                 opt.seconds / LATENCY_SLICES, &sync_lat)
              : (direct_loop(&d, &direct_buf, opt.seconds / LATENCY_SLICES,
                             &direct_lat) < 0
                     ? -1
                     : 0);
      if (failed < 0)
        goto done;
    }
    rate_lat.count = 0;
    if (pinned)
      bench_pin(0, DEVICE_CPU);
    double direct_rate = direct_loop(&d, &direct_buf, opt.seconds, &rate_lat);
    if (pinned)
      bench_pin(0, CALLER_CPU); /* the client threads inherit it */
    double one_rate =
        engine_throughput(one, one_model, ONE_WORKER_CLIENTS, opt.seconds);
    if (pinned)
      bench_pin(0, -1); /* all cores: the scaling run is unpinned */
    double all_rate =
        engine_throughput(all, all_model, all_clients, opt.seconds);
    if (direct_rate < 0 || one_rate < 0 || all_rate < 0)
      goto done;
    double direct_p50 = bench_median(direct_lat.values, direct_lat.count) / 1e6;
    double sync_p50 = bench_median(sync_lat.values, sync_lat.count) / 1e6;
    throughput_ratio[r] = one_rate / direct_rate;
    sync_ratio[r] = sync_p50 / direct_p50;
    scaling_ratio[r] = all_rate / one_rate;
    printf("round %d/%d: sync p50 %.3f ms (%.3f) | direct %.1f/s p50 %.3f ms "
           "| engine x%d %.1f/s (%.3f) | all cores %.1f/s (%.3f)\n",
           r + 1, opt.rounds, sync_p50, sync_ratio[r], direct_rate, direct_p50,
           ONE_WORKER_CLIENTS, one_rate, throughput_ratio[r], all_rate,
           scaling_ratio[r]);
    fflush(stdout);
  }

  size_t n = (size_t)opt.rounds;
  printf("\n");
  printf("engine_throughput_ratio: %.3f (target >= 0.97)\n",
         bench_median(throughput_ratio, n));
  printf("engine_sync_latency_ratio: %.3f (target <= 1.05)\n",
         bench_median(sync_ratio, n));
  printf("engine_cpu_scaling: %.3f (report; about 1.8 expected on 2 cores)\n",
         bench_median(scaling_ratio, n));
  printf("engine_rss_overhead_kib: %ld (report)\n", rss_overhead);
  rc = 0;
done:
  emx_engine_destroy(one);
  emx_engine_destroy(all);
  baseline_close(&d);
  buffers_free(&direct_buf);
  buffers_free(&sync_buf);
  free(direct_lat.values);
  free(sync_lat.values);
  free(rate_lat.values);
  free(ratios);
  return rc;
}
