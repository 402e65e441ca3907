/*
 * edgemux.h — the edgemux engine: many threads, few accelerators, results in
 * order.
 *
 * An engine owns a set of devices (a CPU worker pool today; Edge TPUs and a
 * simulated TPU through the same interface). Each device is driven by exactly
 * one worker thread, the only thread that ever touches that device's
 * interpreters. Any number of application threads submit inference requests;
 * requests wait in bounded per-device queues, and completions are delivered
 * in submission order per stream.
 *
 * Conventions
 *   - Every function that can fail returns 0 or a negative EMX_E* code;
 *     emx_strerror() names the code, and emx_engine_last_error() (or
 *     emx_request_error() for a request) says what was wrong and what to do.
 *   - Constructors return a status and fill an out-parameter.
 *   - Destroy functions accept NULL.
 *   - Times are nanoseconds. Absolute times (deadlines, timings) are on
 *     CLOCK_MONOTONIC, as returned by emx_now_ns().
 *   - All functions are thread-safe unless a comment says otherwise.
 *
 * ABI: the library can grow without breaking programs built against an older
 * header, and refuses clearly to serve one built against a newer header.
 *   - Structs a caller passes in or gets filled (configs, request
 *     descriptions, tensor info, timings, stats, device info) begin with
 *     `size_t struct_size`, the struct's size in the header the caller was
 *     compiled against (not `size`: emx_model_config and emx_tensor use that
 *     for data bytes). The header sets it for you: the _init functions and the
 *     functions that fill a struct are macros over the exported functions of
 *     the same name that first store sizeof (so call them as usual; callers
 *     in other languages set `struct_size` themselves). The library reads and
 *     writes only the bytes `struct_size` covers: a field an older caller lacks takes its
 *     default, and a field the library does not know must be left zero, as
 *     the _init function leaves it, else the call fails with EMX_EVERSION
 *     (the rule of Linux's copy_struct_from_user). On return, a filled
 *     struct's `struct_size` says how much of it the library wrote.
 *   - emx_tensor (a buffer triple passed in arrays) is frozen: new tensor
 *     attributes would come in a new struct.
 *   - emx_version_check(EMX_VERSION_NUMBER, ...) says whether the running
 *     library serves the header the caller was compiled against.
 *
 * Example (compiled and run by tests/test_header_example.c):
 *
 *   emx_engine *engine;
 *   emx_engine_config cfg;
 *   emx_engine_config_init(&cfg);              // one cpu worker per core
 *   if (emx_engine_create(&engine, &cfg) < 0) return 1;
 *
 *   emx_model *model;
 *   if (emx_model_load_file(engine, "face", "face_detection_short_range.tflite",
 *                           &model) < 0) {
 *     fprintf(stderr, "%s\n", emx_engine_last_error(engine));
 *     return 1;
 *   }
 *   emx_tensor_info in, out0, out1;
 *   emx_model_input_info(model, 0, &in);
 *   emx_model_output_info(model, 0, &out0);
 *   emx_model_output_info(model, 1, &out1);
 *
 *   float *image = calloc(1, in.bytes);          // fill with pixels
 *   emx_tensor inputs[1] = {{in.dtype, image, in.bytes}};
 *   emx_tensor outputs[2] = {{out0.dtype, malloc(out0.bytes), out0.bytes},
 *                            {out1.dtype, malloc(out1.bytes), out1.bytes}};
 *
 *   emx_request_desc req;
 *   emx_request_desc_init(&req);
 *   req.model = model;
 *   req.inputs = inputs;   req.input_count = 1;
 *   req.outputs = outputs; req.output_count = 2;
 *   int rc = emx_infer(engine, &req, NULL);      // blocks until done
 *
 *   emx_engine_destroy(engine);                  // unloads the model too
 */
#ifndef EDGEMUX_EDGEMUX_H
#define EDGEMUX_EDGEMUX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "edgemux/version.h"

#if defined(EMX_BUILDING_LIBRARY)
#define EMX_EXPORT __attribute__((visibility("default")))
#else
#define EMX_EXPORT
#endif

/* emx_version returns the running library's version, "MAJOR.MINOR.PATCH"
 * (EMX_VERSION_STRING is the header's). */
EMX_EXPORT const char *emx_version(void);

/* emx_version_number returns the running library's EMX_VERSION_NUMBER. */
EMX_EXPORT unsigned emx_version_number(void);

