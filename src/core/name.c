/* name.c — model names and log-safe text. */
#include "core/name.h"

#include <stdio.h>
#include <string.h>

static int name_char_ok(unsigned char c) {
  return c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '/';
}

int emx__name_check(const char *name, size_t len, emx__errbuf *err) {
  if (len == 0 || len > EMX__NAME_MAX)
    return emx__errf(err, EMX_EINVAL,
                     "a model name must be 1 to %d bytes; this one is %zu",
                     EMX__NAME_MAX, len);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)name[i];
    if (!name_char_ok(c))
      return emx__errf(err, EMX_EINVAL,
                       "model name has byte 0x%02x at offset %zu: names are "
                       "printable ASCII without spaces, quotes, backslashes "
                       "or slashes (e.g. mobilenet_v2-1.0)",
                       c, i);
  }
  return 0;
}

const char *emx__escape(const char *in, size_t len, char *buf, size_t cap) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  if (cap == 0)
    return buf;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      if (o + 1 >= cap)
        break;
      buf[o++] = (char)c;
    } else {
      if (o + 4 >= cap)
        break;
      buf[o++] = '\\';
      buf[o++] = 'x';
      buf[o++] = hex[c >> 4];
      buf[o++] = hex[c & 15];
    }
  }
  buf[o] = '\0';
  return buf;
}
