/* io.c — the client's connection: connect and hello, sending, the
 * leader/follower reply loop, dispatch by request id, breakage, and the
 * reset a forked child does before its first call. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client/internal.h"
#include "core/clock.h"
#include "core/sock.h"

#define DISCONNECTED_MSG                                                       \
  "edgemuxd at %s closed the connection (daemon stopped or restarted?)"

/* ---- connect + hello ----------------------------------------------------- */

/* connect_socket: a SOCK_SEQPACKET connect that gives up after timeout_ns.
 * A Unix-socket connect blocks only while the listener's backlog is full,
 * and that sleep is bounded by SO_SNDTIMEO (the kernel then says EAGAIN). */
static int connect_socket(const char *path, int64_t timeout_ns,
                          emx__errbuf *err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  size_t plen = strlen(path);
  if (plen == 0 || plen >= sizeof sa.sun_path)
    return emx__errf(err, EMX_EINVAL,
                     "socket path \"%s\" is %s (at most %zu bytes)", path,
                     plen ? "too long" : "empty", sizeof sa.sun_path - 1);
  memcpy(sa.sun_path, path, plen + 1);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return emx__errf(err,
                     errno == EMFILE || errno == ENFILE ? EMX_ENOMEM : EMX_EIO,
                     "socket: %s", strerror(errno));
  struct timeval tv = {.tv_sec = (time_t)(timeout_ns / EMX__NS_PER_SEC),
                       .tv_usec =
                           (suseconds_t)(timeout_ns % EMX__NS_PER_SEC / 1000)};
  if (tv.tv_sec == 0 && tv.tv_usec == 0)
    tv.tv_usec = 1; /* 0 would mean "forever" */
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int rc;
  do
    rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    int e = errno;
    close(fd);
    if (e == EAGAIN)
      return emx__errf(err, EMX_ETIMEDOUT,
                       "cannot connect to edgemuxd at %s: timed out (the "
                       "daemon is not accepting connections)",
                       path);
    if (e == ENOENT || e == ECONNREFUSED)
      return emx__errf(err, EMX_EDISCONNECTED,
                       "cannot connect to edgemuxd at %s: %s \xe2\x80\x94 is "
                       "edgemuxd running? (start it, or set EDGEMUX_SOCKET)",
                       path, strerror(e));
    if (e == EACCES || e == EPERM)
      return emx__errf(err, EMX_EDISCONNECTED,
                       "cannot connect to edgemuxd at %s: %s \xe2\x80\x94 "
                       "check the socket's permissions (or set "
                       "EDGEMUX_SOCKET)",
                       path, strerror(e));
    return emx__errf(err, EMX_EDISCONNECTED,
                     "cannot connect to edgemuxd at %s: %s", path, strerror(e));
  }
  struct timeval zero = {0, 0}; /* later sends block as usual */
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &zero, sizeof zero);
  return fd;
}

/* recv_until: one packet into buf before the deadline (absolute ns). */
static ssize_t recv_until(int fd, void *buf, int64_t deadline) {
  for (;;) {
    int64_t left = deadline - emx_now_ns();
    if (left < 0)
      left = 0;
    struct timespec ts = emx__abstime(left);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int n = ppoll(&pfd, 1, &ts, NULL);
    if (n < 0 && errno != EINTR)
      return -errno;
    if (n == 0)
      return -ETIMEDOUT;
    if (n > 0) {
      int fds[EMX__SOCK_MAX_FDS], nfds;
      ssize_t got =
          emx__sock_recv(fd, buf, EMX_WIRE_MAX_MSG, fds, &nfds, MSG_DONTWAIT);
      for (int i = 0; i < nfds; i++)
        close(fds[i]); /* the daemon never sends descriptors */
      if (got != -EAGAIN)
        return got;
    }
  }
}

/* recv_now: a packet already queued, without waiting (<= 0: none). */
static ssize_t recv_now(int fd, void *buf) {
  int fds[EMX__SOCK_MAX_FDS], nfds;
  ssize_t got =
      emx__sock_recv(fd, buf, EMX_WIRE_MAX_MSG, fds, &nfds, MSG_DONTWAIT);
  for (int i = 0; i < nfds; i++)
    close(fds[i]);
  return got;
}

