/* http_tensor.h — internal to the HTTP codec: JSON tensor data <-> bytes. */
#ifndef EMX_DAEMON_FRONT_HTTP_TENSOR_H
#define EMX_DAEMON_FRONT_HTTP_TENSOR_H

#include <jansson.h>
#include <stdbool.h>

#include "daemon/front/http_codec.h"

/* emxh__dtype_known: a datatype name the protocol defines, whether or not
 * TFLite has it. */
bool emxh__dtype_known(const char *name);

/* emxh__json_to_bytes decodes `data` (nested or flat, row-major) into
 * exactly `count` elements of type t at dst. */
int emxh__json_to_bytes(emx_dtype t, const json_t *data, size_t count,
                        void *dst, const char *tensor, emxh_error *e);

/* emxh__bytes_to_json encodes count elements as a flat JSON array; NULL
 * when out of memory or a value JSON cannot hold (NaN, infinity). */
json_t *emxh__bytes_to_json(emx_dtype t, const void *src, size_t count);

#endif
