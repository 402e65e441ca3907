/*
 * bench/frigate.c — Frigate's zmq detector through edgemuxd, against the
 * same work done directly, measured side by side in one run:
 *
 *   K = 1, 2, 4 detector clients (REQ sockets, as Frigate's detector
 *   processes) each send 300x300 uint8 frames in a closed loop to one
 *   edgemuxd (--zmq, one CPU device: cpu:workers=1), which converts them,
 *   runs the SSD MobileNetV2 detector and decodes its outputs into
 *   Frigate's 20 rows (src/detect/). The direct side is one loop in this
 *   process doing the same per frame: convert, invoke (a TFLite interpreter
 *   built as the engine's cpu backend builds its own), decode with the same
 *   code. Rounds alternate the two; each K's ratio is the median of the
 *   rounds' (frames/s through edgemuxd ÷ frames/s direct).
 *
 *   frigate_throughput_ratio  at K = 4 (target >= 0.9)
 *   frigate_p99_ms            99th percentile of one frame's round trip
 *                             at K = 4, against Frigate's default
 *                             request_timeout_ms of 200
 *
 * Usage: bench-frigate [--seconds S] [--rounds R] [--models DIR]
 */
#include <edgemux/edgemux.h>

#include "common/baseline.h"
#include "common/daemon.h"
#include "common/frame.h"
#include "common/sys.h"
#include "detect/detect.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define PROG "bench-frigate"
#define DET "object_detection_ssd_mobilenetv2_oidv4"
#define SIDE 300
#define FRAME (SIDE * SIDE * 3)
#define ROWS 20
#define MAX_K 4

static double seconds = 3.0;
static int rounds = 3;
static const char *models = EMX_MODELS_DIR;
static emx__detect_config cfg;
static emx__detector *det;
static uint8_t frame[FRAME];
static void *zctx;
static char endpoint[200];

static void make_frame(void) {
  const bench_block block = {80, 260, 120, 190, 40, 50}; /* a block to find */
  bench_draw_frame(frame, SIDE, 0, &block);
}

/* ---- the direct loop: convert, invoke, decode ---------------------------- */

/* With two CPUs or more, the device work of both sides runs on DEVICE_CPU
 * (the direct loop; edgemuxd's worker and its ZeroMQ thread, which
 * converts and decodes) and the callers on CALLER_CPU: unpinned, this VM's
 * vCPUs drift apart in speed and the ratio swings (see bench/daemon.c). */
#define DEVICE_CPU 0
#define CALLER_CPU 1
static bool pinned;

static double direct_fps(baseline *b) {
  if (pinned)
    bench_pin(0, DEVICE_CPU);
  emx_tensor in, out[2];
  bench_tensor_alloc(&in, EMX_DTYPE_FLOAT32, FRAME * 4);
  bench_tensor_alloc(&out[0], EMX_DTYPE_FLOAT32, 1917 * 4 * 4);
  bench_tensor_alloc(&out[1], EMX_DTYPE_FLOAT32, 1917 * 24 * 4);
  float rows[ROWS * 6];
  emx__errbuf err = {{0}};
  long n = 0;
  int64_t t0 = emx_now_ns(), end = t0 + (int64_t)(seconds * 1e9);
  int64_t now = t0;
  while (now < end) {
    emx__detect_fill_input(&cfg, frame, EMX_DTYPE_UINT8, FRAME, in.data,
                           EMX_DTYPE_FLOAT32, in.size, &err);
    if (baseline_run(b, &in, 1, out, 2) < 0) {
      fprintf(stderr, PROG ": direct invoke failed\n");
      exit(1);
    }
    emx__detect_tensor t[2] = {
        {out[0].data, out[0].size, EMX_DTYPE_FLOAT32, 0, 0},
        {out[1].data, out[1].size, EMX_DTYPE_FLOAT32, 0, 0}};
    emx__detector_run(det, t, 2, rows, ROWS, NULL, &err);
    n++;
    now = emx_now_ns();
  }
  free(in.data);
  free(out[0].data);
  free(out[1].data);
  if (pinned)
    bench_pin(0, CALLER_CPU);
  return (double)n / ((double)(now - t0) / 1e9);
}

/* ---- K detector clients through edgemuxd ---------------------------------- */

typedef struct client {
  pthread_t t;
  void *sock;
  int64_t end_ns;
  long frames, bad;
  bench_samples lat_ms;
} client;

