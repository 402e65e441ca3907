/*
 * test_oracle.c — the engine computes exactly what TFLite computes.
 *
 * For each test model, random inputs go through the engine (emx_infer and
 * emx_submit + emx_request_wait, on a pool of two cpu devices) and through a
 * TFLite interpreter the test builds itself with the same settings; every
 * output byte must match. Model info must match what that interpreter
 * reports, and loading from a buffer must behave like loading the file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "support.h"

#define DEVICE_SPEC "cpu:workers=2,threads=1"
#define RUNS 5 /* random inputs per model and path */

/* model_case is the state of one parameterised test case. */
typedef struct model_case {
  const char *path; /* .tflite file */
  const char *name; /* name to load it under */
  uint64_t seed;    /* first input seed */
} model_case;

static const model_case face_short = {MODEL_FACE_SHORT, "face_short", 100};
static const model_case face_full = {MODEL_FACE_FULL, "face_full", 200};
static const model_case hand_lite = {MODEL_HAND_LITE, "hand_lite", 300};

/* check_timings asserts the invariants of a request that ran. */
static void check_timings(const emx_timings *t, int device_count) {
  assert_true(t->submitted_ns > 0);
  assert_true(t->started_ns >= t->submitted_ns);
  assert_true(t->finished_ns >= t->started_ns);
  assert_true(t->device_ns > 0);
  assert_true(t->device_ns <= t->finished_ns - t->started_ns);
  assert_in_range(t->device, 0, device_count - 1);
}

/* ---- cases --------------------------------------------------------------- */

/* infer_matches_oracle: emx_infer, RUNS random inputs, bit-identical. */
static void infer_matches_oracle(void **state) {
  const model_case *mc = *state;
  emx_engine *engine = engine_new(DEVICE_SPEC, 0);
  assert_int_equal(emx_engine_device_count(engine), 2);
  emx_model *model = model_load(engine, mc->name, mc->path);
  size_t nin = emx_model_input_count(model);
  size_t nout = emx_model_output_count(model);
  oracle *o = oracle_create(mc->path);

  emx_tensor *in = tensors_inputs(model);
  emx_tensor *want = tensors_outputs(model);
  emx_tensor *got = tensors_outputs(model);
  for (int run = 0; run < RUNS; run++) {
    tensors_fill_random(in, nin, mc->seed + (uint64_t)run);
    oracle_run(o, in, nin, want, nout);
    tensors_fill_sentinel(got, nout);

    emx_request_desc req;
    request_init(&req, model, in, got);
    emx_timings t;
    memset(&t, 0, sizeof(t));
    int rc = emx_infer(engine, &req, &t);
    assert_int_equal(rc, 0);
    assert_true(tensors_equal(got, want, nout));
    check_timings(&t, 2);
  }

  /* Different inputs give different outputs: the comparison means something.
   */
  emx_tensor *other = tensors_outputs(model);
  tensors_fill_random(in, nin, mc->seed + 1000);
  oracle_run(o, in, nin, other, nout);
  assert_false(tensors_equal(other, want, nout));

  tensors_free(other, nout);
  tensors_free(got, nout);
  tensors_free(want, nout);
  tensors_free(in, nin);
  oracle_destroy(o);
  emx_engine_destroy(engine);
}

/* submit_matches_oracle: RUNS requests in flight at once (so both devices
 * work), each waited for and compared. */
static void submit_matches_oracle(void **state) {
  const model_case *mc = *state;
  emx_engine *engine = engine_new(DEVICE_SPEC, 0);
  emx_model *model = model_load(engine, mc->name, mc->path);
  size_t nin = emx_model_input_count(model);
  size_t nout = emx_model_output_count(model);
  oracle *o = oracle_create(mc->path);

  emx_tensor *in[RUNS], *want[RUNS], *got[RUNS];
  emx_request *handles[RUNS];
  for (int i = 0; i < RUNS; i++) {
    in[i] = tensors_inputs(model);
    want[i] = tensors_outputs(model);
    got[i] = tensors_outputs(model);
    tensors_fill_random(in[i], nin, mc->seed + 50 + (uint64_t)i);
    oracle_run(o, in[i], nin, want[i], nout);
  }
  for (int i = 0; i < RUNS; i++) {
    emx_request_desc req;
    request_init(&req, model, in[i], got[i]);
    handles[i] = NULL;
    assert_int_equal(emx_submit(engine, &req, &handles[i]), 0);
    assert_non_null(handles[i]);
  }
  for (int i = 0; i < RUNS; i++) {
    assert_int_equal(emx_request_wait(handles[i], -1), 0);
    assert_int_equal(emx_request_poll(handles[i]), 0);
    assert_string_equal(emx_request_error(handles[i]), "");
    emx_timings t;
    emx_request_timings(handles[i], &t);
    check_timings(&t, 2);
    assert_true(tensors_equal(got[i], want[i], nout));
    emx_request_destroy(handles[i]);
  }

  for (int i = 0; i < RUNS; i++) {
    tensors_free(in[i], nin);
    tensors_free(want[i], nout);
    tensors_free(got[i], nout);
  }
  oracle_destroy(o);
  emx_engine_destroy(engine);
}

