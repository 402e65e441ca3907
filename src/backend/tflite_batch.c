/* tflite_batch.c — dynamic batching on TFLite: one invoke for several
 * requests of one model.
 *
 * A model built for batch 1 often runs at batch N when its inputs are
 * resized: a copy of the interpreter is built with every input's dims[0]
 * set to N, and used when the engine hands over N requests. Each request's
 * input fills one slice of the batched input, and each output slice goes
 * back to its request. The copies share the parsed model (TfLiteModel is
 * immutable) but each has its own XNNPACK delegate and arena, so only a few
 * recent sizes are kept. Whether the graph really follows the resize is
 * checked, not assumed: every output must grow to N along dims[0] by
 * exactly N times its bytes, or the model is reported as not batchable. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/child.h"
#include "backend/tflite.h"
#include "core/log.h"

static void free_slot(emx__tfl_batched *b) {
  if (b->interpreter)
    TfLiteInterpreterDelete(b->interpreter);
  if (b->delegate)
    TfLiteXNNPackDelegateDelete(b->delegate);
  memset(b, 0, sizeof *b);
}

void emx__tfl_release_batched(emx__tfl_model *m) {
  for (int i = 0; i < EMX__TFL_BATCH_SLOTS; i++)
    free_slot(&m->batched[i]);
}

/* resize_inputs sets every input's batch dimension to n. */
static int resize_inputs(emx__tfl_model *m, TfLiteInterpreter *it, int n,
                         emx__errbuf *err) {
  for (int i = 0; i < TfLiteInterpreterGetInputTensorCount(it); i++) {
    const TfLiteTensor *t = TfLiteInterpreterGetInputTensor(it, i);
    int rank = TfLiteTensorNumDims(t);
    if (rank < 1 || TfLiteTensorDim(t, 0) != 1)
      return emx__errf(err, EMX_EUNSUPPORTED,
                       "input \"%s\" has no batch dimension of 1 to resize",
                       TfLiteTensorName(t));
    int dims[EMX_MAX_DIMS];
    for (int d = 0; d < rank && d < EMX_MAX_DIMS; d++)
      dims[d] = TfLiteTensorDim(t, d);
    dims[0] = n;
    if (TfLiteInterpreterResizeInputTensor(it, i, dims, rank) != kTfLiteOk)
      return emx__errf(err, EMX_EUNSUPPORTED,
                       "input \"%s\" does not resize to batch %d: %s",
                       TfLiteTensorName(t), n, m->report.msg);
  }
  return 0;
}

/* follows: does tensor t hold n of the base tensor? */
static bool follows(const TfLiteTensor *t, const TfLiteTensor *base, int n) {
  return TfLiteTensorNumDims(t) >= 1 && TfLiteTensorDim(t, 0) == n &&
         TfLiteTensorByteSize(t) == (size_t)n * TfLiteTensorByteSize(base);
}

