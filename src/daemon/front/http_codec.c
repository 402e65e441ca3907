/* http_codec.c — KServe v2 infer requests in, responses and metadata out.
 * Every check a request can fail happens here, before anything reaches
 * the engine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "daemon/front/http_codec.h"
#include "daemon/front/http_tensor.h"

bool emxh_json_depth_ok(const char *text, size_t len) {
  int depth = 0;
  bool in_str = false;
  for (size_t i = 0; i < len; i++) {
    char c = text[i];
    if (in_str) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '[' || c == '{') {
      if (++depth > EMXH_MAX_JSON_DEPTH)
        return false;
    } else if (c == ']' || c == '}') {
      depth--;
    }
  }
  return true;
}

static int find_tensor(const emx_tensor_info *t, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(t[i].name, name) == 0)
      return (int)i;
  return -1;
}

/* Triton's priority: 0 = the model's default, 1 = highest, larger =
 * lower. edgemux has three levels. */
static int map_priority(json_int_t p) {
  if (p == 1)
    return EMX_PRIORITY_HIGH;
  if (p == 0 || p == 2)
    return EMX_PRIORITY_NORMAL;
  return EMX_PRIORITY_LOW;
}

/* check_shape: the request's "shape" must be the model's, and its product
 * must not overflow (Triton's test sends dims whose product wraps). */
static int check_shape(const json_t *shape, const emx_tensor_info *ti,
                       size_t *count, emxh_error *e) {
  if (!json_is_array(shape))
    return emxh_errf(e, 400, "input \"%s\": \"shape\" must be an array",
                     ti->name);
  size_t rank = json_array_size(shape);
  unsigned long long n = 1;
  for (size_t d = 0; d < rank; d++) {
    const json_t *v = json_array_get(shape, d);
    if (!json_is_integer(v))
      return emxh_errf(e, 400, "input \"%s\": shape[%zu] is not an integer",
                       ti->name, d);
    json_int_t dim = json_integer_value(v);
    if (dim < 0)
      return emxh_errf(e, 400,
                       "input \"%s\": shape[%zu] is %lld; dimensions must "
                       "not be negative",
                       ti->name, d, (long long)dim);
    if (__builtin_mul_overflow(n, (unsigned long long)dim, &n) ||
        n > EMXH_MAX_ELEMENTS)
      return emxh_errf(e, 400,
                       "input \"%s\": the shape's element count overflows "
                       "(more than %llu)",
                       ti->name, (unsigned long long)EMXH_MAX_ELEMENTS);
  }
  bool same = rank == (size_t)ti->rank;
  for (size_t d = 0; same && d < rank; d++)
    same = json_integer_value(json_array_get(shape, d)) == ti->dims[d];
  if (!same) {
    char want[128] = "";
    size_t used = 0;
    for (int d = 0; d < ti->rank && used < sizeof want; d++)
      used += (size_t)snprintf(want + used, sizeof want - used, "%s%d",
                               d ? "," : "", ti->dims[d]);
    return emxh_errf(e, 400,
                     "input \"%s\": shape does not match the model's [%s]",
                     ti->name, want);
  }
  *count = (size_t)n;
  return 0;
}

