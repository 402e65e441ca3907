/* internal.h — the engine's objects, shared by the files of src/engine.
 *
 * Layers: a file calls only files listed before it (scripts/check-layers,
 * run by ctest, fails on any call circle between files):
 *   queue.c stats.c placement.c  priority lists, counters, device choice
 *   device.c     a device's queue bookkeeping and control-task mailbox
 *   finish.c     a request's status, stream-order delivery, freeing
 *   sched.c      which queued request a device runs next
 *   batch.c      which queued requests share one invoke
 *   worker.c     the device thread: runs requests and control tasks,
 *                failover, re-probe
 *   request.c    the public request and stream API: submit, wait, cancel
 *   model.c      the model registry: load (prepare on one device of each
 *                spec; the others prepare on first use), unload
 *   engine.c     the public engine API: devices from specs, life cycle
 * Below them all: src/core and src/backend. Upward calls go through
 * function pointers only (completion callbacks, backend ops).
 *
 * Locks, in the order they may nest (never take an earlier one while holding
 * a later one):
 *   engine->admin_lock (load, unload, shutdown: slow, rare)
 *   engine->lock  (model registry)
 *   stream->lock  (submission order)
 *   device->lock  (queue, control tasks, device stats)
 *   model->lock   (model stats, in-flight count)
 *   request->lock (completion state, waiters)
 * Completion callbacks run with no engine lock held. */
#ifndef EMX_ENGINE_INTERNAL_H
#define EMX_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "backend/backend.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/histogram.h"
#include "edgemux/edgemux.h"
#include "engine/queue.h"

#define EMX__DEFAULT_QUEUE_CAPACITY 256
#define EMX__MODEL_NAME_MAX 64

/* emx__counters: what a model or device has done; guarded by its owner's
 * lock. */
typedef struct emx__counters {
  uint64_t requests; /* completed */
  uint64_t errors;   /* completed with status != 0 */
  uint64_t timeouts; /* completed with EMX_ETIMEDOUT */
  uint64_t busy_ns;  /* time running */
  emx__hist latency; /* submit → finish, successful requests, ns */
} emx__counters;

void emx__counters_record(emx__counters *c, int status, int64_t latency_ns,
                          int64_t busy_ns);
void emx__counters_snapshot(const emx__counters *c, uint64_t queued,
                            emx_stats *out);

/* A control task runs on a device's worker thread: the only thread allowed
 * to touch that device's backend state. */
typedef enum { EMX__CTL_PREPARE, EMX__CTL_RELEASE } emx__ctl_kind;

typedef struct emx__ctl {
  emx__ctl_kind kind;      /* what to do */
  struct emx_model *model; /* which model */
  int status;              /* result, set by the worker */
  bool posted;             /* the loader handed it to the worker */
  bool deferred;           /* PREPARE on a down device: done lazily later */
  bool started;            /* the worker took it (under device->lock) */
  bool timed_out;          /* PREPARE the loader took back unstarted: the
                              worker was stuck in a request past the
                              prepare timeout (a hung device) */
  bool detached;           /* RELEASE after an unload: nobody waits; the
                              worker frees it (emx__model_released) */
  bool done;               /* set by the worker under device->lock */
  emx__model_desc desc;    /* PREPARE: the interface the device saw */
  emx__errbuf err;         /* PREPARE: why it failed */
  struct emx__ctl *next;   /* device's FIFO of tasks */
} emx__ctl;

/* emx__worker_wait: why a device's worker is blocked in work_cv. Any value
 * but RUNNING means a submitter must signal work_cv; only PARKED (asleep
 * with nothing to do, healthy, not gathering a batch) lets a submitter run
 * a request itself (EMX_SUBMIT_MAY_RUN_HERE). */
typedef enum emx__worker_wait {
  EMX__WORKER_RUNNING = 0, /* not blocked: running, polling, sweeping */
  EMX__WORKER_PARKED,      /* asleep in wait_for_work */
  EMX__WORKER_DOWN,        /* asleep until the device's next re-probe */
  EMX__WORKER_GATHERING,   /* waiting for a batch to fill */
} emx__worker_wait;

