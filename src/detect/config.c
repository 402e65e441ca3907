/* config.c — a model's "detection" settings from its config.json.
 *
 * Strict: an unknown key or a value of the wrong kind fails with the key's
 * full path, so a typo ("iou_treshold") is an error at load rather than a
 * silently ignored setting. The keys are documented in docs/detection.md. */
#include <math.h>
#include <string.h>

#include "detect/detect.h"

void emx__detect_config_init(emx__detect_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->type = EMX__DETECT_SSD;
  cfg->n_channels = 1;
  cfg->mean[0] = 0.0f;
  cfg->scale[0] = 1.0f;
  cfg->anchors.anchor_offset_x = 0.5f;
  cfg->anchors.anchor_offset_y = 0.5f;
  cfg->anchors.interpolated_scale_aspect_ratio = 1.0f;
  /* The object detection API's box coder defaults. */
  cfg->y_scale = 10.0f;
  cfg->x_scale = 10.0f;
  cfg->h_scale = 5.0f;
  cfg->w_scale = 5.0f;
  cfg->apply_exponential_on_box_size = true;
  cfg->sigmoid_score = true;
  cfg->iou_threshold = 0.5f;
  cfg->max_per_class = 100;
  cfg->score_threshold = 0.5f;
  cfg->max_detections = 20; /* Frigate's fixed reply: 20 rows */
  cfg->clip_boxes = true;
  cfg->out_boxes = 0;
  cfg->out_scores = 1; /* ssd: encodings then scores */
  cfg->out_classes = 1;
  cfg->out_count = 3; /* postprocess: boxes, classes, scores, count */
}

/* A small parse context: the path prefix for messages and the error
 * buffer. */
typedef struct ctx {
  const char *where; /* "detection" or "detection.anchors" */
  emx__errbuf *err;
} ctx;

static int bad(const ctx *c, const char *key, const char *want) {
  return emx__errf(c->err, EMX_EINVAL, "%s.%s: must be %s", c->where, key,
                   want);
}

static int get_bool(const ctx *c, const char *key, const json_t *v, bool *out) {
  if (!json_is_boolean(v))
    return bad(c, key, "true or false");
  *out = json_is_true(v);
  return 0;
}

static int get_float(const ctx *c, const char *key, const json_t *v, float lo,
                     float hi, float *out) {
  if (!json_is_number(v))
    return bad(c, key, "a number");
  double d = json_number_value(v);
  if (!(d >= lo && d <= hi)) {
    return emx__errf(c->err, EMX_EINVAL, "%s.%s: %g is outside %g..%g",
                     c->where, key, d, lo, hi);
  }
  *out = (float)d;
  return 0;
}

static int get_int(const ctx *c, const char *key, const json_t *v, int lo,
                   int hi, int *out) {
  if (!json_is_integer(v))
    return bad(c, key, "an integer");
  json_int_t i = json_integer_value(v);
  if (i < lo || i > hi)
    return emx__errf(c->err, EMX_EINVAL, "%s.%s: %lld is outside %d..%d",
                     c->where, key, (long long)i, lo, hi);
  *out = (int)i;
  return 0;
}

/* get_ints reads an array of at most cap integers in lo..hi. */
static int get_ints(const ctx *c, const char *key, const json_t *v, int lo,
                    int hi, int *out, int cap, int *n) {
  if (!json_is_array(v) || json_array_size(v) > (size_t)cap)
    return emx__errf(c->err, EMX_EINVAL,
                     "%s.%s: must be an array of at most %d integers", c->where,
                     key, cap);
  size_t i;
  json_t *e;
  json_array_foreach(v, i, e) {
    if (!json_is_integer(e) || json_integer_value(e) < lo ||
        json_integer_value(e) > hi)
      return emx__errf(c->err, EMX_EINVAL,
                       "%s.%s[%zu]: must be an integer in %d..%d", c->where,
                       key, i, lo, hi);
    out[i] = (int)json_integer_value(e);
  }
  *n = (int)json_array_size(v);
  return 0;
}

/* get_floats reads a number (one value) or an array of at most cap numbers;
 * a number counts as an array of one. */
