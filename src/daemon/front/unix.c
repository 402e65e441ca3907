/* unix.c — the Unix-socket front door: one SEQPACKET connection per
 * client, its handshake and memfd arena, wire decode and encode, and
 * replies (one COMPLETE each, or a BATCH's together as COMPLETE_MANY).
 * Admission, submission, completion and teardown are path.c's; model
 * messages (OPEN, LIST, LOAD_BYTES, UNLOAD) are unix_models.c's. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/name.h"
#include "core/arena.h"
#include "core/sock.h"
#include "daemon/front/unix.h"
#include "daemon/front/unix_int.h"
#include "wire/wire.h"

/* Packets read per wake-up before yielding to other clients: one flooding
 * client cannot monopolise the I/O thread. */
#define READ_BUDGET 64

/* A BATCH's replies travel together, as one COMPLETE_MANY, when the
 * client accepts that: its requests complete in stream order, so the group
 * fills in order and goes out with its last completion (or sooner, when
 * the next record would not fit in one packet). One message instead of
 * one per request: fewer sends for the worker, fewer wake-ups for the
 * client. Guarded by the session's lock. */
typedef struct emxd_group {
  size_t left;     /* completions still to come, +1 while being queued */
  uint32_t count;  /* records in the packet being built */
  emx__wire_buf b; /* that packet */
  _Alignas(8) uint8_t data[EMX_WIRE_MAX_MSG];
} emxd_group;

/* The I/O thread's receive buffer: one packet at a time, 8-byte aligned so
 * decoded structs can be read in place. */
static _Alignas(8) uint8_t rxbuf[EMX_WIRE_MAX_MSG + 8];

/* release: the path's last reference is gone, so no request can touch
 * the arena any more. */
