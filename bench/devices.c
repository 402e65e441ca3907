/*
 * bench/devices.c — does edgemux keep many accelerators busy?
 *
 * K simulated Edge TPUs (K = 1, 2, 4, 8), each spending 2 ms per invoke
 * (time only: outputs=none, so the host CPU does no inference work), fed
 * by one engine from submitting threads that keep every queue full. The
 * ideal is K x 500 requests/s; devices_scaling_K is what was achieved ÷
 * that. isolation_overhead runs one device in a supervised child process
 * (isolate=1) against the same device in-process.
 *
 * Each figure is the median over rounds. The last lines have the form
 * `name: value (target ...)`.
 */
#include <edgemux/edgemux.h>

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef EMX_MODELS_DIR
#define EMX_MODELS_DIR ".deps/models"
#endif

#define COMPUTE_MS 2
#define SUBMITTERS 2

typedef struct run {
  emx_engine *engine;
  emx_model *model;
  emx_tensor in[1], out[2];
  atomic_long done;     /* completions counted in the window */
  atomic_long inflight; /* submitted, not complete */
  long window;          /* requests kept in flight in all */
  atomic_int stop;
} run;

static void on_done(emx_request *req, int status, void *user) {
  run *r = user;
  if (status == 0)
    atomic_fetch_add(&r->done, 1);
  atomic_fetch_sub(&r->inflight, 1);
}

/* submitter keeps `window` requests in flight. Every request shares one
 * set of buffers: outputs=none writes zeros, and nobody reads them. */
static void *submitter(void *arg) {
  run *r = arg;
  emx_request_desc d;
  emx_request_desc_init(&d);
  d.model = r->model;
  d.inputs = r->in;
  d.input_count = 1;
  d.outputs = r->out;
  d.output_count = 2;
  d.on_complete = on_done;
  d.user = r;
  d.enqueue_timeout_ns = -1;
  while (!atomic_load(&r->stop)) {
    if (atomic_load(&r->inflight) >= r->window) {
      usleep(200);
      continue;
    }
    atomic_fetch_add(&r->inflight, 1);
    if (emx_submit(r->engine, &d, NULL) != 0) {
      atomic_fetch_sub(&r->inflight, 1);
      usleep(1000);
    }
  }
  return NULL;
}

/* measure returns requests/s over `seconds` for an engine of these specs,
 * or -1 with a message when the engine cannot be built. */
static double measure(const char *const *specs, size_t n, double seconds,
                      char *why, size_t why_len) {
  run r = {0};
  emx_engine_config cfg;
  emx_engine_config_init(&cfg);
  cfg.devices = specs;
  cfg.device_count = n;
  cfg.log_level = EMX_LOG_ERROR;
  if (emx_engine_create(&r.engine, &cfg) < 0) {
    snprintf(why, why_len, "%s", emx_engine_last_error(NULL));
    return -1;
  }
  if (emx_model_load_file(r.engine, "m",
                          EMX_MODELS_DIR "/face_detection_short_range.tflite",
                          &r.model) < 0) {
    snprintf(why, why_len, "%s", emx_engine_last_error(r.engine));
    emx_engine_destroy(r.engine);
    return -1;
  }
  emx_tensor_info ti;
  emx_model_input_info(r.model, 0, &ti);
  r.in[0] = (emx_tensor){ti.dtype, calloc(1, ti.bytes), ti.bytes};
  for (int i = 0; i < 2; i++) {
    emx_model_output_info(r.model, (size_t)i, &ti);
    r.out[i] = (emx_tensor){ti.dtype, calloc(1, ti.bytes), ti.bytes};
  }
  r.window = (long)n * 4; /* a few per device: never an empty queue */
  pthread_t th[SUBMITTERS];
  for (int i = 0; i < SUBMITTERS; i++)
    pthread_create(&th[i], NULL, submitter, &r);
  usleep(300000); /* warm-up: swaps, first runs */
  long start = atomic_load(&r.done);
  int64_t t0 = emx_now_ns();
  usleep((useconds_t)(seconds * 1e6));
  long end = atomic_load(&r.done);
  int64_t t1 = emx_now_ns();
  atomic_store(&r.stop, 1);
  for (int i = 0; i < SUBMITTERS; i++)
    pthread_join(th[i], NULL);
  while (atomic_load(&r.inflight) > 0)
    usleep(1000);
  emx_engine_destroy(r.engine);
  free(r.in[0].data);
  free(r.out[0].data);
  free(r.out[1].data);
  return (double)(end - start) / ((double)(t1 - t0) / 1e9);
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench-devices [--seconds S] [--rounds R]\n"
          "  K = 1, 2, 4, 8 simulated Edge TPUs at %d ms per invoke;\n"
          "  prints devices_scaling_K and isolation_overhead.\n",
          COMPUTE_MS);
}

