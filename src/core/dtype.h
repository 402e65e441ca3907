/* dtype.h — tensor data type helpers. */
#ifndef EMX_CORE_DTYPE_H
#define EMX_CORE_DTYPE_H

#include <stddef.h>

#include "edgemux/edgemux.h"

/* emx__dtype_size returns bytes per element, 0 for variable-size types. */
size_t emx__dtype_size(emx_dtype dtype);

#endif
