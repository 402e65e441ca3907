/* backend.h — the device interface every backend implements.
 *
 * A backend drives one kind of device (cpu, edgetpu, sim). The engine calls a
 * device's functions from that device's worker thread only — open/close
 * excepted, which run before the worker starts and after it stops — so a
 * backend needs no locking of its own for per-device state. */
#ifndef EMX_BACKEND_BACKEND_H
#define EMX_BACKEND_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "core/devspec.h"
#include "core/error.h"
#include "edgemux/edgemux.h"

/* emx__model_desc is the model's interface as a device sees it. Names and
 * arrays are heap-allocated; free with emx__model_desc_free. */
typedef struct emx__model_desc {
  size_t input_count;      /* entries in inputs */
  size_t output_count;     /* entries in outputs */
  emx_tensor_info *inputs; /* names owned by the desc */
  emx_tensor_info *outputs;
} emx__model_desc;

void emx__model_desc_free(emx__model_desc *desc);

/* emx__model_desc_equal: do two devices see the same interface? */
int emx__model_desc_equal(const emx__model_desc *a, const emx__model_desc *b);

typedef struct emx__backend_ops {
  const char *kind; /* spec prefix: "cpu" */

  /* units: how many devices (worker threads) this spec expands to, e.g.
   * "cpu:workers=4" → 4. Validates the spec. */
  int (*units)(emx__devspec *spec, int *count, emx__errbuf *err);

  /* open: open unit `unit` of the spec. *dev is the backend's state. */
  int (*open)(const emx__devspec *spec, int unit, void **dev, emx__errbuf *err);

  /* close: release the device; every prepared model is released first. */
  void (*close)(void *dev);

  /* prepare: make a model runnable on the device (e.g. build an
   * interpreter) from its flatbuffer bytes, which stay valid and unchanged
   * until release. Fills *desc. EMX_EMODEL / EMX_EUNSUPPORTED / EMX_ENOMEM
   * with a message naming the problem. */
  int (*prepare)(void *dev, const void *data, size_t size, void **prep,
                 emx__model_desc *desc, emx__errbuf *err);

  /* release: undo prepare. */
  void (*release)(void *dev, void *prep);

  /* invoke: run one inference. Inputs and outputs match the desc (the
   * engine validated count, dtype and size). *device_ns receives the time
   * spent in the device proper. */
  int (*invoke)(void *dev, void *prep, const emx_tensor *inputs, size_t nin,
                const emx_tensor *outputs, size_t nout, int64_t *device_ns,
                emx__errbuf *err);

  /* invoke_batch (optional): run `batch` requests for one model in one
   * invoke, the batch dimension (dims[0] of every input and output)
   * resized to `batch`. inputs[r] / outputs[r] are request r's tensors, as
   * invoke gets them. EMX_EUNSUPPORTED, before anything ran, when the model
   * does not resize that way: the engine then runs such requests one by
   * one and does not ask again. */
  int (*invoke_batch)(void *dev, void *prep, size_t batch,
                      const emx_tensor *const *inputs, size_t nin,
                      const emx_tensor *const *outputs, size_t nout,
                      int64_t *device_ns, emx__errbuf *err);

  /* probe (optional): after a fault (EMX_EDEVICE from invoke), is the
   * device usable again? 0 = yes. The engine has released every prepared
   * model first and calls this with backoff until it succeeds. Without a
   * probe the engine closes the device and re-opens it instead. */
  int (*probe)(void *dev, emx__errbuf *err);

  /* virtual_clock (optional): true when the device simulates time instead
   * of spending it (sim:clock=virtual): invoke returns at once and
   * *device_ns is the simulated duration. The engine then keeps the
   * device's own clock, from 0, for its requests' timings, deadlines and
   * scheduling, which makes them exact and repeatable. Asked once, after
   * open. */
  bool (*virtual_clock)(const void *dev);
} emx__backend_ops;

/* emx__backend_find returns the ops for a kind, or NULL. */
const emx__backend_ops *emx__backend_find(const char *kind);

/* emx__backend_kinds lists known kinds for error messages ("cpu"). */
const char *emx__backend_kinds(void);

extern const emx__backend_ops emx__backend_cpu;
extern const emx__backend_ops emx__backend_sim;
extern const emx__backend_ops emx__backend_edgetpu;

#endif
