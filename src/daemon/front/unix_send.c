/* unix_send.c — the Unix door's outgoing side: a reply goes out now, or
 * waits in the session's queue for EPOLLOUT. Apart from unix.c so that
 * both of the door's message handlers (unix.c, unix_models.c) can reply
 * without calling each other. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "core/log.h"
#include "core/sock.h"
#include "daemon/front/unix_int.h"
#include "wire/wire.h"

void emxd__unix_arm_locked(emxd_session *s) {
  struct epoll_event ev = {.events = (s->reading ? EPOLLIN : 0) |
                                     (s->want_write ? EPOLLOUT : 0),
                           .data.ptr = &s->ev};
  epoll_ctl(s->srv->epfd, EPOLL_CTL_MOD, s->fd, &ev);
}

/* emxd__unix_send_locked sends a reply now, or queues it behind earlier ones. A
 * client whose queue passes max_outbox is cut off: it is not reading, and
 * holding its replies must not cost unbounded memory. */
void emxd__unix_send_locked(emxd_session *s, const void *buf, size_t len) {
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
    emxd__unix_arm_locked(s);
  }
}

void emxd__unix_send(emxd_session *s, const void *buf, size_t len) {
  pthread_mutex_lock(&s->lock);
  emxd__unix_send_locked(s, buf, len);
  pthread_mutex_unlock(&s->lock);
}

void emxd__unix_error(emxd_session *s, uint64_t id, int status,
                      const char *msg) {
  _Alignas(8) uint8_t buf[1024];
  emx__wire_buf b;
  size_t mlen = strnlen(msg, 900);
  emx__wire_begin(&b, buf, EMX_WIRE_ERROR, id);
  emx__wire_error e = {.status = status, .msg_len = (uint32_t)mlen};
  emx__wire_put(&b, &e, sizeof e);
  emx__wire_put(&b, msg, mlen);
  emxd__unix_send(s, buf, emx__wire_end(&b));
}