/* hello: send HELLO (with the arena) and read HELLO_OK. */
static int hello(emx_client *c, int fd, int64_t deadline, emx__errbuf *err) {
  uint64_t storage[64];
  emx__wire_buf b;
  emx__wire_begin(&b, storage, EMX_WIRE_HELLO, 0);
  emx__wire_hello h = {.proto = EMX_WIRE_VERSION,
                       .flags =
                           EMX_WIRE_HELLO_COMPLETE_MANY | EMX_WIRE_HELLO_PAGED,
                       .arena_size = c->arena.size,
                       .pid = (uint32_t)getpid()};
  emx__wire_put(&b, &h, sizeof h);
  size_t len = emx__wire_end(&b);
  ssize_t n = emx__sock_send(fd, storage, len, c->arena.fd, 0);
  if (n < 0) {
    /* A daemon that refuses a connection before its hello (a limit)
     * says why, then closes: the ERROR may be waiting here. */
    ssize_t got = recv_now(fd, c->rbuf);
    if (got <= 0)
      return emx__errf(err, EMX_EDISCONNECTED,
                       "saying hello to edgemuxd at %s: %s", c->path,
                       strerror((int)-n));
    n = got;
  } else {
    n = recv_until(fd, c->rbuf, deadline);
    /* A pending reset comes before the packets still queued: look past
     * it for the daemon's ERROR. */
    if (n == -ECONNRESET || n == -EPIPE) {
      ssize_t got = recv_now(fd, c->rbuf);
      if (got > 0)
        n = got;
    }
  }
  if (n == -ETIMEDOUT)
    return emx__errf(err, EMX_ETIMEDOUT,
                     "edgemuxd at %s did not answer hello in time", c->path);
  if (n == 0 || n == -ECONNRESET)
    return emx__errf(err, EMX_EDISCONNECTED,
                     "edgemuxd at %s closed the connection during hello",
                     c->path);
  if (n < 0)
    return emx__errf(
        err, n == -EMSGSIZE || n == -EPROTO ? EMX_EPROTO : EMX_EDISCONNECTED,
        "reading hello from edgemuxd at %s: %s", c->path, strerror((int)-n));
  emx__wire_msg m;
  emx__errbuf why;
  if (emx__wire_decode(c->rbuf, (size_t)n, &m, &why) < 0)
    return emx__errf(err, EMX_EPROTO,
                     "malformed hello reply from edgemuxd at %s: %s", c->path,
                     why.msg);
  if (m.hdr.type == EMX_WIRE_ERROR) {
    int st = m.u.error.e->status < 0 ? m.u.error.e->status : EMX_EPROTO;
    return emx__errf(err, st, "edgemuxd at %s refused the connection: %.*s",
                     c->path, (int)m.u.error.e->msg_len, m.u.error.text);
  }
  if (m.hdr.type != EMX_WIRE_HELLO_OK)
    return emx__errf(err, EMX_EPROTO,
                     "edgemuxd at %s answered hello with message type %u",
                     c->path, m.hdr.type);
  const emx__wire_hello_ok *ok = m.u.hello_ok;
  if (ok->proto != EMX_WIRE_VERSION)
    return emx__errf(err, EMX_EPROTO,
                     "edgemuxd at %s speaks protocol %u; this library speaks "
                     "%d",
                     c->path, ok->proto, EMX_WIRE_VERSION);
  c->max_inflight = ok->max_inflight;
  c->max_batch = ok->max_batch;
  return 0;
}

int emx__client_open(emx_client *c, emx__errbuf *err) {
  int64_t deadline = emx__deadline_after(emx_now_ns(), c->timeout_ns);
  int fd = connect_socket(c->path, c->timeout_ns, err);
  if (fd < 0)
    return fd;
  int rc = emx__arena_create(&c->arena, c->arena_bytes, err);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  rc = hello(c, fd, deadline, err);
  if (rc < 0) {
    emx__arena_close(&c->arena);
    close(fd);
    return rc;
  }
  emx__alloc_init(&c->alloc, c->arena.size);
  c->sock = fd;
  c->gen++;
  c->inflight = 0;
  c->reading = 0;
  c->broken = 0;
  c->saw_reset = false;
  c->broken_msg[0] = '\0';
  return 0;
}

