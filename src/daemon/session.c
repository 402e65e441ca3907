/* session.c — one client connection: handshake, requests, replies, and a
 * teardown that never leaves a request writing into freed memory. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "daemon/daemon.h"
#include "wire/sock.h"

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

typedef struct emxd_call {
  struct emxd_call *prev, *next; /* session->calls */
  emxd_session *s;
  uint64_t id;       /* client's request id */
  emx_request *req;  /* engine handle */
  emxd_group *group; /* its BATCH's replies, or NULL: a COMPLETE */
  atomic_int refs;   /* engine callback + list membership */
  bool listed;       /* in session->calls (under s->lock) */
} emxd_call;

/* The I/O thread's receive buffer: one packet at a time, 8-byte aligned so
 * decoded structs can be read in place. */
static _Alignas(8) uint8_t rxbuf[EMX_WIRE_MAX_MSG + 8];

static int64_t now_ns(void) {
  return emx_now_ns();
}

static void session_unref(emxd_session *s) {
  if (atomic_fetch_sub(&s->refs, 1) != 1)
    return;
  /* Last reference: the I/O thread closed it and every request completed,
   * so nothing can touch the arena any more. */
  emx_stream_destroy(s->stream);
  emx__arena_close(&s->arena);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

static void call_unref(emxd_call *c) {
  if (atomic_fetch_sub(&c->refs, 1) != 1)
    return;
  emxd_session *s = c->s;
  emx_request_destroy(c->req);
  free(c);
  session_unref(s);
}

static void unlist_locked(emxd_session *s, emxd_call *c) {
  if (!c->listed)
    return;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->calls = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->listed = false;
  s->inflight--;
}

static void arm_locked(emxd_session *s) {
  struct epoll_event ev = {.events = (s->reading ? EPOLLIN : 0) |
                                     (s->want_write ? EPOLLOUT : 0),
                           .data.ptr = &s->ev};
  epoll_ctl(s->srv->epfd, EPOLL_CTL_MOD, s->fd, &ev);
}

/* send_locked sends a reply now, or queues it behind earlier ones. A
 * client whose queue passes max_outbox is cut off: it is not reading, and
 * holding its replies must not cost unbounded memory. */
static void send_locked(emxd_session *s, const void *buf, size_t len) {
  if (s->dead)
    return;
  if (!s->out_head) {
    ssize_t n = emx__sock_send(s->fd, buf, len, -1, MSG_DONTWAIT);
    if (n == (ssize_t)len)
      return;
    if (n != -EAGAIN && n != -ENOBUFS)
      return; /* peer gone: the I/O thread sees the hang-up */
  }
  if (s->out_bytes + len > s->srv->opt->max_outbox) {
    emx__log(EMX_LOG_WARN,
             "session %u (pid %d): client does not read its replies (%zu "
             "bytes queued); dropping it",
             s->id, (int)s->pid, s->out_bytes);
    s->dead = true;
    shutdown(s->fd, SHUT_RDWR); /* the I/O thread then closes it */
    return;
  }
  emxd_packet *p = malloc(sizeof *p + len);
  if (!p) {
    s->dead = true;
    shutdown(s->fd, SHUT_RDWR);
    return;
  }
  p->next = NULL;
  p->len = len;
  memcpy(p->data, buf, len);
  if (s->out_tail)
    s->out_tail->next = p;
  else
    s->out_head = p;
  s->out_tail = p;
  s->out_bytes += len;
  if (!s->want_write) {
    s->want_write = true;
    arm_locked(s);
  }
}

static void send_reply(emxd_session *s, const void *buf, size_t len) {
  pthread_mutex_lock(&s->lock);
  send_locked(s, buf, len);
  pthread_mutex_unlock(&s->lock);
}

static void send_error(emxd_session *s, uint64_t id, int status,
                       const char *msg) {
  _Alignas(8) uint8_t buf[1024];
  emx__wire_buf b;
  size_t mlen = strnlen(msg, 900);
  emx__wire_begin(&b, buf, EMX_WIRE_ERROR, id);
  emx__wire_error e = {.status = status, .msg_len = (uint32_t)mlen};
  emx__wire_put(&b, &e, sizeof e);
  emx__wire_put(&b, msg, mlen);
  send_reply(s, buf, emx__wire_end(&b));
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
  send_locked(s, g->data, emx__wire_end(&g->b));
  group_start(g);
}

/* group_done_locked: one fewer completion to wait for; the last one sends
 * what is left and frees the group. */
static void group_done_locked(emxd_session *s, emxd_group *g) {
  if (--g->left)
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
  group_done_locked(s, g);
}

/* on_complete runs on an engine worker, in this session's stream order. */
static void on_complete(emx_request *req, int status, void *user) {
  emxd_call *c = user;
  emxd_session *s = c->s;
  emx_timings t;
  emx_request_timings(req, &t);
  const char *msg = status < 0 ? emx_request_error(req) : "";
  size_t mlen = strnlen(msg, 900);

  _Alignas(8) uint8_t buf[1024];
  emx__wire_buf b;
  emx__wire_begin(&b, buf, EMX_WIRE_COMPLETE, c->id);
  emx__wire_complete w = {
      .status = status,
      .device = t.device,
      .queue_ns = t.started_ns ? t.started_ns - t.submitted_ns : 0,
      .device_ns = t.device_ns,
      .total_ns =
          (t.finished_ns ? t.finished_ns : emx_now_ns()) - t.submitted_ns,
      .msg_len = (uint32_t)mlen,
      .batch = (uint32_t)t.batch};
  emx__wire_put(&b, &w, sizeof w);
  emx__wire_put(&b, msg, mlen);
  size_t len = emx__wire_end(&b);

  pthread_mutex_lock(&s->lock);
  bool was_listed = c->listed;
  unlist_locked(s, c);
  if (c->group)
    group_add_locked(s, c->group, c->id, &w, msg);
  else
    send_locked(s, buf, len);
  pthread_mutex_unlock(&s->lock);
  if (was_listed)
    call_unref(c);
  call_unref(c);
}

static void put_name(emx__wire_buf *b, const char *name) {
  size_t len = strlen(name);
  emx__wire_name n = {.len = (uint32_t)len};
  emx__wire_put(b, &n, sizeof n);
  emx__wire_put(b, name, len);
}

static void put_tensor(emx__wire_buf *b, const emx_tensor_info *ti) {
  size_t len = strnlen(ti->name, EMX_WIRE_MAX_NAME);
  emx__wire_tensor t = {.name_len = (uint32_t)len,
                        .dtype = (uint32_t)ti->dtype,
                        .rank = ti->rank,
                        .zero_point = ti->zero_point,
                        .scale = ti->scale,
                        .bytes = ti->bytes};
  for (int d = 0; d < ti->rank && d < 8; d++)
    t.dims[d] = ti->dims[d];
  emx__wire_put(b, &t, sizeof t);
  emx__wire_put(b, ti->name, len);
}

static void reply_model(emxd_session *s, uint64_t id, const emxd_model *m) {
  emx__wire_buf b;
  emx__wire_begin(&b, rxbuf, EMX_WIRE_MODEL, id); /* rx is done with */
  size_t nin = emx_model_input_count(m->model);
  size_t nout = emx_model_output_count(m->model);
  emx__wire_model wm = {
      .model = m->id, .nin = (uint16_t)nin, .nout = (uint16_t)nout};
  emx__wire_put(&b, &wm, sizeof wm);
  emx_tensor_info ti;
  for (size_t i = 0; i < nin; i++) {
    emx_model_input_info(m->model, i, &ti);
    put_tensor(&b, &ti);
  }
  for (size_t i = 0; i < nout; i++) {
    emx_model_output_info(m->model, i, &ti);
    put_tensor(&b, &ti);
  }
  size_t len = emx__wire_end(&b);
  if (len == 0) {
    send_error(s, id, EMX_EUNSUPPORTED,
               "model description does not fit in one message");
    return;
  }
  send_reply(s, rxbuf, len);
}

static void reply_models(emxd_session *s, uint64_t id) {
  emx__wire_buf b;
  emx__wire_begin(&b, rxbuf, EMX_WIRE_MODELS, id);
  emx__wire_models *hdr = emx__wire_put(&b, NULL, sizeof *hdr);
  uint32_t count = 0;
  for (emxd_model *m = s->srv->models; m; m = m->next) {
    put_name(&b, m->name);
    count++;
  }
  size_t len = emx__wire_end(&b);
  if (len == 0) {
    send_error(s, id, EMX_EUNSUPPORTED,
               "model list does not fit in one "
               "message");
    return;
  }
  hdr->count = count;
  send_reply(s, rxbuf, len);
}

/* handle_infer queues one request. Returns -1 when the message is hostile
 * (a ref outside the arena) and the connection must go. */
static int handle_infer(emxd_session *s, const emx__wire_req *wr,
                        emxd_group *g) {
  emxd_server *srv = s->srv;
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
  pthread_mutex_lock(&s->lock);
  size_t inflight = s->inflight;
  pthread_mutex_unlock(&s->lock);
  if (inflight >= srv->opt->max_inflight) {
    char msg[160];
    snprintf(msg, sizeof msg,
             "too many requests in flight on this connection (%u): wait for "
             "replies before sending more",
             srv->opt->max_inflight);
    send_error(s, wr->id, EMX_EBUSY, msg);
    return 0;
  }
  emxd_model *m = emxd_model_by_id(srv, in->model);
  if (!m) {
    char msg[160];
    snprintf(msg, sizeof msg,
             "unknown model id %u: OPEN the model by name first (it may have "
             "been unloaded)",
             in->model);
    send_error(s, wr->id, EMX_ENOENT, msg);
    return 0;
  }

  emx_tensor tensors[2 * EMX_WIRE_MAX_TENSORS];
  for (size_t i = 0; i < n; i++) {
    tensors[i].dtype = (emx_dtype)wr->refs[i].dtype;
    tensors[i].data = (uint8_t *)s->arena.base + wr->refs[i].offset;
    tensors[i].size = (size_t)wr->refs[i].length;
  }
  emxd_call *c = calloc(1, sizeof *c);
  if (!c) {
    send_error(s, wr->id, EMX_ENOMEM, "daemon out of memory");
    return 0;
  }
  c->s = s;
  c->id = wr->id;
  c->group = g;
  atomic_init(&c->refs, 2);
  atomic_fetch_add(&s->refs, 1);
  pthread_mutex_lock(&s->lock);
  if (g)
    g->left++;
  c->next = s->calls;
  if (s->calls)
    s->calls->prev = c;
  s->calls = c;
  c->listed = true;
  s->inflight++;
  pthread_mutex_unlock(&s->lock);

  emx_request_desc d;
  emx_request_desc_init(&d);
  d.model = m->model;
  d.inputs = tensors;
  d.input_count = in->nin;
  d.outputs = tensors + in->nin;
  d.output_count = in->nout;
  d.priority = in->priority;
  int64_t timeout = in->timeout_ns ? in->timeout_ns : m->default_timeout_ns;
  d.deadline_ns = timeout ? now_ns() + timeout : 0;
  d.stream = s->stream;
  d.on_complete = on_complete;
  d.user = c;
  int rc = emx_submit(srv->engine, &d, &c->req);
  if (rc < 0) {
    pthread_mutex_lock(&s->lock);
    unlist_locked(s, c);
    if (g)
      group_done_locked(s, g);
    pthread_mutex_unlock(&s->lock);
    send_error(s, wr->id, rc, emx_engine_last_error(srv->engine));
    atomic_store(&c->refs, 1);
    call_unref(c);
  }
  return 0;
}

static void handle_cancel(emxd_session *s, uint64_t id) {
  emxd_call *found = NULL;
  pthread_mutex_lock(&s->lock);
  for (emxd_call *c = s->calls; c; c = c->next)
    if (c->id == id) {
      found = c;
      atomic_fetch_add(&c->refs, 1);
      break;
    }
  pthread_mutex_unlock(&s->lock);
  if (!found)
    return; /* already complete: its COMPLETE is on the way */
  emx_request_cancel(found->req);
  call_unref(found);
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
    int fd = fds[0];
    fds[0] = -1; /* owned by the arena (closed on failure) */
    if (emx__arena_accept(&s->arena, fd, h->arena_size, srv->opt->max_arena,
                          &err) < 0)
      goto refuse;
  }
  s->hello_done = true;
  s->complete_many = (h->flags & EMX_WIRE_HELLO_COMPLETE_MANY) != 0;
  if (h->pid)
    s->pid = (pid_t)h->pid; /* SO_PEERCRED's pid stays authoritative in logs */
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
  send_reply(s, buf, emx__wire_end(&b));
  emx__log(EMX_LOG_INFO,
           "session %u: hello from pid %d uid %d, arena %llu "
           "bytes",
           s->id, (int)s->pid, (int)s->uid, (unsigned long long)s->arena.size);
  return 0;
refuse:
  emx__log(EMX_LOG_WARN, "session %u (pid %d): hello refused: %s", s->id,
           (int)s->pid, err.msg);
  send_error(s, m->hdr.id, EMX_EPROTO, err.msg);
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
    return handle_infer(s, &m->u.infer, NULL);
  case EMX_WIRE_BATCH: {
    /* The group's own count (1) keeps it alive while its requests are
     * queued, however soon the first ones complete. */
    emxd_group *g = NULL;
    if (s->complete_many && m->u.batch.count > 1 && (g = malloc(sizeof *g))) {
      g->left = 1;
      group_start(g);
    }
    size_t cursor = 0;
    emx__wire_req req;
    int rc = 0;
    while (rc == 0 && emx__wire_batch_next(m, &cursor, &req))
      rc = handle_infer(s, &req, g);
    if (g) {
      pthread_mutex_lock(&s->lock);
      group_done_locked(s, g);
      pthread_mutex_unlock(&s->lock);
    }
    return rc;
  }
  case EMX_WIRE_CANCEL:
    handle_cancel(s, m->hdr.id);
    return 0;
  case EMX_WIRE_PING: {
    _Alignas(8) uint8_t buf[16];
    emx__wire_buf b;
    emx__wire_begin(&b, buf, EMX_WIRE_PONG, m->hdr.id);
    send_reply(s, buf, emx__wire_end(&b));
    return 0;
  }
  case EMX_WIRE_OPEN: {
    memcpy(name, m->u.name.name, m->u.name.len);
    name[m->u.name.len] = '\0';
    emxd_model *model = emxd_model_by_name(srv, name);
    if (model) {
      reply_model(s, m->hdr.id, model);
    } else {
      snprintf(err.msg, sizeof err.msg,
               "no model named \"%s\" (list them with `edgemux models`)", name);
      send_error(s, m->hdr.id, EMX_ENOENT, err.msg);
    }
    return 0;
  }
  case EMX_WIRE_LOAD: {
    char path[4097];
    memcpy(name, m->u.load.name, m->u.load.name_len);
    name[m->u.load.name_len] = '\0';
    memcpy(path, m->u.load.path, m->u.load.path_len);
    path[m->u.load.path_len] = '\0';
    emxd_model *model = NULL;
    int rc = srv->opt->allow_load
                 ? emxd_model_load(srv, name, path, NULL, false, &model, &err)
                 : emx__errf(&err, EMX_EINVAL,
                             "this daemon does not load models on request "
                             "(start it with --allow-load)");
    if (rc < 0)
      send_error(s, m->hdr.id, rc, err.msg);
    else
      reply_model(s, m->hdr.id, model);
    return 0;
  }
  case EMX_WIRE_LIST:
    reply_models(s, m->hdr.id);
    return 0;
  case EMX_WIRE_STATUS: {
    emx__wire_buf b;
    static _Alignas(8) uint8_t txt[EMX_WIRE_MAX_TEXT];
    size_t n = emxd_status_text(srv, (char *)txt, sizeof txt);
    emx__wire_begin(&b, rxbuf, EMX_WIRE_STATUS_OK, m->hdr.id);
    emx__wire_put(&b, txt, n);
    size_t len = emx__wire_end(&b);
    /* The text is padded to 8 with NULs, which readers strip. */
    send_reply(s, rxbuf, len);
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

void emxd_session_readable(emxd_session *s) {
  emxd_session_read(s, READ_BUDGET);
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

void emxd_session_writable(emxd_session *s) {
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
    arm_locked(s);
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
  if (!allowed) {
    emx__log(EMX_LOG_WARN,
             "refusing pid %d: uid %d gid %d not allowed "
             "(--allow-uid/--allow-gid)",
             (int)cred.pid, (int)cred.uid, (int)cred.gid);
    close(fd);
    return;
  }
  size_t same_uid = 0;
  for (emxd_session *it = srv->sessions; it; it = it->next)
    same_uid += it->uid == cred.uid;
  if (same_uid >= o->max_conns_per_uid || srv->draining) {
    emx__log(EMX_LOG_WARN, "refusing pid %d: %s", (int)cred.pid,
             srv->draining ? "shutting down"
                           : "too many connections for its uid "
                             "(--max-conns-per-uid)");
    close(fd);
    return;
  }
  emxd_session *s = calloc(1, sizeof *s);
  if (!s || emx_stream_create(srv->engine, &s->stream) < 0) {
    free(s);
    close(fd);
    return;
  }
  /* Each connection is a stream: its share under sched=fair is its
   * user's weight. */
  for (size_t i = 0; i < o->weight_count; i++)
    if (o->weights[i].uid == cred.uid)
      emx_stream_set_weight(s->stream, o->weights[i].weight);
  s->srv = srv;
  s->fd = fd;
  s->id = ++srv->next_session_id;
  s->uid = cred.uid;
  s->gid = cred.gid;
  s->pid = cred.pid;
  s->arena.fd = -1;
  s->ev.kind = EMXD_EV_SESSION;
  s->ev.ptr = s;
  s->reading = true;
  s->hello_deadline = now_ns() + o->handshake_timeout_ns;
  atomic_init(&s->refs, 1);
  pthread_mutex_init(&s->lock, NULL);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->ev};
  if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    emx__log(EMX_LOG_ERROR, "epoll_ctl: %s", strerror(errno));
    close(fd);
    s->fd = -1;
    session_unref(s);
    return;
  }
  s->next = srv->sessions;
  srv->sessions = s;
  __atomic_fetch_add(&srv->session_count, 1, __ATOMIC_RELAXED);
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
      __atomic_fetch_sub(&srv->session_count, 1, __ATOMIC_RELAXED);
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
  size_t n = s->inflight;
  emxd_call **pending = n ? malloc(n * sizeof *pending) : NULL;
  size_t k = 0;
  for (emxd_call *c = s->calls; c && pending && k < n; c = c->next) {
    atomic_fetch_add(&c->refs, 1);
    pending[k++] = c;
  }
  pthread_mutex_unlock(&s->lock);
  for (size_t i = 0; i < k; i++) {
    emx_request_cancel(pending[i]->req);
    call_unref(pending[i]);
  }
  free(pending);
  session_unref(s);
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

bool emxd_session_idle(emxd_session *s) {
  pthread_mutex_lock(&s->lock);
  bool idle = s->inflight == 0 && !s->out_head;
  pthread_mutex_unlock(&s->lock);
  return idle;
}

void emxd_session_stop_reading(emxd_session *s) {
  pthread_mutex_lock(&s->lock);
  if (s->reading && !s->dead) {
    s->reading = false;
    arm_locked(s);
  }
  pthread_mutex_unlock(&s->lock);
}
