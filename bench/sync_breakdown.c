/*
 * bench/sync_breakdown.c — where a synchronous emx_infer's time goes.
 *
 * One thread calls emx_infer on face_detection_short_range (one CPU worker,
 * one XNNPACK thread) and splits each call with the engine's own timings:
 * queued (submit → worker start), run (start → finish: copy in, invoke,
 * copy out), device (the invoke alone) and tail (finish → emx_infer
 * returns). Prints p50/p90 per phase for a few rounds; the engine's own
 * cost is queued + tail.
 */
#include <edgemux/edgemux.h>

#include <stdio.h>
#include <stdlib.h>

#ifndef EMX_MODELS_DIR
#define EMX_MODELS_DIR ".deps/models"
#endif

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  const char *path =
      argc > 1 ? argv[1] : EMX_MODELS_DIR "/face_detection_short_range.tflite";
  if (argc > 1 && argv[1][0] == '-') {
    printf("usage: bench-sync_breakdown [MODEL.tflite]\n");
    return 0;
  }
  const char *devices[] = {"cpu:workers=1,threads=1"};
  emx_engine_config cfg;
  emx_engine_config_init(&cfg);
  cfg.devices = devices;
  cfg.device_count = 1;
  emx_engine *e;
  emx_model *m;
  if (emx_engine_create(&e, &cfg) < 0 ||
      emx_model_load_file(e, "m", path, &m) < 0) {
    fprintf(stderr, "bench-sync_breakdown: %s\n",
            emx_engine_last_error(NULL)[0] ? emx_engine_last_error(NULL)
                                           : "cannot load the model");
    return 1;
  }
  size_t nin = emx_model_input_count(m), nout = emx_model_output_count(m);
  emx_tensor *t = calloc(nin + nout, sizeof *t);
  for (size_t i = 0; i < nin + nout; i++) {
    emx_tensor_info ti;
    if (i < nin)
      emx_model_input_info(m, i, &ti);
    else
      emx_model_output_info(m, i - nin, &ti);
    t[i] = (emx_tensor){ti.dtype, calloc(1, ti.bytes), ti.bytes};
  }
  emx_request_desc d;
  emx_request_desc_init(&d);
  d.model = m;
  d.inputs = t;
  d.input_count = nin;
  d.outputs = t + nin;
  d.output_count = nout;
  enum { N = 1000, PHASES = 5 };
  static double v[PHASES][N];
  static const char *const names[PHASES] = {"total", "queued", "run", "device",
                                            "tail"};
  for (int round = 0; round < 5; round++) {
    for (int i = 0; i < N; i++) {
      emx_timings tm;
      int64_t t0 = emx_now_ns();
      if (emx_infer(e, &d, &tm) < 0) {
        fprintf(stderr, "bench-sync_breakdown: %s\n", emx_engine_last_error(e));
        return 1;
      }
      int64_t t1 = emx_now_ns();
      v[0][i] = (t1 - t0) / 1e3;
      v[1][i] = (tm.started_ns - t0) / 1e3;
      v[2][i] = (tm.finished_ns - tm.started_ns) / 1e3;
      v[3][i] = tm.device_ns / 1e3;
      v[4][i] = (t1 - tm.finished_ns) / 1e3;
    }
    printf("round %d:", round + 1);
    for (int p = 0; p < PHASES; p++) {
      qsort(v[p], N, sizeof v[p][0], cmp);
      printf(" %s p50 %.1f p90 %.1f us%s", names[p], v[p][N / 2],
             v[p][N * 9 / 10], p + 1 < PHASES ? " |" : "\n");
    }
  }
  emx_engine_destroy(e);
  for (size_t i = 0; i < nin + nout; i++)
    free(t[i].data);
  free(t);
  return 0;
}
