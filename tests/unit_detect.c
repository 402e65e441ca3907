/*
 * unit_detect.c — src/detect/ against an independent NumPy reference
 * (tests/detect_reference.py) on the real SSD MobileNetV2 detector's real
 * outputs (scripts/setup fetches it), plus the TFLite_Detection_PostProcess
 * mapping on synthetic tensors and the config's and the run's errors.
 *
 * The frames are drawn here (the repository has no photographs): sky and
 * ground with shapes a detector may take for objects, a stick figure, a
 * checkerboard with discs, and seeded noise. Thresholds are lowered in most
 * variants so that hundreds of candidates reach the suppression.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "detect/detect.h"
#include "support.h"

#define MODEL_SSD                                                              \
  EMX_MODELS_DIR "/object_detection_ssd_mobilenetv2_oidv4_fp16.tflite"
#define SSD_CONFIG                                                             \
  EMX_REPO_DIR "/object_detection_ssd_mobilenetv2_oidv4/config.json"
#define REFERENCE EMX_SOURCE_DIR "/tests/detect_reference.py"
#define PYTHON "/usr/bin/python3"

#define SIDE 300
#define N_ANCHORS 1917
#define N_CLASSES 24
#define N_FRAMES 4

static char tmp[64]; /* this run's scratch folder */

static const char *path_in_tmp(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "%s/%s", tmp, name);
  return buf;
}

/* reference runs the NumPy reference with the given arguments (already
 * quoted); asserts it succeeded. */
static void reference(const char *fmt, ...) {
  char args[1024], cmd[1400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  snprintf(cmd, sizeof cmd, "%s '%s' %s", PYTHON, REFERENCE, args);
  int st = system(cmd);
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
    fail_msg("the reference failed: %s", cmd);
}

static void write_bytes(const char *path, const void *data, size_t size) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, size, f), size);
  assert_int_equal(fclose(f), 0);
}

static json_t *repo_detection(void) {
  json_error_t jerr;
  json_t *root = json_load_file(SSD_CONFIG, 0, &jerr);
  if (!root)
    fail_msg("%s: %s (run scripts/setup)", SSD_CONFIG, jerr.text);
  json_t *det = json_deep_copy(json_object_get(root, "detection"));
  json_decref(root);
  assert_non_null(det);
  return det;
}

static emx__detector *detector_from(const json_t *det) {
  emx__detect_config cfg;
  emx__errbuf err = {{0}};
  emx__detector *d = NULL;
  if (emx__detect_config_parse(&cfg, det, &err) < 0 ||
      emx__detector_create(&d, &cfg, &err) < 0)
    fail_msg("detection config: %s", err.msg);
  return d;
}

/* ---- frames ------------------------------------------------------------- */

static void put(uint8_t *px, int y, int x, uint8_t r, uint8_t g, uint8_t b) {
  if (y < 0 || x < 0 || y >= SIDE || x >= SIDE)
    return;
  uint8_t *p = px + 3 * (y * SIDE + x);
  p[0] = r, p[1] = g, p[2] = b;
}

static void rect(uint8_t *px, int y0, int x0, int y1, int x1, uint8_t r,
                 uint8_t g, uint8_t b) {
  for (int y = y0; y < y1; y++)
    for (int x = x0; x < x1; x++)
      put(px, y, x, r, g, b);
}

static void disc(uint8_t *px, int cy, int cx, int rad, uint8_t r, uint8_t g,
                 uint8_t b) {
  for (int y = cy - rad; y <= cy + rad; y++)
    for (int x = cx - rad; x <= cx + rad; x++)
      if ((y - cy) * (y - cy) + (x - cx) * (x - cx) <= rad * rad)
        put(px, y, x, r, g, b);
}

