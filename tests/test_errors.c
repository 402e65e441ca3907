/*
 * test_errors.c — every way a call can fail: the exact EMX_E* code and a
 * message that says what was wrong.
 *
 * The load-error cases run several rounds so that, under ASan, a leak on any
 * error path shows up in the leak check at exit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "support.h"

#define LOAD_ROUNDS 3

/* expect_message asserts `msg` contains `word` (ignoring case), printing the
 * message when it does not. */
static void expect_message(const char *msg, const char *word) {
  assert_non_null(msg);
  if (!contains(msg, word))
    print_error("message \"%s\" lacks \"%s\"\n", msg, word);
  assert_true(contains(msg, word));
}

/* expect_load_fails loads `path` under `name` and expects `code`, no model,
 * a message containing `word`, and the name still free. */
static void expect_load_fails(emx_engine *engine, const char *name,
                              const char *path, int code, const char *word) {
  emx_model *model = (emx_model *)0x1;
  int rc = emx_model_load_file(engine, name, path, &model);
  if (rc != code)
    print_error("load %s: got %s, want %s: %s\n", path, emx_err_name(rc),
                emx_err_name(code), emx_engine_last_error(engine));
  assert_int_equal(rc, code);
  assert_null(model);
  expect_message(emx_engine_last_error(engine), word);
  emx_model *found = (emx_model *)0x1;
  assert_int_equal(emx_model_find(engine, name, &found), EMX_ENOENT);
  assert_null(found);
}

/* expect_load_buffer_fails is expect_load_fails from memory. */
static void expect_load_buffer_fails(emx_engine *engine, const char *name,
                                     const void *data, size_t size, int code) {
  emx_model *model = (emx_model *)0x1;
  int rc = emx_model_load_buffer(engine, name, data, size, &model);
  if (rc != code)
    print_error("load_buffer (%zu bytes): got %s, want %s: %s\n", size,
                emx_err_name(rc), emx_err_name(code),
                emx_engine_last_error(engine));
  assert_int_equal(rc, code);
  assert_null(model);
  assert_true(emx_engine_last_error(engine)[0] != '\0');
}

/* ---- loading ------------------------------------------------------------- */

static void load_missing_file(void **state) {
  (void)state;
  emx_engine *engine = engine_new("cpu:workers=1", 0);
  const char *path = EMX_MODELS_DIR "/no_such_model.tflite";
  for (int round = 0; round < LOAD_ROUNDS; round++)
    expect_load_fails(engine, "missing", path, EMX_ENOENT, path);
  emx_engine_destroy(engine);
}

static void load_directory(void **state) {
  (void)state;
  emx_engine *engine = engine_new("cpu:workers=1", 0);
  for (int round = 0; round < LOAD_ROUNDS; round++) {
    emx_model *model = (emx_model *)0x1;
    int rc = emx_model_load_file(engine, "dir", EMX_MODELS_DIR, &model);
    /* A directory is not a readable model file: EIO or EMODEL, no crash. */
    if (rc != EMX_EIO)
      assert_int_equal(rc, EMX_EMODEL);
    assert_null(model);
    expect_message(emx_engine_last_error(engine), EMX_MODELS_DIR);
  }
  emx_engine_destroy(engine);
}

static void load_random_bytes(void **state) {
  (void)state;
  unsigned char junk[4096];
  uint64_t seed = 42;
  for (size_t i = 0; i < sizeof(junk); i++)
    junk[i] = (unsigned char)prng_next(&seed);
  char *path = write_temp_file(junk, sizeof(junk));
  emx_engine *engine = engine_new("cpu:workers=1", 0);
  for (int round = 0; round < LOAD_ROUNDS; round++) {
    expect_load_fails(engine, "junk", path, EMX_EMODEL, path);
    expect_load_buffer_fails(engine, "junk", junk, sizeof(junk), EMX_EMODEL);
  }
  emx_engine_destroy(engine);
  unlink(path);
  free(path);
}

static void load_empty_file(void **state) {
  (void)state;
  char *path = write_temp_file("", 0);
  emx_engine *engine = engine_new("cpu:workers=1", 0);
  for (int round = 0; round < LOAD_ROUNDS; round++)
    expect_load_fails(engine, "empty", path, EMX_EMODEL, path);
  emx_engine_destroy(engine);
  unlink(path);
  free(path);
}

