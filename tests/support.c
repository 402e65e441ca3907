/*
 * support.c — see support.h.
 */
#include "support.h"

#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

/* The XNNPACK delegate is exported by libtensorflowlite_c but has no header
 * in this distribution. The options struct is two fields (8 bytes) in TFLite
 * 2.9. */
typedef struct {
  int32_t num_threads; /* 0 or 1: no thread pool, run on the caller */
  uint32_t flags;      /* TFLITE_XNNPACK_DELEGATE_FLAG_*; none needed */
} TfLiteXNNPackDelegateOptions;
TfLiteDelegate *
TfLiteXNNPackDelegateCreate(const TfLiteXNNPackDelegateOptions *options);
void TfLiteXNNPackDelegateDelete(TfLiteDelegate *delegate);

/* ---- files, text, environment ------------------------------------------- */

void *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      cap = cap ? cap * 2 : 1 << 16;
      char *grown = realloc(buf, cap);
      if (grown == NULL)
        goto fail;
      buf = grown;
    }
    size_t n = fread(buf + len, 1, cap - len, f);
    len += n;
    if (n == 0)
      break;
  }
  if (ferror(f))
    goto fail;
  fclose(f);
  *size = len;
  return buf;

fail:
  free(buf);
  fclose(f);
  return NULL;
}

char *write_temp_file(const void *data, size_t size) {
  const char *dir = getenv("TMPDIR");
  if (dir == NULL || *dir == '\0')
    dir = "/tmp";
  size_t len = strlen(dir) + sizeof("/edgemux-test-XXXXXX");
  char *path = malloc(len);
  assert_non_null(path);
  snprintf(path, len, "%s/edgemux-test-XXXXXX", dir);
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  const char *p = data;
  while (size > 0) {
    ssize_t n = write(fd, p, size);
    if (n < 0 && errno == EINTR)
      continue;
    assert_true(n > 0);
    p += n;
    size -= (size_t)n;
  }
  assert_int_equal(close(fd), 0);
  return path;
}

bool contains(const char *haystack, const char *needle) {
  if (haystack == NULL)
    return false;
  size_t n = strlen(needle);
  for (const char *h = haystack; *h != '\0'; h++) {
    size_t i = 0;
    while (i < n && h[i] != '\0' &&
           tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i]))
      i++;
    if (i == n)
      return true;
  }
  return n == 0;
}

void filters_from_env(void) {
  const char *run = getenv("EMX_TEST_FILTER");
  const char *skip = getenv("EMX_TEST_SKIP");
  if (run != NULL && *run != '\0')
    cmocka_set_test_filter(run);
  if (skip != NULL && *skip != '\0')
    cmocka_set_skip_filter(skip);
}

const char *sanitizer(void) {
  const char *s = getenv("EMX_SANITIZER");
  return s ? s : "";
}

/* ---- seeded data --------------------------------------------------------- */

