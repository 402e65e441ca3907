/* worker.c — one thread per device: the only caller of its backend.
 *
 * The loop takes, in order: control tasks (prepare/release a model), then
 * the next request the scheduler picks. Expired requests complete with
 * EMX_ETIMEDOUT without running. On shutdown the queue is drained with
 * EMX_ESHUTDOWN.
 *
 * A device fault (EMX_EDEVICE from the backend) fails the request that was
 * running (only that one), marks the device down, moves its queued
 * requests to healthy devices that can run their models, keeps the others
 * queued for the re-probe (up to HOLD_NS, or their deadline, then fails
 * them clearly), closes the device, and re-opens it with exponential
 * backoff. Models are prepared again lazily, by the first request that
 * needs them.
 *
 * A model is prepared at load on one worker of a pool and on the others
 * when they first run it; one idle on a worker for idle_release_ms is
 * released there (release_idle), so memory follows the load. */
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/heap.h"
#include "core/clock.h"
#include "core/log.h"
#include "engine/internal.h"

/* How long an idle worker polls for new work before sleeping. A sleeping
 * worker costs a futex wake-up (about 25 us across cores here, more when
 * the core has gone idle in a VM) on the next submit. A caller running
 * back-to-back synchronous requests resubmits after its reply reaches it
 * and its own work between calls: a few microseconds in C, 60-150 us for
 * a Python program through the daemon (two socket hops and its copies).
 * So the poll follows the gaps this worker sees: twice their average,
 * between IDLE_SPIN_MIN_NS and IDLE_SPIN_MAX_NS, and the minimum once
 * they grow longer than the maximum (a camera at 30 frames/s: polling
 * would not reach the next frame and only burns a core). */
#define IDLE_SPIN_MIN_NS 60000
#define IDLE_SPIN_MAX_NS 250000

/* A request may run on its submitter's thread (EMX_SUBMIT_MAY_RUN_HERE)
 * when its model's recent runs on the device took at most this: less than
 * the wake-up of a sleeping worker, so the submitter waits no longer than
 * it would have for the hand-over alone. */
#define RUN_HERE_MAX_NS 50000

/* Re-probe backoff of a failed device: quick for a glitch, capped so a
 * device that comes back is noticed within seconds. */
#define PROBE_FIRST_NS (20 * 1000000LL)
#define PROBE_MAX_NS (2000 * 1000000LL)
/* A down device keeps the queued requests no other healthy device can take
 * this long for its re-probe (probes come 20, 60, 140, 300 and 620 ms after
 * the fault): a glitch costs them a delay, not their result; a device gone
 * for good fails them clearly. A request's deadline ends its wait sooner. */
#define HOLD_NS (1000 * 1000000LL)
/* A model a worker has not run for dev->idle_release_ns (idle_release_ms=,
 * default 30 s) is released there, unless that worker ran it last of all
 * (placement sends it there first): a pool holds one interpreter of an idle
 * model, and as many as the load spreads it to while it is busy. */
/* How often a busy worker looks for idle models. */
#define IDLE_CHECK_NS (1000 * 1000000LL)

/* ---- prepared models (worker-local bookkeeping) -------------------------- */

static void track(emx__device *dev, emx_model *m) {
  if (dev->nprepared == dev->prepared_cap) {
    size_t cap = dev->prepared_cap ? dev->prepared_cap * 2 : 8;
    emx_model **p = realloc(dev->prepared, cap * sizeof *p);
    if (!p)
      return; /* only costs the early release on a fault */
    dev->prepared = p;
    dev->prepared_cap = cap;
  }
  dev->prepared[dev->nprepared++] = m;
}

static void untrack(emx__device *dev, emx_model *m) {
  for (size_t i = 0; i < dev->nprepared; i++)
    if (dev->prepared[i] == m) {
      dev->prepared[i] = dev->prepared[--dev->nprepared];
      return;
    }
}

