/* zmq.c — the ZeroMQ front door: Frigate's zmq detector protocol, on a
 * thread of its own ("emx:zmq") with one ROUTER socket per --zmq endpoint.
 * This file runs the thread: it reads frames, hands them to the handshake
 * (zmq_handshake.c) or the infer (zmq_infer.c), answers finished frames and
 * frames past --zmq-timeout-ms. Peers and replies are zmq_peer.c. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include "core/clock.h"
#include "core/log.h"
#include "daemon/front/optlib.h"
#include "daemon/front/zmq_int.h"

/* One received message: up to four frames are used, the rest counted. */
typedef struct zmsg {
  zmq_msg_t f[4];
  size_t n;     /* frames kept in f */
  size_t extra; /* frames past f, dropped */
} zmsg;

static void zmsg_close(zmsg *m) {
  for (size_t i = 0; i < m->n; i++)
    zmq_msg_close(&m->f[i]);
  m->n = 0;
}

/* recv_msg reads one whole message without waiting; 0 none, 1 one.
 * Frames are received in place (a zmq_msg_t must not be copied by
 * assignment: zmq_msg_move is the only way to move one). */
static int recv_msg(void *sock, zmsg *m) {
  m->n = m->extra = 0;
  for (;;) {
    zmq_msg_t spare, *f = m->n < 4 ? &m->f[m->n] : &spare;
    zmq_msg_init(f);
    if (zmq_msg_recv(f, sock, m->n || m->extra ? 0 : ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(f);
      zmsg_close(m);
      return 0;
    }
    bool more = zmq_msg_more(f);
    if (f == &spare) {
      m->extra++;
      zmq_msg_close(f);
    } else {
      m->n++;
    }
    if (!more)
      return 1;
  }
}

/* header parses the JSON header frame; NULL when it is not an object. */
static json_t *header(zmq_msg_t *f) {
  size_t len = zmq_msg_size(f);
  if (len == 0 || len > EMXZ_MAX_HEADER)
    return NULL;
  json_t *doc = json_loadb(zmq_msg_data(f), len, JSON_REJECT_DUPLICATES, NULL);
  if (doc && !json_is_object(doc)) {
    json_decref(doc);
    return NULL;
  }
  return doc;
}

static void dispatch(struct emxd_zmq *z, size_t sock, zmsg *m) {
  /* [id, "", header, payload] from REQ; a DEALER may leave out "". */
  if (m->n < 2)
    return; /* no body: nothing to answer */
  bool delim = zmq_msg_size(&m->f[1]) == 0;
  size_t at = delim ? 2 : 1;
  zpeer *p = emxz_peer_get(z, sock, zmq_msg_data(&m->f[0]),
                           zmq_msg_size(&m->f[0]), delim);
  if (!p)
    return; /* refused and logged */
  if (p->waiting) {
    /* A new frame before the last was answered (REQ cannot; a relaxed
     * REQ or a DEALER can): the old answer is stale now, never sent. */
    emxd_client_cancel(p->cl, p->gen);
    p->waiting = false;
  }
  p->gen++;
  p->waiting = true;
  p->deadline_ns = emx_now_ns() + z->srv->opt->zmq_timeout_ns;
  p->last_ns = emx_now_ns();
  size_t parts = m->n - at + m->extra;
  json_t *hdr = parts >= 1 && parts <= 2 ? header(&m->f[at]) : NULL;
  if (!hdr) {
    emxz_zero_rows(p, "%zu frame(s) that are not a JSON header (+ one payload)",
                   parts);
    return;
  }
  const void *data = parts == 2 ? zmq_msg_data(&m->f[at + 1]) : NULL;
  size_t len = parts == 2 ? zmq_msg_size(&m->f[at + 1]) : 0;
  if (json_is_true(json_object_get(hdr, "model_request")) && parts == 1)
    emxz_handshake(p, hdr);
  else if (json_is_true(json_object_get(hdr, "model_data")) && parts == 2)
    emxz_push_model(p, hdr, data, len);
  else if (json_object_get(hdr, "shape") && parts == 2)
    emxz_infer(p, hdr, data, len);
  else
    emxz_zero_rows(p, "a header that is neither a model_request, model_data "
                      "with the model's bytes, nor shape/dtype with a frame");
  json_decref(hdr);
}

/* drain_done answers the frames the engine finished and the pushed models
 * the admin thread loaded. */
static void drain_done(struct emxd_zmq *z) {
  uint64_t n;
  if (read(z->wake_fd, &n, sizeof n) < 0) {
    /* EAGAIN: nothing new; the lists are checked anyway */
  }
  zreq *d;
  zanswer *a;
  emxz_take(z, &d, &a);
  while (d) {
    zreq *next = d->next;
    emxz_finish(z, d);
    d = next;
  }
  while (a) {
    zanswer *next = a->next;
    emxz_push_answered(z, a);
    a = next;
  }
}

/* check_deadlines answers zero rows to frames past the timeout; returns
 * the next deadline (INT64_MAX: none). */
static int64_t check_deadlines(struct emxd_zmq *z, int64_t now) {
  int64_t next = INT64_MAX;
  for (zpeer *p = z->peers; p; p = p->next) {
    if (!p->waiting)
      continue;
    if (p->deadline_ns <= now) {
      emxd_client_cancel(p->cl, p->gen);
      emxz_zero_rows(p,
                     "no answer within %lld ms (--zmq-timeout-ms): the "
                     "device is busy or slow",
                     (long long)(z->srv->opt->zmq_timeout_ns / 1000000));
    } else if (p->deadline_ns < next) {
      next = p->deadline_ns;
    }
  }
  return next;
}

static void *zmq_main(void *arg) {
  struct emxd_zmq *z = arg;
  zmq_pollitem_t items[EMXD_MAX_ZMQ + 1];
  size_t n = z->nsocks;
  for (size_t i = 0; i < n; i++)
    items[i] = (zmq_pollitem_t){.socket = z->socks[i], .events = ZMQ_POLLIN};
  items[n] = (zmq_pollitem_t){.fd = z->wake_fd, .events = ZMQ_POLLIN};
  int64_t sweep_at = emx_now_ns() + 1000000000;
  while (!atomic_load(&z->stop)) {
    int64_t now = emx_now_ns();
    int64_t next = check_deadlines(z, now);
    if (now >= sweep_at) {
      emxz_peers_sweep(z, now);
      sweep_at = now + 1000000000;
    }
    if (sweep_at < next)
      next = sweep_at;
    long timeout = (long)((next - now) / 1000000 + 1);
    if (zmq_poll(items, (int)n + 1, timeout) < 0) {
      if (zmq_errno() == EINTR)
        continue;
      if (zmq_errno() == ETERM)
        break;
      emx__log(EMX_LOG_ERROR, "zmq: poll: %s", zmq_strerror(zmq_errno()));
      break;
    }
    if (items[n].revents & ZMQ_POLLIN)
      drain_done(z);
    for (size_t i = 0; i < n; i++) {
      /* A bounded batch per socket, so one busy endpoint does not starve
       * the others or the done list. */
      zmsg m;
      for (int k = 0; k < 64 && recv_msg(z->socks[i], &m); k++) {
        dispatch(z, i, &m);
        zmsg_close(&m);
      }
    }
  }
  return NULL;
}

int emxd_zmq_start(emxd_server *srv, struct emxd_zmq **out, emx__errbuf *err) {
  int loaded = emxd_zmq_load(err);
  if (loaded < 0)
    return loaded;
  struct emxd_zmq *z = calloc(1, sizeof *z);
  if (!z)
    return emx__errf(err, EMX_ENOMEM, "out of memory");
  z->srv = srv;
  z->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  pthread_mutex_init(&z->lock, NULL);
  z->ctx = zmq_ctx_new();
  if (z->wake_fd < 0 || !z->ctx) {
    emxd_zmq_stop(z);
    return emx__errf(err, EMX_EIO, "zmq: cannot create its context: %s",
                     strerror(errno));
  }
  const emxd_options *o = srv->opt;
  /* A pushed model is the largest message a peer may send. */
  int64_t max_msg = (int64_t)o->max_client_model_bytes + EMXZ_MAX_HEADER;
  for (size_t i = 0; i < o->zmq_count; i++) {
    void *s = zmq_socket(z->ctx, ZMQ_ROUTER);
    int zero = 0;
    if (s) {
      z->socks[z->nsocks++] = s;
      zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
      zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg);
    }
    if (!s || zmq_bind(s, o->zmq_endpoints[i]) < 0) {
      int e = zmq_errno();
      emxd_zmq_stop(z);
      return emx__errf(err, EMX_EIO,
                       "--zmq %s: cannot bind: %s (for ipc://, the folder "
                       "must exist and be writable; for tcp://, the port "
                       "free)",
                       o->zmq_endpoints[i], zmq_strerror(e));
    }
  }
  if (pthread_create(&z->thread, NULL, zmq_main, z) != 0) {
    emxd_zmq_stop(z);
    return emx__errf(err, EMX_EIO, "zmq: cannot start its thread");
  }
  pthread_setname_np(z->thread, "emx:zmq");
  z->started = true;
  for (size_t i = 0; i < o->zmq_count; i++)
    emx__log(EMX_LOG_INFO, "zmq: Frigate detectors answered on %s",
             o->zmq_endpoints[i]);
  *out = z;
  return 0;
}

bool emxd_zmq_idle(struct emxd_zmq *z) {
  return !z || atomic_load(&z->inflight) == 0;
}

void emxd_zmq_stop(struct emxd_zmq *z) {
  if (!z)
    return;
  if (z->started) {
    atomic_store(&z->stop, true);
    emxz_wake(z);
    pthread_join(z->thread, NULL);
  }
  /* The engine has completed everything: what it finished is on the done
   * list, and no peer has a frame with it any more. */
  zreq *d;
  zanswer *a;
  emxz_take(z, &d, &a);
  while (d) {
    zreq *next = d->next;
    emxz_req_free(d);
    d = next;
  }
  while (a) {
    zanswer *next = a->next;
    emxd_model_put(a->m);
    free(a);
    a = next;
  }
  while (z->peers) {
    zpeer *p = z->peers;
    z->peers = p->next;
    emxz_peer_free(p);
  }
  for (size_t i = 0; i < z->nsocks; i++)
    zmq_close(z->socks[i]);
  if (z->ctx)
    zmq_ctx_term(z->ctx);
  if (z->wake_fd >= 0)
    close(z->wake_fd);
  pthread_mutex_destroy(&z->lock);
  free(z);
}
