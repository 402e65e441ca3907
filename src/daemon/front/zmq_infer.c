/* zmq_infer.c — one Frigate frame: [{"shape": [...], "dtype": "uint8" |
 * "float32", "model_type": ...}, <raw C-order bytes>] in, the model run as
 * the peer's engine stream, its outputs decoded (src/detect/) into the 480
 * bytes Frigate reads: 20 rows of [class_id, score, ymin, xmin, ymax, xmax].
 * Anything that cannot be answered gets zero rows and a log line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/log.h"
#include "daemon/front/zmq_int.h"

void emxz_req_free(zreq *r) {
  if (!r)
    return;
  emxd_model_put(r->m);
  free(r->in);
  free(r->outbuf);
  free(r);
}

static int frame_dtype(const char *s, emx_dtype *out) {
  if (s && strcmp(s, "uint8") == 0)
    *out = EMX_DTYPE_UINT8;
  else if (s && strcmp(s, "float32") == 0)
    *out = EMX_DTYPE_FLOAT32;
  else
    return -1;
  return 0;
}

static void shape_text(const int32_t *dims, int rank, char *out, size_t cap) {
  size_t at = (size_t)snprintf(out, cap, "[");
  for (int i = 0; i < rank && at < cap; i++)
    at += (size_t)snprintf(out + at, cap - at, "%s%d", i ? ", " : "",
                           (int)dims[i]);
  if (at < cap)
    snprintf(out + at, cap - at, "]");
}

/* input_of: m's only input, or -1. */
static int input_of(emxd_model *m, emx_tensor_info *in) {
  emx_model *em = emxd_model_engine(m);
  in->struct_size = sizeof *in;
  if (emx_model_input_count(em) != 1 || emx_model_input_info(em, 0, in) < 0)
    return -1;
  return 0;
}

static bool same_shape(const emx_tensor_info *in, const int32_t *dims,
                       int rank) {
  if (in->rank != rank)
    return false;
  for (int i = 0; i < rank; i++)
    if (in->dims[i] != dims[i])
      return false;
  return true;
}

/* A peer that skipped the handshake (edgemuxd restarted under a running
 * Frigate, whose REQ socket reconnects by itself): the first detector
 * whose input has the frame's shape. */
static void collect(void *arg, const char *name) {
  char **names = arg;
  for (size_t i = 0; i < 256; i++)
    if (!names[i]) {
      names[i] = strdup(name);
      return;
    }
}

static emxd_model *by_shape(emxd_server *srv, const int32_t *dims, int rank) {
  char *names[256] = {0};
  emxd_model *m = NULL;
  emxd_model_names(srv, collect, names);
  for (size_t i = 0; i < 256 && names[i]; i++) {
    emxd_model *c = m ? NULL : emxd_model_get(srv, names[i]);
    emx_tensor_info in;
    emx__errbuf err = {{0}};
    if (c && input_of(c, &in) == 0 && same_shape(&in, dims, rank) &&
        emxd_model_detector(c, &err))
      m = c;
    else
      emxd_model_put(c);
    free(names[i]);
  }
  return m;
}

