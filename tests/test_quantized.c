/* test_quantized.c — the model kinds Coral users run, from
 * scripts/gen-fixtures: a uint8 classifier (per-tensor quantization) and
 * an int8 one (per-channel conv weights) on the cpu and sim backends, byte
 * for byte against a direct TfLiteInterpreterInvoke, in-process and
 * through edgemuxd; and the Edge
 * TPU-compiled model (one edgetpu-custom-op) on edgetpu devices through the
 * stub libedgetpu, in-process and isolated, and refused on a CPU with a
 * message that says why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon_support.h"
#include "edgemux/client.h"
#include "support.h"

#ifndef EMX_STUB_EDGETPU
#error "EMX_STUB_EDGETPU must name the stub library"
#endif

#define STUB ",lib=" EMX_STUB_EDGETPU

static int group_setup(void **state) {
  return private_lock_dirs();
}

/* run_seed runs one request of `m` on inputs from `seed`; `out` gets the
 * outputs (allocated here, freed by the caller with tensors_free). */
static emx_tensor *run_seed(emx_engine *e, emx_model *m, uint64_t seed,
                            emx_tensor **in) {
  *in = tensors_inputs(m);
  emx_tensor *out = tensors_outputs(m);
  tensors_fill_random(*in, emx_model_input_count(m), seed);
  emx_request_desc d;
  request_init(&d, m, *in, out);
  int rc = emx_infer(e, &d, NULL);
  if (rc != 0)
    fail_msg("infer: %s: %s", emx_err_name(rc), emx_engine_last_error(e));
  return out;
}

/* check_against_tflite loads `path` on an engine with device `spec` and
 * checks that its tensors are described as TFLite describes them
 * (type, scale, zero point) and that its outputs equal a direct
 * interpreter's (XNNPACK, as the cpu backend and the sim build theirs) for
 * several inputs, which give different outputs. */
static void check_against_tflite(const char *spec, const char *path,
                                 emx_dtype dtype) {
  emx_engine *e = engine_new(spec, 0);
  emx_model *m = model_load(e, "q", path);
  oracle *o = oracle_create(path);
  const TfLiteInterpreter *it = oracle_interpreter(o);
  emx_tensor_info info;
  assert_int_equal(emx_model_input_info(m, 0, &info), 0);
  assert_int_equal(info.dtype, dtype);
  TfLiteQuantizationParams q =
      TfLiteTensorQuantizationParams(TfLiteInterpreterGetInputTensor(it, 0));
  assert_true(q.scale > 0);
  assert_true(info.scale == q.scale);
  assert_int_equal(info.zero_point, q.zero_point);
  assert_int_equal(emx_model_output_info(m, 0, &info), 0);
  assert_int_equal(info.dtype, dtype);
  /* Quantized softmax: 1/256, zero point at the type's lowest value. */
  assert_true(info.scale == 1.0f / 256);
  assert_int_equal(info.zero_point, dtype == EMX_DTYPE_INT8 ? -128 : 0);

  size_t nout = emx_model_output_count(m);
  emx_tensor *first = NULL;
  int differ = 0;
  for (uint64_t seed = 1; seed <= 4; seed++) {
    emx_tensor *in;
    emx_tensor *out = run_seed(e, m, seed, &in);
    emx_tensor *want = tensors_outputs(m);
    oracle_run(o, in, 1, want, nout);
    assert_true(tensors_equal(out, want, nout));
    tensors_free(want, nout);
    tensors_free(in, 1);
    if (!first)
      first = out;
    else {
      differ |= !tensors_equal(out, first, nout);
      tensors_free(out, nout);
    }
  }
  assert_true(differ); /* a model that ignored its input would pass above */
  tensors_free(first, nout);
  oracle_destroy(o);
  emx_engine_destroy(e);
}

static void uint8_per_tensor_on_cpu(void **state) {
  check_against_tflite("cpu:workers=1", MODEL_Q_UINT8, EMX_DTYPE_UINT8);
}

static void int8_per_channel_on_cpu(void **state) {
  check_against_tflite("cpu:workers=1", MODEL_Q_INT8_PC, EMX_DTYPE_INT8);
}

static void uint8_per_tensor_on_sim(void **state) {
  check_against_tflite("sim:41", MODEL_Q_UINT8, EMX_DTYPE_UINT8);
}

