/* internal.h — the client library's objects, shared by src/client.
 *
 * One mutex per client (c->mu) guards everything in struct emx_client,
 * every model's connection id, every request's completion state and the
 * arena allocator. Nothing is touched outside it except the socket during
 * send/recv (the fd number itself is only changed by connect, destroy and
 * the post-fork reset, none of which run concurrently with other calls) and
 * the receive buffer, which belongs to whichever thread holds the reader
 * role (c->reading).
 *
 * Waiting is leader/follower: a thread that needs a reply and finds nobody
 * reading becomes the reader, reads one packet with the mutex released,
 * dispatches it under the mutex and broadcasts c->cv; the others sleep on
 * c->cv. */
#ifndef EMX_CLIENT_INTERNAL_H
#define EMX_CLIENT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/error.h"
#include "edgemux/client.h"
#include "core/arena.h"
#include "wire/wire.h"

#define EMX__CLIENT_BUCKETS 256 /* pending-id hash; ids are sequential */
#define EMX__ALLOC_ALIGN 64     /* tensor alignment in the arena */

/* ---- arena allocator (alloc.c) ------------------------------------------- */

typedef struct emx__block {
  uint64_t off;  /* offset in the arena, a multiple of EMX__ALLOC_ALIGN */
  uint64_t size; /* bytes, a multiple of EMX__ALLOC_ALIGN */
} emx__block;

/* emx__alloc: first-fit over [0, size) with two offset-sorted arrays. The
 * bookkeeping lives in client memory, never in the shared arena, so neither
 * a stray write into a tensor nor the daemon can corrupt it. */
typedef struct emx__alloc {
  emx__block *free; /* free blocks, sorted by offset, never adjacent */
  size_t nfree;
  size_t free_cap;  /* kept >= nused + 1 so that freeing never allocates */
  emx__block *used; /* allocated blocks, sorted by offset */
  size_t nused;
  size_t used_cap;
} emx__alloc;

void emx__alloc_init(emx__alloc *a, uint64_t size);
void emx__alloc_fini(emx__alloc *a);
/* emx__alloc_get reserves `bytes` (rounded up to the alignment, at least one
 * unit) and stores its offset: 0, or EMX_ENOMEM when nothing fits. */
int emx__alloc_get(emx__alloc *a, uint64_t bytes, uint64_t *off);
/* emx__alloc_put releases the block at `off`; 0, or EMX_EINVAL when no
 * block starts there (a double free, or a tensor from elsewhere). */
int emx__alloc_put(emx__alloc *a, uint64_t off);

/* ---- pending replies ----------------------------------------------------- */

/* emx__pending is one request id awaiting its reply. Requests embed one;
 * control calls (OPEN, PING, ...) keep one on their stack. */
typedef struct emx__pending {
  uint64_t id;                    /* request id in the header */
  uint8_t expect;                 /* reply type wanted (ERROR always fits) */
  uint8_t done;                   /* the reply arrived (or never will) */
  int status;                     /* 0 or EMX_E*, once done */
  void *reply;                    /* control calls: malloc'ed copy of it */
  size_t reply_len;               /* bytes at reply */
  struct emx_client_request *req; /* the request embedding this, or NULL */
  struct emx__pending *next;      /* hash chain */
} emx__pending;

/* ---- hybrid wait: round-trip estimate (rtt.c), the wait (pace.c) -------- */

/* emx__pace: how long a model's lone synchronous request takes from
 * submit to reply, smoothed. */
typedef struct emx__pace {
  int64_t srtt_ns;   /* mean */
  int64_t rttvar_ns; /* mean deviation */
  int samples;       /* counted up to the few needed to trust them */
} emx__pace;

/* emx__pace_enabled: EDGEMUX_WAIT is not "block". */
bool emx__pace_enabled(void);
/* emx__pace_note folds one round trip into p. */
void emx__pace_note(emx__pace *p, int64_t rtt_ns);
/* emx__pace_window: when to start polling for a reply to a request sent
 * at sent_ns (a sleep wakes `late` ns late) and when to stop; false while
 * p has too few samples. */
bool emx__pace_window(const emx__pace *p, int64_t sent_ns, int64_t late,
                      int64_t *poll_from, int64_t *poll_until);

/* ---- objects ------------------------------------------------------------- */

struct emx_client_model {
  struct emx_client *client;     /* owner */
  char *name;                    /* as opened */
  uint32_t id;                   /* the daemon's id on connection `gen` */
  uint64_t gen;                  /* connection the id belongs to */
  size_t nin, nout;              /* tensor counts */
  emx_tensor_info *info;         /* nin inputs, then nout outputs; names
                                    malloc'ed, freed with the model */
  emx__pace pace;                /* its lone synchronous round trips */
  struct emx_client_model *next; /* client's list */
};

struct emx_client_request {
  emx__pending p;            /* id, completion; first member */
  struct emx_client *client; /* owner; kept alive by this handle */
  int abandoned;             /* destroyed while pending: dispatch frees */
  int64_t submitted_ns;      /* local clock at submit */
  emx__pace *pace;           /* its model's, while pending, when it was the
                                connection's only request at submit */
  emx_timings timings;       /* from COMPLETE */
  char *msg;                 /* failure text (malloc'ed) or NULL */
};

