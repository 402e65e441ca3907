/* http_conn.h — internal to the HTTP door (http.c, http_repo.c): its
 * state, one request's state, and the helpers they share. */
#ifndef EMX_DAEMON_FRONT_HTTP_CONN_H
#define EMX_DAEMON_FRONT_HTTP_CONN_H

#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

#include "daemon/daemon.h"
#include "daemon/front/http_codec.h"
#include "daemon/path.h"

/* One path client per client address, shared by that address's
 * connections: each address is one engine stream, so sched=fair shares a
 * device between hosts, not between sockets. */
typedef struct peer {
  struct peer *next;
  char addr[INET6_ADDRSTRLEN];
  emxd_client *cl; /* NULL: refused at admission (draining) */
  char refused[160];
  size_t conns; /* connections from this address */
} peer;

/* Spare buffers (http_spare.c): bodies and output blocks of requests
 * done, for the next requests to reuse. */
#define EMXH_SPARES 8             /* buffers kept */
#define EMXH_SPARE_MAX (4u << 20) /* larger ones are freed */
typedef struct emxh_spares {
  pthread_mutex_t lock; /* guards the rest */
  size_t n;
  void *buf[EMXH_SPARES];
  size_t cap[EMXH_SPARES];
} emxh_spares;

struct emxd_http {
  emxd_server *srv;
  struct MHD_Daemon *mhd;
  bool metrics_only;
  char token[256]; /* bearer token; "" = no auth */
  size_t token_len;
  char *tls_cert, *tls_key; /* PEM text, kept for the daemon's life */
  pthread_mutex_t lock;     /* guards peers */
  peer *peers;
  atomic_size_t conns;            /* open connections */
  size_t max_conns;               /* --http-max-connections */
  _Atomic int64_t refused_log_ns; /* last "limit reached" log line */
  atomic_size_t inflight;         /* infers submitted, not completed */
  emxh_spares spares;
};

/* hreq: one request on a connection, from its first header callback to
 * MHD's "completed" notification. An infer has a second owner, the engine
 * (refs), until its completion callback has run. */
typedef struct hreq {
  struct emxd_http *h;
  struct MHD_Connection *conn;
  int route;           /* ROUTE_* */
  char model[64];      /* from the URL */
  uint8_t *body;       /* POST body, accumulated (a spare buffer) */
  size_t len, cap;     /* bytes in body / allocated */
  int64_t deadline_ns; /* the body must have arrived by then */
  bool posted;         /* the body is complete and was handled */
  emxh_error early;    /* a refusal found before the body ended */
  /* infer */
  atomic_int refs;
  pthread_mutex_t lock; /* guards done, suspended, status */
  bool done, suspended;
  int status;
  char errmsg[512];
  emxd_model *m; /* a reference, held until the request is freed */
  emx_tensor_info in[EMXH_MAX_TENSORS], out[EMXH_MAX_TENSORS];
  emxh_model_desc desc;
  emxh_request parsed;
  emx_tensor outs[EMXH_MAX_TENSORS];
  uint8_t *outbuf; /* every output, one block (a spare buffer) */
  size_t outcap;   /* its size */
} hreq;

/* emxh__spare_take returns a buffer of at least n bytes (its size in
 * *cap), a spare one if one fits; NULL when out of memory.
 * emxh__spare_give takes a buffer back (NULL: nothing); emxh__spares_free
 * frees those kept, once no request is left. */
void *emxh__spare_take(struct emxd_http *h, size_t n, size_t *cap);
void emxh__spare_give(struct emxd_http *h, void *buf, size_t cap);
void emxh__spares_free(struct emxd_http *h);

/* emxh__hreq_unref drops one owner of r; the last frees it. */
void emxh__hreq_unref(hreq *r);

/* emxh__send_body queues a response owning `text` (may be NULL: empty);
 * emxh__send_error queues {"error": msg}. */
enum MHD_Result emxh__send_body(struct MHD_Connection *c, int status,
                                char *text, const char *type);
enum MHD_Result emxh__send_error(struct MHD_Connection *c, int status,
                                 const char *msg);

/* http_repo.c: POST /v2/repository/models/{m}/load and /unload; start
 * hands the job over and suspends, finish answers once it is done. */
enum MHD_Result emxh__start_admin(hreq *r);
enum MHD_Result emxh__finish_admin(hreq *r);

#endif