typedef struct emx__device {
  struct emx_engine *engine;   /* owner */
  size_t index;                /* position in engine->devices */
  char name[32];               /* "cpu0" */
  char kind[16];               /* backend kind */
  char spec[256];              /* spec it came from */
  emx__devspec resolved;       /* that spec parsed once, isolation and
                                  scheduling keys consumed: what open and
                                  every re-open use */
  int unit;                    /* which unit of the spec */
  const emx__backend_ops *ops; /* backend functions */
  void *impl;                  /* backend state; worker thread only */

  pthread_t thread;              /* the worker */
  bool started;                  /* thread is running (join on stop) */
  pthread_mutex_t lock;          /* guards everything below */
  pthread_cond_t work_cv;        /* worker waits for requests/tasks */
  pthread_cond_t space_cv;       /* submitters wait for queue space */
  pthread_cond_t ctl_cv;         /* loaders wait for their task */
  emx__queue queue;              /* waiting requests */
  size_t reserved;               /* slots promised to submitters in flight */
  size_t capacity;               /* max queue.length + reserved */
  emx__ctl *ctl_head, *ctl_tail; /* pending control tasks */
  emx__qlink *canceled;          /* canceled requests for the worker to
                                    complete, linked through qlink.next */
  bool stopping;                 /* shutdown: drain and exit */
  atomic_int worker_wait;        /* emx__worker_wait: where the worker is
                                    blocked in work_cv, if it is */
  bool run_here;                 /* a submitter is running a request on
                                    this device (EMX_SUBMIT_MAY_RUN_HERE):
                                    the worker keeps off the backend */
  atomic_size_t pending;         /* queue.length, readable without the lock */
  atomic_int busy;               /* 1 while the worker runs a request */
  int policy;                    /* EMX__SCHED_* (sched.c) */
  int64_t max_delay_ns;          /* affinity: longest a request yields */
  int64_t idle_release_ns;       /* a model idle this long here is
                                    released (worker.c) */
  const struct emx_model *resident;    /* model run last (worker only; only
                                       compared, never dereferenced) */
  unsigned long long unordered_finish; /* fair: tag of stream-less work */
  unsigned long long fair_vtime;       /* fair: tag of the last pick */
  atomic_int cpu;                      /* CPU the worker last ran a request on:
                                    waiters never poll on that one */
  emx__counters stats;                 /* requests run here */
  /* Worker-only state: */
  struct emx_model **prepared; /* models with a prep on this device */
  size_t nprepared, prepared_cap;
  int64_t idle_check_ns; /* when release_idle (worker.c) runs next */
  int64_t idle_gap_ns;   /* worker's average wait for the next request */
  uint64_t faults;       /* device faults seen */
  int64_t backoff_ns;    /* current re-probe interval */
  int64_t next_probe_ns; /* when to try re-opening a down device */
  int64_t down_since_ns; /* when it last went down (CLOCK_MONOTONIC) */
  int64_t down_wake_ns;  /* down: when a held request's deadline or the
                            hold ends (worker.c) */
  atomic_int healthy;    /* 1 while serving; 0 down (recovering) */
  int64_t started_ns;    /* for utilisation */
  bool virtual_clock;    /* the backend simulates time (see backend.h) */
  atomic_llong vclock;   /* virtual_clock: the device's time, ns from 0;
                            advanced by the worker only */
  char last_model[64];   /* name of the model run last (its params are
                            the ones resident on an accelerator);
                            written by the worker under `lock` */
} emx__device;

struct emx_model {
  struct emx_engine *engine;      /* owner */
  char name[EMX__MODEL_NAME_MAX]; /* registry key */
  void *data;                     /* flatbuffer bytes, owned */
  size_t size;
  emx__model_desc desc;          /* interface (from the first device) */
  void **prep;                   /* per device; that device's worker only */
  int8_t *tier;                  /* per device: placement tier, -1 = never */
  int max_tier;                  /* highest tier in use */
  char placement[128];           /* as given, for messages */
  atomic_llong *service_ewma_ns; /* per device: recent run time, for
                                    waiters deciding when to spin */
  atomic_int last_device;        /* index of the device that last started
                                    it (placement prefers it on ties) */
  int64_t *last_run_ns;          /* per device, its worker only: when it
                                    last ran or was prepared there */
  atomic_llong *mem_bytes;       /* per device: heap its prepared copy
                                    took there (0: none); set by the
                                    worker, read by emx_model_stats */
  int max_batch;                 /* dynamic batching: most per invoke (1) */
  int preferred_batch[EMX_MAX_PREFERRED_BATCH]; /* ascending, 0 ends */
  int64_t batch_delay_ns;      /* longest the oldest waits for a batch */
  int8_t *batch_ok;            /* per device, its worker only: -1 once the
                             device refused to batch this model */
  pthread_mutex_t lock;        /* guards below */
  pthread_cond_t idle_cv;      /* unload waits for inflight == 0 */
  size_t inflight;             /* submitted, not yet complete */
  bool unloaded;               /* refuses new requests */
  bool releasing;              /* unloaded and idle: RELEASEs posted */
  atomic_int release_pending;  /* detached RELEASEs not yet run */
  atomic_bool release_partial; /* a device refused its RELEASE (shut
                                  down): emx_engine_destroy frees it */
  atomic_size_t queued;        /* waiting in device queues */
  emx__counters stats;
  struct emx_model *next; /* registry list */
};

