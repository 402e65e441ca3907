/*
 * detect.h — object-detection post-processing, shared by every front door.
 *
 * A detection model's raw outputs become the rows Frigate (and the HTTP
 * infer's extra output) expect: `max_detections` rows of six floats,
 *
 *     [class_id, score, ymin, xmin, ymax, xmax]
 *
 * coordinates normalised to 0..1, sorted by score (highest first), zero rows
 * after the last detection. Two kinds of model are handled:
 *
 *   ssd          raw SSD outputs (box encodings N x 4 and class scores
 *                N x C): anchors generated from the standard parameters
 *                (TensorFlow's object detection API / MediaPipe's
 *                SsdAnchorsCalculator), boxes decoded against them, scores
 *                through a sigmoid (or taken raw), non-maximum suppression
 *                per class (or across classes), top-K.
 *   postprocess  models that already end in TFLite_Detection_PostProcess
 *                (Coral's *_edgetpu.tflite detectors): boxes, classes, scores
 *                and count map straight onto rows.
 *
 * The settings come from the "detection" object of a model's config.json
 * (docs/detection.md), together with how a uint8 frame becomes the model's
 * input. Typical use by a front door:
 *
 *     emx__detect_config cfg;
 *     emx__errbuf err;
 *     if (emx__detect_config_parse(&cfg, json_object_get(root, "detection"),
 *                                  &err) < 0) ... err.msg says which key
 *     emx__detector *det;
 *     if (emx__detector_create(&det, &cfg, &err) < 0) ...
 *     // per frame:
 *     emx__detect_fill_input(&cfg, frame, EMX_DTYPE_UINT8, frame_bytes,
 *                            input, input_dtype, input_bytes, &err);
 *     ... invoke ...
 *     float rows[20][6];
 *     int n = emx__detector_run(det, outs, n_outs, &rows[0][0], 20, NULL,
 *                               &err);
 *     emx__detector_destroy(det);
 *
 * A detector is immutable once created: any number of threads may call
 * emx__detector_run on one at the same time (each call allocates its own
 * scratch).
 */
#ifndef EMX_DETECT_DETECT_H
#define EMX_DETECT_DETECT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "edgemux/edgemux.h"

/* Fixed capacities: a config never needs more, and fixed arrays keep the
 * config a plain value that can be copied. */
#define EMX__DETECT_MAX_LAYERS 16  /* anchor layers (strides) */
#define EMX__DETECT_MAX_RATIOS 16  /* aspect ratios per layer */
#define EMX__DETECT_MAX_IGNORE 32  /* ignored class ids */
#define EMX__DETECT_MAX_CHANNELS 4 /* per-channel mean/scale */
#define EMX__DETECT_MAX_ROWS 1000  /* max_detections */
#define EMX__DETECT_ROW 6          /* floats per row */

typedef enum emx__detect_type {
  EMX__DETECT_SSD = 1,         /* raw box encodings + class scores */
  EMX__DETECT_POSTPROCESS = 2, /* TFLite_Detection_PostProcess outputs */
} emx__detect_type;

/* emx__ssd_anchor_options mirrors MediaPipe's SsdAnchorsCalculatorOptions
 * (which follows the object detection API's multiple_grid_anchor_generator).
 */
typedef struct emx__ssd_anchor_options {
  int num_layers;        /* layers; = n_strides */
  float min_scale;       /* scale of the lowest layer */
  float max_scale;       /* scale of the highest layer */
  int input_height;      /* model input, pixels (for stride -> grid) */
  int input_width;       /* model input, pixels */
  float anchor_offset_x; /* cell-relative anchor centre, usually 0.5 */
  float anchor_offset_y; /* cell-relative anchor centre, usually 0.5 */
  int n_strides;         /* entries in strides */
  int strides[EMX__DETECT_MAX_LAYERS]; /* pixels per cell, per layer */
  int n_feature_maps;                  /* 0: grid = ceil(input / stride) */
  int feature_map_height[EMX__DETECT_MAX_LAYERS]; /* explicit grid rows */
  int feature_map_width[EMX__DETECT_MAX_LAYERS];  /* explicit grid columns */
  int n_aspect_ratios;                            /* entries in aspect_ratios */
  float aspect_ratios[EMX__DETECT_MAX_RATIOS];    /* width / height */
  float interpolated_scale_aspect_ratio; /* > 0: one more anchor per cell at
                                            sqrt(scale * next scale) */
  bool reduce_boxes_in_lowest_layer; /* layer 0: (0.1, 1), (s, 2), (s, 0.5) */
  bool fixed_anchor_size; /* anchors 1 x 1 (the model encodes size) */
} emx__ssd_anchor_options;