/* draw_frame makes frame `which` (deterministic). */
static void draw_frame(uint8_t *px, int which) {
  switch (which) {
  case 0: /* a street: sky, road, a "car" with wheels, a "box" */
    for (int y = 0; y < SIDE; y++)
      rect(px, y, 0, y + 1, SIDE, (uint8_t)(120 + y / 5),
           (uint8_t)(170 + y / 8), 235);
    rect(px, 190, 0, SIDE, SIDE, 90, 90, 95);
    rect(px, 140, 40, 200, 200, 180, 20, 30);
    rect(px, 115, 80, 145, 165, 60, 80, 110);
    disc(px, 200, 75, 18, 20, 20, 20);
    disc(px, 200, 170, 18, 20, 20, 20);
    rect(px, 150, 225, 210, 285, 160, 120, 70);
    break;
  case 1: /* a stick figure on a wall */
    rect(px, 0, 0, SIDE, SIDE, 200, 190, 170);
    disc(px, 60, 150, 28, 230, 190, 160);
    rect(px, 90, 115, 190, 185, 40, 60, 160);
    rect(px, 95, 85, 160, 112, 40, 60, 160);
    rect(px, 95, 188, 160, 215, 40, 60, 160);
    rect(px, 190, 120, 290, 145, 30, 30, 40);
    rect(px, 190, 155, 290, 180, 30, 30, 40);
    break;
  case 2: /* a checkerboard with discs */
    for (int y = 0; y < SIDE; y++)
      for (int x = 0; x < SIDE; x++) {
        uint8_t v = ((y / 25) + (x / 25)) % 2 ? 230 : 25;
        put(px, y, x, v, v, v);
      }
    disc(px, 80, 80, 40, 200, 40, 40);
    disc(px, 200, 210, 60, 40, 180, 60);
    break;
  default: { /* seeded noise */
    uint64_t st = 0x5eed + (uint64_t)which;
    for (size_t i = 0; i < (size_t)SIDE * SIDE * 3; i += 8) {
      uint64_t r = prng_next(&st);
      memcpy(px + i, &r, 8);
    }
  }
  }
}

/* ---- the real model's outputs -------------------------------------------- */

typedef struct outputs {
  float enc[N_ANCHORS * 4];            /* raw box encodings */
  float logits[N_ANCHORS * N_CLASSES]; /* raw class scores */
} outputs;

static outputs *frames_out; /* N_FRAMES, filled once (invokes are slow) */

static int setup_model(void **state) {
  (void)state;
  snprintf(tmp, sizeof tmp, "/tmp/emxt-detect-XXXXXX");
  if (!mkdtemp(tmp))
    return -1;
  remove_at_exit(tmp);
  return 0;
}

/* run_frames converts every frame with emx__detect_fill_input (checked
 * against the reference) and invokes the model directly, once. */
static void run_frames(void) {
  if (frames_out)
    return;
  json_t *det = repo_detection();
  emx__detect_config cfg;
  emx__errbuf err = {{0}};
  assert_int_equal(emx__detect_config_parse(&cfg, det, &err), 0);
  char cfg_path[128], frame_path[128], ref_path[128];
  path_in_tmp(cfg_path, sizeof cfg_path, "repo.json");
  assert_int_equal(json_dump_file(det, cfg_path, 0), 0);
  json_decref(det);

  frames_out = calloc(N_FRAMES, sizeof *frames_out);
  assert_non_null(frames_out);
  oracle *o = oracle_create(MODEL_SSD);
  size_t n_px = (size_t)SIDE * SIDE * 3;
  uint8_t *px = calloc(1, n_px);
  float *in = malloc(n_px * sizeof *in);
  size_t ref_size = 0;
  for (int f = 0; f < N_FRAMES; f++) {
    draw_frame(px, f);
    assert_int_equal(emx__detect_fill_input(&cfg, px, EMX_DTYPE_UINT8, n_px, in,
                                            EMX_DTYPE_FLOAT32,
                                            n_px * sizeof *in, &err),
                     0);
    write_bytes(path_in_tmp(frame_path, sizeof frame_path, "frame.u8"), px,
                n_px);
    path_in_tmp(ref_path, sizeof ref_path, "input.f32");
    reference("input '%s' '%s' '%s'", cfg_path, frame_path, ref_path);
    float *ref = read_file(ref_path, &ref_size);
    assert_int_equal(ref_size, n_px * sizeof *in);
    for (size_t i = 0; i < n_px; i++)
      if (fabsf(ref[i] - in[i]) > 1e-6f)
        fail_msg("frame %d input[%zu]: C %.9g, reference %.9g", f, i, in[i],
                 ref[i]);
    free(ref);

    emx_tensor tin = {EMX_DTYPE_FLOAT32, in, n_px * sizeof *in};
    emx_tensor tout[2] = {
        {EMX_DTYPE_FLOAT32, frames_out[f].enc, sizeof frames_out[f].enc},
        {EMX_DTYPE_FLOAT32, frames_out[f].logits, sizeof frames_out[f].logits}};
    oracle_run(o, &tin, 1, tout, 2);
  }
  free(px);
  free(in);
  oracle_destroy(o);
}

