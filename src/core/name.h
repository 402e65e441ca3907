/* name.h — what a model name may be, and how untrusted text goes into a
 * log line. A name travels into log lines and STATUS's space-separated
 * fields: a newline in it would forge a log line, a space a field. */
#ifndef EMX_CORE_NAME_H
#define EMX_CORE_NAME_H

#include <stddef.h>

#include "core/error.h"

#define EMX__NAME_MAX 63 /* bytes, without the terminating NUL */

/* emx__name_check: 0 when name[0..len) is 1 to EMX__NAME_MAX printable
 * ASCII characters other than space, '"', '\\' and '/'; else EMX_EINVAL
 * with a message that says which character at which offset. */
int emx__name_check(const char *name, size_t len, emx__errbuf *err);

/* emx__escape copies in[0..len) into buf (cap bytes, NUL-terminated,
 * truncated if need be) with every byte outside printable ASCII, and '\\',
 * written as \xHH: safe for one log line. Returns buf. */
const char *emx__escape(const char *in, size_t len, char *buf, size_t cap);

#endif
