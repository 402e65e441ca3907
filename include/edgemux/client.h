/*
 * client.h — talk to edgemuxd, the per-machine edgemux broker.
 *
 * edgemuxd owns the accelerators; any number of local processes connect to
 * it over a Unix socket and send inference requests. Tensors travel in a
 * shared-memory arena the client creates at connect time: allocate input
 * and output tensors in it with emx_client_tensor_alloc and the daemon reads
 * and writes them in place — no copies through the socket.
 *
 * Conventions are those of edgemux.h: 0 or a negative EMX_E* code, a
 * per-client last-error message (emx_client_last_error), destroy accepts
 * NULL. A client is thread-safe; requests of one client complete in
 * submission order. After fork() a child never uses its parent's
 * connection: the first call in the child reconnects (with a new arena; the
 * parent's tensors are not visible to it) or, if reconnecting fails, returns
 * EMX_EDISCONNECTED.
 *
 * Example (compiled and run by tests/test_daemon_seed.c):
 *
 *   emx_client *c;
 *   if (emx_client_connect(&c, NULL) < 0) {          // default socket
 *     fprintf(stderr, "%s\n", emx_client_last_error(NULL));
 *     return 1;
 *   }
 *   emx_client_model *m;
 *   if (emx_client_model_open(c, "face_detection_short_range", &m) < 0) ...
 *   emx_tensor in, out[2];
 *   emx_client_tensor_alloc_input(c, m, 0, &in);     // in the arena
 *   emx_client_tensor_alloc_output(c, m, 0, &out[0]);
 *   emx_client_tensor_alloc_output(c, m, 1, &out[1]);
 *   memcpy(in.data, pixels, in.size);
 *   int rc = emx_client_infer(c, m, &in, 1, out, 2, NULL);
 *   ... read out[0].data ...
 *   emx_client_tensor_free(c, &in);  ...
 *   emx_client_destroy(c);
 */
#ifndef EDGEMUX_CLIENT_H
#define EDGEMUX_CLIENT_H

#include "edgemux/edgemux.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct emx_client emx_client;
typedef struct emx_client_model emx_client_model;

/* emx_client_config tunes emx_client_connect; emx_client_config_init sets
 * the defaults. */
typedef struct emx_client_config {
  size_t struct_size;      /* ABI: set by emx_client_config_init */
  const char *socket_path; /* NULL: $EDGEMUX_SOCKET, else the default path */
  size_t arena_bytes;      /* shared tensor arena; default 64 MiB; 0 = none
                              (models, status, ping only) */
  int64_t timeout_ns;      /* connect + hello; default 5 s */
} emx_client_config;

EMX_EXPORT void emx_client_config_init(emx_client_config *cfg);

/* emx_client_default_socket writes the socket path a client (and edgemuxd)
 * uses without configuration: $EDGEMUX_SOCKET; else, for users other than
 * root, $XDG_RUNTIME_DIR/edgemux.sock; else /run/edgemux/edgemux.sock (the
 * machine-wide daemon). Returns buf. */
EMX_EXPORT const char *emx_client_default_socket(char *buf, size_t len);

/* emx_client_connect connects and says hello (passing the arena). cfg may be
 * NULL. On failure the message is in emx_client_last_error(NULL). */
EMX_EXPORT int emx_client_connect(emx_client **out,
                                  const emx_client_config *cfg);

/* emx_client_destroy closes the connection; pending requests are
 * abandoned (the daemon cancels them). Models and tensors die with it. */
EMX_EXPORT void emx_client_destroy(emx_client *c);

/* emx_client_last_error: the calling thread's last failure on c (NULL: the
 * last failed connect). */
EMX_EXPORT const char *emx_client_last_error(const emx_client *c);

/* ---- models -------------------------------------------------------------- */

/* emx_client_models lists the daemon's models: calls fn once per name. */
EMX_EXPORT int emx_client_models(emx_client *c,
                                 void (*fn)(const char *name, void *user),
                                 void *user);

/* emx_client_model_open looks a model up by name and fetches its tensors.
 * The handle is valid until emx_client_destroy. */
EMX_EXPORT int emx_client_model_open(emx_client *c, const char *name,
                                     emx_client_model **out);

/* EMX_CLIENT_MODEL_MAX_BYTES: the largest model a client sends (512 MiB);
 * a bigger one belongs in the daemon's model repository. */
#define EMX_CLIENT_MODEL_MAX_BYTES ((size_t)512 << 20)

/* emx_client_model_load reads a .tflite file (with the caller's rights;
 * the daemon never opens a client's path) and loads its bytes under `name`
 * as emx_client_model_load_bytes does, then opens it. It refuses, with
 * EMX_EINVAL and before reading a byte, anything but a regular file (a
 * FIFO would block, a device never ends) and files over
 * EMX_CLIENT_MODEL_MAX_BYTES. */
