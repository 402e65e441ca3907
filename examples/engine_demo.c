/*
 * examples/engine_demo.c — edgemux's main job, end to end: many threads share
 * one engine, and every result is checked.
 *
 * Loads a model into an engine with the default configuration (one CPU worker
 * per core) and computes the expected outputs of a few random inputs with a
 * plain TFLite interpreter (the oracle). Then 8 threads drive the engine at
 * once, each on its own stream, mixing emx_infer with batches of emx_submit +
 * emx_request_wait, and every output is compared bit for bit with the oracle.
 * Exits 1 if any request failed, any output differed, or a stream completed
 * out of order.
 *
 * Usage: edgemux-demo [MODEL.tflite]
 */
#include <edgemux/edgemux.h>
#include <tensorflow/lite/c/c_api.h>

#include "common/baseline.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_MODEL EMX_MODELS_DIR "/face_detection_short_range.tflite"
#define MAX_TENSORS 8
#define EXAMPLES 16             /* distinct inputs the oracle precomputes */
#define CLIENTS 8               /* threads driving the engine at once */
#define REQUESTS_PER_CLIENT 250 /* 8 x 250: 2000 requests in all */
#define MAX_BATCH 4             /* requests a client keeps in flight */
#define MAX_REPORTED_ERRORS 5   /* failures printed in full */

/* example is one input and the outputs the oracle computed for it. */
typedef struct example {
  emx_tensor inputs[MAX_TENSORS];
  emx_tensor expected[MAX_TENSORS];
} example;

/* demo is what every client shares. */
typedef struct demo {
  emx_engine *engine;
  emx_model *model;
  size_t input_count;
  size_t output_count;
  example examples[EXAMPLES];
  pthread_barrier_t start;   /* clients + main, so all start together */
  atomic_int errors_printed; /* caps MAX_REPORTED_ERRORS */
} demo;

struct client;

/* slot is one request a client has in flight. */
typedef struct slot {
  struct client *client;
  emx_request *req;
  int example;                  /* index into demo.examples */
  uint64_t seq;                 /* order of submission on the stream */
  int64_t submitted_ns;         /* just before emx_submit */
  int callback_status;          /* status the callback was given */
  _Atomic int64_t completed_ns; /* set by the completion callback, last */
  emx_tensor outputs[MAX_TENSORS];
} slot;

/* client is one application thread with its own stream. */
typedef struct client {
  demo *demo;
  int id;
  pthread_t thread;
  emx_stream *stream;
  unsigned seed;
  slot slots[MAX_BATCH];
  uint64_t next_seq;                  /* seq of the next submission */
  atomic_uint_fast64_t next_complete; /* seq the next callback must carry */
  atomic_int out_of_order;            /* callbacks that broke stream order */
  int infers;                         /* requests sent with emx_infer */
  int submits;                        /* requests sent with emx_submit */
  int errors;                         /* requests that failed */
  int mismatches;                     /* requests whose output differed */
  double latencies_us[REQUESTS_PER_CLIENT]; /* successful requests */
  int latency_count;
} client;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static void print_tensor(const char *kind, size_t index,
                         const emx_tensor_info *info) {
  char shape[128] = "";
  size_t len = 0;
  for (int d = 0; d < info->rank && len < sizeof shape; d++)
    len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%d",
                            d ? "x" : "", (int)info->dims[d]);
  printf("  %s %zu: %-16s %-8s %-14s %zu bytes\n", kind, index, info->name,
         emx_dtype_name(info->dtype), shape, info->bytes);
}

/* report_error prints the first few failures in full; the count says the
 * rest. */
static void report_error(demo *d, int client_id, const char *call, int rc,
                         const char *message) {
  if (atomic_fetch_add(&d->errors_printed, 1) >= MAX_REPORTED_ERRORS)
    return;
  fprintf(stderr, "edgemux-demo: client %d: %s: %s: %s\n", client_id, call,
          emx_err_name(rc), message);
}

/* ------------------------------------------------------------------------ */
/* The oracle                                                                */

/* compute_expected runs every example through a bare interpreter set up
 * like the engine's CPU backend (XNNPACK without a thread pool, one thread),
 * so the engine's outputs must match bit for bit. */