static void session_release(void *ctx) {
  emxd_session *s = ctx;
  emx__arena_close(&s->arena);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

static void group_start(emxd_group *g) {
  emx__wire_begin(&g->b, g->data, EMX_WIRE_COMPLETE_MANY, 0);
  emx__wire_put(&g->b, NULL, sizeof(emx__wire_many));
  g->count = 0;
}

static void group_flush_locked(emxd_session *s, emxd_group *g) {
  if (g->count == 0)
    return;
  emx__wire_many h = {.count = g->count};
  memcpy(g->data + sizeof(emx__wire_hdr), &h, sizeof h);
  emxd__unix_send_locked(s, g->data, emx__wire_end(&g->b));
  group_start(g);
}

/* group_drop_locked: n fewer completions to wait for (requests done, or
 * never submitted, or the group's own 1); at none left it sends what is
 * left and frees the group. */
static void group_drop_locked(emxd_session *s, emxd_group *g, size_t n) {
  g->left -= n;
  if (g->left)
    return;
  group_flush_locked(s, g);
  free(g);
}

static void group_add_locked(emxd_session *s, emxd_group *g, uint64_t id,
                             const emx__wire_complete *w, const char *msg) {
  size_t need = sizeof(emx__wire_many_rec) + EMX_WIRE_PAD8(w->msg_len);
  if (g->b.len + need > EMX_WIRE_MAX_MSG || g->count == EMX_WIRE_MAX_BATCH)
    group_flush_locked(s, g);
  emx__wire_many_rec r = {.id = id, .c = *w};
  emx__wire_put(&g->b, &r, sizeof r);
  emx__wire_put(&g->b, msg, w->msg_len);
  g->count++;
  group_drop_locked(s, g, 1);
}

/* on_done runs on an engine worker, in this session's stream order. */
static void on_done(void *ctx, const emxd_done *d) {
  emxd_session *s = ctx;
  emx__wire_complete w = {.status = d->status,
                          .device = d->device,
                          .queue_ns = d->queue_ns,
                          .device_ns = d->device_ns,
                          .total_ns = d->total_ns,
                          .msg_len = (uint32_t)d->msg_len,
                          .batch = d->batch};
  emxd_group *g = d->tag;
  pthread_mutex_lock(&s->lock);
  if (g) {
    group_add_locked(s, g, d->id, &w, d->msg);
  } else {
    _Alignas(8) uint8_t buf[1024];
    emx__wire_buf b;
    emx__wire_begin(&b, buf, EMX_WIRE_COMPLETE, d->id);
    emx__wire_put(&b, &w, sizeof w);
    emx__wire_put(&b, d->msg, d->msg_len);
    emxd__unix_send_locked(s, buf, emx__wire_end(&b));
  }
  pthread_mutex_unlock(&s->lock);
}

static const emxd_door_ops unix_ops = {.done = on_done,
                                       .release = session_release};

/* batch_model: the model of a BATCH's requests, looked up once for the
 * run of requests that name it (usually the whole BATCH) rather than once
 * each: every lookup takes the model table's lock and two reference
 * counts the worker also writes. The BATCH holds its reference. */
typedef struct batch_model {
  uint32_t id;
  emxd_model *m; /* NULL: none looked up yet, or the id is unknown */
  bool looked;
} batch_model;

static emxd_model *batch_model_get(emxd_server *srv, batch_model *bm,
                                   uint32_t id) {
  if (!bm->looked || bm->id != id) {
    emxd_model_put(bm->m);
    bm->m = emxd_model_get_id(srv, id);
    bm->id = id;
    bm->looked = true;
  }
  return bm->m;
}

/* handle_infer queues one request. Returns -1 when the message is hostile
 * (a ref outside the arena) and the connection must go. A BATCH's request
 * comes with its group g, which already counts it, and with bm, the
 * BATCH's model lookup; a lone INFER has neither. */
static int handle_infer(emxd_session *s, const emx__wire_req *wr, emxd_group *g,
                        batch_model *bm) {
  const emx__wire_infer *in = wr->infer;
  size_t n = (size_t)in->nin + in->nout;
  for (size_t i = 0; i < n; i++) {
    if (!emx__wire_ref_ok(&wr->refs[i], s->arena.size)) {
      emx__log(EMX_LOG_WARN,
               "session %u (pid %d): request %llu tensor %zu at [%llu, "
               "+%llu) lies outside the %llu-byte arena; dropping the "
               "connection",
               s->id, (int)s->pid, (unsigned long long)wr->id, i,
               (unsigned long long)wr->refs[i].offset,
               (unsigned long long)wr->refs[i].length,
               (unsigned long long)s->arena.size);
      return -1;
    }
  }
  emxd_model *m = bm ? batch_model_get(s->srv, bm, in->model)
                     : emxd_model_get_id(s->srv, in->model);
  if (!m) {
    char msg[160];
    snprintf(msg, sizeof msg,
             "unknown model id %u: OPEN the model by name first (it may have "
             "been unloaded)",
             in->model);
    if (g) {
      pthread_mutex_lock(&s->lock);
      group_drop_locked(s, g, 1);
      pthread_mutex_unlock(&s->lock);
    }
    emxd__unix_error(s, wr->id, EMX_ENOENT, msg);
    return 0;
  }
  emx_tensor tensors[2 * EMX_WIRE_MAX_TENSORS];
  for (size_t i = 0; i < n; i++) {
    tensors[i].dtype = (emx_dtype)wr->refs[i].dtype;
    tensors[i].data = (uint8_t *)s->arena.base + wr->refs[i].offset;
    tensors[i].size = (size_t)wr->refs[i].length;
  }
  emxd_call_desc d = {.id = wr->id,
                      .tag = g,
                      .model = m,
                      .inputs = tensors,
                      .input_count = in->nin,
                      .outputs = tensors + in->nin,
                      .output_count = in->nout,
                      .priority = in->priority,
                      .timeout_ns = in->timeout_ns};
  emx__errbuf err;
  err.msg[0] = '\0';
  int rc = emxd_client_submit(s->cl, &d, &err);
  if (!bm)
    emxd_model_put(m);
  if (rc < 0) {
    if (g) {
      pthread_mutex_lock(&s->lock);
      group_drop_locked(s, g, 1);
      pthread_mutex_unlock(&s->lock);
    }
    emxd__unix_error(s, wr->id, rc, err.msg);
  }
  return 0;
}

/* uid_arena_bytes: arena bytes the connections of uid hold (I/O
 * thread: the session list is its own). */
static uint64_t uid_arena_bytes(emxd_server *srv, uid_t uid) {
  uint64_t sum = 0;
  for (emxd_session *it = srv->sessions; it; it = it->next)
    if (it->hello_done && it->peer.uid == uid)
      sum += it->arena.size;
  return sum;
}

static size_t incomplete_count(emxd_server *srv) {
  size_t n = 0;
  for (emxd_session *it = srv->sessions; it; it = it->next)
    n += !it->hello_done;
  return n;
}

/* refuse_now: an ERROR (request id 0: no hello was read yet) that says
 * why, then close. Best effort: a full socket buffer just closes. */
static void refuse_now(int fd, int status, const char *msg) {
  _Alignas(8) uint8_t buf[1024];
  emx__wire_buf b;
  size_t mlen = strnlen(msg, 900);
  emx__wire_begin(&b, buf, EMX_WIRE_ERROR, 0);
  emx__wire_error e = {.status = status, .msg_len = (uint32_t)mlen};
  emx__wire_put(&b, &e, sizeof e);
  emx__wire_put(&b, msg, mlen);
  emx__sock_send(fd, buf, emx__wire_end(&b), -1, MSG_DONTWAIT);
  close(fd);
}

/* reply_status answers STATUS from line `first` on, whole lines only; when
 * the rest does not fit it ends with "truncated N" (N: the next line to
 * ask for), which an old client prints and a new one follows. */
static void reply_status(emxd_session *s, uint64_t id, uint32_t first) {
  size_t cap = 1u << 16, n;
  char *txt = NULL;
  for (;;) { /* the text grows with the models: size it, then page it */
    char *t = realloc(txt, cap);
    if (!t) {
      free(txt);
      emxd__unix_error(s, id, EMX_ENOMEM, "out of memory building status");
      return;
    }
    txt = t;
    n = emxd_status_text(s->srv, txt, cap);
    if (n + 1 < cap || cap >= (1u << 28))
      break;
    cap *= 2;
  }
  const char *p = txt, *end = txt + n;
  for (uint32_t i = 0; i < first && p < end; i++) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    p = nl ? nl + 1 : end;
  }
  const size_t room = EMX_WIRE_MAX_TEXT - 32; /* for the trailer */
  const char *q = p;
  uint32_t line = first;
  while (q < end) {
    const char *nl = memchr(q, '\n', (size_t)(end - q));
    const char *eol = nl ? nl + 1 : end;
    if ((size_t)(eol - p) > room)
      break;
    q = eol;
    line++;
  }
  if (q == p && q < end) /* one line longer than a page: cut it */
    q = p + room;
  char trailer[32] = "";
  if (q < end)
    snprintf(trailer, sizeof trailer, "truncated %u\n", line);
  emx__wire_buf b;
  emx__wire_begin(&b, rxbuf, EMX_WIRE_STATUS_OK, id);
  uint8_t *body = emx__wire_put(&b, NULL, (size_t)(q - p) + strlen(trailer));
  if (body) {
    memcpy(body, p, (size_t)(q - p));
    memcpy(body + (q - p), trailer, strlen(trailer));
  }
  free(txt);
  /* The text is padded to 8 with NULs, which readers strip. */
  emxd__unix_send(s, rxbuf, emx__wire_end(&b));
}

