/* oracle_infer.c — the oracle as a program, for the shell tests of installed
 * trees and packages (install_tree.sh, check_packages.sh, arm64): runs MODEL
 * once through a direct TfLiteInterpreterInvoke (tests/support.c's oracle,
 * built like the cpu backend) on seeded inputs, and writes the inputs and
 * the outputs as raw files, so that `edgemux infer --input ... --output ...`
 * through an installed daemon can be compared byte for byte.
 *
 *   emx-oracle-infer MODEL.tflite SEED DIR
 *     writes DIR/in0, DIR/in1, ... and DIR/want0, DIR/want1, ...
 *     and prints the counts as "inputs N outputs M". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "support.h"

static void write_raw(const char *dir, const char *stem, size_t i,
                      const emx_tensor *t) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s%zu", dir, stem, i);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(t->data, 1, t->size, f) != t->size || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

static emx_tensor *alloc_like(const TfLiteInterpreter *in, bool outputs,
                              size_t *count) {
  *count = (size_t)(outputs ? TfLiteInterpreterGetOutputTensorCount(in)
                            : TfLiteInterpreterGetInputTensorCount(in));
  emx_tensor *t = calloc(*count, sizeof *t);
  for (size_t i = 0; t && i < *count; i++) {
    const TfLiteTensor *tt =
        outputs ? TfLiteInterpreterGetOutputTensor(in, (int32_t)i)
                : TfLiteInterpreterGetInputTensor((TfLiteInterpreter *)in,
                                                  (int32_t)i);
    t[i].dtype = (emx_dtype)TfLiteTensorType(tt);
    t[i].size = TfLiteTensorByteSize(tt);
    t[i].data = calloc(1, t[i].size);
    if (!t[i].data)
      exit(1);
  }
  if (!t)
    exit(1);
  return t;
}

static void run(char **argv) {
  oracle *o = oracle_create(argv[1]);
  const TfLiteInterpreter *in = oracle_interpreter(o);
  size_t nin, nout;
  emx_tensor *inputs = alloc_like(in, false, &nin);
  emx_tensor *outputs = alloc_like(in, true, &nout);
  tensors_fill_random(inputs, nin, strtoull(argv[2], NULL, 10));
  oracle_run(o, inputs, nin, outputs, nout);
  for (size_t i = 0; i < nin; i++)
    write_raw(argv[3], "in", i, &inputs[i]);
  for (size_t i = 0; i < nout; i++)
    write_raw(argv[3], "want", i, &outputs[i]);
  printf("inputs %zu outputs %zu\n", nin, nout);
  tensors_free(inputs, nin);
  tensors_free(outputs, nout);
  oracle_destroy(o);
}

static char **args;

static void oracle_once(void **state) {
  (void)state;
  run(args);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: emx-oracle-infer MODEL.tflite SEED DIR\n");
    return 2;
  }
  args = argv;
  /* The oracle asserts with cmocka's macros, which need a running test. */
  const struct CMUnitTest tests[] = {cmocka_unit_test(oracle_once)};
  cmocka_set_message_output(CM_OUTPUT_STDOUT);
  return cmocka_run_group_tests_name("oracle_infer", tests, NULL, NULL);
}