static void int8_per_channel_on_sim(void **state) {
  check_against_tflite("sim:42", MODEL_Q_INT8_PC, EMX_DTYPE_INT8);
}

/* Through edgemuxd: the client sees the quantization TFLite sees, and
 * gets TFLite's outputs byte for byte. */
static emxt_daemon the_daemon; /* file-static: the teardown stops it */

static int daemon_teardown(void **state) {
  emxt_daemon_kill(&the_daemon); /* nothing when it was stopped */
  return 0;
}

static void quantized_through_the_daemon(void **state) {
  emxt_daemon *d = &the_daemon;
  const char *args[] = {"--device", "cpu:workers=1", "--allow-load", NULL};
  assert_int_equal(emxt_daemon_start(d, args), 0);
  static const char *const paths[] = {MODEL_Q_UINT8, MODEL_Q_INT8_PC};
  static const char *const names[] = {"q_uint8", "q_int8_pc"};
  emx_client *c;
  assert_int_equal(emx_client_connect(&c, NULL), 0);
  for (size_t k = 0; k < 2; k++) {
    emx_client_model *m;
    int rc = emx_client_model_load(c, names[k], paths[k], &m);
    if (rc != 0)
      fail_msg("load %s: %s", paths[k], emx_client_last_error(c));
    oracle *o = oracle_create(paths[k]);
    TfLiteQuantizationParams q = TfLiteTensorQuantizationParams(
        TfLiteInterpreterGetInputTensor(oracle_interpreter(o), 0));
    emx_tensor_info info;
    assert_int_equal(emx_client_model_input_info(m, 0, &info), 0);
    assert_true(info.scale == q.scale);
    assert_int_equal(info.zero_point, q.zero_point);
    emx_tensor in, out, want;
    assert_int_equal(emx_client_tensor_alloc_input(c, m, 0, &in), 0);
    assert_int_equal(emx_client_tensor_alloc_output(c, m, 0, &out), 0);
    want = out;
    want.data = malloc(out.size);
    assert_non_null(want.data);
    for (uint64_t seed = 1; seed <= 3; seed++) {
      tensors_fill_random(&in, 1, seed);
      oracle_run(o, &in, 1, &want, 1);
      assert_int_equal(emx_client_infer(c, m, &in, 1, &out, 1, NULL), 0);
      assert_true(tensors_equal(&out, &want, 1));
    }
    free(want.data);
    oracle_destroy(o);
  }
  emx_client_destroy(c);
  assert_int_equal(emxt_daemon_stop(d), 0);
}

/* check_stub_runs_it runs the Edge TPU-compiled fixture on `spec` (the
 * stub libedgetpu): its tensors are the compiled model's, and its outputs
 * are what the stub's node computes. */
static void check_stub_runs_it(const char *spec) {
  emx_engine *e = engine_new(spec, 0);
  emx_model *m = model_load(e, "tpu", MODEL_Q_EDGETPU);
  emx_tensor_info info;
  assert_int_equal(emx_model_input_info(m, 0, &info), 0);
  assert_int_equal(info.dtype, EMX_DTYPE_UINT8);
  assert_int_equal(emx_model_output_info(m, 0, &info), 0);
  assert_int_equal(info.dtype, EMX_DTYPE_UINT8);
  assert_int_equal(info.bytes, 10);
  for (uint64_t seed = 1; seed <= 6; seed++) {
    emx_tensor *in;
    emx_tensor *out = run_seed(e, m, seed, &in);
    emx_tensor *want = tensors_outputs(m);
    stub_edgetpu_expected(in, 1, want, 1);
    assert_true(tensors_equal(out, want, 1));
    tensors_free(want, 1);
    tensors_free(in, 1);
    tensors_free(out, 1);
  }
  emx_engine_destroy(e);
}

static void edgetpu_model_on_stub_in_process(void **state) {
  setenv("EMX_STUB_EDGETPU_DEVICES", "usb:/q0", 1);
  check_stub_runs_it("edgetpu:usb:0,isolate=0" STUB);
}

static void edgetpu_model_on_stub_isolated(void **state) {
  setenv("EMX_STUB_EDGETPU_DEVICES", "usb:/q1", 1);
  check_stub_runs_it("edgetpu:usb:0,isolate=1" STUB);
}

