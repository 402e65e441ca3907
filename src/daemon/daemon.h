/* daemon.h — edgemuxd's pieces: options, the server loop, the model table
 * and repository; path.h is what front doors use, front/unix.h the Unix
 * socket door. The daemon is a transport around one engine; it uses
 * the public engine API plus the wire layer. */
#ifndef EMX_DAEMON_DAEMON_H
#define EMX_DAEMON_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/error.h"
#include "daemon/path.h"
#include "detect/detect.h"
#include "edgemux/edgemux.h"

#define EMX_D_MAX_DEVICES 32
#define EMX_D_MAX_ALLOW 32
#define EMXD_MAX_ZMQ 8 /* --zmq endpoints */

/* emxd_options: every setting, from flags or --config. */
typedef struct emxd_options {
  char socket_path[108];                  /* sun_path limit */
  const char *devices[EMX_D_MAX_DEVICES]; /* specs; none = {"cpu"} */
  size_t device_count;
  char models_dir[4096];             /* model repository, "" = none */
  int log_level;                     /* EMX_LOG_* */
  size_t queue_capacity;             /* per device */
  uint32_t max_inflight;             /* requests in flight per client */
  uint32_t max_conns_per_uid;        /* connections per peer uid */
  int64_t handshake_timeout_ns;      /* connect → hello */
  size_t max_outbox;                 /* bytes queued for a slow reader */
  uint64_t max_arena;                /* largest arena accepted */
  uid_t allow_uids[EMX_D_MAX_ALLOW]; /* peers allowed besides root/self */
  size_t allow_uid_count;
  gid_t allow_gids[EMX_D_MAX_ALLOW];
  size_t allow_gid_count;
  bool no_client_models;           /* refuse LOAD_BYTES */
  uint32_t max_client_models;      /* per uid (--max-client-models) */
  uint64_t max_client_model_bytes; /* per uid (--max-client-model-mb) */
  int64_t model_idle_ns;           /* unload unused client models; 0 never */
  uint64_t max_model_memory;       /* a client model's memory in its trial
                                      (--max-model-memory-mb) */
  int64_t load_timeout_ns;         /* a device's worker takes a model */
  int64_t stop_timeout_ns;         /* SIGTERM → exit, whatever hangs */
  struct {
    uid_t uid;
    unsigned weight;
  } weights[EMX_D_MAX_ALLOW]; /* fair share of a user's connections */
  size_t weight_count;
  /* HTTP front door (KServe v2) and Prometheus; "" = off. */
  char http_listen[128];              /* [ADDR:]PORT for /v2 (and /metrics) */
  char metrics_listen[128];           /* [ADDR:]PORT for /metrics alone */
  size_t http_max_body;               /* bytes of one request body */
  size_t http_max_header;             /* bytes of a request's headers */
  unsigned http_max_conns;            /* open HTTP connections, all clients */
  unsigned http_idle_timeout_s;       /* silent connection closed after this */
  int64_t http_request_timeout_ns;    /* body upload + default deadline */
  unsigned http_threads;              /* libmicrohttpd polling threads */
  char http_token_file[4096];         /* bearer token, "" = no auth */
  char tls_cert[4096], tls_key[4096]; /* PEM files, "" = plain HTTP */
  /* Connection limits (front/unix.c). */
  uint32_t max_incomplete_conns; /* connections that have not said hello */
  uint64_t max_arena_per_uid;    /* arena bytes of one uid's connections */
  unsigned socket_mode;          /* the socket file's mode (0660) */
  bool socket_group_set;         /* chown the socket to socket_group */
  gid_t socket_group;
  /* ZeroMQ door (Frigate's zmq detector); no endpoint = off. */
  char zmq_endpoints[EMXD_MAX_ZMQ][256]; /* --zmq, bound by a ROUTER */
  size_t zmq_count;
  int64_t zmq_timeout_ns; /* answer zero rows after this (--zmq-timeout-ms) */
  unsigned zmq_max_peers; /* detector sockets served at once */
} emxd_options;

/* emxd_weight_add records --client-weight UID:W; -1 with a message in err
 * when the text or the values are bad. */
int emxd_weight_add(emxd_options *o, const char *text, emx__errbuf *err);

void emxd_options_init(emxd_options *o);

/* --socket-mode (octal) and --socket-group (name or gid); -1 with a
 * message in err when the text is bad. */