static int get_floats(const ctx *c, const char *key, const json_t *v,
                      float *out, int cap, int *n) {
  if (json_is_number(v)) {
    out[0] = (float)json_number_value(v);
    *n = 1;
    return 0;
  }
  if (!json_is_array(v) || json_array_size(v) < 1 ||
      json_array_size(v) > (size_t)cap)
    return emx__errf(c->err, EMX_EINVAL,
                     "%s.%s: must be a number or an array of 1..%d numbers",
                     c->where, key, cap);
  size_t i;
  json_t *e;
  json_array_foreach(v, i, e) {
    if (!json_is_number(e) || !isfinite(json_number_value(e)))
      return emx__errf(c->err, EMX_EINVAL, "%s.%s[%zu]: must be a number",
                       c->where, key, i);
    out[i] = (float)json_number_value(e);
  }
  *n = (int)json_array_size(v);
  return 0;
}

static int parse_input(emx__detect_config *cfg, const json_t *obj,
                       emx__errbuf *err) {
  ctx c = {"detection.input", err};
  if (!json_is_object(obj))
    return emx__errf(err, EMX_EINVAL,
                     "detection.input: must be an object like {\"mean\": "
                     "127.5, \"scale\": 0.00784}");
  int nm = 1, ns = 1, rc = 0;
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)obj, key, v) {
    if (strcmp(key, "mean") == 0)
      rc = get_floats(&c, key, v, cfg->mean, EMX__DETECT_MAX_CHANNELS, &nm);
    else if (strcmp(key, "scale") == 0)
      rc = get_floats(&c, key, v, cfg->scale, EMX__DETECT_MAX_CHANNELS, &ns);
    else
      rc = emx__errf(err, EMX_EINVAL,
                     "detection.input.%s: unknown key (known: mean, scale)",
                     key);
    if (rc < 0)
      return rc;
  }
  /* One value applies to every channel; else both lists name the same
   * channels. */
  if (nm != ns && nm != 1 && ns != 1)
    return emx__errf(err, EMX_EINVAL,
                     "detection.input: mean has %d values and scale %d; give "
                     "one value or one per channel for each",
                     nm, ns);
  int n = nm > ns ? nm : ns;
  for (int i = 1; i < n; i++) {
    if (nm == 1)
      cfg->mean[i] = cfg->mean[0];
    if (ns == 1)
      cfg->scale[i] = cfg->scale[0];
  }
  cfg->n_channels = n;
  return 0;
}

static int parse_anchors(emx__ssd_anchor_options *o, const json_t *obj,
                         emx__errbuf *err) {
  ctx c = {"detection.anchors", err};
  if (!json_is_object(obj))
    return emx__errf(err, EMX_EINVAL, "detection.anchors: must be an object");
  int rc = 0, nh = 0, nw = 0;
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)obj, key, v) {
    if (strcmp(key, "num_layers") == 0)
      rc = get_int(&c, key, v, 1, EMX__DETECT_MAX_LAYERS, &o->num_layers);
    else if (strcmp(key, "min_scale") == 0)
      rc = get_float(&c, key, v, 0, 10, &o->min_scale);
    else if (strcmp(key, "max_scale") == 0)
      rc = get_float(&c, key, v, 0, 10, &o->max_scale);
    else if (strcmp(key, "input_height") == 0)
      rc = get_int(&c, key, v, 1, 1 << 16, &o->input_height);
    else if (strcmp(key, "input_width") == 0)
      rc = get_int(&c, key, v, 1, 1 << 16, &o->input_width);
    else if (strcmp(key, "anchor_offset_x") == 0)
      rc = get_float(&c, key, v, 0, 1, &o->anchor_offset_x);
    else if (strcmp(key, "anchor_offset_y") == 0)
      rc = get_float(&c, key, v, 0, 1, &o->anchor_offset_y);
    else if (strcmp(key, "strides") == 0)
      rc = get_ints(&c, key, v, 1, 1 << 16, o->strides, EMX__DETECT_MAX_LAYERS,
                    &o->n_strides);
    else if (strcmp(key, "feature_map_height") == 0)
      rc = get_ints(&c, key, v, 1, 1 << 16, o->feature_map_height,
                    EMX__DETECT_MAX_LAYERS, &nh);
    else if (strcmp(key, "feature_map_width") == 0)
      rc = get_ints(&c, key, v, 1, 1 << 16, o->feature_map_width,
                    EMX__DETECT_MAX_LAYERS, &nw);
    else if (strcmp(key, "aspect_ratios") == 0)
      rc = get_floats(&c, key, v, o->aspect_ratios, EMX__DETECT_MAX_RATIOS,
                      &o->n_aspect_ratios);
    else if (strcmp(key, "interpolated_scale_aspect_ratio") == 0)
      rc = get_float(&c, key, v, 0, 100, &o->interpolated_scale_aspect_ratio);
    else if (strcmp(key, "reduce_boxes_in_lowest_layer") == 0)
      rc = get_bool(&c, key, v, &o->reduce_boxes_in_lowest_layer);
    else if (strcmp(key, "fixed_anchor_size") == 0)
      rc = get_bool(&c, key, v, &o->fixed_anchor_size);
    else
      rc = emx__errf(err, EMX_EINVAL,
                     "detection.anchors.%s: unknown key (see "
                     "docs/detection.md)",
                     key);
    if (rc < 0)
      return rc;
  }
  if (nh != nw)
    return emx__errf(err, EMX_EINVAL,
                     "detection.anchors: feature_map_height has %d entries "
                     "and feature_map_width %d; give both per layer",
                     nh, nw);
  o->n_feature_maps = nh;
  /* num_layers may be left out: the strides say it. */
  if (o->num_layers == 0)
    o->num_layers = o->n_strides;
  if (o->n_strides == 0)
    return emx__errf(err, EMX_EINVAL,
                     "detection.anchors.strides: missing; give one stride "
                     "per layer, e.g. [16, 32, 64, 128, 256, 512]");
  return 0;
}