static int handle_hello(emxd_session *s, const emx__wire_msg *m, int *fds,
                        int nfds) {
  emxd_server *srv = s->srv;
  emx__errbuf err = {{0}};
  const emx__wire_hello *h = m->u.hello;
  if (h->proto != EMX_WIRE_VERSION) {
    snprintf(err.msg, sizeof err.msg,
             "client speaks protocol %u; this daemon speaks %d", h->proto,
             EMX_WIRE_VERSION);
    goto refuse;
  }
  if (h->arena_size == 0 ? nfds != 0 : nfds != 1) {
    snprintf(err.msg, sizeof err.msg,
             "hello with arena_size %llu must carry %s",
             (unsigned long long)h->arena_size,
             h->arena_size ? "exactly one fd" : "no fd");
    goto refuse;
  }
  if (nfds == 1) {
    uint64_t used = uid_arena_bytes(srv, s->peer.uid);
    uint64_t budget = srv->opt->max_arena_per_uid;
    /* An arena past --max-arena-bytes is a protocol matter, below. */
    if (h->arena_size <= srv->opt->max_arena &&
        (h->arena_size > budget || used > budget - h->arena_size)) {
      /* A peer can repeat this at will: a rate-limited line. */
      static emx__ratelimit rl;
      snprintf(err.msg, sizeof err.msg,
               "arena of %llu bytes refused: uid %d's connections already "
               "hold %llu of their %llu-byte budget "
               "(--max-arena-bytes-per-uid)",
               (unsigned long long)h->arena_size, (int)s->peer.uid,
               (unsigned long long)used, (unsigned long long)budget);
      emx__log_limited(&rl, EMX_LOG_WARN, "session %u (pid %d): %s", s->id,
                       (int)s->pid, err.msg);
      emxd__unix_error(s, m->hdr.id, EMX_EBUSY, err.msg);
      return -1;
    }
    int fd = fds[0];
    fds[0] = -1; /* owned by the arena (closed on failure) */
    if (emx__arena_accept(&s->arena, fd, h->arena_size, srv->opt->max_arena,
                          &err) < 0)
      goto refuse;
  }
  /* Only a connection that said hello counts for its uid (dbus counts
   * incomplete connections apart, --max-incomplete-conns). */
  int rc = emxd_client_open(srv, &s->peer, &unix_ops, s, &s->cl, &err);
  if (rc < 0) {
    static emx__ratelimit rl;
    emx__log_limited(&rl, EMX_LOG_WARN,
                     "session %u: refusing pid %d uid %d: %s", s->id,
                     (int)s->pid, (int)s->peer.uid, err.msg);
    /* EMX_EBUSY or EMX_ESHUTDOWN; the client reports the text, which
     * names the limit and its flag. */
    emxd__unix_error(s, m->hdr.id, rc, err.msg);
    return -1;
  }
  s->hello_done = true;
  s->complete_many = (h->flags & EMX_WIRE_HELLO_COMPLETE_MANY) != 0;
  s->paged = (h->flags & EMX_WIRE_HELLO_PAGED) != 0;
  /* HELLO's pid is the client's say-so; SO_PEERCRED's (s->pid) is the
   * kernel's and stays the one in logs. */
  _Alignas(8) uint8_t buf[128];
  emx__wire_buf b;
  emx__wire_begin(&b, buf, EMX_WIRE_HELLO_OK, m->hdr.id);
  emx__wire_hello_ok ok = {.proto = EMX_WIRE_VERSION,
                           .max_inflight = srv->opt->max_inflight,
                           .max_arena = srv->opt->max_arena,
                           .max_batch = EMX_WIRE_MAX_BATCH,
                           .session = s->id};
  snprintf(ok.server, sizeof ok.server, "%s", emx_version());
  emx__wire_put(&b, &ok, sizeof ok);
  emxd__unix_send(s, buf, emx__wire_end(&b));
  emx__log(EMX_LOG_INFO,
           "session %u: hello from pid %d uid %d, arena %llu "
           "bytes",
           s->id, (int)s->pid, (int)s->peer.uid,
           (unsigned long long)s->arena.size);
  return 0;
refuse:
  emx__log(EMX_LOG_WARN, "session %u (pid %d): hello refused: %s", s->id,
           (int)s->pid, err.msg);
  emxd__unix_error(s, m->hdr.id, EMX_EPROTO, err.msg);
  return -1;
}