/* emx_version_check says whether this library serves a caller compiled
 * against the header of version `header_version` (pass EMX_VERSION_NUMBER):
 * the same major version and a library at least as new. 0 when it does,
 * else EMX_EVERSION with the reason and the remedy written to msg (when not
 * NULL; at most len bytes, NUL-terminated). */
EMX_EXPORT int emx_version_check(unsigned header_version, char *msg,
                                 size_t len);

/* emx_struct_size returns the size this library gives a public struct,
 * named without its prefix ("tensor_info", "request_desc", "client_config",
 * ...), or 0 for a name it does not know: bindings in other languages check
 * their mirrors of the structs with it. */
EMX_EXPORT size_t emx_struct_size(const char *name);

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

/* EMX_ERRNO_MAP lists every error code once: name, value, description. */
#define EMX_ERRNO_MAP(XX)                                                      \
  XX(EINVAL, -1, "invalid argument")                                           \
  XX(ENOMEM, -2, "out of memory")                                              \
  XX(ENOENT, -3, "no such model, file or device")                              \
  XX(EBUSY, -4, "busy: queue full or device held elsewhere")                   \
  XX(ETIMEDOUT, -5, "timed out: deadline passed before the request ran")       \
  XX(ECANCELED, -6, "request canceled")                                        \
  XX(ESHUTDOWN, -7, "engine is shut down")                                     \
  XX(EMODEL, -8, "not a valid TensorFlow Lite model")                          \
  XX(EUNSUPPORTED, -9, "model needs an operation this device lacks")           \
  XX(EDEVICE, -10, "device failure")                                           \
  XX(EIO, -11, "input/output error")                                           \
  XX(ECOUNT, -12, "wrong number of tensors")                                   \
  XX(ESIZE, -13, "wrong tensor byte size")                                     \
  XX(EDTYPE, -14, "wrong tensor data type")                                    \
  XX(EAGAIN, -15, "not complete yet")                                          \
  XX(EALREADY, -16, "already complete")                                        \
  XX(EEXIST, -17, "a model with that name is already loaded")                  \
  XX(EDISCONNECTED, -18, "disconnected from the daemon")                       \
  XX(EPROTO, -19, "protocol error")                                            \
  XX(EVERSION, -20,                                                            \
     "the caller was built against a newer edgemux header than this library")

typedef enum emx_errno {
#define EMX__XX(name, value, text) EMX_##name = (value),
  EMX_ERRNO_MAP(EMX__XX)
#undef EMX__XX
} emx_errno;

/* emx_strerror returns a static description of an EMX_E* code ("unknown
 * error" for anything else). */
EMX_EXPORT const char *emx_strerror(int err);

/* emx_err_name returns the code's name, e.g. "EMX_EBUSY". */
EMX_EXPORT const char *emx_err_name(int err);

/* emx_err_at returns the index-th EMX_E* code this library knows (0, 1, ...
 * in EMX_ERRNO_MAP order), or 0 past the last: bindings build their error
 * tables from it rather than copying them. */
EMX_EXPORT int emx_err_at(size_t index);

/* emx_now_ns returns CLOCK_MONOTONIC in nanoseconds: the clock of every
 * deadline and timing in this API. */
EMX_EXPORT int64_t emx_now_ns(void);

/* ------------------------------------------------------------------------ */
/* Tensors                                                                   */

/* EMX_DTYPE_MAP lists every data type once: name, value, bytes per element
 * (0: variable), name string. The values equal TensorFlow Lite's TfLiteType. */
#define EMX_DTYPE_MAP(XX)                                                      \
  XX(FLOAT32, 1, 4, "float32")                                                 \
  XX(INT32, 2, 4, "int32")                                                     \
  XX(UINT8, 3, 1, "uint8")                                                     \
  XX(INT64, 4, 8, "int64")                                                     \
  XX(STRING, 5, 0, "string")                                                   \
  XX(BOOL, 6, 1, "bool")                                                       \
  XX(INT16, 7, 2, "int16")                                                     \
  XX(COMPLEX64, 8, 8, "complex64")                                             \
  XX(INT8, 9, 1, "int8")                                                       \
  XX(FLOAT16, 10, 2, "float16")                                                \
  XX(FLOAT64, 11, 8, "float64")

