/*
 * test_abi.c — the stable ABI: the version check, the tables bindings read,
 * and size-led structs as an older or a newer caller would pass them.
 *
 * An older caller is simulated by a struct_size that stops short of the
 * last fields (with garbage after it, which the library must not read); a
 * newer one by the struct inside a larger one with a field past the end.
 * The exported functions are called by their parenthesised names, which
 * skips the header's macros that would store this header's sizeof.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "edgemux/client.h"
#include "support.h"

/* ---- version ------------------------------------------------------------- */

static void version_is_the_header_s(void **state) {
  (void)state;
  assert_string_equal(emx_version(), EMX_VERSION_STRING);
  assert_int_equal(emx_version_number(), EMX_VERSION_NUMBER);
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", EMX_VERSION_MAJOR, EMX_VERSION_MINOR,
           EMX_VERSION_PATCH);
  assert_string_equal(emx_version(), want);
}

static void version_check(void **state) {
  (void)state;
  char msg[512] = "x";
  assert_int_equal(emx_version_check(EMX_VERSION_NUMBER, msg, sizeof msg), 0);
  assert_string_equal(msg, "");
  /* An older header of the same major is served. */
  assert_int_equal(
      emx_version_check(EMX_MAKE_VERSION(EMX_VERSION_MAJOR, 0, 0), NULL, 0), 0);

  /* A newer minor: the caller may use what this library lacks. */
  unsigned newer =
      EMX_MAKE_VERSION(EMX_VERSION_MAJOR, EMX_VERSION_MINOR + 1, 0);
  assert_int_equal(emx_version_check(newer, msg, sizeof msg), EMX_EVERSION);
  char v[32];
  snprintf(v, sizeof v, "%d.%d.0", EMX_VERSION_MAJOR, EMX_VERSION_MINOR + 1);
  assert_true(contains(msg, v));
  assert_true(contains(msg, EMX_VERSION_STRING));
  assert_true(contains(msg, "newer"));

  /* Another major, older or newer: the ABI differs. */
  unsigned other = EMX_MAKE_VERSION(EMX_VERSION_MAJOR + 1, 0, 0);
  assert_int_equal(emx_version_check(other, msg, sizeof msg), EMX_EVERSION);
  assert_true(contains(msg, "major"));
  assert_int_equal(emx_version_check(other, NULL, 0), EMX_EVERSION);
}

/* ---- tables -------------------------------------------------------------- */

static void error_table(void **state) {
  (void)state;
  static const int want[] = {
#define XX(name, value, text) EMX_##name,
      EMX_ERRNO_MAP(XX)
#undef XX
  };
  size_t n = sizeof want / sizeof want[0];
  for (size_t i = 0; i < n; i++)
    assert_int_equal(emx_err_at(i), want[i]);
  assert_int_equal(emx_err_at(n), 0);
  assert_int_equal(emx_err_at((size_t)-1), 0);
  assert_string_equal(emx_err_name(EMX_EVERSION), "EMX_EVERSION");
}

static void dtype_table(void **state) {
  (void)state;
  static const struct {
    emx_dtype dtype;
    size_t bytes;
    const char *name;
  } want[] = {
#define XX(name, value, bytes, text) {EMX_DTYPE_##name, bytes, text},
      EMX_DTYPE_MAP(XX)
#undef XX
  };
  size_t n = sizeof want / sizeof want[0];
  assert_int_equal(n, 11);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(emx_dtype_at(i), want[i].dtype);
    assert_int_equal(emx_dtype_size(want[i].dtype), want[i].bytes);
    assert_string_equal(emx_dtype_name(want[i].dtype), want[i].name);
  }
  assert_int_equal(emx_dtype_at(n), EMX_DTYPE_UNKNOWN);
  assert_int_equal(emx_dtype_size(EMX_DTYPE_FLOAT32), sizeof(float));
  assert_int_equal(emx_dtype_size(EMX_DTYPE_UNKNOWN), 0);
}

static void struct_sizes(void **state) {
  (void)state;
#define SIZE(n) assert_int_equal(emx_struct_size(#n), sizeof(emx_##n))
  SIZE(tensor);
  SIZE(tensor_info);
  SIZE(engine_config);
  SIZE(model_config);
  SIZE(timings);
  SIZE(request_desc);
  SIZE(stats);
  SIZE(device_info);
  SIZE(client_config);
  SIZE(client_options);
  SIZE(client_batch_item);
#undef SIZE
  assert_int_equal(emx_struct_size("no_such_struct"), 0);
  assert_int_equal(emx_struct_size(NULL), 0);
}

/* ---- structs a caller fills ---------------------------------------------- */

/* newer_config: emx_engine_config as a newer header might have it. */
typedef struct newer_config {
  emx_engine_config c;
  uint64_t future; /* a field this library does not know */
} newer_config;

static void newer_caller_default_fields_are_served(void **state) {
  (void)state;
  newer_config big;
  memset(&big, 0xab, sizeof big);
  big.c.struct_size = sizeof big;
  (emx_engine_config_init)(&big.c);
  assert_int_equal(big.c.struct_size, sizeof big); /* the caller's size */
  assert_int_equal(big.future, 0);                 /* zeroed by init */
  assert_int_equal(big.c.queue_capacity, 256);
  static const char *const cpu[] = {"cpu:workers=1"};
  big.c.devices = cpu;
  big.c.device_count = 1;
  emx_engine *e;
  assert_int_equal(emx_engine_create(&e, &big.c), 0);
  emx_engine_destroy(e);
}