/* dispatch handles one decoded packet; -1 drops the connection. */
static int dispatch(emxd_session *s, const emx__wire_msg *m, int *fds,
                    int nfds) {
  emxd_server *srv = s->srv;
  if (!s->hello_done) {
    if (m->hdr.type != EMX_WIRE_HELLO) {
      emx__log(EMX_LOG_WARN,
               "session %u: message type %u before hello; "
               "dropping",
               s->id, m->hdr.type);
      return -1;
    }
    return handle_hello(s, m, fds, nfds);
  }
  if (m->hdr.type == EMX_WIRE_LOAD_BYTES)
    return emxd__unix_load_bytes(s, m, fds, nfds);
  if (nfds) {
    emx__log(EMX_LOG_WARN,
             "session %u (pid %d): unexpected file descriptor "
             "with message type %u; dropping",
             s->id, (int)s->pid, m->hdr.type);
    return -1;
  }
  char name[EMX_WIRE_MAX_NAME + 1];
  emx__errbuf err = {{0}};
  switch (m->hdr.type) {
  case EMX_WIRE_INFER:
    return handle_infer(s, &m->u.infer, NULL, NULL);
  case EMX_WIRE_BATCH: {
    /* The group counts all its requests before the first is submitted
     * (the first may complete before the next is read), plus its own 1,
     * which keeps it alive until they are all queued; each request that
     * is not submitted is dropped from the count. One count up front
     * rather than one per request: the worker completing the first ones
     * takes the same lock. */
    emxd_group *g = NULL;
    size_t count = m->u.batch.count, handled = 0;
    if (s->complete_many && count > 1 && (g = malloc(sizeof *g))) {
      g->left = count + 1;
      group_start(g);
    }
    batch_model bm = {0};
    size_t cursor = 0;
    emx__wire_req req;
    int rc = 0;
    while (rc == 0 && handled < count &&
           emx__wire_batch_next(m, &cursor, &req)) {
      handled++;
      rc = handle_infer(s, &req, g, &bm);
    }
    emxd_model_put(bm.m);
    if (g) {
      /* rc < 0 (the rest are not read) or a short BATCH: their counts go
       * with the group's own. A hostile request was counted and never
       * submitted too. */
      size_t unsent = count - handled + (rc < 0 ? 1 : 0);
      pthread_mutex_lock(&s->lock);
      group_drop_locked(s, g, unsent + 1);
      pthread_mutex_unlock(&s->lock);
    }
    return rc;
  }
  case EMX_WIRE_CANCEL:
    /* Not found: already complete, its COMPLETE is on the way. */
    emxd_client_cancel(s->cl, m->hdr.id);
    return 0;
  case EMX_WIRE_PING: {
    _Alignas(8) uint8_t buf[16];
    emx__wire_buf b;
    emx__wire_begin(&b, buf, EMX_WIRE_PONG, m->hdr.id);
    emxd__unix_send(s, buf, emx__wire_end(&b));
    return 0;
  }
  case EMX_WIRE_OPEN: {
    memcpy(name, m->u.name.name, m->u.name.len);
    name[m->u.name.len] = '\0';
    emxd_model *model = emxd_model_get(srv, name);
    if (model) {
      emxd__unix_reply_model(s, m->hdr.id, model);
      emxd_model_put(model);
    } else {
      char safe[4 * EMX_WIRE_MAX_NAME + 1];
      snprintf(err.msg, sizeof err.msg,
               "no model named \"%s\" (list them with `edgemux models`)",
               emx__escape(name, m->u.name.len, safe, sizeof safe));
      emxd__unix_error(s, m->hdr.id, EMX_ENOENT, err.msg);
    }
    return 0;
  }
  case EMX_WIRE_LOAD:
    emxd__unix_error(
        s, m->hdr.id, EMX_EUNSUPPORTED,
        "LOAD by path is gone: the daemon never opens a client's "
        "path; send the bytes (LOAD_BYTES; emx_client_model_load does "
        "so from edgemux 0.2 on)");
    return 0;
  case EMX_WIRE_UNLOAD:
    emxd__unix_unload(s, m);
    return 0;
  case EMX_WIRE_LIST:
    emxd__unix_reply_models(s, m->hdr.id, m->u.page);
    return 0;
  case EMX_WIRE_STATUS:
    reply_status(s, m->hdr.id, m->u.page);
    return 0;
  case EMX_WIRE_METRICS: {
    /* The text /metrics serves, for `edgemux status --prometheus`. */
    size_t n = 0;
    char *txt = emxd_metrics_text(srv, &n);
    if (!txt || n > EMX_WIRE_MAX_TEXT) {
      emxd__unix_error(s, m->hdr.id, txt ? EMX_ESIZE : EMX_ENOMEM,
                       txt ? "the metrics text is larger than a message "
                             "holds: scrape /metrics over HTTP (--metrics "
                             "[ADDR:]PORT)"
                           : "out of memory building the metrics text");
      free(txt);
      return 0;
    }
    emx__wire_buf b;
    emx__wire_begin(&b, rxbuf, EMX_WIRE_STATUS_OK, m->hdr.id);
    emx__wire_put(&b, txt, n);
    free(txt);
    emxd__unix_send(s, rxbuf, emx__wire_end(&b));
    return 0;
  }
  default:
    emx__log(EMX_LOG_WARN,
             "session %u (pid %d): message type %u is not for "
             "the daemon; dropping",
             s->id, (int)s->pid, m->hdr.type);
    return -1;
  }
}