typedef enum emx_dtype {
  EMX_DTYPE_UNKNOWN = 0,
#define EMX__XX(name, value, bytes, text) EMX_DTYPE_##name = (value),
  EMX_DTYPE_MAP(EMX__XX)
#undef EMX__XX
} emx_dtype;

/* emx_dtype_name returns "float32", "uint8", ... or "unknown". */
EMX_EXPORT const char *emx_dtype_name(emx_dtype dtype);

/* emx_dtype_size returns bytes per element; 0 for string and unknown. */
EMX_EXPORT size_t emx_dtype_size(emx_dtype dtype);

/* emx_dtype_at returns the index-th data type in EMX_DTYPE_MAP order, or
 * EMX_DTYPE_UNKNOWN past the last. */
EMX_EXPORT emx_dtype emx_dtype_at(size_t index);

#define EMX_MAX_DIMS 8

/* emx_tensor_info describes one input or output of a model. */
typedef struct emx_tensor_info {
  size_t struct_size;         /* ABI: bytes of this struct (see the top) */
  const char *name;           /* tensor name; valid while the model is loaded */
  emx_dtype dtype;            /* element type */
  int rank;                   /* number of dimensions (<= EMX_MAX_DIMS) */
  int32_t dims[EMX_MAX_DIMS]; /* shape; dims[0] is usually the batch */
  size_t bytes;               /* exact byte size a buffer must have */
  float scale;                /* quantization scale; 0 when not quantized */
  int32_t zero_point;         /* quantization zero point */
} emx_tensor_info;

/* emx_tensor is a caller-owned buffer holding one tensor. The engine neither
 * frees nor keeps it past the request's completion. `dtype` and `size` must
 * equal the model's tensor (emx_tensor_info.dtype and .bytes). */
typedef struct emx_tensor {
  emx_dtype dtype; /* must match the model's tensor */
  void *data;      /* inputs: read; outputs: written by the engine */
  size_t size;     /* bytes at data */
} emx_tensor;

/* ------------------------------------------------------------------------ */
/* Engine                                                                    */

typedef struct emx_engine emx_engine;
typedef struct emx_model emx_model;
typedef struct emx_stream emx_stream;
typedef struct emx_request emx_request;

/* Log levels for emx_engine_config.log_level (messages go to stderr). */
enum {
  EMX_LOG_ERROR = 0,
  EMX_LOG_WARN = 1,
  EMX_LOG_INFO = 2,
  EMX_LOG_DEBUG = 3
};

/* emx_engine_config configures emx_engine_create. Initialise it with
 * emx_engine_config_init, then change what you need. */
typedef struct emx_engine_config {
  size_t
      struct_size; /* ABI: bytes of this struct, set by emx_engine_config_init */
  /* Device specs, one per entry, e.g. "cpu", "cpu:workers=2,threads=4".
   * A "cpu" spec is a pool: it makes `workers` devices (default: one per
   * online core), each one worker thread with a TFLite interpreter using
   * `threads` XNNPACK threads (default 1). NULL or count 0 means {"cpu"}.
   * Any spec may add the scheduling policy of its devices: sched=fifo
   * (default), sched=affinity (serve the resident model while it has work,
   * unless the oldest request has waited max_delay_ms, default 20) or
   * sched=fair (weighted round robin over streams within a priority; see
   * emx_stream_set_weight).
   * The strings are copied. */
  const char *const *devices;
  size_t device_count;
  size_t queue_capacity; /* max queued requests per device; default 256 */
  int log_level;         /* EMX_LOG_*; default EMX_LOG_WARN */
} emx_engine_config;

/* emx_engine_config_init fills cfg with the defaults. */
EMX_EXPORT void emx_engine_config_init(emx_engine_config *cfg);

/* emx_engine_create opens every device and starts one worker thread per
 * device. On failure *out is NULL and the reason is in the return code;
 * emx_engine_last_error(NULL) gives the message. */
EMX_EXPORT int emx_engine_create(emx_engine **out,
                                 const emx_engine_config *cfg);

/* emx_engine_shutdown stops accepting work, lets each running invoke finish,
 * completes every queued request with EMX_ESHUTDOWN, and stops the workers.
 * Afterwards every call on the engine returns EMX_ESHUTDOWN; the engine
 * memory stays valid until emx_engine_destroy. Idempotent. */
EMX_EXPORT void emx_engine_shutdown(emx_engine *engine);

