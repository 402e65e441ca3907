/* request.c — a request's life: validate, dispatch, wait, cancel, finish,
 * and delivery in stream order. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "core/abi.h"
#include "core/clock.h"
#include "engine/internal.h"

/* A waiter whose request is running sleeps until about this long before the
 * expected finish, then polls: the wake-up happens while the device is still
 * busy, so the completion is seen within a microsecond instead of after a
 * futex wake-up (~25 us across cores). */
#define WAIT_SPIN_NS 150000
/* Polling continues this long past the expected finish: run times vary by
 * ±10% (cache, frequency), and a miss costs a full wake-up. */
#define WAIT_SPIN_AFTER_NS 400000
/* A request just queued on an idle (polling) worker starts within a few
 * microseconds: watch for that instead of sleeping, so the worker need
 * not wake us (a futex call on its critical path) to say it started. */
#define WAIT_START_SPIN_NS 30000

static void desc_defaults(emx_request_desc *d) {
  memset(d, 0, sizeof *d);
  d->struct_size = sizeof *d;
  d->priority = EMX_PRIORITY_NORMAL;
}

EMX_EXPORT void(emx_request_desc_init)(emx_request_desc *desc) {
  emx_request_desc own;
  desc_defaults(&own);
  emx__abi_init(desc, &own, sizeof own);
}

static int check_tensors(emx_engine *e, const char *what,
                         const emx_tensor_info *infos, size_t want,
                         const emx_tensor *given, size_t n, const char *model) {
  if (n != want)
    return emx__fail(e, EMX_ECOUNT,
                     "model \"%s\" takes %zu %s tensor%s; the request gave %zu",
                     model, want, what, want == 1 ? "" : "s", n);
  if (n && !given)
    return emx__fail(e, EMX_EINVAL, "model \"%s\": %s array is NULL", model,
                     what);
  for (size_t i = 0; i < n; i++) {
    const emx_tensor_info *t = &infos[i];
    if (given[i].dtype != t->dtype)
      return emx__fail(e, EMX_EDTYPE,
                       "model \"%s\" %s %zu (\"%s\") is %s; the request gave "
                       "%s",
                       model, what, i, t->name, emx_dtype_name(t->dtype),
                       emx_dtype_name(given[i].dtype));
    if (given[i].size != t->bytes)
      return emx__fail(e, EMX_ESIZE,
                       "model \"%s\" %s %zu (\"%s\") is %zu bytes; the request "
                       "gave %zu",
                       model, what, i, t->name, t->bytes, given[i].size);
    if (!given[i].data)
      return emx__fail(e, EMX_EINVAL,
                       "model \"%s\" %s %zu (\"%s\"): data is NULL", model,
                       what, i, t->name);
  }
  return 0;
}

static int validate(emx_engine *e, const emx_request_desc *d) {
  if (!e || !d)
    return emx__fail(e, EMX_EINVAL, "engine and request must not be NULL");
  if (atomic_load(&e->shut))
    return emx__fail(e, EMX_ESHUTDOWN,
                     "the engine is shut down: create a new one");
  if (!d->model)
    return emx__fail(e, EMX_EINVAL, "request has no model");
  if (d->model->engine != e)
    return emx__fail(e, EMX_EINVAL, "model \"%s\" belongs to another engine",
                     d->model->name);
  if (d->priority < 0 || d->priority >= EMX_PRIORITY_COUNT)
    return emx__fail(e, EMX_EINVAL, "priority %d is out of range [0, %d]",
                     d->priority, EMX_PRIORITY_COUNT - 1);
  if (d->stream && d->stream->engine != e)
    return emx__fail(e, EMX_EINVAL, "stream belongs to another engine");
  if (d->flags & ~EMX_SUBMIT_MAY_RUN_HERE)
    return emx__fail(e, EMX_EINVAL,
                     "request flags 0x%x has bits no EMX_SUBMIT_* names",
                     d->flags);
  const emx_model *m = d->model;
  int rc = check_tensors(e, "input", m->desc.inputs, m->desc.input_count,
                         d->inputs, d->input_count, m->name);
  if (rc == 0)
    rc = check_tensors(e, "output", m->desc.outputs, m->desc.output_count,
                       d->outputs, d->output_count, m->name);
  return rc;
}

