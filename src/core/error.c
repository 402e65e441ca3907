/* error.c — error codes, names, and per-thread last-error messages. */
#include "core/error.h"

#include <stdio.h>
#include <string.h>

/* One slot per thread: the object the last failure was about and its text.
 * Per-thread, not per-object, so that two threads failing on one engine at
 * once never see each other's message. */
static _Thread_local struct {
  const void *obj;
  char msg[EMX__ERRLEN];
} last;

EMX_EXPORT const char *emx_strerror(int err) {
  switch (err) {
#define XX(name, value, text)                                                  \
  case EMX_##name:                                                             \
    return text;
    EMX_ERRNO_MAP(XX)
#undef XX
  case 0:
    return "success";
  }
  return "unknown error";
}

EMX_EXPORT const char *emx_err_name(int err) {
  switch (err) {
#define XX(name, value, text)                                                  \
  case EMX_##name:                                                             \
    return "EMX_" #name;
    EMX_ERRNO_MAP(XX)
#undef XX
  case 0:
    return "0";
  }
  return "EMX_UNKNOWN";
}

EMX_EXPORT int emx_err_at(size_t index) {
  static const int all[] = {
#define XX(name, value, text) EMX_##name,
      EMX_ERRNO_MAP(XX)
#undef XX
  };
  return index < sizeof all / sizeof all[0] ? all[index] : 0;
}

int emx__errf(emx__errbuf *buf, int code, const char *fmt, ...) {
  if (buf) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf->msg, sizeof buf->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

int emx__fail(const void *obj, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last.msg, sizeof last.msg, fmt, ap);
  va_end(ap);
  last.obj = obj;
  return code;
}

int emx__fail_buf(const void *obj, int code, const emx__errbuf *buf) {
  return emx__fail(obj, code, "%s", buf->msg);
}

const char *emx__last_error(const void *obj) {
  return last.obj == obj ? last.msg : "";
}
