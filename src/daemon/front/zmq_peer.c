/* zmq_peer.c — the ZeroMQ door's peers (one per ROUTER routing id, each
 * an engine stream) and its replies. The door's thread only.
 *
 * A Frigate detector that times out closes its REQ socket and opens a new
 * one, which connects under a new routing id: a new peer. Whatever the old
 * one still had with the engine is answered to the old id, which ROUTER
 * drops, and the new peer's replies carry only its own frames (gen). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "core/clock.h"
#include "core/log.h"
#include "daemon/front/zmq_int.h"

static void on_done(void *door_ctx, const emxd_done *d);

/* The zmq thread frees a peer only when nothing of it is out (its
 * requests all came back), so release has nothing left to free. */
static void on_release(void *door_ctx) {
  (void)door_ctx;
}

static const emxd_door_ops door_ops = {on_done, on_release};

/* on_done runs on an engine worker: hand the frame to the thread. */
static void on_done(void *door_ctx, const emxd_done *d) {
  zpeer *p = door_ctx;
  zreq *r = d->tag;
  r->status = d->status;
  if (d->status < 0)
    snprintf(r->msg, sizeof r->msg, "%.*s", (int)d->msg_len, d->msg);
  emxz_post_done(p->z, r);
}

void emxz_peer_free(zpeer *p) {
  if (p->cl)
    emxd_client_close(p->cl);
  emxd_model_put(p->model);
  free(p);
}

/* evict forgets the longest-silent peer that has nothing out; false when
 * every peer is busy. */
static bool evict(struct emxd_zmq *z) {
  zpeer **best = NULL;
  for (zpeer **pp = &z->peers; *pp; pp = &(*pp)->next)
    if (!(*pp)->outstanding && !(*pp)->waiting &&
        (!best || (*pp)->last_ns < (*best)->last_ns))
      best = pp;
  if (!best)
    return false;
  zpeer *p = *best;
  *best = p->next;
  z->npeers--;
  emx__log(EMX_LOG_DEBUG, "zmq: %s forgotten (silent longest)", p->name);
  emxz_peer_free(p);
  return true;
}

zpeer *emxz_peer_get(struct emxd_zmq *z, size_t sock, const uint8_t *id,
                     size_t id_len, bool delim) {
  if (id_len > sizeof((zpeer *)0)->id)
    return NULL;
  for (zpeer *p = z->peers; p; p = p->next)
    if (p->sock == sock && p->id_len == id_len &&
        memcmp(p->id, id, id_len) == 0) {
      p->delim = delim;
      return p;
    }
  const emxd_options *o = z->srv->opt;
  zpeer *p = NULL;
  if ((z->npeers < o->zmq_max_peers || evict(z)) &&
      (p = calloc(1, sizeof *p))) {
    p->z = z;
    p->sock = sock;
    memcpy(p->id, id, id_len);
    p->id_len = id_len;
    p->delim = delim;
    p->last_ns = emx_now_ns();
    snprintf(p->name, sizeof p->name, "zmq peer %u on %s", ++z->next_peer,
             o->zmq_endpoints[sock]);
    emxd_peer who = {.door = EMXD_DOOR_ZMQ};
    snprintf(who.name, sizeof who.name, "%s", p->name);
    emx__errbuf err = {{0}};
    if (emxd_client_open(z->srv, &who, &door_ops, p, &p->cl, &err) < 0) {
      emx__log(EMX_LOG_WARN, "zmq: %s refused: %s", p->name, err.msg);
      free(p);
      p = NULL;
    } else {
      p->next = z->peers;
      z->peers = p;
      z->npeers++;
      emx__log(EMX_LOG_DEBUG, "zmq: %s connected", p->name);
      return p;
    }
  } else {
    emx__log(EMX_LOG_WARN,
             "zmq: a new detector socket refused: %zu are being served, "
             "all busy (--zmq-max-peers %u)",
             z->npeers, o->zmq_max_peers);
  }
  /* REQ waits for an answer: give it zero rows rather than a hang. */
  float zeros[EMXZ_ROWS * 6] = {0};
  void *s = z->socks[sock];
  zmq_send(s, id, id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
  if (delim)
    zmq_send(s, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
  zmq_send(s, zeros, sizeof zeros, ZMQ_DONTWAIT);
  return NULL;
}

void emxz_peers_sweep(struct emxd_zmq *z, int64_t now) {
  for (zpeer **pp = &z->peers; *pp;) {
    zpeer *p = *pp;
    if (!p->outstanding && !p->waiting && now - p->last_ns > EMXZ_IDLE_NS) {
      *pp = p->next;
      z->npeers--;
      emxz_peer_free(p);
    } else {
      pp = &p->next;
    }
  }
}

void emxz_reply(zpeer *p, const void *data, size_t len) {
  void *s = p->z->socks[p->sock];
  p->waiting = false;
  /* ROUTER never blocks: a peer gone or over its high-water mark loses
   * the message, which is what REQ's retry expects. */
  if (zmq_send(s, p->id, p->id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
    return;
  if (p->delim)
    zmq_send(s, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
  zmq_send(s, data, len, ZMQ_DONTWAIT);
}

void emxz_reply_json(zpeer *p, json_t *doc) {
  char *text = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  emxz_reply(p, text ? text : "{}", text ? strlen(text) : 2);
  free(text);
}

void emxz_zero_rows(zpeer *p, const char *fmt, ...) {
  struct emxd_zmq *z = p->z;
  float zeros[EMXZ_ROWS * 6] = {0};
  /* The line is written before the answer goes, so whoever sees zero rows
   * finds why in the log. One line a second at most: a stuck device would
   * log every frame of every camera otherwise. */
  int64_t now = emx_now_ns();
  if (now - z->log_ns < 1000000000) {
    z->log_skipped++;
    emxz_reply(p, zeros, sizeof zeros);
    return;
  }
  char why[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  if (z->log_skipped)
    emx__log(EMX_LOG_WARN,
             "zmq: %s: zero rows: %s (and %u more zero-row answers not "
             "logged in the last second)",
             p->name, why, z->log_skipped);
  else
    emx__log(EMX_LOG_WARN, "zmq: %s: zero rows: %s", p->name, why);
  z->log_ns = now;
  z->log_skipped = 0;
  emxz_reply(p, zeros, sizeof zeros);
}
