/* devspec.c — device spec parser (format in devspec.h). */
#include "core/devspec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int copy_bounded(char *dst, size_t cap, const char *src, size_t len) {
  if (len >= cap)
    return -1;
  memcpy(dst, src, len);
  dst[len] = '\0';
  return 0;
}

int emx__devspec_parse(emx__devspec *spec, const char *text, emx__errbuf *err) {
  memset(spec, 0, sizeof *spec);
  if (!text || !*text)
    return emx__errf(err, EMX_EINVAL, "empty device spec: use e.g. \"cpu\"");
  if (copy_bounded(spec->text, sizeof spec->text, text, strlen(text)) < 0)
    return emx__errf(err, EMX_EINVAL, "device spec \"%.40s...\" is too long",
                     text);

  const char *colon = strchr(text, ':');
  size_t klen = colon ? (size_t)(colon - text) : strlen(text);
  if (klen == 0 || copy_bounded(spec->kind, sizeof spec->kind, text, klen) < 0)
    return emx__errf(err, EMX_EINVAL,
                     "device spec \"%s\": missing or overlong kind before ':'",
                     text);
  if (!colon)
    return 0;

  const char *p = colon + 1;
  if (!*p)
    return emx__errf(err, EMX_EINVAL,
                     "device spec \"%s\": nothing after ':' (drop it, or "
                     "add options such as \"cpu:workers=2\")",
                     text);
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == 0)
      return emx__errf(err, EMX_EINVAL, "device spec \"%s\": empty item", text);
    if (spec->count == EMX__SPEC_MAX_ITEMS)
      return emx__errf(err, EMX_EINVAL, "device spec \"%s\": too many items",
                       text);
    const char *eq = memchr(p, '=', len);
    size_t keylen = eq ? (size_t)(eq - p) : len;
    int i = spec->count;
    if (keylen == 0 ||
        copy_bounded(spec->items[i].key, sizeof spec->items[i].key, p, keylen) <
            0 ||
        (eq && copy_bounded(spec->items[i].value, sizeof spec->items[i].value,
                            eq + 1, len - keylen - 1) < 0))
      return emx__errf(err, EMX_EINVAL,
                       "device spec \"%s\": malformed item \"%.*s\"", text,
                       (int)len, p);
    spec->count++;
    p += len;
    if (*p == ',')
      p++;
  }
  return 0;
}

static int find(emx__devspec *spec, const char *key) {
  for (int i = 0; i < spec->count; i++)
    if (strcmp(spec->items[i].key, key) == 0)
      return i;
  return -1;
}

int emx__devspec_int(emx__devspec *spec, const char *key, long min, long max,
                     long *out, emx__errbuf *err) {
  int i = find(spec, key);
  if (i < 0)
    return 0;
  spec->items[i].used = true;
  const char *v = spec->items[i].value;
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (!*v || *end || errno || n < min || n > max)
    return emx__errf(err, EMX_EINVAL,
                     "device spec \"%s\": %s=%s must be an integer in "
                     "[%ld, %ld]",
                     spec->text, key, v, min, max);
  *out = n;
  return 0;
}

const char *emx__devspec_str(emx__devspec *spec, const char *key) {
  int i = find(spec, key);
  if (i < 0)
    return NULL;
  spec->items[i].used = true;
  return spec->items[i].value;
}

int emx__devspec_check_used(const emx__devspec *spec, emx__errbuf *err) {
  for (int i = 0; i < spec->count; i++)
    if (!spec->items[i].used)
      return emx__errf(err, EMX_EINVAL,
                       "device spec \"%s\": unknown option \"%s\" for a %s "
                       "device",
                       spec->text, spec->items[i].key, spec->kind);
  return 0;
}