/* build makes the interpreter copy for batch n in slot b. */
static int build(emx__tfl_model *m, int n, emx__tfl_batched *b,
                 emx__errbuf *err) {
  emx__xnnpack_options xo = {
      .num_threads = m->xnnpack_threads > 1 ? m->xnnpack_threads : 0};
  TfLiteInterpreterOptions *opts = TfLiteInterpreterOptionsCreate();
  b->delegate = TfLiteXNNPackDelegateCreate(&xo);
  if (!opts || !b->delegate) {
    TfLiteInterpreterOptionsDelete(opts);
    free_slot(b);
    return emx__errf(err, EMX_ENOMEM, "out of memory building batch %d", n);
  }
  TfLiteInterpreterOptionsSetNumThreads(opts, m->xnnpack_threads);
  TfLiteInterpreterOptionsSetErrorReporter(opts, emx__tfl_reporter, &m->report);
  TfLiteInterpreterOptionsAddDelegate(opts, b->delegate);
  m->report.msg[0] = '\0';
  b->interpreter = TfLiteInterpreterCreate(m->model, opts);
  TfLiteInterpreterOptionsDelete(opts);
  int rc = 0;
  if (!b->interpreter)
    rc = emx__errf(err, EMX_EUNSUPPORTED,
                   "cannot build a batch-%d interpreter: %s", n, m->report.msg);
  if (rc == 0)
    rc = resize_inputs(m, b->interpreter, n, err);
  if (rc == 0 && TfLiteInterpreterAllocateTensors(b->interpreter) != kTfLiteOk)
    rc = emx__errf(err, EMX_EUNSUPPORTED,
                   "the graph does not run at batch %d: %s", n, m->report.msg);
  TfLiteInterpreter *one = m->interpreter;
  for (int i = 0; rc == 0 && i < TfLiteInterpreterGetOutputTensorCount(one);
       i++) {
    const TfLiteTensor *base = TfLiteInterpreterGetOutputTensor(one, i);
    if (!follows(TfLiteInterpreterGetOutputTensor(b->interpreter, i), base, n))
      rc = emx__errf(err, EMX_EUNSUPPORTED,
                     "output \"%s\" does not grow with the batch (its first "
                     "dimension is not the batch)",
                     TfLiteTensorName(base));
  }
  for (int i = 0; rc == 0 && i < TfLiteInterpreterGetInputTensorCount(one); i++)
    if (!follows(TfLiteInterpreterGetInputTensor(b->interpreter, i),
                 TfLiteInterpreterGetInputTensor(one, i), n))
      rc = emx__errf(err, EMX_EUNSUPPORTED,
                     "input %d does not grow with the batch", i);
  if (rc == 0 && TfLiteInterpreterInvoke(b->interpreter) != kTfLiteOk)
    rc = emx__errf(err, EMX_EUNSUPPORTED, "the model fails at batch %d: %s", n,
                   m->report.msg);
  /* The warm-up above is XNNPACK's weight packing; a stateful model must
   * not remember it. */
  if (rc == 0)
    TfLiteInterpreterResetVariableTensors(b->interpreter);
  if (rc < 0)
    free_slot(b);
  else
    b->size = n;
  return rc;
}

int emx__tfl_batch_check(emx__tfl_model *m, int n, emx__errbuf *err) {
  emx__tfl_batched b = {0};
  int rc = build(m, n, &b, err);
  free_slot(&b);
  return rc;
}

/* How long a trial may take: building a batched interpreter of a large
 * model takes seconds, not minutes. */
#define TRIAL_MS 60000

/* trial builds the batch-n copy once in a separate process first.
 * Resizing is where TFLite 2.9 has bugs of its own: on
 * face_detection_full_range_sparse.tflite (a DENSIFY op under XNNPACK)
 * AllocateTensors crashes with SIGSEGV. A crash must cost the batch, not
 * the process. The trial is a fresh process (edgemux-devhost --try-batch,
 * the model in a memfd on fd 3), not a fork: a forked child of this
 * multi-threaded process could deadlock on a lock another thread held. */
