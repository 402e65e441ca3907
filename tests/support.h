/*
 * support.h — helpers shared by the edgemux test suites: reading files,
 * seeded input data, tensor arrays sized from a model, a completion counter,
 * and the oracle: a TFLite interpreter built directly (XNNPACK, one thread,
 * exactly like the engine's cpu backend) whose outputs the engine's must equal
 * bit for bit.
 *
 * Helpers that cannot sensibly fail (allocation, loading a known-good model)
 * assert with cmocka and so may only be called from inside a test case.
 */
#ifndef EDGEMUX_TESTS_SUPPORT_H
#define EDGEMUX_TESTS_SUPPORT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edgemux/edgemux.h"
#include "tensorflow/lite/c/c_api.h"

#ifndef EMX_MODELS_DIR
#error "EMX_MODELS_DIR must be defined (tests/CMakeLists.txt does it)"
#endif

/* The test models (see scripts/setup). */
#define MODEL_FACE_SHORT EMX_MODELS_DIR "/face_detection_short_range.tflite"
#define MODEL_FACE_FULL EMX_MODELS_DIR "/face_detection_full_range.tflite"
#define MODEL_HAND_LITE EMX_MODELS_DIR "/hand_landmark_lite.tflite"
#define MODEL_SELFIE EMX_MODELS_DIR "/selfie_segmentation.tflite"

/* The quantized fixtures scripts/gen-fixtures writes into the build folder
 * at build time (tests/CMakeLists.txt): a uint8 classifier (per-tensor
 * quantization), the same graph in int8 with per-channel conv weights, and
 * the uint8 one as edgetpu_compiler leaves it (one edgetpu-custom-op). */
#ifndef EMX_FIXTURES_DIR
#error "EMX_FIXTURES_DIR must be defined (tests/CMakeLists.txt does it)"
#endif
#define MODEL_Q_UINT8 EMX_FIXTURES_DIR "/quant_uint8.tflite"
#define MODEL_Q_INT8_PC EMX_FIXTURES_DIR "/quant_int8_pc.tflite"
#define MODEL_Q_EDGETPU EMX_FIXTURES_DIR "/quant_uint8_edgetpu.tflite"

/* Byte every output buffer is filled with before a request, so a test can
 * tell whether the engine wrote it. */
/* private_lock_dirs points EMX_SIM_LOCK_DIR and EMX_STUB_EDGETPU_LOCK_DIR
 * at a fresh folder (inherited by daemons and device processes), so that
 * parallel test runs never see each other's simulated devices as busy.
 * 0, or -1 when the folder cannot be made. */
int private_lock_dirs(void);

/* remove_at_exit removes the folder `dir` and everything in it when this
 * process exits (not its forked children). */
void remove_at_exit(const char *dir);

#define SENTINEL_BYTE 0xA5

/* ---- files, text, environment ------------------------------------------- */

/* read_file returns the whole file in a malloc'd buffer (NULL on failure) and
 * its size in *size. */
void *read_file(const char *path, size_t *size);

/* write_temp_file writes `size` bytes to a fresh file under $TMPDIR (or /tmp)
 * and returns its malloc'd path; the caller unlinks and frees it. */
char *write_temp_file(const void *data, size_t size);

/* contains reports whether `needle` occurs in `haystack`, ignoring ASCII
 * case. A NULL haystack contains nothing. */
bool contains(const char *haystack, const char *needle);

/* filters_from_env applies $EMX_TEST_FILTER (run only the cases matching
 * this cmocka pattern, e.g. "cancel_*") and $EMX_TEST_SKIP (skip those
 * matching). Call it at the top of main. */
void filters_from_env(void);

/* sanitizer returns $EMX_SANITIZER ("address", "thread") or "" when unset. */
const char *sanitizer(void);

/* ---- seeded data --------------------------------------------------------- */

/* prng_next advances a splitmix64 state and returns the next value. */
uint64_t prng_next(uint64_t *state);

/* fill_random_floats writes `count` floats in [-1, 1) derived from `seed`;
 * equal seeds give equal buffers. */
void fill_random_floats(float *buf, size_t count, uint64_t seed);

/* ---- tensors ------------------------------------------------------------- */

/* tensors_inputs / tensors_outputs allocate one emx_tensor per model input /
 * output with dtype and size from emx_model_*_info. Input buffers are zeroed,
 * output buffers filled with SENTINEL_BYTE. Free with tensors_free. */
emx_tensor *tensors_inputs(const emx_model *model);
emx_tensor *tensors_outputs(const emx_model *model);

/* tensors_free frees `count` buffers and the array. Accepts NULL. */
void tensors_free(emx_tensor *tensors, size_t count);

