/* abi.c — version, struct sizes and the size-led struct copies. */
#include "core/abi.h"

#include <stdio.h>
#include <string.h>

#include "edgemux/client.h"

/* The smallest size a real struct can claim: the size field and one more
 * field. Anything less is an uninitialised struct, not an old caller. */
#define MIN_SIZE (2 * sizeof(size_t))

EMX_EXPORT const char *emx_version(void) {
  return EMX_VERSION_STRING;
}

EMX_EXPORT unsigned emx_version_number(void) {
  return EMX_VERSION_NUMBER;
}

EMX_EXPORT int emx_version_check(unsigned header_version, char *msg,
                                 size_t len) {
  unsigned lib = EMX_VERSION_NUMBER;
  const char *why = NULL;
  if (header_version >> 16 != lib >> 16)
    why = "a different major version: the ABI differs";
  else if (header_version > lib)
    why = "a newer version: it may use functions or fields this library "
          "lacks";
  if (!why) {
    if (msg && len)
      msg[0] = '\0';
    return 0;
  }
  if (msg && len)
    snprintf(msg, len,
             "the caller was compiled against edgemux %u.%u.%u headers, "
             "%s; the running library is %s. Install libedgemux %u.%u.%u or "
             "newer (same major), or rebuild against this library's headers",
             header_version >> 16, (header_version >> 8) & 0xff,
             header_version & 0xff, why, EMX_VERSION_STRING,
             header_version >> 16, (header_version >> 8) & 0xff,
             header_version & 0xff);
  return EMX_EVERSION;
}

EMX_EXPORT size_t emx_struct_size(const char *name) {
  static const struct {
    const char *name;
    size_t size;
  } sizes[] = {
#define S(n) {#n, sizeof(emx_##n)}
      S(tensor),         S(tensor_info),       S(engine_config),
      S(model_config),   S(timings),           S(request_desc),
      S(stats),          S(device_info),       S(client_config),
      S(client_options), S(client_batch_item),
#undef S
  };
  for (size_t i = 0; name && i < sizeof sizes / sizeof sizes[0]; i++)
    if (strcmp(name, sizes[i].name) == 0)
      return sizes[i].size;
  return 0;
}

int emx__abi_in(void *own, size_t own_size, const void *user, const char *what,
                emx__errbuf *err) {
  size_t n = *(const size_t *)user;
  if (n < MIN_SIZE)
    return emx__errf(
        err, EMX_EINVAL,
        "%s.struct_size is %zu: initialise the struct with %s_init "
        "(callers in other languages: set struct_size to the struct's "
        "size, emx_struct_size)",
        what, n, what);
  if (n > own_size) {
    const unsigned char *tail = (const unsigned char *)user + own_size;
    for (size_t i = 0; i < n - own_size; i++)
      if (tail[i])
        return emx__errf(
            err, EMX_EVERSION,
            "%s has %zu bytes, this library (edgemux %s) knows %zu, and a "
            "field past them is set (byte %zu): the caller was compiled "
            "against a newer edgemux header; install a newer libedgemux or "
            "leave the newer fields at their defaults",
            what, n, EMX_VERSION_STRING, own_size, own_size + i);
    n = own_size;
  }
  memcpy((char *)own + sizeof(size_t), (const char *)user + sizeof(size_t),
         n - sizeof(size_t));
  *(size_t *)own = own_size;
  return 0;
}

int emx__abi_out(void *user, const void *own, size_t own_size, const char *what,
                 emx__errbuf *err) {
  size_t n = *(const size_t *)user;
  if (n < MIN_SIZE)
    return emx__errf(
        err, EMX_EINVAL,
        "%s.struct_size is %zu: set it to the struct's size (C callers "
        "get this from the header's macros)",
        what, n);
  if (n > own_size) {
    memset((char *)user + own_size, 0, n - own_size);
    n = own_size;
  }
  memcpy((char *)user + sizeof(size_t), (const char *)own + sizeof(size_t),
         n - sizeof(size_t));
  *(size_t *)user = n;
  return 0;
}

void emx__abi_init(void *user, const void *defaults, size_t own_size) {
  size_t n = *(const size_t *)user;
  if (n < MIN_SIZE)
    return; /* nothing sane to write into; the first call using it says so */
  if (n > own_size)
    memset((char *)user + own_size, 0, n - own_size);
  memcpy((char *)user + sizeof(size_t), (const char *)defaults + sizeof(size_t),
         (n < own_size ? n : own_size) - sizeof(size_t));
  /* size keeps the caller's value: a newer caller's own fields, past ours,
   * stay visible to emx__abi_in, which refuses them when set. */
}