uint64_t prng_next(uint64_t *state) {
  /* splitmix64 (Steele, Lea, Flood 2014): tiny, and every seed is good. */
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void fill_random_floats(float *buf, size_t count, uint64_t seed) {
  uint64_t state = seed;
  for (size_t i = 0; i < count; i++) {
    /* 24 random bits: exactly representable, uniform in [-1, 1). */
    uint32_t bits = (uint32_t)(prng_next(&state) >> 40);
    buf[i] = (float)bits / (float)(1u << 23) - 1.0f;
  }
}

/* ---- tensors ------------------------------------------------------------- */

static emx_tensor *tensors_alloc(const emx_model *model, bool outputs) {
  size_t count =
      outputs ? emx_model_output_count(model) : emx_model_input_count(model);
  assert_true(count > 0);
  emx_tensor *t = calloc(count, sizeof(*t));
  assert_non_null(t);
  for (size_t i = 0; i < count; i++) {
    emx_tensor_info info;
    int rc = outputs ? emx_model_output_info(model, i, &info)
                     : emx_model_input_info(model, i, &info);
    assert_int_equal(rc, 0);
    assert_true(info.bytes > 0);
    t[i].dtype = info.dtype;
    t[i].size = info.bytes;
    t[i].data = malloc(info.bytes);
    assert_non_null(t[i].data);
    memset(t[i].data, outputs ? SENTINEL_BYTE : 0, info.bytes);
  }
  return t;
}

emx_tensor *tensors_inputs(const emx_model *model) {
  return tensors_alloc(model, false);
}

emx_tensor *tensors_outputs(const emx_model *model) {
  return tensors_alloc(model, true);
}

void tensors_free(emx_tensor *tensors, size_t count) {
  if (tensors == NULL)
    return;
  for (size_t i = 0; i < count; i++)
    free(tensors[i].data);
  free(tensors);
}

void tensors_fill_random(emx_tensor *tensors, size_t count, uint64_t seed) {
  for (size_t i = 0; i < count; i++) {
    uint64_t s = seed * 1000003u + i;
    if (tensors[i].dtype == EMX_DTYPE_FLOAT32) {
      fill_random_floats(tensors[i].data, tensors[i].size / sizeof(float), s);
    } else {
      unsigned char *p = tensors[i].data;
      for (size_t j = 0; j < tensors[i].size; j++)
        p[j] = (unsigned char)prng_next(&s);
    }
  }
}

void tensors_fill_sentinel(emx_tensor *tensors, size_t count) {
  for (size_t i = 0; i < count; i++)
    memset(tensors[i].data, SENTINEL_BYTE, tensors[i].size);
}

bool tensors_all_sentinel(const emx_tensor *tensors, size_t count) {
  for (size_t i = 0; i < count; i++) {
    const unsigned char *p = tensors[i].data;
    for (size_t j = 0; j < tensors[i].size; j++)
      if (p[j] != SENTINEL_BYTE)
        return false;
  }
  return true;
}

bool tensors_equal(const emx_tensor *a, const emx_tensor *b, size_t count) {
  for (size_t i = 0; i < count; i++) {
    if (a[i].size != b[i].size || memcmp(a[i].data, b[i].data, a[i].size) != 0)
      return false;
  }
  return true;
}

/* ---- engines and models -------------------------------------------------- */

emx_engine *engine_new(const char *spec, size_t queue_capacity) {
  const char *devices[1] = {spec};
  emx_engine_config cfg;
  emx_engine_config_init(&cfg);
  if (spec != NULL) {
    cfg.devices = devices;
    cfg.device_count = 1;
  }
  if (queue_capacity > 0)
    cfg.queue_capacity = queue_capacity;
  emx_engine *engine = NULL;
  int rc = emx_engine_create(&engine, &cfg);
  if (rc != 0)
    print_error("emx_engine_create(%s): %s: %s\n", spec ? spec : "default",
                emx_err_name(rc), emx_engine_last_error(NULL));
  assert_int_equal(rc, 0);
  assert_non_null(engine);
  return engine;
}

emx_model *model_load(emx_engine *engine, const char *name, const char *path) {
  emx_model *model = NULL;
  int rc = emx_model_load_file(engine, name, path, &model);
  if (rc != 0)
    print_error("emx_model_load_file(%s): %s: %s\n", path, emx_err_name(rc),
                emx_engine_last_error(engine));
  assert_int_equal(rc, 0);
  assert_non_null(model);
  return model;
}

bool wait_healthy(emx_engine *engine, size_t index) {
  for (int i = 0; i < 500; i++) {
    emx_device_info di;
    if (emx_engine_device_info(engine, index, &di) == 0 && di.healthy)
      return true;
    usleep(10000);
  }
  return false;
}

void request_init(emx_request_desc *desc, emx_model *model,
                  const emx_tensor *inputs, const emx_tensor *outputs) {
  emx_request_desc_init(desc);
  desc->model = model;
  desc->inputs = inputs;
  desc->input_count = emx_model_input_count(model);
  desc->outputs = outputs;
  desc->output_count = emx_model_output_count(model);
}

/* ---- the oracle ---------------------------------------------------------- */

struct oracle {
  TfLiteModel *model;                /* the flatbuffer */
  TfLiteInterpreterOptions *options; /* one thread, XNNPACK or none */
  TfLiteDelegate *xnnpack;           /* outlives the interpreter; or NULL */
  TfLiteInterpreter *interp;         /* tensors allocated, ready to invoke */
};

static oracle *oracle_new(const char *model_path, bool xnnpack) {
  oracle *o = calloc(1, sizeof(*o));
  assert_non_null(o);
  o->model = TfLiteModelCreateFromFile(model_path);
  assert_non_null(o->model);
  o->options = TfLiteInterpreterOptionsCreate();
  assert_non_null(o->options);
  TfLiteInterpreterOptionsSetNumThreads(o->options, 1);
  if (xnnpack) {
    /* Exactly what the engine's cpu backend does with threads=1: XNNPACK
     * without a thread pool. Same kernels, same order, same bits. */
    TfLiteXNNPackDelegateOptions xopts = {.num_threads = 0, .flags = 0};
    o->xnnpack = TfLiteXNNPackDelegateCreate(&xopts);
    assert_non_null(o->xnnpack);
    TfLiteInterpreterOptionsAddDelegate(o->options, o->xnnpack);
  }
  o->interp = TfLiteInterpreterCreate(o->model, o->options);
  assert_non_null(o->interp);
  assert_int_equal(TfLiteInterpreterAllocateTensors(o->interp), kTfLiteOk);
  return o;
}

oracle *oracle_create(const char *model_path) {
  return oracle_new(model_path, true);
}

oracle *oracle_create_bare(const char *model_path) {
  return oracle_new(model_path, false);
}

void oracle_run(oracle *o, const emx_tensor *inputs, size_t input_count,
                emx_tensor *outputs, size_t output_count) {
  assert_int_equal(TfLiteInterpreterGetInputTensorCount(o->interp),
                   input_count);
  assert_int_equal(TfLiteInterpreterGetOutputTensorCount(o->interp),
                   output_count);
  for (size_t i = 0; i < input_count; i++) {
    TfLiteTensor *t = TfLiteInterpreterGetInputTensor(o->interp, (int32_t)i);
    assert_int_equal(TfLiteTensorByteSize(t), inputs[i].size);
    assert_int_equal(
        TfLiteTensorCopyFromBuffer(t, inputs[i].data, inputs[i].size),
        kTfLiteOk);
  }
  assert_int_equal(TfLiteInterpreterInvoke(o->interp), kTfLiteOk);
  for (size_t i = 0; i < output_count; i++) {
    const TfLiteTensor *t =
        TfLiteInterpreterGetOutputTensor(o->interp, (int32_t)i);
    assert_int_equal(TfLiteTensorByteSize(t), outputs[i].size);
    assert_int_equal(
        TfLiteTensorCopyToBuffer(t, outputs[i].data, outputs[i].size),
        kTfLiteOk);
  }
}

const TfLiteInterpreter *oracle_interpreter(const oracle *o) {
  return o->interp;
}

void oracle_destroy(oracle *o) {
  if (o == NULL)
    return;
  TfLiteInterpreterDelete(o->interp);
  if (o->xnnpack)
    TfLiteXNNPackDelegateDelete(o->xnnpack);
  TfLiteInterpreterOptionsDelete(o->options);
  TfLiteModelDelete(o->model);
  free(o);
}

void direct_run(const char *model_path, const emx_tensor *inputs,
                size_t input_count, emx_tensor *outputs, size_t output_count) {
  oracle *o = oracle_create(model_path);
  oracle_run(o, inputs, input_count, outputs, output_count);
  oracle_destroy(o);
}

/* ---- the stub libedgetpu ------------------------------------------------- */

size_t stub_log_read(const char *path, stub_invoke *out, size_t cap) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  size_t lines = 0;
  char line[128];
  while (fgets(line, sizeof line, f) != NULL) {
    stub_invoke inv = {0, 0};
    assert_int_equal(sscanf(line, "pid %d invoke %ld", &inv.pid, &inv.n), 2);
    if (lines < cap)
      out[lines] = inv;
    lines++;
  }
  fclose(f);
  return lines;
}

