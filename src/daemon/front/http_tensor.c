/* http_tensor.c — protocol datatypes and the conversion of tensor data
 * between JSON numbers (row-major, nested or flat) and raw bytes. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "daemon/front/http_codec.h"
#include "daemon/front/http_tensor.h"

static const struct {
  const char *name;
  emx_dtype dtype;
} names[] = {
    {"BOOL", EMX_DTYPE_BOOL},    {"UINT8", EMX_DTYPE_UINT8},
    {"INT8", EMX_DTYPE_INT8},    {"INT16", EMX_DTYPE_INT16},
    {"INT32", EMX_DTYPE_INT32},  {"INT64", EMX_DTYPE_INT64},
    {"FP16", EMX_DTYPE_FLOAT16}, {"FP32", EMX_DTYPE_FLOAT32},
    {"FP64", EMX_DTYPE_FLOAT64}, {"BYTES", EMX_DTYPE_STRING},
};

/* The protocol's unsigned types that TFLite 2.9 has no tensor type for:
 * known names, so a model mismatch (400) rather than an unknown type. */
static const char *const unmapped[] = {"UINT16", "UINT32", "UINT64", "BF16"};

emx_dtype emxh_dtype_parse(const char *name) {
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(name, names[i].name) == 0)
      return names[i].dtype;
  return EMX_DTYPE_UNKNOWN;
}

bool emxh__dtype_known(const char *name) {
  if (emxh_dtype_parse(name) != EMX_DTYPE_UNKNOWN)
    return true;
  for (size_t i = 0; i < sizeof unmapped / sizeof unmapped[0]; i++)
    if (strcmp(name, unmapped[i]) == 0)
      return true;
  return false;
}

const char *emxh_dtype_name(emx_dtype dtype) {
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (names[i].dtype == dtype)
      return names[i].name;
  return NULL;
}

/* IEEE 754 binary16 <-> binary32, round to nearest even; no FP16 type in
 * C11 to lean on. */
static uint16_t f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
  uint32_t mant = x & 0x7fffffu;
  if (((x >> 23) & 0xff) == 0xff) /* inf, nan */
    return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u : 0));
  if (exp >= 31)
    return (uint16_t)(sign | 0x7c00u);
  if (exp <= 0) {
    if (exp < -10)
      return (uint16_t)sign;
    mant |= 0x800000u;
    uint32_t shift = (uint32_t)(14 - exp);
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1)))
      half++;
    return (uint16_t)(sign | half);
  }
  uint32_t half = sign | ((uint32_t)exp << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1)))
    half++; /* may carry into the exponent: still correct */
  return (uint16_t)half;
}

static float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  uint32_t x;
  if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else { /* subnormal: normalise */
      int e = -1;
      do {
        e++;
        mant <<= 1;
      } while (!(mant & 0x400u));
      x = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    x = sign | 0x7f800000u | (mant << 13);
  } else {
    x = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  memcpy(&f, &x, 4);
  return f;
}

/* put_one stores JSON value v as element i of dst. */
static int put_one(emx_dtype t, const json_t *v, uint8_t *dst, size_t i,
                   const char *tensor, emxh_error *e) {
  if (t == EMX_DTYPE_BOOL) {
    if (!json_is_boolean(v))
      return emxh_errf(e, 400,
                       "input \"%s\": element %zu must be true or "
                       "false for BOOL",
                       tensor, i);
    dst[i] = json_is_true(v);
    return 0;
  }
  if (t == EMX_DTYPE_FLOAT16 || t == EMX_DTYPE_FLOAT32 ||
      t == EMX_DTYPE_FLOAT64) {
    if (!json_is_number(v))
      return emxh_errf(e, 400, "input \"%s\": element %zu is not a number",
                       tensor, i);
    double d = json_number_value(v);
    if (t == EMX_DTYPE_FLOAT64) {
      memcpy(dst + 8 * i, &d, 8);
    } else if (t == EMX_DTYPE_FLOAT32) {
      float f = (float)d;
      memcpy(dst + 4 * i, &f, 4);
    } else {
      uint16_t h = f32_to_f16((float)d);
      memcpy(dst + 2 * i, &h, 2);
    }
    return 0;
  }
  if (!json_is_integer(v))
    return emxh_errf(e, 400, "input \"%s\": element %zu is not an integer",
                     tensor, i);
  json_int_t n = json_integer_value(v);
  long long lo, hi;
  switch (t) {
  case EMX_DTYPE_UINT8:
    lo = 0, hi = UINT8_MAX;
    break;
  case EMX_DTYPE_INT8:
    lo = INT8_MIN, hi = INT8_MAX;
    break;
  case EMX_DTYPE_INT16:
    lo = INT16_MIN, hi = INT16_MAX;
    break;
  case EMX_DTYPE_INT32:
    lo = INT32_MIN, hi = INT32_MAX;
    break;
  default:
    lo = INT64_MIN, hi = INT64_MAX;
    break;
  }
  if (n < lo || n > hi)
    return emxh_errf(e, 400,
                     "input \"%s\": element %zu (%lld) is out of range for "
                     "%s",
                     tensor, i, (long long)n, emxh_dtype_name(t));
  switch (t) {
  case EMX_DTYPE_UINT8:
  case EMX_DTYPE_INT8:
    dst[i] = (uint8_t)n;
    break;
  case EMX_DTYPE_INT16: {
    int16_t s = (int16_t)n;
    memcpy(dst + 2 * i, &s, 2);
    break;
  }
  case EMX_DTYPE_INT32: {
    int32_t s = (int32_t)n;
    memcpy(dst + 4 * i, &s, 4);
    break;
  }
  default: {
    int64_t s = (int64_t)n;
    memcpy(dst + 8 * i, &s, 8);
    break;
  }
  }
  return 0;
}