void emxz_infer(zpeer *p, json_t *hdr, const void *data, size_t len) {
  struct emxd_zmq *z = p->z;
  json_t *shape = json_object_get(hdr, "shape");
  int32_t dims[EMX_MAX_DIMS];
  int rank = (int)json_array_size(shape);
  emx_dtype fdt;
  if (rank < 1 || rank > EMX_MAX_DIMS ||
      frame_dtype(json_string_value(json_object_get(hdr, "dtype")), &fdt) < 0) {
    emxz_zero_rows(p,
                   "the header needs \"shape\" (1..%d dimensions) and "
                   "\"dtype\" (\"uint8\" or \"float32\")",
                   EMX_MAX_DIMS);
    return;
  }
  size_t elems = 1;
  for (int i = 0; i < rank; i++) {
    json_t *d = json_array_get(shape, (size_t)i);
    json_int_t v = json_is_integer(d) ? json_integer_value(d) : 0;
    if (v < 1 || v > 1 << 20) {
      emxz_zero_rows(p, "shape[%d] is not a positive integer", i);
      return;
    }
    dims[i] = (int32_t)v;
    elems *= (size_t)v;
    if (elems > (size_t)1 << 30) {
      emxz_zero_rows(p, "the frame's shape is too large");
      return;
    }
  }
  char shown[128];
  shape_text(dims, rank, shown, sizeof shown);
  if (elems * emx__dtype_size(fdt) != len) {
    emxz_zero_rows(p, "a %s %s frame is %zu bytes, this one %zu", shown,
                   emx_dtype_name(fdt), elems * emx__dtype_size(fdt), len);
    return;
  }
  emxd_model *m = p->model;
  if (m)
    emxd_model_ref(m);
  else
    m = by_shape(z->srv, dims, rank);
  emx__errbuf err = {{0}};
  emx_tensor_info in;
  const emx__detector *det = NULL;
  if (!m) {
    emxz_zero_rows(p,
                   "no model: the handshake named none, and no detector "
                   "in the repository takes %s frames",
                   shown);
    return;
  }
  if (input_of(m, &in) < 0 || !same_shape(&in, dims, rank)) {
    char want[128] = "(more than one input)";
    if (emx_model_input_count(emxd_model_engine(m)) == 1)
      shape_text(in.dims, in.rank, want, sizeof want);
    emxz_zero_rows(p,
                   "a %s frame, but model \"%s\" takes %s: set Frigate's "
                   "model width/height (and input_tensor) to match",
                   shown, emxd_model_name(m), want);
    emxd_model_put(m);
    return;
  }
  if (!(det = emxd_model_detector(m, &err))) {
    emxz_zero_rows(p, "%s", err.msg);
    emxd_model_put(m);
    return;
  }
  zreq *r = calloc(1, sizeof *r);
  emx_model *em = emxd_model_engine(m);
  size_t nout = emx_model_output_count(em);
  if (!r || nout > EMXZ_MAX_OUT || !(r->in = malloc(in.bytes))) {
    emxz_zero_rows(p, "out of memory, or more than %d outputs", EMXZ_MAX_OUT);
    emxd_model_put(m);
    emxz_req_free(r);
    return;
  }
  r->m = m;
  r->peer = p;
  r->gen = p->gen;
  if (emx__detect_fill_input(emx__detector_config(det), data, fdt, len, r->in,
                             in.dtype, in.bytes, &err) < 0) {
    emxz_zero_rows(p, "%s", err.msg);
    emxz_req_free(r);
    return;
  }
  size_t total = 0;
  emx_tensor_info oi[EMXZ_MAX_OUT];
  for (size_t i = 0; i < nout; i++) {
    oi[i].struct_size = sizeof oi[i];
    emx_model_output_info(em, i, &oi[i]);
    total += (oi[i].bytes + 63) & ~(size_t)63;
  }
  if (!(r->outbuf = malloc(total ? total : 1))) {
    emxz_zero_rows(p, "out of memory for the outputs");
    emxz_req_free(r);
    return;
  }
  for (size_t i = 0, at = 0; i < nout; i++) {
    r->outs[i] = (emx_tensor){oi[i].dtype, r->outbuf + at, oi[i].bytes};
    at += (oi[i].bytes + 63) & ~(size_t)63;
  }
  r->nout = nout;
  emx_tensor input = {in.dtype, r->in, in.bytes};
  emxd_call_desc d = {.id = p->gen,
                      .tag = r,
                      .model = m,
                      .inputs = &input,
                      .input_count = 1,
                      .outputs = r->outs,
                      .output_count = nout,
                      .priority = EMX_PRIORITY_NORMAL,
                      .timeout_ns = z->srv->opt->zmq_timeout_ns};
  if (emxd_client_submit(p->cl, &d, &err) < 0) {
    emxz_zero_rows(p, "refused: %s", err.msg);
    emxz_req_free(r);
    return;
  }
  p->outstanding++;
  atomic_fetch_add(&z->inflight, 1);
}

void emxz_finish(struct emxd_zmq *z, zreq *r) {
  zpeer *p = r->peer;
  p->outstanding--;
  atomic_fetch_sub(&z->inflight, 1);
  if (!p->waiting || p->gen != r->gen) {
    emxz_req_free(r); /* answered already (zero rows at the timeout) */
    return;
  }
  if (r->status == EMX_ETIMEDOUT) {
    emxz_zero_rows(p,
                   "no answer within %lld ms (--zmq-timeout-ms): the device "
                   "is busy or slow",
                   (long long)(z->srv->opt->zmq_timeout_ns / 1000000));
    emxz_req_free(r);
    return;
  }
  if (r->status < 0) {
    emxz_zero_rows(p, "model \"%s\": %s", emxd_model_name(r->m), r->msg);
    emxz_req_free(r);
    return;
  }
  emx__errbuf err = {{0}};
  const emx__detector *det = emxd_model_detector(r->m, &err);
  emx_model *em = emxd_model_engine(r->m);
  emx__detect_tensor outs[EMXZ_MAX_OUT];
  for (size_t i = 0; i < r->nout; i++) {
    emx_tensor_info oi = {.struct_size = sizeof oi};
    emx_model_output_info(em, i, &oi);
    outs[i] = (emx__detect_tensor){r->outs[i].data, r->outs[i].size, oi.dtype,
                                   oi.scale, oi.zero_point};
  }
  int cap = emx__detector_config(det)->max_detections;
  if (cap < EMXZ_ROWS)
    cap = EMXZ_ROWS;
  float *rows = calloc((size_t)cap, EMX__DETECT_ROW * sizeof(float));
  int n = rows ? emx__detector_run(det, outs, r->nout, rows, (size_t)cap, NULL,
                                   &err)
               : EMX_ENOMEM;
  if (n < 0)
    emxz_zero_rows(p, "model \"%s\": decoding: %s", emxd_model_name(r->m),
                   rows ? err.msg : "out of memory");
  else
    emxz_reply(p, rows, EMXZ_REPLY_BYTES); /* the first 20 rows */
  free(rows);
  emxz_req_free(r);
}