static void load_truncated_model(void **state) {
  (void)state;
  size_t size = 0;
  void *bytes = read_file(MODEL_FACE_SHORT, &size);
  assert_non_null(bytes);
  assert_true(size > 1000);
  char *path = write_temp_file(bytes, size / 2);
  emx_engine *engine = engine_new("cpu:workers=1", 0);
  for (int round = 0; round < LOAD_ROUNDS; round++) {
    expect_load_fails(engine, "half", path, EMX_EMODEL, path);
    expect_load_buffer_fails(engine, "half", bytes, size / 2, EMX_EMODEL);
  }
  /* The whole thing still loads under that name. */
  emx_model *model = NULL;
  assert_int_equal(emx_model_load_buffer(engine, "half", bytes, size, &model),
                   0);
  assert_non_null(model);
  emx_engine_destroy(engine);
  unlink(path);
  free(path);
  free(bytes);
}

static void load_unsupported_op(void **state) {
  (void)state;
  emx_engine *engine = engine_new("cpu:workers=2", 0);
  for (int round = 0; round < LOAD_ROUNDS; round++)
    expect_load_fails(engine, "selfie", MODEL_SELFIE, EMX_EUNSUPPORTED,
                      "Convolution2DTransposeBias");
  /* The failure left nothing behind: the engine loads and runs models. */
  emx_model *model = model_load(engine, "selfie", MODEL_FACE_SHORT);
  emx_tensor *in = tensors_inputs(model);
  emx_tensor *out = tensors_outputs(model);
  emx_request_desc req;
  request_init(&req, model, in, out);
  assert_int_equal(emx_infer(engine, &req, NULL), 0);
  assert_false(tensors_all_sentinel(out, 2));
  tensors_free(in, 1);
  tensors_free(out, 2);
  emx_engine_destroy(engine);
}

static void load_bad_names(void **state) {
  (void)state;
  emx_engine *engine = engine_new("cpu:workers=1", 0);
  char name[80];
  memset(name, 'n', sizeof(name));
  name[64] = '\0'; /* 64 bytes: one too many */
  emx_model *model = (emx_model *)0x1;
  assert_int_equal(emx_model_load_file(engine, name, MODEL_FACE_SHORT, &model),
                   EMX_EINVAL);
  assert_null(model);
  expect_message(emx_engine_last_error(engine), "name");
  model = (emx_model *)0x1;
  assert_int_equal(emx_model_load_file(engine, "", MODEL_FACE_SHORT, &model),
                   EMX_EINVAL);
  assert_null(model);
  expect_message(emx_engine_last_error(engine), "name");

  name[63] = '\0'; /* 63 bytes: the longest allowed */
  model = model_load(engine, name, MODEL_FACE_SHORT);
  assert_string_equal(emx_model_name(model), name);
  emx_engine_destroy(engine);
}

static void find_unknown_name(void **state) {
  (void)state;
  emx_engine *engine = engine_new("cpu:workers=1", 0);
  model_load(engine, "face", MODEL_FACE_SHORT);
  emx_model *found = (emx_model *)0x1;
  assert_int_equal(emx_model_find(engine, "no-such-model-x7", &found),
                   EMX_ENOENT);
  assert_null(found);
  expect_message(emx_engine_last_error(engine), "no-such-model-x7");
  emx_engine_destroy(engine);
}

static void duplicate_name(void **state) {
  (void)state;
  emx_engine *engine = engine_new("cpu:workers=1", 0);
  emx_model *first = model_load(engine, "dup-name", MODEL_FACE_SHORT);
  for (int round = 0; round < LOAD_ROUNDS; round++) {
    emx_model *second = (emx_model *)0x1;
    assert_int_equal(
        emx_model_load_file(engine, "dup-name", MODEL_HAND_LITE, &second),
        EMX_EEXIST);
    assert_null(second);
    expect_message(emx_engine_last_error(engine), "dup-name");
  }
  emx_model *found = NULL;
  assert_int_equal(emx_model_find(engine, "dup-name", &found), 0);
  assert_ptr_equal(found, first);
  assert_int_equal(emx_model_output_count(found), 2); /* still the face */

  /* After unloading, the name can be taken again. */
  assert_int_equal(emx_model_unload(engine, first), 0);
  emx_model *hand = model_load(engine, "dup-name", MODEL_HAND_LITE);
  assert_int_equal(emx_model_output_count(hand), 4);
  emx_engine_destroy(engine);
}

