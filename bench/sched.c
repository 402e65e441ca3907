/*
 * bench/sched.c — what the scheduling policies buy on a single-core
 * (simulated) Edge TPU.
 *
 * affinity_vs_fifo: two models, requests for both always waiting (two
 * closed-loop submitters, one per model); 1 ms invoke, 5 ms parameter swap
 * (sim swap_ms=5). Throughput with sched=affinity (max_delay_ms=50) ÷ with
 * sched=fifo, which swaps on nearly every invoke; the line also shows the
 * worst p99 latency under affinity against its bound, max delay + service
 * time (swap + invoke) of the request.
 *
 * fairness_p99_ratio: a light client (one request at a time, 2 ms apart)
 * beside a flooding client (32 in flight), on sched=fair: the light
 * client's p99 latency ÷ its p99 alone.
 *
 * The last lines have the form `name: value (target ...)`.
 */
#include <edgemux/edgemux.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef EMX_MODELS_DIR
#define EMX_MODELS_DIR ".deps/models"
#endif

#define SIM                                                                    \
  "outputs=none,compute_ms=1,swap_ms=5,fixed_us=0,bandwidth_mbps=100000"
#define MAX_DELAY_MS 50
#define WINDOW                                                                 \
  2 /* requests each submitter keeps in flight: with more, even
                    fifo meets runs of one model (arrivals come in bursts) */

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

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double p99(double *v, long n) {
  if (n == 0)
    return 0;
  qsort(v, (size_t)n, sizeof *v, cmp);
  return v[(long)(0.99 * (double)(n - 1))];
}

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
      int slot = (head + count) % 64;
      sent[slot] = emx_now_ns();
      if (emx_submit(s->e, &d, &ring[slot]) == 0)
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

static emx_model *load(emx_engine *e, const char *name, const char *file) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", EMX_MODELS_DIR, file);
  emx_model *m;
  if (emx_model_load_file(e, name, path, &m) < 0) {
    fprintf(stderr, "bench-sched: %s\n", emx_engine_last_error(e));
    exit(1);
  }
  return m;
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

/* two_models: requests/s for two submitters on models a and b; *worst_p99
 * is the larger of their p99 latencies (ms). */
static double two_models(const char *policy, double seconds,
                         double *worst_p99) {
  char spec[256];
  snprintf(spec, sizeof spec, "sim:80," SIM ",%s", policy);
  emx_engine *e = engine_for(spec);
  side s[2];
  side_init(&s[0], e, load(e, "a", "face_detection_short_range.tflite"), WINDOW,
            0, seconds);
  side_init(&s[1], e, load(e, "b", "face_detection_full_range.tflite"), WINDOW,
            0, seconds);
  pthread_t th[2];
  int64_t t0 = emx_now_ns();
  for (int i = 0; i < 2; i++)
    pthread_create(&th[i], NULL, submitter, &s[i]);
  usleep((useconds_t)(seconds * 1e6));
  for (int i = 0; i < 2; i++)
    atomic_store(&s[i].stop, 1);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  double secs = (emx_now_ns() - t0) / 1e9;
  double rate = (s[0].done + s[1].done) / secs;
  *worst_p99 = 0;
  for (int i = 0; i < 2; i++) {
    long n = s[i].done < s[i].lat_cap ? s[i].done : s[i].lat_cap;
    double p = p99(s[i].lat_ms, n);
    if (p > *worst_p99)
      *worst_p99 = p;
    emx_stream_destroy(s[i].stream);
    free_buffers(&s[i]);
  }
  emx_engine_destroy(e);
  return rate;
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
  double p = p99(light.lat_ms, n);
  emx_stream_destroy(light.stream);
  emx_stream_destroy(flood.stream);
  free_buffers(&light);
  free_buffers(&flood);
  emx_engine_destroy(e);
  return p;
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 3;
  if (argc > 1 && (seconds <= 0 || argv[1][0] == '-')) {
    printf("usage: bench-sched [SECONDS per measurement, default 3]\n");
    return strcmp(argv[1], "--help") == 0 ? 0 : 2;
  }
  char lock_dir[] = "/tmp/emx-bench-XXXXXX";
  if (!mkdtemp(lock_dir))
    return 1;
  setenv("EMX_SIM_LOCK_DIR", lock_dir, 1);

  double fifo_p99, aff_p99;
  double fifo = two_models("sched=fifo", seconds, &fifo_p99);
  char aff_spec[64];
  snprintf(aff_spec, sizeof aff_spec, "sched=affinity,max_delay_ms=%d",
           MAX_DELAY_MS);
  double aff = two_models(aff_spec, seconds, &aff_p99);
  printf("fifo: %.1f req/s, p99 %.1f ms | affinity: %.1f req/s, p99 %.1f ms\n",
         fifo, fifo_p99, aff, aff_p99);
  double alone = light_p99(0, seconds);
  double beside = light_p99(1, seconds);
  printf("light client p99: alone %.2f ms, beside a flood %.2f ms\n", alone,
         beside);
  /* The bound of a request: max delay, then its own service (a swap and
   * an invoke), behind at most the requests its own window queued. */
  double bound = MAX_DELAY_MS + WINDOW * (5 + 1);
  printf("\naffinity_vs_fifo: %.3f (target >= 3; affinity p99 %.1f ms, "
         "bound %.0f ms)\n",
         aff / fifo, aff_p99, bound);
  printf("fairness_p99_ratio: %.3f (target <= 3)\n", beside / alone);
  rmdir(lock_dir);
  return 0;
}