/* ---- pending ids --------------------------------------------------------- */

void emx__client_register(emx_client *c, emx__pending *p, uint8_t expect) {
  p->id = c->next_id++;
  p->expect = expect;
  p->done = 0;
  p->status = 0;
  p->reply = NULL;
  p->reply_len = 0;
  emx__pending **head = &c->buckets[p->id % EMX__CLIENT_BUCKETS];
  p->next = *head;
  *head = p;
}

/* take: remove and return the pending entry for id, or NULL. */
static emx__pending *take(emx_client *c, uint64_t id) {
  for (emx__pending **pp = &c->buckets[id % EMX__CLIENT_BUCKETS]; *pp;
       pp = &(*pp)->next) {
    emx__pending *p = *pp;
    if (p->id == id) {
      *pp = p->next;
      p->next = NULL;
      return p;
    }
  }
  return NULL;
}

void emx__client_unregister(emx_client *c, emx__pending *p) {
  if (!p->done)
    take(c, p->id);
}

void emx__client_free_request(emx_client_request *r) {
  free(r->msg);
  free(r);
}

/* finish: p's reply is in (or never will be). Locked. */
static void finish(emx_client *c, emx__pending *p, int status, const char *msg,
                   size_t msg_len) {
  p->done = 1;
  p->status = status;
  emx_client_request *r = p->req;
  if (!r)
    return;
  c->inflight--;
  if (r->pace && status == 0) /* the model outlives its pending requests */
    emx__pace_note(r->pace, emx_now_ns() - r->submitted_ns);
  r->pace = NULL;
  if (msg_len && !r->msg) {
    r->msg = malloc(msg_len + 1);
    if (r->msg) {
      memcpy(r->msg, msg, msg_len);
      r->msg[msg_len] = '\0';
    }
  }
  if (r->abandoned)
    emx__client_free_request(r);
}

void emx__client_set_broken(emx_client *c, int code, const char *fmt, ...) {
  if (c->broken)
    return;
  c->broken = code;
  /* Wake a reader blocked in ppoll (its recv then sees EOF), and tell the
   * daemon at once. Never the parent's socket from a forked child: the
   * child's reset sets c->sock to -1 before anything can break. */
  if (c->sock >= 0)
    shutdown(c->sock, SHUT_RDWR);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->broken_msg, sizeof c->broken_msg, fmt, ap);
  va_end(ap);
  for (size_t i = 0; i < EMX__CLIENT_BUCKETS; i++) {
    emx__pending *p = c->buckets[i];
    c->buckets[i] = NULL;
    while (p) {
      emx__pending *next = p->next;
      p->next = NULL;
      finish(c, p, code, c->broken_msg, strlen(c->broken_msg));
      p = next;
    }
  }
  pthread_cond_broadcast(&c->cv);
}

int emx__client_fail_broken(emx_client *c) {
  return emx__fail(c, c->broken, "%s", c->broken_msg);
}

/* ---- sending ------------------------------------------------------------- */

int emx__client_send(emx_client *c, const void *pkt, size_t len) {
  return emx__client_send_fd(c, pkt, len, -1);
}

int emx__client_send_fd(emx_client *c, const void *pkt, size_t len,
                        int pass_fd) {
  if (c->broken)
    return c->broken;
  /* Unlocked: a send that blocks (the daemon's queue full) must not stop
   * this client's reader from dispatching the replies that unblock it. */
  int fd = c->sock;
  pthread_mutex_unlock(&c->mu);
  ssize_t n = emx__sock_send(fd, pkt, len, pass_fd, 0);
  pthread_mutex_lock(&c->mu);
  if (n == (ssize_t)len)
    return 0;
  if (n == -EPIPE || n == -ECONNRESET || n == -ENOTCONN)
    emx__client_set_broken(c, EMX_EDISCONNECTED, DISCONNECTED_MSG, c->path);
  else
    emx__client_set_broken(c, EMX_EDISCONNECTED,
                           "sending to edgemuxd failed: %s",
                           n < 0 ? strerror((int)-n) : "short send");
  return c->broken;
}