/* ---- request validation -------------------------------------------------- */

/* validation is an engine with face_short loaded and correct buffers. */
typedef struct validation {
  emx_engine *engine;
  emx_model *model;
  emx_tensor *in;  /* 1 input, "input", float32 */
  emx_tensor *out; /* 2 outputs, "regressors", "classificators" */
  int callbacks;   /* times on_unexpected ran */
} validation;

static void on_unexpected(emx_request *req, int status, void *user) {
  validation *v = user;
  v->callbacks++;
}

/* expect_invalid asserts `req` is refused with `code` and a message with
 * `word`, by emx_infer and by emx_submit, with nothing queued. */
static void expect_invalid(validation *v, const emx_request_desc *req, int code,
                           const char *word) {
  int rc = emx_infer(v->engine, req, NULL);
  if (rc != code)
    print_error("infer: got %s, want %s: %s\n", emx_err_name(rc),
                emx_err_name(code), emx_engine_last_error(v->engine));
  assert_int_equal(rc, code);
  expect_message(emx_engine_last_error(v->engine), word);

  emx_request_desc with_cb = *req;
  with_cb.on_complete = on_unexpected;
  with_cb.user = v;
  emx_request *handle = (emx_request *)0x1;
  assert_int_equal(emx_submit(v->engine, &with_cb, &handle), code);
  assert_null(handle);
  expect_message(emx_engine_last_error(v->engine), word);
}

static int validation_setup(void **state) {
  validation *v = calloc(1, sizeof(*v));
  if (v == NULL)
    return -1;
  v->engine = engine_new("cpu:workers=1", 0);
  v->model = model_load(v->engine, "face", MODEL_FACE_SHORT);
  v->in = tensors_inputs(v->model);
  v->out = tensors_outputs(v->model);
  *state = v;
  return 0;
}

static int validation_teardown(void **state) {
  validation *v = *state;
  emx_stats st;
  int rc = emx_model_stats(v->model, &st);
  emx_engine_destroy(v->engine);
  /* Nothing refused was ever queued, counted or called back. */
  int ok = rc == 0 && st.requests == 0 && v->callbacks == 0 &&
           tensors_all_sentinel(v->out, 2);
  if (!ok)
    print_error("refused requests left traces: stats rc %d, requests %llu, "
                "callbacks %d\n",
                rc, (unsigned long long)st.requests, v->callbacks);
  tensors_free(v->in, 1);
  tensors_free(v->out, 2);
  free(v);
  return ok ? 0 : -1;
}

static void wrong_input_count(void **state) {
  validation *v = *state;
  emx_request_desc req;
  request_init(&req, v->model, v->in, v->out);
  emx_tensor two[2] = {v->in[0], v->in[0]};
  req.inputs = two;
  req.input_count = 2;
  expect_invalid(v, &req, EMX_ECOUNT, "input");
  req.inputs = NULL;
  req.input_count = 0;
  expect_invalid(v, &req, EMX_ECOUNT, "input");
}

static void wrong_input_size(void **state) {
  validation *v = *state;
  emx_tensor bad = v->in[0];
  bad.size -= sizeof(float);
  emx_request_desc req;
  request_init(&req, v->model, &bad, v->out);
  expect_invalid(v, &req, EMX_ESIZE, "input");
  bad.size = v->in[0].size * 2;
  expect_invalid(v, &req, EMX_ESIZE, "input");
}

static void wrong_input_size_names_tensor(void **state) {
  (void)state;
  /* hand_landmark's input is "input_1": the message names that tensor. */
  emx_engine *engine = engine_new("cpu:workers=1", 0);
  emx_model *hand = model_load(engine, "hand", MODEL_HAND_LITE);
  emx_tensor *in = tensors_inputs(hand);
  emx_tensor *out = tensors_outputs(hand);
  emx_tensor bad = in[0];
  bad.size = 12;
  emx_request_desc req;
  request_init(&req, hand, &bad, out);
  assert_int_equal(emx_infer(engine, &req, NULL), EMX_ESIZE);
  expect_message(emx_engine_last_error(engine), "input_1");
  tensors_free(in, 1);
  tensors_free(out, 4);
  emx_engine_destroy(engine);
}