/* model_info_matches_tflite: every field of every input and output equals
 * what the TFLite interpreter reports. */
static void model_info_matches_tflite(void **state) {
  const model_case *mc = *state;
  emx_engine *engine = engine_new(DEVICE_SPEC, 0);
  emx_model *model = model_load(engine, mc->name, mc->path);
  oracle *o = oracle_create(mc->path);
  const TfLiteInterpreter *ip = oracle_interpreter(o);

  assert_string_equal(emx_model_name(model), mc->name);
  size_t nin = emx_model_input_count(model);
  size_t nout = emx_model_output_count(model);
  assert_int_equal(nin, TfLiteInterpreterGetInputTensorCount(ip));
  assert_int_equal(nout, TfLiteInterpreterGetOutputTensorCount(ip));

  for (int pass = 0; pass < 2; pass++) {
    size_t count = pass == 0 ? nin : nout;
    for (size_t i = 0; i < count; i++) {
      emx_tensor_info info;
      memset(&info, 0x5A, sizeof(info));
      const TfLiteTensor *t;
      if (pass == 0) {
        assert_int_equal(emx_model_input_info(model, i, &info), 0);
        t = TfLiteInterpreterGetInputTensor(ip, (int32_t)i);
      } else {
        assert_int_equal(emx_model_output_info(model, i, &info), 0);
        t = TfLiteInterpreterGetOutputTensor(ip, (int32_t)i);
      }
      assert_non_null(info.name);
      assert_string_equal(info.name, TfLiteTensorName(t));
      assert_int_equal(info.dtype, TfLiteTensorType(t));
      assert_int_equal(info.rank, TfLiteTensorNumDims(t));
      assert_in_range(info.rank, 1, EMX_MAX_DIMS);
      for (int d = 0; d < info.rank; d++)
        assert_int_equal(info.dims[d], TfLiteTensorDim(t, d));
      assert_int_equal(info.bytes, TfLiteTensorByteSize(t));
      TfLiteQuantizationParams q = TfLiteTensorQuantizationParams(t);
      assert_true(info.scale == q.scale);
      assert_int_equal(info.zero_point, q.zero_point);
    }
  }

  /* Out-of-range indexes are refused. */
  emx_tensor_info info;
  assert_int_equal(emx_model_input_info(model, nin, &info), EMX_EINVAL);
  assert_int_equal(emx_model_output_info(model, nout, &info), EMX_EINVAL);

  oracle_destroy(o);
  emx_engine_destroy(engine);
}

/* model_info_known_values: facts about the test models, independent of the
 * oracle (catches both agreeing on nonsense). */
static void model_info_known_values(void **state) {
  (void)state;
  emx_engine *engine = engine_new(DEVICE_SPEC, 0);
  emx_model *face = model_load(engine, "face", MODEL_FACE_SHORT);
  emx_model *hand = model_load(engine, "hand", MODEL_HAND_LITE);

  emx_tensor_info info;
  assert_int_equal(emx_model_input_count(face), 1);
  assert_int_equal(emx_model_output_count(face), 2);
  assert_int_equal(emx_model_input_info(face, 0, &info), 0);
  assert_string_equal(info.name, "input");
  assert_int_equal(info.dtype, EMX_DTYPE_FLOAT32);
  assert_int_equal(info.rank, 4);
  assert_int_equal(info.dims[0], 1);
  assert_int_equal(info.dims[1], 128);
  assert_int_equal(info.dims[2], 128);
  assert_int_equal(info.dims[3], 3);
  assert_int_equal(info.bytes, 128 * 128 * 3 * sizeof(float));
  assert_true(info.scale == 0.0f);
  assert_int_equal(emx_model_output_info(face, 0, &info), 0);
  assert_string_equal(info.name, "regressors");
  assert_int_equal(info.bytes, 57344);
  assert_int_equal(emx_model_output_info(face, 1, &info), 0);
  assert_string_equal(info.name, "classificators");
  assert_int_equal(info.bytes, 3584);

  assert_int_equal(emx_model_input_count(hand), 1);
  assert_int_equal(emx_model_output_count(hand), 4);
  assert_int_equal(emx_model_input_info(hand, 0, &info), 0);
  assert_string_equal(info.name, "input_1");
  assert_int_equal(info.dtype, EMX_DTYPE_FLOAT32);
  assert_int_equal(info.rank, 4);
  assert_int_equal(info.dims[1], 224);
  assert_int_equal(info.dims[2], 224);
  assert_int_equal(info.dims[3], 3);
  assert_int_equal(info.bytes, 224 * 224 * 3 * sizeof(float));

  assert_string_equal(emx_dtype_name(EMX_DTYPE_FLOAT32), "float32");
  emx_engine_destroy(engine);
}

