/* device.c — what submitters, loaders and a device's worker share: the
 * bookkeeping of its request queue and its mailbox of control tasks. Both
 * sides call down into this file; it calls nothing of the engine's. */
#include "engine/internal.h"

void emx__enqueue_locked(emx__device *dev, struct emx_request *r) {
  emx__queue_push(&dev->queue, &r->qlink, r->priority);
  atomic_fetch_add(&r->model->queued, 1);
  atomic_store_explicit(&dev->pending, dev->queue.length, memory_order_release);
}

void emx__dequeued_locked(emx__device *dev, struct emx_request *r) {
  atomic_fetch_sub(&r->model->queued, 1);
  atomic_store_explicit(&dev->pending, dev->queue.length, memory_order_release);
}

int emx__device_post_ctl(emx__device *dev, emx__ctl *ctl) {
  pthread_mutex_lock(&dev->lock);
  if (dev->stopping) {
    pthread_mutex_unlock(&dev->lock);
    return EMX_ESHUTDOWN;
  }
  ctl->done = false;
  ctl->deferred = false;
  ctl->started = false;
  ctl->timed_out = false;
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