static struct emx_request *request_new(const emx_request_desc *d) {
  size_t n = d->input_count + d->output_count;
  struct emx_request *r = calloc(1, sizeof *r + n * sizeof(emx_tensor));
  if (!r)
    return NULL;
  r->inputs = (emx_tensor *)(r + 1);
  r->outputs = r->inputs + d->input_count;
  if (d->input_count)
    memcpy(r->inputs, d->inputs, d->input_count * sizeof(emx_tensor));
  if (d->output_count)
    memcpy(r->outputs, d->outputs, d->output_count * sizeof(emx_tensor));
  r->nin = d->input_count;
  r->nout = d->output_count;
  r->model = d->model;
  r->stream = d->stream;
  r->priority = d->priority;
  r->deadline_ns = d->deadline_ns;
  r->on_complete = d->on_complete;
  r->user = d->user;
  r->timings.device = -1;
  atomic_init(&r->refs, 2);
  atomic_init(&r->state, EMX__REQ_SUBMITTING);
  pthread_mutex_init(&r->lock, NULL);
  emx__cond_init_monotonic(&r->done_cv);
  return r;
}

/* queue_full: no room in dev's queue for a request of stream s (device
 * lock held). Under sched=fair a full queue still takes a request from a
 * stream holding less than its share (capacity / streams with work in
 * flight): a flood fills the queue, but never to the exclusion of a light
 * client, which would otherwise be refused EMX_EBUSY while the scheduler
 * stood ready to serve it next. The overshoot is bounded: each stream only
 * up to its share, the queue at twice its capacity. */
static bool queue_full(emx_engine *e, emx__device *dev, emx_stream *s) {
  size_t used = dev->queue.length + dev->reserved;
  if (used < dev->capacity)
    return false;
  if (!s || dev->policy != EMX__SCHED_FAIR || used >= 2 * dev->capacity)
    return true;
  size_t mine = atomic_load(&s->inflight);
  size_t streams = atomic_load(&e->active_streams) + (mine == 0);
  size_t share = dev->capacity / (streams ? streams : 1);
  return mine >= (share ? share : 1);
}

/* reserve_slot waits (per the desc's enqueue timeout) for room in dev's
 * queue and reserves it, so the request can then join its stream without
 * holding the device lock. */
static int reserve_slot(emx_engine *e, emx__device *dev,
                        const emx_request_desc *d) {
  int64_t until = d->enqueue_timeout_ns > 0
                      ? emx__deadline_after(emx_now_ns(), d->enqueue_timeout_ns)
                      : 0;
  struct timespec ts = emx__abstime(until);
  pthread_mutex_lock(&dev->lock);
  while (!dev->stopping && queue_full(e, dev, d->stream)) {
    if (d->enqueue_timeout_ns == 0 ||
        (until &&
         pthread_cond_timedwait(&dev->space_cv, &dev->lock, &ts) == ETIMEDOUT &&
         queue_full(e, dev, d->stream))) {
      size_t cap = dev->capacity;
      pthread_mutex_unlock(&dev->lock);
      return emx__fail(e, EMX_EBUSY,
                       "queue of device %s is full (%zu requests): retry "
                       "later, pass an enqueue timeout, or raise "
                       "queue_capacity",
                       dev->name, cap);
    }
    if (!until)
      pthread_cond_wait(&dev->space_cv, &dev->lock);
  }
  if (dev->stopping) {
    pthread_mutex_unlock(&dev->lock);
    return emx__fail(e, EMX_ESHUTDOWN,
                     "the engine is shut down: create a new one");
  }
  dev->reserved++;
  pthread_mutex_unlock(&dev->lock);
  return 0;
}