/* heap_bytes, sampled around a prepare, tells what the prepared copy holds
 * (other threads allocating meanwhile blur it a little: a report, not an
 * account). */
static long long heap_bytes(void) {
  return emx__heap_bytes();
}

/* prepare_measured is ops->prepare, recording the heap the copy took. */
static int prepare_measured(emx__device *dev, emx_model *m, void **prep,
                            emx__model_desc *desc, emx__errbuf *err) {
  long long before = heap_bytes();
  int rc = dev->ops->prepare(dev->impl, m->data, m->size, prep, desc, err);
  long long took = heap_bytes() - before;
  if (rc == 0)
    atomic_store_explicit(&m->mem_bytes[dev->index], took > 0 ? took : 1,
                          memory_order_relaxed);
  return rc;
}

static void release_one(emx__device *dev, emx_model *m) {
  atomic_store_explicit(&m->mem_bytes[dev->index], 0, memory_order_relaxed);
  if (dev->resident == m)
    dev->resident = NULL;
  if (m->prep[dev->index] && dev->impl)
    dev->ops->release(dev->impl, m->prep[dev->index]);
  m->prep[dev->index] = NULL;
  untrack(dev, m);
}

static void run_ctl(emx__device *dev, emx__ctl *ctl) {
  emx_model *m = ctl->model;
  if (ctl->kind == EMX__CTL_RELEASE) {
    release_one(dev, m);
    ctl->status = 0;
    return;
  }
  if (!atomic_load(&dev->healthy)) {
    /* Down: prepared lazily once it is back. */
    ctl->deferred = true;
    ctl->status = 0;
    return;
  }
  void *prep = NULL;
  ctl->status = prepare_measured(dev, m, &prep, &ctl->desc, &ctl->err);
  m->prep[dev->index] = ctl->status == 0 ? prep : NULL;
  m->last_run_ns[dev->index] = emx_now_ns();
  if (ctl->status == 0)
    track(dev, m);
}

/* prepare_lazily prepares a model on first use here (after a recovery, or
 * when the device was down at load). */
static int prepare_lazily(emx__device *dev, emx_model *m, emx__errbuf *err) {
  emx__model_desc desc = {0};
  void *prep = NULL;
  int rc = prepare_measured(dev, m, &prep, &desc, err);
  if (rc < 0)
    return rc;
  if (!emx__model_desc_equal(&desc, &m->desc)) {
    emx__model_desc_free(&desc);
    dev->ops->release(dev->impl, prep);
    atomic_store_explicit(&m->mem_bytes[dev->index], 0, memory_order_relaxed);
    return emx__errf(err, EMX_EDEVICE,
                     "model \"%s\" shows different tensors on %s", m->name,
                     dev->name);
  }
  emx__model_desc_free(&desc);
  m->prep[dev->index] = prep;
  track(dev, m);
  return 0;
}

/* release_idle releases the models idle here for dev->idle_release_ns;
 * returns when the next one will be due, INT64_MAX if none. Worker
 * only, without dev->lock (a release calls into the backend). */
static int64_t release_idle(emx__device *dev) {
  int64_t now = emx_now_ns(), next = INT64_MAX;
  dev->idle_check_ns = emx__deadline_after(now, IDLE_CHECK_NS);
  for (size_t i = 0; i < dev->nprepared;) {
    emx_model *m = dev->prepared[i];
    int64_t due =
        emx__deadline_after(m->last_run_ns[dev->index], dev->idle_release_ns);
    if (atomic_load_explicit(&m->last_device, memory_order_relaxed) ==
        (int)dev->index) {
      /* Its warm copy stays; look again later, as another worker may run
       * it meanwhile and become the warm one. */
      int64_t again = emx__deadline_after(now, dev->idle_release_ns);
      again = due > again ? due : again;
      next = again < next ? again : next;
      i++;
    } else if (now >= due) {
      release_one(dev, m); /* moves the last entry to i */
    } else {
      next = due < next ? due : next;
      i++;
    }
  }
  return next;
}