struct emx_client {
  pthread_mutex_t mu;           /* guards everything below */
  pthread_cond_t cv;            /* broadcast on every dispatch / role change */
  atomic_int pid;               /* process that owns the connection */
  atomic_uint fork_gen;         /* io.c's fork count when pid was checked */
  int sock;                     /* SOCK_SEQPACKET, -1 when none */
  emx__arena arena;             /* shared tensor memory */
  emx__alloc alloc;             /* over the arena */
  uint64_t gen;                 /* bumped by every successful (re)connect */
  char path[108];               /* socket path (sun_path size) */
  size_t arena_bytes;           /* as configured, for reconnects */
  int64_t timeout_ns;           /* connect + hello */
  uint32_t max_inflight;        /* from HELLO_OK (0 → unlimited) */
  uint32_t max_batch;           /* from HELLO_OK */
  uint64_t next_id;             /* next request id */
  size_t inflight;              /* requests awaiting COMPLETE/ERROR */
  int reading;                  /* a thread holds the reader role */
  int closed;                   /* emx_client_destroy ran */
  int broken;                   /* 0, or the status every call now gets */
  bool saw_reset;               /* ECONNRESET seen once: drain, then EOF */
  char broken_msg[EMX__ERRLEN]; /* why */
  size_t refs;                  /* 1 for the owner + live request handles */
  void *rbuf;                   /* EMX_WIRE_MAX_MSG bytes, the reader's */
  emx__pending *buckets[EMX__CLIENT_BUCKETS]; /* pending ids */
  struct emx_client_model *models;            /* opened models */
  unsigned pace_skip;    /* lone requests left to block through (pace.c) */
  unsigned pace_backoff; /* the last skip, doubled by each failed poll */
};

/* ---- io.c ---------------------------------------------------------------- */

/* emx__client_open connects c->path, creates the arena, says hello. On
 * success c->sock, c->arena, c->alloc and the limits are set and c->gen is
 * bumped; on failure nothing is left open. */
int emx__client_open(struct emx_client *c, emx__errbuf *err);

/* emx__client_init_sync initialises c's mutex and condvar, registers the
 * fork hook and records the connecting process. */
void emx__client_init_sync(struct emx_client *c);

/* emx__client_enter locks c, first doing the post-fork reset when the
 * caller is not the process that connected (reconnecting unless
 * `reconnect` is 0 or the client was destroyed). */
void emx__client_enter(struct emx_client *c, int reconnect);
#define emx__client_leave(c) pthread_mutex_unlock(&(c)->mu)

/* emx__client_fail_broken records c's broken state as the thread's last error.
 */
int emx__client_fail_broken(struct emx_client *c);

/* emx__client_set_broken marks the connection dead: every pending id
 * completes with `code`, every later call fails with it. Locked. */
void emx__client_set_broken(struct emx_client *c, int code, const char *fmt,
                            ...) __attribute__((format(printf, 3, 4)));

/* emx__client_register assigns p a fresh id and files it. Locked. */
void emx__client_register(struct emx_client *c, emx__pending *p,
                          uint8_t expect);
/* emx__client_unregister removes p if still filed. Locked. */
void emx__client_unregister(struct emx_client *c, emx__pending *p);

/* emx__client_send sends one packet, dropping the lock meanwhile. A failure
 * breaks the connection. Returns 0 or the broken status. Locked. */
int emx__client_send(struct emx_client *c, const void *pkt, size_t len);
/* emx__client_send_fd is emx__client_send passing fd (SCM_RIGHTS) too. */
int emx__client_send_fd(struct emx_client *c, const void *pkt, size_t len,
                        int fd);

/* emx__client_wait makes progress (reading replies as the leader, or
 * sleeping as a follower) until pred(c, arg) holds (0), the deadline passes
 * (EMX_EAGAIN; deadline < 0: never; 0 or past: poll) or the connection
 * breaks (its status). Locked. */
int emx__client_wait(struct emx_client *c,
                     int (*pred)(struct emx_client *, void *), void *arg,
                     int64_t deadline);

/* emx__client_read_now reads and dispatches one packet if one is queued,
 * without waiting: 1 (one was), 0 (none) or the broken status. The caller
 * holds the reader role. Locked; the lock is dropped meanwhile. */
int emx__client_read_now(struct emx_client *c);

/* emx__client_pace_wait: the hybrid wait (pace.c) for r while it is the
 * connection's only request in flight: sleeps until shortly before its
 * reply is due, then polls for it while the CPU is otherwise idle.
 * Returns with r done, or with the rest left to emx__client_wait. Does
 * nothing unless r was lone at submit, nor while another thread reads or
 * its model's pace is not yet known. Locked. */
void emx__client_pace_wait(struct emx_client *c, struct emx_client_request *r);

/* emx__client_rpc sends a control packet (its header id is filled in) and
 * waits for the `expect` reply; on 0 *reply (malloc'ed, free it) holds the
 * decoded reply. On failure the thread's last error is set. Locked. */
int emx__client_rpc(struct emx_client *c, void *pkt, size_t len, uint8_t expect,
                    void **reply, emx__wire_msg *msg);
/* emx__client_rpc_fd is emx__client_rpc passing fd with the request. */
int emx__client_rpc_fd(struct emx_client *c, void *pkt, size_t len, int fd,
                       uint8_t expect, void **reply, emx__wire_msg *msg);

/* emx__client_reopen re-OPENs m on the current connection when its id is
 * from an older one (after fork). Locked. */
int emx__client_reopen(struct emx_client *c, struct emx_client_model *m);

/* emx__client_free_request releases a completed request's memory (not the
 * client reference). */
void emx__client_free_request(struct emx_client_request *r);

/* emx__client_release drops one reference; frees the client shell at zero.
 * Called locked; returns with the lock released (and c possibly freed). */
void emx__client_release(struct emx_client *c);

#endif
