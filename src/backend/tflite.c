/* tflite.c — build, describe and run TFLite interpreters. */
#include "backend/tflite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"

/* edgetpu_compiled reports whether TFLite refused the model for its
 * "edgetpu-custom-op" node: the model was compiled for the Edge TPU and
 * nothing here claimed that node (only libedgetpu's delegate does). */
static int edgetpu_compiled(const emx__errbuf *report) {
  return strstr(report->msg, "edgetpu-custom-op") != NULL;
}

static int edgetpu_error(emx__errbuf *err) {
  return emx__errf(err, EMX_EUNSUPPORTED,
                   "the model is compiled for the Edge TPU (its graph is the "
                   "custom op edgetpu-custom-op) but no Edge TPU is present "
                   "to run it on this device: place it on an edgetpu device, "
                   "or load the model as it was before edgetpu_compiler");
}

static int describe(const TfLiteTensor *t, emx_tensor_info *info,
                    emx__errbuf *err) {
  int rank = TfLiteTensorNumDims(t);
  if (rank > EMX_MAX_DIMS)
    return emx__errf(err, EMX_EUNSUPPORTED,
                     "tensor \"%s\" has rank %d; at most %d is supported",
                     TfLiteTensorName(t), rank, EMX_MAX_DIMS);
  const char *name = TfLiteTensorName(t);
  info->name = strdup(name ? name : "");
  if (!info->name)
    return emx__errf(err, EMX_ENOMEM, "out of memory describing a tensor");
  info->dtype = (emx_dtype)TfLiteTensorType(t);
  info->rank = rank;
  for (int d = 0; d < rank; d++)
    info->dims[d] = TfLiteTensorDim(t, d);
  info->bytes = TfLiteTensorByteSize(t);
  TfLiteQuantizationParams q = TfLiteTensorQuantizationParams(t);
  info->scale = q.scale;
  info->zero_point = q.zero_point;
  if (emx__dtype_size(info->dtype) == 0)
    return emx__errf(err, EMX_EUNSUPPORTED,
                     "tensor \"%s\" has type %s, which edgemux cannot pass "
                     "as a flat buffer",
                     name, emx_dtype_name(info->dtype));
  return 0;
}

static int describe_all(TfLiteInterpreter *it, emx__model_desc *desc,
                        emx__errbuf *err) {
  int nin = TfLiteInterpreterGetInputTensorCount(it);
  int nout = TfLiteInterpreterGetOutputTensorCount(it);
  desc->inputs = calloc((size_t)nin + 1, sizeof *desc->inputs);
  desc->outputs = calloc((size_t)nout + 1, sizeof *desc->outputs);
  if (!desc->inputs || !desc->outputs)
    return emx__errf(err, EMX_ENOMEM, "out of memory describing the model");
  int rc;
  for (int i = 0; i < nin; i++) {
    desc->input_count++;
    rc =
        describe(TfLiteInterpreterGetInputTensor(it, i), &desc->inputs[i], err);
    if (rc < 0)
      return rc;
  }
  for (int i = 0; i < nout; i++) {
    desc->output_count++;
    rc = describe(TfLiteInterpreterGetOutputTensor(it, i), &desc->outputs[i],
                  err);
    if (rc < 0)
      return rc;
  }
  return 0;
}

