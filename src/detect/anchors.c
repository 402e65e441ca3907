/* anchors.c — SSD anchor generation from the standard parameters.
 *
 * The layout follows MediaPipe's SsdAnchorsCalculator, itself a port of the
 * object detection API's multiple_grid_anchor_generator: layer i has scale
 * min + (max - min) * i / (layers - 1); each cell of its grid gets one anchor
 * per aspect ratio ar (height scale / sqrt(ar), width scale * sqrt(ar)) plus,
 * when interpolated_scale_aspect_ratio > 0, one at sqrt(scale_i *
 * scale_{i+1}) (1.0 past the last layer). Consecutive layers of equal stride
 * share one grid. The lowest layer may instead use the reduced set (0.1, 1.0),
 * (scale, 2.0), (scale, 0.5) that SSD MobileNet models were trained with. */
#include <math.h>
#include <stdlib.h>

#include "detect/detect.h"

static float layer_scale(const emx__ssd_anchor_options *o, int layer) {
  if (o->n_strides == 1)
    return (o->min_scale + o->max_scale) * 0.5f;
  return o->min_scale +
         (o->max_scale - o->min_scale) * layer / (o->n_strides - 1.0f);
}

static int check(const emx__ssd_anchor_options *o, emx__errbuf *err) {
  if (o->n_strides < 1 || o->n_strides > EMX__DETECT_MAX_LAYERS)
    return emx__errf(err, EMX_EINVAL,
                     "detection.anchors.strides: %d layers; give 1..%d",
                     o->n_strides, EMX__DETECT_MAX_LAYERS);
  if (o->num_layers != o->n_strides)
    return emx__errf(err, EMX_EINVAL,
                     "detection.anchors: num_layers is %d but strides lists "
                     "%d; give one stride per layer",
                     o->num_layers, o->n_strides);
  if (o->n_feature_maps != 0 && o->n_feature_maps != o->n_strides)
    return emx__errf(err, EMX_EINVAL,
                     "detection.anchors: feature_map_height/width list %d "
                     "layers but strides %d; give one per layer or none",
                     o->n_feature_maps, o->n_strides);
  for (int i = 0; i < o->n_strides; i++) {
    if (o->strides[i] <= 0)
      return emx__errf(err, EMX_EINVAL,
                       "detection.anchors.strides[%d] is %d; strides must "
                       "be positive",
                       i, o->strides[i]);
    if (o->n_feature_maps &&
        (o->feature_map_height[i] <= 0 || o->feature_map_width[i] <= 0))
      return emx__errf(err, EMX_EINVAL,
                       "detection.anchors.feature_map_height/width[%d] must "
                       "be positive",
                       i);
  }
  if (!o->n_feature_maps && (o->input_height <= 0 || o->input_width <= 0))
    return emx__errf(err, EMX_EINVAL,
                     "detection.anchors: input_height and input_width must "
                     "be positive (or give feature_map_height/width)");
  if (o->n_aspect_ratios < 1)
    return emx__errf(err, EMX_EINVAL,
                     "detection.anchors.aspect_ratios: give at least one");
  for (int i = 0; i < o->n_aspect_ratios; i++)
    if (!(o->aspect_ratios[i] > 0))
      return emx__errf(err, EMX_EINVAL,
                       "detection.anchors.aspect_ratios[%d] must be > 0", i);
  return 0;
}

int emx__ssd_anchors(const emx__ssd_anchor_options *o, emx__anchor **out,
                     size_t *count, emx__errbuf *err) {
  *out = NULL;
  *count = 0;
  int rc = check(o, err);
  if (rc < 0)
    return rc;

  /* Per-cell specs of one merged layer: at most every layer of the merge
   * contributes every ratio plus the interpolated one. */
  enum { SPECS = EMX__DETECT_MAX_LAYERS * (EMX__DETECT_MAX_RATIOS + 1) };
  float hs[SPECS], ws[SPECS];

  /* First pass counts, second fills: the grids are cheap to walk twice and
   * one exact allocation beats a growing one. */
  emx__anchor *a = NULL;
  size_t total = 0;
  for (int pass = 0; pass < 2; pass++) {
    size_t n = 0;
    int layer = 0;
    while (layer < o->n_strides) {
      int nspec = 0;
      int last = layer;
      for (; last < o->n_strides && o->strides[last] == o->strides[layer];
           last++) {
        float scale = layer_scale(o, last);
        float sc[EMX__DETECT_MAX_RATIOS + 1], ar[EMX__DETECT_MAX_RATIOS + 1];
        int k = 0;
        if (last == 0 && o->reduce_boxes_in_lowest_layer) {
          sc[k] = 0.1f, ar[k++] = 1.0f;
          sc[k] = scale, ar[k++] = 2.0f;
          sc[k] = scale, ar[k++] = 0.5f;
        } else {
          for (int r = 0; r < o->n_aspect_ratios; r++)
            sc[k] = scale, ar[k++] = o->aspect_ratios[r];
          if (o->interpolated_scale_aspect_ratio > 0) {
            float next =
                last == o->n_strides - 1 ? 1.0f : layer_scale(o, last + 1);
            sc[k] = sqrtf(scale * next);
            ar[k++] = o->interpolated_scale_aspect_ratio;
          }
        }
        for (int s = 0; s < k; s++, nspec++) {
          float root = sqrtf(ar[s]);
          hs[nspec] = sc[s] / root;
          ws[nspec] = sc[s] * root;
        }
      }
      int fh, fw;
      if (o->n_feature_maps) {
        fh = o->feature_map_height[layer];
        fw = o->feature_map_width[layer];
      } else {
        fh = (int)ceilf((float)o->input_height / o->strides[layer]);
        fw = (int)ceilf((float)o->input_width / o->strides[layer]);
      }
      for (int y = 0; y < fh; y++)
        for (int x = 0; x < fw; x++)
          for (int s = 0; s < nspec; s++, n++) {
            if (!a)
              continue;
            a[n].x_center = (x + o->anchor_offset_x) / fw;
            a[n].y_center = (y + o->anchor_offset_y) / fh;
            a[n].w = o->fixed_anchor_size ? 1.0f : ws[s];
            a[n].h = o->fixed_anchor_size ? 1.0f : hs[s];
          }
      layer = last;
    }
    if (pass == 0) {
      total = n;
      a = malloc(total * sizeof *a);
      if (!a)
        return emx__errf(err, EMX_ENOMEM, "detection: %zu anchors: %s", total,
                         "out of memory");
    }
  }
  *out = a;
  *count = total;
  return 0;
}