/* ---- anchors ------------------------------------------------------------- */

static void anchors_match_reference(void **state) {
  (void)state;
  json_t *det = repo_detection();
  emx__detector *d = detector_from(det);
  char cfg_path[128], out_path[128];
  path_in_tmp(cfg_path, sizeof cfg_path, "anchors.json");
  assert_int_equal(json_dump_file(det, cfg_path, 0), 0);
  json_decref(det);
  reference("anchors '%s' '%s'", cfg_path,
            path_in_tmp(out_path, sizeof out_path, "anchors.txt"));

  size_t n = 0;
  const emx__anchor *a = emx__detector_anchors(d, &n);
  /* 19x19 cells x 3 + (10x10 + 5x5 + 3x3 + 2x2 + 1x1) cells x 6 */
  assert_int_equal(n, N_ANCHORS);
  FILE *f = fopen(out_path, "r");
  assert_non_null(f);
  size_t i = 0;
  double y, x, h, w;
  while (fscanf(f, "%lf %lf %lf %lf", &y, &x, &h, &w) == 4) {
    assert_true(i < n);
    if (fabs(a[i].y_center - y) > 1e-6 || fabs(a[i].x_center - x) > 1e-6 ||
        fabs(a[i].h - h) > 1e-6 || fabs(a[i].w - w) > 1e-6)
      fail_msg("anchor %zu: C (%g %g %g %g), reference (%g %g %g %g)", i,
               a[i].y_center, a[i].x_center, a[i].h, a[i].w, y, x, h, w);
    i++;
  }
  fclose(f);
  assert_int_equal(i, n);
  emx__detector_destroy(d);
}

/* ---- decoding and NMS against the reference ------------------------------ */

typedef struct variant {
  const char *name;
  const char *overrides; /* JSON merged over the repository's detection */
} variant;

static const variant variants[] = {
    {"repository", "{}"},
    {"per_class_low", "{\"score_threshold\": 0.05}"},
    {"per_class_few",
     "{\"score_threshold\": 0.02, \"max_per_class\": 3, \"iou_threshold\": "
     "0.3, \"max_detections\": 100, \"clip_boxes\": false}"},
    {"class_agnostic",
     "{\"score_threshold\": 0.05, \"nms\": \"class_agnostic\", "
     "\"max_detections\": 50, \"label_offset\": -1}"},
    {"raw_logits",
     "{\"score\": \"raw\", \"score_threshold\": -2.5, \"iou_threshold\": 0.6, "
     "\"ignore_classes\": [0, 4]}"},
};

/* label_of names model class `cls` from the repository's label map (for
 * the log only: what the detector took each drawn frame for). */
static const char *label_of(int cls) {
  static char names[64][32];
  static int n = -1;
  if (n < 0) {
    n = 0;
    FILE *f = fopen(EMX_REPO_DIR "/object_detection_ssd_mobilenetv2_oidv4/"
                                 "labels.txt",
                    "r");
    while (f && n < 64 && fgets(names[n], sizeof names[n], f))
      names[n][strcspn(names[n], "\n")] = 0, n++;
    if (f)
      fclose(f);
  }
  return cls >= 0 && cls < n ? names[cls] : "?";
}

typedef struct ref_row {
  int box, cls;
  double score, b[4];
} ref_row;

