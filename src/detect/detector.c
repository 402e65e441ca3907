/* detector.c — a detector (config + anchors), its outputs-to-rows step for
 * both model kinds, and frame-to-input conversion. */
#include <stdlib.h>
#include <string.h>

#include "detect/ssd.h"

struct emx__detector {
  emx__detect_config cfg; /* a copy: the caller's may go away */
  emx__anchor *anchors;   /* ssd: n_anchors, in output order; else NULL */
  size_t n_anchors;       /* ssd: boxes the model must output */
};

int emx__detector_create(emx__detector **out, const emx__detect_config *cfg,
                         emx__errbuf *err) {
  *out = NULL;
  if (cfg->max_detections < 1 || cfg->max_detections > EMX__DETECT_MAX_ROWS)
    return emx__errf(err, EMX_EINVAL,
                     "detection.max_detections: %d is outside 1..%d",
                     cfg->max_detections, EMX__DETECT_MAX_ROWS);
  emx__detector *d = calloc(1, sizeof *d);
  if (!d)
    return emx__errf(err, EMX_ENOMEM, "detection: out of memory");
  d->cfg = *cfg;
  if (cfg->type == EMX__DETECT_SSD) {
    int rc = emx__ssd_anchors(&cfg->anchors, &d->anchors, &d->n_anchors, err);
    if (rc < 0) {
      free(d);
      return rc;
    }
  }
  *out = d;
  return 0;
}

void emx__detector_destroy(emx__detector *d) {
  if (!d)
    return;
  free(d->anchors);
  free(d);
}

const emx__detect_config *emx__detector_config(const emx__detector *d) {
  return &d->cfg;
}

const emx__anchor *emx__detector_anchors(const emx__detector *d,
                                         size_t *count) {
  *count = d->n_anchors;
  return d->anchors;
}

/* elems is the number of values in t, or 0 with err set for a dtype this
 * step cannot read. */
static size_t elems(const emx__detect_tensor *t, const char *what,
                    emx__errbuf *err) {
  switch (t->dtype) {
  case EMX_DTYPE_FLOAT32:
    return t->size / sizeof(float);
  case EMX_DTYPE_UINT8:
  case EMX_DTYPE_INT8:
    return t->size;
  default:
    emx__errf(err, EMX_EDTYPE,
              "detection: the %s output is %s; post-processing reads "
              "float32, or uint8/int8 with their quantization",
              what, emx_dtype_name(t->dtype));
    return 0;
  }
}

/* to_floats returns t's values as a malloc'd float array (dequantized),
 * checking there are exactly `want` (0: any number, *n says). */
static float *to_floats(const emx__detect_tensor *t, const char *what,
                        size_t want, size_t *n, emx__errbuf *err, int *rc) {
  size_t k = elems(t, what, err);
  if (!k) {
    *rc = t->dtype == EMX_DTYPE_FLOAT32 || t->dtype == EMX_DTYPE_UINT8 ||
                  t->dtype == EMX_DTYPE_INT8
              ? emx__errf(err, EMX_ESIZE, "detection: the %s output is empty",
                          what)
              : EMX_EDTYPE;
    return NULL;
  }
  if (want && k != want) {
    *rc = emx__errf(err, EMX_ESIZE,
                    "detection: the %s output has %zu values where the "
                    "config needs %zu (check the model and its \"detection\" "
                    "settings)",
                    what, k, want);
    return NULL;
  }
  float *f = malloc(k * sizeof *f);
  if (!f) {
    *rc = emx__errf(err, EMX_ENOMEM, "detection: %s: out of memory", what);
    return NULL;
  }
  if (t->dtype == EMX_DTYPE_FLOAT32) {
    memcpy(f, t->data, k * sizeof *f); /* also fixes any misalignment */
  } else if (t->dtype == EMX_DTYPE_UINT8) {
    const uint8_t *q = t->data;
    for (size_t i = 0; i < k; i++)
      f[i] = t->scale * ((int32_t)q[i] - t->zero_point);
  } else {
    const int8_t *q = t->data;
    for (size_t i = 0; i < k; i++)
      f[i] = t->scale * ((int32_t)q[i] - t->zero_point);
  }
  *n = k;
  *rc = 0;
  return f;
}