static int compute_expected(demo *d, const char *path) {
  int rc = -1;
  baseline bl;
  int err = baseline_open(&bl, path);
  if (err == BASELINE_ELOAD || err == BASELINE_EDELEGATE) {
    fprintf(stderr, "edgemux-demo: oracle: cannot load %s\n", path);
    goto done;
  }
  if (err < 0) {
    fprintf(stderr, "edgemux-demo: oracle: cannot create an interpreter\n");
    goto done;
  }
  if ((size_t)TfLiteInterpreterGetInputTensorCount(bl.interpreter) !=
          d->input_count ||
      (size_t)TfLiteInterpreterGetOutputTensorCount(bl.interpreter) !=
          d->output_count) {
    fprintf(stderr, "edgemux-demo: oracle and engine disagree on the "
                    "number of tensors\n");
    goto done;
  }
  for (int e = 0; e < EXAMPLES; e++) {
    example *ex = &d->examples[e];
    err = baseline_run(&bl, ex->inputs, d->input_count, ex->expected,
                       d->output_count);
    if (err == BASELINE_EINVOKE) {
      fprintf(stderr, "edgemux-demo: oracle: invoke failed\n");
      goto done;
    }
    if (err < 0)
      goto size_mismatch;
  }
  rc = 0;
  goto done;
size_mismatch:
  fprintf(stderr, "edgemux-demo: oracle and engine disagree on a tensor "
                  "size\n");
done:
  baseline_close(&bl);
  return rc;
}

/* make_examples allocates the examples with the engine's tensor shapes, fills
 * their inputs, and has the oracle compute their outputs. */
static int make_examples(demo *d, const char *path) {
  unsigned seed = 20240611;
  for (int e = 0; e < EXAMPLES; e++) {
    example *ex = &d->examples[e];
    for (size_t i = 0; i < d->input_count; i++) {
      emx_tensor_info info;
      emx_model_input_info(d->model, i, &info);
      if (bench_tensor_alloc(&ex->inputs[i], info.dtype, info.bytes) < 0)
        return -1;
      bench_fill_random(&ex->inputs[i], &seed);
    }
    for (size_t i = 0; i < d->output_count; i++) {
      emx_tensor_info info;
      emx_model_output_info(d->model, i, &info);
      if (bench_tensor_alloc(&ex->expected[i], info.dtype, info.bytes) < 0)
        return -1;
    }
  }
  return compute_expected(d, path);
}

static void free_examples(demo *d) {
  for (int e = 0; e < EXAMPLES; e++)
    for (size_t i = 0; i < MAX_TENSORS; i++) {
      free(d->examples[e].inputs[i].data);
      free(d->examples[e].expected[i].data);
    }
}

/* ------------------------------------------------------------------------ */
/* Clients                                                                   */

/* on_complete runs on an engine thread, in stream order: checking that the
 * sequence numbers arrive in the order they were submitted checks the
 * engine's ordering promise. */
static void on_complete(emx_request *req, int status, void *user) {
  (void)req;
  slot *s = user;
  s->callback_status = status;
  uint64_t expected = atomic_fetch_add(&s->client->next_complete, 1);
  if (s->seq != expected)
    atomic_fetch_add(&s->client->out_of_order, 1);
  /* Last touch of the slot: once this is set the client may reuse it. */
  atomic_store(&s->completed_ns, emx_now_ns());
}

/* check_outputs compares a request's outputs with the oracle's. */
static void check_outputs(client *c, int example_index,
                          const emx_tensor *outputs) {
  const example *ex = &c->demo->examples[example_index];
  for (size_t i = 0; i < c->demo->output_count; i++)
    if (memcmp(outputs[i].data, ex->expected[i].data, outputs[i].size) != 0) {
      c->mismatches++;
      return;
    }
}

static void desc_for(client *c, int example_index, const emx_tensor *outputs,
                     emx_request_desc *desc) {
  emx_request_desc_init(desc);
  desc->model = c->demo->model;
  desc->inputs = c->demo->examples[example_index].inputs;
  desc->input_count = c->demo->input_count;
  desc->outputs = outputs;
  desc->output_count = c->demo->output_count;
  desc->stream = c->stream;
}