static atomic_int go;

static void *client_main(void *arg) {
  client *c = arg;
  float rows[ROWS * 6 + 1];
  const char *hdr = "{\"shape\": [1, 300, 300, 3], \"dtype\": \"uint8\", "
                    "\"model_type\": \"ssd\"}";
  while (!atomic_load(&go))
    ;
  for (;;) {
    int64_t t0 = emx_now_ns();
    if (t0 >= c->end_ns)
      break;
    int n = -1;
    if (zmq_send(c->sock, hdr, strlen(hdr), ZMQ_SNDMORE) >= 0 &&
        zmq_send(c->sock, frame, FRAME, 0) >= 0)
      n = zmq_recv(c->sock, rows, sizeof rows, 0);
    if (n != ROWS * 6 * 4) {
      c->bad++;
      break; /* REQ is stuck after a lost reply */
    }
    bench_samples_add(&c->lat_ms, (double)(emx_now_ns() - t0) / 1e6);
    c->frames++;
  }
  return NULL;
}

static void *open_detector(void) {
  void *s = zmq_socket(zctx, ZMQ_REQ);
  int zero = 0, timeout = 30000;
  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
  zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
  zmq_connect(s, endpoint);
  const char *hs =
      "{\"model_request\": true, \"model_name\": \"" DET ".tflite\"}";
  char buf[256];
  int n = -1;
  if (zmq_send(s, hs, strlen(hs), 0) >= 0)
    n = zmq_recv(s, buf, sizeof buf - 1, 0);
  if (n < 0 || !strstr(buf, "\"model_available\":true")) {
    fprintf(stderr, PROG ": the handshake failed (%s)\n",
            n < 0 ? zmq_strerror(zmq_errno()) : "model not available");
    exit(1);
  }
  return s;
}

