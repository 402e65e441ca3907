/* zmq_queue.c — what other threads hand the ZeroMQ door's thread: frames
 * the engine finished (from its workers) and pushed models the admin
 * thread loaded (from the I/O thread). A lock held only to link a node,
 * and an eventfd the thread polls beside its sockets. */
#include <unistd.h>

#include "daemon/front/zmq_int.h"

void emxz_wake(struct emxd_zmq *z) {
  uint64_t one = 1;
  if (write(z->wake_fd, &one, sizeof one) < 0) {
    /* EAGAIN: the counter is full, so it is readable anyway */
  }
}

void emxz_post_done(struct emxd_zmq *z, zreq *r) {
  pthread_mutex_lock(&z->lock);
  r->next = NULL;
  if (z->done_tail)
    z->done_tail->next = r;
  else
    z->done = r;
  z->done_tail = r;
  pthread_mutex_unlock(&z->lock);
  emxz_wake(z);
}

void emxz_post_answer(struct emxd_zmq *z, zanswer *a) {
  pthread_mutex_lock(&z->lock);
  a->next = z->answers;
  z->answers = a;
  pthread_mutex_unlock(&z->lock);
  emxz_wake(z);
}

void emxz_take(struct emxd_zmq *z, zreq **done, zanswer **answers) {
  pthread_mutex_lock(&z->lock);
  *done = z->done;
  *answers = z->answers;
  z->done = z->done_tail = NULL;
  z->answers = NULL;
  pthread_mutex_unlock(&z->lock);
}