static int parse_input(emxh_request *r, const emxh_model_desc *m,
                       const json_t *in, bool seen[], const uint8_t *body,
                       size_t len, size_t *bin_at, emxh_error *e) {
  const char *name = json_string_value(json_object_get(in, "name"));
  const char *dt = json_string_value(json_object_get(in, "datatype"));
  if (!json_is_object(in) || !name || !dt)
    return emxh_errf(e, 400,
                     "every input needs \"name\", \"shape\" and "
                     "\"datatype\"");
  int i = find_tensor(m->in, m->nin, name);
  if (i < 0)
    return emxh_errf(e, 400, "unexpected input \"%s\" for model \"%s\"", name,
                     m->name);
  if (seen[i])
    return emxh_errf(e, 400, "input \"%s\" is given twice", name);
  seen[i] = true;
  const emx_tensor_info *ti = &m->in[i];
  if (!emxh__dtype_known(dt))
    return emxh_errf(e, 400, "input \"%s\": unknown datatype \"%s\"", name, dt);
  emx_dtype t = emxh_dtype_parse(dt);
  if (t == EMX_DTYPE_STRING)
    return emxh_errf(e, 501, "input \"%s\": BYTES tensors are not supported",
                     name);
  if (t != ti->dtype)
    return emxh_errf(e, 400,
                     "input \"%s\": datatype %s does not match the model's "
                     "%s",
                     name, dt,
                     emxh_dtype_name(ti->dtype) ? emxh_dtype_name(ti->dtype)
                                                : "(none)");
  size_t count = 0;
  if (check_shape(json_object_get(in, "shape"), ti, &count, e) < 0)
    return -1;
  size_t bytes = count * emx__dtype_size(t);
  const json_t *params = json_object_get(in, "parameters");
  const json_t *bsize = json_object_get(params, "binary_data_size");
  const json_t *data = json_object_get(in, "data");
  r->inputs[i].dtype = t;
  r->inputs[i].size = bytes;
  if (bsize) {
    if (data)
      return emxh_errf(
          e, 400, "input \"%s\" has both \"data\" and binary_data_size", name);
    if (!json_is_integer(bsize) || json_integer_value(bsize) < 0)
      return emxh_errf(e, 400,
                       "input \"%s\": binary_data_size must be a "
                       "non-negative integer",
                       name);
    size_t b = (size_t)json_integer_value(bsize);
    if (b != bytes)
      return emxh_errf(e, 400,
                       "input \"%s\": binary_data_size is %zu bytes but its "
                       "shape and datatype need %zu",
                       name, b, bytes);
    if (b > len - *bin_at)
      return emxh_errf(e, 400,
                       "input \"%s\": binary_data_size %zu runs past the end "
                       "of the body (%zu bytes left)",
                       name, b, len - *bin_at);
    r->inputs[i].data = (void *)(body + *bin_at);
    *bin_at += b;
    return 0;
  }
  if (!data)
    return emxh_errf(e, 400,
                     "input \"%s\" has neither \"data\" nor "
                     "binary_data_size",
                     name);
  r->owned[i] = malloc(bytes ? bytes : 1);
  if (!r->owned[i])
    return emxh_errf(e, 500, "out of memory decoding input \"%s\"", name);
  r->inputs[i].data = r->owned[i];
  return emxh__json_to_bytes(t, data, count, r->owned[i], name, e);
}

static int parse_outputs(emxh_request *r, const emxh_model_desc *m,
                         const json_t *outs, bool bin_default, emxh_error *e) {
  for (size_t i = 0; i < m->nout; i++) {
    r->want[i] = outs == NULL;
    r->binary[i] = bin_default;
  }
  if (!outs)
    return 0;
  if (!json_is_array(outs))
    return emxh_errf(e, 400, "\"outputs\" must be an array");
  bool seen[EMXH_MAX_TENSORS] = {false};
  size_t k;
  const json_t *o;
  json_array_foreach(outs, k, o) {
    const char *name = json_string_value(json_object_get(o, "name"));
    if (!json_is_object(o) || !name)
      return emxh_errf(e, 400, "every requested output needs a \"name\"");
    int i = find_tensor(m->out, m->nout, name);
    if (i < 0)
      return emxh_errf(e, 400, "unexpected output \"%s\" for model \"%s\"",
                       name, m->name);
    if (seen[i])
      return emxh_errf(e, 400, "output \"%s\" is requested twice", name);
    seen[i] = true;
    r->want[i] = true;
    const json_t *p = json_object_get(o, "parameters");
    if (json_object_get(p, "classification"))
      return emxh_errf(e, 501,
                       "output \"%s\": classification is not "
                       "supported; request the raw tensor",
                       name);
    const json_t *b = json_object_get(p, "binary_data");
    if (b && !json_is_boolean(b))
      return emxh_errf(e, 400, "output \"%s\": binary_data must be a boolean",
                       name);
    if (b)
      r->binary[i] = json_is_true(b);
  }
  return 0;
}