/* run_infer sends one request with the blocking call. */
static void run_infer(client *c) {
  slot *s = &c->slots[0];
  s->example = rand_r(&c->seed) % EXAMPLES;
  emx_request_desc desc;
  desc_for(c, s->example, s->outputs, &desc);
  c->infers++;
  int64_t start = emx_now_ns();
  int rc = emx_infer(c->demo->engine, &desc, NULL);
  int64_t end = emx_now_ns();
  if (rc < 0) {
    c->errors++;
    report_error(c->demo, c->id, "emx_infer", rc,
                 emx_engine_last_error(c->demo->engine));
    return;
  }
  c->latencies_us[c->latency_count++] = (double)(end - start) / 1e3;
  check_outputs(c, s->example, s->outputs);
}

/* finish waits for one submitted request, and for its callback, which runs
 * around the time the request completes but need not have returned when
 * emx_request_wait does. */
static void finish(client *c, slot *s) {
  int rc = emx_request_wait(s->req, -1);
  int64_t give_up = emx_now_ns() + 1000000000;
  while (atomic_load(&s->completed_ns) == 0 && emx_now_ns() < give_up)
    sched_yield();
  int64_t completed = atomic_load(&s->completed_ns);
  if (rc == 0 && completed == 0) {
    rc = EMX_EPROTO;
    report_error(c->demo, c->id, "emx_submit", rc,
                 "request completed but its callback did not run");
  } else if (rc < 0) {
    report_error(c->demo, c->id, "emx_request_wait", rc,
                 emx_request_error(s->req));
  } else if (s->callback_status != 0) {
    rc = s->callback_status;
    report_error(c->demo, c->id, "on_complete", rc,
                 "the callback got an error, emx_request_wait got success");
  }
  emx_request_destroy(s->req);
  s->req = NULL;
  if (rc < 0) {
    c->errors++;
    return;
  }
  c->latencies_us[c->latency_count++] =
      (double)(completed - s->submitted_ns) / 1e3;
  check_outputs(c, s->example, s->outputs);
}

/* run_batch submits `count` requests on the stream, then waits for them in
 * order. */
static void run_batch(client *c, int count) {
  int queued = 0;
  for (int i = 0; i < count; i++) {
    slot *s = &c->slots[queued];
    s->example = rand_r(&c->seed) % EXAMPLES;
    s->seq = c->next_seq;
    atomic_store(&s->completed_ns, 0);
    emx_request_desc desc;
    desc_for(c, s->example, s->outputs, &desc);
    desc.on_complete = on_complete;
    desc.user = s;
    /* At most CLIENTS * MAX_BATCH requests are ever queued, far below the
     * default queue capacity, so the default (fail at once when full) makes
     * any EMX_EBUSY a bug worth seeing. */
    c->submits++;
    s->submitted_ns = emx_now_ns();
    int rc = emx_submit(c->demo->engine, &desc, &s->req);
    if (rc < 0) {
      c->errors++;
      report_error(c->demo, c->id, "emx_submit", rc,
                   emx_engine_last_error(c->demo->engine));
      continue; /* nothing was queued: no callback, no seq used */
    }
    c->next_seq++;
    queued++;
  }
  for (int i = 0; i < queued; i++)
    finish(c, &c->slots[i]);
}

static void *client_main(void *arg) {
  client *c = arg;
  pthread_barrier_wait(&c->demo->start);
  int sent = 0;
  while (sent < REQUESTS_PER_CLIENT) {
    /* One time in three a blocking emx_infer; otherwise a batch of 1 to
     * MAX_BATCH submissions in flight together. */
    if (rand_r(&c->seed) % 3 == 0) {
      run_infer(c);
      sent++;
    } else {
      int count = 1 + rand_r(&c->seed) % MAX_BATCH;
      if (count > REQUESTS_PER_CLIENT - sent)
        count = REQUESTS_PER_CLIENT - sent;
      run_batch(c, count);
      sent += count;
    }
  }
  return NULL;
}