static void compare_frame(int f, const variant *v, size_t *cand_total,
                          size_t *kept_total) {
  json_error_t jerr;
  json_t *det = repo_detection();
  json_t *over = json_loads(v->overrides, 0, &jerr);
  assert_non_null(over);
  assert_int_equal(json_object_update(det, over), 0);
  json_decref(over);
  emx__detector *d = detector_from(det);
  const emx__detect_config *cfg = emx__detector_config(d);

  char cfg_path[128], enc_path[128], log_path[128], out_path[128];
  path_in_tmp(cfg_path, sizeof cfg_path, "variant.json");
  assert_int_equal(json_dump_file(det, cfg_path, 0), 0);
  json_decref(det);
  write_bytes(path_in_tmp(enc_path, sizeof enc_path, "enc.f32"),
              frames_out[f].enc, sizeof frames_out[f].enc);
  write_bytes(path_in_tmp(log_path, sizeof log_path, "logits.f32"),
              frames_out[f].logits, sizeof frames_out[f].logits);
  reference("detect '%s' '%s' '%s' '%s'", cfg_path, enc_path, log_path,
            path_in_tmp(out_path, sizeof out_path, "rows.txt"));

  emx__detect_tensor outs[2] = {
      {frames_out[f].enc, sizeof frames_out[f].enc, EMX_DTYPE_FLOAT32, 0, 0},
      {frames_out[f].logits, sizeof frames_out[f].logits, EMX_DTYPE_FLOAT32, 0,
       0}};
  size_t cap = (size_t)cfg->max_detections;
  float *rows = malloc(cap * EMX__DETECT_ROW * sizeof *rows);
  int32_t *src = malloc(cap * sizeof *src);
  emx__errbuf err = {{0}};
  int n = emx__detector_run(d, outs, 2, rows, cap, src, &err);
  if (n < 0)
    fail_msg("frame %d, %s: %s", f, v->name, err.msg);

  FILE *fp = fopen(out_path, "r");
  assert_non_null(fp);
  size_t cands = 0;
  assert_int_equal(fscanf(fp, "candidates %zu", &cands), 1);
  int k = 0;
  ref_row r;
  while (fscanf(fp, "%d %d %lf %lf %lf %lf %lf", &r.box, &r.cls, &r.score,
                &r.b[0], &r.b[1], &r.b[2], &r.b[3]) == 7) {
    if (k >= n)
      fail_msg("frame %d, %s: the reference keeps more than C's %d rows", f,
               v->name, n);
    const float *row = rows + (size_t)k * EMX__DETECT_ROW;
    if (src[k] != r.box || (int)row[0] != r.cls)
      fail_msg("frame %d, %s, row %d: C box %d class %g, reference box %d "
               "class %d",
               f, v->name, k, src[k], row[0], r.box, r.cls);
    if (fabs(row[1] - r.score) > 1e-5)
      fail_msg("frame %d, %s, row %d: score C %.9g, reference %.9g", f, v->name,
               k, row[1], r.score);
    for (int j = 0; j < 4; j++)
      if (fabs(row[2 + j] - r.b[j]) > 1e-5)
        fail_msg("frame %d, %s, row %d: coordinate %d C %.9g, reference "
                 "%.9g",
                 f, v->name, k, j, row[2 + j], r.b[j]);
    k++;
  }
  fclose(fp);
  if (k != n)
    fail_msg("frame %d, %s: C keeps %d rows, the reference %d", f, v->name, n,
             k);
  /* Frigate's contract: zero rows after the last detection. */
  for (size_t i = (size_t)n * EMX__DETECT_ROW; i < cap * EMX__DETECT_ROW; i++)
    assert_true(rows[i] == 0.0f);
  for (size_t i = (size_t)n; i < cap; i++)
    assert_int_equal(src[i], -1);
  for (int i = 1; i < n; i++)
    assert_true(rows[(size_t)i * EMX__DETECT_ROW + 1] <=
                rows[(size_t)(i - 1) * EMX__DETECT_ROW + 1]);
  if (n > 0 && strcmp(v->name, "class_agnostic") == 0)
    print_message("frame %d: best %s %.3f at (%.2f %.2f %.2f %.2f)\n", f,
                  label_of((int)rows[0] + 1), rows[1], rows[2], rows[3],
                  rows[4], rows[5]);
  *cand_total += cands;
  *kept_total += (size_t)n;
  free(rows);
  free(src);
  emx__detector_destroy(d);
}