static void wrong_input_dtype(void **state) {
  validation *v = *state;
  emx_tensor bad = v->in[0];
  bad.dtype = EMX_DTYPE_INT32; /* same byte size, wrong type */
  emx_request_desc req;
  request_init(&req, v->model, &bad, v->out);
  expect_invalid(v, &req, EMX_EDTYPE, "float32");
  bad.dtype = EMX_DTYPE_UINT8;
  expect_invalid(v, &req, EMX_EDTYPE, "float32");
}

static void wrong_output_count(void **state) {
  validation *v = *state;
  emx_request_desc req;
  request_init(&req, v->model, v->in, v->out);
  req.output_count = 1;
  expect_invalid(v, &req, EMX_ECOUNT, "output");
  req.output_count = 3;
  expect_invalid(v, &req, EMX_ECOUNT, "output");
  req.outputs = NULL;
  req.output_count = 0;
  expect_invalid(v, &req, EMX_ECOUNT, "output");
}

static void wrong_output_size(void **state) {
  validation *v = *state;
  emx_tensor bad[2] = {v->out[0], v->out[1]};
  bad[1].size -= 1;
  emx_request_desc req;
  request_init(&req, v->model, v->in, bad);
  expect_invalid(v, &req, EMX_ESIZE, "classificators");
}

static void wrong_output_dtype(void **state) {
  validation *v = *state;
  emx_tensor bad[2] = {v->out[0], v->out[1]};
  bad[0].dtype = EMX_DTYPE_INT32;
  emx_request_desc req;
  request_init(&req, v->model, v->in, bad);
  expect_invalid(v, &req, EMX_EDTYPE, "float32");
}

static void null_tensor_data(void **state) {
  validation *v = *state;
  emx_tensor bad = v->in[0];
  bad.data = NULL;
  emx_request_desc req;
  request_init(&req, v->model, &bad, v->out);
  int rc = emx_infer(v->engine, &req, NULL);
  assert_int_equal(rc, EMX_EINVAL);
  emx_tensor bad_out[2] = {v->out[0], v->out[1]};
  bad_out[1].data = NULL;
  request_init(&req, v->model, v->in, bad_out);
  assert_int_equal(emx_infer(v->engine, &req, NULL), EMX_EINVAL);
}

static void null_model_in_request(void **state) {
  validation *v = *state;
  emx_request_desc req;
  request_init(&req, v->model, v->in, v->out);
  req.model = NULL;
  expect_invalid(v, &req, EMX_EINVAL, "model");
}

/* ---- NULL arguments ------------------------------------------------------ */

