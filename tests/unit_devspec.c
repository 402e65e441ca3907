/* unit_devspec.c — device spec parsing: the grammar and its error texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "core/devspec.h"

static void bare_kind(void **state) {
  emx__devspec s;
  emx__errbuf err = {{0}};
  assert_int_equal(emx__devspec_parse(&s, "cpu", &err), 0);
  assert_string_equal(s.kind, "cpu");
  assert_int_equal(s.count, 0);
  assert_int_equal(emx__devspec_check_used(&s, &err), 0);
}

static void keys_and_bare_words(void **state) {
  emx__devspec s;
  emx__errbuf err = {{0}};
  assert_int_equal(emx__devspec_parse(&s, "sim:0,isolate=1,swap_ms=5", &err),
                   0);
  assert_string_equal(s.kind, "sim");
  assert_int_equal(s.count, 3);
  assert_string_equal(s.items[0].key, "0");
  assert_string_equal(s.items[0].value, "");
  assert_string_equal(emx__devspec_str(&s, "isolate"), "1");
  long swap = 0;
  assert_int_equal(emx__devspec_int(&s, "swap_ms", 0, 100, &swap, &err), 0);
  assert_int_equal(swap, 5);
  /* "0" was never asked for: reported as unknown. */
  assert_int_equal(emx__devspec_check_used(&s, &err), EMX_EINVAL);
  assert_non_null(strstr(err.msg, "\"0\""));
}

static void nested_colon_stays_in_item(void **state) {
  emx__devspec s;
  emx__errbuf err = {{0}};
  assert_int_equal(emx__devspec_parse(&s, "edgetpu:usb:0", &err), 0);
  assert_string_equal(s.kind, "edgetpu");
  assert_int_equal(s.count, 1);
  assert_string_equal(s.items[0].key, "usb:0");
}

static void int_range_and_absent(void **state) {
  emx__devspec s;
  emx__errbuf err = {{0}};
  long v = 7;
  assert_int_equal(emx__devspec_parse(&s, "cpu:workers=0", &err), 0);
  assert_int_equal(emx__devspec_int(&s, "threads", 1, 8, &v, &err), 0);
  assert_int_equal(v, 7); /* absent: unchanged */
  assert_int_equal(emx__devspec_int(&s, "workers", 1, 8, &v, &err), EMX_EINVAL);
  assert_non_null(strstr(err.msg, "workers=0"));
  assert_non_null(strstr(err.msg, "cpu:workers=0"));

  assert_int_equal(emx__devspec_parse(&s, "cpu:workers=2x", &err), 0);
  assert_int_equal(emx__devspec_int(&s, "workers", 1, 8, &v, &err), EMX_EINVAL);
  assert_int_equal(emx__devspec_parse(&s, "cpu:workers=", &err), 0);
  assert_int_equal(emx__devspec_int(&s, "workers", 1, 8, &v, &err), EMX_EINVAL);
}

static void malformed(void **state) {
  static const char *const bad[] = {
      "", ":x", "cpu:", "cpu:a,,b", "cpu:=1", "averyveryverylongkindname:x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    emx__devspec s;
    emx__errbuf err = {{0}};
    assert_int_equal(emx__devspec_parse(&s, bad[i], &err), EMX_EINVAL);
    assert_true(strlen(err.msg) > 0);
  }
  char longspec[300]; /* past the 255 bytes a spec may have */
  memset(longspec, 'a', sizeof longspec - 1);
  longspec[sizeof longspec - 1] = '\0';
  emx__devspec s;
  emx__errbuf err = {{0}};
  assert_int_equal(emx__devspec_parse(&s, longspec, &err), EMX_EINVAL);
  assert_non_null(strstr(err.msg, "too long"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(bare_kind),
      cmocka_unit_test(keys_and_bare_words),
      cmocka_unit_test(nested_colon_stays_in_item),
      cmocka_unit_test(int_range_and_absent),
      cmocka_unit_test(malformed),
  };
  return cmocka_run_group_tests_name("devspec", tests, NULL, NULL);
}