/* emx_engine_destroy shuts the engine down (see emx_engine_shutdown), unloads
 * every model and frees everything. Request handles the caller still holds
 * stay valid for emx_request_wait/_poll/_destroy. No other thread may use
 * the engine, its models or streams during or after this call. */
EMX_EXPORT void emx_engine_destroy(emx_engine *engine);

/* emx_engine_pause stops the devices from starting queued requests
 * (running ones finish; submits still queue, up to the capacity), e.g. to
 * let a batch of submissions queue up before any runs. emx_engine_resume
 * lets them go, in each device's scheduling order. */
EMX_EXPORT void emx_engine_pause(emx_engine *engine);
EMX_EXPORT void emx_engine_resume(emx_engine *engine);

/* emx_engine_last_error returns the message of the last failed call the
 * calling thread made on this engine (or, with NULL, of the last failed
 * emx_engine_create): what was wrong and what to do. Never NULL; "" when
 * there is none. Valid until the thread's next edgemux call. */
EMX_EXPORT const char *emx_engine_last_error(const emx_engine *engine);

/* ------------------------------------------------------------------------ */
/* Models                                                                    */

/* emx_model_load_file reads a .tflite file and prepares it on every device
 * (one interpreter per device, created by that device's worker). `name` is
 * how requests and the daemon refer to it (copied; 1..63 bytes). Errors:
 * EMX_ENOENT/EMX_EIO (file), EMX_EMODEL (not a TFLite model),
 * EMX_EUNSUPPORTED (an op no device can run; the message names it),
 * EMX_EEXIST (name taken). The handle (out may be NULL: find the model by
 * name later) is valid until emx_model_unload or emx_engine_destroy. */
EMX_EXPORT int emx_model_load_file(emx_engine *engine, const char *name,
                                   const char *path, emx_model **out);

/* emx_model_load_buffer is emx_model_load_file from memory. The engine copies
 * the bytes; the caller keeps ownership of `data`. */
EMX_EXPORT int emx_model_load_buffer(emx_engine *engine, const char *name,
                                     const void *data, size_t size,
                                     emx_model **out);

#define EMX_MAX_BATCH 32
#define EMX_MAX_PREFERRED_BATCH 8

/* emx_model_config: what to load and where it may run. Initialise with
 * emx_model_config_init. */
typedef struct emx_model_config {
  size_t struct_size; /* ABI: set by emx_model_config_init */
  const char *path;   /* a .tflite file, or */
  const void *data;   /* the model bytes (copied; the caller keeps them) */
  size_t size;
  /* Placement: where the model may run. Tiers separated by ',', each a set
   * of device names or kinds separated by '|': "edgetpu,cpu" runs on any
   * Edge TPU and falls back to the CPU only while no Edge TPU that has the
   * model is healthy; "sim0|sim1" pins it to two devices. Within a tier the
   * least-loaded healthy device gets each request. NULL: every device, one
   * tier. The model is prepared on every device it names. */
  const char *devices;
  /* Dynamic batching: a device's worker merges up to max_batch queued
   * requests for this model into one invoke, with the batch dimension
   * (dims[0] of every input and output, 1 in the model) resized to their
   * count. Batches use the sizes in preferred_batch (ascending, 0 ends the
   * list; empty: any size up to max_batch): the largest one that the
   * waiting requests fill, else as many as wait. The oldest request waits
   * up to batch_delay_ns for a batch to fill (0: take what is queued).
   * Where the model or the device cannot resize (an Edge TPU; a model
   * whose graph fixes the batch), the gathered requests run back to back
   * instead. max_batch 0 or 1: off (the default). Results are the same
   * either way: each request gets its own outputs. */
  int max_batch; /* 0..EMX_MAX_BATCH */
  int preferred_batch[EMX_MAX_PREFERRED_BATCH];
  int64_t batch_delay_ns;
  /* The longest emx_model_load waits for a device's worker to take the
   * model (0: 30 s). A worker stuck in a request (a hung device) never
   * does: the model then loads on the devices that took it, and is
   * prepared on that one if it comes back; EMX_ETIMEDOUT when none did. */
  int64_t prepare_timeout_ns;
} emx_model_config;

EMX_EXPORT void emx_model_config_init(emx_model_config *cfg);

