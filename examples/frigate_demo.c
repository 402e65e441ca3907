/*
 * examples/frigate_demo.c — Frigate's zmq detector answered by edgemuxd.
 *
 * Starts edgemuxd (the one next to this program) with --zmq on a private
 * ipc:// endpoint, the bundled SSD MobileNetV2 detector (24 Open Images
 * classes) in its repository, and ONE cpu device. Then does what each of
 * Frigate's detector processes does: a REQ socket, the model handshake by
 * file name, frames of [1, 300, 300, 3] uint8 as two frames (header JSON,
 * pixels), and 480 bytes back (20 rows of [class_id, score, ymin, xmin,
 * ymax, xmax]). Two such "cameras" share the device; the detections are
 * printed with their labels.
 *
 * The frames are a binary PPM (P6, 300x300) given with --frame, or drawn
 * here (shapes on a gradient: no real object, so the default --threshold
 * is then 0.05 to show the model's weak guesses; 0.5 for a --frame, the
 * repository's setting). Frigate applies its own filters afterwards.
 *
 * Usage: edgemux-frigate-demo [--frame FILE.ppm] [--threshold T]
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/daemon.h"
#include "common/frame.h"

#define PROG "edgemux-frigate-demo"
#define DET "object_detection_ssd_mobilenetv2_oidv4"
#define SIDE 300
#define FRAME (SIDE * SIDE * 3)
#define ROWS 20

static char labels[64][48];

static void load_labels(const char *path) {
  FILE *f = fopen(path, "r");
  for (int i = 0; f && i < 64 && fgets(labels[i], sizeof labels[i], f); i++)
    labels[i][strcspn(labels[i], "\r\n")] = 0;
  if (f)
    fclose(f);
}

static int read_ppm(const char *path, uint8_t *out) {
  FILE *f = fopen(path, "rb");
  int w = 0, h = 0, max = 0;
  int ok = f && fscanf(f, "P6 %d %d %d", &w, &h, &max) == 3 && w == SIDE &&
           h == SIDE && max == 255 && fgetc(f) != EOF &&
           fread(out, 1, FRAME, f) == FRAME;
  if (f)
    fclose(f);
  if (!ok)
    fprintf(stderr,
            PROG ": %s: need a binary PPM (P6) of 300x300, max 255 "
                 "(e.g. convert photo.jpg -resize 300x300! frame.ppm)\n",
            path);
  return ok ? 0 : -1;
}

static void draw(uint8_t *f, int seed) {
  const bench_block block = {60 + seed, 280, 100, 100 + 40 + seed, 30, 60};
  bench_draw_frame(f, SIDE, seed, &block);
}

static void *detector(void *ctx, const char *ep) {
  void *s = zmq_socket(ctx, ZMQ_REQ);
  int zero = 0, ms = 10000;
  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &ms, sizeof ms);
  zmq_setsockopt(s, ZMQ_SNDTIMEO, &ms, sizeof ms);
  zmq_connect(s, ep);
  return s;
}

int main(int argc, char **argv) {
  const char *ppm = NULL;
  double threshold = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--frame") == 0)
      ppm = argv[i + 1];
    else if (strcmp(argv[i], "--threshold") == 0)
      threshold = atof(argv[i + 1]);
  }
  static uint8_t frames[2][FRAME];
  if (ppm ? read_ppm(ppm, frames[0]) < 0 : (draw(frames[0], 0), 0))
    return 1;
  /* A drawn frame holds no real object: show the model's weak guesses. */
  if (threshold < 0)
    threshold = ppm ? 0.5 : 0.05;
  if (ppm)
    memcpy(frames[1], frames[0], FRAME);
  else
    draw(frames[1], 30);

  /* A repository with the bundled detector, its config at --threshold. */
  const char *src = EMX_MODELS_DIR "/../repo/" DET;
  bench_repo repo;
  if (bench_repo_make(&repo, PROG, DET, EMX_MODELS_DIR "/" DET "_fp16.tflite") <
      0)
    return 1;
  char path[400];
  snprintf(path, sizeof path, "%s/config.json", src);
  json_t *root = json_load_file(path, 0, NULL);
  json_t *det = json_object_get(root, "detection");
  if (!det) {
    fprintf(stderr, PROG ": %s has no \"detection\" (run scripts/setup)\n",
            path);
    bench_repo_remove(&repo);
    return 1;
  }
  json_object_set_new(det, "score_threshold", json_real(threshold));
  json_object_del(det, "labels");
  snprintf(path, sizeof path, "%s/config.json", repo.model_dir);
  json_dump_file(root, path, JSON_INDENT(2));
  json_decref(root);
  load_labels(EMX_MODELS_DIR "/object_detection_oidv4_labelmap.txt");

  char ep[200];
  snprintf(ep, sizeof ep, "ipc://%s/zmq_detector", repo.dir);
  /* A generous timeout: a demo on a busy machine should show rows, not
   * the zero rows a late frame gets (Frigate's default is 200 ms). */
  const char *args[] = {"--models",         repo.dir, "--device",
                        "cpu:workers=1",    "--zmq",  ep,
                        "--zmq-timeout-ms", "5000",   NULL};
  bench_daemon d;
  if (bench_daemon_start(&d, PROG, args) < 0) {
    bench_repo_remove(&repo);
    return 1;
  }
  printf("edgemuxd answers Frigate's zmq detector on %s\n", ep);
  void *ctx = zmq_ctx_new();
  void *cam[2] = {detector(ctx, ep), detector(ctx, ep)};
  int failures = 0;
  const char *hs =
      "{\"model_request\": true, \"model_name\": \"" DET ".tflite\"}";
  const char *hdr = "{\"shape\": [1, 300, 300, 3], \"dtype\": \"uint8\", "
                    "\"model_type\": \"ssd\"}";
  for (int c = 0; c < 2; c++) {
    char buf[256] = {0};
    int n = zmq_send(cam[c], hs, strlen(hs), 0) < 0
                ? -1
                : zmq_recv(cam[c], buf, sizeof buf - 1, 0);
    printf("camera %d handshake: %s\n", c + 1, n > 0 ? buf : "no answer");
    failures += n <= 0 || !strstr(buf, "\"model_available\":true");
  }
  for (int c = 0; c < 2; c++)
    if (zmq_send(cam[c], hdr, strlen(hdr), ZMQ_SNDMORE) < 0 ||
        zmq_send(cam[c], frames[c], FRAME, 0) < 0)
      failures++;
  for (int c = 0; c < 2; c++) {
    float rows[ROWS * 6 + 1];
    int n = zmq_recv(cam[c], rows, sizeof rows, 0);
    if (n != ROWS * 6 * 4) {
      printf("camera %d: no 480-byte answer (%d)\n", c + 1, n);
      failures++;
      continue;
    }
    int found = 0;
    printf("camera %d detections (score >= %.2f):\n", c + 1, threshold);
    for (int r = 0; r < ROWS && rows[r * 6 + 1] > 0; r++, found++) {
      int cls = (int)rows[r * 6];
      printf("  %-18s %.2f  box y %.2f..%.2f x %.2f..%.2f\n",
             cls >= 0 && cls < 64 && labels[cls][0] ? labels[cls] : "?",
             rows[r * 6 + 1], rows[r * 6 + 2], rows[r * 6 + 4], rows[r * 6 + 3],
             rows[r * 6 + 5]);
    }
    if (!found)
      printf("  none at this threshold (try --frame photo.ppm)\n");
  }
  zmq_close(cam[0]);
  zmq_close(cam[1]);
  zmq_ctx_term(ctx);
  int status = bench_daemon_stop(&d);
  bench_repo_remove(&repo);
  printf("%s: %s\n", PROG, failures || status ? "FAILED" : "ok");
  return failures || status ? 1 : 0;
}