/* ---- receiving ----------------------------------------------------------- */

static void copy_reply(emx__pending *p, const void *pkt, size_t len) {
  p->reply = malloc(len);
  if (p->reply) {
    memcpy(p->reply, pkt, len);
    p->reply_len = len;
  }
}

/* complete finishes request p with a COMPLETE record. Locked. */
static void complete(emx_client *c, emx__pending *p,
                     const emx__wire_complete *cp, const char *text) {
  emx_client_request *r = p->req;
  emx_timings *t = &r->timings;
  t->submitted_ns = r->submitted_ns;
  t->device = cp->device;
  t->device_ns = cp->device_ns;
  if (cp->device >= 0) { /* it ran */
    t->started_ns = r->submitted_ns + cp->queue_ns;
    t->finished_ns = r->submitted_ns + cp->total_ns;
    t->batch = cp->batch ? (int)cp->batch : 1;
  }
  int st = cp->status <= 0 ? cp->status : EMX_EPROTO;
  finish(c, p, st, text, cp->msg_len);
}

/* complete_many finishes each request a COMPLETE_MANY answers. Locked. */
static void complete_many(emx_client *c, const emx__wire_msg *m) {
  size_t cursor = 0;
  const emx__wire_many_rec *rec;
  const char *text;
  while (!c->broken && emx__wire_many_next(m, &cursor, &rec, &text)) {
    emx__pending *p = take(c, rec->id);
    if (!p)
      continue; /* nobody waits for it any more */
    if (p->expect != EMX_WIRE_COMPLETE) {
      finish(c, p, EMX_EPROTO, NULL, 0);
      emx__client_set_broken(c, EMX_EPROTO,
                             "edgemuxd answered request %llu with a "
                             "completion, expected message type %u",
                             (unsigned long long)rec->id, p->expect);
      return;
    }
    complete(c, p, &rec->c, text);
  }
}

/* dispatch one validated packet. Locked. */
static void dispatch(emx_client *c, const emx__wire_msg *m, size_t len) {
  uint8_t type = m->hdr.type;
  if (type == EMX_WIRE_COMPLETE_MANY) {
    complete_many(c, m);
    return;
  }
  if (type != EMX_WIRE_ERROR && type != EMX_WIRE_COMPLETE &&
      type != EMX_WIRE_MODEL && type != EMX_WIRE_MODELS &&
      type != EMX_WIRE_STATUS_OK && type != EMX_WIRE_PONG) {
    emx__client_set_broken(c, EMX_EPROTO,
                           "edgemuxd sent message type %u, which a client "
                           "never receives",
                           type);
    return;
  }
  emx__pending *p = take(c, m->hdr.id);
  if (!p)
    return; /* nobody waits for this id any more; harmless */
  if (type == EMX_WIRE_ERROR) {
    int st = m->u.error.e->status < 0 ? m->u.error.e->status : EMX_EPROTO;
    if (!p->req)
      copy_reply(p, c->rbuf, len);
    finish(c, p, st, m->u.error.text, m->u.error.e->msg_len);
  } else if (type != p->expect) {
    finish(c, p, EMX_EPROTO, NULL, 0);
    emx__client_set_broken(c, EMX_EPROTO,
                           "edgemuxd answered request %llu with message type "
                           "%u, expected %u",
                           (unsigned long long)m->hdr.id, type, p->expect);
  } else if (type == EMX_WIRE_COMPLETE) {
    complete(c, p, m->u.complete.c, m->u.complete.text);
  } else {
    copy_reply(p, c->rbuf, len);
    finish(c, p, p->reply ? 0 : EMX_ENOMEM, NULL, 0);
  }
}

/* read_one: as the reader, wait until the deadline for one packet and
 * dispatch it. 0 (a packet, or a signal), EMX_EAGAIN (deadline) or the
 * broken status. Locked; the lock is dropped while waiting. */
