/* devspec.h — parse device specs: "kind[:item,item,...]".
 *
 * An item is "key=value" or a bare word; a bare word is kept with an empty
 * value, so "sim:0,isolate=1" has items {"0",""} and {"isolate","1"} and
 * "edgetpu:usb:0" has the single bare item "usb:0". */
#ifndef EMX_CORE_DEVSPEC_H
#define EMX_CORE_DEVSPEC_H

#include <stdbool.h>

#include "core/error.h"

#define EMX__SPEC_MAX_ITEMS 16

typedef struct emx__devspec {
  char text[256]; /* the spec as given */
  char kind[16];  /* "cpu", "sim", "edgetpu" */
  int count;      /* items used */
  struct {
    char key[32];   /* item name, or the bare word */
    char value[64]; /* "" for a bare word */
    bool used;      /* set by the getters; unused keys are reported */
  } items[EMX__SPEC_MAX_ITEMS];
} emx__devspec;

/* emx__devspec_parse fills spec from text; EMX_EINVAL with a message naming
 * the spec when it is malformed or too long. */
int emx__devspec_parse(emx__devspec *spec, const char *text, emx__errbuf *err);

/* emx__devspec_int reads item `key` as an integer in [min,max]; *out keeps
 * its value when the item is absent. */
int emx__devspec_int(emx__devspec *spec, const char *key, long min, long max,
                     long *out, emx__errbuf *err);

/* emx__devspec_str returns item `key`'s value, or NULL when absent. */
const char *emx__devspec_str(emx__devspec *spec, const char *key);

/* emx__devspec_check_used fails with EMX_EINVAL naming the first item no
 * getter asked for: a typo must not be ignored silently. */
int emx__devspec_check_used(const emx__devspec *spec, emx__errbuf *err);

#endif
