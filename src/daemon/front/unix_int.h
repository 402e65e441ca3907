/* unix_int.h — what the Unix door's files (unix.c: connection, framing,
 * requests; unix_models.c: model messages; unix_send.c: replies) share. */
#ifndef EMX_DAEMON_FRONT_UNIX_INT_H
#define EMX_DAEMON_FRONT_UNIX_INT_H

#include "daemon/daemon.h"
#include "core/arena.h"
#include "wire/wire.h"

/* A queued outgoing packet, for a client that reads slower than we reply. */
typedef struct emxd_packet {
  struct emxd_packet *next;
  size_t len;
  uint8_t data[];
} emxd_packet;

/* emxd_session: one connection. The I/O thread owns its life; engine
 * workers reply through it (under `lock`) from path.h's done(). It is freed
 * in release(), once the I/O thread has closed it and the last request has
 * completed, because those requests write into the arena. */
struct emxd_session {
  emxd_server *srv;
  emxd_ev ev;             /* epoll tag */
  int fd;                 /* the connection; -1 once closed */
  uint32_t id;            /* for logs */
  pid_t pid;              /* SO_PEERCRED's, for logs (never HELLO's) */
  emxd_peer peer;         /* who the kernel says is there */
  emxd_client *cl;        /* the path's side; NULL until hello: only then
                             does the connection count for its uid */
  bool hello_done;        /* arena accepted */
  bool complete_many;     /* the client takes a BATCH's replies together */
  bool paged;             /* the client pages LIST (EMX_WIRE_HELLO_PAGED) */
  bool reading;           /* EPOLLIN armed */
  int64_t hello_deadline; /* drop if no hello by then */
  emx__arena arena;       /* client tensors; unmapped at release */

  pthread_mutex_t lock;             /* guards everything below */
  bool dead;                        /* closed: send nothing more */
  bool want_write;                  /* EPOLLOUT armed */
  emxd_packet *out_head, *out_tail; /* unsent replies, in order */
  size_t out_bytes;

  emxd_session *next; /* server's list (I/O thread only) */
};

/* unix_send.c. emxd__unix_arm_locked: epoll interest follows `reading`
 * and `want_write` (session lock held). */
void emxd__unix_arm_locked(emxd_session *s);
/* emxd__unix_send_locked: emxd__unix_send with the session lock held. */
void emxd__unix_send_locked(emxd_session *s, const void *buf, size_t len);
/* emxd__unix_send sends a reply now or queues it (any thread). */
void emxd__unix_send(emxd_session *s, const void *buf, size_t len);
/* emxd__unix_error sends ERROR for request id (any thread). */
void emxd__unix_error(emxd_session *s, uint64_t id, int status,
                      const char *msg);
/* unix_models.c, I/O thread only. */
void emxd__unix_reply_model(emxd_session *s, uint64_t id, const emxd_model *m);
void emxd__unix_reply_models(emxd_session *s, uint64_t id, uint32_t first);
int emxd__unix_load_bytes(emxd_session *s, const emx__wire_msg *m, int *fds,
                          int nfds);
void emxd__unix_unload(emxd_session *s, const emx__wire_msg *m);

#endif
