/* unit_name.c — model names: what passes, what is refused and why; log
 * escaping keeps one line one line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "core/name.h"

static int ok(const char *s) {
  emx__errbuf err;
  return emx__name_check(s, strlen(s), &err) == 0;
}

static void names(void **state) {
  (void)state;
  assert_true(ok("mobilenet_v2-1.0"));
  assert_true(ok("model-3bc182eb9f33925d"));
  assert_true(ok("a"));
  assert_false(ok(""));
  assert_false(ok("two words"));       /* forges a STATUS field */
  assert_false(ok("x\nwarn: forged")); /* forges a log line */
  assert_false(ok("tab\there"));
  assert_false(ok("q\"uote"));
  assert_false(ok("../etc"));
  assert_false(ok("back\\slash"));
  assert_false(ok("caf\xc3\xa9"));
  char longest[64];
  memset(longest, 'a', 63);
  longest[63] = '\0';
  assert_true(ok(longest));
  emx__errbuf err;
  assert_int_equal(emx__name_check(longest, 64, &err), EMX_EINVAL);
  assert_int_equal(emx__name_check("a\nb", 3, &err), EMX_EINVAL);
  assert_non_null(strstr(err.msg, "0x0a at offset 1"));
  /* NUL inside the given length is refused too. */
  assert_int_equal(emx__name_check("a\0b", 3, &err), EMX_EINVAL);
}

static void escape(void **state) {
  (void)state;
  char buf[64];
  assert_string_equal(emx__escape("a\nb c\\", 6, buf, sizeof buf),
                      "a\\x0ab c\\x5c");
  assert_null(strchr(emx__escape("\r\n\x1b[31m", 7, buf, sizeof buf), '\n'));
  /* Truncation never splits an escape. */
  assert_string_equal(emx__escape("ab\n", 3, buf, 5), "ab");
  assert_string_equal(emx__escape("x", 1, buf, 1), "");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(names),
      cmocka_unit_test(escape),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