/* ---- failover -------------------------------------------------------------
 */

/* redispatch moves a request taken off a down device to a healthy one that
 * can run its model; with none, it goes back to wait on the down device
 * while the hold lasts, and fails after. The request is in state RUNNING
 * meanwhile, so a concurrent cancel leaves it alone. Worker only. */
static void redispatch(emx__device *from, struct emx_request *r) {
  emx_model *m = r->model;
  emx__device *to = emx__pick_device(from->engine, m);
  if (!to && !atomic_load(&from->healthy) &&
      emx_now_ns() >= emx__deadline_after(from->down_since_ns, HOLD_NS)) {
    char msg[400];
    snprintf(msg, sizeof msg,
             "device %s failed and did not come back within %lld ms, and no "
             "other healthy device can run model \"%s\"%s%s%s",
             from->name, HOLD_NS / 1000000, m->name,
             m->placement[0] ? " (placement: " : "", m->placement,
             m->placement[0] ? ")" : "");
    emx__request_finish(r, EMX_EDEVICE, msg);
    return;
  }
  if (!to)
    to = from; /* wait there for the re-probe */
  pthread_mutex_lock(&to->lock);
  if (to->stopping) {
    pthread_mutex_unlock(&to->lock);
    emx__request_finish(r, EMX_ESHUTDOWN,
                        "the engine shut down before the request ran");
    return;
  }
  /* Already-accepted work: it may exceed the new queue's capacity for a
   * moment rather than be dropped. */
  atomic_store(&r->device, to);
  atomic_store_explicit(&r->cpu, atomic_load(&to->cpu), memory_order_relaxed);
  atomic_store(&r->state, EMX__REQ_QUEUED);
  emx__enqueue_locked(to, r);
  pthread_cond_signal(&to->work_cv);
  pthread_mutex_unlock(&to->lock);
}

/* finish_expired completes a request whose deadline passed before it
 * could start. */
static void finish_expired(struct emx_request *req) {
  emx__request_finish(req, EMX_ETIMEDOUT,
                      "deadline passed while the request was queued; it "
                      "did not run");
}

/* sweep_down_locked: on a down device (dev->lock held, released meanwhile)
 * takes out of the queue every request that another healthy device can
 * run (moved there), whose deadline passed (EMX_ETIMEDOUT), or, once the
 * hold is over, all of them (EMX_EDEVICE); the rest stay queued for the
 * re-probe. Sets dev->down_wake_ns to when the next of them is due. */
static void sweep_down_locked(emx__device *dev) {
  int64_t now = emx__device_now(dev);
  int64_t hold_end = emx__deadline_after(dev->down_since_ns, HOLD_NS);
  bool hold_over = emx_now_ns() >= hold_end;
  emx__qlink *taken = NULL, **tail = &taken;
  int64_t wake = INT64_MAX;
  for (int p = EMX_PRIORITY_COUNT - 1; p >= 0; p--) {
    emx__qlink *head = &dev->queue.lists[p];
    for (emx__qlink *l = head->next, *next; l != head; l = next) {
      next = l->next;
      struct emx_request *r = emx__req_of(l);
      if (hold_over || emx__expired(r, now) ||
          emx__pick_device(dev->engine, r->model)) {
        emx__queue_remove(&dev->queue, l);
        emx__dequeued_locked(dev, r);
        atomic_store(&r->state, EMX__REQ_RUNNING);
        l->next = NULL;
        *tail = l;
        tail = &l->next;
        continue;
      }
      wake = hold_end < wake ? hold_end : wake;
      /* A virtual clock stands still while the device is down. */
      int64_t due = emx__deadline_after(r->deadline_ns, 1); /* expired */
      if (r->deadline_ns && !dev->virtual_clock && due < wake)
        wake = due;
    }
  }
  dev->down_wake_ns = wake;
  if (!taken)
    return;
  pthread_cond_broadcast(&dev->space_cv);
  pthread_mutex_unlock(&dev->lock);
  for (emx__qlink *l = taken, *next; l; l = next) {
    next = l->next;
    struct emx_request *r = emx__req_of(l);
    if (emx__expired(r, now))
      finish_expired(r);
    else
      redispatch(dev, r);
  }
  pthread_mutex_lock(&dev->lock);
}