/* Every device of edgetpu:* prepares the model; requests land on any. */
static void edgetpu_model_on_every_stub_device(void **state) {
  setenv("EMX_STUB_EDGETPU_DEVICES", "usb:/q2,pci:/dev/apex_q", 1);
  check_stub_runs_it("edgetpu:*" STUB);
}

/* On a CPU, TFLite cannot run the custom op: the load fails and says the
 * model is compiled for the Edge TPU, not just "unresolved custom op". */
/* Through edgemuxd, the placement travels with the bytes
 * (emx_client_model_load_placed): the Edge TPU-compiled model placed on
 * the Edge TPUs runs on the stub; without a placement the CPU device
 * refuses it, saying why; a placement naming no device is EMX_EINVAL. */
static void edgetpu_model_placed_through_the_daemon(void **state) {
  emxt_daemon *d = &the_daemon;
  const char *args[] = {"--device", "cpu:workers=1", "--device",
                        "edgetpu:usb:0" STUB, NULL};
  assert_int_equal(emxt_daemon_start(d, args), 0);
  FILE *f = fopen(MODEL_Q_EDGETPU, "rb");
  assert_non_null(f);
  static unsigned char bytes[1 << 16];
  size_t n = fread(bytes, 1, sizeof bytes, f);
  fclose(f);
  assert_true(n > 0 && n < sizeof bytes);
  emx_client *c;
  assert_int_equal(emx_client_connect(&c, NULL), 0);
  emx_client_model *m;
  int rc = emx_client_model_load_placed(c, "tpu_nowhere", bytes, n, NULL, &m);
  assert_true(rc < 0);
  if (!contains(emx_client_last_error(c), "edgetpu-custom-op"))
    fail_msg("unplaced: %s", emx_client_last_error(c));
  assert_int_equal(
      emx_client_model_load_placed(c, "tpu_bad", bytes, n, "nosuch0", &m),
      EMX_EINVAL);
  rc = emx_client_model_load_placed(c, "tpu", bytes, n, "edgetpu", &m);
  if (rc != 0)
    fail_msg("placed: %s", emx_client_last_error(c));
  emx_tensor in, out;
  assert_int_equal(emx_client_tensor_alloc_input(c, m, 0, &in), 0);
  assert_int_equal(emx_client_tensor_alloc_output(c, m, 0, &out), 0);
  emx_tensor want = out;
  want.data = malloc(out.size);
  assert_non_null(want.data);
  for (uint64_t seed = 1; seed <= 3; seed++) {
    tensors_fill_random(&in, 1, seed);
    stub_edgetpu_expected(&in, 1, &want, 1);
    assert_int_equal(emx_client_infer(c, m, &in, 1, &out, 1, NULL), 0);
    assert_true(tensors_equal(&out, &want, 1));
  }
  free(want.data);
  emx_client_destroy(c);
  assert_int_equal(emxt_daemon_stop(d), 0);
}

static void edgetpu_model_on_cpu_is_refused(void **state) {
  static const char *const specs[] = {"cpu:workers=1", "sim:43"};
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
    emx_engine *e = engine_new(specs[i], 0);
    emx_model *m = NULL;
    assert_int_equal(emx_model_load_file(e, "tpu", MODEL_Q_EDGETPU, &m),
                     EMX_EUNSUPPORTED);
    assert_null(m);
    const char *msg = emx_engine_last_error(e);
    if (!contains(msg, "compiled for the Edge TPU") ||
        !contains(msg, "no Edge TPU is present") ||
        !contains(msg, "edgetpu-custom-op"))
      fail_msg("%s", msg);
    emx_engine_destroy(e);
  }
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(uint8_per_tensor_on_cpu),
      cmocka_unit_test(int8_per_channel_on_cpu),
      cmocka_unit_test(uint8_per_tensor_on_sim),
      cmocka_unit_test(int8_per_channel_on_sim),
      cmocka_unit_test_teardown(quantized_through_the_daemon, daemon_teardown),
      cmocka_unit_test(edgetpu_model_on_stub_in_process),
      cmocka_unit_test(edgetpu_model_on_stub_isolated),
      cmocka_unit_test(edgetpu_model_on_every_stub_device),
      cmocka_unit_test(edgetpu_model_on_cpu_is_refused),
      cmocka_unit_test_teardown(edgetpu_model_placed_through_the_daemon,
                                daemon_teardown),
  };
  return cmocka_run_group_tests_name("quantized", tests, group_setup, NULL);
}