int emxd_socket_mode_set(emxd_options *o, const char *text, emx__errbuf *err);
int emxd_socket_group_set(emxd_options *o, const char *text, emx__errbuf *err);

/* emxd_config_load applies a JSON config file (same keys as the flags). */
int emxd_config_load(emxd_options *o, const char *path, emx__errbuf *err);

/* emxd_model_settings: a model's config.json (all optional). */
typedef struct emxd_model_settings {
  char file[256];     /* "model": the .tflite in the model's folder */
  char devices[128];  /* "devices": placement; "" = anywhere */
  int64_t timeout_ns; /* "timeout_ms": default deadline; 0 = none */
  int max_batch;      /* "dynamic_batching": see emx_model_config */
  int preferred_batch[EMX_MAX_PREFERRED_BATCH];
  int64_t batch_delay_ns;
  bool has_detection;           /* "detection": rows for Frigate, HTTP */
  emx__detect_config detection; /* docs/detection.md */
} emxd_model_settings;

#define EMXD_MAX_ALIASES 8
#define EMXD_RETIRED 64

/* emxd_model: one model in the table (models.c). Doors see it through
 * path.h's accessors and references; the fields are the daemon's own. */
struct emxd_model {
  uint32_t id;                        /* wire id; never reused while the
                                         daemon runs */
  char name[64];                      /* registry name */
  char path[4096];                    /* file it came from */
  emx_model *model;                   /* engine handle (until the last
                                         reference goes) */
  emx_engine *engine;                 /* its engine */
  _Atomic int64_t default_timeout_ns; /* from config.json; 0 = none */
  bool from_repo;                     /* found by a repository scan */
  emxd_model_settings settings;       /* what it was loaded with */
  bool seen;                          /* rescan bookkeeping (I/O thread) */
  char sha256[65];                    /* hex of its bytes: its identity */
  uint64_t size;                      /* bytes */
  bool client;                        /* loaded by a client (LOAD_BYTES) */
  uid_t owner;                        /* that client's uid (quota, UNLOAD) */
  char aliases[EMXD_MAX_ALIASES][64]; /* other names for the same bytes */
  size_t alias_count;                 /* (under models_lock) */
  _Atomic(emx__detector *) detector;  /* built on first use (detect.c) */
  struct emxd_model *next;            /* srv->models (under models_lock) */
  /* Written once per request, on cache lines of their own (the struct is
   * allocated 64-aligned): by a door's thread at submission, by the engine
   * worker at completion, and by both (references). Sharing a line with
   * each other or with what lookups read made every request of a BATCH
   * pull the line from the other core. */
  _Alignas(64) atomic_ullong submitted, rejected; /* emxd_model_counters */
  _Atomic int64_t last_used_ns;                   /* last request (idle
                                                     unload) */
  _Alignas(64) atomic_ullong completed, failed;
  _Atomic double executions;          /* invokes: 1/batch per request */
  atomic_ullong queue_ns, compute_ns; /* sums over requests that ran */
  _Alignas(64) atomic_int refs;       /* the table's + one per holder */
};

typedef struct emxd_session emxd_session;
typedef struct emxd_admin emxd_admin;
typedef struct emxd_ev emxd_ev;

/* epoll user data: tells sessions from the daemon's own fds. */
typedef enum {
  EMXD_EV_LISTEN = 1,
  EMXD_EV_SIGNAL = 2,
  EMXD_EV_SESSION = 3,
  EMXD_EV_ADMIN = 4
} emxd_ev_kind;

struct emxd_ev {
  emxd_ev_kind kind; /* which object */
  void *ptr;         /* the session, for EMXD_EV_SESSION */
};

/* emxd_door_counters: emxd_door_stats, updated from any thread. */
typedef struct emxd_door_counters {
  atomic_ullong clients, opened, refused;
  atomic_ullong submitted, rejected; /* a door's thread, per request */
  /* The engine worker's, per request: a line apart from submitted. */
  _Alignas(64) atomic_ullong completed, failed;
} emxd_door_counters;

struct emxd_server {
  emxd_options *opt;
  emx_engine *engine;
  int epfd;              /* epoll set */
  int listen_fd;         /* -1 once closed */
  bool owns_socket_path; /* we bound it (not socket activation): unlink */
  bool listen_paused;    /* out of fds: listener out of the epoll set */
  int signal_fd;         /* SIGTERM, SIGINT, SIGHUP */
  emxd_ev listen_ev, signal_ev, admin_ev; /* epoll tags */
  atomic_bool draining;                   /* SIGTERM seen */
  int64_t started_ns;