/* go_down: called by the worker, without dev->lock, after a fault. */
static void go_down(emx__device *dev, const char *why) {
  emx__log(EMX_LOG_WARN,
           "device %s failed: %s; moving what other devices can run, "
           "holding the rest up to %lld ms for the re-probe",
           dev->name, why, HOLD_NS / 1000000);
  pthread_mutex_lock(&dev->lock);
  atomic_store(&dev->healthy, 0);
  dev->faults++;
  dev->down_since_ns = emx_now_ns();
  dev->backoff_ns = PROBE_FIRST_NS;
  dev->next_probe_ns = emx__deadline_after(emx_now_ns(), dev->backoff_ns);
  sweep_down_locked(dev);
  pthread_mutex_unlock(&dev->lock);
  /* The backend's state is suspect: drop the models; without a probe,
   * drop the device too and re-open it later. */
  while (dev->nprepared)
    release_one(dev, dev->prepared[dev->nprepared - 1]);
  if (!dev->ops->probe) {
    dev->ops->close(dev->impl);
    dev->impl = NULL;
  }
}

static void try_recover(emx__device *dev) {
  emx__errbuf err = {{0}};
  void *impl = dev->impl;
  int rc;
  if (impl)
    rc = dev->ops->probe(impl, &err);
  else /* re-open as at creation, from the spec resolved then */
    rc = dev->ops->open(&dev->resolved, dev->unit, &impl, &err);
  pthread_mutex_lock(&dev->lock);
  if (rc == 0) {
    dev->impl = impl;
    atomic_store(&dev->healthy, 1);
    emx__log(EMX_LOG_WARN, "device %s is back", dev->name);
  } else {
    dev->backoff_ns =
        dev->backoff_ns * 2 > PROBE_MAX_NS ? PROBE_MAX_NS : dev->backoff_ns * 2;
    dev->next_probe_ns = emx__deadline_after(emx_now_ns(), dev->backoff_ns);
    emx__log(EMX_LOG_INFO, "device %s still down (%s); next probe in %lld ms",
             dev->name, err.msg, (long long)(dev->backoff_ns / 1000000));
  }
  pthread_mutex_unlock(&dev->lock);
}

/* ---- running requests ---------------------------------------------------- */

/* run_invoke runs k requests of one model in one backend call: invoke for
 * one, invoke_batch for more. Returns the backend's status; with k > 1,
 * EMX_EUNSUPPORTED means nothing ran and none of them finished. */
