/* zmq_int.h — internal to the ZeroMQ door (zmq.c, zmq_peer.c,
 * zmq_handshake.c, zmq_infer.c): its state, a peer, a frame in flight.
 *
 * Frigate's zmq detector (frigate/detectors/plugins/zmq_ipc.py) is one REQ
 * socket per detector process; the door binds a ROUTER per --zmq endpoint,
 * so every frame arrives as [routing id, "", header JSON, payload]. Each
 * routing id is a peer and one engine stream (emxd_client): several Frigate
 * instances on one Coral are scheduled like any other clients.
 *
 * Threads. One thread ("emx:zmq") owns the sockets and every peer; engine
 * workers (done) and the I/O thread (admin answers) only append to locked
 * lists and poke an eventfd the thread polls beside its sockets. */
#ifndef EMX_DAEMON_FRONT_ZMQ_INT_H
#define EMX_DAEMON_FRONT_ZMQ_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "daemon/daemon.h"
#include "daemon/path.h"

#define EMXZ_ROWS 20                         /* Frigate's reply */
#define EMXZ_REPLY_BYTES (EMXZ_ROWS * 6 * 4) /* 480 */
#define EMXZ_MAX_OUT 8                       /* model outputs */
#define EMXZ_MAX_HEADER 4096                 /* bytes of header JSON */
#define EMXZ_IDLE_NS (600LL * 1000000000)    /* forget a silent peer */

typedef struct zpeer zpeer;

/* zreq: one frame with the engine. Owned by the engine until done(), then
 * by the thread, which answers it if it is still the peer's current frame
 * (gen) and frees it. */
typedef struct zreq {
  struct zreq *next; /* the done list */
  zpeer *peer;
  uint64_t gen;  /* peer->gen when submitted */
  emxd_model *m; /* a reference */
  int status;
  char msg[200];
  void *in; /* the converted input */
  size_t nout;
  emx_tensor outs[EMXZ_MAX_OUT];
  uint8_t *outbuf; /* every output, one block */
} zreq;

/* zanswer: a pushed model's LOAD, answered by the admin thread. */
typedef struct zanswer {
  struct zanswer *next;
  zpeer *peer;
  uint64_t gen;
  int status;
  char msg[300];
  emxd_model *m; /* a reference on success */
} zanswer;

struct zpeer {
  zpeer *next;
  struct emxd_zmq *z;
  size_t sock;     /* which endpoint's ROUTER */
  uint8_t id[256]; /* ROUTER routing id */
  size_t id_len;
  bool delim;          /* REQ: replies carry the empty delimiter */
  emxd_client *cl;     /* its engine stream */
  emxd_model *model;   /* chosen at the handshake (a reference) or NULL */
  uint64_t gen;        /* numbers its frames; a reply must match */
  bool waiting;        /* the current frame awaits its reply */
  int64_t deadline_ns; /* when it gets zero rows instead */
  size_t outstanding;  /* zreqs and zanswers not back yet */
  int64_t last_ns;     /* last frame (eviction) */
  char name[64];       /* for logs */
};

struct emxd_zmq {
  emxd_server *srv;
  void *ctx;
  void *socks[EMXD_MAX_ZMQ];
  size_t nsocks;
  pthread_t thread;
  bool started;
  int wake_fd;          /* eventfd: done, answers, stop */
  pthread_mutex_t lock; /* guards done, answers */
  zreq *done, *done_tail;
  zanswer *answers;
  atomic_bool stop;
  zpeer *peers; /* the thread's */
  size_t npeers;
  uint32_t next_peer;
  atomic_size_t inflight; /* zreqs with the engine */
  int64_t log_ns;         /* rate limit of the zero-row log */
  unsigned log_skipped;
};

/* zmq_queue.c: hand a finished frame or pushed model to the thread (any
 * thread; never waits on the door); emxz_take gives the thread both lists
 * (done in completion order). */
void emxz_post_done(struct emxd_zmq *z, zreq *r);
void emxz_post_answer(struct emxd_zmq *z, zanswer *a);
void emxz_take(struct emxd_zmq *z, zreq **done, zanswer **answers);
void emxz_wake(struct emxd_zmq *z);

/* zmq_peer.c: peers and replies (the thread only). */
zpeer *emxz_peer_get(struct emxd_zmq *z, size_t sock, const uint8_t *id,
                     size_t id_len, bool delim);
void emxz_peer_free(zpeer *p);
void emxz_peers_sweep(struct emxd_zmq *z, int64_t now);
/* emxz_reply sends one frame to p (never waits: ROUTER drops what a gone
 * peer cannot take). */
void emxz_reply(zpeer *p, const void *data, size_t len);
void emxz_reply_json(zpeer *p, json_t *doc); /* steals doc */
/* emxz_zero_rows ends p's current frame with 20 zero rows and logs why
 * (the protocol has no error frame; rate limited). */
void emxz_zero_rows(zpeer *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* zmq_handshake.c */
void emxz_handshake(zpeer *p, json_t *hdr);
void emxz_push_model(zpeer *p, json_t *hdr, const void *data, size_t len);
void emxz_push_answered(struct emxd_zmq *z, zanswer *a);
/* emxz_model_by_name: a repository model by Frigate's model file name
 * ("ssd.tflite": the model "ssd", or one whose file is ssd.tflite); a
 * reference or NULL. */
emxd_model *emxz_model_by_name(emxd_server *srv, const char *name);

/* zmq_infer.c */
void emxz_infer(zpeer *p, json_t *hdr, const void *data, size_t len);
void emxz_finish(struct emxd_zmq *z, zreq *r);
void emxz_req_free(zreq *r);

#endif