/* daemon_fps runs K clients for `seconds`; latencies go into lat. */
static double daemon_fps(client *cs, int k, bench_samples *lat, long *bad) {
  int64_t t0 = emx_now_ns();
  atomic_store(&go, 0);
  for (int i = 0; i < k; i++) {
    cs[i].end_ns = t0 + (int64_t)(seconds * 1e9);
    cs[i].frames = 0;
    cs[i].lat_ms.count = 0;
    pthread_create(&cs[i].t, NULL, client_main, &cs[i]);
  }
  atomic_store(&go, 1);
  long frames = 0;
  for (int i = 0; i < k; i++) {
    pthread_join(cs[i].t, NULL);
    frames += cs[i].frames;
    *bad += cs[i].bad;
    for (size_t j = 0; j < cs[i].lat_ms.count; j++)
      bench_samples_add(lat, cs[i].lat_ms.values[j]);
  }
  return (double)frames / ((double)(emx_now_ns() - t0) / 1e9);
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--seconds") == 0)
      seconds = atof(argv[i + 1]);
    else if (strcmp(argv[i], "--rounds") == 0)
      rounds = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--models") == 0)
      models = argv[i + 1];
  }
  if (seconds <= 0 || rounds < 1) {
    fprintf(stderr, "usage: " PROG " [--seconds S] [--rounds R] "
                    "[--models DIR]\n");
    return 2;
  }
  char model[600], dst_cfg[600];
  snprintf(model, sizeof model, "%s/%s_fp16.tflite", models, DET);
  bench_repo repo;
  if (bench_repo_make(&repo, PROG, DET, model) < 0)
    return 1;
  snprintf(dst_cfg, sizeof dst_cfg, "%s/config.json", repo.model_dir);
  /* The same settings both sides decode with. */
  emx__errbuf err = {{0}};
  const char *detection =
      "{\"input\": {\"mean\": 127.5, \"scale\": 0.00784313725490196},"
      " \"anchors\": {\"num_layers\": 6, \"min_scale\": 0.2,"
      " \"max_scale\": 0.95, \"input_height\": 300, \"input_width\": 300,"
      " \"strides\": [16, 32, 64, 128, 256, 512],"
      " \"aspect_ratios\": [1.0, 2.0, 0.5, 3.0, 0.3333],"
      " \"interpolated_scale_aspect_ratio\": 1.0,"
      " \"reduce_boxes_in_lowest_layer\": true},"
      " \"ignore_classes\": [0], \"iou_threshold\": 0.4}";
  json_t *dj = json_loads(detection, 0, NULL);
  json_t *root =
      json_pack("{s:s, s:O}", "model", "model.tflite", "detection", dj);
  if (!dj || emx__detect_config_parse(&cfg, dj, &err) < 0 ||
      emx__detector_create(&det, &cfg, &err) < 0 ||
      json_dump_file(root, dst_cfg, 0) < 0) {
    fprintf(stderr, PROG ": detection config: %s\n", err.msg);
    bench_repo_remove(&repo);
    return 1;
  }
  json_decref(root);
  json_decref(dj);
  make_frame();

  baseline b;
  if (baseline_open_report(&b, model, PROG) < 0) {
    bench_repo_remove(&repo);
    return 1;
  }
  snprintf(endpoint, sizeof endpoint, "ipc://%s/zmq_detector", repo.dir);
  const char *args[] = {"--models",         repo.dir, "--device",
                        "cpu:workers=1",    "--zmq",  endpoint,
                        "--zmq-timeout-ms", "30000",  NULL};
  bench_daemon d;
  if (bench_daemon_start(&d, PROG, args) < 0) {
    baseline_close(&b);
    bench_repo_remove(&repo);
    return 1;
  }
  pid_t worker = sysconf(_SC_NPROCESSORS_ONLN) >= 2
                     ? bench_thread_named(d.pid, "emx:cpu0")
                     : 0;
  pid_t zthread = worker > 0 ? bench_thread_named(d.pid, "emx:zmq") : 0;
  if (worker > 0 && zthread > 0) {
    pinned = true;
    bench_pin(d.pid, CALLER_CPU); /* its I/O thread */
    bench_pin(worker, DEVICE_CPU);
    bench_pin(zthread, DEVICE_CPU);
    bench_pin(0, CALLER_CPU); /* this process's clients */
    printf("pinning: edgemuxd's worker and ZeroMQ thread, and the direct "
           "loop, on CPU %d; clients on CPU %d\n",
           DEVICE_CPU, CALLER_CPU);
  }
  zctx = zmq_ctx_new();
  client cs[MAX_K] = {0};
  for (int i = 0; i < MAX_K; i++)
    cs[i].sock = open_detector();

  const int ks[] = {1, 2, 4};
  double ratio4 = 0, p99 = 0;
  long bad = 0;
  printf("%s: SSD MobileNetV2 300x300 (fp16 weights, float32 input), one "
         "CPU device, %d rounds of %.1f s per side\n",
         PROG, rounds, seconds);
  for (size_t ki = 0; ki < 3; ki++) {
    int k = ks[ki];
    double ratios[64], dfps[64], efps[64];
    bench_samples lat = {0};
    int r_n = rounds < 64 ? rounds : 64;
    for (int r = 0; r < r_n; r++) {
      dfps[r] = direct_fps(&b);
      efps[r] = daemon_fps(cs, k, &lat, &bad);
      ratios[r] = efps[r] / dfps[r];
    }
    double ratio = bench_median(ratios, (size_t)r_n);
    qsort(lat.values, lat.count, sizeof(double), bench_compare_double);
    double p50 = bench_percentile(lat.values, lat.count, 50);
    double p99k = bench_percentile(lat.values, lat.count, 99);
    printf("K=%d: direct %.1f frames/s, edgemuxd %.1f frames/s (medians), "
           "ratio %.3f; per frame p50 %.1f ms, p99 %.1f ms\n",
           k, bench_median(dfps, (size_t)r_n), bench_median(efps, (size_t)r_n),
           ratio, p50, p99k);
    if (k == 4) {
      ratio4 = ratio;
      p99 = p99k;
    }
    free(lat.values);
  }
  for (int i = 0; i < MAX_K; i++)
    zmq_close(cs[i].sock);
  zmq_ctx_term(zctx);
  int status = bench_daemon_stop(&d);
  baseline_close(&b);
  bench_repo_remove(&repo);
  emx__detector_destroy(det);
  if (bad)
    printf("%s: %ld frames got no 480-byte answer\n", PROG, bad);
  printf("frigate_throughput_ratio: %.3f (K=4; target >= 0.9)\n", ratio4);
  printf("frigate_p99_ms: %.1f (K=4; Frigate's request_timeout_ms: 200)\n",
         p99);
  return status == 0 && !bad ? 0 : 1;
}