static int read_got(emx_client *c, int n, int poll_errno, ssize_t got);
static int read_one(emx_client *c, int64_t deadline) {
  int fd = c->sock;
  pthread_mutex_unlock(&c->mu);
  int n = 1, poll_errno = 0;
  ssize_t got = 0;
  int fds[EMX__SOCK_MAX_FDS], nfds = 0;
  if (deadline < 0) {
    /* No deadline (every synchronous call): one blocking recv instead of
     * ppoll then recv, one system call fewer per request. A breakage's
     * shutdown() ends it as it ends a ppoll. */
    got = emx__sock_recv(fd, c->rbuf, EMX_WIRE_MAX_MSG, fds, &nfds, 0);
  } else {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int64_t left = deadline - emx_now_ns();
    struct timespec ts = emx__abstime(left > 0 ? left : 0);
    n = ppoll(&pfd, 1, &ts, NULL);
    poll_errno = n < 0 ? errno : 0;
    if (n > 0)
      got = emx__sock_recv(fd, c->rbuf, EMX_WIRE_MAX_MSG, fds, &nfds,
                           MSG_DONTWAIT);
  }
  for (int i = 0; i < nfds; i++)
    close(fds[i]); /* the daemon never sends descriptors */
  pthread_mutex_lock(&c->mu);
  return read_got(c, n, poll_errno, got);
}

/* read_got: what read_one's wait and recv gave (n: ppoll's result, 1 for
 * the blocking recv). Locked. */
static int read_got(emx_client *c, int n, int poll_errno, ssize_t got) {
  if (c->broken)
    return c->broken;
  if (n == 0)
    return EMX_EAGAIN;
  if (n < 0 && poll_errno != EINTR) {
    emx__client_set_broken(c, EMX_EDISCONNECTED,
                           "waiting for edgemuxd: ppoll: %s",
                           strerror(poll_errno));
    return c->broken;
  }
  if (n < 0 || got == -EAGAIN || got == -EINTR)
    return 0; /* a signal or a spurious wake-up: the caller loops */
  if (got == -ECONNRESET && !c->saw_reset) {
    /* Linux reports a peer that closed with our packets unread as
     * ECONNRESET once, *before* the replies it had already queued for us:
     * read those (they are real results) until the end-of-file. */
    c->saw_reset = true;
    return 0;
  }
  if (got == 0 || got == -ECONNRESET || got == -EPIPE || got == -ENOTCONN) {
    emx__client_set_broken(c, EMX_EDISCONNECTED, DISCONNECTED_MSG, c->path);
    return c->broken;
  }
  if (got < 0) {
    emx__client_set_broken(
        c, got == -EMSGSIZE || got == -EPROTO ? EMX_EPROTO : EMX_EDISCONNECTED,
        "reading from edgemuxd: %s%s", strerror((int)-got),
        got == -EMSGSIZE ? " (packet larger than the "
                           "protocol allows)"
                         : "");
    return c->broken;
  }
  emx__wire_msg m;
  emx__errbuf why;
  if (emx__wire_decode(c->rbuf, (size_t)got, &m, &why) < 0) {
    emx__client_set_broken(c, EMX_EPROTO, "malformed packet from edgemuxd: %s",
                           why.msg);
    return c->broken;
  }
  dispatch(c, &m, (size_t)got);
  return c->broken;
}

int emx__client_read_now(emx_client *c) {
  int fd = c->sock;
  pthread_mutex_unlock(&c->mu);
  ssize_t got = recv_now(fd, c->rbuf);
  pthread_mutex_lock(&c->mu);
  if (got == -EAGAIN)
    return 0;
  int rc = read_got(c, 1, 0, got);
  return rc < 0 ? rc : 1;
}