static int run_invoke(emx__device *dev, struct emx_request **reqs, size_t k) {
  emx_model *m = reqs[0]->model;
  emx__errbuf err = {{0}};
  int64_t device_ns = 0;
  int64_t t0 = emx__device_now(dev);
  int cpu = sched_getcpu();
  atomic_store_explicit(&dev->cpu, cpu, memory_order_relaxed);
  atomic_llong *ewma = &m->service_ewma_ns[dev->index];
  long long expect = atomic_load_explicit(ewma, memory_order_relaxed);
  /* Only a single run has a known duration; waiters on a batch sleep until
   * woken. */
  if (dev->virtual_clock || k > 1)
    expect = 0;
  for (size_t i = 0; i < k; i++) {
    struct emx_request *req = reqs[i];
    req->timings.started_ns = t0;
    req->timings.device = (int)dev->index;
    atomic_store_explicit(&req->cpu, cpu, memory_order_relaxed);
    atomic_store_explicit(&req->expect_ns, expect ? t0 + expect : 0,
                          memory_order_relaxed);
    /* Tell a sleeping waiter when to expect the result, so it can be awake
     * and polling by then (a wake-up now overlaps the device's work). */
    pthread_mutex_lock(&req->lock);
    if (req->sleepers)
      pthread_cond_broadcast(&req->done_cv);
    pthread_mutex_unlock(&req->lock);
  }

  int rc = 0;
  m->last_run_ns[dev->index] = emx_now_ns();
  if (!m->prep[dev->index])
    rc = prepare_lazily(dev, m, &err);
  if (rc == 0 && k == 1) {
    struct emx_request *req = reqs[0];
    rc = dev->ops->invoke(dev->impl, m->prep[dev->index], req->inputs, req->nin,
                          req->outputs, req->nout, &device_ns, &err);
  } else if (rc == 0) {
    const emx_tensor *ins[EMX_MAX_BATCH], *outs[EMX_MAX_BATCH];
    for (size_t i = 0; i < k; i++) {
      ins[i] = reqs[i]->inputs;
      outs[i] = reqs[i]->outputs;
    }
    rc = dev->ops->invoke_batch(dev->impl, m->prep[dev->index], k, ins,
                                reqs[0]->nin, outs, reqs[0]->nout, &device_ns,
                                &err);
    if (rc == EMX_EUNSUPPORTED) {
      m->batch_ok[dev->index] = -1;
      emx__log(EMX_LOG_INFO,
               "%s: model %s does not batch here (%s); its gathered requests "
               "run back to back",
               dev->name, m->name, err.msg);
      return rc;
    }
  }
  int64_t t1;
  if (dev->virtual_clock) {
    t1 = emx__deadline_after(t0, device_ns);
    atomic_store_explicit(&dev->vclock, t1, memory_order_release);
  } else {
    t1 = emx_now_ns();
  }
  if (k == 1 && !dev->virtual_clock) {
    /* Blend the new run time into the estimate waiters use to decide when
     * to stop sleeping and start polling (weight 1/4: follows load changes
     * within a few requests, ignores one-off hiccups). */
    long long old = atomic_load_explicit(ewma, memory_order_relaxed);
    long long took = t1 - t0;
    atomic_store_explicit(ewma, old ? old + (took - old) / 4 : took,
                          memory_order_relaxed);
  }
  /* Free for dispatch now, before the replies go out: a client answered
   * first resubmits while this worker is still delivering, and should not
   * be placed behind it while another core is idle. */
  atomic_store_explicit(&dev->busy, 0, memory_order_relaxed);
  if (rc < 0)
    emx__log(EMX_LOG_DEBUG, "%s: model %s: %s", dev->name, m->name, err.msg);
  if (rc == EMX_EDEVICE)
    go_down(dev, err.msg);
  for (size_t i = 0; i < k; i++)
    emx__sched_charge(dev, reqs[i], (t1 - t0) / (int64_t)k);
  for (size_t i = 0; i < k; i++) {
    reqs[i]->timings.finished_ns = t1;
    reqs[i]->timings.device_ns = device_ns;
    reqs[i]->timings.batch = (int)k;
    emx__request_finish(reqs[i], rc, rc < 0 ? err.msg : NULL);
  }
  return rc;
}

/* finish_canceled_locked completes the requests emx_request_cancel took
 * out of the queue (with dev->lock held; released meanwhile). */
static void finish_canceled_locked(emx__device *dev) {
  emx__qlink *link = dev->canceled;
  dev->canceled = NULL;
  pthread_mutex_unlock(&dev->lock);
  while (link) {
    emx__qlink *next = link->next;
    emx__request_finish(emx__req_of(link), EMX_ECANCELED,
                        "canceled before it ran");
    link = next;
  }
  pthread_mutex_lock(&dev->lock);
}

/* run_group runs the requests the worker took (one, or a gathered batch
 * of one model) without consulting the scheduler in between. */