EMX_EXPORT int emx_client_model_load(emx_client *c, const char *name,
                                     const char *path, emx_client_model **out);

/* emx_client_model_load_bytes sends `size` bytes of a .tflite model (the
 * caller keeps them) in a sealed memfd; the daemon names models by their
 * SHA-256, so the same bytes already loaded (from its repository or any
 * client) are shared, whatever the name. A new model is first run once in
 * a throwaway process: one TensorFlow Lite cannot run fails with
 * EMX_EMODEL and the reason. EMX_EINVAL: more than
 * EMX_CLIENT_MODEL_MAX_BYTES. EMX_EEXIST: the name is taken by other bytes;
 * EMX_EBUSY: a per-user quota (the message names the flag). */
EMX_EXPORT int emx_client_model_load_bytes(emx_client *c, const char *name,
                                           const void *data, size_t size,
                                           emx_client_model **out);

/* emx_client_model_load_placed is emx_client_model_load_bytes with a
 * placement, in emx_model_config.devices' syntax ("edgetpu0" pins the
 * model to that device; "edgetpu" any Edge TPU; "edgetpu,cpu" falls back
 * to the CPU; NULL or "": wherever the daemon's devices are). The same
 * bytes with another placement are another model in the daemon, so give
 * them another name. EMX_EINVAL: the placement names no device. */
EMX_EXPORT int emx_client_model_load_placed(emx_client *c, const char *name,
                                            const void *data, size_t size,
                                            const char *placement,
                                            emx_client_model **out);

/* emx_client_model_unload unloads a model this user loaded (root: any
 * client's); requests still queued for it fail with EMX_ECANCELED. */
EMX_EXPORT int emx_client_model_unload(emx_client *c, const char *name);

EMX_EXPORT size_t emx_client_model_input_count(const emx_client_model *m);
EMX_EXPORT size_t emx_client_model_output_count(const emx_client_model *m);
EMX_EXPORT int emx_client_model_input_info(const emx_client_model *m,
                                           size_t index, emx_tensor_info *out);
EMX_EXPORT int emx_client_model_output_info(const emx_client_model *m,
                                            size_t index, emx_tensor_info *out);

/* ---- tensors in the shared arena ----------------------------------------- */

/* emx_client_tensor_alloc reserves `bytes` in the arena (64-byte aligned)
 * and fills t (data, size, dtype). EMX_ENOMEM when the arena is full. */
EMX_EXPORT int emx_client_tensor_alloc(emx_client *c, emx_dtype dtype,
                                       size_t bytes, emx_tensor *t);

/* Shorthands sized from the model's tensor `index`. */
EMX_EXPORT int emx_client_tensor_alloc_input(emx_client *c,
                                             const emx_client_model *m,
                                             size_t index, emx_tensor *t);
EMX_EXPORT int emx_client_tensor_alloc_output(emx_client *c,
                                              const emx_client_model *m,
                                              size_t index, emx_tensor *t);

/* emx_client_tensor_free returns the space; t->data becomes NULL. */
EMX_EXPORT void emx_client_tensor_free(emx_client *c, emx_tensor *t);

/* ---- inference ------------------------------------------------------------ */

typedef struct emx_client_request emx_client_request;

/* emx_client_options: per-request settings (NULL means defaults).
 * Initialise with emx_client_options_init. */
typedef struct emx_client_options {
  size_t struct_size; /* ABI: set by emx_client_options_init */
  int priority;       /* EMX_PRIORITY_*; default NORMAL */
  int64_t timeout_ns; /* not started within this → EMX_ETIMEDOUT; 0 = none */
} emx_client_options;

/* emx_client_options_init sets the defaults (normal priority, no timeout). */
EMX_EXPORT void emx_client_options_init(emx_client_options *opts);

/* emx_client_infer runs one request and waits. Tensors must lie in this
 * client's arena (EMX_EINVAL otherwise). timings may be NULL.
 *
 * While it is the connection's only request in flight it waits in two
 * steps: asleep until shortly before the reply is due (by this model's
 * recent round trips), then polling for it, giving the CPU up at once to
 * anything else that wants it. That spares the reply the wake-up of an
 * idle CPU (~0.1 ms on virtual machines) at the cost of some idle CPU
 * time; EDGEMUX_WAIT=block in the environment always sleeps instead. */
EMX_EXPORT int emx_client_infer(emx_client *c, emx_client_model *m,
                                const emx_tensor *inputs, size_t nin,
                                const emx_tensor *outputs, size_t nout,
                                emx_timings *timings);

