/*
 * test_header_example.c — the usage example at the top of edgemux.h,
 * compiled and run. An example nobody compiles goes stale.
 *
 * The body of header_example() is the header's example verbatim (it runs in
 * the models folder, so the relative model path works); afterwards it hands
 * back the buffers it allocated so the test can check the outputs and free
 * them. example_is_verbatim checks the copy still matches the header.
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

#include "edgemux/edgemux.h"
#include "support.h"

/* example_result is what the example leaves behind. */
typedef struct example_result {
  int rc;             /* emx_infer's status */
  float *image;       /* the (zeroed) input */
  size_t image_bytes; /* its size */
  emx_tensor outputs[2];
} example_result;

static int header_example(example_result *res) {
  // clang-format off
  /* ---- from edgemux.h ---- */
  emx_engine *engine;
  emx_engine_config cfg;
  emx_engine_config_init(&cfg);              // one cpu worker per core
  if (emx_engine_create(&engine, &cfg) < 0) return 1;

  emx_model *model;
  if (emx_model_load_file(engine, "face", "face_detection_short_range.tflite",
                          &model) < 0) {
    fprintf(stderr, "%s\n", emx_engine_last_error(engine));
    return 1;
  }
  emx_tensor_info in, out0, out1;
  emx_model_input_info(model, 0, &in);
  emx_model_output_info(model, 0, &out0);
  emx_model_output_info(model, 1, &out1);

  float *image = calloc(1, in.bytes);          // fill with pixels
  emx_tensor inputs[1] = {{in.dtype, image, in.bytes}};
  emx_tensor outputs[2] = {{out0.dtype, malloc(out0.bytes), out0.bytes},
                           {out1.dtype, malloc(out1.bytes), out1.bytes}};

  emx_request_desc req;
  emx_request_desc_init(&req);
  req.model = model;
  req.inputs = inputs;   req.input_count = 1;
  req.outputs = outputs; req.output_count = 2;
  int rc = emx_infer(engine, &req, NULL);      // blocks until done

  emx_engine_destroy(engine);                  // unloads the model too
  /* ---- end of the example ---- */
  // clang-format on

  res->rc = rc;
  res->image = image;
  res->image_bytes = in.bytes;
  res->outputs[0] = outputs[0];
  res->outputs[1] = outputs[1];
  return 0;
}

static void example_runs(void **state) {
  (void)state;
  char cwd[4096];
  assert_non_null(getcwd(cwd, sizeof(cwd)));
  assert_int_equal(chdir(EMX_MODELS_DIR), 0);
  example_result res;
  memset(&res, 0, sizeof(res));
  int status = header_example(&res);
  assert_int_equal(chdir(cwd), 0);
  assert_int_equal(status, 0);
  assert_int_equal(res.rc, 0);
  assert_non_null(res.image);
  assert_int_equal(res.image_bytes, 128 * 128 * 3 * sizeof(float));
  assert_int_equal(res.outputs[0].size, 57344);
  assert_int_equal(res.outputs[1].size, 3584);

  /* The outputs are the model's answer for a black image. */
  emx_tensor input = {EMX_DTYPE_FLOAT32, res.image, res.image_bytes};
  emx_tensor want[2];
  for (int i = 0; i < 2; i++) {
    want[i].dtype = res.outputs[i].dtype;
    want[i].size = res.outputs[i].size;
    want[i].data = malloc(want[i].size);
    assert_non_null(want[i].data);
  }
  direct_run(MODEL_FACE_SHORT, &input, 1, want, 2);
  assert_true(tensors_equal(res.outputs, want, 2));

  for (int i = 0; i < 2; i++) {
    free(want[i].data);
    free(res.outputs[i].data);
  }
  free(res.image);
}

/* ---- the copy above is the header's example ----------------------------- */

/* next_line returns the next line of *text (trimmed of spaces and, for the
 * header, its " * " comment prefix) in buf, skipping blank ones; NULL at the
 * end. */
static const char *next_line(const char **text, bool comment, char *buf,
                             size_t size) {
  while (**text != '\0') {
    const char *start = *text, *end = strchr(start, '\n');
    if (end == NULL)
      end = start + strlen(start);
    *text = *end ? end + 1 : end;
    while (start < end && (*start == ' ' || *start == '\t'))
      start++;
    if (comment && start < end && *start == '*' &&
        (start + 1 == end || start[1] == ' ')) {
      start++;
      while (start < end && *start == ' ')
        start++;
    }
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
      end--;
    if (end == start)
      continue;
    size_t n =
        (size_t)(end - start) < size - 1 ? (size_t)(end - start) : size - 1;
    memcpy(buf, start, n);
    buf[n] = '\0';
    return buf;
  }
  return NULL;
}

/* read_text reads a file as a NUL-terminated string; asserts success. */
static char *read_text(const char *path) {
  size_t size = 0;
  char *bytes = read_file(path, &size);
  assert_non_null(bytes);
  char *text = realloc(bytes, size + 1);
  assert_non_null(text);
  text[size] = '\0';
  return text;
}

static void example_is_verbatim(void **state) {
  (void)state;
  char *header = read_text(EMX_SOURCE_DIR "/include/edgemux/edgemux.h");
  char *source = read_text(__FILE__);

  const char *h = strstr(header, "Example (compiled and run by");
  assert_non_null(h);
  h = strchr(h, '\n') + 1;
  const char *h_end = strstr(h, "*/");
  assert_non_null(h_end);
  const char *s = strstr(source, "/* ---- from edgemux.h ---- */");
  assert_non_null(s);
  s = strchr(s, '\n') + 1;
  const char *s_end = strstr(s, "/* ---- end of the example ---- */");
  assert_non_null(s_end);

  char hl[256], sl[256];
  int lines = 0;
  for (;;) {
    const char *a = h < h_end ? next_line(&h, true, hl, sizeof(hl)) : NULL;
    if (a != NULL && h > h_end)
      a = NULL; /* that was the closing line */
    const char *b = s < s_end ? next_line(&s, false, sl, sizeof(sl)) : NULL;
    if (b != NULL && s > s_end)
      b = NULL;
    if (a == NULL && b == NULL)
      break;
    if (a == NULL || b == NULL || strcmp(a, b) != 0)
      print_error("line %d: header \"%s\", test \"%s\"\n", lines + 1,
                  a ? a : "(end)", b ? b : "(end)");
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a, b);
    lines++;
  }
  assert_true(lines > 20);
  free(header);
  free(source);
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(example_is_verbatim),
      cmocka_unit_test(example_runs),
  };
  return cmocka_run_group_tests_name("header_example", tests, NULL, NULL);
}