static void newer_caller_set_field_is_refused(void **state) {
  (void)state;
  newer_config big;
  big.c.struct_size = sizeof big;
  (emx_engine_config_init)(&big.c);
  big.future = 1;
  emx_engine *e = (emx_engine *)&big;
  assert_int_equal(emx_engine_create(&e, &big.c), EMX_EVERSION);
  assert_null(e);
  const char *msg = emx_engine_last_error(NULL);
  assert_true(contains(msg, "emx_engine_config"));
  assert_true(contains(msg, "newer edgemux header"));
}

static void uninitialised_struct_is_refused(void **state) {
  (void)state;
  emx_engine_config cfg;
  memset(&cfg, 0, sizeof cfg);
  emx_engine *e;
  assert_int_equal(emx_engine_create(&e, &cfg), EMX_EINVAL);
  assert_true(contains(emx_engine_last_error(NULL), "emx_engine_config_init"));

  emx_client_config cc;
  memset(&cc, 0, sizeof cc);
  emx_client *c;
  assert_int_equal(emx_client_connect(&c, &cc), EMX_EINVAL);
  assert_true(contains(emx_client_last_error(NULL), "emx_client_config_init"));
}

static void newer_client_config_is_refused(void **state) {
  (void)state;
  struct {
    emx_client_config c;
    uint32_t future;
  } big;
  big.c.struct_size = sizeof big;
  (emx_client_config_init)(&big.c);
  assert_int_equal(big.future, 0);
  big.future = 7;
  emx_client *c;
  assert_int_equal(emx_client_connect(&c, &big.c), EMX_EVERSION);
  assert_true(contains(emx_client_last_error(NULL), "emx_client_config"));
}

/* An older caller's desc ends before `priority`: the garbage after it (an
 * out-of-range priority, were it read) must not be read. */
static void older_caller_request_desc(void **state) {
  (void)state;
  emx_engine *engine = engine_new("cpu:workers=1", 0);
  emx_model *m = model_load(engine, "face", MODEL_FACE_SHORT);
  emx_tensor *in = tensors_inputs(m), *out = tensors_outputs(m);
  emx_request_desc d;
  memset(&d, 0xff, sizeof d);
  d.struct_size = offsetof(emx_request_desc, priority);
  (emx_request_desc_init)(&d);
  assert_int_equal(d.priority, -1); /* past its size: untouched */
  d.model = m;
  d.inputs = in;
  d.input_count = emx_model_input_count(m);
  d.outputs = out;
  d.output_count = emx_model_output_count(m);
  assert_int_equal((emx_infer)(engine, &d, NULL), 0);

  /* The same garbage inside a full-size desc is read, and refused. */
  d.struct_size = sizeof d;
  assert_int_equal((emx_infer)(engine, &d, NULL), EMX_EINVAL);
  tensors_free(in, emx_model_input_count(m));
  tensors_free(out, emx_model_output_count(m));
  emx_engine_destroy(engine);
}

/* ---- structs the library fills ------------------------------------------- */

static void filled_structs_respect_the_caller_s_size(void **state) {
  (void)state;
  emx_engine *engine = engine_new("cpu:workers=1", 0);
  emx_model *m = model_load(engine, "face", MODEL_FACE_SHORT);

  /* This header: the macro stores the size. */
  emx_tensor_info ti;
  ti.struct_size = 0;
  assert_int_equal(emx_model_input_info(m, 0, &ti), 0);
  assert_int_equal(ti.struct_size, sizeof ti);
  assert_true(ti.bytes > 0);

  /* An older caller without `bytes` and after: those stay untouched. */
  emx_tensor_info old;
  memset(&old, 0x5a, sizeof old);
  old.struct_size = offsetof(emx_tensor_info, bytes);
  assert_int_equal((emx_model_input_info)(m, 0, &old), 0);
  assert_int_equal(old.struct_size, offsetof(emx_tensor_info, bytes));
  assert_string_equal(old.name, ti.name);
  assert_int_equal(old.rank, ti.rank);
  assert_memory_equal(old.dims, ti.dims, sizeof ti.dims);
  assert_int_equal(old.zero_point, 0x5a5a5a5a);

  /* A newer caller: its extra bytes come back zero, struct_size says how
   * far the library wrote. */
  struct {
    emx_tensor_info ti;
    uint64_t future;
  } big;
  memset(&big, 0x5a, sizeof big);
  big.ti.struct_size = sizeof big;
  assert_int_equal((emx_model_input_info)(m, 0, &big.ti), 0);
  assert_int_equal(big.ti.struct_size, sizeof(emx_tensor_info));
  assert_int_equal(big.future, 0);
  assert_int_equal(big.ti.bytes, ti.bytes);

  /* No size at all: refused, nothing written. */
  emx_stats st;
  memset(&st, 0, sizeof st);
  assert_int_equal((emx_model_stats)(m, &st), EMX_EINVAL);
  assert_int_equal(emx_model_stats(m, &st), 0);
  assert_int_equal(st.struct_size, sizeof st);
  emx_engine_destroy(engine);
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(version_is_the_header_s),
      cmocka_unit_test(version_check),
      cmocka_unit_test(error_table),
      cmocka_unit_test(dtype_table),
      cmocka_unit_test(struct_sizes),
      cmocka_unit_test(newer_caller_default_fields_are_served),
      cmocka_unit_test(newer_caller_set_field_is_refused),
      cmocka_unit_test(uninitialised_struct_is_refused),
      cmocka_unit_test(newer_client_config_is_refused),
      cmocka_unit_test(older_caller_request_desc),
      cmocka_unit_test(filled_structs_respect_the_caller_s_size),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