/* emxd_session_read handles up to `budget` packets; returns false when the
 * session was closed (it is then freed or about to be). */
bool emxd_session_read(emxd_session *s, size_t budget) {
  for (; budget > 0; budget--) {
    int fds[EMX__SOCK_MAX_FDS];
    int nfds = 0;
    ssize_t n = emx__sock_recv(s->fd, rxbuf, EMX_WIRE_MAX_MSG + 1, fds, &nfds,
                               MSG_DONTWAIT);
    if (n == -EAGAIN)
      return true;
    if (n == 0 || n == -ECONNRESET || n == -EPIPE) {
      emxd_session_close(s, NULL);
      return false;
    }
    if (n < 0) {
      char why[96];
      snprintf(why, sizeof why, "%s",
               n == -EMSGSIZE ? "oversized packet"
               : n == -EPROTO ? "truncated control data (MSG_CTRUNC)"
                              : strerror((int)-n));
      emxd_session_close(s, why);
      return false;
    }
    emx__wire_msg m;
    emx__errbuf err = {{0}};
    int rc = emx__wire_decode(rxbuf, (size_t)n, &m, &err);
    bool decoded = rc == 0;
    if (decoded)
      rc = dispatch(s, &m, fds, nfds);
    for (int i = 0; i < nfds; i++)
      if (fds[i] >= 0)
        close(fds[i]);
    if (rc < 0) {
      /* One log line per dropped connection: dispatch has logged its own
       * reason; a decode failure is logged here. */
      emxd_session_close(s, decoded ? "" : err.msg);
      return false;
    }
  }
  return true;
}