static int run_ssd(const emx__detector *d, const emx__detect_tensor *outs,
                   float *rows, int32_t *source, emx__errbuf *err) {
  const emx__detect_config *cfg = &d->cfg;
  size_t n_enc = 0, n_scores = 0;
  int rc = 0;
  float *scores = NULL;
  float *enc = to_floats(&outs[cfg->out_boxes], "box encodings",
                         d->n_anchors * 4, &n_enc, err, &rc);
  if (!enc)
    return rc;
  scores =
      to_floats(&outs[cfg->out_scores], "class scores", 0, &n_scores, err, &rc);
  if (!scores)
    goto out;
  if (n_scores % d->n_anchors) {
    rc = emx__errf(err, EMX_ESIZE,
                   "detection: the class scores output has %zu values, not "
                   "a multiple of the %zu anchors (check detection.anchors)",
                   n_scores, d->n_anchors);
    goto out;
  }
  rc = emx__ssd_run(cfg, d->anchors, d->n_anchors, enc, scores,
                    n_scores / d->n_anchors, rows, source, err);
out:
  free(enc);
  free(scores);
  return rc;
}

/* run_postprocess maps TFLite_Detection_PostProcess's outputs (boxes N x 4
 * as ymin, xmin, ymax, xmax; classes N; scores N; count) onto rows. The op
 * already ran NMS; this only thresholds, orders and clips. */
static int run_postprocess(const emx__detector *d,
                           const emx__detect_tensor *outs, float *rows,
                           int32_t *source, emx__errbuf *err) {
  const emx__detect_config *cfg = &d->cfg;
  size_t nb = 0, nc = 0, ns = 0, nn = 0;
  int rc = 0;
  float *classes = NULL, *scores = NULL, *count = NULL;
  emx__detect_cand *cand = NULL;
  float *boxes = to_floats(&outs[cfg->out_boxes], "boxes", 0, &nb, err, &rc);
  if (!boxes)
    return rc;
  size_t n = nb / 4;
  if (nb % 4) {
    rc = emx__errf(err, EMX_ESIZE,
                   "detection: the boxes output has %zu values, not N x 4", nb);
    goto out;
  }
  if (!(classes =
            to_floats(&outs[cfg->out_classes], "classes", n, &nc, err, &rc)) ||
      !(scores =
            to_floats(&outs[cfg->out_scores], "scores", n, &ns, err, &rc)) ||
      !(count = to_floats(&outs[cfg->out_count], "count", 0, &nn, err, &rc)))
    goto out;
  /* count is a float; a hostile or broken model may say anything. */
  size_t valid = 0;
  if (count[0] > 0)
    valid = count[0] >= (float)n ? n : (size_t)count[0];
  cand = malloc((valid + 1) * sizeof *cand);
  if (!cand) {
    rc = emx__errf(err, EMX_ENOMEM, "detection: out of memory");
    goto out;
  }
  size_t k = 0;
  for (size_t i = 0; i < valid; i++)
    if (scores[i] >= cfg->score_threshold)
      cand[k++] =
          (emx__detect_cand){scores[i], (int32_t)i, (int32_t)classes[i]};
  emx__detect_cand_sort(cand, k);
  if (k > (size_t)cfg->max_detections)
    k = (size_t)cfg->max_detections;
  for (size_t r = 0; r < k; r++) {
    emx__detect_row(cfg, rows + r * EMX__DETECT_ROW, cand[r].cls, cand[r].score,
                    boxes + 4 * (size_t)cand[r].box);
    if (source)
      source[r] = cand[r].box;
  }
  rc = (int)k;
out:
  free(boxes);
  free(classes);
  free(scores);
  free(count);
  free(cand);
  return rc;
}