int emx__client_wait(emx_client *c, int (*pred)(emx_client *, void *),
                     void *arg, int64_t deadline) {
  for (;;) {
    if (pred(c, arg))
      return 0;
    if (c->broken)
      return c->broken;
    if (deadline >= 0 && emx_now_ns() >= deadline && c->reading)
      return EMX_EAGAIN;
    if (!c->reading) {
      c->reading = 1;
      int rc = read_one(c, deadline);
      c->reading = 0;
      /* Wake the followers: some may be complete, and one must take over
       * the reading if this thread is done. */
      pthread_cond_broadcast(&c->cv);
      if (rc == EMX_EAGAIN)
        return pred(c, arg) ? 0 : EMX_EAGAIN;
      continue;
    }
    if (deadline < 0) {
      pthread_cond_wait(&c->cv, &c->mu);
    } else {
      struct timespec ts = emx__abstime(deadline);
      pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
  }
}

static int pending_done(emx_client *c, void *arg) {
  (void)c;
  return ((emx__pending *)arg)->done;
}

int emx__client_rpc(emx_client *c, void *pkt, size_t len, uint8_t expect,
                    void **reply, emx__wire_msg *msg) {
  return emx__client_rpc_fd(c, pkt, len, -1, expect, reply, msg);
}

int emx__client_rpc_fd(emx_client *c, void *pkt, size_t len, int pass_fd,
                       uint8_t expect, void **reply, emx__wire_msg *msg) {
  *reply = NULL;
  if (c->broken)
    return emx__client_fail_broken(c);
  emx__pending p = {0};
  emx__client_register(c, &p, expect);
  memcpy((uint8_t *)pkt + offsetof(emx__wire_hdr, id), &p.id, sizeof p.id);
  int rc = emx__client_send_fd(c, pkt, len, pass_fd);
  if (rc == 0)
    rc = emx__client_wait(c, pending_done, &p, -1);
  if (rc < 0 && !p.done) {
    emx__client_unregister(c, &p);
    free(p.reply);
    return emx__client_fail_broken(c);
  }
  if (p.status < 0) {
    emx__wire_msg m;
    emx__errbuf why;
    if (p.reply && emx__wire_decode(p.reply, p.reply_len, &m, &why) == 0 &&
        m.hdr.type == EMX_WIRE_ERROR)
      emx__fail(c, p.status, "%.*s", (int)m.u.error.e->msg_len, m.u.error.text);
    else if (c->broken)
      emx__client_fail_broken(c);
    else
      emx__fail(c, p.status, "%s", emx_strerror(p.status));
    free(p.reply);
    return p.status;
  }
  emx__errbuf why;
  if (emx__wire_decode(p.reply, p.reply_len, msg, &why) < 0) {
    free(p.reply); /* unreachable: validated when it arrived */
    return emx__fail(c, EMX_EPROTO, "%s", why.msg);
  }
  *reply = p.reply;
  return 0;
}

/* ---- fork ---------------------------------------------------------------- */

/* fork_mu serialises post-fork resets; pthread_atfork keeps it usable in a
 * child even if a parent thread held it at fork time. */
static pthread_mutex_t fork_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
/* fork_gen counts the forks this process descends from (since the hook was
 * registered): a client compares it with the one it last checked its pid
 * at, so that a call needs no getpid() (a system call, ~0.3-3 us here)
 * unless a fork happened. */
static atomic_uint fork_gen;
static void fork_prepare(void) {
  pthread_mutex_lock(&fork_mu);
}
static void fork_after(void) {
  pthread_mutex_unlock(&fork_mu);
}
static void fork_child(void) {
  atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
  pthread_mutex_unlock(&fork_mu);
}
static void fork_register(void) {
  pthread_atfork(fork_prepare, fork_after, fork_child);
}

static void init_sync(emx_client *c) {
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutex_init(&c->mu, &ma);
  pthread_mutexattr_destroy(&ma);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->cv, &ca);
  pthread_condattr_destroy(&ca);
}

/* child_reset: in a forked child, drop everything that belongs to the
 * parent's connection — without sending a byte on it — and reconnect. The
 * parent's threads do not exist here, so nobody else can be inside c: the
 * mutex and condvar (possibly copied mid-use) are simply re-initialised.
 * Closing our copy of the socket and unmapping our view of the arena leave
 * the parent's connection untouched. */
