/* cmd_infer.c — edgemux infer: run a model once on files or random data. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

enum { O_INPUT, O_OUTPUT, O_RANDOM, O_SEED };

static const cli_option options[] = {
    [O_INPUT] = {"input", 'i', CLI_LIST, "FILE",
                 "one input, in input order: a .npy file of the tensor's "
                 "type and shape, or raw bytes of its size",
                 0, 0, 0},
    [O_OUTPUT] = {"output", 'o', CLI_LIST, "FILE",
                  "receives one output, in output order: a .npy file when "
                  "FILE ends in .npy, else raw bytes",
                  0, 0, 0},
    [O_RANDOM] = {"random", 'r', CLI_FLAG, NULL,
                  "fill every input with seeded random data (floats in "
                  "[0, 1))",
                  0, 0, 0},
    [O_SEED] = {"seed", 's', CLI_INT, "N", "seed of --random", 0, 0x7fffffffL,
                1},
    {0},
};

static int read_exact(const char *path, void *buf, size_t want) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return cli_fail("cannot open input %s: %s", path, strerror(errno));
  size_t got = fread(buf, 1, want, f);
  int extra = fgetc(f) != EOF;
  int err = ferror(f);
  fclose(f);
  if (err)
    return cli_fail("reading %s: %s", path, strerror(errno));
  if (got != want || extra)
    return cli_fail("%s is %s%zu bytes; the model's input needs exactly %zu",
                    path, extra ? "more than " : "", got, want);
  return 0;
}

static int write_all_file(const char *path, const void *buf, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f)
    return cli_fail("cannot create output %s: %s", path, strerror(errno));
  size_t put = fwrite(buf, 1, len, f);
  int err = fclose(f);
  if (put != len || err)
    return cli_fail("writing %s: %s", path, strerror(errno));
  return 0;
}

static void summarize(size_t i, const emx_tensor_info *ti,
                      const emx_tensor *t) {
  char shape[128];
  cli_format_shape(ti, shape, sizeof shape);
  printf("output %zu %s: %s %s, %zu bytes", i, ti->name,
         emx_dtype_name(ti->dtype), shape, t->size);
  if (t->dtype == EMX_DTYPE_FLOAT32 && t->size >= sizeof(float)) {
    const float *f = t->data;
    size_t n = t->size / sizeof *f;
    double lo = f[0], hi = f[0], sum = 0;
    for (size_t k = 0; k < n; k++) {
      lo = f[k] < lo ? f[k] : lo;
      hi = f[k] > hi ? f[k] : hi;
      sum += f[k];
    }
    printf(", min %g max %g mean %g", lo, hi, sum / (double)n);
  }
  printf("\n");
}

static int run(const cli_args *a) {
  const char *const *inputs = a->opt[O_INPUT].list;
  const char *const *outputs = a->opt[O_OUTPUT].list;
  size_t nin = a->opt[O_INPUT].count, nout = a->opt[O_OUTPUT].count;
  int random = a->opt[O_RANDOM].set;
  long seed = a->opt[O_SEED].num;
  const char *name = a->operand[0];
  if (random && nin)
    return cli_usage_error("infer", "--random and --input exclude each other");
  if (!random && !nin)
    return cli_usage_error("infer",
                           "give the inputs (--input FILE) or --random");

  emx_client *c;
  emx_client_model *m;
  int ex = cli_open_sized(name, 1, &c, &m);
  if (ex)
    return ex;
  size_t min = emx_client_model_input_count(m);
  size_t mout = emx_client_model_output_count(m);
  emx_tensor *in = calloc(min + 1, sizeof *in);
  emx_tensor *out = calloc(mout + 1, sizeof *out);
  int rc;
  if (!in || !out) {
    ex = cli_fail("out of memory");
    goto done;
  }
  if (!random && nin != min) {
    ex = cli_fail("model %s takes %zu input%s; %zu --input file%s given", name,
                  min, min == 1 ? "" : "s", nin, nin == 1 ? "" : "s");
    goto done;
  }
  if (nout && nout != mout) {
    ex = cli_fail("model %s has %zu output%s; %zu --output file%s given", name,
                  mout, mout == 1 ? "" : "s", nout, nout == 1 ? "" : "s");
    goto done;
  }
  if ((rc = cli_alloc_all(c, m, in, out)) < 0) {
    ex = cli_client_fail(c, rc);
    goto done;
  }
  for (size_t i = 0; i < min; i++) {
    emx_tensor_info ti;
    emx_client_model_input_info(m, i, &ti);
    if (random)
      cli_fill_random(&in[i], (uint64_t)seed + i);
    else if (cli_is_npy(inputs[i])
                 ? (ex = cli_npy_read(inputs[i], &ti, in[i].data, in[i].size))
                 : (ex = read_exact(inputs[i], in[i].data, in[i].size)))
      goto done;
  }
  emx_timings t;
  rc = emx_client_infer(c, m, in, min, out, mout, &t);
  if (rc < 0) {
    ex = cli_client_fail(c, rc);
    goto done;
  }
  for (size_t i = 0; i < mout; i++) {
    emx_tensor_info ti;
    emx_client_model_output_info(m, i, &ti);
    if (nout) {
      if (cli_is_npy(outputs[i])
              ? (ex = cli_npy_write(outputs[i], &ti, out[i].data, out[i].size))
              : (ex = write_all_file(outputs[i], out[i].data, out[i].size)))
        goto done;
    } else {
      summarize(i, &ti, &out[i]);
    }
  }
  if (!nout)
    printf("device %d, queued %.1f us, invoke %.1f us, total %.1f us\n",
           t.device, (double)(t.started_ns - t.submitted_ns) / 1e3,
           (double)t.device_ns / 1e3,
           (double)(t.finished_ns - t.submitted_ns) / 1e3);
done:
  free(in);
  free(out);
  emx_client_destroy(c); /* frees the tensors with the arena */
  return ex;
}

const cli_command cli_cmd_infer = {
    .name = "infer",
    .operands = "MODEL", /* a name, or a .tflite path */
    .min_operands = 1,
    .max_operands = 1,
    .summary = "run a model once on files or random data",
    .about = "Run MODEL (a model's name, or a .tflite file, sent to the\n"
             "daemon) once, on --input files (.npy or raw) or --random\n"
             "data. Without --output a summary of each output is printed\n"
             "(bytes; min/max/mean for float32) and the request's timings.",
    .options = options,
    .run = run,
};