static int parse_params(emxh_request *r, const json_t *p, bool *bin_default,
                        emxh_error *e) {
  *bin_default = false;
  r->priority = EMX_PRIORITY_NORMAL;
  if (!p)
    return 0;
  if (!json_is_object(p))
    return emxh_errf(e, 400, "\"parameters\" must be an object");
  const json_t *v;
  if ((v = json_object_get(p, "binary_data_output"))) {
    if (!json_is_boolean(v))
      return emxh_errf(e, 400, "binary_data_output must be a boolean");
    *bin_default = json_is_true(v);
  }
  if ((v = json_object_get(p, "priority"))) {
    if (!json_is_integer(v) || json_integer_value(v) < 0)
      return emxh_errf(e, 400, "priority must be a non-negative integer");
    r->priority = map_priority(json_integer_value(v));
  }
  if ((v = json_object_get(p, "timeout"))) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > INT64_MAX / 1000)
      return emxh_errf(e, 400,
                       "timeout must be a non-negative integer "
                       "(microseconds)");
    r->timeout_ns = (int64_t)json_integer_value(v) * 1000;
  }
  return 0;
}

int emxh_request_parse(emxh_request *r, const emxh_model_desc *m,
                       const uint8_t *body, size_t len, size_t header_len,
                       emxh_error *e) {
  memset(r, 0, sizeof *r);
  if (m->nin > EMXH_MAX_TENSORS || m->nout > EMXH_MAX_TENSORS)
    return emxh_errf(e, 501, "model \"%s\" has more than %d inputs or outputs",
                     m->name, EMXH_MAX_TENSORS);
  size_t jlen = header_len == SIZE_MAX ? len : header_len;
  if (jlen > len)
    return emxh_errf(e, 400,
                     "Inference-Header-Content-Length %zu is larger than the "
                     "%zu-byte body",
                     header_len, len);
  if (!emxh_json_depth_ok((const char *)body, jlen))
    return emxh_errf(e, 400, "JSON nested deeper than %d levels",
                     EMXH_MAX_JSON_DEPTH);
  json_error_t jerr;
  r->doc = json_loadb((const char *)body, jlen, JSON_REJECT_DUPLICATES, &jerr);
  if (!r->doc)
    return emxh_errf(e, 400, "malformed JSON at byte %d: %s", jerr.position,
                     jerr.text);
  if (!json_is_object(r->doc))
    return emxh_errf(e, 400, "the request must be a JSON object");
  const json_t *id = json_object_get(r->doc, "id");
  if (id && !json_is_string(id))
    return emxh_errf(e, 400, "\"id\" must be a string");
  r->id = json_string_value(id);
  bool bin_default;
  if (parse_params(r, json_object_get(r->doc, "parameters"), &bin_default, e) <
      0)
    return -1;
  const json_t *ins = json_object_get(r->doc, "inputs");
  if (!json_is_array(ins))
    return emxh_errf(e, 400, "\"inputs\" must be an array");
  bool seen[EMXH_MAX_TENSORS] = {false};
  size_t bin_at = jlen, k;
  const json_t *in;
  json_array_foreach(ins, k, in) {
    if (parse_input(r, m, in, seen, body, len, &bin_at, e) < 0)
      return -1;
  }
  for (size_t i = 0; i < m->nin; i++)
    if (!seen[i])
      return emxh_errf(e, 400,
                       "model \"%s\" expects %zu inputs; \"%s\" is "
                       "missing",
                       m->name, m->nin, m->in[i].name);
  if (bin_at != len)
    return emxh_errf(e, 400,
                     "%zu bytes of binary data follow the inputs that no "
                     "input's binary_data_size accounts for",
                     len - bin_at);
  return parse_outputs(r, m, json_object_get(r->doc, "outputs"), bin_default,
                       e);
}

void emxh_request_free(emxh_request *r) {
  for (size_t i = 0; i < EMXH_MAX_TENSORS; i++)
    free(r->owned[i]);
  json_decref(r->doc);
  memset(r, 0, sizeof *r);
}

static json_t *shape_json(const emx_tensor_info *t) {
  json_t *a = json_array();
  for (int d = 0; a && d < t->rank; d++)
    json_array_append_new(a, json_integer(t->dims[d]));
  return a;
}