static void ssd_matches_reference(void **state) {
  (void)state;
  run_frames();
  for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
    size_t cands = 0, kept = 0;
    for (int f = 0; f < N_FRAMES; f++)
      compare_frame(f, &variants[v], &cands, &kept);
    print_message("%-15s %5zu candidates -> %3zu rows over %d frames\n",
                  variants[v].name, cands, kept, N_FRAMES);
    /* Each lowered-threshold variant must exercise the suppression: many
     * more candidates than rows, and rows on every frame. */
    if (v > 0) {
      assert_true(kept >= (size_t)N_FRAMES);
      assert_true(cands > 2 * kept);
    }
  }
}

/* ---- one detector, many threads ------------------------------------------ */

/* A front door shares one detector per model between its threads: runs at
 * the same time must not disturb each other (TSan watches this one). */
typedef struct shared_run {
  const emx__detector *d; /* the shared detector */
  const float *want;      /* rows of a lone run */
  int want_n;             /* their count */
  int bad;                /* runs that differed */
} shared_run;

static void *run_many(void *arg) {
  shared_run *s = arg;
  emx__detect_tensor outs[2] = {
      {frames_out[0].enc, sizeof frames_out[0].enc, EMX_DTYPE_FLOAT32, 0, 0},
      {frames_out[0].logits, sizeof frames_out[0].logits, EMX_DTYPE_FLOAT32, 0,
       0}};
  float rows[20 * EMX__DETECT_ROW];
  emx__errbuf err;
  for (int i = 0; i < 8; i++) {
    int n = emx__detector_run(s->d, outs, 2, rows, 20, NULL, &err);
    if (n != s->want_n || memcmp(rows, s->want, sizeof rows) != 0)
      s->bad++;
  }
  return NULL;
}

