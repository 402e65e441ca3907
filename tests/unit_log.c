/* unit_log.c — rate-limited log lines: one a second per cause, the next
 * one written says how many were held back; causes do not share a window;
 * emx__log_limited writes what emx__ratelimit_pass lets through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"
#include "edgemux/edgemux.h"

#define SEC 1000000000LL

static void first_line_passes_then_held(void **state) {
  (void)state;
  emx__ratelimit rl = {0};
  uint64_t held = 99;
  assert_true(emx__ratelimit_pass(&rl, 5 * SEC, SEC, &held));
  assert_int_equal(held, 0);
  for (int i = 1; i <= 1000; i++)
    assert_false(emx__ratelimit_pass(&rl, 5 * SEC + i * 100000, SEC, &held));
  /* A second later: one line, carrying the count. */
  assert_true(emx__ratelimit_pass(&rl, 6 * SEC, SEC, &held));
  assert_int_equal(held, 1000);
  assert_true(emx__ratelimit_pass(&rl, 7 * SEC + 1, SEC, &held));
  assert_int_equal(held, 0);
}

/* A clock reading of 0 is a real time, not "no window yet". */
static void time_zero_is_a_window(void **state) {
  (void)state;
  emx__ratelimit rl = {0};
  uint64_t held;
  assert_true(emx__ratelimit_pass(&rl, 0, SEC, &held));
  assert_false(emx__ratelimit_pass(&rl, 1, SEC, &held));
}

static void causes_are_separate(void **state) {
  (void)state;
  emx__ratelimit a = {0}, b = {0};
  uint64_t held;
  assert_true(emx__ratelimit_pass(&a, SEC, SEC, &held));
  assert_true(emx__ratelimit_pass(&b, SEC + 1, SEC, &held));
  assert_false(emx__ratelimit_pass(&a, SEC + 2, SEC, &held));
  assert_false(emx__ratelimit_pass(&b, SEC + 3, SEC, &held));
}

/* count_lines: lines of f containing text. */
static int count_lines(FILE *f, const char *text, char *last, size_t cap) {
  rewind(f);
  char line[2048];
  int n = 0;
  while (fgets(line, sizeof line, f))
    if (strstr(line, text)) {
      n++;
      snprintf(last, cap, "%s", line);
    }
  return n;
}

/* 10000 refusals in a burst make one line; after a second, the next one
 * says how many were not logged. */
static void limited_writes_one_line_a_second(void **state) {
  (void)state;
  FILE *f = tmpfile();
  assert_non_null(f);
  fflush(stderr);
  int saved = dup(2);
  assert_true(saved >= 0);
  assert_true(dup2(fileno(f), 2) >= 0);
  emx__log_set_level(EMX_LOG_INFO);
  static emx__ratelimit rl, other;
  for (int i = 0; i < 10000; i++)
    emx__log_limited(&rl, EMX_LOG_WARN, "refusing pid %d: too many", i);
  emx__log_limited(&other, EMX_LOG_WARN, "another cause");
  usleep(1100000); /* the window is wall-clock by design: one real second */
  emx__log_limited(&rl, EMX_LOG_WARN, "refusing pid %d: too many", 10000);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);

  char last[2048] = "";
  assert_int_equal(count_lines(f, "refusing pid", last, sizeof last), 2);
  fprintf(stderr, "last line: %s", last);
  assert_non_null(strstr(last, "refusing pid 10000"));
  assert_non_null(strstr(last, "9999 more like this"));
  assert_int_equal(count_lines(f, "another cause", last, sizeof last), 1);
  assert_int_equal(count_lines(f, "refusing pid 0:", last, sizeof last), 1);
  fclose(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(first_line_passes_then_held),
      cmocka_unit_test(time_zero_is_a_window),
      cmocka_unit_test(causes_are_separate),
      cmocka_unit_test(limited_writes_one_line_a_second),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
