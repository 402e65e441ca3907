/* unit_http_codec.c — the KServe v2 codec: each malformed case Triton's
 * HTTP tests try gets its status, and JSON and binary bodies decode to the
 * same bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/front/http_codec.h"
#include "daemon/front/prom.h"

/* A model with a [1,2,2] FP32 input "x", a [1,3] INT8 input "q" and two
 * outputs: the shapes of a small detector, without the engine. */
static const emx_tensor_info ins[] = {{.name = "x",
                                       .dtype = EMX_DTYPE_FLOAT32,
                                       .rank = 3,
                                       .dims = {1, 2, 2},
                                       .bytes = 16},
                                      {.name = "q",
                                       .dtype = EMX_DTYPE_INT8,
                                       .rank = 2,
                                       .dims = {1, 3},
                                       .bytes = 3}};
static const emx_tensor_info outs[] = {{.name = "boxes",
                                        .dtype = EMX_DTYPE_FLOAT32,
                                        .rank = 2,
                                        .dims = {1, 2},
                                        .bytes = 8},
                                       {.name = "count",
                                        .dtype = EMX_DTYPE_INT32,
                                        .rank = 1,
                                        .dims = {1},
                                        .bytes = 4}};
static const emxh_model_desc model = {"tiny", ins, outs, 2, 2};

#define Q_OK                                                                   \
  "{\"name\":\"q\",\"shape\":[1,3],\"datatype\":\"INT8\",\"data\":[-1,0,127]}"

static int parse(const char *json, emxh_request *r, emxh_error *e) {
  return emxh_request_parse(r, &model, (const uint8_t *)json, strlen(json),
                            SIZE_MAX, e);
}

static void expect_status(const char *json, int status, const char *needle) {
  emxh_request r;
  emxh_error e = {0};
  int rc = parse(json, &r, &e);
  emxh_request_free(&r);
  if (rc == 0 || e.status != status || !strstr(e.msg, needle))
    fail_msg("for %s\nexpected %d \"%s\", got rc %d: %d \"%s\"", json, status,
             needle, rc, e.status, e.msg);
}

static void nested_and_flat_decode_alike(void **state) {
  const char *nested =
      "{\"id\":\"r1\",\"inputs\":[{\"name\":\"x\",\"shape\":[1,2,2],"
      "\"datatype\":\"FP32\",\"data\":[[[1.5,2],[3,-4]]]}," Q_OK "]}";
  const char *flat = "{\"inputs\":[" Q_OK ",{\"name\":\"x\",\"shape\":[1,2,2],"
                     "\"datatype\":\"FP32\",\"data\":[1.5,2,3,-4]}]}";
  emxh_request a, b;
  emxh_error e;
  assert_int_equal(parse(nested, &a, &e), 0);
  assert_int_equal(parse(flat, &b, &e), 0);
  float want[4] = {1.5f, 2, 3, -4};
  int8_t q[3] = {-1, 0, 127};
  assert_memory_equal(a.inputs[0].data, want, 16);
  assert_memory_equal(b.inputs[0].data, want, 16);
  assert_memory_equal(a.inputs[1].data, q, 3);
  assert_string_equal(a.id, "r1");
  assert_null(b.id);
  assert_true(a.want[0] && a.want[1] && !a.binary[0]);
  emxh_request_free(&a);
  emxh_request_free(&b);
}

/* Binary inputs point into the body after the JSON header, in the order
 * the inputs are listed. */
static void binary_inputs_point_into_body(void **state) {
  const char *hdr =
      "{\"inputs\":[{\"name\":\"q\",\"shape\":[1,3],\"datatype\":\"INT8\","
      "\"parameters\":{\"binary_data_size\":3}},{\"name\":\"x\",\"shape\":"
      "[1,2,2],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":16}"
      "}],\"outputs\":[{\"name\":\"count\",\"parameters\":{\"binary_data\":"
      "true}}],\"parameters\":{\"priority\":1,\"timeout\":2500}}";
  size_t h = strlen(hdr);
  uint8_t body[512];
  memcpy(body, hdr, h);
  int8_t q[3] = {5, 6, 7};
  float x[4] = {9, 8, 7, 6};
  memcpy(body + h, q, 3);
  memcpy(body + h + 3, x, 16);
  emxh_request r;
  emxh_error e;
  assert_int_equal(emxh_request_parse(&r, &model, body, h + 19, h, &e), 0);
  assert_ptr_equal(r.inputs[1].data, body + h);
  assert_ptr_equal(r.inputs[0].data, body + h + 3);
  assert_false(r.want[0]);
  assert_true(r.want[1] && r.binary[1]);
  assert_int_equal(r.priority, EMX_PRIORITY_HIGH);
  assert_int_equal(r.timeout_ns, 2500000);
  emxh_request_free(&r);

  /* The header length past the body, and bytes nobody claims. */
  assert_int_equal(emxh_request_parse(&r, &model, body, h + 19, h + 20, &e),
                   -1);
  assert_int_equal(e.status, 400);
  assert_non_null(strstr(e.msg, "Inference-Header-Content-Length"));
  emxh_request_free(&r);
  assert_int_equal(emxh_request_parse(&r, &model, body, h + 18, h, &e), -1);
  assert_int_equal(e.status, 400);
  emxh_request_free(&r);
}

