/* sha256.h — SHA-256 (FIPS 180-4), for naming models by their bytes. A
 * small own copy: the library has no crypto dependency to borrow one from,
 * and this needs no secrecy, only a collision-resistant name. */
#ifndef EMX_CORE_SHA256_H
#define EMX_CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define EMX__SHA256_LEN 32

typedef struct emx__sha256 {
  uint32_t h[8];     /* running state */
  uint64_t bytes;    /* message length so far */
  uint8_t block[64]; /* pending partial block */
  size_t fill;       /* bytes in block */
} emx__sha256;

void emx__sha256_init(emx__sha256 *s);
void emx__sha256_update(emx__sha256 *s, const void *data, size_t len);
void emx__sha256_final(emx__sha256 *s, uint8_t out[EMX__SHA256_LEN]);

/* emx__sha256_hex hashes data and writes 64 lowercase hex digits + NUL. */
void emx__sha256_hex(const void *data, size_t len, char out[65]);

#endif