struct emx_stream {
  struct emx_engine *engine;       /* owner */
  pthread_mutex_t lock;            /* guards below */
  struct emx_request *head, *tail; /* submitted, not yet delivered */
  atomic_ullong finish;            /* fair: virtual finish tag (sched.c) */
  atomic_uint weight;              /* fair: share relative to others */
  atomic_size_t inflight;          /* joined and not finished: its hold on
                                      device queues (admission, request.c) */
  bool delivering;                 /* a thread is draining head */
  bool destroyed;                  /* free once drained */
};

typedef enum {
  EMX__REQ_SUBMITTING, /* slot reserved, not yet in a queue */
  EMX__REQ_QUEUED,     /* in device->queue */
  EMX__REQ_RUNNING,    /* the worker has it */
  EMX__REQ_CANCELED,   /* taken out of its queue by cancel; in
                          device->canceled until the worker finishes it */
  EMX__REQ_FINISHED,   /* has a status, waits for stream order */
  EMX__REQ_COMPLETE,   /* delivered: visible to wait, callback ran */
} emx__req_state;

struct emx_request {
  emx__qlink qlink;              /* device queue link (first: container_of) */
  atomic_int refs;               /* caller handle + engine */
  _Atomic emx__req_state state;  /* transitions under device/request locks */
  struct emx_engine *engine;     /* valid while not COMPLETE */
  emx_model *model;              /* valid while not COMPLETE */
  _Atomic(emx__device *) device; /* where it is queued (failover moves it
                                    under the new device's lock) */
  emx_stream *stream;            /* NULL = unordered */
  struct emx_request *snext;     /* stream order list */
  int priority;
  unsigned long long fair_start; /* fair: its stream's tag when picked */
  int64_t deadline_ns;
  atomic_llong expect_ns; /* RUNNING: expected finish time, 0 if
                             unknown (set by the worker) */
  atomic_int cpu;         /* CPU its device's worker last ran on (from
                             the device at submit and failover, then the
                             worker's own as it starts it): waiters read
                             this, never the device, which
                             emx_engine_destroy may be freeing */
  emx_completion_fn on_complete;
  void *user;
  size_t nin, nout;
  emx_tensor *inputs, *outputs; /* copies of the descriptors (not data) */
  int status;                   /* final status once FINISHED */
  emx_timings timings;
  int64_t done_ns;      /* when it finished (on its device's clock) */
  char *error;          /* message for a failed request, or NULL */
  pthread_mutex_t lock; /* guards completion for waiters */
  pthread_cond_t done_cv;
  int sleepers; /* threads asleep on done_cv */
};

struct emx_engine {
  pthread_mutex_t admin_lock; /* serialises load, unload and shutdown */
  pthread_mutex_t lock;       /* guards the models list (held briefly) */
  atomic_bool shut;           /* no new work accepted */
  bool shutdown_done;         /* workers joined */
  emx__device *devices;
  size_t device_count;
  emx_model *models;            /* registry list */
  emx_model *retiring;          /* unloaded, not yet released everywhere
                                   (lock) */
  atomic_uint rr;               /* round-robin tie breaker for dispatch */
  atomic_bool paused;           /* emx_engine_pause: queues are not served */
  atomic_size_t active_streams; /* streams with inflight > 0 */
};

/* placement.c */
int emx__placement_parse(struct emx_engine *e, const char *text, int8_t *tier,
                         emx__errbuf *err);
/* emx__pick_device: the least-loaded healthy device of the model's first
 * tier that has one, the one that last ran the model on a tie; NULL when
 * none can run it. */
emx__device *emx__pick_device(struct emx_engine *e, const emx_model *m);

/* emx__device_now: the time on the device's clock: CLOCK_MONOTONIC, or
 * the simulated time of a device with a virtual clock. Requests queued on
 * a device are stamped, scheduled and timed on its clock. */