  pthread_mutex_t models_lock; /* guards models, next_model_id */
  emxd_model *models;          /* changed only by the admin thread */
  uint32_t next_model_id;
  struct {
    char name[64];
    char sha256[65];
    uint32_t id;
  } retired[EMXD_RETIRED]; /* unloaded repository models: a model that
                              comes back keeps its id (admin thread) */
  size_t retired_next;
  emxd_admin *admin; /* admin.c */
  /* emxd_path_cancel_model, set by server.c: models.c cancels an unloaded
   * model's queued requests through it (path.c calls models.c). */
  void (*cancel_model)(emxd_server *srv, emxd_model *m);

  pthread_mutex_t clients_lock; /* guards clients, client_count */
  emxd_client *clients;         /* every door's (path.c) */
  size_t client_count;
  emxd_door_counters doors[EMXD_DOOR_COUNT];

  emxd_session *sessions; /* Unix door's (I/O thread only) */
  uint32_t next_session_id;
  struct emxd_http *http;    /* the KServe v2 door, or NULL */
  atomic_size_t http_conns;  /* its open connections, for /metrics */
  struct emxd_http *metrics; /* a /metrics-only door, or NULL */
  struct emxd_zmq *zmq;      /* the ZeroMQ door, or NULL */
};

/* listener.c */
int emxd_listen(emxd_server *srv, emx__errbuf *err);
void emxd_listen_close(emxd_server *srv);
/* Out of descriptors (EMFILE): stop polling the listener, which would fire
 * again at once, until a session closes and frees one. */
void emxd_listen_pause(emxd_server *srv);
void emxd_listen_resume(emxd_server *srv);

/* repo.c: (re)scan the model repository; loads new, unloads removed. */
void emxd_repo_scan(emxd_server *srv);

/* models.c: the table. Only the admin thread (and startup, before it
 * runs) changes it. emxd_model_load loads a repository file (settings NULL:
 * the defaults); *out is the table's entry, not a reference. */
int emxd_model_load(emxd_server *srv, const char *name, const char *path,
                    const emxd_model_settings *settings, bool from_repo,
                    emxd_model **out, emx__errbuf *err);
/* emxd_model_load_client loads a client's bytes (already hashed to hex,
 * and survived the trial unless it is already loaded) under name for uid:
 * shares a loaded copy of the same bytes; checks names and quotas. */
int emxd_model_load_client(emxd_server *srv, const char *name, const void *data,
                           size_t size, const char *hex, const char *devices,
                           uid_t uid, emxd_model **out, emx__errbuf *err);
/* emxd_model_client_check: what emxd_model_load_client would refuse
 * before any trial (name taken, quota); 1 when the bytes are loaded
 * already (no trial needed), 0 when they need loading. */
int emxd_model_client_check(emxd_server *srv, const char *name, const char *hex,
                            const char *devices, uint64_t size, uid_t uid,
                            emx__errbuf *err);
/* emxd_model_unload takes m out of the table, cancels its queued requests
 * and unloads it from the engine (waiting for the running ones: admin
 * thread only); holders' references stay readable. */
void emxd_model_unload(emxd_server *srv, emxd_model *m);
/* emxd_model_unload_name: UNLOAD from a client of uid. */
int emxd_model_unload_name(emxd_server *srv, const char *name, uid_t uid,
                           emx__errbuf *err);
/* emxd_models_sweep unloads client models unused for --model-idle-s;
 * returns when the next one may fall idle (INT64_MAX: none). */
int64_t emxd_models_sweep(emxd_server *srv, int64_t now);
int64_t emxd_model_default_timeout(emxd_model *m);
void emxd_models_free(emxd_server *srv);

/* detect.c: emxd_model_detector returns m's detector (its config.json's
 * "detection"; a client model whose four outputs are those of
 * TFLite_Detection_PostProcess gets that mapping), built once and freed
 * with m; NULL with err saying why when m is not a detector. Any thread. */
const emx__detector *emxd_model_detector(emxd_model *m, emx__errbuf *err);

