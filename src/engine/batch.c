/* batch.c — dynamic batching: which queued requests share one invoke.
 *
 * When the worker picks a request whose model allows batching
 * (max_batch > 1), it also takes that model's other queued requests, in
 * scheduling order (priority, then arrival), up to max_batch; if there are
 * fewer than the largest batch it may use, it waits up to the model's
 * batch_delay_ns (counted from the oldest's submission) for more. The
 * gathered requests then run in invokes of emx__batch_size each, or back
 * to back where the device cannot resize the model: either way with no
 * other scheduling decision in between, so the batch a client submitted
 * together stays together. */
#include "core/clock.h"
#include "engine/internal.h"

/* target: the most requests one gather aims for. */
static size_t target(const emx_model *m) {
  size_t best = (size_t)m->max_batch;
  int last = 0;
  for (int i = 0; i < EMX_MAX_PREFERRED_BATCH && m->preferred_batch[i]; i++)
    last = m->preferred_batch[i];
  return last ? (size_t)last : best;
}

/* take_more unlinks up to `room` queued requests for model m that have not
 * expired, in the queue's priority-then-arrival order. */
static size_t take_more(emx__device *dev, emx_model *m, int64_t now,
                        struct emx_request **out, size_t room) {
  size_t n = 0;
  for (int p = EMX_PRIORITY_COUNT - 1; p >= 0 && n < room; p--) {
    emx__qlink *head = &dev->queue.lists[p];
    for (emx__qlink *l = head->next; l != head && n < room;) {
      emx__qlink *next = l->next;
      struct emx_request *r = emx__req_of(l);
      /* An expired one stays: the scheduler completes it with
       * EMX_ETIMEDOUT when it comes up, as for any request. */
      if (r->model == m && !emx__expired(r, now)) {
        emx__queue_remove(&dev->queue, l);
        emx__dequeued_locked(dev, r);
        atomic_store(&r->state, EMX__REQ_RUNNING);
        out[n++] = r;
      }
      l = next;
    }
  }
  return n;
}

size_t emx__batch_gather(emx__device *dev, struct emx_request **group) {
  emx_model *m = group[0]->model;
  size_t want = target(m);
  size_t n = 1;
  int64_t until =
      emx__deadline_after(group[0]->timings.submitted_ns, m->batch_delay_ns);
  for (;;) {
    size_t got = take_more(dev, m, emx__device_now(dev), group + n, want - n);
    if (got)
      pthread_cond_broadcast(&dev->space_cv);
    n += got;
    /* A virtual clock does not move while the worker waits: nothing could
     * arrive "in time" that is not queued already. */
    if (n >= want || dev->virtual_clock || dev->stopping ||
        atomic_load(&dev->engine->paused) || emx_now_ns() >= until)
      return n;
    struct timespec ts = emx__abstime(until);
    /* Submitters signal us. */
    atomic_store(&dev->worker_wait, EMX__WORKER_GATHERING);
    pthread_cond_timedwait(&dev->work_cv, &dev->lock, &ts);
    atomic_store(&dev->worker_wait, EMX__WORKER_RUNNING);
  }
}

size_t emx__batch_size(const emx_model *m, size_t left) {
  if (left > (size_t)m->max_batch)
    left = (size_t)m->max_batch;
  size_t best = 0;
  for (int i = 0; i < EMX_MAX_PREFERRED_BATCH && m->preferred_batch[i]; i++)
    if ((size_t)m->preferred_batch[i] <= left)
      best = (size_t)m->preferred_batch[i];
  return best ? best : left;
}
