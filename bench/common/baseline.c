/*
 * bench/common/baseline.c — helpers shared by the benchmarks and the demos;
 * see baseline.h.
 */
#include "common/baseline.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* The direct baseline                                                       */

void baseline_close(baseline *b) {
  TfLiteInterpreterDelete(b->interpreter);
  /* The delegate must outlive the interpreter that uses it. */
  if (b->xnnpack)
    TfLiteXNNPackDelegateDelete(b->xnnpack);
  TfLiteInterpreterOptionsDelete(b->options);
  TfLiteModelDelete(b->model);
  memset(b, 0, sizeof *b);
}

int baseline_open(baseline *b, const char *path) {
  memset(b, 0, sizeof *b);
  TfLiteXNNPackDelegateOptions xnn = {.num_threads = 0, .flags = 0};
  b->model = TfLiteModelCreateFromFile(path);
  if (!b->model)
    return BASELINE_ELOAD;
  int rc = 0;
  b->options = TfLiteInterpreterOptionsCreate();
  b->xnnpack = TfLiteXNNPackDelegateCreate(&xnn);
  if (!b->options || !b->xnnpack) {
    rc = BASELINE_EDELEGATE;
    goto fail;
  }
  TfLiteInterpreterOptionsSetNumThreads(b->options, 1);
  TfLiteInterpreterOptionsAddDelegate(b->options, b->xnnpack);
  b->interpreter = TfLiteInterpreterCreate(b->model, b->options);
  if (!b->interpreter ||
      TfLiteInterpreterAllocateTensors(b->interpreter) != kTfLiteOk) {
    rc = BASELINE_EINTERPRETER;
    goto fail;
  }
  return 0;
fail:
  baseline_close(b);
  return rc;
}

int baseline_open_report(baseline *b, const char *path, const char *prog) {
  int rc = baseline_open(b, path);
  if (rc == BASELINE_ELOAD)
    fprintf(stderr, "%s: cannot load %s as a TFLite model\n", prog, path);
  else if (rc < 0)
    fprintf(stderr, "%s: cannot create an interpreter for %s\n", prog, path);
  return rc < 0 ? -1 : 0;
}

int baseline_run(baseline *b, const emx_tensor *inputs, size_t input_count,
                 emx_tensor *outputs, size_t output_count) {
  for (size_t i = 0; i < input_count; i++) {
    TfLiteTensor *t = TfLiteInterpreterGetInputTensor(b->interpreter, (int)i);
    if (TfLiteTensorCopyFromBuffer(t, inputs[i].data, inputs[i].size) !=
        kTfLiteOk)
      return BASELINE_ECOPY;
  }
  if (TfLiteInterpreterInvoke(b->interpreter) != kTfLiteOk)
    return BASELINE_EINVOKE;
  for (size_t i = 0; i < output_count; i++) {
    const TfLiteTensor *t =
        TfLiteInterpreterGetOutputTensor(b->interpreter, (int)i);
    if (TfLiteTensorCopyToBuffer(t, outputs[i].data, outputs[i].size) !=
        kTfLiteOk)
      return BASELINE_ECOPY;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Measurement helpers                                                       */

int bench_compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double bench_median(double *values, size_t count) {
  if (count == 0)
    return 0;
  qsort(values, count, sizeof *values, bench_compare_double);
  if (count % 2 == 1)
    return values[count / 2];
  return (values[count / 2 - 1] + values[count / 2]) / 2;
}

double bench_percentile(const double *sorted, size_t count, double p) {
  if (count == 0)
    return 0;
  size_t i = (size_t)(p / 100.0 * (double)(count - 1) + 0.5);
  return sorted[i];
}

int bench_samples_add(bench_samples *s, double value) {
  if (s->count == s->capacity) {
    size_t capacity = s->capacity ? 2 * s->capacity : 4096;
    double *values = realloc(s->values, capacity * sizeof *values);
    if (!values)
      return -1;
    s->values = values;
    s->capacity = capacity;
  }
  s->values[s->count++] = value;
  return 0;
}

void bench_sleep_ns(int64_t ns) {
  struct timespec left = {ns / 1000000000, ns % 1000000000};
  while (nanosleep(&left, &left) < 0 && errno == EINTR) {
  }
}

/* ------------------------------------------------------------------------ */
/* Tensors                                                                   */

int bench_tensor_alloc(emx_tensor *t, emx_dtype dtype, size_t size) {
  t->dtype = dtype;
  t->size = size;
  t->data = calloc(1, size ? size : 1);
  return t->data ? 0 : -1;
}

void bench_fill_random(emx_tensor *t, unsigned *seed) {
  if (t->dtype == EMX_DTYPE_FLOAT32) {
    float *f = t->data;
    for (size_t i = 0; i < t->size / sizeof *f; i++)
      f[i] = (float)rand_r(seed) / (float)RAND_MAX * 2.0f - 1.0f;
  } else {
    unsigned char *p = t->data;
    for (size_t i = 0; i < t->size; i++)
      p[i] = (unsigned char)rand_r(seed);
  }
}
