/* sched.c — the scheduling policies: which queued request a device runs
 * next. Per device, from its spec:
 *   sched=fifo      highest priority first, arrival order within (default,
 *                   but for cpu)
 *   sched=affinity  keep serving the model whose parameters are resident
 *                   while it has work, unless the oldest waiting request
 *                   has waited max_delay_ms (default 20): swaps amortised,
 *                   nobody starved
 *   sched=fair      within a priority, weighted fair queueing over
 *                   streams by device time (see emx_stream_set_weight):
 *                   each stream is charged the time its requests kept the
 *                   device, so a flooding client cannot starve a light
 *                   one, and a client of a 1 ms model gets as much device
 *                   time as one of an 8 ms model, as the OS would give
 *                   two processes (the default for cpu)
 * Called by the worker with dev->lock held. */
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"

/* Tags count device time: a weight-1 stream's tag advances FAIR_STRIDE
 * per FAIR_NS_PER_STRIDE of device time it used. The stride divides by
 * every weight up to 16, so small weights share exactly; 100 us per stride
 * keeps a tag below 2^64 for 8 years of one stream's device time. */
#define FAIR_STRIDE 72072ULL
#define FAIR_NS_PER_STRIDE 10000ULL

int emx__sched_parse(emx__devspec *spec, int *policy, int64_t *max_delay_ns,
                     int64_t *idle_release_ns, emx__errbuf *err) {
  /* A CPU pool's default is fair: its clients would otherwise get less
   * than separate processes get from the OS, which shares CPU time, not
   * turns (a client of a 1 ms model behind an 8 ms one's runs). Fair is
   * FIFO within a stream, and with one stream. */
  *policy = strcmp(spec->kind, "cpu") == 0 ? EMX__SCHED_FAIR : EMX__SCHED_FIFO;
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
  /* A copy of a large model is tens of MB and preparing it again tens of
   * ms: only a long idle time lets it go. */
  long idle_ms = 30000;
  if (rc == 0)
    rc = emx__devspec_int(spec, "idle_release_ms", 1, 86400000, &idle_ms, err);
  *idle_release_ns = (int64_t)idle_ms * 1000000;
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
     * goes next, the oldest on a tie. When it has run, emx__sched_charge
     * advances its stream's tag by the device time it took / weight: equal
     * weights and equal models give round robin; weight 3 gets three times
     * weight 1's device time; a light model's stream runs more often than
     * a heavy one's. Stream-less work shares one tag. */
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
    emx__req_of(pick)->fair_start = best;
    dev->fair_vtime = best;
  }
  emx__queue_remove(q, pick);
  return pick;
}

void emx__sched_charge(emx__device *dev, struct emx_request *r,
                       int64_t device_ns) {
  if (dev->policy != EMX__SCHED_FAIR)
    return;
  emx_stream *s = r->stream;
  unsigned w = s ? atomic_load_explicit(&s->weight, memory_order_relaxed) : 1;
  unsigned long long ns = device_ns > 0 ? (unsigned long long)device_ns : 0;
  /* At least 1: a run always moves its stream on, so ties cannot repeat. */
  unsigned long long cost =
      ns * (FAIR_STRIDE / (w ? w : 1)) / FAIR_NS_PER_STRIDE;
  cost = cost ? cost : 1;
  /* Requests a batch took along were not picked: they start where their
   * stream is. */
  unsigned long long start = r->fair_start;
  if (s) {
    unsigned long long cur =
        atomic_load_explicit(&s->finish, memory_order_relaxed);
    atomic_store_explicit(&s->finish, (cur > start ? cur : start) + cost,
                          memory_order_relaxed);
  } else {
    unsigned long long cur = dev->unordered_finish;
    dev->unordered_finish = (cur > start ? cur : start) + cost;
  }
}