static inline int64_t emx__device_now(const emx__device *dev) {
  return dev->virtual_clock
             ? (int64_t)atomic_load_explicit(&dev->vclock, memory_order_acquire)
             : emx_now_ns();
}

/* emx__expired: has request r's deadline passed at `now` (its device's
 * clock)? Such a request never runs. */
static inline bool emx__expired(const struct emx_request *r, int64_t now) {
  return r->deadline_ns && now > r->deadline_ns;
}

/* emx__req_of: the request a queue link belongs to. */
static inline struct emx_request *emx__req_of(emx__qlink *link) {
  return (struct emx_request *)((char *)link -
                                offsetof(struct emx_request, qlink));
}

/* device.c: queue bookkeeping, with dev->lock held: emx__enqueue_locked
 * pushes a request and counts it; emx__dequeued_locked counts one that has
 * just left the queue (picked or removed). */
void emx__enqueue_locked(emx__device *dev, struct emx_request *r);
void emx__dequeued_locked(emx__device *dev, struct emx_request *r);
/* emx__device_post_ctl hands a control task to the device's worker;
 * EMX_ESHUTDOWN once it is stopping. */
int emx__device_post_ctl(emx__device *dev, emx__ctl *ctl);

/* finish.c */
/* emx__request_finish gives a request its status (and message) and delivers
 * it in stream order. Called once per request, from any thread. */
void emx__request_finish(struct emx_request *req, int status, const char *msg);
void emx__request_unref(struct emx_request *req);
/* emx__request_free frees a request nobody else has seen yet. */
void emx__request_free(struct emx_request *req);
/* emx__model_free frees a model no device holds a prep of any more. */
void emx__model_free(emx_model *m);
/* emx__model_retire: an unloaded model has no request left (its last one
 * was delivered, or it had none): a detached RELEASE goes to each device
 * it may be prepared on, and the worker that runs the last one frees it
 * (emx__model_released). Nobody waits, so an unload never blocks on a
 * busy or hung device. Call with no lock held, once (m->releasing). */
void emx__model_retire(emx_model *m);
/* emx__model_released: a worker ran a detached RELEASE (no lock held). */
void emx__model_released(emx__ctl *ctl);
/* emx__stream_free frees a destroyed stream once nothing is left in it. */
void emx__stream_free(emx_stream *s);

/* sched.c */
enum { EMX__SCHED_FIFO = 0, EMX__SCHED_AFFINITY = 1, EMX__SCHED_FAIR = 2 };
/* emx__sched_parse reads sched=, max_delay_ms= and idle_release_ms=
 * (marking them used). */
int emx__sched_parse(emx__devspec *spec, int *policy, int64_t *max_delay_ns,
                     int64_t *idle_release_ns, emx__errbuf *err);
/* emx__sched_pick unlinks the request the device's policy runs next. */
emx__qlink *emx__sched_pick(emx__device *dev, int64_t now);
/* emx__sched_charge: request r ran for device_ns of dev's time (its share
 * of a batch); under sched=fair its stream pays for it. Worker only, after
 * the run and before r finishes (its stream is still alive). */
void emx__sched_charge(emx__device *dev, struct emx_request *r,
                       int64_t device_ns);

/* batch.c: dynamic batching. Both called by the worker. */
/* emx__batch_gather: the worker has taken group[0] (RUNNING) and holds
 * dev->lock; take more queued requests for its model, in scheduling order,
 * up to the model's max_batch, waiting up to its batch_delay_ns for them
 * (the lock is released while waiting). Returns how many group holds. */
size_t emx__batch_gather(emx__device *dev, struct emx_request **group);
/* emx__batch_size: how many of `left` gathered requests the next invoke
 * runs (preferred sizes first). */
size_t emx__batch_size(const emx_model *m, size_t left);

/* worker.c */
void *emx__worker_main(void *arg);
/* emx__run_here_ok_locked: whether the request r, just queued on dev (lock
 * held), may run on the submitting thread (EMX_SUBMIT_MAY_RUN_HERE). */
bool emx__run_here_ok_locked(emx__device *dev, const struct emx_request *r);
/* emx__run_here: runs dev's one queued request on the calling thread, as
 * the worker would. Called with dev->lock held right after
 * emx__run_here_ok_locked said yes; returns with it released. */
void emx__run_here(emx__device *dev);

/* model.c: frees every model; the workers must be stopped. */
void emx__model_free_all(struct emx_engine *e);

#endif