/* emx_model_load loads a model as configured (emx_model_load_file and
 * emx_model_load_buffer are shorthands with placement NULL). Errors as for
 * emx_model_load_file, plus EMX_EINVAL for a placement naming no device and
 * EMX_EDEVICE when every device it may use is down. */
EMX_EXPORT int emx_model_load(emx_engine *engine, const char *name,
                              const emx_model_config *cfg, emx_model **out);

/* emx_model_healthy: 1 when at least one device the model may use is up
 * (the daemon's readiness is "every model healthy"). */
EMX_EXPORT int emx_model_healthy(const emx_model *model);

/* emx_model_find looks a loaded model up by name; EMX_ENOENT if none. */
EMX_EXPORT int emx_model_find(emx_engine *engine, const char *name,
                              emx_model **out);

/* emx_model_unload removes the model from the engine. Requests already
 * submitted still run; new ones are refused. The handle must not be used
 * after this call. */
EMX_EXPORT int emx_model_unload(emx_engine *engine, emx_model *model);

/* emx_model_name returns the name given at load. */
EMX_EXPORT const char *emx_model_name(const emx_model *model);

/* Counts of the model's inputs and outputs. */
EMX_EXPORT size_t emx_model_input_count(const emx_model *model);
EMX_EXPORT size_t emx_model_output_count(const emx_model *model);

/* emx_model_input_info / emx_model_output_info describe tensor `index`;
 * EMX_EINVAL when index is out of range. */
EMX_EXPORT int emx_model_input_info(const emx_model *model, size_t index,
                                    emx_tensor_info *out);
EMX_EXPORT int emx_model_output_info(const emx_model *model, size_t index,
                                     emx_tensor_info *out);

/* ------------------------------------------------------------------------ */
/* Streams                                                                   */

/* A stream orders completions: requests submitted on one stream complete
 * (become visible to wait/poll and run their callbacks) in submission order,
 * even when the engine runs them on different devices. Requests without a
 * stream complete as soon as they finish. Use one stream per logical client
 * (the daemon uses one per connection). */
EMX_EXPORT int emx_stream_create(emx_engine *engine, emx_stream **out);

/* emx_stream_set_weight sets the stream's share on devices with
 * sched=fair: among streams with queued work, one of weight 3 gets three
 * turns for every turn of one of weight 1. 1..EMX_MAX_STREAM_WEIGHT;
 * default 1. */
#define EMX_MAX_STREAM_WEIGHT 1000
EMX_EXPORT int emx_stream_set_weight(emx_stream *stream, unsigned weight);

/* emx_stream_destroy frees the stream once its submitted requests complete;
 * the caller must not submit on it afterwards. */
EMX_EXPORT void emx_stream_destroy(emx_stream *stream);

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */

/* Priorities: higher runs first; equal priorities run in arrival order. */
enum { EMX_PRIORITY_LOW = 0, EMX_PRIORITY_NORMAL = 1, EMX_PRIORITY_HIGH = 2 };
#define EMX_PRIORITY_COUNT 3

/* emx_timings reports where a request's time went (CLOCK_MONOTONIC ns;
 * started/finished are 0 when it never ran). On a device with a virtual
 * clock (sim:clock=virtual) they are on that device's simulated clock,
 * which starts at 0, and so is the request's deadline_ns. */
typedef struct emx_timings {
  size_t struct_size;   /* ABI: bytes of this struct (see the top) */
  int64_t submitted_ns; /* accepted into a queue */
  int64_t started_ns;   /* worker began (input copy + invoke + output copy) */
  int64_t finished_ns;  /* worker done */
  int64_t device_ns;    /* time inside the backend's invoke */
  int device;           /* index of the device that ran it, -1 if none */
  int batch;            /* requests that shared its invoke: 1, or more when
                           dynamically batched; 0 if it never ran */
} emx_timings;

/* emx_completion_fn is called once per request when it completes, in stream
 * order, on an engine thread. It must not block (no emx_infer, no waiting);
 * it may submit with enqueue_timeout_ns 0. `status` is 0 or an EMX_E* code. */
typedef void (*emx_completion_fn)(emx_request *req, int status, void *user);

/* emx_request_desc describes one inference. Initialise with
 * emx_request_desc_init. The engine reads it during the call only, but the
 * tensor buffers it points to must stay valid until the request completes. */
