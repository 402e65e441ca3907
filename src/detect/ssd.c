/* ssd.c — SSD box decoding, scoring and non-maximum suppression.
 *
 * Decoding is the object detection API's FasterRcnnBoxCoder as MediaPipe's
 * TensorsToDetectionsCalculator applies it: centre = enc / scale * anchor
 * size + anchor centre, size = exp(enc / scale) * anchor size. Suppression
 * is greedy: candidates in score order, each kept unless it overlaps an
 * already kept one by IoU > iou_threshold. Per class (the detection API's
 * "regular" NMS, each class on its own, then the best of all classes) or
 * across classes (each box votes once, for its best class, as MediaPipe
 * does). */
#include <math.h>
#include <stdlib.h>

#include "detect/ssd.h"

static int cand_cmp(const void *pa, const void *pb) {
  const emx__detect_cand *a = pa, *b = pb;
  if (a->score != b->score)
    return a->score > b->score ? -1 : 1;
  if (a->box != b->box)
    return a->box < b->box ? -1 : 1;
  return (a->cls > b->cls) - (a->cls < b->cls);
}

void emx__detect_cand_sort(emx__detect_cand *c, size_t n) {
  qsort(c, n, sizeof *c, cand_cmp);
}

static float clip01(float v) {
  return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

void emx__detect_row(const emx__detect_config *cfg, float *row, int cls,
                     float score, const float box[4]) {
  row[0] = (float)(cls + cfg->label_offset);
  row[1] = score;
  for (int i = 0; i < 4; i++)
    row[2 + i] = cfg->clip_boxes ? clip01(box[i]) : box[i];
}

/* decode writes boxes as ymin, xmin, ymax, xmax. */
static void decode(const emx__detect_config *cfg, const emx__anchor *a,
                   size_t n, const float *enc, float *boxes) {
  for (size_t i = 0; i < n; i++) {
    const float *e = enc + 4 * i;
    float yc = e[0], xc = e[1], h = e[2], w = e[3];
    if (cfg->reverse_output_order)
      xc = e[0], yc = e[1], w = e[2], h = e[3];
    yc = yc / cfg->y_scale * a[i].h + a[i].y_center;
    xc = xc / cfg->x_scale * a[i].w + a[i].x_center;
    if (cfg->apply_exponential_on_box_size) {
      h = expf(h / cfg->h_scale) * a[i].h;
      w = expf(w / cfg->w_scale) * a[i].w;
    } else {
      h = h / cfg->h_scale * a[i].h;
      w = w / cfg->w_scale * a[i].w;
    }
    float *b = boxes + 4 * i;
    b[0] = yc - h / 2.0f;
    b[1] = xc - w / 2.0f;
    b[2] = yc + h / 2.0f;
    b[3] = xc + w / 2.0f;
  }
}

/* iou of two ymin, xmin, ymax, xmax boxes; 0 when either is empty (so a
 * degenerate box never suppresses, nor is suppressed). */
static float iou(const float *a, const float *b) {
  float area_a = (a[2] - a[0]) * (a[3] - a[1]);
  float area_b = (b[2] - b[0]) * (b[3] - b[1]);
  if (!(area_a > 0.0f) || !(area_b > 0.0f))
    return 0.0f;
  float ih = fminf(a[2], b[2]) - fmaxf(a[0], b[0]);
  float iw = fminf(a[3], b[3]) - fmaxf(a[1], b[1]);
  if (ih <= 0.0f || iw <= 0.0f)
    return 0.0f;
  float inter = ih * iw;
  return inter / (area_a + area_b - inter);
}

/* nms keeps at most `max` of the sorted candidates c[0..n) into out and
 * returns how many. O(n * kept): kept is bounded by max (max_per_class or
 * max_detections), so a frame stays cheap however many boxes pass. */
static size_t nms(const float *boxes, const emx__detect_cand *c, size_t n,
                  float thr, size_t max, emx__detect_cand *out) {
  size_t k = 0;
  for (size_t i = 0; i < n && k < max; i++) {
    const float *bi = boxes + 4 * (size_t)c[i].box;
    bool keep = true;
    for (size_t j = 0; j < k && keep; j++)
      keep = !(iou(bi, boxes + 4 * (size_t)out[j].box) > thr);
    if (keep)
      out[k++] = c[i];
  }
  return k;
}

static bool ignored(const emx__detect_config *cfg, size_t cls) {
  for (int i = 0; i < cfg->n_ignore; i++)
    if ((size_t)cfg->ignore_classes[i] == cls)
      return true;
  return false;
}

static float score_of(const emx__detect_config *cfg, float logit) {
  return cfg->sigmoid_score ? 1.0f / (1.0f + expf(-logit)) : logit;
}

int emx__ssd_run(const emx__detect_config *cfg, const emx__anchor *anchors,
                 size_t n_anchors, const float *enc, const float *logits,
                 size_t n_classes, float *rows, int32_t *source,
                 emx__errbuf *err) {
  size_t max_keep = cfg->class_agnostic ? (size_t)cfg->max_detections
                                        : (size_t)cfg->max_per_class;
  if (max_keep > n_anchors)
    max_keep = n_anchors;
  size_t n_kept_cap = cfg->class_agnostic ? max_keep : max_keep * n_classes;
  float *boxes = malloc(n_anchors * 4 * sizeof *boxes);
  emx__detect_cand *cand = malloc(n_anchors * sizeof *cand);
  emx__detect_cand *kept = malloc((n_kept_cap + 1) * sizeof *kept);
  int rc = 0;
  if (!boxes || !cand || !kept) {
    rc = emx__errf(err, EMX_ENOMEM,
                   "detection: scratch for %zu boxes x %zu classes: out of "
                   "memory",
                   n_anchors, n_classes);
    goto out;
  }
  decode(cfg, anchors, n_anchors, enc, boxes);

  size_t n_kept = 0;
  if (cfg->class_agnostic) {
    size_t n = 0;
    for (size_t i = 0; i < n_anchors; i++) {
      const float *l = logits + i * n_classes;
      int best = -1;
      for (size_t c = 0; c < n_classes; c++)
        if (!ignored(cfg, c) && (best < 0 || l[c] > l[best]))
          best = (int)c;
      if (best < 0)
        break; /* every class ignored: nothing can be detected */
      /* The sigmoid is monotonic: the best logit is the best score. */
      float s = score_of(cfg, l[best]);
      if (s >= cfg->score_threshold)
        cand[n++] = (emx__detect_cand){s, (int32_t)i, best};
    }
    emx__detect_cand_sort(cand, n);
    n_kept = nms(boxes, cand, n, cfg->iou_threshold, max_keep, kept);
  } else {
    for (size_t c = 0; c < n_classes; c++) {
      if (ignored(cfg, c))
        continue;
      size_t n = 0;
      for (size_t i = 0; i < n_anchors; i++) {
        float s = score_of(cfg, logits[i * n_classes + c]);
        if (s >= cfg->score_threshold)
          cand[n++] = (emx__detect_cand){s, (int32_t)i, (int32_t)c};
      }
      emx__detect_cand_sort(cand, n);
      n_kept +=
          nms(boxes, cand, n, cfg->iou_threshold, max_keep, kept + n_kept);
    }
    emx__detect_cand_sort(kept, n_kept);
  }

  size_t rows_out = n_kept < (size_t)cfg->max_detections
                        ? n_kept
                        : (size_t)cfg->max_detections;
  for (size_t r = 0; r < rows_out; r++) {
    emx__detect_row(cfg, rows + r * EMX__DETECT_ROW, kept[r].cls, kept[r].score,
                    boxes + 4 * (size_t)kept[r].box);
    if (source)
      source[r] = kept[r].box;
  }
  rc = (int)rows_out;
out:
  free(boxes);
  free(cand);
  free(kept);
  return rc;
}
