/* prom.c — Prometheus text format 0.0.4. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/front/prom.h"

__attribute__((format(printf, 2, 3))) static void put(emx__prom *p,
                                                      const char *fmt, ...) {
  if (p->failed)
    return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = p->cap - p->len;
    int n = vsnprintf(p->buf ? p->buf + p->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
      p->failed = true;
      return;
    }
    if ((size_t)n < room) {
      p->len += (size_t)n;
      return;
    }
    size_t cap = (p->cap ? p->cap * 2 : 4096) + (size_t)n;
    char *b = realloc(p->buf, cap);
    if (!b) {
      p->failed = true;
      return;
    }
    p->buf = b;
    p->cap = cap;
  }
}

/* Label values escape backslash, double quote and newline; HELP text
 * escapes backslash and newline (format 0.0.4). */
static void put_escaped(emx__prom *p, const char *s, bool quote) {
  for (; *s; s++) {
    if (*s == '\\')
      put(p, "\\\\");
    else if (*s == '\n')
      put(p, "\\n");
    else if (*s == '"' && quote)
      put(p, "\\\"");
    else
      put(p, "%c", *s);
  }
}

void emx__prom_family(emx__prom *p, const char *name, const char *type,
                      const char *help) {
  put(p, "# HELP %s ", name);
  put_escaped(p, help, false);
  put(p, "\n# TYPE %s %s\n", name, type);
}

void emx__prom_sample(emx__prom *p, const char *name, const char *const *labels,
                      size_t nlabels, double value) {
  put(p, "%s", name);
  for (size_t i = 0; i < nlabels; i++) {
    put(p, "%s%s=\"", i ? "," : "{", labels[2 * i]);
    put_escaped(p, labels[2 * i + 1], true);
    put(p, "\"%s", i + 1 == nlabels ? "}" : "");
  }
  if (isnan(value))
    put(p, " NaN\n");
  else if (isinf(value))
    put(p, " %s\n", value > 0 ? "+Inf" : "-Inf");
  else if (value == (double)(long long)value && fabs(value) < 9e15)
    put(p, " %lld\n", (long long)value);
  else
    put(p, " %.17g\n", value);
}

void emx__prom_free(emx__prom *p) {
  free(p->buf);
  memset(p, 0, sizeof *p);
}