/* load_buffer_matches_file: a model loaded from memory (whose bytes the caller
 * then scribbles over and frees) gives the file-loaded model's results. */
static void load_buffer_matches_file(void **state) {
  const model_case *mc = *state;
  size_t size = 0;
  unsigned char *bytes = read_file(mc->path, &size);
  assert_non_null(bytes);

  emx_engine *engine = engine_new(DEVICE_SPEC, 0);
  emx_model *from_file = model_load(engine, "from_file", mc->path);
  emx_model *from_buf = NULL;
  assert_int_equal(
      emx_model_load_buffer(engine, "from_buf", bytes, size, &from_buf), 0);
  assert_non_null(from_buf);
  memset(bytes, 0xEE, size); /* the engine must have made its own copy */
  free(bytes);

  assert_string_equal(emx_model_name(from_buf), "from_buf");
  size_t nin = emx_model_input_count(from_file);
  size_t nout = emx_model_output_count(from_file);
  assert_int_equal(emx_model_input_count(from_buf), nin);
  assert_int_equal(emx_model_output_count(from_buf), nout);
  for (size_t i = 0; i < nout; i++) {
    emx_tensor_info a, b;
    assert_int_equal(emx_model_output_info(from_file, i, &a), 0);
    assert_int_equal(emx_model_output_info(from_buf, i, &b), 0);
    assert_string_equal(a.name, b.name);
    assert_int_equal(a.bytes, b.bytes);
    assert_int_equal(a.dtype, b.dtype);
  }

  oracle *o = oracle_create(mc->path);
  emx_tensor *in = tensors_inputs(from_file);
  emx_tensor *want = tensors_outputs(from_file);
  emx_tensor *got_file = tensors_outputs(from_file);
  emx_tensor *got_buf = tensors_outputs(from_buf);
  for (int run = 0; run < 3; run++) {
    tensors_fill_random(in, nin, mc->seed + 500 + (uint64_t)run);
    oracle_run(o, in, nin, want, nout);
    tensors_fill_sentinel(got_file, nout);
    tensors_fill_sentinel(got_buf, nout);

    emx_request_desc req;
    request_init(&req, from_file, in, got_file);
    assert_int_equal(emx_infer(engine, &req, NULL), 0);
    request_init(&req, from_buf, in, got_buf);
    assert_int_equal(emx_infer(engine, &req, NULL), 0);
    assert_true(tensors_equal(got_file, want, nout));
    assert_true(tensors_equal(got_buf, want, nout));
  }

  /* The found handle is the loaded one. */
  emx_model *found = NULL;
  assert_int_equal(emx_model_find(engine, "from_buf", &found), 0);
  assert_ptr_equal(found, from_buf);

  tensors_free(got_buf, nout);
  tensors_free(got_file, nout);
  tensors_free(want, nout);
  tensors_free(in, nin);
  oracle_destroy(o);
  emx_engine_destroy(engine);
}

#define MODEL_CASE(fn, mc)                                                     \
  { #fn "/" #mc, fn, NULL, NULL, (void *)&mc }

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      MODEL_CASE(infer_matches_oracle, face_short),
      MODEL_CASE(infer_matches_oracle, face_full),
      MODEL_CASE(infer_matches_oracle, hand_lite),
      MODEL_CASE(submit_matches_oracle, face_short),
      MODEL_CASE(submit_matches_oracle, face_full),
      MODEL_CASE(submit_matches_oracle, hand_lite),
      MODEL_CASE(model_info_matches_tflite, face_short),
      MODEL_CASE(model_info_matches_tflite, face_full),
      MODEL_CASE(model_info_matches_tflite, hand_lite),
      cmocka_unit_test(model_info_known_values),
      MODEL_CASE(load_buffer_matches_file, face_short),
      MODEL_CASE(load_buffer_matches_file, hand_lite),
  };
  return cmocka_run_group_tests_name("oracle", tests, NULL, NULL);
}