static int parse_type(const ctx *c, const char *key, const json_t *v,
                      emx__detect_config *cfg) {
  const char *s = json_string_value(v);
  if (s && strcmp(s, "ssd") == 0)
    cfg->type = EMX__DETECT_SSD;
  else if (s && strcmp(s, "postprocess") == 0)
    cfg->type = EMX__DETECT_POSTPROCESS;
  else
    return bad(c, key, "\"ssd\" or \"postprocess\"");
  return 0;
}

static int parse_choice(const ctx *c, const char *key, const json_t *v,
                        const char *yes, const char *no, bool *out) {
  const char *s = json_string_value(v);
  if (s && strcmp(s, yes) == 0)
    *out = true;
  else if (s && strcmp(s, no) == 0)
    *out = false;
  else
    return emx__errf(c->err, EMX_EINVAL, "%s.%s: must be \"%s\" or \"%s\"",
                     c->where, key, yes, no);
  return 0;
}

static int parse_outputs(emx__detect_config *cfg, const json_t *obj,
                         emx__errbuf *err) {
  ctx c = {"detection.outputs", err};
  if (!json_is_object(obj))
    return emx__errf(err, EMX_EINVAL,
                     "detection.outputs: must be an object like "
                     "{\"boxes\": 0, \"scores\": 1}");
  int rc = 0;
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)obj, key, v) {
    if (strcmp(key, "boxes") == 0)
      rc = get_int(&c, key, v, 0, 15, &cfg->out_boxes);
    else if (strcmp(key, "scores") == 0)
      rc = get_int(&c, key, v, 0, 15, &cfg->out_scores);
    else if (strcmp(key, "classes") == 0)
      rc = get_int(&c, key, v, 0, 15, &cfg->out_classes);
    else if (strcmp(key, "count") == 0)
      rc = get_int(&c, key, v, 0, 15, &cfg->out_count);
    else
      rc = emx__errf(err, EMX_EINVAL,
                     "detection.outputs.%s: unknown key (known: boxes, "
                     "scores, classes, count)",
                     key);
    if (rc < 0)
      return rc;
  }
  return 0;
}