static void malformed_requests(void **state) {
  expect_status("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,2,2],\"datatype\":"
                "\"FP32\",\"data\":[1,2,3]}," Q_OK "]}",
                400, "has 3 elements but its shape needs 4");
  expect_status("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,2,2],\"datatype\":"
                "\"FP32\",\"data\":[1,2,3,4,5]}," Q_OK "]}",
                400, "more elements");
  expect_status("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,-2,2],\"datatype\":"
                "\"FP32\",\"data\":[1,2,3,4]}," Q_OK "]}",
                400, "must not be negative");
  expect_status("{\"inputs\":[{\"name\":\"x\",\"shape\":[4294967296,"
                "4294967296,4],\"datatype\":\"FP32\",\"data\":[1]}]}",
                400, "overflows");
  expect_status("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,2,2],\"datatype\":"
                "\"FP33\",\"data\":[1,2,3,4]}]}",
                400, "unknown datatype \"FP33\"");
  expect_status("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,2,2],\"datatype\":"
                "\"UINT16\",\"data\":[1,2,3,4]}]}",
                400, "does not match the model's FP32");
  expect_status("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,2,2],\"datatype\":"
                "\"BYTES\",\"data\":[\"a\"]}]}",
                501, "BYTES");
  expect_status("{\"inputs\":[" Q_OK "]}", 400, "\"x\" is missing");
  expect_status("{\"inputs\":[" Q_OK "," Q_OK "]}", 400, "given twice");
  expect_status("{\"inputs\":[{\"name\":\"q\",\"shape\":[1,3],\"datatype\":"
                "\"INT8\",\"data\":[1,2,128]}]}",
                400, "out of range");
  expect_status("{\"inputs\":[{\"name\":\"q\",\"shape\":[1,4],\"datatype\":"
                "\"INT8\",\"data\":[1,2,3,4]}]}",
                400, "does not match the model's [1,3]");
  expect_status("{\"inputs\":[{\"name\":\"zz\",\"shape\":[1],\"datatype\":"
                "\"INT8\",\"data\":[1]}]}",
                400, "unexpected input \"zz\"");
  expect_status("{\"inputs\":[], \"outputs\":[{\"name\":\"boxes\"},"
                "{\"name\":\"boxes\"}]}",
                400, "\"x\" is missing");
  expect_status("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,2,2],\"datatype\":"
                "\"FP32\",\"data\":[1,2,3,4]}," Q_OK "],\"outputs\":[{\"name\""
                ":\"boxes\"},{\"name\":\"boxes\"}]}",
                400, "requested twice");
  expect_status("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,2,2],\"datatype\":"
                "\"FP32\",\"data\":[1,2,3,4]}," Q_OK "],\"outputs\":[{\"name\""
                ":\"boxes\",\"parameters\":{\"classification\":2}}]}",
                501, "classification");
  expect_status("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,2,2],\"datatype\":"
                "\"FP32\",\"parameters\":{\"binary_data_size\":16}}]}",
                400, "runs past the end");
  expect_status("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,2,2],\"datatype\":"
                "\"FP32\",\"parameters\":{\"binary_data_size\":15}}]}",
                400, "need 16");
  expect_status("{\"inputs\":1}", 400, "\"inputs\" must be an array");
  expect_status("{\"inputs\":[],\"inputs\":[]}", 400, "malformed JSON");
  expect_status("[1,2", 400, "malformed JSON");

  /* Nesting past the limit is refused before the parser recurses. */
  char deep[4096];
  size_t n = 0;
  n += (size_t)sprintf(deep, "{\"inputs\":[{\"name\":\"x\",\"data\":");
  for (int i = 0; i < 200; i++)
    deep[n++] = '[';
  for (int i = 0; i < 200; i++)
    deep[n++] = ']';
  strcpy(deep + n, "}]}");
  expect_status(deep, 400, "nested deeper");
}

