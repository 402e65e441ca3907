/* detect.c — which detector a loaded model has, for the doors that answer
 * with detection rows (ZeroMQ for Frigate; HTTP's extra output). Built on
 * first use rather than at load: most models are not detectors, and a
 * detector's anchors cost a few hundred KiB. */
#include <stdio.h>

#include "daemon/daemon.h"

/* postprocess_shaped: outputs as TFLite_Detection_PostProcess leaves them,
 * boxes [1,N,4], classes [1,N], scores [1,N], count [1]. */
static bool postprocess_shaped(emx_model *em) {
  if (emx_model_output_count(em) != 4)
    return false;
  emx_tensor_info o[4];
  for (size_t i = 0; i < 4; i++) {
    o[i].struct_size = sizeof o[i];
    if (emx_model_output_info(em, i, &o[i]) < 0 ||
        o[i].dtype != EMX_DTYPE_FLOAT32)
      return false;
  }
  return o[0].rank == 3 && o[0].dims[2] == 4 && o[1].rank == 2 &&
         o[2].rank == 2 && o[1].dims[1] == o[0].dims[1] &&
         o[2].dims[1] == o[0].dims[1];
}

const emx__detector *emxd_model_detector(emxd_model *m, emx__errbuf *err) {
  emx__detector *d = atomic_load(&m->detector);
  if (d)
    return d;
  emx__detect_config cfg;
  if (m->settings.has_detection) {
    cfg = m->settings.detection;
  } else if (postprocess_shaped(m->model)) {
    emx__detect_config_init(&cfg);
    cfg.type = EMX__DETECT_POSTPROCESS;
  } else {
    emx__errf(err, EMX_EINVAL,
              "model \"%s\" is not configured as a detector: add a "
              "\"detection\" object to its config.json in the model "
              "repository (docs/detection.md)",
              m->name);
    return NULL;
  }
  if (emx__detector_create(&d, &cfg, err) < 0)
    return NULL;
  emx__detector *none = NULL;
  if (!atomic_compare_exchange_strong(&m->detector, &none, d)) {
    emx__detector_destroy(d); /* another thread built it first */
    d = none;
  }
  return d;
}
