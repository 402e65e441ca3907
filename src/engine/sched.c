/* sched.c — the scheduling policies: which queued request a device runs
 * next. Per device, from its spec:
 *   sched=fifo      highest priority first, arrival order within (default)
 *   sched=affinity  keep serving the model whose parameters are resident
 *                   while it has work, unless the oldest waiting request
 *                   has waited max_delay_ms (default 20): swaps amortised,
 *                   nobody starved
 *   sched=fair      within a priority, weighted fair queueing over
 *                   streams (round robin at equal weights; see
 *                   emx_stream_set_weight): a flooding client cannot
 *                   starve a light one
 * Called by the worker with dev->lock held. */
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"

/* The tag step of a weight-1 stream; divisible by every weight up to 16. */
#define FAIR_STRIDE 720720ULL

int emx__sched_parse(emx__devspec *spec, int *policy, int64_t *max_delay_ns,
                     emx__errbuf *err) {
  *policy = EMX__SCHED_FIFO;
  long ms = 20;
  const char *v = emx__devspec_str(spec, "sched");
  if (v) {
    if (strcmp(v, "fifo") == 0)
      *policy = EMX__SCHED_FIFO;
    else if (strcmp(v, "affinity") == 0)
      *policy = EMX__SCHED_AFFINITY;
    else if (strcmp(v, "fair") == 0)
      *policy = EMX__SCHED_FAIR;
    else
      return emx__errf(err, EMX_EINVAL,
                       "device spec \"%s\": sched must be fifo, affinity or "
                       "fair",
                       spec->text);
  }
  int rc = emx__devspec_int(spec, "max_delay_ms", 0, 3600000, &ms, err);
  *max_delay_ns = (int64_t)ms * 1000000;
  return rc;
}

static emx__qlink *first_list(emx__queue *q, int *prio) {
  for (int p = EMX_PRIORITY_COUNT - 1; p >= 0; p--)
    if (q->lists[p].next != &q->lists[p]) {
      *prio = p;
      return &q->lists[p];
    }
  return NULL;
}

emx__qlink *emx__sched_pick(emx__device *dev, int64_t now) {
  emx__queue *q = &dev->queue;
  if (dev->policy == EMX__SCHED_FIFO)
    return emx__queue_pick(q);
  int prio;
  emx__qlink *head = first_list(q, &prio);
  if (!head)
    return NULL;
  emx__qlink *pick = head->next; /* the oldest of the top priority */
  if (dev->policy == EMX__SCHED_AFFINITY) {
    struct emx_request *oldest = emx__req_of(pick);
    if (dev->resident && oldest->model != dev->resident &&
        now - oldest->timings.submitted_ns < dev->max_delay_ns) {
      for (emx__qlink *l = pick->next; l != head; l = l->next)
        if (emx__req_of(l)->model == dev->resident) {
          pick = l;
          break;
        }
    }
  } else { /* fair */
    /* Weighted fair queueing over streams: each stream carries a finish
     * tag; the request whose stream has the smallest tag (no smaller than
     * the device's virtual time, so an idle stream cannot bank credit)
     * goes next, the oldest on a tie, and its stream's tag advances by
     * STRIDE / weight. Equal weights give round robin; weight 3 gets three
     * turns to weight 1's one. Stream-less work shares one tag. */
    unsigned long long best = ~0ULL;
    for (emx__qlink *l = head->next; l != head; l = l->next) {
      emx_stream *s = emx__req_of(l)->stream;
      unsigned long long tag =
          s ? atomic_load_explicit(&s->finish, memory_order_relaxed)
            : dev->unordered_finish;
      if (tag < dev->fair_vtime)
        tag = dev->fair_vtime;
      if (tag < best) { /* strict: the oldest of that tag wins */
        best = tag;
        pick = l;
      }
    }
    emx_stream *s = emx__req_of(pick)->stream;
    unsigned w = s ? atomic_load_explicit(&s->weight, memory_order_relaxed) : 1;
    unsigned long long next = best + FAIR_STRIDE / (w ? w : 1);
    if (s)
      atomic_store_explicit(&s->finish, next, memory_order_relaxed);
    else
      dev->unordered_finish = next;
    dev->fair_vtime = best;
  }
  emx__queue_remove(q, pick);
  return pick;
}