int emx__detect_config_parse(emx__detect_config *cfg, const json_t *obj,
                             emx__errbuf *err) {
  emx__detect_config_init(cfg);
  if (!json_is_object(obj))
    return emx__errf(err, EMX_EINVAL,
                     "detection: must be an object (see docs/detection.md)");
  ctx c = {"detection", err};
  int rc = 0;
  /* The type first: it decides the default output positions that an
   * "outputs" key (in any order) then overrides. */
  const json_t *type = json_object_get(obj, "type");
  if (type && (rc = parse_type(&c, "type", type, cfg)) < 0)
    return rc;
  if (cfg->type == EMX__DETECT_POSTPROCESS) {
    cfg->out_boxes = 0;
    cfg->out_classes = 1;
    cfg->out_scores = 2;
    cfg->out_count = 3;
  }
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)obj, key, v) {
    if (strcmp(key, "type") == 0)
      continue;
    else if (strcmp(key, "labels") == 0) {
      const char *s = json_string_value(v);
      /* A file in the model's own folder, never a path elsewhere. */
      if (!s || !*s || strchr(s, '/') || strlen(s) >= sizeof cfg->labels)
        rc = bad(&c, key, "a file name in the model's folder");
      else
        strcpy(cfg->labels, s);
    } else if (strcmp(key, "input") == 0)
      rc = parse_input(cfg, v, err);
    else if (strcmp(key, "anchors") == 0)
      rc = parse_anchors(&cfg->anchors, v, err);
    else if (strcmp(key, "y_scale") == 0)
      rc = get_float(&c, key, v, 1e-6f, 1e6f, &cfg->y_scale);
    else if (strcmp(key, "x_scale") == 0)
      rc = get_float(&c, key, v, 1e-6f, 1e6f, &cfg->x_scale);
    else if (strcmp(key, "h_scale") == 0)
      rc = get_float(&c, key, v, 1e-6f, 1e6f, &cfg->h_scale);
    else if (strcmp(key, "w_scale") == 0)
      rc = get_float(&c, key, v, 1e-6f, 1e6f, &cfg->w_scale);
    else if (strcmp(key, "apply_exponential_on_box_size") == 0)
      rc = get_bool(&c, key, v, &cfg->apply_exponential_on_box_size);
    else if (strcmp(key, "box_order") == 0)
      rc = parse_choice(&c, key, v, "xywh", "yxhw", &cfg->reverse_output_order);
    else if (strcmp(key, "score") == 0)
      rc = parse_choice(&c, key, v, "sigmoid", "raw", &cfg->sigmoid_score);
    else if (strcmp(key, "nms") == 0)
      rc = parse_choice(&c, key, v, "class_agnostic", "per_class",
                        &cfg->class_agnostic);
    else if (strcmp(key, "ignore_classes") == 0)
      rc = get_ints(&c, key, v, 0, 1 << 20, cfg->ignore_classes,
                    EMX__DETECT_MAX_IGNORE, &cfg->n_ignore);
    else if (strcmp(key, "iou_threshold") == 0)
      rc = get_float(&c, key, v, 0, 1, &cfg->iou_threshold);
    else if (strcmp(key, "max_per_class") == 0)
      rc = get_int(&c, key, v, 1, 1 << 20, &cfg->max_per_class);
    else if (strcmp(key, "score_threshold") == 0)
      rc = get_float(&c, key, v, -1e30f, 1e30f, &cfg->score_threshold);
    else if (strcmp(key, "max_detections") == 0)
      rc = get_int(&c, key, v, 1, EMX__DETECT_MAX_ROWS, &cfg->max_detections);
    else if (strcmp(key, "label_offset") == 0)
      rc = get_int(&c, key, v, -(1 << 20), 1 << 20, &cfg->label_offset);
    else if (strcmp(key, "clip_boxes") == 0)
      rc = get_bool(&c, key, v, &cfg->clip_boxes);
    else if (strcmp(key, "outputs") == 0)
      rc = parse_outputs(cfg, v, err);
    else
      rc = emx__errf(err, EMX_EINVAL,
                     "detection.%s: unknown key (see docs/detection.md)", key);
    if (rc < 0)
      return rc;
  }
  int pos[4] = {cfg->out_boxes, cfg->out_scores, cfg->out_classes,
                cfg->out_count};
  int used = cfg->type == EMX__DETECT_SSD ? 2 : 4;
  for (int i = 0; i < used; i++)
    for (int j = i + 1; j < used; j++)
      if (pos[i] == pos[j])
        return emx__errf(err, EMX_EINVAL,
                         "detection.outputs: two outputs at position %d; "
                         "each of %s needs its own",
                         pos[i],
                         used == 2 ? "boxes, scores"
                                   : "boxes, classes, scores, count");
  if (cfg->type == EMX__DETECT_SSD && cfg->anchors.n_strides == 0)
    return emx__errf(err, EMX_EINVAL,
                     "detection.anchors: missing; an \"ssd\" model needs its "
                     "anchor parameters (see docs/detection.md)");
  for (int i = 0; i < cfg->n_channels; i++)
    if (!isfinite(cfg->scale[i]) || !isfinite(cfg->mean[i]))
      return emx__errf(err, EMX_EINVAL,
                       "detection.input: mean and scale must be finite");
  return 0;
}