int emx__tfl_prepare(emx__tfl_model *m, const void *data, size_t size,
                     int threads, TfLiteDelegate *delegate,
                     void (*delegate_free)(TfLiteDelegate *),
                     emx__model_desc *desc, emx__errbuf *err) {
  memset(m, 0, sizeof *m);
  memset(desc, 0, sizeof *desc);
  m->delegate = delegate;
  m->delegate_free = delegate_free;
  int rc;
  TfLiteInterpreterOptions *opts = NULL;

  /* TfLiteModelCreate runs the flatbuffer verifier, so random bytes and
   * truncated files are refused here rather than crashing later. */
  m->model = TfLiteModelCreate(data, size);
  if (!m->model) {
    rc = emx__errf(err, EMX_EMODEL,
                   "not a valid TensorFlow Lite model (%zu bytes; the "
                   "flatbuffer does not verify: truncated, corrupt or another "
                   "format)",
                   size);
    goto fail;
  }
  opts = TfLiteInterpreterOptionsCreate();
  if (!opts) {
    rc = emx__errf(err, EMX_ENOMEM,
                   "out of memory creating interpreter options");
    goto fail;
  }
  TfLiteInterpreterOptionsSetNumThreads(opts, threads);
  TfLiteInterpreterOptionsSetErrorReporter(opts, emx__tfl_reporter, &m->report);
  if (delegate)
    TfLiteInterpreterOptionsAddDelegate(opts, delegate);

  m->interpreter = TfLiteInterpreterCreate(m->model, opts);
  if (!m->interpreter) {
    /* Creation fails on ops the runtime does not have; the reporter said
     * which ("Encountered unresolved custom op: X."). */
    if (edgetpu_compiled(&m->report)) {
      rc = edgetpu_error(err);
      goto fail;
    }
    int unresolved = strstr(m->report.msg, "unresolved") != NULL;
    rc = emx__errf(err, unresolved ? EMX_EUNSUPPORTED : EMX_EMODEL,
                   "cannot build an interpreter: %s",
                   m->report.msg[0] ? m->report.msg : "TFLite gave no reason");
    goto fail;
  }
  if (TfLiteInterpreterAllocateTensors(m->interpreter) != kTfLiteOk) {
    if (edgetpu_compiled(&m->report)) {
      rc = edgetpu_error(err);
      goto fail;
    }
    rc = emx__errf(err, EMX_EMODEL, "cannot allocate tensors: %s",
                   m->report.msg[0] ? m->report.msg : "TFLite gave no reason");
    goto fail;
  }
  rc = describe_all(m->interpreter, desc, err);
  if (rc < 0)
    goto fail;
  /* One warm-up run on zeroed inputs: XNNPACK packs weights and sizes its
   * workspace on the first invoke (~10x a normal run), which would
   * otherwise land on the first user's request; and a model that cannot
   * run fails here, at load, with a clear message. */
  for (int i = 0; i < TfLiteInterpreterGetInputTensorCount(m->interpreter);
       i++) {
    TfLiteTensor *t = TfLiteInterpreterGetInputTensor(m->interpreter, i);
    if (TfLiteTensorData(t))
      memset(TfLiteTensorData(t), 0, TfLiteTensorByteSize(t));
  }
  if (TfLiteInterpreterInvoke(m->interpreter) != kTfLiteOk) {
    rc = emx__errf(err, EMX_EMODEL, "the model fails its first run: %s",
                   m->report.msg[0] ? m->report.msg : "TFLite gave no reason");
    goto fail;
  }
  /* A stateful model (an LSTM's variables) must not remember the warm-up. */
  TfLiteInterpreterResetVariableTensors(m->interpreter);
  TfLiteInterpreterOptionsDelete(opts);
  return 0;

fail:
  TfLiteInterpreterOptionsDelete(opts);
  emx__model_desc_free(desc);
  emx__tfl_release(m);
  return rc;
}

void emx__tfl_release(emx__tfl_model *m) {
  emx__tfl_release_batched(m);
  /* The interpreter uses the delegate until it is deleted: order matters. */
  if (m->interpreter)
    TfLiteInterpreterDelete(m->interpreter);
  if (m->delegate && m->delegate_free)
    m->delegate_free(m->delegate);
  if (m->model)
    TfLiteModelDelete(m->model);
  memset(m, 0, sizeof *m);
}

int emx__tfl_invoke(emx__tfl_model *m, const emx_tensor *inputs, size_t nin,
                    const emx_tensor *outputs, size_t nout, int64_t *device_ns,
                    emx__errbuf *err) {
  TfLiteInterpreter *it = m->interpreter;
  for (size_t i = 0; i < nin; i++) {
    TfLiteTensor *t = TfLiteInterpreterGetInputTensor(it, (int)i);
    if (TfLiteTensorCopyFromBuffer(t, inputs[i].data, inputs[i].size) !=
        kTfLiteOk)
      return emx__errf(err, EMX_ESIZE, "input %zu (\"%s\"): copy refused", i,
                       TfLiteTensorName(t));
  }
  m->report.msg[0] = '\0';
  int64_t t0 = emx_now_ns();
  TfLiteStatus st = TfLiteInterpreterInvoke(it);
  *device_ns = emx_now_ns() - t0;
  if (st != kTfLiteOk)
    return emx__errf(err, EMX_EDEVICE, "invoke failed: %s",
                     m->report.msg[0] ? m->report.msg
                                      : "TFLite gave no reason");
  for (size_t i = 0; i < nout; i++) {
    const TfLiteTensor *t = TfLiteInterpreterGetOutputTensor(it, (int)i);
    if (TfLiteTensorCopyToBuffer(t, outputs[i].data, outputs[i].size) !=
        kTfLiteOk)
      return emx__errf(err, EMX_ESIZE, "output %zu (\"%s\"): copy refused", i,
                       TfLiteTensorName(t));
  }
  return 0;
}

static void xnnpack_free(TfLiteDelegate *d) {
  TfLiteXNNPackDelegateDelete(d);
}

int emx__tfl_prepare_xnnpack(emx__tfl_model *m, const void *data, size_t size,
                             int threads, emx__model_desc *desc,
                             emx__errbuf *err) {
  /* The 2.9 C API does not apply XNNPACK by itself (about 8x slower on our
   * models without it). As TFLite does internally, one thread means "no
   * thread pool" (0), not a pool of one. */
  emx__xnnpack_options xo = {.num_threads = threads > 1 ? threads : 0};
  TfLiteDelegate *xnn = TfLiteXNNPackDelegateCreate(&xo);
  if (!xnn)
    return emx__errf(err, EMX_EDEVICE, "cannot create the XNNPACK delegate");
  int rc =
      emx__tfl_prepare(m, data, size, threads, xnn, xnnpack_free, desc, err);
  if (rc == 0) {
    m->xnnpack_threads = threads > 0 ? threads : 1;
    m->data = data;
    m->size = size;
  }
  return rc;
}