static void session_writable(emxd_session *s) {
  pthread_mutex_lock(&s->lock);
  while (s->out_head && !s->dead) {
    emxd_packet *p = s->out_head;
    ssize_t n = emx__sock_send(s->fd, p->data, p->len, -1, MSG_DONTWAIT);
    if (n == -EAGAIN || n == -ENOBUFS)
      break;
    s->out_head = p->next;
    if (!s->out_head)
      s->out_tail = NULL;
    s->out_bytes -= p->len;
    free(p);
    if (n < 0)
      break; /* peer gone; the hang-up closes the session */
  }
  if (!s->out_head && s->want_write && !s->dead) {
    s->want_write = false;
    emxd__unix_arm_locked(s);
  }
  pthread_mutex_unlock(&s->lock);
}

static bool group_allowed(const emxd_options *o, gid_t gid) {
  if (gid == getegid())
    return true;
  for (size_t i = 0; i < o->allow_gid_count; i++)
    if (o->allow_gids[i] == gid)
      return true;
  return false;
}

void emxd_session_accept(emxd_server *srv, int fd) {
  struct ucred cred;
  socklen_t clen = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
    emx__log(EMX_LOG_WARN, "SO_PEERCRED: %s; refusing connection",
             strerror(errno));
    close(fd);
    return;
  }
  const emxd_options *o = srv->opt;
  bool allowed =
      cred.uid == 0 || cred.uid == geteuid() || group_allowed(o, cred.gid);
  for (size_t i = 0; i < o->allow_uid_count; i++)
    allowed |= o->allow_uids[i] == cred.uid;
  if (!allowed) {
    /* Membership of the socket's group is usually supplementary, which
     * SO_PEERCRED does not show; SO_PEERGROUPS (Linux 4.13) does. */
    gid_t groups[64];
    socklen_t glen = sizeof groups;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0)
      for (size_t i = 0; i < glen / sizeof(gid_t) && !allowed; i++)
        allowed = group_allowed(o, groups[i]);
  }
  char msg[256];
  if (!allowed) {
    static emx__ratelimit rl;
    snprintf(msg, sizeof msg,
             "uid %d gid %d is not allowed to use this edgemuxd "
             "(--allow-uid/--allow-gid): join an allowed group, e.g. "
             "usermod -aG edgemux USER, then log in again",
             (int)cred.uid, (int)cred.gid);
    emx__log_limited(&rl, EMX_LOG_WARN, "refusing pid %d: %s", (int)cred.pid,
                     msg);
    refuse_now(fd, EMX_EDISCONNECTED, msg);
    return;
  }
  if (incomplete_count(srv) >= o->max_incomplete_conns) {
    static emx__ratelimit rl;
    snprintf(msg, sizeof msg,
             "too many connections that have not said hello yet (%u; "
             "--max-incomplete-conns)",
             o->max_incomplete_conns);
    emx__log_limited(&rl, EMX_LOG_WARN, "refusing pid %d uid %d: %s",
                     (int)cred.pid, (int)cred.uid, msg);
    refuse_now(fd, EMX_EBUSY, msg);
    return;
  }
  emxd_session *s = calloc(1, sizeof *s);
  if (!s) {
    close(fd);
    return;
  }
  s->peer = (emxd_peer){.door = EMXD_DOOR_UNIX,
                        .uid_known = true,
                        .uid = cred.uid,
                        .gid = cred.gid,
                        .pid = cred.pid};
  snprintf(s->peer.name, sizeof s->peer.name, "pid %d uid %d", (int)cred.pid,
           (int)cred.uid);
  s->srv = srv;
  s->fd = fd;
  s->id = ++srv->next_session_id;
  s->pid = cred.pid;
  s->arena.fd = -1;
  s->ev.kind = EMXD_EV_SESSION;
  s->ev.ptr = s;
  s->reading = true;
  s->hello_deadline =
      emx__deadline_after(emx_now_ns(), o->handshake_timeout_ns);
  pthread_mutex_init(&s->lock, NULL);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->ev};
  if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    emx__log(EMX_LOG_ERROR, "epoll_ctl: %s", strerror(errno));
    close(fd);
    s->fd = -1;
    session_release(s);
    return;
  }
  s->next = srv->sessions;
  srv->sessions = s;
  emx__log(EMX_LOG_DEBUG, "session %u: connection from pid %d", s->id,
           (int)s->pid);
}

