/* dtype.c — names and element sizes of tensor data types, from
 * EMX_DTYPE_MAP (edgemux.h). */
#include "core/dtype.h"

EMX_EXPORT const char *emx_dtype_name(emx_dtype dtype) {
  switch (dtype) {
#define XX(name, value, bytes, text)                                           \
  case EMX_DTYPE_##name:                                                       \
    return text;
    EMX_DTYPE_MAP(XX)
#undef XX
  case EMX_DTYPE_UNKNOWN:
    break;
  }
  return "unknown";
}

EMX_EXPORT size_t emx_dtype_size(emx_dtype dtype) {
  switch (dtype) {
#define XX(name, value, bytes, text)                                           \
  case EMX_DTYPE_##name:                                                       \
    return bytes;
    EMX_DTYPE_MAP(XX)
#undef XX
  case EMX_DTYPE_UNKNOWN:
    break;
  }
  return 0;
}

EMX_EXPORT emx_dtype emx_dtype_at(size_t index) {
  static const emx_dtype all[] = {
#define XX(name, value, bytes, text) EMX_DTYPE_##name,
      EMX_DTYPE_MAP(XX)
#undef XX
  };
  return index < sizeof all / sizeof all[0] ? all[index] : EMX_DTYPE_UNKNOWN;
}

size_t emx__dtype_size(emx_dtype dtype) {
  return emx_dtype_size(dtype);
}
