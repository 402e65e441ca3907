/* path.h — the request path every front door shares.
 *
 * A front door (the Unix socket in front/unix.c; HTTP and ZeroMQ next) only
 * frames: it turns its wire format into calls on this module, and the
 * completions this module delivers back into its wire format. Model lookup,
 * admission, submission, completion, cancel, teardown and stats live here,
 * once; no door keeps its own copy of them.
 *
 * Life of a client (one connection, whatever the door):
 *
 *   emxd_peer p = {.door = EMXD_DOOR_HTTP, .uid = uid_or_minus_1, ...};
 *   if (emxd_client_open(srv, &p, &my_ops, my_conn, &cl, &err) < 0)
 *     refuse the connection with err.msg (it names the limit and its flag);
 *   emxd_model *m = emxd_model_get(srv, "mobilenet");   -- a reference
 *   emxd_call_desc d = {.id = req_id, .model = m, .inputs = ..., ...};
 *   if (emxd_client_submit(cl, &d, &err) < 0)
 *     answer req_id with err.status / err.msg now; no done() follows;
 *   emxd_model_put(m);        -- the accepted request holds its own
 *   ... my_ops.done(my_conn, &done) arrives once per accepted request ...
 *   emxd_client_close(cl);    -- cancels what is queued; the door's ref goes
 *   ... my_ops.release(my_conn) once the last request has completed.
 *
 * Threads. emxd_client_open, _submit, _cancel, _close and the model lookups
 * are called from a door's own thread (the daemon's I/O thread for the Unix
 * door), never from an engine worker; none of them waits on the engine or
 * a device. Several doors may call them at once: the client list and the
 * model table have their own locks. done() runs on an engine worker thread
 * (or, for a request submitted with run_here, possibly on the door's own
 * thread inside emxd_client_submit), in the client's submission order (each client is one engine stream),
 * exactly once per accepted request — also after emxd_client_close, for
 * requests cancelled or still running then, so a door can free per-request
 * state; it must not block and must not call emxd_client_close. release() runs on
 * whichever thread drops the last reference: the door's thread inside
 * emxd_client_close when nothing is in flight, else the engine worker that
 * completes the last request.
 *
 * Memory. Tensors given to emxd_client_submit (an arena, a request body)
 * must stay valid until that request's done() has returned, and after
 * emxd_client_close until release(): a request that was already running
 * when the client closed still writes its outputs. Free such memory in
 * release(), never before.
 */
#ifndef EMX_DAEMON_PATH_H
#define EMX_DAEMON_PATH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/error.h"
#include "edgemux/edgemux.h"

typedef struct emxd_server emxd_server;
typedef struct emxd_model emxd_model;
typedef struct emxd_client emxd_client;

/* emxd_door: which front door a client came through (stats, logs). */
typedef enum emxd_door {
  EMXD_DOOR_UNIX = 0, /* SEQPACKET socket + memfd arena (front/unix.c) */
  EMXD_DOOR_HTTP = 1, /* KServe v2 */
  EMXD_DOOR_ZMQ = 2,  /* ZeroMQ (Frigate) */
  EMXD_DOOR_COUNT
} emxd_door;

/* emxd_door_name: "unix", "http", "zmq". */
const char *emxd_door_name(emxd_door door);

/* emxd_peer: who is on the other end, as the door knows it. */
typedef struct emxd_peer {
  emxd_door door;
  bool uid_known; /* the kernel told us (SO_PEERCRED); HTTP/TCP: false */
  uid_t uid;      /* per-uid limits and weights apply only when known */
  gid_t gid;
  pid_t pid;     /* 0 = unknown */
  char name[64]; /* printable, for logs: "pid 42 uid 1000", "10.0.0.7:5123" */
} emxd_peer;

/* emxd_done: one request's completion, as handed to a door's done(). The
 * pointers are valid only during the call. */
typedef struct emxd_done {
  uint64_t id;      /* the door's request id (emxd_call_desc.id) */
  void *tag;        /* emxd_call_desc.tag */
  int status;       /* 0 or a negative EMX_E* code */
  const char *msg;  /* "" on success; else what failed and why */
  size_t msg_len;   /* strlen(msg), at most 900 */
  uint32_t device;  /* device index that ran it */
  uint32_t batch;   /* requests in the batch it ran in (1: alone) */
  int64_t queue_ns; /* submitted → started (0: never started) */
  int64_t device_ns;
  int64_t total_ns; /* submitted → finished */
} emxd_done;

/* emxd_door_ops: what a door gives the path for each client. */
typedef struct emxd_door_ops {
  /* done: a request finished (engine worker thread, stream order). */
  void (*done)(void *door_ctx, const emxd_done *d);
  /* release: the last reference is gone; free what requests wrote into. */
  void (*release)(void *door_ctx);
} emxd_door_ops;

