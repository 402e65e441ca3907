/* worker.c — one thread per device: the only caller of its backend.
 *
 * The loop takes, in order: control tasks (prepare/release a model), then
 * the next request the scheduler picks. Expired requests complete with
 * EMX_ETIMEDOUT without running. On shutdown the queue is drained with
 * EMX_ESHUTDOWN. */
#include <stddef.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/log.h"
#include "engine/internal.h"

/* How long an idle worker polls for new work before sleeping. A sleeping
 * worker costs a futex wake-up (about 25 us across cores here) on the next
 * submit; a caller running back-to-back synchronous requests resubmits
 * within a few microseconds, so a short poll hides that cost entirely. */
#define IDLE_SPIN_NS 60000

static void run_ctl(emx__device *dev, emx__ctl *ctl) {
  emx_model *m = ctl->model;
  if (ctl->kind == EMX__CTL_PREPARE) {
    void *prep = NULL;
    ctl->status = dev->ops->prepare(dev->impl, m->data, m->size, &prep,
                                    &ctl->desc, &ctl->err);
    m->prep[dev->index] = ctl->status == 0 ? prep : NULL;
  } else {
    if (m->prep[dev->index])
      dev->ops->release(dev->impl, m->prep[dev->index]);
    m->prep[dev->index] = NULL;
    ctl->status = 0;
  }
}

static struct emx_request *from_link(emx__qlink *link) {
  return (struct emx_request *)((char *)link -
                                offsetof(struct emx_request, qlink));
}

static void run_request(emx__device *dev, struct emx_request *req) {
  emx_model *m = req->model;
  emx__errbuf err = {{0}};
  int64_t device_ns = 0;
  int64_t t0 = emx_now_ns();
  req->timings.started_ns = t0;
  req->timings.device = (int)dev->index;
  atomic_llong *ewma = &m->service_ewma_ns[dev->index];
  long long expect = atomic_load_explicit(ewma, memory_order_relaxed);
  atomic_store_explicit(&req->expect_ns, expect ? t0 + expect : 0,
                        memory_order_relaxed);
  /* Tell a sleeping waiter when to expect the result, so it can be awake
   * and polling by then (a wake-up now overlaps the device's work). */
  pthread_mutex_lock(&req->lock);
  if (req->has_waiter)
    pthread_cond_broadcast(&req->done_cv);
  pthread_mutex_unlock(&req->lock);
  int rc;
  void *prep = m->prep[dev->index];
  if (!prep)
    rc = emx__errf(&err, EMX_EDEVICE,
                   "model \"%s\" is not prepared on device %s", m->name,
                   dev->name);
  else
    rc = dev->ops->invoke(dev->impl, prep, req->inputs, req->nin, req->outputs,
                          req->nout, &device_ns, &err);
  int64_t t1 = emx_now_ns();
  req->timings.finished_ns = t1;
  req->timings.device_ns = device_ns;

  /* Blend the new run time into the estimate waiters use to decide when to
   * stop sleeping and start polling (weight 1/4: follows load changes within
   * a few requests, ignores one-off hiccups). */
  long long old = atomic_load_explicit(ewma, memory_order_relaxed);
  long long took = t1 - t0;
  atomic_store_explicit(ewma, old ? old + (took - old) / 4 : took,
                        memory_order_relaxed);

  if (rc < 0)
    emx__log(EMX_LOG_DEBUG, "%s: model %s: %s", dev->name, m->name, err.msg);
  emx__request_finish(req, rc, rc < 0 ? err.msg : NULL);
}

/* wait_for_work returns with dev->lock held and something to do (or
 * stopping). It polls briefly before sleeping; see IDLE_SPIN_NS. */
static void wait_for_work(emx__device *dev) {
  if (dev->queue.length || dev->ctl_head || dev->stopping)
    return;
  pthread_mutex_unlock(&dev->lock);
  int64_t until = emx_now_ns() + IDLE_SPIN_NS;
  while (atomic_load_explicit(&dev->pending, memory_order_acquire) == 0 &&
         emx_now_ns() < until) {
    for (int i = 0; i < 64; i++)
      emx__cpu_relax();
  }
  pthread_mutex_lock(&dev->lock);
  while (!dev->queue.length && !dev->ctl_head && !dev->stopping) {
    atomic_store(&dev->worker_idle, true);
    pthread_cond_wait(&dev->work_cv, &dev->lock);
    atomic_store(&dev->worker_idle, false);
  }
}

void *emx__worker_main(void *arg) {
  emx__device *dev = arg;
  pthread_mutex_lock(&dev->lock);
  for (;;) {
    wait_for_work(dev);
    if (dev->ctl_head) {
      emx__ctl *ctl = dev->ctl_head;
      dev->ctl_head = ctl->next;
      if (!dev->ctl_head)
        dev->ctl_tail = NULL;
      pthread_mutex_unlock(&dev->lock);
      run_ctl(dev, ctl);
      pthread_mutex_lock(&dev->lock);
      ctl->done = true;
      pthread_cond_broadcast(&dev->ctl_cv);
      continue;
    }
    emx__qlink *link = emx__queue_pick(&dev->queue);
    if (!link) /* stopping with an empty queue */
      break;
    atomic_store_explicit(&dev->pending, dev->queue.length,
                          memory_order_release);
    struct emx_request *req = from_link(link);
    atomic_fetch_sub(&req->model->queued, 1);
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
    if (req->deadline_ns && emx_now_ns() > req->deadline_ns) {
      pthread_mutex_unlock(&dev->lock);
      emx__request_finish(req, EMX_ETIMEDOUT,
                          "deadline passed while the request was queued; it "
                          "did not run");
      pthread_mutex_lock(&dev->lock);
      continue;
    }
    atomic_store_explicit(&dev->busy, 1, memory_order_relaxed);
    pthread_mutex_unlock(&dev->lock);
    run_request(dev, req);
    pthread_mutex_lock(&dev->lock);
    atomic_store_explicit(&dev->busy, 0, memory_order_relaxed);
  }
  pthread_mutex_unlock(&dev->lock);
  return NULL;
}

int emx__device_post_ctl(emx__device *dev, emx__ctl *ctl) {
  pthread_mutex_lock(&dev->lock);
  if (dev->stopping) {
    pthread_mutex_unlock(&dev->lock);
    return EMX_ESHUTDOWN;
  }
  ctl->done = false;
  ctl->next = NULL;
  if (dev->ctl_tail)
    dev->ctl_tail->next = ctl;
  else
    dev->ctl_head = ctl;
  dev->ctl_tail = ctl;
  pthread_cond_signal(&dev->work_cv);
  pthread_mutex_unlock(&dev->lock);
  return 0;
}