char *emxh_response_json(const emxh_model_desc *m, const emxh_request *r,
                         const emx_tensor *outs, size_t *len) {
  json_t *root = json_object();
  json_t *arr = json_array();
  bool fp64 = false;
  json_object_set_new(root, "model_name", json_string(m->name));
  json_object_set_new(root, "model_version", json_string("1"));
  if (r->id)
    json_object_set_new(root, "id", json_string(r->id));
  json_object_set_new(root, "outputs", arr);
  for (size_t i = 0; i < m->nout; i++) {
    if (!r->want[i])
      continue;
    const emx_tensor_info *ti = &m->out[i];
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(ti->name));
    json_object_set_new(o, "datatype",
                        json_string(emxh_dtype_name(ti->dtype)
                                        ? emxh_dtype_name(ti->dtype)
                                        : "BYTES"));
    json_object_set_new(o, "shape", shape_json(ti));
    if (r->binary[i]) {
      json_t *p = json_object();
      json_object_set_new(p, "binary_data_size",
                          json_integer((json_int_t)outs[i].size));
      json_object_set_new(o, "parameters", p);
    } else {
      size_t es = emx__dtype_size(ti->dtype);
      json_t *data =
          es ? emxh__bytes_to_json(ti->dtype, outs[i].data, outs[i].size / es)
             : NULL;
      if (!data) {
        json_decref(o);
        json_decref(root);
        return NULL;
      }
      json_object_set_new(o, "data", data);
      fp64 |= ti->dtype == EMX_DTYPE_FLOAT64;
    }
    json_array_append_new(arr, o);
  }
  /* Enough digits to round-trip a float exactly (9), or a double (17). */
  char *s = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(fp64 ? 17 : 9));
  json_decref(root);
  if (s)
    *len = strlen(s);
  return s;
}

static json_t *tensors_json(const emx_tensor_info *t, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++) {
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(t[i].name));
    const char *dt = emxh_dtype_name(t[i].dtype);
    json_object_set_new(o, "datatype", json_string(dt ? dt : "BYTES"));
    json_object_set_new(o, "shape", shape_json(&t[i]));
    json_array_append_new(a, o);
  }
  return a;
}

char *emxh_model_metadata(const emxh_model_desc *m) {
  json_t *root = json_object();
  json_object_set_new(root, "name", json_string(m->name));
  json_t *v = json_array();
  json_array_append_new(v, json_string("1"));
  json_object_set_new(root, "versions", v);
  json_object_set_new(root, "platform", json_string("tensorflow_lite"));
  json_object_set_new(root, "inputs", tensors_json(m->in, m->nin));
  json_object_set_new(root, "outputs", tensors_json(m->out, m->nout));
  char *s = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  return s;
}

char *emxh_error_json(const char *msg) {
  json_t *root = json_object();
  json_object_set_new(root, "error", json_string(msg));
  char *s = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  return s;
}

int emxh_status_for(int st) {
  switch (st) {
  case 0:
    return 200;
  case EMX_ENOENT:
    return 404;
  case EMX_EBUSY:
  case EMX_ESHUTDOWN:
  case EMX_ETIMEDOUT:
    return 503;
  case EMX_EUNSUPPORTED:
    return 501;
  case EMX_EINVAL:
  case EMX_ECOUNT:
  case EMX_ESIZE:
  case EMX_EDTYPE:
    return 400;
  default:
    return 500;
  }
}

int emxh_base64_decode(const char *in, size_t len, uint8_t **out,
                       size_t *out_len) {
  while (len && in[len - 1] == '=')
    len--;
  uint8_t *o = malloc(len / 4 * 3 + 3);
  if (!o)
    return -1;
  size_t n = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    char c = in[i];
    int v = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '+'             ? 62
            : c == '/'             ? 63
                                   : -1;
    if (v < 0) {
      free(o);
      return -1;
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      o[n++] = (uint8_t)(acc >> bits);
    }
  }
  *out = o;
  *out_len = n;
  return 0;
}
