/* cpu.c — the CPU backend: TFLite interpreters with the XNNPACK delegate.
 *
 * "cpu:workers=N,threads=T" is a pool of N devices, each one worker thread
 * whose interpreters use T XNNPACK threads. Many single-thread interpreters
 * scale far better than one wide one (measured on 16 cores: 16 x 1 thread ≈
 * 12.8x one interpreter; 1 x 16 threads ≈ 1.23x), so the default is one
 * worker per online core with one thread each. */
#include <stdlib.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/tflite.h"

typedef struct cpu_device {
  int threads; /* XNNPACK threads per interpreter */
} cpu_device;

typedef struct cpu_model {
  emx__tfl_model tfl;
} cpu_model;

static int online_cores(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

static int parse(emx__devspec *spec, long *workers, long *threads,
                 emx__errbuf *err) {
  *workers = online_cores();
  *threads = 1;
  int rc = emx__devspec_int(spec, "workers", 1, 1024, workers, err);
  if (rc == 0)
    rc = emx__devspec_int(spec, "threads", 1, 1024, threads, err);
  if (rc == 0)
    rc = emx__devspec_check_used(spec, err);
  return rc;
}

static int cpu_units(emx__devspec *spec, int *count, emx__errbuf *err) {
  long workers, threads;
  int rc = parse(spec, &workers, &threads, err);
  if (rc == 0)
    *count = (int)workers;
  return rc;
}

static int cpu_open(const emx__devspec *spec, int unit, void **dev,
                    emx__errbuf *err) {
  emx__devspec copy = *spec;
  long workers, threads;
  int rc = parse(&copy, &workers, &threads, err);
  if (rc < 0)
    return rc;
  cpu_device *d = calloc(1, sizeof *d);
  if (!d)
    return emx__errf(err, EMX_ENOMEM, "out of memory opening %s", spec->text);
  d->threads = (int)threads;
  *dev = d;
  return 0;
}

static void cpu_close(void *dev) {
  free(dev);
}

static int cpu_prepare(void *dev, const void *data, size_t size, void **prep,
                       emx__model_desc *desc, emx__errbuf *err) {
  cpu_device *d = dev;
  cpu_model *m = calloc(1, sizeof *m);
  if (!m)
    return emx__errf(err, EMX_ENOMEM, "out of memory preparing a model");
  int rc = emx__tfl_prepare_xnnpack(&m->tfl, data, size, d->threads, desc, err);
  if (rc < 0) {
    free(m);
    return rc;
  }
  *prep = m;
  return 0;
}

static void cpu_release(void *dev, void *prep) {
  cpu_model *m = prep;
  emx__tfl_release(&m->tfl);
  free(m);
}

static int cpu_invoke(void *dev, void *prep, const emx_tensor *inputs,
                      size_t nin, const emx_tensor *outputs, size_t nout,
                      int64_t *device_ns, emx__errbuf *err) {
  cpu_model *m = prep;
  return emx__tfl_invoke(&m->tfl, inputs, nin, outputs, nout, device_ns, err);
}

static int cpu_invoke_batch(void *dev, void *prep, size_t batch,
                            const emx_tensor *const *inputs, size_t nin,
                            const emx_tensor *const *outputs, size_t nout,
                            int64_t *device_ns, emx__errbuf *err) {
  cpu_model *m = prep;
  return emx__tfl_invoke_batch(&m->tfl, batch, inputs, nin, outputs, nout,
                               device_ns, err);
}

const emx__backend_ops emx__backend_cpu = {
    .kind = "cpu",
    .units = cpu_units,
    .open = cpu_open,
    .close = cpu_close,
    .prepare = cpu_prepare,
    .release = cpu_release,
    .invoke = cpu_invoke,
    .invoke_batch = cpu_invoke_batch,
};