/* tensors_fill_random fills every buffer from `seed`: float32 tensors with
 * fill_random_floats, anything else with random bytes. */
void tensors_fill_random(emx_tensor *tensors, size_t count, uint64_t seed);

/* tensors_fill_sentinel fills every buffer with SENTINEL_BYTE. */
void tensors_fill_sentinel(emx_tensor *tensors, size_t count);

/* tensors_all_sentinel reports whether every byte of every buffer is still
 * SENTINEL_BYTE. */
bool tensors_all_sentinel(const emx_tensor *tensors, size_t count);

/* tensors_equal reports whether both arrays hold identical bytes (and
 * sizes). */
bool tensors_equal(const emx_tensor *a, const emx_tensor *b, size_t count);

/* ---- engines and models -------------------------------------------------- */

/* engine_new creates an engine with one device spec (NULL: the default) and
 * a queue capacity (0: the default); asserts success. */
emx_engine *engine_new(const char *spec, size_t queue_capacity);

/* model_load loads `path` under `name`; asserts success. */
emx_model *model_load(emx_engine *engine, const char *name, const char *path);

/* wait_healthy polls device `index` until it serves again (the engine
 * re-probes a failed device with backoff from 20 ms); false after 5 s. */
bool wait_healthy(emx_engine *engine, size_t index);

/* request_init fills *desc for `model` with the given tensors (counts from the
 * model). */
void request_init(emx_request_desc *desc, emx_model *model,
                  const emx_tensor *inputs, const emx_tensor *outputs);

/* ---- the oracle ---------------------------------------------------------- */

/* oracle is a TFLite interpreter of one model, built like the engine's cpu
 * backend builds its own. Create once and run many times: interpreters are
 * slow to make. Not thread-safe. */
typedef struct oracle oracle;

/* oracle_create loads `model_path`; asserts success. */
oracle *oracle_create(const char *model_path);

/* oracle_create_bare loads `model_path` into an interpreter without
 * delegates: TFLite's own kernels, one thread, as the edgetpu backend runs
 * every node its delegate does not claim (no XNNPACK; its outputs differ
 * from XNNPACK's in the last bits). The oracle for the stub libedgetpu,
 * whose claimed node is a plain copy. Asserts success. */
oracle *oracle_create_bare(const char *model_path);

/* oracle_run copies `inputs` in, invokes and copies the outputs out. The
 * counts and sizes must match the model; asserts success. */
void oracle_run(oracle *o, const emx_tensor *inputs, size_t input_count,
                emx_tensor *outputs, size_t output_count);

/* oracle_interpreter exposes the interpreter, e.g. to compare tensor info. */
const TfLiteInterpreter *oracle_interpreter(const oracle *o);

/* oracle_destroy frees everything. Accepts NULL. */
void oracle_destroy(oracle *o);

/* direct_run is create + run + destroy, for a single use. */
void direct_run(const char *model_path, const emx_tensor *inputs,
                size_t input_count, emx_tensor *outputs, size_t output_count);

/* ---- the stub libedgetpu (tests/stub/edgetpu_stub.c) -------------------- */

/* stub_invoke is one line of the stub's $EMX_STUB_EDGETPU_INVOKE_LOG. */
typedef struct stub_invoke {
  int pid; /* the process that ran it */
  long n;  /* its number in that process's count, from 1 */
} stub_invoke;

/* stub_log_read reads the stub's invoke log at `path` into at most `cap`
 * entries and returns how many lines it has (0 when there is no file). */
size_t stub_log_read(const char *path, stub_invoke *out, size_t cap);

/* stub_edgetpu_expected computes, independently of the stub, what its
 * claimed edgetpu-custom-op node writes (the formula at the top of
 * tests/stub/edgetpu_stub.c): for a model that is that node alone, the
 * outputs `out` of inputs `in`. */
void stub_edgetpu_expected(const emx_tensor *in, size_t nin, emx_tensor *out,
                           size_t nout);

/* ---- completion counting ------------------------------------------------- */

/* counter counts events (e.g. callbacks) from any thread and lets a test wait
 * until a number is reached. */
typedef struct counter {
  pthread_mutex_t mu; /* guards value */
  pthread_cond_t cv;  /* signalled on every increment */
  uint64_t value;     /* events so far */
} counter;

void counter_init(counter *c);
void counter_destroy(counter *c);
/* counter_add adds n and returns the value before. */
uint64_t counter_add(counter *c, uint64_t n);
uint64_t counter_get(counter *c);

/* counter_wait waits until the value is at least `target`. It gives up after
 * a minute, a guard against hanging the suite, and returns false then. */
bool counter_wait(counter *c, uint64_t target);

#endif /* EDGEMUX_TESTS_SUPPORT_H */
