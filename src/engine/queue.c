/* queue.c — priority FIFO lists (see queue.h). */
#include "engine/queue.h"

void emx__queue_init(emx__queue *q) {
  for (int p = 0; p < EMX_PRIORITY_COUNT; p++)
    q->lists[p].prev = q->lists[p].next = &q->lists[p];
  q->length = 0;
}

void emx__queue_push(emx__queue *q, emx__qlink *link, int priority) {
  emx__qlink *head = &q->lists[priority];
  link->next = head;
  link->prev = head->prev;
  head->prev->next = link;
  head->prev = link;
  q->length++;
}

void emx__queue_remove(emx__queue *q, emx__qlink *link) {
  link->prev->next = link->next;
  link->next->prev = link->prev;
  link->prev = link->next = NULL;
  q->length--;
}

emx__qlink *emx__queue_pick(emx__queue *q) {
  for (int p = EMX_PRIORITY_COUNT - 1; p >= 0; p--) {
    emx__qlink *head = &q->lists[p];
    if (head->next != head) {
      emx__qlink *link = head->next;
      emx__queue_remove(q, link);
      return link;
    }
  }
  return NULL;
}
