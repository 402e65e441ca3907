/* http_detect.c — detection rows as an extra HTTP output (http_detect.h):
 * the same decoding (src/detect/, the model's config.json) as the ZeroMQ
 * door, so every door gives the same rows for the same frame. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/front/http_detect.h"

bool emxh_detections_wanted(const hreq *r) {
  const json_t *p = json_object_get(r->parsed.doc, "parameters");
  return json_is_true(json_object_get(p, "detections"));
}

char *emxh_add_detections(hreq *r, char *json, size_t *len, char *msg,
                          size_t cap) {
  emx__errbuf err = {{0}};
  const emx__detector *det = emxd_model_detector(r->m, &err);
  json_t *doc = json_loadb(json, *len, 0, NULL);
  free(json);
  if (!det || !doc) {
    snprintf(msg, cap, "%s", det ? "out of memory" : err.msg);
    json_decref(doc);
    return NULL;
  }
  emx__detect_tensor outs[EMXH_MAX_TENSORS];
  for (size_t i = 0; i < r->desc.nout; i++)
    outs[i] =
        (emx__detect_tensor){r->outs[i].data, r->outs[i].size, r->out[i].dtype,
                             r->out[i].scale, r->out[i].zero_point};
  int n_rows = emx__detector_config(det)->max_detections;
  float *rows = calloc((size_t)n_rows, EMX__DETECT_ROW * sizeof(float));
  int n = rows ? emx__detector_run(det, outs, r->desc.nout, rows,
                                   (size_t)n_rows, NULL, &err)
               : EMX_ENOMEM;
  if (n < 0) {
    snprintf(msg, cap, "detections: %s", rows ? err.msg : "out of memory");
    free(rows);
    json_decref(doc);
    return NULL;
  }
  json_t *data = json_array();
  for (int i = 0; i < n_rows * EMX__DETECT_ROW; i++)
    json_array_append_new(data, json_real(rows[i]));
  free(rows);
  json_t *o =
      json_pack("{s:s, s:s, s:[i,i], s:o}", "name", "detections", "datatype",
                "FP32", "shape", n_rows, EMX__DETECT_ROW, "data", data);
  json_array_append_new(json_object_get(doc, "outputs"), o);
  char *text = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  if (!text) {
    snprintf(msg, cap, "out of memory");
    return NULL;
  }
  *len = strlen(text);
  return text;
}
