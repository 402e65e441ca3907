/* prom.h — a writer for Prometheus' text exposition format 0.0.4. It
 * knows the format's rules (HELP and TYPE once per family, before its
 * samples; label values escaped) so callers only name things. */
#ifndef EMX_DAEMON_FRONT_PROM_H
#define EMX_DAEMON_FRONT_PROM_H

#include <stdbool.h>
#include <stddef.h>

/* emx__prom: a growing text buffer. */
typedef struct emx__prom {
  char *buf;   /* malloc'd, NUL-terminated */
  size_t len;  /* bytes written */
  size_t cap;  /* bytes allocated */
  bool failed; /* out of memory: the text is incomplete */
} emx__prom;

/* emx__prom_family starts a metric family: its # HELP and # TYPE lines.
 * type is "counter" or "gauge". */
void emx__prom_family(emx__prom *p, const char *name, const char *type,
                      const char *help);

/* emx__prom_sample writes `name{labels} value`. labels holds nlabels
 * (key, value) pairs, values escaped here; NULL/0 for none. */
void emx__prom_sample(emx__prom *p, const char *name, const char *const *labels,
                      size_t nlabels, double value);

/* emx__prom_free releases the buffer. */
void emx__prom_free(emx__prom *p);

#endif