/* path.c: emxd_path_cancel_model cancels every queued request for m. */
void emxd_path_cancel_model(emxd_server *srv, emxd_model *m);

/* trial.c: run the model in memfd once in a throwaway edgemux-devhost,
 * which also measures the memory it takes loaded (at most max_bytes); 0,
 * or EMX_EMODEL / EMX_ETIMEDOUT / EMX_EBUSY (too big) with a message for
 * the client. */
int emxd_trial(int memfd, uint64_t max_bytes, emx__errbuf *err);

/* admin.c: the admin thread. Loads, unloads and rescans run there; it
 * answers the I/O thread through an eventfd in the epoll set. */
typedef enum { EMXD_JOB_LOAD, EMXD_JOB_UNLOAD, EMXD_JOB_RESCAN } emxd_job_kind;
typedef struct emxd_job {
  struct emxd_job *next;
  emxd_job_kind kind;
  uint32_t session;  /* who asked (0: SIGHUP) */
  uint64_t req;      /* the request id to answer */
  uid_t uid;         /* the asker's */
  char name[256];    /* LOAD, UNLOAD */
  char devices[128]; /* LOAD: the placement asked for; "" = anywhere */
  int fd;            /* LOAD: the sealed memfd (owned by the job) */
  uint64_t size;     /* its size */
  int status;        /* result */
  char msg[512];     /* error text */
  emxd_model *model; /* LOAD: a reference, for the reply */
  /* A door other than the Unix socket (HTTP) answers its own jobs: called
   * on the I/O thread with the finished job, instead of a session lookup;
   * it must not block. The job is freed after it returns. */
  void (*answer)(struct emxd_job *job);
  void *answer_ctx;
} emxd_job;
int emxd_admin_start(emxd_server *srv, emx__errbuf *err);
void emxd_admin_stop(emxd_server *srv);
/* emxd_admin_post hands a job over (a door's thread: the I/O thread or
 * the HTTP door's; never waits on work). */
void emxd_admin_post(emxd_server *srv, emxd_job *job);
/* emxd_admin_fd: the eventfd that says finished jobs are waiting. */
int emxd_admin_fd(emxd_server *srv);
/* emxd_admin_take returns the finished jobs (a list; the caller frees). */
emxd_job *emxd_admin_take(emxd_server *srv);
void emxd_job_free(emxd_job *job);
void emxd_job_free_list(emxd_job *list);

/* status.c: the STATUS_OK text; returns bytes written (<= cap). */
size_t emxd_status_text(emxd_server *srv, char *buf, size_t cap);

/* front/http.c: the HTTP door (KServe v2, /metrics). emxd_http_start
 * listens on `listen` ([ADDR:]PORT); metrics_only serves /metrics alone.
 * emxd_http_quiesce stops accepting; emxd_http_idle says no request is in
 * flight; emxd_http_stop needs the engine shut down first (it completes
 * every suspended request). */
/* EMXD_HTTP_UID owns models loaded over HTTP: TCP has no peer uid, so
 * all HTTP clients count as one user for --max-client-models and only
 * they (or root) may unload what they loaded. */
#define EMXD_HTTP_UID ((uid_t)-2)

int emxd_http_start(emxd_server *srv, const char *listen, bool metrics_only,
                    struct emxd_http **out, emx__errbuf *err);
void emxd_http_quiesce(struct emxd_http *h);
bool emxd_http_idle(struct emxd_http *h);
void emxd_http_stop(struct emxd_http *h);

/* front/zmq.c: the ZeroMQ door (Frigate's zmq detector protocol) on its
 * own thread, one ROUTER socket per --zmq endpoint. emxd_zmq_stop needs
 * the engine shut down first (every request completed). */
#define EMXD_ZMQ_UID ((uid_t)-3) /* owns models pushed over ZeroMQ */
int emxd_zmq_start(emxd_server *srv, struct emxd_zmq **out, emx__errbuf *err);
void emxd_zmq_stop(struct emxd_zmq *z);
/* emxd_zmq_idle: no ZeroMQ request is in flight (drain). NULL: true. */
bool emxd_zmq_idle(struct emxd_zmq *z);

/* front/metrics.c: Prometheus text for /metrics; malloc'd, NULL on OOM. */
char *emxd_metrics_text(emxd_server *srv, size_t *len);

/* app/server.c */
int emxd_server_run(emxd_options *opt);

#endif