static void null_arguments(void **state) {
  (void)state;
  emx_engine_config cfg;
  emx_engine_config_init(&cfg);
  assert_int_equal(emx_engine_create(NULL, &cfg), EMX_EINVAL);

  emx_engine *engine = engine_new("cpu:workers=1", 0);
  emx_model *model = model_load(engine, "face", MODEL_FACE_SHORT);
  emx_model *m = NULL;
  emx_tensor_info info;
  emx_stats st;
  emx_device_info dev;
  emx_request_desc req;
  emx_request_desc_init(&req);
  emx_request *handle = NULL;
  char byte = 0;

  assert_int_equal(emx_model_load_file(NULL, "x", MODEL_FACE_SHORT, &m),
                   EMX_EINVAL);
  assert_int_equal(emx_model_load_file(engine, NULL, MODEL_FACE_SHORT, &m),
                   EMX_EINVAL);
  assert_int_equal(emx_model_load_file(engine, "x", NULL, &m), EMX_EINVAL);
  assert_int_equal(emx_model_load_buffer(NULL, "x", &byte, 1, &m), EMX_EINVAL);
  assert_int_equal(emx_model_load_buffer(engine, NULL, &byte, 1, &m),
                   EMX_EINVAL);
  assert_int_equal(emx_model_load_buffer(engine, "x", NULL, 1, &m), EMX_EINVAL);
  assert_int_equal(emx_model_find(NULL, "face", &m), EMX_EINVAL);
  assert_int_equal(emx_model_find(engine, NULL, &m), EMX_EINVAL);
  assert_int_equal(emx_model_find(engine, "face", NULL), EMX_EINVAL);
  assert_int_equal(emx_model_unload(NULL, model), EMX_EINVAL);
  assert_int_equal(emx_model_unload(engine, NULL), EMX_EINVAL);
  assert_int_equal(emx_model_input_info(NULL, 0, &info), EMX_EINVAL);
  assert_int_equal(emx_model_input_info(model, 0, NULL), EMX_EINVAL);
  assert_int_equal(emx_model_output_info(NULL, 0, &info), EMX_EINVAL);
  assert_int_equal(emx_model_output_info(model, 0, NULL), EMX_EINVAL);
  assert_int_equal(emx_model_stats(NULL, &st), EMX_EINVAL);
  assert_int_equal(emx_model_stats(model, NULL), EMX_EINVAL);
  assert_int_equal(emx_stream_create(NULL, NULL), EMX_EINVAL);
  assert_int_equal(emx_stream_create(engine, NULL), EMX_EINVAL);
  assert_int_equal(emx_engine_device_info(NULL, 0, &dev), EMX_EINVAL);
  assert_int_equal(emx_engine_device_info(engine, 0, NULL), EMX_EINVAL);
  assert_int_equal(emx_engine_device_stats(NULL, 0, &st), EMX_EINVAL);
  assert_int_equal(emx_engine_device_stats(engine, 0, NULL), EMX_EINVAL);
  assert_int_equal(emx_infer(NULL, &req, NULL), EMX_EINVAL);
  assert_int_equal(emx_infer(engine, NULL, NULL), EMX_EINVAL);
  assert_int_equal(emx_submit(NULL, &req, &handle), EMX_EINVAL);
  assert_int_equal(emx_submit(engine, NULL, &handle), EMX_EINVAL);
  assert_null(handle);
  assert_int_equal(emx_request_wait(NULL, 0), EMX_EINVAL);
  assert_int_equal(emx_request_poll(NULL), EMX_EINVAL);
  assert_int_equal(emx_request_cancel(NULL), EMX_EINVAL);

  /* Destroy functions accept NULL. */
  emx_request_destroy(NULL);
  emx_stream_destroy(NULL);
  emx_engine_destroy(NULL);
  emx_engine_destroy(engine);
}

/* load_null_out: `out` is optional for the loaders (documented in
 * edgemux.h): the model is loaded and found by name afterwards. */
static void load_null_out(void **state) {
  (void)state;
  emx_engine *engine = engine_new("cpu:workers=1", 0);
  size_t size = 0;
  void *bytes = read_file(MODEL_FACE_SHORT, &size);
  assert_non_null(bytes);
  int rc_file = emx_model_load_file(engine, "x", MODEL_FACE_SHORT, NULL);
  int rc_buffer = emx_model_load_buffer(engine, "y", bytes, size, NULL);
  free(bytes);
  assert_int_equal(rc_file, 0);
  assert_int_equal(rc_buffer, 0);
  emx_model *x = NULL, *y = NULL;
  assert_int_equal(emx_model_find(engine, "x", &x), 0);
  assert_int_equal(emx_model_find(engine, "y", &y), 0);
  assert_string_equal(emx_model_name(x), "x");
  assert_string_equal(emx_model_name(y), "y");
  assert_int_equal(emx_model_input_count(x), 1);
  emx_engine_destroy(engine);
}

static void bad_device_index(void **state) {
  (void)state;
  emx_engine *engine = engine_new("cpu:workers=2", 0);
  emx_device_info dev;
  emx_stats st;
  /* No such device: EINVAL (argument out of range) or ENOENT (no such
   * device) both describe it. */
  int rc = emx_engine_device_info(engine, 2, &dev);
  if (rc != EMX_ENOENT)
    assert_int_equal(rc, EMX_EINVAL);
  rc = emx_engine_device_stats(engine, 2, &st);
  if (rc != EMX_ENOENT)
    assert_int_equal(rc, EMX_EINVAL);
  emx_engine_destroy(engine);
}

/* ---- shutdown ------------------------------------------------------------ */

