/* http_codec.h — the KServe v2 / Open Inference Protocol body codec, with
 * Triton's binary tensor data extension. Pure functions over bytes and a
 * model's tensor descriptions: no sockets, no engine, so every malformed
 * case is a unit test.
 *
 * Status codes follow Triton's HTTP front end: 400 for anything wrong in
 * the request, 404 for an unknown model, 501 for what the protocol allows
 * but edgemux does not do (BYTES tensors, classification outputs). */
#ifndef EMX_DAEMON_FRONT_HTTP_CODEC_H
#define EMX_DAEMON_FRONT_HTTP_CODEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edgemux/edgemux.h"

#define EMXH_MAX_TENSORS 32    /* inputs or outputs per model we serve */
#define EMXH_MAX_JSON_DEPTH 32 /* deeper JSON is refused before parsing */
#define EMXH_MAX_ELEMENTS (1ULL << 32) /* shape products past this: 400 */

/* emxh_error: an HTTP status and the message that goes in {"error": ...}. */
typedef struct emxh_error {
  int status;    /* 400, 404, 500, 501, 503 */
  char msg[512]; /* names the tensor, field or limit at fault */
} emxh_error;

/* emxh_model_desc: what the codec needs to know about a model. */
typedef struct emxh_model_desc {
  const char *name;                /* model name */
  const emx_tensor_info *in, *out; /* the model's tensors, in order */
  size_t nin, nout;
} emxh_model_desc;

/* emxh_request: one parsed infer request, inputs in the model's order. */
typedef struct emxh_request {
  json_t *doc;                         /* the JSON header (owned) */
  const char *id;                      /* "id", or NULL; points into doc */
  emx_tensor inputs[EMXH_MAX_TENSORS]; /* data: into the body or owned[] */
  void *owned[EMXH_MAX_TENSORS];       /* JSON inputs decoded to bytes */
  bool want[EMXH_MAX_TENSORS];         /* output i is in the response */
  bool binary[EMXH_MAX_TENSORS];       /* output i is sent as binary data */
  int priority;                        /* EMX_PRIORITY_* */
  int64_t timeout_ns;                  /* "timeout" parameter; 0 = none */
} emxh_request;

/* emxh_dtype_parse maps a protocol datatype ("FP32") to an emx_dtype;
 * EMX_DTYPE_UNKNOWN when it is not one of the protocol's names. BYTES maps
 * to EMX_DTYPE_STRING. */
emx_dtype emxh_dtype_parse(const char *name);

/* emxh_dtype_name is the inverse; NULL for a type the protocol lacks. */
const char *emxh_dtype_name(emx_dtype dtype);

/* emxh_json_depth_ok scans raw JSON text for bracket nesting deeper than
 * EMXH_MAX_JSON_DEPTH (outside strings) without building anything: a
 * hostile body must not recurse in the parser. */
bool emxh_json_depth_ok(const char *text, size_t len);

/* emxh_request_parse parses an infer body. header_len is the value of
 * Inference-Header-Content-Length (SIZE_MAX when absent: the body is all
 * JSON); binary inputs then point into `body`, which must outlive r.
 * Returns 0, or -1 with e filled. emxh_request_free releases r either
 * way. */
int emxh_request_parse(emxh_request *r, const emxh_model_desc *m,
                       const uint8_t *body, size_t len, size_t header_len,
                       emxh_error *e);
void emxh_request_free(emxh_request *r);

/* emxh_response_json builds the response's JSON part for completed
 * outputs (`outs`, one per model output). Binary outputs carry only
 * binary_data_size: their bytes follow the JSON, in output order, straight
 * from outs[i].data. Returns a malloc'd string (length in *len), or NULL
 * when out of memory. */
char *emxh_response_json(const emxh_model_desc *m, const emxh_request *r,
                         const emx_tensor *outs, size_t *len);

/* emxh_model_metadata: GET /v2/models/{m}; malloc'd JSON. */
char *emxh_model_metadata(const emxh_model_desc *m);

/* emxh_error_json: {"error": msg}; malloc'd. */
char *emxh_error_json(const char *msg);

/* emxh_base64_decode decodes standard base64 (padding optional, no
 * whitespace) into a malloc'd *out; 0, or -1 on a bad character. */
int emxh_base64_decode(const char *in, size_t len, uint8_t **out,
                       size_t *out_len);

/* emxh_errf fills e and returns -1. */
int emxh_errf(emxh_error *e, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* emxh_status_for maps an engine status to Triton's HTTP status. */
int emxh_status_for(int emx_status);

#endif