static void run_group(emx__device *dev, struct emx_request **group, size_t n) {
  size_t i = 0;
  while (i < n) {
    if (i > 0) { /* time has passed since the worker checked deadlines */
      size_t kept = i;
      int64_t now = emx__device_now(dev);
      for (size_t j = i; j < n; j++) {
        if (emx__expired(group[j], now))
          finish_expired(group[j]);
        else
          group[kept++] = group[j];
      }
      n = kept;
      if (i == n)
        break;
    }
    emx_model *m = group[i]->model;
    size_t k = emx__batch_size(m, n - i);
    if (!dev->ops->invoke_batch || m->batch_ok[dev->index] < 0)
      k = 1;
    atomic_store_explicit(&dev->busy, 1, memory_order_relaxed);
    int rc = run_invoke(dev, group + i, k);
    if (rc == EMX_EUNSUPPORTED && k > 1)
      continue; /* batch_ok is -1 now: one by one */
    i += k;
    if (rc == EMX_EDEVICE) {
      /* The device is down: the rest go where its queue went. */
      while (i < n)
        redispatch(dev, group[i++]);
    }
  }
}

/* wait_for_work returns with dev->lock held and something to do (or
 * stopping, or a probe due). It polls briefly before sleeping; see
 * IDLE_SPIN_MIN_NS. */
/* has_work: something for the worker now (a paused engine's queues are
 * not served, but control tasks and shutdown still are). */
static bool has_work(emx__device *dev) {
  if (dev->run_here) /* a submitter has the backend until it signals */
    return false;
  /* A down device's queue waits for the re-probe (sweep_down_locked). */
  return (dev->queue.length && !atomic_load(&dev->engine->paused) &&
          atomic_load(&dev->healthy)) ||
         dev->ctl_head || dev->canceled || dev->stopping;
}

/* idle_spin_ns: how long to poll for the next request (IDLE_SPIN_*). */
static int64_t idle_spin_ns(const emx__device *dev) {
  int64_t gap = dev->idle_gap_ns;
  if (gap <= 0 || gap > IDLE_SPIN_MAX_NS)
    return IDLE_SPIN_MIN_NS;
  int64_t spin = 2 * gap;
  return spin < IDLE_SPIN_MIN_NS   ? IDLE_SPIN_MIN_NS
         : spin > IDLE_SPIN_MAX_NS ? IDLE_SPIN_MAX_NS
                                   : spin;
}

/* note_gap folds one wait that a request ended into the average (weight
 * 1/4: a client that changes pace is followed within a few requests).
 * Waits far past the maximum count as twice it, so that one long pause
 * does not hold the poll at its minimum for long. */
static void note_gap(emx__device *dev, int64_t gap) {
  if (gap > 2 * IDLE_SPIN_MAX_NS)
    gap = 2 * IDLE_SPIN_MAX_NS;
  dev->idle_gap_ns =
      dev->idle_gap_ns ? dev->idle_gap_ns + (gap - dev->idle_gap_ns) / 4 : gap;
}