static int model_acquire(emx_engine *e, emx_model *m) {
  pthread_mutex_lock(&m->lock);
  if (m->unloaded) {
    pthread_mutex_unlock(&m->lock);
    return emx__fail(e, EMX_ENOENT, "model \"%s\" is being unloaded", m->name);
  }
  m->inflight++;
  pthread_mutex_unlock(&m->lock);
  return 0;
}

static void model_release(emx_model *m) {
  pthread_mutex_lock(&m->lock);
  bool retire = --m->inflight == 0 && m->unloaded && !m->releasing;
  if (retire)
    m->releasing = true;
  pthread_cond_broadcast(&m->idle_cv);
  pthread_mutex_unlock(&m->lock);
  if (retire)
    emx__model_retire(m);
}

EMX_EXPORT int emx_submit(emx_engine *e, const emx_request_desc *user_desc,
                          emx_request **out) {
  if (out)
    *out = NULL;
  /* The rest of the engine sees only a desc of this library's size. */
  emx_request_desc own, *d = NULL;
  if (user_desc) {
    emx__errbuf err;
    desc_defaults(&own);
    int arc =
        emx__abi_in(&own, sizeof own, user_desc, "emx_request_desc", &err);
    if (arc < 0)
      return emx__fail_buf(e, arc, &err);
    d = &own;
  }
  int rc = validate(e, d);
  if (rc < 0)
    return rc;
  emx_model *m = d->model;
  rc = model_acquire(e, m);
  if (rc < 0)
    return rc;
  struct emx_request *r = request_new(d);
  if (!r) {
    model_release(m);
    return emx__fail(e, EMX_ENOMEM, "out of memory allocating a request");
  }
  emx__device *dev = emx__pick_device(e, m);
  rc = dev ? reserve_slot(e, dev, d)
           : emx__fail(e, EMX_EDEVICE,
                       "no healthy device can run model \"%s\"%s%s%s: every "
                       "device it may use is down (being re-probed)",
                       m->name, m->placement[0] ? " (placement: " : "",
                       m->placement, m->placement[0] ? ")" : "");
  if (rc < 0) {
    model_release(m);
    emx__request_free(r);
    return rc;
  }
  r->engine = e;
  atomic_store(&r->device, dev);
  atomic_store_explicit(&r->cpu, atomic_load(&dev->cpu), memory_order_relaxed);
  r->timings.submitted_ns = emx__device_now(dev);
  if (!out)
    atomic_fetch_sub(&r->refs, 1); /* fire and forget: engine ref only */
  else
    *out = r;

  /* Join the stream before the queue: the stream's order is the order in
   * which submits got here, whichever device runs them. */
  emx_stream *s = r->stream;
  if (s) {
    if (atomic_fetch_add(&s->inflight, 1) == 0)
      atomic_fetch_add(&e->active_streams, 1);
    pthread_mutex_lock(&s->lock);
    if (s->tail)
      s->tail->snext = r;
    else
      s->head = r;
    s->tail = r;
    pthread_mutex_unlock(&s->lock);
  }

  pthread_mutex_lock(&dev->lock);
  dev->reserved--;
  /* A device that failed since we picked it drains its queue to healthy
   * ones: pushing there is still right, its worker moves the request. */
  if (dev->stopping) {
    pthread_mutex_unlock(&dev->lock);
    emx__request_finish(r, EMX_ESHUTDOWN,
                        "the engine shut down before the request ran");
    return 0;
  }
  atomic_store(&r->state, EMX__REQ_QUEUED);
  emx__enqueue_locked(dev, r);
  if ((d->flags & EMX_SUBMIT_MAY_RUN_HERE) && emx__run_here_ok_locked(dev, r)) {
    emx__run_here(dev); /* r may be freed once this returns */
    return 0;
  }
  if (atomic_load_explicit(&dev->worker_wait, memory_order_relaxed) !=
      EMX__WORKER_RUNNING)
    pthread_cond_signal(&dev->work_cv);
  pthread_mutex_unlock(&dev->lock);
  return 0;
}

