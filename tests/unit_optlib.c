/* unit_optlib.c — opening an optional door's library (optlib.h): a library
 * that is missing, or lacks a function, fails with an error that names
 * what needed it and the package to install; the first outcome is kept, so
 * every later caller gets the same answer without a second dlopen. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "daemon/front/optlib.h"

static void missing_library_names_what_and_package(void **state) {
  (void)state;
  static const char *const names[] = {"cos"};
  void *fns[1] = {0};
  emxd_optlib l = EMXD_OPTLIB_INIT("libemx-no-such-library.so.7", names, fns, 1,
                                   "the test door (--test)", "libemx-test9");
  emx__errbuf err = {0};
  assert_int_equal(emxd_optlib_load(&l, &err), EMX_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "the test door (--test) needs "
                                  "libemx-no-such-library.so.7"));
  assert_non_null(strstr(err.msg, "install libemx-test9"));
  assert_non_null(strstr(err.msg, "or run without the test door (--test)"));
  /* The outcome is kept: same status, same words. */
  emx__errbuf again = {0};
  assert_int_equal(emxd_optlib_load(&l, &again), EMX_EUNSUPPORTED);
  assert_string_equal(again.msg, err.msg);
  assert_true(l.tried);
}

static void missing_function_is_named(void **state) {
  (void)state;
  static const char *const names[] = {"cos", "emx_no_such_function"};
  void *fns[2] = {0};
  emxd_optlib l = EMXD_OPTLIB_INIT("libm.so.6", names, fns, 2,
                                   "the test door (--test)", "libemx-test9");
  emx__errbuf err = {0};
  assert_int_equal(emxd_optlib_load(&l, &err), EMX_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "has no emx_no_such_function"));
  assert_non_null(strstr(err.msg, "install a current libemx-test9"));
}

static void present_library_fills_the_slots_once(void **state) {
  (void)state;
  static const char *const names[] = {"cos", "sqrt"};
  union {
    void *slot[2];
    struct {
      double (*cos)(double);
      double (*sqrt)(double);
    } f;
  } lib = {{0}};
  emxd_optlib l = EMXD_OPTLIB_INIT("libm.so.6", names, lib.slot, 2,
                                   "the test door (--test)", "libemx-test9");
  emx__errbuf err = {0};
  assert_int_equal(emxd_optlib_load(&l, &err), 0);
  assert_true(lib.f.cos(0.0) == 1.0);
  assert_true(lib.f.sqrt(16.0) == 4.0);
  /* A second call does not look the functions up again. */
  lib.slot[0] = NULL;
  assert_int_equal(emxd_optlib_load(&l, &err), 0);
  assert_null(lib.slot[0]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(missing_library_names_what_and_package),
      cmocka_unit_test(missing_function_is_named),
      cmocka_unit_test(present_library_fills_the_slots_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
