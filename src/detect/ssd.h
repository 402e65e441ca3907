/* ssd.h — SSD decoding and non-maximum suppression (private to src/detect).
 */
#ifndef EMX_DETECT_SSD_H
#define EMX_DETECT_SSD_H

#include "detect/detect.h"

/* emx__detect_cand is one scored box: a detection candidate. */
typedef struct emx__detect_cand {
  float score; /* after the sigmoid when configured */
  int32_t box; /* index of the box (anchor) */
  int32_t cls; /* class index in the model's scores */
} emx__detect_cand;

/* emx__detect_cand_sort orders candidates by score, highest first; ties by
 * box, then class, so that every run (and the reference) agrees. */
void emx__detect_cand_sort(emx__detect_cand *c, size_t n);

/* emx__ssd_run decodes `enc` (n_anchors x 4) against the anchors, scores
 * `logits` (n_anchors x n_classes), suppresses and writes the kept
 * detections as rows (at most cfg->max_detections; the caller zeroed rows
 * and set source to -1). Returns their number or EMX_ENOMEM. */
int emx__ssd_run(const emx__detect_config *cfg, const emx__anchor *anchors,
                 size_t n_anchors, const float *enc, const float *logits,
                 size_t n_classes, float *rows, int32_t *source,
                 emx__errbuf *err);

/* emx__detect_row writes one row: class + label_offset, score, the box
 * (ymin, xmin, ymax, xmax) clipped to 0..1 when configured. */
void emx__detect_row(const emx__detect_config *cfg, float *row, int cls,
                     float score, const float box[4]);

#endif
