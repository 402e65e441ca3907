/* finish.c — the end of a request's life: its status, its delivery in
 * stream order (the completion callback, the waiters), and freeing it.
 * Called by the worker, by cancel and by submit; calls nothing above it. */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "engine/internal.h"

void emx__request_free(struct emx_request *r) {
  pthread_mutex_destroy(&r->lock);
  pthread_cond_destroy(&r->done_cv);
  free(r->error);
  free(r);
}

void emx__model_free(emx_model *m) {
  emx__model_desc_free(&m->desc);
  pthread_mutex_destroy(&m->lock);
  pthread_cond_destroy(&m->idle_cv);
  free(m->service_ewma_ns);
  free(m->tier);
  free(m->batch_ok);
  free(m->last_run_ns);
  free(m->mem_bytes);
  free(m->prep);
  free(m->data);
  free(m);
}

/* release_done: the last detached RELEASE of m ran (or none could be
 * posted). A device that refused one (shutting down) still holds its
 * prep: emx_engine_destroy releases that, with the workers gone. */
static void release_done(emx_model *m) {
  if (atomic_load(&m->release_partial))
    return;
  emx_engine *e = m->engine;
  pthread_mutex_lock(&e->lock);
  for (emx_model **p = &e->retiring; *p; p = &(*p)->next)
    if (*p == m) {
      *p = m->next;
      break;
    }
  pthread_mutex_unlock(&e->lock);
  emx__model_free(m);
}

void emx__model_retire(emx_model *m) {
  emx_engine *e = m->engine;
  atomic_store(&m->release_pending, 1); /* ours, until all are posted */
  for (size_t i = 0; i < e->device_count; i++) {
    if (m->tier[i] < 0)
      continue;
    emx__ctl *ctl = calloc(1, sizeof *ctl);
    if (ctl) {
      ctl->kind = EMX__CTL_RELEASE;
      ctl->model = m;
      ctl->detached = true;
      atomic_fetch_add(&m->release_pending, 1);
    }
    if (!ctl || emx__device_post_ctl(&e->devices[i], ctl) < 0) {
      if (ctl)
        atomic_fetch_sub(&m->release_pending, 1);
      free(ctl);
      atomic_store(&m->release_partial, true);
    }
  }
  if (atomic_fetch_sub(&m->release_pending, 1) == 1)
    release_done(m);
}

void emx__model_released(emx__ctl *ctl) {
  emx_model *m = ctl->model;
  free(ctl);
  if (atomic_fetch_sub(&m->release_pending, 1) == 1)
    release_done(m);
}

void emx__request_unref(struct emx_request *r) {
  if (atomic_fetch_sub(&r->refs, 1) == 1)
    emx__request_free(r);
}

/* deliver: the request's turn in its stream has come. */
static void deliver(struct emx_request *r) {
  emx_model *m = r->model;
  /* Submit → delivery; on a simulated clock, submit → finish (delivery
   * happens in real time). */
  int64_t now =
      atomic_load(&r->device)->virtual_clock ? r->done_ns : emx_now_ns();
  /* Release the model before the callback, so a callback can never hold
   * up an unload that waits for the model's requests; after this the
   * engine and model pointers are dead for this request. */
  pthread_mutex_lock(&m->lock);
  emx__counters_record(&m->stats, r->status, now - r->timings.submitted_ns,
                       r->timings.finished_ns
                           ? r->timings.finished_ns - r->timings.started_ns
                           : 0);
  bool retire = --m->inflight == 0 && m->unloaded && !m->releasing;
  if (retire)
    m->releasing = true;
  pthread_cond_broadcast(&m->idle_cv);
  pthread_mutex_unlock(&m->lock);
  if (retire)
    emx__model_retire(m); /* the last request of an unloaded model */
  r->engine = NULL;
  r->model = NULL;

  if (r->on_complete)
    r->on_complete(r, r->status, r->user);

  /* After COMPLETE the caller may destroy its handle at any moment. */
  pthread_mutex_lock(&r->lock);
  atomic_store_explicit(&r->state, EMX__REQ_COMPLETE, memory_order_release);
  if (r->sleepers)
    pthread_cond_broadcast(&r->done_cv);
  pthread_mutex_unlock(&r->lock);
  emx__request_unref(r);
}

void emx__stream_free(emx_stream *s) {
  pthread_mutex_destroy(&s->lock);
  free(s);
}

void emx__request_finish(struct emx_request *r, int status, const char *msg) {
  r->status = status;
  if (msg && status < 0)
    r->error = strdup(msg);
  emx__device *dev = atomic_load(&r->device);
  const emx_timings *t = &r->timings;
  r->done_ns = emx__device_now(dev);
  pthread_mutex_lock(&dev->lock);
  emx__counters_record(&dev->stats, status, r->done_ns - t->submitted_ns,
                       t->finished_ns ? t->finished_ns - t->started_ns : 0);
  pthread_mutex_unlock(&dev->lock);
  emx_stream *s = r->stream;
  if (!s) {
    atomic_store(&r->state, EMX__REQ_FINISHED);
    deliver(r);
    return;
  }
  /* Its hold on the queue ends with its status, not its delivery. */
  if (atomic_fetch_sub(&s->inflight, 1) == 1)
    atomic_fetch_sub(&s->engine->active_streams, 1);
  pthread_mutex_lock(&s->lock);
  atomic_store(&r->state, EMX__REQ_FINISHED);
  if (s->delivering) { /* the thread draining the stream will take it */
    pthread_mutex_unlock(&s->lock);
    return;
  }
  s->delivering = true;
  for (;;) {
    struct emx_request *h = s->head;
    if (!h || atomic_load(&h->state) != EMX__REQ_FINISHED)
      break;
    s->head = h->snext;
    if (!s->head)
      s->tail = NULL;
    /* Unlocked while delivering so a callback may submit on this stream;
     * `delivering` keeps any other finisher from overtaking us. */
    pthread_mutex_unlock(&s->lock);
    deliver(h);
    pthread_mutex_lock(&s->lock);
  }
  s->delivering = false;
  bool free_it = s->destroyed && !s->head;
  pthread_mutex_unlock(&s->lock);
  if (free_it)
    emx__stream_free(s);
}