static void calls_after_shutdown(void **state) {
  (void)state;
  emx_engine *engine = engine_new("cpu:workers=1", 0);
  emx_model *model = model_load(engine, "face", MODEL_FACE_SHORT);
  emx_tensor *in = tensors_inputs(model);
  emx_tensor *out = tensors_outputs(model);
  size_t size = 0;
  void *bytes = read_file(MODEL_FACE_SHORT, &size);
  assert_non_null(bytes);

  emx_engine_shutdown(engine);
  emx_engine_shutdown(engine); /* idempotent */

  emx_model *m = (emx_model *)0x1;
  assert_int_equal(emx_model_load_file(engine, "late", MODEL_HAND_LITE, &m),
                   EMX_ESHUTDOWN);
  assert_null(m);
  expect_message(emx_engine_last_error(engine), "shut");
  m = (emx_model *)0x1;
  assert_int_equal(emx_model_load_buffer(engine, "late", bytes, size, &m),
                   EMX_ESHUTDOWN);
  assert_null(m);
  m = (emx_model *)0x1;
  assert_int_equal(emx_model_find(engine, "face", &m), EMX_ESHUTDOWN);
  assert_null(m);
  expect_message(emx_engine_last_error(engine), "shut");

  emx_request_desc req;
  request_init(&req, model, in, out);
  assert_int_equal(emx_infer(engine, &req, NULL), EMX_ESHUTDOWN);
  expect_message(emx_engine_last_error(engine), "shut");
  emx_request *handle = (emx_request *)0x1;
  assert_int_equal(emx_submit(engine, &req, &handle), EMX_ESHUTDOWN);
  assert_null(handle);
  expect_message(emx_engine_last_error(engine), "shut");
  emx_stream *stream = (emx_stream *)0x1;
  assert_int_equal(emx_stream_create(engine, &stream), EMX_ESHUTDOWN);
  assert_null(stream);
  assert_int_equal(emx_model_unload(engine, model), EMX_ESHUTDOWN);
  assert_true(tensors_all_sentinel(out, 2));

  emx_engine_destroy(engine);
  free(bytes);
  tensors_free(in, 1);
  tensors_free(out, 2);
}

/* ---- engine configuration ------------------------------------------------ */

static void expect_create_fails(const char *const *devices, size_t count,
                                const char *bad_spec) {
  emx_engine_config cfg;
  emx_engine_config_init(&cfg);
  cfg.devices = devices;
  cfg.device_count = count;
  emx_engine *engine = (emx_engine *)0x1;
  int rc = emx_engine_create(&engine, &cfg);
  if (rc != EMX_EINVAL)
    print_error("spec \"%s\": got %s: %s\n", bad_spec, emx_err_name(rc),
                emx_engine_last_error(NULL));
  assert_int_equal(rc, EMX_EINVAL);
  assert_null(engine);
  expect_message(emx_engine_last_error(NULL), bad_spec);
}

static void bad_device_specs(void **state) {
  (void)state;
  static const char *const bad[] = {
      "gpu",
      "cpu:workers=0",
      "cpu:bogus=1",
      "cpu:workers=abc",
      "cpu:workers=-1",
  };
  for (int round = 0; round < LOAD_ROUNDS; round++) {
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
      expect_create_fails(&bad[i], 1, bad[i]);
    /* A good spec before a bad one: the good device is opened, then undone. */
    const char *mixed[] = {"cpu:workers=1", "cpu:bogus=1"};
    expect_create_fails(mixed, 2, "cpu:bogus=1");
  }
}

/* ---- last error is per thread -------------------------------------------- */

typedef struct thread_check {
  emx_engine *engine;
  char before[256]; /* last error seen by the thread before failing */
  int rc;           /* its failing call's code */
  char after[256];  /* its message after failing */
} thread_check;

static void *other_thread(void *arg) {
  thread_check *tc = arg;
  snprintf(tc->before, sizeof(tc->before), "%s",
           emx_engine_last_error(tc->engine));
  emx_model *m;
  tc->rc = emx_model_find(tc->engine, "other-thread-name", &m);
  snprintf(tc->after, sizeof(tc->after), "%s",
           emx_engine_last_error(tc->engine));
  return NULL;
}

static void last_error_per_thread(void **state) {
  (void)state;
  emx_engine *engine = engine_new("cpu:workers=1", 0);
  emx_model *m;
  assert_int_equal(emx_model_find(engine, "main-thread-name", &m), EMX_ENOENT);
  expect_message(emx_engine_last_error(engine), "main-thread-name");

  thread_check tc = {.engine = engine};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, other_thread, &tc), 0);
  pthread_join(t, NULL);
  assert_string_equal(tc.before, ""); /* that thread had not failed yet */
  assert_int_equal(tc.rc, EMX_ENOENT);
  expect_message(tc.after, "other-thread-name");
  /* This thread's message is its own. */
  expect_message(emx_engine_last_error(engine), "main-thread-name");
  emx_engine_destroy(engine);
}

