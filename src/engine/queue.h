/* queue.h — a device's request queue and the scheduler hook.
 *
 * Today's policy: highest priority first, arrival order within a priority.
 * Later policies (model affinity, batching, fair share) replace
 * emx__queue_pick; the queue keeps every request reachable so cancel can
 * unlink it in O(1). Not thread-safe: the device lock guards it. */
#ifndef EMX_ENGINE_QUEUE_H
#define EMX_ENGINE_QUEUE_H

#include <stddef.h>

#include "edgemux/edgemux.h"

typedef struct emx__qlink {
  struct emx__qlink *prev, *next; /* neighbours within one priority list */
} emx__qlink;

typedef struct emx__queue {
  emx__qlink lists[EMX_PRIORITY_COUNT]; /* circular, sentinel heads */
  size_t length;                        /* requests in all lists */
} emx__queue;

void emx__queue_init(emx__queue *q);

/* emx__queue_push appends link at the tail of its priority's list. */
void emx__queue_push(emx__queue *q, emx__qlink *link, int priority);

/* emx__queue_pick unlinks and returns the next link to serve, or NULL. */
emx__qlink *emx__queue_pick(emx__queue *q);

/* emx__queue_remove unlinks a queued link (cancel, expiry). */
void emx__queue_remove(emx__queue *q, emx__qlink *link);

#endif