EMX_EXPORT int(emx_infer)(emx_engine *e, const emx_request_desc *d,
                          emx_timings *timings) {
  if (!d)
    return emx__fail(e, EMX_EINVAL, "request must not be NULL");
  /* A synchronous call cannot honour a callback's "must not block" rule
   * for itself; it simply waits, and the callback still runs. */
  emx_request *r;
  int rc = emx_submit(e, d, &r);
  if (rc < 0)
    return rc;
  rc = emx_request_wait(r, -1);
  if (timings) {
    emx__errbuf err;
    if (emx__abi_out(timings, &r->timings, sizeof r->timings, "emx_timings",
                     &err) < 0)
      emx__fail_buf(e, EMX_EINVAL, &err); /* the request ran: keep rc */
  }
  if (rc < 0 && r->error)
    emx__fail(e, rc, "%s", r->error);
  emx_request_destroy(r);
  return rc;
}

EMX_EXPORT int emx_stream_create(emx_engine *e, emx_stream **out) {
  if (!e || !out)
    return emx__fail(e, EMX_EINVAL, "engine and out must not be NULL");
  *out = NULL;
  if (atomic_load(&e->shut))
    return emx__fail(e, EMX_ESHUTDOWN,
                     "the engine is shut down: create a new one");
  emx_stream *s = calloc(1, sizeof *s);
  if (!s)
    return emx__fail(e, EMX_ENOMEM, "out of memory allocating a stream");
  s->engine = e;
  atomic_init(&s->weight, 1);
  pthread_mutex_init(&s->lock, NULL);
  *out = s;
  return 0;
}

EMX_EXPORT int emx_stream_set_weight(emx_stream *s, unsigned weight) {
  if (!s)
    return EMX_EINVAL;
  if (weight < 1 || weight > EMX_MAX_STREAM_WEIGHT)
    return emx__fail(s->engine, EMX_EINVAL,
                     "stream weight %u is out of range [1, %d]", weight,
                     EMX_MAX_STREAM_WEIGHT);
  atomic_store(&s->weight, weight);
  return 0;
}

EMX_EXPORT void emx_stream_destroy(emx_stream *s) {
  if (!s)
    return;
  pthread_mutex_lock(&s->lock);
  s->destroyed = true;
  bool free_it = !s->head && !s->delivering;
  pthread_mutex_unlock(&s->lock);
  if (free_it)
    emx__stream_free(s);
}

EMX_EXPORT int emx_request_wait(emx_request *r, int64_t timeout_ns) {
  if (!r)
    return EMX_EINVAL;
  if (atomic_load_explicit(&r->state, memory_order_acquire) ==
      EMX__REQ_COMPLETE)
    return r->status;
  if (timeout_ns == 0)
    return EMX_EAGAIN;
  int64_t now = emx_now_ns();
  int64_t until =
      timeout_ns > 0 ? emx__deadline_after(now, timeout_ns) : INT64_MAX;
  int64_t start_spin = emx__deadline_after(now, WAIT_START_SPIN_NS);

  /* A running request knows its expected finish (its model's recent run
   * time on that device): poll inside a window around it, sleep before. */
  for (;;) {
    emx__req_state st = atomic_load_explicit(&r->state, memory_order_acquire);
    if (st == EMX__REQ_COMPLETE)
      return r->status;
    now = emx_now_ns();
    if (now >= until)
      return EMX_EAGAIN;
    /* Poll only from another CPU than the worker's: polling on its CPU
     * would take the time the worker needs (the scheduler often wakes a
     * worker on its waker's CPU). */
    bool may_poll =
        sched_getcpu() != atomic_load_explicit(&r->cpu, memory_order_relaxed);
    if (st == EMX__REQ_QUEUED && now < start_spin && may_poll) {
      emx__cpu_relax(); /* an idle worker takes it within microseconds */
      continue;
    }

    int64_t wake = until;
    int64_t expect =
        st == EMX__REQ_RUNNING
            ? atomic_load_explicit(&r->expect_ns, memory_order_relaxed)
            : 0;
    if (expect > 0) {
      if (may_poll && now >= expect - WAIT_SPIN_NS &&
          now < emx__deadline_after(expect, WAIT_SPIN_AFTER_NS)) {
        emx__cpu_relax();
        continue;
      }
      if (now < expect - WAIT_SPIN_NS && expect - WAIT_SPIN_NS < wake)
        wake = expect - WAIT_SPIN_NS;
    }
    /* Sleep until the deadline of this wait or the spin window, unless
     * something changed meanwhile: the worker broadcasts when the request
     * starts (with its expected finish) and when it completes. */
    pthread_mutex_lock(&r->lock);
    if (atomic_load(&r->state) == st &&
        atomic_load_explicit(&r->expect_ns, memory_order_relaxed) == expect) {
      /* Counted only while asleep: a polling waiter costs the worker no
       * futex call on its way to the next request. */
      r->sleepers++;
      if (wake == INT64_MAX) {
        pthread_cond_wait(&r->done_cv, &r->lock);
      } else {
        struct timespec ts = emx__abstime(wake);
        pthread_cond_timedwait(&r->done_cv, &r->lock, &ts);
      }
      r->sleepers--;
    }
    pthread_mutex_unlock(&r->lock);
  }
}