static void wait_for_work(emx__device *dev) {
  bool down = !atomic_load(&dev->healthy);
  if (has_work(dev))
    return;
  int64_t release_due = INT64_MAX;
  int64_t idle_since = emx_now_ns();
  if (!down) {
    pthread_mutex_unlock(&dev->lock);
    int64_t until = emx__deadline_after(idle_since, idle_spin_ns(dev));
    while (atomic_load_explicit(&dev->pending, memory_order_acquire) == 0 &&
           emx_now_ns() < until) {
      for (int i = 0; i < 64; i++)
        emx__cpu_relax();
      /* Give way to whatever else wants this core: on a machine with few
       * cores that is often the client or the daemon thread that will
       * submit the next request, and waiting for the scheduler to preempt
       * the poll would lengthen the very gap it polls through. */
      sched_yield();
    }
    if (atomic_load_explicit(&dev->pending, memory_order_acquire) == 0)
      release_due = release_idle(dev);
    pthread_mutex_lock(&dev->lock);
  }
  while (!has_work(dev)) {
    /* A submitter's run took the device down: the main loop sweeps and
     * re-probes. */
    if (!down && !dev->run_here && !atomic_load(&dev->healthy))
      return;
    if (down) {
      atomic_store(&dev->worker_wait, EMX__WORKER_DOWN);
      int64_t wake = dev->down_wake_ns < dev->next_probe_ns
                         ? dev->down_wake_ns
                         : dev->next_probe_ns;
      struct timespec ts = emx__abstime(wake);
      int timed_out = pthread_cond_timedwait(&dev->work_cv, &dev->lock, &ts);
      atomic_store(&dev->worker_wait, EMX__WORKER_RUNNING);
      if (timed_out)
        return;
    } else if (release_due != INT64_MAX) {
      struct timespec ts = emx__abstime(release_due);
      atomic_store(&dev->worker_wait, EMX__WORKER_PARKED);
      int timed_out = pthread_cond_timedwait(&dev->work_cv, &dev->lock, &ts);
      atomic_store(&dev->worker_wait, EMX__WORKER_RUNNING);
      if (timed_out && !has_work(dev) && !dev->run_here) {
        pthread_mutex_unlock(&dev->lock);
        release_due = release_idle(dev);
        pthread_mutex_lock(&dev->lock);
      }
    } else {
      atomic_store(&dev->worker_wait, EMX__WORKER_PARKED);
      pthread_cond_wait(&dev->work_cv, &dev->lock);
      atomic_store(&dev->worker_wait, EMX__WORKER_RUNNING);
    }
  }
  if (!down && dev->queue.length)
    note_gap(dev, emx_now_ns() - idle_since);
}

/* run_taken_locked runs req, which the caller (the worker, or a submitter
 * under run_here) took out of the queue (RUNNING), with any batch its
 * model gathers. Called with dev->lock held; returns with it held. */
static void run_taken_locked(emx__device *dev, struct emx_request *req) {
  atomic_store_explicit(&dev->busy, 1, memory_order_relaxed);
  struct emx_request *group[EMX_MAX_BATCH];
  group[0] = req;
  size_t n = req->model->max_batch > 1 ? emx__batch_gather(dev, group) : 1;
  /* The model may be unloaded once the request completes: keep its name
   * for the device's report now. */
  dev->resident = req->model;
  atomic_store_explicit(&req->model->last_device, (int)dev->index,
                        memory_order_relaxed);
  bool new_model = strcmp(dev->last_model, req->model->name) != 0;
  char name[EMX__MODEL_NAME_MAX];
  if (new_model)
    memcpy(name, req->model->name, sizeof name);
  pthread_mutex_unlock(&dev->lock);
  run_group(dev, group, n);
  if (emx_now_ns() >= dev->idle_check_ns)
    release_idle(dev);
  pthread_mutex_lock(&dev->lock);
  if (new_model)
    memcpy(dev->last_model, name, sizeof name);
  atomic_store_explicit(&dev->busy, 0, memory_order_relaxed);
}

bool emx__run_here_ok_locked(emx__device *dev, const struct emx_request *r) {
  const emx_model *m = r->model;
  long long ewma = atomic_load_explicit(&m->service_ewma_ns[dev->index],
                                        memory_order_relaxed);
  /* Only where the worker would run it at once, alone, with nothing else
   * to do first, and the model is prepared here (no lazy prepare). */
  return atomic_load_explicit(&dev->worker_wait, memory_order_relaxed) ==
             EMX__WORKER_PARKED &&
         !dev->run_here && dev->queue.length == 1 && !dev->ctl_head &&
         !dev->canceled && !dev->stopping && atomic_load(&dev->healthy) &&
         !atomic_load(&dev->engine->paused) && !dev->virtual_clock &&
         m->max_batch <= 1 && m->prep[dev->index] && ewma > 0 &&
         ewma <= RUN_HERE_MAX_NS && !emx__expired(r, emx__device_now(dev));
}