void emxd_session_close(emxd_session *s, const char *why) {
  emxd_server *srv = s->srv;
  if (why && *why)
    emx__log(EMX_LOG_WARN,
             "session %u (pid %d): %s; dropping the "
             "connection",
             s->id, (int)s->pid, why);
  else if (!why)
    emx__log(EMX_LOG_INFO, "session %u (pid %d): closed", s->id, (int)s->pid);
  for (emxd_session **p = &srv->sessions; *p; p = &(*p)->next)
    if (*p == s) {
      *p = s->next;
      break;
    }

  /* Stop replies, then cancel what is still queued: it will never run.
   * Running requests finish into the arena, which lives until the last one
   * completes. */
  pthread_mutex_lock(&s->lock);
  epoll_ctl(srv->epfd, EPOLL_CTL_DEL, s->fd, NULL);
  s->dead = true;
  close(s->fd);
  s->fd = -1;
  while (s->out_head) {
    emxd_packet *p = s->out_head;
    s->out_head = p->next;
    free(p);
  }
  s->out_tail = NULL;
  s->out_bytes = 0;
  pthread_mutex_unlock(&s->lock);
  if (s->cl)
    emxd_client_close(s->cl); /* s lives until its last request completes */
  else
    session_release(s); /* no hello, so no request ever */
  emxd_listen_resume(srv);
}

int64_t emxd_session_check_timeouts(emxd_server *srv, int64_t now) {
  int64_t next = INT64_MAX;
  emxd_session *s = srv->sessions;
  while (s) {
    emxd_session *following = s->next;
    if (!s->hello_done) {
      if (now >= s->hello_deadline)
        emxd_session_close(s, "no hello within the handshake timeout");
      else if (s->hello_deadline < next)
        next = s->hello_deadline;
    }
    s = following;
  }
  return next;
}

static bool session_idle(emxd_session *s) {
  if (s->cl && emxd_client_inflight(s->cl))
    return false;
  pthread_mutex_lock(&s->lock);
  bool idle = !s->out_head;
  pthread_mutex_unlock(&s->lock);
  return idle;
}

bool emxd_sessions_idle(emxd_server *srv) {
  for (emxd_session *s = srv->sessions; s; s = s->next)
    if (!session_idle(s))
      return false;
  return true;
}

static void stop_reading(emxd_session *s) {
  pthread_mutex_lock(&s->lock);
  if (s->reading && !s->dead) {
    s->reading = false;
    emxd__unix_arm_locked(s);
  }
  pthread_mutex_unlock(&s->lock);
}

void emxd_sessions_drain(emxd_server *srv) {
  /* Requests a client has already sent are in-flight work too: read each
   * connection dry before it stops being read. */
  emxd_session *s = srv->sessions;
  while (s) {
    emxd_session *next = s->next;
    if (emxd_session_read(s, SIZE_MAX))
      stop_reading(s);
    s = next;
  }
}

void emxd_session_event(emxd_server *srv, void *ptr, uint32_t events) {
  emxd_session *s = ptr;
  /* Sessions closed earlier in this batch are gone from the list but may
   * still have events here: skip those. */
  bool live = false;
  for (emxd_session *it = srv->sessions; it && !live; it = it->next)
    live = it == s;
  if (!live)
    return;
  if (events & EPOLLOUT)
    session_writable(s);
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
    emxd_session_read(s, READ_BUDGET);
}