typedef struct emx_request_desc {
  size_t struct_size;       /* ABI: set by emx_request_desc_init */
  emx_model *model;         /* required */
  const emx_tensor *inputs; /* one per model input, in order */
  size_t input_count;
  const emx_tensor *outputs; /* one per model output, in order */
  size_t output_count;
  int priority;                  /* EMX_PRIORITY_*; default NORMAL */
  int64_t deadline_ns;           /* absolute; 0 = none. Not started by then →
                                   completes with EMX_ETIMEDOUT, never runs */
  int64_t enqueue_timeout_ns;    /* queue full: 0 = fail with EMX_EBUSY at
                                   once (default), >0 = wait up to this long,
                                   <0 = wait as long as it takes */
  emx_stream *stream;            /* NULL = unordered */
  emx_completion_fn on_complete; /* optional */
  void *user;                    /* passed to on_complete; emx_request_user */
  unsigned flags;                /* EMX_SUBMIT_*; default 0 */
} emx_request_desc;

/* EMX_SUBMIT_MAY_RUN_HERE lets emx_submit run the request on the calling
 * thread, before it returns, when that is cheaper than handing it to the
 * device's worker: the device's worker is asleep with nothing queued and
 * the model's recent runs there took under 50 us (a worker's wake-up costs
 * about that, far more on a busy machine). on_complete then runs on the
 * calling thread inside emx_submit, so the caller must not hold a lock the
 * callback takes. Scheduling, statistics and faults are as on the worker;
 * a batched model (max_batch > 1) always goes to the worker. */
#define EMX_SUBMIT_MAY_RUN_HERE 1u

/* emx_request_desc_init sets defaults (normal priority, no deadline, fail at
 * once when the queue is full, no stream, no callback). */
EMX_EXPORT void emx_request_desc_init(emx_request_desc *desc);

/* emx_infer runs one request and waits for it. Returns its status; fills
 * *timings when not NULL. Validation errors (EMX_ECOUNT, EMX_ESIZE,
 * EMX_EDTYPE, EMX_EINVAL) are returned before anything is queued. */
EMX_EXPORT int emx_infer(emx_engine *engine, const emx_request_desc *desc,
                         emx_timings *timings);

/* emx_submit queues a request and returns at once. When `out` is not NULL it
 * receives a handle the caller must release with emx_request_destroy; with
 * NULL the request is fire-and-forget (use on_complete). Returns 0 or a
 * validation / EMX_EBUSY / EMX_ESHUTDOWN error, in which case nothing was
 * queued, no callback runs and *out is NULL. */
EMX_EXPORT int emx_submit(emx_engine *engine, const emx_request_desc *desc,
                          emx_request **out);

/* emx_request_wait waits up to timeout_ns (<0: forever, 0: just look) for the
 * request to complete. Returns EMX_EAGAIN while it has not, else its final
 * status (0 or EMX_E*). */
EMX_EXPORT int emx_request_wait(emx_request *req, int64_t timeout_ns);

/* emx_request_poll is emx_request_wait(req, 0). */
EMX_EXPORT int emx_request_poll(emx_request *req);

/* emx_request_cancel removes a queued request: it completes (in stream order)
 * with EMX_ECANCELED and never runs; returns 0. A request already running
 * cannot be stopped: EMX_EBUSY, and it completes normally. One already
 * complete: EMX_EALREADY. */
EMX_EXPORT int emx_request_cancel(emx_request *req);

/* emx_request_timings copies the request's timings: all of them once the
 * request has finished (from its completion callback on), only
 * submitted_ns before. */
EMX_EXPORT void emx_request_timings(const emx_request *req, emx_timings *out);

/* emx_request_error returns the message of a failed request ("" if none or
 * not finished yet; its callback may read it); valid until
 * emx_request_destroy. */
EMX_EXPORT const char *emx_request_error(const emx_request *req);

/* emx_request_user returns desc.user. */
EMX_EXPORT void *emx_request_user(const emx_request *req);

/* emx_request_destroy releases the handle. A request still pending keeps
 * running (its output buffers must stay valid) and is freed when it
 * completes. */
EMX_EXPORT void emx_request_destroy(emx_request *req);

/* ------------------------------------------------------------------------ */
/* Statistics                                                                */