void stub_edgetpu_expected(const emx_tensor *in, size_t nin, emx_tensor *out,
                           size_t nout) {
  /* x: the inputs' bytes end to end; written as one buffer here, unlike
   * the stub, which walks the tensors in place. */
  size_t n = 0;
  for (size_t j = 0; j < nin; j++)
    n += in[j].size;
  unsigned char *x = malloc(n ? n : 1);
  assert_non_null(x);
  unsigned sum = 0;
  size_t at = 0;
  for (size_t j = 0; j < nin; j++) {
    memcpy(x + at, in[j].data, in[j].size);
    at += in[j].size;
  }
  for (size_t i = 0; i < n; i++)
    sum = (sum + x[i]) % 256;
  for (size_t k = 0; k < nout; k++) {
    unsigned char *o = out[k].data;
    for (size_t i = 0; i < out[k].size; i++)
      o[i] = (unsigned char)(((n ? x[i % n] : 0) + sum + k + i) % 256);
  }
  free(x);
}

/* ---- completion counting ------------------------------------------------- */

void counter_init(counter *c) {
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  c->value = 0;
}

void counter_destroy(counter *c) {
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->mu);
}

uint64_t counter_add(counter *c, uint64_t n) {
  pthread_mutex_lock(&c->mu);
  uint64_t before = c->value;
  c->value += n;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  return before;
}

uint64_t counter_get(counter *c) {
  pthread_mutex_lock(&c->mu);
  uint64_t v = c->value;
  pthread_mutex_unlock(&c->mu);
  return v;
}

bool counter_wait(counter *c, uint64_t target) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 60;
  pthread_mutex_lock(&c->mu);
  int rc = 0;
  while (c->value < target && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(&c->cv, &c->mu, &until);
  bool reached = c->value >= target;
  pthread_mutex_unlock(&c->mu);
  return reached;
}

/* ---- temporary folders removed at exit ----------------------------------- */

#define MAX_TEMP_DIRS 64
static char temp_dirs[MAX_TEMP_DIRS][128];
static int temp_dir_count;
static pid_t temp_dirs_owner;

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

static void remove_temp_dirs(void) {
  /* Forked children (device processes, clients) inherit the handler: only
   * the process that made the folders removes them. */
  if (getpid() != temp_dirs_owner)
    return;
  for (int i = 0; i < temp_dir_count; i++)
    nftw(temp_dirs[i], remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void remove_at_exit(const char *dir) {
  if (temp_dir_count == MAX_TEMP_DIRS)
    return;
  if (temp_dir_count == 0) {
    temp_dirs_owner = getpid();
    atexit(remove_temp_dirs);
  }
  snprintf(temp_dirs[temp_dir_count++], sizeof temp_dirs[0], "%s", dir);
}

int private_lock_dirs(void) {
  static char dir[64];
  snprintf(dir, sizeof dir, "/tmp/emx-locks-XXXXXX");
  if (!mkdtemp(dir))
    return -1;
  remove_at_exit(dir);
  setenv("EMX_SIM_LOCK_DIR", dir, 1);
  setenv("EMX_STUB_EDGETPU_LOCK_DIR", dir, 1);
  return 0;
}