void emx__run_here(emx__device *dev) {
  emx__qlink *link = emx__sched_pick(dev, emx__device_now(dev));
  struct emx_request *req = emx__req_of(link);
  emx__dequeued_locked(dev, req);
  atomic_store(&req->state, EMX__REQ_RUNNING);
  pthread_cond_signal(&dev->space_cv);
  dev->run_here = true;
  run_taken_locked(dev, req);
  dev->run_here = false;
  /* Work that came meanwhile, or a fault to recover from: the worker's. */
  if (has_work(dev) || !atomic_load(&dev->healthy))
    pthread_cond_signal(&dev->work_cv);
  pthread_mutex_unlock(&dev->lock);
}

void *emx__worker_main(void *arg) {
  emx__device *dev = arg;
  /* "emx:cpu0" in top/ps/gdb (and for benchmarks that pin workers). */
  char thread_name[16]; /* the kernel keeps 15 bytes */
  snprintf(thread_name, sizeof thread_name, "emx:%.11s", dev->name);
  pthread_setname_np(pthread_self(), thread_name);
  pthread_mutex_lock(&dev->lock);
  dev->started_ns = emx_now_ns();
  for (;;) {
    wait_for_work(dev);
    if (dev->ctl_head) {
      emx__ctl *ctl = dev->ctl_head;
      dev->ctl_head = ctl->next;
      if (!dev->ctl_head)
        dev->ctl_tail = NULL;
      ctl->started = true;
      pthread_mutex_unlock(&dev->lock);
      run_ctl(dev, ctl);
      if (ctl->detached) {
        emx__model_released(ctl); /* may free the model */
        pthread_mutex_lock(&dev->lock);
        continue;
      }
      pthread_mutex_lock(&dev->lock);
      ctl->done = true;
      pthread_cond_broadcast(&dev->ctl_cv);
      continue;
    }
    if (dev->canceled) {
      finish_canceled_locked(dev);
      continue;
    }
    if (!atomic_load(&dev->healthy) && !dev->stopping) {
      /* Move, expire or (the hold over) fail what waits here. */
      sweep_down_locked(dev);
      if (emx_now_ns() >= dev->next_probe_ns) {
        pthread_mutex_unlock(&dev->lock);
        try_recover(dev);
        pthread_mutex_lock(&dev->lock);
      }
      continue;
    }
    if (atomic_load(&dev->engine->paused) && !dev->stopping)
      continue; /* woken for something else; the queue waits */
    emx__qlink *link = emx__sched_pick(dev, emx__device_now(dev));
    if (!link) /* stopping with an empty queue */
      break;
    struct emx_request *req = emx__req_of(link);
    emx__dequeued_locked(dev, req);
    /* Out of the queue now, so no longer cancelable, whatever happens
     * next. */
    atomic_store(&req->state, EMX__REQ_RUNNING);
    pthread_cond_signal(&dev->space_cv);

    if (dev->stopping) {
      pthread_mutex_unlock(&dev->lock);
      emx__request_finish(req, EMX_ESHUTDOWN,
                          "the engine shut down before the request ran");
      pthread_mutex_lock(&dev->lock);
      continue;
    }
    if (emx__expired(req, emx__device_now(dev))) {
      pthread_mutex_unlock(&dev->lock);
      finish_expired(req);
      pthread_mutex_lock(&dev->lock);
      continue;
    }
    run_taken_locked(dev, req);
  }
  pthread_mutex_unlock(&dev->lock);
  /* The worker is the only thread that may touch the backend: release what
   * it prepared before it goes (the device itself is closed by destroy). */
  while (dev->nprepared)
    release_one(dev, dev->prepared[dev->nprepared - 1]);
  free(dev->prepared);
  dev->prepared = NULL;
  dev->prepared_cap = 0;
  return NULL;
}