static void ssd_concurrent_runs(void **state) {
  (void)state;
  run_frames();
  json_error_t jerr;
  json_t *det = repo_detection();
  json_t *over = json_loads("{\"score_threshold\": 0.05}", 0, &jerr);
  json_object_update(det, over);
  json_decref(over);
  emx__detector *d = detector_from(det);
  json_decref(det);
  emx__detect_tensor outs[2] = {
      {frames_out[0].enc, sizeof frames_out[0].enc, EMX_DTYPE_FLOAT32, 0, 0},
      {frames_out[0].logits, sizeof frames_out[0].logits, EMX_DTYPE_FLOAT32, 0,
       0}};
  float want[20 * EMX__DETECT_ROW];
  emx__errbuf err;
  int n = emx__detector_run(d, outs, 2, want, 20, NULL, &err);
  assert_true(n > 0);
  enum { THREADS = 4 };
  pthread_t th[THREADS];
  shared_run s[THREADS];
  for (int i = 0; i < THREADS; i++) {
    s[i] = (shared_run){d, want, n, 0};
    assert_int_equal(pthread_create(&th[i], NULL, run_many, &s[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(s[i].bad, 0);
  }
  emx__detector_destroy(d);
}

/* ---- TFLite_Detection_PostProcess --------------------------------------- */

static void postprocess_mapping(void **state) {
  (void)state;
  json_error_t jerr;
  json_t *det = json_loads("{\"type\": \"postprocess\", \"score_threshold\": "
                           "0.4, \"max_detections\": 3, \"label_offset\": 1}",
                           0, &jerr);
  emx__detector *d = detector_from(det);
  json_decref(det);
  enum { N = 6 };
  float boxes[N][4] = {{0.1f, 0.2f, 0.3f, 0.4f},  {-0.2f, 0.5f, 0.6f, 1.3f},
                       {0.0f, 0.0f, 1.0f, 1.0f},  {0.5f, 0.5f, 0.7f, 0.9f},
                       {0.2f, 0.2f, 0.25f, 0.3f}, {0.3f, 0.3f, 0.4f, 0.4f}};
  float classes[N] = {3, 0, 7, 2, 5, 9};
  /* Out of order on purpose; the fifth is under the threshold and the sixth
   * past count. */
  float scores[N] = {0.5f, 0.9f, 0.45f, 0.7f, 0.3f, 0.99f};
  float count = 5;
  emx__detect_tensor outs[4] = {
      {boxes, sizeof boxes, EMX_DTYPE_FLOAT32, 0, 0},
      {classes, sizeof classes, EMX_DTYPE_FLOAT32, 0, 0},
      {scores, sizeof scores, EMX_DTYPE_FLOAT32, 0, 0},
      {&count, sizeof count, EMX_DTYPE_FLOAT32, 0, 0}};
  float rows[4][EMX__DETECT_ROW];
  memset(rows, 0x7f, sizeof rows);
  int32_t src[4];
  emx__errbuf err = {{0}};
  assert_int_equal(emx__detector_run(d, outs, 4, &rows[0][0], 4, src, &err), 3);
  /* Best three of the first five over 0.4: 0.9 (box 1, clipped), 0.7 (box
   * 3), 0.5 (box 0); classes shifted by label_offset. */
  const float want[3][EMX__DETECT_ROW] = {{1, 0.9f, 0.0f, 0.5f, 0.6f, 1.0f},
                                          {3, 0.7f, 0.5f, 0.5f, 0.7f, 0.9f},
                                          {4, 0.5f, 0.1f, 0.2f, 0.3f, 0.4f}};
  const int32_t want_src[3] = {1, 3, 0};
  for (int r = 0; r < 3; r++) {
    assert_int_equal(src[r], want_src[r]);
    for (int j = 0; j < EMX__DETECT_ROW; j++)
      assert_float_equal(rows[r][j], want[r][j], 0);
  }
  /* max_detections is 3: the fourth row of the caller's room is untouched. */
  assert_true(rows[3][0] != 0.0f);

  /* A count past N is capped (all six, best three kept); a negative count
   * means nothing. */
  count = 1000;
  assert_int_equal(emx__detector_run(d, outs, 4, &rows[0][0], 4, src, &err), 3);
  assert_int_equal(src[0], 5);
  assert_float_equal(rows[0][0], 10, 0);
  count = -3;
  assert_int_equal(emx__detector_run(d, outs, 4, &rows[0][0], 4, src, &err), 0);
  for (int r = 0; r < 3; r++) {
    assert_int_equal(src[r], -1);
    for (int j = 0; j < EMX__DETECT_ROW; j++)
      assert_true(rows[r][j] == 0.0f);
  }

  /* Too few outputs, a wrong classes size, too little room. */
  assert_int_equal(emx__detector_run(d, outs, 3, &rows[0][0], 4, NULL, &err),
                   EMX_ECOUNT);
  assert_true(contains(err.msg, "output 3"));
  outs[1].size = sizeof classes - sizeof(float);
  assert_int_equal(emx__detector_run(d, outs, 4, &rows[0][0], 4, NULL, &err),
                   EMX_ESIZE);
  assert_true(contains(err.msg, "classes"));
  outs[1].size = sizeof classes;
  assert_int_equal(emx__detector_run(d, outs, 4, &rows[0][0], 2, NULL, &err),
                   EMX_EINVAL);
  emx__detector_destroy(d);
}

/* Quantized outputs are dequantized with their scale and zero point: a
 * uint8 copy of the real model's outputs decodes like its float form. */
static void ssd_quantized_outputs(void **state) {
  (void)state;
  run_frames();
  json_error_t jerr;
  json_t *det = repo_detection();
  json_t *over = json_loads("{\"score_threshold\": 0.05}", 0, &jerr);
  json_object_update(det, over);
  json_decref(over);
  emx__detector *d = detector_from(det);
  json_decref(det);

  /* Quantize to the grid the uint8 values can hold exactly, so the float
   * run sees the very same values. */
  const float sc = 0.125f;
  const int32_t zp = 128;
  static uint8_t qe[N_ANCHORS * 4], ql[N_ANCHORS * N_CLASSES];
  static float fe[N_ANCHORS * 4], fl[N_ANCHORS * N_CLASSES];
  for (size_t i = 0; i < N_ANCHORS * 4; i++) {
    long q = lrintf(frames_out[0].enc[i] / sc) + zp;
    qe[i] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
    fe[i] = sc * ((int32_t)qe[i] - zp);
  }
  for (size_t i = 0; i < N_ANCHORS * N_CLASSES; i++) {
    long q = lrintf(frames_out[0].logits[i] / sc) + zp;
    ql[i] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
    fl[i] = sc * ((int32_t)ql[i] - zp);
  }
  emx__detect_tensor qo[2] = {{qe, sizeof qe, EMX_DTYPE_UINT8, sc, zp},
                              {ql, sizeof ql, EMX_DTYPE_UINT8, sc, zp}};
  emx__detect_tensor fo[2] = {{fe, sizeof fe, EMX_DTYPE_FLOAT32, 0, 0},
                              {fl, sizeof fl, EMX_DTYPE_FLOAT32, 0, 0}};
  float qr[20][EMX__DETECT_ROW], fr[20][EMX__DETECT_ROW];
  emx__errbuf err = {{0}};
  int nq = emx__detector_run(d, qo, 2, &qr[0][0], 20, NULL, &err);
  int nf = emx__detector_run(d, fo, 2, &fr[0][0], 20, NULL, &err);
  assert_true(nf > 0);
  assert_int_equal(nq, nf);
  assert_memory_equal(qr, fr, sizeof qr);
  emx__detector_destroy(d);
}

/* ---- errors -------------------------------------------------------------- */

static void config_errors_name_the_key(void **state) {
  (void)state;
  static const struct {
    const char *json;
    const char *mention;
  } cases[] = {
      {"{\"type\": \"yolo\"}", "detection.type"},
      {"{\"type\": \"postprocess\", \"iou_treshold\": 0.5}",
       "detection.iou_treshold"},
      {"{\"type\": \"ssd\"}", "detection.anchors"},
      {"{\"anchors\": {\"strides\": [8, 16], \"num_layers\": 3, "
       "\"input_height\": 64, \"input_width\": 64, \"aspect_ratios\": [1]}}",
       "num_layers is 3"},
      {"{\"anchors\": {\"strides\": [8, \"x\"]}}", "detection.anchors.strides"},
      {"{\"anchors\": {\"strides\": [8], \"sizes\": 3}}",
       "detection.anchors.sizes"},
      {"{\"type\": \"postprocess\", \"input\": {\"mean\": [1, 2], \"scale\": "
       "[1, 2, 3]}}",
       "detection.input"},
      {"{\"type\": \"postprocess\", \"max_detections\": 0}",
       "detection.max_detections"},
      {"{\"type\": \"postprocess\", \"labels\": \"../../etc/passwd\"}",
       "detection.labels"},
      {"{\"type\": \"postprocess\", \"outputs\": {\"boxes\": 1}}",
       "two outputs at position 1"},
      {"[]", "detection: must be an object"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_error_t jerr;
    json_t *j = json_loads(cases[i].json, 0, &jerr);
    assert_non_null(j);
    emx__detect_config cfg;
    emx__errbuf err = {{0}};
    emx__detector *d = NULL;
    int rc = emx__detect_config_parse(&cfg, j, &err);
    if (rc == 0)
      rc = emx__detector_create(&d, &cfg, &err);
    json_decref(j);
    emx__detector_destroy(d);
    if (rc != EMX_EINVAL || !contains(err.msg, cases[i].mention))
      fail_msg("%s: rc %d, message \"%s\" (wanted EMX_EINVAL naming \"%s\")",
               cases[i].json, rc, err.msg, cases[i].mention);
  }
}

static void run_errors_name_the_tensor(void **state) {
  (void)state;
  json_t *det = repo_detection();
  emx__detector *d = detector_from(det);
  json_decref(det);
  static float enc[N_ANCHORS * 4], logits[N_ANCHORS * N_CLASSES];
  emx__detect_tensor outs[2] = {
      {enc, sizeof enc - 16, EMX_DTYPE_FLOAT32, 0, 0},
      {logits, sizeof logits, EMX_DTYPE_FLOAT32, 0, 0}};
  float rows[20 * EMX__DETECT_ROW];
  emx__errbuf err = {{0}};
  assert_int_equal(emx__detector_run(d, outs, 2, rows, 20, NULL, &err),
                   EMX_ESIZE);
  assert_true(contains(err.msg, "box encodings"));
  outs[0].size = sizeof enc;
  outs[1].size = sizeof logits - sizeof(float);
  assert_int_equal(emx__detector_run(d, outs, 2, rows, 20, NULL, &err),
                   EMX_ESIZE);
  assert_true(contains(err.msg, "class scores"));
  outs[1].size = sizeof logits;
  outs[1].dtype = EMX_DTYPE_INT32;
  assert_int_equal(emx__detector_run(d, outs, 2, rows, 20, NULL, &err),
                   EMX_EDTYPE);
  assert_true(contains(err.msg, "class scores"));
  outs[1].dtype = EMX_DTYPE_FLOAT32;
  assert_int_equal(emx__detector_run(d, outs, 1, rows, 20, NULL, &err),
                   EMX_ECOUNT);
  /* All-zero outputs: every score is sigmoid(0) = 0.5, over the repository's
   * 0.5 threshold: the run works and fills all 20 rows. */
  assert_int_equal(emx__detector_run(d, outs, 2, rows, 20, NULL, &err), 20);

  /* The frame must fit the input. */
  const emx__detect_config *cfg = emx__detector_config(d);
  uint8_t px[12] = {0, 255, 128};
  float in[12];
  assert_int_equal(emx__detect_fill_input(cfg, px, EMX_DTYPE_UINT8, 12, in,
                                          EMX_DTYPE_FLOAT32, 11 * 4, &err),
                   EMX_ESIZE);
  assert_true(contains(err.msg, "12 bytes"));
  assert_int_equal(emx__detect_fill_input(cfg, px, EMX_DTYPE_INT32, 12, in,
                                          EMX_DTYPE_FLOAT32, 12 * 4, &err),
                   EMX_EDTYPE);
  assert_int_equal(emx__detect_fill_input(cfg, px, EMX_DTYPE_UINT8, 12, in,
                                          EMX_DTYPE_FLOAT32, 12 * 4, &err),
                   0);
  assert_float_equal(in[0], -1.0f, 1e-6);
  assert_float_equal(in[1], 1.0f, 1e-6);
  /* Quantized inputs: passed through (uint8) or shifted (int8). */
  uint8_t q[12];
  assert_int_equal(emx__detect_fill_input(cfg, px, EMX_DTYPE_UINT8, 12, q,
                                          EMX_DTYPE_UINT8, 12, &err),
                   0);
  assert_memory_equal(q, px, 12);
  assert_int_equal(emx__detect_fill_input(cfg, px, EMX_DTYPE_UINT8, 12, q,
                                          EMX_DTYPE_INT8, 12, &err),
                   0);
  assert_int_equal((int8_t)q[1], 127);
  assert_int_equal((int8_t)q[0], -128);
  emx__detector_destroy(d);
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(anchors_match_reference),
      cmocka_unit_test(ssd_matches_reference),
      cmocka_unit_test(ssd_quantized_outputs),
      cmocka_unit_test(ssd_concurrent_runs),
      cmocka_unit_test(postprocess_mapping),
      cmocka_unit_test(config_errors_name_the_key),
      cmocka_unit_test(run_errors_name_the_tensor),
  };
  int rc = cmocka_run_group_tests(tests, setup_model, NULL);
  free(frames_out);
  return rc;
}