EMX_EXPORT int emx_request_poll(emx_request *r) {
  return emx_request_wait(r, 0);
}

EMX_EXPORT int emx_request_cancel(emx_request *r) {
  if (!r)
    return EMX_EINVAL;
  emx__req_state st = atomic_load(&r->state);
  if (st == EMX__REQ_CANCELED || st == EMX__REQ_FINISHED ||
      st == EMX__REQ_COMPLETE)
    return EMX_EALREADY;
  /* Failover may move a queued request to another device: lock the device
   * it is on, then check it did not move meanwhile. */
  emx__device *dev;
  for (;;) {
    dev = atomic_load(&r->device);
    pthread_mutex_lock(&dev->lock);
    if (atomic_load(&r->device) == dev)
      break;
    pthread_mutex_unlock(&dev->lock);
  }
  st = atomic_load(&r->state);
  if (st != EMX__REQ_QUEUED) {
    pthread_mutex_unlock(&dev->lock);
    return st == EMX__REQ_RUNNING ? EMX_EBUSY : EMX_EALREADY;
  }
  emx__queue_remove(&dev->queue, &r->qlink);
  emx__dequeued_locked(dev, r);
  /* Completed by the device's worker, as every request is: its callback
   * runs on an engine thread, never inside the caller's cancel (which may
   * hold locks the callback takes). The worker is still there: it leaves
   * only once its queue is empty, and this request was in it. */
  atomic_store(&r->state, EMX__REQ_CANCELED);
  r->qlink.next = dev->canceled;
  dev->canceled = &r->qlink;
  pthread_cond_signal(&dev->space_cv);
  pthread_cond_signal(&dev->work_cv);
  pthread_mutex_unlock(&dev->lock);
  return 0;
}

EMX_EXPORT void(emx_request_timings)(const emx_request *r, emx_timings *out) {
  if (!r || !out)
    return;
  /* The worker writes the rest while the request runs: only a finished
   * request's timings are stable (a completion callback sees them). */
  emx__req_state st = atomic_load_explicit(&r->state, memory_order_acquire);
  emx_timings t;
  if (st == EMX__REQ_FINISHED || st == EMX__REQ_COMPLETE) {
    t = r->timings;
  } else {
    memset(&t, 0, sizeof t);
    t.submitted_ns = r->timings.submitted_ns;
    t.device = -1;
  }
  emx__abi_out(out, &t, sizeof t, "emx_timings", NULL);
}

EMX_EXPORT const char *emx_request_error(const emx_request *r) {
  if (!r)
    return "";
  emx__req_state st = atomic_load_explicit(&r->state, memory_order_acquire);
  if (st != EMX__REQ_FINISHED && st != EMX__REQ_COMPLETE)
    return "";
  return r->error ? r->error : "";
}

EMX_EXPORT void *emx_request_user(const emx_request *r) {
  return r ? r->user : NULL;
}

EMX_EXPORT void emx_request_destroy(emx_request *r) {
  if (r)
    emx__request_unref(r);
}
