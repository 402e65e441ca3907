/* tflite_report.c — the error reporter every TFLite interpreter of ours
 * gets (single and batched ones alike, so it sits below both). */
#include <stdio.h>
#include <string.h>

#include "backend/tflite.h"

/* TFLite reports problems (an unresolved op, a failed Prepare) through this
 * callback; keep the first line, which names the culprit, and append later
 * ones while there is room. */
void emx__tfl_reporter(void *user, const char *fmt, va_list args) {
  emx__errbuf *buf = user;
  size_t used = strlen(buf->msg);
  if (used + 2 >= sizeof buf->msg)
    return;
  if (used) {
    buf->msg[used++] = ' ';
    buf->msg[used] = '\0';
  }
  vsnprintf(buf->msg + used, sizeof buf->msg - used, fmt, args);
  /* TFLite's texts end with newlines and "See instructions: <url>". */
  for (char *p = buf->msg + used; *p; p++)
    if (*p == '\n')
      *p = ' ';
}
