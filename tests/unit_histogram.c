/* unit_histogram.c — latency histogram: quantiles within its precision. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/histogram.h"

static void empty_is_zero(void **state) {
  emx__hist *h = calloc(1, sizeof *h);
  assert_true(emx__hist_quantile(h, 0.5) == 0);
  free(h);
}

static void small_values_exact(void **state) {
  emx__hist *h = calloc(1, sizeof *h);
  for (uint64_t v = 1; v <= 10; v++)
    emx__hist_add(h, v);
  assert_true(emx__hist_quantile(h, 0.5) == 5);
  assert_true(emx__hist_quantile(h, 1.0) == 10);
  assert_true(emx__hist_quantile(h, 0.0) == 1);
  free(h);
}

/* Uniform 1..100000 us in ns: p50 and p99 within 1/32 of the truth. */
static void quantiles_within_precision(void **state) {
  emx__hist *h = calloc(1, sizeof *h);
  for (uint64_t v = 1; v <= 100000; v++)
    emx__hist_add(h, v * 1000);
  assert_int_equal(h->count, 100000);
  double p50 = emx__hist_quantile(h, 0.50), p99 = emx__hist_quantile(h, 0.99);
  assert_true(p50 > 50000e3 * (1 - 1.0 / 32) && p50 < 50000e3 * (1 + 1.0 / 32));
  assert_true(p99 > 99000e3 * (1 - 1.0 / 32) && p99 < 99000e3 * (1 + 1.0 / 32));
  free(h);
}

/* One outlier among many: p99 must not move, p100 must find it. */
static void outlier(void **state) {
  emx__hist *h = calloc(1, sizeof *h);
  for (int i = 0; i < 999; i++)
    emx__hist_add(h, 1000000);
  emx__hist_add(h, UINT64_MAX);
  double p99 = emx__hist_quantile(h, 0.99);
  assert_true(p99 > 0.96e6 && p99 < 1.04e6);
  assert_true(emx__hist_quantile(h, 1.0) > 1e19);
  free(h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(empty_is_zero),
      cmocka_unit_test(small_values_exact),
      cmocka_unit_test(quantiles_within_precision),
      cmocka_unit_test(outlier),
  };
  return cmocka_run_group_tests_name("histogram", tests, NULL, NULL);
}
