/* cmd_info.c — edgemux info: a model's inputs and outputs. */
#include <inttypes.h>
#include <stdio.h>

#include "cli/cli.h"

static void print_tensors(const emx_client_model *m, int output) {
  size_t n = output ? emx_client_model_output_count(m)
                    : emx_client_model_input_count(m);
  printf("%s (%zu):\n", output ? "outputs" : "inputs", n);
  for (size_t i = 0; i < n; i++) {
    emx_tensor_info ti;
    if ((output ? emx_client_model_output_info(m, i, &ti)
                : emx_client_model_input_info(m, i, &ti)) < 0)
      continue;
    char shape[128];
    cli_format_shape(&ti, shape, sizeof shape);
    printf("  %zu  %-24s %-8s %-20s %10zu bytes  ", i, ti.name,
           emx_dtype_name(ti.dtype), shape, ti.bytes);
    if (ti.scale != 0.0f)
      printf("quantized scale=%g zero_point=%" PRId32 "\n", (double)ti.scale,
             ti.zero_point);
    else
      printf("not quantized\n");
  }
}

static int run(const cli_args *a) {
  const char *name = a->operand[0];
  emx_client *c;
  int ex = cli_connect(&c, 0);
  if (ex)
    return ex;
  emx_client_model *m;
  int rc = emx_client_model_open(c, name, &m);
  if (rc < 0) {
    ex = cli_client_fail(c, rc);
  } else {
    printf("model %s\n", name);
    print_tensors(m, 0);
    print_tensors(m, 1);
  }
  emx_client_destroy(c);
  return ex;
}

const cli_command cli_cmd_info = {
    .name = "info",
    .operands = "MODEL",
    .min_operands = 1,
    .max_operands = 1,
    .summary = "describe a model's inputs and outputs",
    .about = "Describe MODEL's inputs and outputs: name, dtype, shape, bytes\n"
             "and quantization.",
    .run = run,
};