int emx__detector_run(const emx__detector *d, const emx__detect_tensor *outs,
                      size_t n_outs, float *rows, size_t cap, int32_t *source,
                      emx__errbuf *err) {
  const emx__detect_config *cfg = &d->cfg;
  if (cap < (size_t)cfg->max_detections)
    return emx__errf(err, EMX_EINVAL,
                     "detection: room for %zu rows; max_detections is %d", cap,
                     cfg->max_detections);
  memset(rows, 0, (size_t)cfg->max_detections * EMX__DETECT_ROW * sizeof *rows);
  if (source)
    for (int r = 0; r < cfg->max_detections; r++)
      source[r] = -1;
  bool ssd = cfg->type == EMX__DETECT_SSD;
  int pos[4] = {cfg->out_boxes, cfg->out_scores, cfg->out_classes,
                cfg->out_count};
  int need = 0;
  for (int i = 0; i < (ssd ? 2 : 4); i++)
    if (pos[i] + 1 > need)
      need = pos[i] + 1;
  if (n_outs < (size_t)need)
    return emx__errf(err, EMX_ECOUNT,
                     "detection: the model has %zu outputs; its \"detection\" "
                     "config (%s) reads output %d",
                     n_outs,
                     ssd ? "ssd: box encodings, class scores"
                         : "postprocess: boxes, classes, scores, count",
                     need - 1);
  return ssd ? run_ssd(d, outs, rows, source, err)
             : run_postprocess(d, outs, rows, source, err);
}

int emx__detect_fill_input(const emx__detect_config *cfg, const void *frame,
                           emx_dtype frame_dtype, size_t frame_size,
                           void *input, emx_dtype input_dtype,
                           size_t input_size, emx__errbuf *err) {
  size_t fsz = frame_dtype == EMX_DTYPE_FLOAT32 ? sizeof(float) : 1;
  size_t isz = input_dtype == EMX_DTYPE_FLOAT32 ? sizeof(float) : 1;
  bool ok =
      (frame_dtype == EMX_DTYPE_UINT8 &&
       (input_dtype == EMX_DTYPE_FLOAT32 || input_dtype == EMX_DTYPE_UINT8 ||
        input_dtype == EMX_DTYPE_INT8)) ||
      (frame_dtype == EMX_DTYPE_FLOAT32 && input_dtype == EMX_DTYPE_FLOAT32);
  if (!ok)
    return emx__errf(err, EMX_EDTYPE,
                     "detection: a %s frame cannot feed a %s input (send "
                     "uint8 frames, or float32 to a float32 model)",
                     emx_dtype_name(frame_dtype), emx_dtype_name(input_dtype));
  if (frame_size % fsz || input_size % isz ||
      frame_size / fsz != input_size / isz)
    return emx__errf(err, EMX_ESIZE,
                     "detection: the frame has %zu bytes (%zu %s values) but "
                     "the model's input takes %zu values (%zu bytes of %s)",
                     frame_size, frame_size / fsz, emx_dtype_name(frame_dtype),
                     input_size / isz, input_size, emx_dtype_name(input_dtype));
  size_t n = input_size / isz;
  if (frame_dtype == input_dtype) {
    memcpy(input, frame, input_size);
  } else if (input_dtype == EMX_DTYPE_INT8) {
    const uint8_t *px = frame;
    int8_t *q = input;
    for (size_t i = 0; i < n; i++)
      q[i] = (int8_t)((int)px[i] - 128);
  } else {
    const uint8_t *px = frame;
    float *f = input;
    size_t nc = (size_t)cfg->n_channels;
    for (size_t i = 0; i < n; i++)
      f[i] = ((float)px[i] - cfg->mean[i % nc]) * cfg->scale[i % nc];
  }
  return 0;
}