/* emx__detect_config is one model's "detection" settings. */
typedef struct emx__detect_config {
  emx__detect_type type; /* ssd or postprocess */
  char labels[256];      /* label file name in the model's folder, or "" */

  /* input conversion for float inputs: (pixel - mean[c]) * scale[c], c the
   * channel (element index modulo n_channels). Quantized (uint8/int8) inputs
   * are passed through. */
  int n_channels;                        /* 1: one mean/scale for all */
  float mean[EMX__DETECT_MAX_CHANNELS];  /* subtracted first */
  float scale[EMX__DETECT_MAX_CHANNELS]; /* then multiplied */

  /* ssd only */
  emx__ssd_anchor_options anchors; /* anchor generation */
  float y_scale, x_scale;          /* centre encodings are divided by these */
  float h_scale, w_scale;          /* size encodings are divided by these */
  bool apply_exponential_on_box_size; /* size = exp(enc / scale) * anchor */
  bool reverse_output_order; /* encodings are x, y, w, h (not y, x, h, w) */
  bool sigmoid_score;        /* scores are logits: apply a sigmoid */
  bool class_agnostic;       /* one best class per box, NMS across classes */
  int n_ignore;              /* entries in ignore_classes */
  int ignore_classes[EMX__DETECT_MAX_IGNORE]; /* e.g. 0, the background */
  float iou_threshold; /* suppress a box overlapping a kept one by more */
  int max_per_class;   /* kept per class before the merge (per-class NMS) */

  /* both */
  float score_threshold; /* rows need score >= this */
  int max_detections;    /* rows written; 20 for Frigate */
  int label_offset;      /* added to every class id */
  bool clip_boxes;       /* clamp coordinates to 0..1 */
  /* output tensor positions: ssd uses boxes and scores; postprocess all four
   */
  int out_boxes, out_scores, out_classes, out_count;
} emx__detect_config;

/* emx__detect_config_init fills *cfg with the defaults docs/detection.md
 * lists (an SSD with MediaPipe's usual decoding, Frigate's 20 rows). */
void emx__detect_config_init(emx__detect_config *cfg);

/* emx__detect_config_parse fills *cfg from a "detection" JSON object (the
 * caller keeps ownership of obj): defaults first, then each key. Unknown or
 * malformed keys fail with EMX_EINVAL and a message in err naming the key
 * (as "detection.anchors.strides") and what it must be. */
int emx__detect_config_parse(emx__detect_config *cfg, const json_t *obj,
                             emx__errbuf *err);

/* emx__anchor is one SSD anchor, normalised to the input (0..1). */
typedef struct emx__anchor {
  float y_center; /* centre, rows */
  float x_center; /* centre, columns */
  float h;        /* height */
  float w;        /* width */
} emx__anchor;

/* emx__ssd_anchors generates the anchors of `opt` into a malloc'd array
 * (*out, *count; the caller frees it), in the order SSD models lay out their
 * outputs: layer, then grid row, then column, then anchor in the cell. */
int emx__ssd_anchors(const emx__ssd_anchor_options *opt, emx__anchor **out,
                     size_t *count, emx__errbuf *err);

/* emx__detect_tensor is a view of one model output: its bytes and how to
 * read them (scale/zero_point dequantize uint8/int8; scale 0: float32). Fill
 * it from emx_tensor_info and the output buffer. */
typedef struct emx__detect_tensor {
  const void *data;   /* the output's bytes; caller keeps ownership */
  size_t size;        /* bytes at data */
  emx_dtype dtype;    /* float32, uint8 or int8 */
  float scale;        /* quantization scale (uint8/int8) */
  int32_t zero_point; /* quantization zero point (uint8/int8) */
} emx__detect_tensor;

typedef struct emx__detector emx__detector;

/* emx__detector_create builds a detector for `cfg` (copied; the caller keeps
 * cfg): for ssd, the anchors. */
int emx__detector_create(emx__detector **out, const emx__detect_config *cfg,
                         emx__errbuf *err);

/* emx__detector_destroy frees d. Accepts NULL. */
void emx__detector_destroy(emx__detector *d);

/* emx__detector_config returns d's settings; valid until destroy. */
const emx__detect_config *emx__detector_config(const emx__detector *d);

/* emx__detector_anchors returns d's anchors and their number (NULL, 0 for
 * postprocess); valid until destroy. */
const emx__anchor *emx__detector_anchors(const emx__detector *d, size_t *count);

/* emx__detector_run turns one invoke's outputs (all of them, in the model's
 * order) into rows: writes exactly cfg.max_detections rows of
 * EMX__DETECT_ROW floats to `rows` (room for `cap` rows; cap must be at least
 * max_detections), zero rows after the last detection, and returns the
 * number of detections. `source` (may be NULL; room for cap) receives each
 * detection's box index (the anchor, for ssd), -1 on zero rows.
 * EMX_ECOUNT / EMX_ESIZE / EMX_EDTYPE when the outputs do not fit the
 * config, with err naming the tensor and what was expected. */
int emx__detector_run(const emx__detector *d, const emx__detect_tensor *outs,
                      size_t n_outs, float *rows, size_t cap, int32_t *source,
                      emx__errbuf *err);

/* emx__detect_fill_input converts one frame into the model's input buffer:
 * uint8 pixels to a float32 input by cfg's mean and scale; float32 frames to
 * a float32 input, uint8 frames to a uint8 input as they are; uint8 frames to
 * an int8 input as pixel - 128 (int8 detectors quantize their input with
 * zero point -128 where uint8 ones use 0). The element counts must match:
 * EMX_ESIZE otherwise, EMX_EDTYPE for other pairs, with err saying which. */
int emx__detect_fill_input(const emx__detect_config *cfg, const void *frame,
                           emx_dtype frame_dtype, size_t frame_size,
                           void *input, emx_dtype input_dtype,
                           size_t input_size, emx__errbuf *err);

#endif