/* ---- names of codes and types -------------------------------------------- */

typedef struct code_row {
  int code;
  const char *name;
  const char *text;
} code_row;

static const code_row codes[] = {
#define ROW(name, value, text) {EMX_##name, "EMX_" #name, text},
    EMX_ERRNO_MAP(ROW)
#undef ROW
};
#define CODE_COUNT (sizeof(codes) / sizeof(codes[0]))

static void error_names(void **state) {
  (void)state;
  assert_int_equal(CODE_COUNT, 20);
  for (size_t i = 0; i < CODE_COUNT; i++) {
    assert_true(codes[i].code < 0);
    const char *text = emx_strerror(codes[i].code);
    const char *name = emx_err_name(codes[i].code);
    assert_non_null(text);
    assert_non_null(name);
    assert_string_equal(text, codes[i].text);
    assert_string_equal(name, codes[i].name);
    for (size_t j = 0; j < i; j++) {
      assert_int_not_equal(codes[i].code, codes[j].code);
      assert_string_not_equal(text, emx_strerror(codes[j].code));
      assert_string_not_equal(name, emx_err_name(codes[j].code));
    }
  }
  assert_string_equal(emx_err_name(EMX_EBUSY), "EMX_EBUSY");

  static const int unknown[] = {-1000, -21, 1, 77};
  for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
    assert_string_equal(emx_strerror(unknown[i]), "unknown error");
    const char *name = emx_err_name(unknown[i]);
    assert_non_null(name);
    assert_true(name[0] != '\0');
    for (size_t j = 0; j < CODE_COUNT; j++)
      assert_string_not_equal(name, codes[j].name);
  }
}

static void dtype_names(void **state) {
  (void)state;
  assert_string_equal(emx_dtype_name(EMX_DTYPE_FLOAT32), "float32");
  assert_string_equal(emx_dtype_name(EMX_DTYPE_INT32), "int32");
  assert_string_equal(emx_dtype_name(EMX_DTYPE_UINT8), "uint8");
  assert_string_equal(emx_dtype_name(EMX_DTYPE_INT8), "int8");
  assert_string_equal(emx_dtype_name(EMX_DTYPE_INT64), "int64");
  assert_string_equal(emx_dtype_name(EMX_DTYPE_FLOAT16), "float16");
  assert_string_equal(emx_dtype_name((emx_dtype)99), "unknown");
  for (int a = EMX_DTYPE_FLOAT32; a <= EMX_DTYPE_FLOAT64; a++) {
    assert_true(emx_dtype_name((emx_dtype)a)[0] != '\0');
    for (int b = EMX_DTYPE_FLOAT32; b < a; b++)
      assert_string_not_equal(emx_dtype_name((emx_dtype)a),
                              emx_dtype_name((emx_dtype)b));
  }
  assert_string_equal(emx_version(), EMX_VERSION_STRING);
}

#define VALIDATION(fn)                                                         \
  cmocka_unit_test_setup_teardown(fn, validation_setup, validation_teardown)

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(load_missing_file),
      cmocka_unit_test(load_directory),
      cmocka_unit_test(load_random_bytes),
      cmocka_unit_test(load_empty_file),
      cmocka_unit_test(load_truncated_model),
      cmocka_unit_test(load_unsupported_op),
      cmocka_unit_test(load_bad_names),
      cmocka_unit_test(find_unknown_name),
      cmocka_unit_test(duplicate_name),
      VALIDATION(wrong_input_count),
      VALIDATION(wrong_input_size),
      cmocka_unit_test(wrong_input_size_names_tensor),
      VALIDATION(wrong_input_dtype),
      VALIDATION(wrong_output_count),
      VALIDATION(wrong_output_size),
      VALIDATION(wrong_output_dtype),
      VALIDATION(null_tensor_data),
      VALIDATION(null_model_in_request),
      cmocka_unit_test(null_arguments),
      cmocka_unit_test(load_null_out),
      cmocka_unit_test(bad_device_index),
      cmocka_unit_test(calls_after_shutdown),
      cmocka_unit_test(bad_device_specs),
      cmocka_unit_test(last_error_per_thread),
      cmocka_unit_test(error_names),
      cmocka_unit_test(dtype_names),
  };
  return cmocka_run_group_tests_name("errors", tests, NULL, NULL);
}
