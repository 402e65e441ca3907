/* tflite.h — TensorFlow Lite plumbing shared by the backends that run
 * interpreters (cpu today; edgetpu and sim build on it). */
#ifndef EMX_BACKEND_TFLITE_H
#define EMX_BACKEND_TFLITE_H

#include <stdarg.h>

#include "backend/backend.h"
#include "tensorflow/lite/c/c_api.h"

/* The 2.9 C API exports the XNNPACK delegate but ships no header for it. The
 * struct is 8 bytes in this build (TfLiteXNNPackDelegateOptionsDefault
 * returns it in one register); we only ever pass it by pointer. */
typedef struct emx__xnnpack_options {
  int32_t num_threads; /* 0 or 1: no thread pool */
  uint32_t flags;      /* TFLITE_XNNPACK_DELEGATE_FLAG_*; 0 = defaults */
} emx__xnnpack_options;

TfLiteDelegate *TfLiteXNNPackDelegateCreate(const emx__xnnpack_options *opts);

/* Exported by the 2.9 library, declared only in its experimental header,
 * which the package does not ship. */
TfLiteStatus
TfLiteInterpreterResetVariableTensors(TfLiteInterpreter *interpreter);
void TfLiteXNNPackDelegateDelete(TfLiteDelegate *delegate);

/* A batched interpreter: the model with its batch dimension resized. */
#define EMX__TFL_BATCH_SLOTS 4
typedef struct emx__tfl_batched {
  int size;                       /* batch size; 0 = free slot */
  TfLiteInterpreter *interpreter; /* inputs and outputs resized to size */
  TfLiteDelegate *delegate;       /* its own XNNPACK delegate */
  uint64_t used;                  /* LRU stamp */
} emx__tfl_batched;

/* emx__tfl_model is one model prepared for one device: an interpreter and
 * what it needs to live. */
typedef struct emx__tfl_model {
  TfLiteModel *model;             /* parsed flatbuffer (borrows the bytes) */
  TfLiteInterpreter *interpreter; /* owned by one worker thread */
  TfLiteDelegate *delegate;       /* applied to the interpreter, or NULL */
  void (*delegate_free)(TfLiteDelegate *);
  emx__errbuf report;  /* last text TFLite's reporter produced */
  int xnnpack_threads; /* >0: built by emx__tfl_prepare_xnnpack, so
                          batched copies can be built the same way */
  const void *data;    /* the flatbuffer (borrowed), for trial builds */
  size_t size;
  emx__tfl_batched batched[EMX__TFL_BATCH_SLOTS]; /* most recent sizes */
  uint64_t batch_clock;                           /* LRU counter */
  uint64_t batch_tried; /* bit n: batch n was built once without a crash */
} emx__tfl_model;

/* emx__tfl_reporter is the error reporter every interpreter gets; `user`
 * is the emx__errbuf it writes to. */
void emx__tfl_reporter(void *user, const char *fmt, va_list args);

/* emx__tfl_prepare parses the model, builds an interpreter with `threads`
 * threads and the given delegate (ownership passes in, even on failure),
 * allocates tensors and describes the interface. */
int emx__tfl_prepare(emx__tfl_model *m, const void *data, size_t size,
                     int threads, TfLiteDelegate *delegate,
                     void (*delegate_free)(TfLiteDelegate *),
                     emx__model_desc *desc, emx__errbuf *err);

/* emx__tfl_prepare_xnnpack is emx__tfl_prepare with an XNNPACK delegate of
 * `threads` threads: the CPU configuration every backend shares, so their
 * outputs are bit-identical. */
int emx__tfl_prepare_xnnpack(emx__tfl_model *m, const void *data, size_t size,
                             int threads, emx__model_desc *desc,
                             emx__errbuf *err);

/* emx__tfl_graph_check refuses (EMX_EMODEL, saying where) a model whose
 * graph has an operator writing one of its own inputs, a tensor with two
 * producers, or an operator's tensor index out of range: dataflow TFLite
 * 2.9 does not check and corrupts memory on (tflite_graph.c). Malformed
 * flatbuffers pass: TfLiteModelCreate's verifier refuses them. */
int emx__tfl_graph_check(const void *data, size_t size, emx__errbuf *err);

/* emx__tfl_release frees what emx__tfl_prepare made. */
void emx__tfl_release(emx__tfl_model *m);

/* emx__tfl_invoke copies inputs in, invokes, copies outputs out. */
int emx__tfl_invoke(emx__tfl_model *m, const emx_tensor *inputs, size_t nin,
                    const emx_tensor *outputs, size_t nout, int64_t *device_ns,
                    emx__errbuf *err);

/* emx__tfl_invoke_batch runs `batch` requests in one invoke of a copy of
 * the interpreter whose batch dimension is resized to `batch` (built on
 * first use and kept for the EMX__TFL_BATCH_SLOTS most recent sizes).
 * EMX_EUNSUPPORTED when the model does not resize so (an input whose
 * dims[0] is not 1, an output that does not follow); nothing ran then. */
int emx__tfl_invoke_batch(emx__tfl_model *m, size_t batch,
                          const emx_tensor *const *inputs, size_t nin,
                          const emx_tensor *const *outputs, size_t nout,
                          int64_t *device_ns, emx__errbuf *err);

/* emx__tfl_batch_check builds and drops the batch-n copy: what a trial
 * process does (edgemux-devhost --try-batch, which exits 0 when it built,
 * EMX__TRIAL_REFUSED when TFLite refused cleanly). */
#define EMX__TRIAL_REFUSED 42
/* edgemux-devhost --trial MAX_BYTES exits with this when the model, once
 * the interpreter is built and its tensors allocated, takes more than
 * MAX_BYTES of memory (printing the figure); nothing was run. */
#define EMX__TRIAL_TOO_BIG 43
int emx__tfl_batch_check(emx__tfl_model *m, int n, emx__errbuf *err);

/* emx__tfl_release_batched frees the batched copies (part of
 * emx__tfl_release). */
void emx__tfl_release_batched(emx__tfl_model *m);

#endif