static void every_datatype_round_trips(void **state) {
  static const struct {
    const char *name;
    emx_dtype t;
    const char *data;
  } cases[] = {
      {"BOOL", EMX_DTYPE_BOOL, "[true,false,true]"},
      {"UINT8", EMX_DTYPE_UINT8, "[0,255,7]"},
      {"INT8", EMX_DTYPE_INT8, "[-128,127,0]"},
      {"INT16", EMX_DTYPE_INT16, "[-32768,32767,1]"},
      {"INT32", EMX_DTYPE_INT32, "[-2147483648,2147483647,3]"},
      {"INT64", EMX_DTYPE_INT64,
       "[-9223372036854775807,9223372036854775807,4]"},
      {"FP16", EMX_DTYPE_FLOAT16, "[0.5,-2.0,65504.0]"},
      {"FP32", EMX_DTYPE_FLOAT32, "[0.1,-2.5,3.0e+38]"},
      {"FP64", EMX_DTYPE_FLOAT64, "[0.1,-2.5,1.0e+300]"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    emx_tensor_info t = {
        .name = "t", .dtype = cases[c].t, .rank = 1, .dims = {3}};
    emxh_model_desc m = {"m", &t, &t, 1, 1};
    char body[512];
    snprintf(body, sizeof body,
             "{\"inputs\":[{\"name\":\"t\",\"shape\":[3],\"datatype\":\"%s\","
             "\"data\":%s}]}",
             cases[c].name, cases[c].data);
    emxh_request r;
    emxh_error e;
    int rc = emxh_request_parse(&r, &m, (const uint8_t *)body, strlen(body),
                                SIZE_MAX, &e);
    if (rc < 0)
      fail_msg("%s: %s", cases[c].name, e.msg);
    size_t len;
    char *json = emxh_response_json(&m, &r, r.inputs, &len);
    assert_non_null(json);
    char want[512];
    snprintf(want, sizeof want,
             "{\"model_name\":\"m\",\"model_version\":\"1\",\"outputs\":[{"
             "\"name\":\"t\",\"datatype\":\"%s\",\"shape\":[3],\"data\":",
             cases[c].name);
    if (strncmp(json, want, strlen(want)) != 0)
      fail_msg("%s: %s", cases[c].name, json);
    /* The numbers survive the trip: decode the response's data again. */
    json_t *doc = json_loads(json, 0, NULL);
    json_t *data = json_object_get(
        json_array_get(json_object_get(doc, "outputs"), 0), "data");
    char *again = json_dumps(data, JSON_COMPACT);
    char again_body[512];
    snprintf(again_body, sizeof again_body,
             "{\"inputs\":[{\"name\":\"t\",\"shape\":[3],\"datatype\":\"%s\","
             "\"data\":%s}]}",
             cases[c].name, again);
    emxh_request r2;
    assert_int_equal(emxh_request_parse(&r2, &m, (const uint8_t *)again_body,
                                        strlen(again_body), SIZE_MAX, &e),
                     0);
    assert_int_equal(r.inputs[0].size, r2.inputs[0].size);
    assert_memory_equal(r.inputs[0].data, r2.inputs[0].data, r.inputs[0].size);
    free(again);
    json_decref(doc);
    free(json);
    emxh_request_free(&r);
    emxh_request_free(&r2);
  }
}

static void binary_outputs_carry_only_their_size(void **state) {
  const char *body =
      "{\"id\":\"7\",\"inputs\":[{\"name\":\"x\",\"shape\":[1,2,2],"
      "\"datatype\":\"FP32\",\"data\":[1,2,3,4]}," Q_OK
      "],\"parameters\":{\"binary_data_output\":true},\"outputs\":[{\"name\":"
      "\"count\",\"parameters\":{\"binary_data\":false}},{\"name\":"
      "\"boxes\"}]}";
  emxh_request r;
  emxh_error e;
  assert_int_equal(parse(body, &r, &e), 0);
  float boxes[2] = {0.25f, 0.5f};
  int32_t count = 2;
  emx_tensor o[2] = {{EMX_DTYPE_FLOAT32, boxes, 8},
                     {EMX_DTYPE_INT32, &count, 4}};
  size_t len;
  char *json = emxh_response_json(&model, &r, o, &len);
  assert_string_equal(
      json, "{\"model_name\":\"tiny\",\"model_version\":\"1\",\"id\":\"7\","
            "\"outputs\":[{\"name\":\"boxes\",\"datatype\":\"FP32\",\"shape\":"
            "[1,2],\"parameters\":{\"binary_data_size\":8}},{\"name\":\"count\""
            ",\"datatype\":\"INT32\",\"shape\":[1],\"data\":[2]}]}");
  assert_int_equal(len, strlen(json));
  free(json);
  emxh_request_free(&r);
}

static void prometheus_text(void **state) {
  emx__prom p = {0};
  emx__prom_family(&p, "x_requests_total", "counter", "Requests\nserved.");
  const char *labels[] = {"model", "a\"b\\c\nd", "reason", "timeout"};
  emx__prom_sample(&p, "x_requests_total", labels, 2, 3);
  emx__prom_sample(&p, "x_requests_total", NULL, 0, 0.25);
  assert_false(p.failed);
  assert_string_equal(p.buf, "# HELP x_requests_total Requests\\nserved.\n"
                             "# TYPE x_requests_total counter\n"
                             "x_requests_total{model=\"a\\\"b\\\\c\\nd\","
                             "reason=\"timeout\"} 3\n"
                             "x_requests_total 0.25\n");
  emx__prom_free(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(nested_and_flat_decode_alike),
      cmocka_unit_test(binary_inputs_point_into_body),
      cmocka_unit_test(malformed_requests),
      cmocka_unit_test(every_datatype_round_trips),
      cmocka_unit_test(binary_outputs_carry_only_their_size),
      cmocka_unit_test(prometheus_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