static void child_reset(emx_client *c, int reconnect) {
  init_sync(c);
  if (c->sock >= 0)
    close(c->sock);
  c->sock = -1;
  /* The parent's arena stays mapped until the new one is: the new mapping
   * then cannot land at the old address, so a parent tensor used here fails
   * the in-arena check instead of aliasing a fresh block. */
  emx__arena old = c->arena;
  c->arena = (emx__arena){.fd = -1};
  emx__alloc_fini(&c->alloc);
  c->reading = 0;
  /* Requests of the parent: a handle the child holds completes with an
   * error; control calls of parent threads have no thread here: forget. */
  const char *why = "the request was submitted by the parent process before "
                    "fork(); it is not the child's";
  for (size_t i = 0; i < EMX__CLIENT_BUCKETS; i++) {
    emx__pending *p = c->buckets[i];
    c->buckets[i] = NULL;
    while (p) {
      emx__pending *next = p->next;
      p->next = NULL;
      if (p->req)
        finish(c, p, EMX_EDISCONNECTED, why, strlen(why));
      p = next;
    }
  }
  c->inflight = 0;
  if (reconnect && !c->closed) {
    c->broken = 0;
    emx__errbuf err;
    int rc = emx__client_open(c, &err);
    if (rc < 0) {
      c->broken = EMX_EDISCONNECTED;
      snprintf(c->broken_msg, sizeof c->broken_msg,
               "reconnecting to edgemuxd after fork() failed: %.440s", err.msg);
    }
  }
  emx__arena_close(&old);
}

void emx__client_enter(emx_client *c, int reconnect) {
  /* The pid is looked at only after a fork (a child that forked and
   * reached here through a raw clone() without the hook is not covered:
   * glibc's fork(), and so Python's, always run it). */
  unsigned gen = atomic_load_explicit(&fork_gen, memory_order_relaxed);
  if (atomic_load_explicit(&c->fork_gen, memory_order_acquire) != gen) {
    pid_t me = getpid();
    pthread_mutex_lock(&fork_mu);
    if (atomic_load_explicit(&c->pid, memory_order_relaxed) != me) {
      child_reset(c, reconnect);
      atomic_store_explicit(&c->pid, me, memory_order_relaxed);
    }
    atomic_store_explicit(&c->fork_gen, gen, memory_order_release);
    pthread_mutex_unlock(&fork_mu);
  }
  pthread_mutex_lock(&c->mu);
}

void emx__client_init_sync(emx_client *c) {
  pthread_once(&fork_once, fork_register);
  init_sync(c);
  atomic_store(&c->pid, getpid());
  atomic_store(&c->fork_gen, atomic_load(&fork_gen));
}

/* ---- models after reconnect ---------------------------------------------- */

void emx__client_release(emx_client *c) {
  size_t left = --c->refs;
  pthread_mutex_unlock(&c->mu);
  if (left)
    return;
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  free(c);
}

int emx__client_reopen(emx_client *c, emx_client_model *m) {
  if (m->gen == c->gen)
    return 0;
  uint64_t storage[(sizeof(emx__wire_hdr) + sizeof(emx__wire_name) +
                    EMX_WIRE_MAX_NAME + 8) /
                       8 +
                   1];
  emx__wire_buf b;
  emx__wire_begin(&b, storage, EMX_WIRE_OPEN, 0);
  size_t nlen = strlen(m->name);
  emx__wire_name n = {.len = (uint32_t)nlen};
  emx__wire_put(&b, &n, sizeof n);
  emx__wire_put(&b, m->name, nlen);
  size_t len = emx__wire_end(&b);
  void *reply;
  emx__wire_msg msg;
  int rc = emx__client_rpc(c, storage, len, EMX_WIRE_MODEL, &reply, &msg);
  if (rc < 0)
    return rc;
  const emx__wire_model *wm = msg.u.model.m;
  if (wm->nin != m->nin || wm->nout != m->nout) {
    free(reply);
    return emx__fail(c, EMX_EPROTO,
                     "model \"%s\" changed on reopening after fork(): %u/%u "
                     "tensors, was %zu/%zu",
                     m->name, wm->nin, wm->nout, m->nin, m->nout);
  }
  m->id = wm->model;
  m->gen = c->gen;
  free(reply);
  return 0;
}