int main(int argc, char **argv) {
  double seconds = 1.5;
  int rounds = 3;
  static const struct option opts[] = {{"seconds", required_argument, 0, 's'},
                                       {"rounds", required_argument, 0, 'r'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (c == 's')
      seconds = atof(optarg);
    else if (c == 'r')
      rounds = atoi(optarg);
    else {
      usage(c == 'h' ? stdout : stderr);
      return c == 'h' ? 0 : 2;
    }
  }
  if (seconds <= 0 || rounds < 1 || rounds > 50) {
    usage(stderr);
    return 2;
  }
  /* Private lock folder: never collide with a running daemon's sims. */
  char lock_dir[] = "/tmp/emx-bench-XXXXXX";
  if (!mkdtemp(lock_dir))
    return 1;
  setenv("EMX_SIM_LOCK_DIR", lock_dir, 1);

  static const int ks[] = {1, 2, 4, 8};
  double scaling[4];
  char why[600];
  printf("bench-devices: %ld cores, %d ms per invoke, %d round(s) of %.1f s\n",
         sysconf(_SC_NPROCESSORS_ONLN), COMPUTE_MS, rounds, seconds);
  for (int k = 0; k < 4; k++) {
    char specs_buf[8][96];
    const char *specs[8];
    for (int i = 0; i < ks[k]; i++) {
      snprintf(specs_buf[i], sizeof specs_buf[i],
               "sim:%d,outputs=none,compute_ms=%d,fixed_us=0,"
               "bandwidth_mbps=100000",
               i, COMPUTE_MS);
      specs[i] = specs_buf[i];
    }
    double v[50];
    for (int r = 0; r < rounds; r++) {
      double rps = measure(specs, (size_t)ks[k], seconds, why, sizeof why);
      if (rps < 0) {
        fprintf(stderr, "bench-devices: %s\n", why);
        return 1;
      }
      v[r] = rps / (ks[k] * 1000.0 / COMPUTE_MS);
      printf("K=%d round %d: %.1f req/s (ideal %d) -> %.3f\n", ks[k], r + 1,
             rps, ks[k] * 1000 / COMPUTE_MS, v[r]);
    }
    scaling[k] = median(v, rounds);
  }

  /* Isolation: the same single device, in a child process vs in-process,
   * alternating rounds. */
  const char *plain[] = {"sim:20,outputs=none,compute_ms=2,fixed_us=0,"
                         "bandwidth_mbps=100000"};
  const char *isolated[] = {"sim:20,outputs=none,compute_ms=2,fixed_us=0,"
                            "bandwidth_mbps=100000,isolate=1"};
  double iso[50];
  int iso_ok = 1;
  for (int r = 0; r < rounds && iso_ok; r++) {
    double a = measure(plain, 1, seconds, why, sizeof why);
    double b = measure(isolated, 1, seconds, why, sizeof why);
    if (a <= 0 || b < 0) {
      iso_ok = 0;
      break;
    }
    iso[r] = b / a;
    printf("isolation round %d: in-process %.1f req/s, isolated %.1f req/s "
           "-> %.3f\n",
           r + 1, a, b, iso[r]);
  }
  printf("\n");
  for (int k = 0; k < 4; k++)
    printf("devices_scaling_%d: %.3f (target >= 0.95)\n", ks[k], scaling[k]);
  if (iso_ok)
    printf("isolation_overhead: %.3f (target >= 0.95)\n", median(iso, rounds));
  else
    printf("isolation_overhead: n/a (%s) (target >= 0.95)\n", why);
  rmdir(lock_dir);
  return 0;
}
