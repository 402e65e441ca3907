/* error.h — internal error plumbing: per-thread last-error messages. */
#ifndef EMX_CORE_ERROR_H
#define EMX_CORE_ERROR_H

#include <stdarg.h>
#include <stddef.h>

#include "edgemux/edgemux.h"

#define EMX__ERRLEN 512

/* emx__errbuf carries a message from deep code (a backend, a parser) up to
 * the call that reports it. Fixed size: failing must not allocate. */
typedef struct emx__errbuf {
  char msg[EMX__ERRLEN];
} emx__errbuf;

/* emx__errf formats into buf (if not NULL) and returns code. */
int emx__errf(emx__errbuf *buf, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* emx__fail records the message as the calling thread's last error on obj
 * (emx_engine_last_error(obj) returns it) and returns code. */
int emx__fail(const void *obj, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* emx__fail_buf is emx__fail with a message already in a buffer. */
int emx__fail_buf(const void *obj, int code, const emx__errbuf *buf);

/* emx__last_error returns the calling thread's message for obj, or "". */
const char *emx__last_error(const void *obj);

#endif
