/*
 * bench/common/baseline.h — helpers shared by the benchmarks (bench/) and
 * the demos (examples/): the direct TFLite interpreter baseline (the
 * benchmarks' reference, the demos' oracle), and small measurement and
 * tensor helpers.
 */
#ifndef EMX_BENCH_COMMON_BASELINE_H
#define EMX_BENCH_COMMON_BASELINE_H

#include <edgemux/edgemux.h>
#include <tensorflow/lite/c/c_api.h>

#include <stddef.h>
#include <stdint.h>

/* The XNNPACK delegate is exported by libtensorflowlite_c, but its header is
 * not part of the C API; this is its TFLite 2.9 layout. */
typedef struct {
  int32_t num_threads; /* 0: no thread pool, run on the calling thread */
  uint32_t flags;      /* TFLITE_XNNPACK_DELEGATE_FLAG_* */
} TfLiteXNNPackDelegateOptions;
TfLiteDelegate *
TfLiteXNNPackDelegateCreate(const TfLiteXNNPackDelegateOptions *options);
void TfLiteXNNPackDelegateDelete(TfLiteDelegate *delegate);

/* baseline is a bare interpreter configured like the engine's CPU backend
 * (XNNPACK without a thread pool, one interpreter thread), so that its
 * outputs match the engine's bit for bit. */
typedef struct baseline {
  TfLiteModel *model;
  TfLiteInterpreterOptions *options;
  TfLiteDelegate *xnnpack;
  TfLiteInterpreter *interpreter;
} baseline;

/* What baseline_open and baseline_run return on failure. */
enum {
  BASELINE_ELOAD = -1,        /* the file is not a TFLite model */
  BASELINE_EDELEGATE = -2,    /* no interpreter options or XNNPACK delegate */
  BASELINE_EINTERPRETER = -3, /* no interpreter, or tensors not allocated */
  BASELINE_ECOPY = -4,        /* a tensor's size differs from the model's */
  BASELINE_EINVOKE = -5,      /* the interpreter failed */
};

/* baseline_open loads the model at path and prepares an interpreter; 0 or a
 * BASELINE_E* code (b is then closed). Prints nothing. */
int baseline_open(baseline *b, const char *path);

/* baseline_open_report is baseline_open that says on stderr, prefixed with
 * prog, why it failed; 0 or -1. */
int baseline_open_report(baseline *b, const char *path, const char *prog);

/* baseline_run is the baseline's unit of work — what an engine worker does
 * for one request: copy the inputs in, invoke, copy the outputs out. 0,
 * BASELINE_ECOPY or BASELINE_EINVOKE. */
int baseline_run(baseline *b, const emx_tensor *inputs, size_t input_count,
                 emx_tensor *outputs, size_t output_count);

/* baseline_close releases b (zeroed or opened); it may be called again. */
void baseline_close(baseline *b);

/* bench_compare_double is a qsort comparison of doubles, ascending. */
int bench_compare_double(const void *a, const void *b);

/* bench_median sorts values in place. */
double bench_median(double *values, size_t count);

/* bench_percentile returns the p-th percentile (0..100) of sorted values. */
double bench_percentile(const double *sorted, size_t count, double p);

/* bench_samples is a growable array of per-call latencies in nanoseconds;
 * zero-initialise it, free(values) when done. */
typedef struct bench_samples {
  double *values;
  size_t count;
  size_t capacity;
} bench_samples;

/* bench_samples_add appends value; 0, or -1 when out of memory. */
int bench_samples_add(bench_samples *s, double value);

/* bench_sleep_ns sleeps ns nanoseconds, through signals. */
void bench_sleep_ns(int64_t ns);

/* bench_tensor_alloc sets t up as a zeroed heap tensor; 0, or -1 when out of
 * memory. */
int bench_tensor_alloc(emx_tensor *t, emx_dtype dtype, size_t size);

/* bench_fill_random fills a tensor with values a real input could hold:
 * floats in [-1, 1] (the model's normalised pixels), random bytes for other
 * types; *seed advances (equal seeds give equal inputs). */
void bench_fill_random(emx_tensor *t, unsigned *seed);

#endif