/* emx_client_submit sends one request and returns at once — unless the
 * connection already has the daemon's limit of requests in flight
 * (--max-inflight, 256 by default): then it first waits for one to
 * complete. The tensors must stay allocated until the request completes.
 * opts may be NULL. */
EMX_EXPORT int emx_client_submit(emx_client *c, emx_client_model *m,
                                 const emx_tensor *inputs, size_t nin,
                                 const emx_tensor *outputs, size_t nout,
                                 const emx_client_options *opts,
                                 emx_client_request **out);

/* emx_client_batch_item: one request of a batch. Frozen, like emx_tensor:
 * callers pass arrays of it, whose stride must not change; settings that
 * may grow live in emx_client_options, which applies to the whole batch. */
typedef struct emx_client_batch_item {
  emx_client_model *model;
  const emx_tensor *inputs;
  size_t nin;
  const emx_tensor *outputs;
  size_t nout;
} emx_client_batch_item;

/* emx_client_submit_batch sends n requests in one message; out[i] receives
 * request i's handle. All or nothing: on error no request was sent. */
EMX_EXPORT int emx_client_submit_batch(emx_client *c,
                                       const emx_client_batch_item *items,
                                       size_t n, const emx_client_options *opts,
                                       emx_client_request **out);

/* emx_client_request_wait waits up to timeout_ns (<0 forever, 0 poll):
 * EMX_EAGAIN while pending, else the request's status. If the daemon goes
 * away, every pending request returns EMX_EDISCONNECTED. Waiting forever
 * for the connection's only request waits as emx_client_infer does. */
EMX_EXPORT int emx_client_request_wait(emx_client_request *r,
                                       int64_t timeout_ns);

/* emx_client_request_poll is emx_client_request_wait(r, 0). */
EMX_EXPORT int emx_client_request_poll(emx_client_request *r);

/* emx_client_request_cancel asks the daemon to drop a queued request; it then
 * completes with EMX_ECANCELED (or normally, if it had started). */
EMX_EXPORT int emx_client_request_cancel(emx_client_request *r);

/* emx_client_request_timings: daemon-side timings of a complete request. */
EMX_EXPORT void emx_client_request_timings(const emx_client_request *r,
                                           emx_timings *out);

/* emx_client_request_error: the daemon's message for a failed request. */
EMX_EXPORT const char *emx_client_request_error(const emx_client_request *r);

/* emx_client_request_destroy releases the handle (a pending request keeps
 * running; its tensors must stay allocated until it completes). */
EMX_EXPORT void emx_client_request_destroy(emx_client_request *r);

/* ---- daemon status --------------------------------------------------------- */

/* emx_client_ping does a round trip through the daemon that touches no
 * device (for health checks and transport benchmarks). */
EMX_EXPORT int emx_client_ping(emx_client *c);

/* emx_client_status fetches the daemon's status report (devices, queues,
 * per-model counters, latency percentiles, uptime, clients, live/ready) as
 * text lines "key value..."; release *text with emx_client_free. */
EMX_EXPORT int emx_client_status(emx_client *c, char **text);

/* emx_client_metrics fetches what edgemuxd's HTTP /metrics serves
 * (Prometheus text format 0.0.4: per model, per device, the daemon) over
 * the socket, with or without --http; release *text with
 * emx_client_free. */
EMX_EXPORT int emx_client_metrics(emx_client *c, char **text);

/* emx_client_free releases memory the library handed out (status text):
 * free() from the library's own C runtime, for callers in other languages. */
EMX_EXPORT void emx_client_free(void *p);

/* ---- ABI: see "ABI" at the top of edgemux.h ------------------------------ */

EMX_SIZED(emx_client_config)
EMX_SIZED(emx_client_options)

#define emx_client_config_init(cfg)                                            \
  emx_client_config_init(emx__sized_emx_client_config(cfg))
#define emx_client_options_init(opts)                                          \
  emx_client_options_init(emx__sized_emx_client_options(opts))
#define emx_client_model_input_info(m, index, out)                             \
  emx_client_model_input_info((m), (index), emx__sized_emx_tensor_info(out))
#define emx_client_model_output_info(m, index, out)                            \
  emx_client_model_output_info((m), (index), emx__sized_emx_tensor_info(out))
#define emx_client_infer(c, m, inputs, nin, outputs, nout, timings)            \
  emx_client_infer((c), (m), (inputs), (nin), (outputs), (nout),               \
                   emx__sized_emx_timings(timings))
#define emx_client_request_timings(r, out)                                     \
  emx_client_request_timings((r), emx__sized_emx_timings(out))

#ifdef __cplusplus
}
#endif

#endif /* EDGEMUX_CLIENT_H */