static int client_init(client *c, demo *d, int id) {
  memset(c, 0, sizeof *c);
  c->demo = d;
  c->id = id;
  c->seed = 1000u + (unsigned)id;
  atomic_init(&c->next_complete, 0);
  atomic_init(&c->out_of_order, 0);
  for (int s = 0; s < MAX_BATCH; s++) {
    c->slots[s].client = c;
    atomic_init(&c->slots[s].completed_ns, 0);
    for (size_t i = 0; i < d->output_count; i++) {
      emx_tensor_info info;
      emx_model_output_info(d->model, i, &info);
      if (bench_tensor_alloc(&c->slots[s].outputs[i], info.dtype, info.bytes) <
          0)
        return EMX_ENOMEM;
    }
  }
  return emx_stream_create(d->engine, &c->stream);
}

static void client_free(client *c) {
  emx_stream_destroy(c->stream);
  for (int s = 0; s < MAX_BATCH; s++)
    for (size_t i = 0; i < MAX_TENSORS; i++)
      free(c->slots[s].outputs[i].data);
}

/* ------------------------------------------------------------------------ */
/* Main                                                                      */

static void usage(FILE *f) {
  fprintf(f,
          "usage: edgemux-demo [MODEL.tflite]\n"
          "\n"
          "Runs %d threads x %d requests through an edgemux engine (one CPU\n"
          "worker per core) and checks every output against a plain TFLite\n"
          "interpreter. Default model: %s\n",
          CLIENTS, REQUESTS_PER_CLIENT, DEFAULT_MODEL);
}

static int print_devices(emx_engine *engine) {
  size_t count = emx_engine_device_count(engine);
  printf("devices:      %zu (", count);
  for (size_t i = 0; i < count; i++) {
    emx_device_info info;
    if (emx_engine_device_info(engine, i, &info) < 0)
      return -1;
    printf("%s%s", i ? ", " : "", info.name);
  }
  printf(")\n");
  return 0;
}

static void print_device_stats(emx_engine *engine) {
  for (size_t i = 0; i < emx_engine_device_count(engine); i++) {
    emx_device_info info;
    emx_stats stats;
    if (emx_engine_device_info(engine, i, &info) < 0 ||
        emx_engine_device_stats(engine, i, &stats) < 0)
      continue;
    printf("  %-8s %6llu requests, %llu errors, busy %.2f s, %s\n", info.name,
           (unsigned long long)stats.requests, (unsigned long long)stats.errors,
           (double)stats.busy_ns / 1e9, info.healthy ? "healthy" : "UNHEALTHY");
  }
}

