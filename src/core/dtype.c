/* dtype.c — names and element sizes of tensor data types. */
#include "core/dtype.h"

EMX_EXPORT const char *emx_dtype_name(emx_dtype dtype) {
  switch (dtype) {
  case EMX_DTYPE_FLOAT32:
    return "float32";
  case EMX_DTYPE_INT32:
    return "int32";
  case EMX_DTYPE_UINT8:
    return "uint8";
  case EMX_DTYPE_INT64:
    return "int64";
  case EMX_DTYPE_STRING:
    return "string";
  case EMX_DTYPE_BOOL:
    return "bool";
  case EMX_DTYPE_INT16:
    return "int16";
  case EMX_DTYPE_COMPLEX64:
    return "complex64";
  case EMX_DTYPE_INT8:
    return "int8";
  case EMX_DTYPE_FLOAT16:
    return "float16";
  case EMX_DTYPE_FLOAT64:
    return "float64";
  case EMX_DTYPE_UNKNOWN:
    break;
  }
  return "unknown";
}

size_t emx__dtype_size(emx_dtype dtype) {
  switch (dtype) {
  case EMX_DTYPE_UINT8:
  case EMX_DTYPE_INT8:
  case EMX_DTYPE_BOOL:
    return 1;
  case EMX_DTYPE_INT16:
  case EMX_DTYPE_FLOAT16:
    return 2;
  case EMX_DTYPE_FLOAT32:
  case EMX_DTYPE_INT32:
    return 4;
  case EMX_DTYPE_INT64:
  case EMX_DTYPE_FLOAT64:
  case EMX_DTYPE_COMPLEX64:
    return 8;
  case EMX_DTYPE_STRING:
  case EMX_DTYPE_UNKNOWN:
    break;
  }
  return 0;
}