/* flatten walks nested arrays depth-first (row-major order) into dst. */
static int flatten(emx_dtype t, const json_t *v, uint8_t *dst, size_t count,
                   size_t *at, int depth, const char *tensor, emxh_error *e) {
  if (json_is_array(v)) {
    if (depth > EMX_MAX_DIMS)
      return emxh_errf(e, 400,
                       "input \"%s\": data nested deeper than %d levels",
                       tensor, EMX_MAX_DIMS);
    size_t i;
    const json_t *el;
    json_array_foreach(v, i, el) {
      if (flatten(t, el, dst, count, at, depth + 1, tensor, e) < 0)
        return -1;
    }
    return 0;
  }
  if (*at >= count)
    return emxh_errf(e, 400,
                     "input \"%s\": data has more elements than its shape's "
                     "%zu",
                     tensor, count);
  if (put_one(t, v, dst, *at, tensor, e) < 0)
    return -1;
  (*at)++;
  return 0;
}

int emxh__json_to_bytes(emx_dtype t, const json_t *data, size_t count,
                        void *dst, const char *tensor, emxh_error *e) {
  size_t at = 0;
  if (flatten(t, data, dst, count, &at, 0, tensor, e) < 0)
    return -1;
  if (at != count)
    return emxh_errf(e, 400,
                     "input \"%s\": data has %zu elements but its shape "
                     "needs %zu",
                     tensor, at, count);
  return 0;
}

json_t *emxh__bytes_to_json(emx_dtype t, const void *src, size_t count) {
  json_t *a = json_array();
  const uint8_t *p = src;
  for (size_t i = 0; a && i < count; i++) {
    json_t *v;
    switch (t) {
    case EMX_DTYPE_BOOL:
      v = json_boolean(p[i] != 0);
      break;
    case EMX_DTYPE_UINT8:
      v = json_integer(p[i]);
      break;
    case EMX_DTYPE_INT8:
      v = json_integer((int8_t)p[i]);
      break;
    case EMX_DTYPE_INT16: {
      int16_t s;
      memcpy(&s, p + 2 * i, 2);
      v = json_integer(s);
      break;
    }
    case EMX_DTYPE_INT32: {
      int32_t s;
      memcpy(&s, p + 4 * i, 4);
      v = json_integer(s);
      break;
    }
    case EMX_DTYPE_INT64: {
      int64_t s;
      memcpy(&s, p + 8 * i, 8);
      v = json_integer((json_int_t)s);
      break;
    }
    case EMX_DTYPE_FLOAT16: {
      uint16_t h;
      memcpy(&h, p + 2 * i, 2);
      v = json_real(f16_to_f32(h));
      break;
    }
    case EMX_DTYPE_FLOAT32: {
      float f;
      memcpy(&f, p + 4 * i, 4);
      v = json_real(f);
      break;
    }
    case EMX_DTYPE_FLOAT64: {
      double d;
      memcpy(&d, p + 8 * i, 8);
      v = json_real(d);
      break;
    }
    default:
      v = NULL;
    }
    /* JSON has no NaN or infinity: jansson refuses them, so does the
     * protocol; such an output must go as binary data. */
    if (!v || json_array_append_new(a, v) < 0) {
      json_decref(a);
      return NULL;
    }
  }
  return a;
}

int emxh_errf(emxh_error *e, int status, const char *fmt, ...) {
  e->status = status;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  return -1;
}
