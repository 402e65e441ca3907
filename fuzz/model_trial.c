/* model_trial.c — libFuzzer target over model bytes, the way edgemuxd
 * takes a client's model: into a sealed memfd, through the trial in a
 * throwaway edgemux-devhost (src/daemon/trial.c), and only when that
 * survives, into this process's engine (load, one invoke, unload). A crash
 * in TFLite must stay in the child: any crash or sanitizer report in this
 * process is a finding. Coverage comes only from this process (the child
 * and TFLite are not instrumented), so this is mutation testing of the
 * trial's contract more than coverage-guided search. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "edgemux/edgemux.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static emx_engine *engine;

/* run_once loads bytes that passed the trial and invokes them on zeros. */
static void run_once(const uint8_t *data, size_t size) {
  if (!engine) {
    emx_engine_config cfg;
    emx_engine_config_init(&cfg);
    const char *devices[] = {"cpu"};
    cfg.devices = devices;
    cfg.device_count = 1;
    cfg.log_level = EMX_LOG_ERROR;
    if (emx_engine_create(&engine, &cfg) < 0)
      abort();
  }
  emx_model_config mc;
  emx_model_config_init(&mc);
  mc.data = data;
  mc.size = size;
  emx_model *m;
  if (emx_model_load(engine, "fuzzed", &mc, &m) < 0)
    return; /* refused cleanly in process too: fine */
  size_t nin = emx_model_input_count(m), nout = emx_model_output_count(m);
  emx_tensor *t = calloc(nin + nout + 1, sizeof *t);
  for (size_t i = 0; t && i < nin + nout; i++) {
    emx_tensor_info ti;
    if (i < nin)
      emx_model_input_info(m, i, &ti);
    else
      emx_model_output_info(m, i - nin, &ti);
    t[i].dtype = ti.dtype;
    t[i].size = ti.bytes;
    t[i].data = calloc(1, ti.bytes ? ti.bytes : 1);
  }
  if (t) {
    emx_request_desc d;
    emx_request_desc_init(&d);
    d.model = m;
    d.inputs = t;
    d.input_count = nin;
    d.outputs = t + nin;
    d.output_count = nout;
    emx_request *r;
    if (emx_submit(engine, &d, &r) == 0) {
      emx_request_wait(r, -1);
      emx_request_destroy(r);
    }
    for (size_t i = 0; i < nin + nout; i++)
      free(t[i].data);
    free(t);
  }
  emx_model_unload(engine, m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0 || size > (4u << 20))
    return 0;
  int fd = memfd_create("fuzz-model", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0 || write(fd, data, size) != (ssize_t)size ||
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
    abort();
  emx__errbuf err = {{0}};
  /* The trial's memory bound (the daemon's --max-model-memory-mb), kept
   * well under libFuzzer's -rss_limit_mb: a few mutated bytes can declare
   * tensors of gigabytes, which this process would then allocate. */
  int rc = emxd_trial(fd, (uint64_t)256 << 20, &err);
  close(fd);
  if (rc == 0)
    run_once(data, size);
  else if (!err.msg[0])
    abort(); /* every refusal says why */
  return 0;
}