/* emx_stats counts what a model or a device has done since load/start. */
typedef struct emx_stats {
  size_t struct_size;    /* ABI: bytes of this struct (see the top) */
  uint64_t requests;     /* completed, whatever the status */
  uint64_t errors;       /* completed with a non-zero status */
  uint64_t timeouts;     /* of which EMX_ETIMEDOUT (deadline passed) */
  uint64_t queue_depth;  /* waiting now (not yet started) */
  uint64_t busy_ns;      /* time spent running requests */
  double latency_p50_us; /* submit → completion, of successful requests */
  double latency_p99_us; /* (0 before the first one; about 3% precision) */
  uint64_t memory_bytes; /* models: heap its prepared copies hold in this
                            process (measured with mallinfo2 as each was
                            prepared; 1 per copy where malloc is not
                            glibc's, e.g. under a sanitizer) */
  uint32_t prepared_on;  /* models: devices holding a prepared copy (a
                            pool prepares one at load, more as the load
                            spreads, and drops idle ones) */
} emx_stats;

/* emx_device_info describes one device (one worker). */
typedef struct emx_device_info {
  size_t struct_size; /* ABI: bytes of this struct (see the top) */
  char name[32];      /* e.g. "cpu0" */
  char kind[16];      /* backend: "cpu", "sim", "edgetpu" */
  char spec[96];      /* the spec it was opened from */
  int healthy;        /* 1 when serving, 0 while down (being re-probed) */
  uint64_t faults;    /* device faults since start */
  char model[64];     /* the model it ran last (on an accelerator: the one
                         whose parameters are resident); "" before any */
  double utilization; /* busy time / time since start, 0..1 */
} emx_device_info;

/* emx_engine_device_count returns how many devices the engine has. */
EMX_EXPORT size_t emx_engine_device_count(const emx_engine *engine);

/* emx_engine_device_info describes device `index`. */
EMX_EXPORT int emx_engine_device_info(emx_engine *engine, size_t index,
                                      emx_device_info *out);

/* emx_engine_device_stats / emx_model_stats snapshot the counters. */
EMX_EXPORT int emx_engine_device_stats(emx_engine *engine, size_t index,
                                       emx_stats *out);
EMX_EXPORT int emx_model_stats(const emx_model *model, emx_stats *out);

/* ------------------------------------------------------------------------ */
/* ABI: the header stores each struct's size before the library sees it     */

/* EMX_SIZED(type) defines emx__sized_<type>(p): stores sizeof(type), as this
 * header has it, in p->struct_size (when p is not NULL) and returns p. The macros
 * below route each call through it; the parentheses around a name, as in
 * (emx_engine_config_init)(cfg), call the exported function directly. */
#define EMX_SIZED(type)                                                        \
  static inline type *emx__sized_##type(type *p) {                             \
    if (p)                                                                     \
      p->struct_size = sizeof *p;                                              \
    return p;                                                                  \
  }
EMX_SIZED(emx_engine_config)
EMX_SIZED(emx_model_config)
EMX_SIZED(emx_request_desc)
EMX_SIZED(emx_tensor_info)
EMX_SIZED(emx_timings)
EMX_SIZED(emx_stats)
EMX_SIZED(emx_device_info)

#define emx_engine_config_init(cfg)                                            \
  emx_engine_config_init(emx__sized_emx_engine_config(cfg))
#define emx_model_config_init(cfg)                                             \
  emx_model_config_init(emx__sized_emx_model_config(cfg))
#define emx_request_desc_init(desc)                                            \
  emx_request_desc_init(emx__sized_emx_request_desc(desc))
#define emx_model_input_info(model, index, out)                                \
  emx_model_input_info((model), (index), emx__sized_emx_tensor_info(out))
#define emx_model_output_info(model, index, out)                               \
  emx_model_output_info((model), (index), emx__sized_emx_tensor_info(out))
#define emx_infer(engine, desc, timings)                                       \
  emx_infer((engine), (desc), emx__sized_emx_timings(timings))
#define emx_request_timings(req, out)                                          \
  emx_request_timings((req), emx__sized_emx_timings(out))
#define emx_engine_device_info(engine, index, out)                             \
  emx_engine_device_info((engine), (index), emx__sized_emx_device_info(out))
#define emx_engine_device_stats(engine, index, out)                            \
  emx_engine_device_stats((engine), (index), emx__sized_emx_stats(out))
#define emx_model_stats(model, out)                                            \
  emx_model_stats((model), emx__sized_emx_stats(out))

#ifdef __cplusplus
}
#endif

#endif /* EDGEMUX_EDGEMUX_H */
