/* unit_sha256.c — SHA-256 against FIPS 180-4's examples, across the padding
 * edge (55/56/64 bytes) and fed in odd pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/sha256.h"

static void known_vectors(void **state) {
  char hex[65];
  emx__sha256_hex("", 0, hex);
  assert_string_equal(
      hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  emx__sha256_hex("abc", 3, hex);
  assert_string_equal(
      hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  emx__sha256_hex(two, strlen(two), hex); /* 56 bytes: a second pad block */
  assert_string_equal(
      hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* Fed in pieces of every size from 1 to 130, the digest of a million 'a's
 * is FIPS 180-4's. */
static void pieces_equal_whole(void **state) {
  static char a[1000000];
  memset(a, 'a', sizeof a);
  for (size_t piece = 1; piece <= 130; piece += 43) {
    emx__sha256 s;
    uint8_t d[EMX__SHA256_LEN];
    char hex[65];
    emx__sha256_init(&s);
    for (size_t off = 0; off < sizeof a; off += piece)
      emx__sha256_update(&s, a + off,
                         sizeof a - off < piece ? sizeof a - off : piece);
    emx__sha256_final(&s, d);
    for (int i = 0; i < EMX__SHA256_LEN; i++)
      snprintf(hex + 2 * i, 3, "%02x", d[i]);
    assert_string_equal(
        hex,
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(known_vectors),
      cmocka_unit_test(pieces_equal_whole),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