static int trial(emx__tfl_model *m, int n, emx__errbuf *err) {
  if (n < 64 && (m->batch_tried >> n) & 1)
    return 0;
  char path[PATH_MAX];
  emx__errbuf ferr = {{0}};
  if (emx__devhost_find("dynamic batching", path, sizeof path, &ferr) < 0) {
    /* No safety net here: build in this process, as TFLite would. */
    emx__log(EMX_LOG_WARN, "%s; trying batch %d in this process", ferr.msg, n);
    m->batch_tried |= n < 64 ? 1ULL << n : 0;
    return 0;
  }
  int fd = memfd_create("emx-model", MFD_CLOEXEC);
  if (fd < 0)
    return emx__errf(err, EMX_EUNSUPPORTED, "cannot try batch %d: memfd: %s", n,
                     strerror(errno));
  size_t done = 0;
  while (done < m->size) {
    ssize_t w = write(fd, (const char *)m->data + done, m->size - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      close(fd);
      return emx__errf(err, EMX_EUNSUPPORTED,
                       "cannot try batch %d: writing the model: %s", n,
                       strerror(errno));
    }
    done += (size_t)w;
  }
  char nb[16], tb[16];
  snprintf(nb, sizeof nb, "%d", n);
  snprintf(tb, sizeof tb, "%d", m->xnnpack_threads);
  char *argv[] = {path, "--try-batch", nb, tb, NULL};
  /* Quiet: its exit status is the answer, and what a crash prints (a
   * sanitizer's report of TFLite's fault) is not this process's news. */
  pid_t pid;
  int src = emx__devhost_spawn(path, argv, fd, -1, true, &pid);
  close(fd);
  if (src != 0)
    return emx__errf(err, EMX_EUNSUPPORTED, "cannot try batch %d: %s: %s", n,
                     path, strerror(src));
  int status = 0;
  if (emx__child_end(pid, &status, (int64_t)TRIAL_MS * 1000000,
                     "a dynamic batching trial") != 1)
    return emx__errf(err, EMX_EUNSUPPORTED,
                     "trying batch %d did not finish within %d s", n,
                     TRIAL_MS / 1000);
  if (WIFSIGNALED(status))
    return emx__errf(err, EMX_EUNSUPPORTED,
                     "TFLite crashed (signal %d) resizing the model to batch "
                     "%d",
                     WTERMSIG(status), n);
  /* Any other end is a crash too (a sanitizer turns a SIGSEGV into exit
   * 1); a clean refusal is repeated here, with its message, by build. */
  if (!WIFEXITED(status) ||
      (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != EMX__TRIAL_REFUSED))
    return emx__errf(err, EMX_EUNSUPPORTED,
                     "TFLite crashed (exit %d) resizing the model to batch %d",
                     WEXITSTATUS(status), n);
  m->batch_tried |= n < 64 ? 1ULL << n : 0;
  return 0;
}

/* slot_for returns the copy for batch n, building it in the least recently
 * used slot when there is none. */
static int slot_for(emx__tfl_model *m, int n, emx__tfl_batched **out,
                    emx__errbuf *err) {
  emx__tfl_batched *victim = &m->batched[0];
  for (int i = 0; i < EMX__TFL_BATCH_SLOTS; i++) {
    emx__tfl_batched *b = &m->batched[i];
    if (b->size == n) {
      *out = b;
      b->used = ++m->batch_clock;
      return 0;
    }
    if (b->used < victim->used)
      victim = b;
  }
  int rc = trial(m, n, err);
  if (rc < 0)
    return rc;
  free_slot(victim);
  rc = build(m, n, victim, err);
  if (rc == 0) {
    victim->used = ++m->batch_clock;
    *out = victim;
  }
  return rc;
}

int emx__tfl_invoke_batch(emx__tfl_model *m, size_t batch,
                          const emx_tensor *const *inputs, size_t nin,
                          const emx_tensor *const *outputs, size_t nout,
                          int64_t *device_ns, emx__errbuf *err) {
  if (!m->xnnpack_threads)
    return emx__errf(err, EMX_EUNSUPPORTED,
                     "this device's interpreters cannot be rebuilt for a "
                     "batch");
  emx__tfl_batched *b = NULL;
  int rc = slot_for(m, (int)batch, &b, err);
  if (rc < 0)
    return rc;
  TfLiteInterpreter *it = b->interpreter;
  for (size_t i = 0; i < nin; i++) {
    TfLiteTensor *t = TfLiteInterpreterGetInputTensor(it, (int)i);
    char *dst = TfLiteTensorData(t);
    size_t each = TfLiteTensorByteSize(t) / batch;
    for (size_t r = 0; r < batch; r++)
      memcpy(dst + r * each, inputs[r][i].data, each);
  }
  m->report.msg[0] = '\0';
  int64_t t0 = emx_now_ns();
  TfLiteStatus st = TfLiteInterpreterInvoke(it);
  *device_ns = emx_now_ns() - t0;
  if (st != kTfLiteOk)
    return emx__errf(err, EMX_EDEVICE, "batch-%zu invoke failed: %s", batch,
                     m->report.msg[0] ? m->report.msg
                                      : "TFLite gave no reason");
  for (size_t i = 0; i < nout; i++) {
    const TfLiteTensor *t = TfLiteInterpreterGetOutputTensor(it, (int)i);
    const char *src = TfLiteTensorData(t);
    size_t each = TfLiteTensorByteSize(t) / batch;
    for (size_t r = 0; r < batch; r++)
      memcpy(outputs[r][i].data, src + r * each, each);
  }
  return 0;
}
