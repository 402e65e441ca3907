/* unit_tflite_graph.c — the model trial's graph rule (backend/tflite_graph.c):
 * every real model and fixture passes; an operator writing its own input,
 * a tensor with two producers and an out-of-range output are refused with
 * where it is; and no truncation or bit flip of a model makes the checker
 * read out of bounds (ASan runs this too). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/tflite.h"
#include "support.h"

static const char *const REAL[] = {
    MODEL_FACE_SHORT,
    MODEL_FACE_FULL,
    MODEL_HAND_LITE,
    MODEL_SELFIE,
    EMX_MODELS_DIR "/hand_landmark_full.tflite",
    MODEL_Q_UINT8,
    MODEL_Q_INT8_PC,
    MODEL_Q_EDGETPU,
    EMX_FIXTURES_DIR "/detect.tflite",
};

static void real_models_pass(void **state) {
  for (size_t i = 0; i < sizeof REAL / sizeof REAL[0]; i++) {
    size_t size;
    void *data = read_file(REAL[i], &size);
    assert_non_null(data);
    emx__errbuf err = {{0}};
    if (emx__tfl_graph_check(data, size, &err) != 0)
      fail_msg("%s refused: %s", REAL[i], err.msg);
    free(data);
  }
}

/* ---- the test's own walk to the ints it rewrites ------------------------ */

static uint32_t u32(const uint8_t *b, size_t at) {
  uint32_t v;
  memcpy(&v, b + at, 4);
  return v;
}
static size_t field_at(const uint8_t *b, size_t table, int idx) {
  size_t vt = table - (size_t)(int32_t)u32(b, table);
  uint16_t off;
  memcpy(&off, b + vt + 4 + 2 * idx, 2);
  assert_true(off != 0);
  return table + off;
}
static size_t follow(const uint8_t *b, size_t at) {
  return at + u32(b, at);
}
/* op_ints: where operator `op` of subgraph 0 keeps its inputs (which = 1)
 * or outputs (2): the position of the first int32. */
static size_t op_ints(const uint8_t *b, int op, int which) {
  size_t model = u32(b, 0);
  size_t subs = follow(b, field_at(b, model, 2));
  size_t sg = follow(b, subs + 4);
  size_t ops = follow(b, field_at(b, sg, 3));
  assert_true(u32(b, ops) > (uint32_t)op);
  size_t o = follow(b, ops + 4 + 4 * (size_t)op);
  size_t v = follow(b, field_at(b, o, which));
  assert_true(u32(b, v) >= 1);
  return v + 4;
}

static void refused_saying(uint8_t *data, size_t size, const char *what) {
  emx__errbuf err = {{0}};
  assert_int_equal(emx__tfl_graph_check(data, size, &err), EMX_EMODEL);
  print_message("refused: %s\n", err.msg);
  if (!strstr(err.msg, what))
    fail_msg("\"%s\" does not say \"%s\"", err.msg, what);
}

static void bad_graphs_refused(void **state) {
  size_t size;
  uint8_t *orig = read_file(MODEL_Q_UINT8, &size);
  assert_non_null(orig);
  uint8_t *b = malloc(size);
  assert_non_null(b);

  memcpy(b, orig, size); /* operator 0 writes its own first input */
  memcpy(b + op_ints(b, 0, 2), b + op_ints(b, 0, 1), 4);
  refused_saying(b, size, "also one of its inputs");

  memcpy(b, orig, size); /* operator 0 writes operator 1's output too */
  memcpy(b + op_ints(b, 0, 2), b + op_ints(b, 1, 2), 4);
  refused_saying(b, size, "written by operators 0 and 1");

  memcpy(b, orig, size); /* operator 0 writes a tensor that is not there */
  int32_t far = 100000;
  memcpy(b + op_ints(b, 0, 2), &far, 4);
  refused_saying(b, size, "does not exist");
  free(b);
  free(orig);
}

/* Any bytes: a prefix of every length, and seeded bit flips. The checker
 * may pass or refuse them; it must not read outside them. */
static void any_bytes_are_safe(void **state) {
  size_t size;
  uint8_t *orig = read_file(MODEL_Q_UINT8, &size);
  assert_non_null(orig);
  emx__errbuf err;
  for (size_t n = 0; n <= size; n++) {
    uint8_t *cut = malloc(n ? n : 1); /* its own block: ASan sees its end */
    assert_non_null(cut);
    memcpy(cut, orig, n);
    emx__tfl_graph_check(cut, n, &err);
    free(cut);
  }
  uint64_t seed = 11;
  uint8_t *b = malloc(size);
  assert_non_null(b);
  for (int round = 0; round < 2000; round++) {
    memcpy(b, orig, size);
    for (int k = 0; k < 4; k++) {
      uint64_t r = prng_next(&seed);
      b[(r >> 8) % size] ^= (uint8_t)(1u << (r & 7));
    }
    emx__tfl_graph_check(b, size, &err);
  }
  free(b);
  free(orig);
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(real_models_pass),
      cmocka_unit_test(bad_graphs_refused),
      cmocka_unit_test(any_bytes_are_safe),
  };
  return cmocka_run_group_tests_name("tflite_graph", tests, NULL, NULL);
}
