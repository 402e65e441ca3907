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
};

/* hreq: one request on a connection, from its first header callback to
 * MHD's "completed" notification. An infer has a second owner, the engine
 * (refs), until its completion callback has run. */
typedef struct hreq {
  struct emxd_http *h;
  struct MHD_Connection *conn;
  int route;           /* ROUTE_* */
  char model[64];      /* from the URL */
  uint8_t *body;       /* POST body, accumulated */
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
  uint8_t *outbuf; /* every output, one block */
} hreq;

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