/* emxd_client_open admits a client and gives it an engine stream (its
 * weight under sched=fair: --client-weight for its uid). Refusals: the
 * daemon is draining (EMX_ESHUTDOWN), the uid is at --max-conns-per-uid
 * (EMX_EBUSY); err names the limit and its flag. The client starts with
 * one reference, the door's. `ops` must outlive the client. */
int emxd_client_open(emxd_server *srv, const emxd_peer *peer,
                     const emxd_door_ops *ops, void *door_ctx,
                     emxd_client **out, emx__errbuf *err);

/* emxd_client_close stops the client: requests still queued are cancelled
 * (their done() reports EMX_ECANCELED), a running one finishes into the
 * door's memory; drops the door's reference. Door thread only; the door
 * must not use the client afterwards (done() and release() may still come). */
void emxd_client_close(emxd_client *c);

/* emxd_client_peer: the peer as given at open (valid until release). */
const emxd_peer *emxd_client_peer(const emxd_client *c);

/* emxd_client_inflight: requests accepted and not yet done. */
size_t emxd_client_inflight(emxd_client *c);

/* emxd_call_desc: one request, in the door's terms. */
typedef struct emxd_call_desc {
  uint64_t id;              /* the door's id, echoed in done() and cancel */
  void *tag;                /* echoed in done() (a reply group, say) */
  emxd_model *model;        /* a reference the caller holds */
  const emx_tensor *inputs; /* copied descriptors; data must stay valid */
  size_t input_count;
  const emx_tensor *outputs;
  size_t output_count;
  int priority;       /* EMX_PRIORITY_* */
  int64_t timeout_ns; /* 0: the model's default (config.json), if any */
  bool run_here;      /* EMX_SUBMIT_MAY_RUN_HERE: done() may run on this
                         thread before emxd_client_submit returns */
} emxd_call_desc;

/* emxd_client_submit queues one request. 0: accepted, and exactly one
 * done() follows. <0: refused now (EMX_EBUSY for the in-flight cap
 * --max-inflight, engine refusals such as a full queue or a bad tensor),
 * with err filled; no done() follows. */
int emxd_client_submit(emxd_client *c, const emxd_call_desc *d,
                       emx__errbuf *err);

/* emxd_client_cancel cancels the request with the door's id `id`, if it is
 * still queued; it then completes with EMX_ECANCELED through done(). 0
 * when a request was found (running ones finish normally). */
int emxd_client_cancel(emxd_client *c, uint64_t id);

/* emxd_client_count: clients open through every door; with uid_known,
 * only those of `uid`. */
size_t emxd_client_count(emxd_server *srv, bool by_uid, uid_t uid);

/* ------------------------------------------------------------------------ */
/* Models (models.c)                                                         */

/* emxd_model_get / _get_id look a model up by name or by wire id and return
 * a reference (NULL: none). A reference keeps the emxd_model readable (its
 * name, id, engine handle's tensor info) even when the model is unloaded
 * meanwhile; give it back with emxd_model_put. Any door thread. */
emxd_model *emxd_model_get(emxd_server *srv, const char *name);
emxd_model *emxd_model_get_id(emxd_server *srv, uint32_t id);
void emxd_model_ref(emxd_model *m);
void emxd_model_put(emxd_model *m);

/* emxd_model_id / _name / _engine: read-only views of a referenced model. */
uint32_t emxd_model_id(const emxd_model *m);
const char *emxd_model_name(const emxd_model *m);
emx_model *emxd_model_engine(const emxd_model *m);

/* emxd_model_names calls fn for every loaded model's name, in table order,
 * under the table lock (fn must not call back into the table). */
void emxd_model_names(emxd_server *srv, void (*fn)(void *arg, const char *name),
                      void *arg);

/* ------------------------------------------------------------------------ */
/* Stats (for STATUS and the metrics endpoint)                               */

/* emxd_door_stats: counters per door since the daemon started. */
typedef struct emxd_door_stats {
  uint64_t clients;   /* clients open now */
  uint64_t opened;    /* clients admitted */
  uint64_t refused;   /* clients refused at admission */
  uint64_t submitted; /* requests accepted */
  uint64_t rejected;  /* requests refused at submission */
  uint64_t completed; /* requests done with status 0 */
  uint64_t failed;    /* requests done with an error (cancelled included) */
} emxd_door_stats;

void emxd_door_stats_get(emxd_server *srv, emxd_door door,
                         emxd_door_stats *out);

/* emxd_model_counters: what the path counts per model (the engine's own
 * emx_model_stats has latencies and queue depths). */
typedef struct emxd_model_counters {
  uint64_t submitted, rejected, completed, failed;
  double executions;             /* device invokes (a batch counts once) */
  uint64_t queue_ns, compute_ns; /* summed over the requests that ran */
} emxd_model_counters;

void emxd_model_counters_get(const emxd_model *m, emxd_model_counters *out);

#endif