int main(int argc, char **argv) {
  const char *path = DEFAULT_MODEL;
  if (argc > 2) {
    usage(stderr);
    return 2;
  }
  if (argc == 2) {
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
      usage(stdout);
      return 0;
    }
    path = argv[1];
  }
  if (access(path, R_OK) != 0) {
    fprintf(stderr,
            "edgemux-demo: cannot read the model %s: %s\n"
            "  The test models are downloaded by scripts/setup: run "
            "`make demo`\n"
            "  (which runs it) or scripts/setup, or pass the path of a "
            ".tflite model.\n",
            path, strerror(errno));
    return 1;
  }

  static demo d; /* static: the examples and clients are large */
  static client clients[CLIENTS];
  int exit_code = 1;
  int clients_ready = 0;
  emx_engine_config cfg;
  emx_engine_config_init(&cfg);
  int rc = emx_engine_create(&d.engine, &cfg);
  if (rc < 0) {
    fprintf(stderr, "edgemux-demo: emx_engine_create: %s: %s\n",
            emx_err_name(rc), emx_engine_last_error(NULL));
    return 1;
  }
  rc = emx_model_load_file(d.engine, "demo", path, &d.model);
  if (rc < 0) {
    fprintf(stderr, "edgemux-demo: loading %s: %s: %s\n", path,
            emx_err_name(rc), emx_engine_last_error(d.engine));
    goto done;
  }
  d.input_count = emx_model_input_count(d.model);
  d.output_count = emx_model_output_count(d.model);
  if (d.input_count > MAX_TENSORS || d.output_count > MAX_TENSORS) {
    fprintf(stderr,
            "edgemux-demo: the demo handles at most %d inputs and "
            "outputs\n",
            MAX_TENSORS);
    goto done;
  }

  printf("edgemux %s demo, TensorFlow Lite %s\n", emx_version(),
         TfLiteVersion());
  printf("model:        %s\n", path);
  for (size_t i = 0; i < d.input_count; i++) {
    emx_tensor_info info;
    emx_model_input_info(d.model, i, &info);
    print_tensor("input ", i, &info);
  }
  for (size_t i = 0; i < d.output_count; i++) {
    emx_tensor_info info;
    emx_model_output_info(d.model, i, &info);
    print_tensor("output", i, &info);
  }
  if (print_devices(d.engine) < 0)
    goto done;
  if (make_examples(&d, path) < 0)
    goto done;
  printf("oracle:       %d random inputs run on a plain TFLite interpreter\n",
         EXAMPLES);

  atomic_init(&d.errors_printed, 0);
  pthread_barrier_init(&d.start, NULL, CLIENTS + 1);
  for (; clients_ready < CLIENTS; clients_ready++) {
    rc = client_init(&clients[clients_ready], &d, clients_ready);
    if (rc < 0) {
      fprintf(stderr, "edgemux-demo: client setup: %s: %s\n", emx_err_name(rc),
              emx_engine_last_error(d.engine));
      client_free(&clients[clients_ready]);
      goto done;
    }
  }
  for (int i = 0; i < CLIENTS; i++)
    if (pthread_create(&clients[i].thread, NULL, client_main, &clients[i])) {
      /* The clients already started would wait at the barrier forever. */
      fprintf(stderr, "edgemux-demo: pthread_create failed\n");
      exit(1);
    }
  pthread_barrier_wait(&d.start);
  int64_t start = emx_now_ns();
  for (int i = 0; i < CLIENTS; i++)
    pthread_join(clients[i].thread, NULL);
  double wall_s = (double)(emx_now_ns() - start) / 1e9;
  pthread_barrier_destroy(&d.start);

  static double latencies[CLIENTS * REQUESTS_PER_CLIENT];
  size_t latency_count = 0;
  int infers = 0, submits = 0, errors = 0, mismatches = 0, out_of_order = 0;
  for (int i = 0; i < CLIENTS; i++) {
    client *c = &clients[i];
    infers += c->infers;
    submits += c->submits;
    errors += c->errors;
    mismatches += c->mismatches;
    out_of_order += atomic_load(&c->out_of_order);
    memcpy(latencies + latency_count, c->latencies_us,
           (size_t)c->latency_count * sizeof *latencies);
    latency_count += (size_t)c->latency_count;
  }
  qsort(latencies, latency_count, sizeof *latencies, bench_compare_double);
  emx_stats model_stats;
  emx_model_stats(d.model, &model_stats);

  int requests = infers + submits;
  printf("load:         %d threads x %d requests, one stream each; "
         "emx_infer %d, emx_submit+wait %d\n",
         CLIENTS, REQUESTS_PER_CLIENT, infers, submits);
  printf("requests:     %d\n", requests);
  printf("errors:       %d\n", errors);
  printf("mismatches:   %d (outputs compared bit for bit with the oracle)\n",
         mismatches);
  printf("out of order: %d (completions against stream order)\n", out_of_order);
  printf("wall time:    %.3f s\n", wall_s);
  printf("throughput:   %.1f req/s\n", (double)requests / wall_s);
  printf("latency:      p50 %.2f ms, p99 %.2f ms (seen by the clients)\n",
         bench_percentile(latencies, latency_count, 50) / 1e3,
         bench_percentile(latencies, latency_count, 99) / 1e3);
  printf("              p50 %.2f ms, p99 %.2f ms (engine, emx_model_stats: "
         "%llu requests)\n",
         model_stats.latency_p50_us / 1e3, model_stats.latency_p99_us / 1e3,
         (unsigned long long)model_stats.requests);
  printf("per device:\n");
  print_device_stats(d.engine);

  if (errors == 0 && mismatches == 0 && out_of_order == 0) {
    printf("result:       OK, every output matched the oracle\n");
    exit_code = 0;
  } else {
    printf("result:       FAILED\n");
  }
done:
  for (int i = 0; i < clients_ready; i++)
    client_free(&clients[i]);
  emx_engine_destroy(d.engine);
  free_examples(&d);
  return exit_code;
}
