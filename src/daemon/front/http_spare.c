/* http_spare.c — spare buffers for the HTTP door's request bodies and
 * output blocks. A keep-alive client posts requests of one size over and
 * over; a fresh malloc of a body that size (196 KB for a 128x128 RGB
 * float input) is memory glibc hands back to the kernel on free, so every
 * request paid for faulting in and zeroing its pages again. A few freed
 * buffers are kept instead and the next request takes one that fits. */
#include <stdlib.h>

#include "daemon/front/http_conn.h"

void *emxh__spare_take(struct emxd_http *h, size_t n, size_t *cap) {
  emxh_spares *s = &h->spares;
  void *buf = NULL;
  pthread_mutex_lock(&s->lock);
  size_t best = s->n;
  for (size_t i = 0; i < s->n; i++)
    if (s->cap[i] >= n && (best == s->n || s->cap[i] < s->cap[best]))
      best = i;
  if (best < s->n) {
    buf = s->buf[best];
    *cap = s->cap[best];
    s->n--;
    s->buf[best] = s->buf[s->n];
    s->cap[best] = s->cap[s->n];
  }
  pthread_mutex_unlock(&s->lock);
  if (!buf && (buf = malloc(n ? n : 1)))
    *cap = n ? n : 1;
  return buf;
}

void emxh__spare_give(struct emxd_http *h, void *buf, size_t cap) {
  if (!buf)
    return;
  emxh_spares *s = &h->spares;
  if (cap > EMXH_SPARE_MAX) { /* a model upload, say: not worth keeping */
    free(buf);
    return;
  }
  pthread_mutex_lock(&s->lock);
  if (s->n < EMXH_SPARES) {
    s->buf[s->n] = buf;
    s->cap[s->n++] = cap;
    buf = NULL;
  } else {
    /* Full: keep the larger ones, which serve more requests. */
    size_t small = 0;
    for (size_t i = 1; i < s->n; i++)
      if (s->cap[i] < s->cap[small])
        small = i;
    if (s->cap[small] < cap) {
      void *out = s->buf[small];
      s->buf[small] = buf;
      s->cap[small] = cap;
      buf = out;
    }
  }
  pthread_mutex_unlock(&s->lock);
  free(buf);
}

void emxh__spares_free(struct emxd_http *h) {
  emxh_spares *s = &h->spares;
  for (size_t i = 0; i < s->n; i++)
    free(s->buf[i]);
  s->n = 0;
  pthread_mutex_destroy(&s->lock);
}
