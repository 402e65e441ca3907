/* path.c — the request path every front door shares: admission, one engine
 * stream per client, submission, completion, cancel, and a teardown that
 * never lets a request write into memory its door has freed. See path.h
 * for who calls what from which thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "daemon/daemon.h"

typedef struct emxd_call {
  struct emxd_call *prev, *next; /* client->calls */
  emxd_client *cl;
  uint64_t id;       /* the door's request id */
  void *tag;         /* the door's, echoed in done() */
  emxd_model *model; /* a reference, dropped after done() */
  emx_request *req;  /* engine handle */
  atomic_int refs;   /* engine callback + list membership (+ a canceller) */
  bool listed;       /* in client->calls (under cl->lock) */
} emxd_call;

struct emxd_client {
  emxd_server *srv;
  emxd_peer peer;
  const emxd_door_ops *ops;
  void *door_ctx;
  emx_stream *stream; /* completions in submission order */
  atomic_int refs;    /* 1 (the door) + 1 per in-flight request */

  pthread_mutex_t lock; /* guards the two below */
  emxd_call *calls;     /* in flight (for cancel and teardown) */
  size_t inflight;

  emxd_client *prev, *next; /* srv->clients (under srv->clients_lock) */
};

const char *emxd_door_name(emxd_door door) {
  switch (door) {
  case EMXD_DOOR_UNIX:
    return "unix";
  case EMXD_DOOR_HTTP:
    return "http";
  case EMXD_DOOR_ZMQ:
    return "zmq";
  default:
    return "?";
  }
}

static emxd_door_counters *door_of(emxd_client *c) {
  return &c->srv->doors[c->peer.door];
}

static void client_unref(emxd_client *c) {
  if (atomic_fetch_sub(&c->refs, 1) != 1)
    return;
  /* Last reference: the door closed it and every request completed, so
   * nothing can write into the door's memory any more. */
  emx_stream_destroy(c->stream);
  pthread_mutex_destroy(&c->lock);
  c->ops->release(c->door_ctx);
  free(c);
}

static void call_unref(emxd_call *k) {
  if (atomic_fetch_sub(&k->refs, 1) != 1)
    return;
  emxd_client *c = k->cl;
  emx_request_destroy(k->req);
  emxd_model_put(k->model);
  free(k);
  client_unref(c);
}

static void unlist_locked(emxd_client *c, emxd_call *k) {
  if (!k->listed)
    return;
  if (k->prev)
    k->prev->next = k->next;
  else
    c->calls = k->next;
  if (k->next)
    k->next->prev = k->prev;
  k->listed = false;
  c->inflight--;
}

static size_t uid_count_locked(emxd_server *srv, uid_t uid) {
  size_t n = 0;
  for (emxd_client *it = srv->clients; it; it = it->next)
    n += it->peer.uid_known && it->peer.uid == uid;
  return n;
}

size_t emxd_client_count(emxd_server *srv, bool by_uid, uid_t uid) {
  pthread_mutex_lock(&srv->clients_lock);
  size_t n = by_uid ? uid_count_locked(srv, uid) : srv->client_count;
  pthread_mutex_unlock(&srv->clients_lock);
  return n;
}

int emxd_client_open(emxd_server *srv, const emxd_peer *peer,
                     const emxd_door_ops *ops, void *door_ctx,
                     emxd_client **out, emx__errbuf *err) {
  const emxd_options *o = srv->opt;
  emxd_door_counters *dc = &srv->doors[peer->door];
  *out = NULL;
  if (srv->draining) {
    atomic_fetch_add(&dc->refused, 1);
    return emx__errf(err, EMX_ESHUTDOWN, "shutting down");
  }
  emxd_client *c = calloc(1, sizeof *c);
  if (!c || emx_stream_create(srv->engine, &c->stream) < 0) {
    free(c);
    atomic_fetch_add(&dc->refused, 1);
    return emx__errf(err, EMX_ENOMEM, "daemon out of memory");
  }
  /* Each client is a stream: its share under sched=fair is its user's
   * weight. */
  if (peer->uid_known)
    for (size_t i = 0; i < o->weight_count; i++)
      if (o->weights[i].uid == peer->uid)
        emx_stream_set_weight(c->stream, o->weights[i].weight);
  c->srv = srv;
  c->peer = *peer;
  c->ops = ops;
  c->door_ctx = door_ctx;
  atomic_init(&c->refs, 1);
  pthread_mutex_init(&c->lock, NULL);

  /* Count and insert under one lock, so two doors cannot both take the
   * last slot of a uid. */
  pthread_mutex_lock(&srv->clients_lock);
  if (peer->uid_known &&
      uid_count_locked(srv, peer->uid) >= o->max_conns_per_uid) {
    pthread_mutex_unlock(&srv->clients_lock);
    emx_stream_destroy(c->stream);
    pthread_mutex_destroy(&c->lock);
    free(c);
    atomic_fetch_add(&dc->refused, 1);
    return emx__errf(err, EMX_EBUSY,
                     "uid %d already has %u connections, the most this "
                     "daemon allows one user (--max-conns-per-uid)",
                     (int)peer->uid, o->max_conns_per_uid);
  }
  c->next = srv->clients;
  if (srv->clients)
    srv->clients->prev = c;
  srv->clients = c;
  srv->client_count++;
  pthread_mutex_unlock(&srv->clients_lock);
  atomic_fetch_add(&dc->opened, 1);
  atomic_fetch_add(&dc->clients, 1);
  *out = c;
  return 0;
}

const emxd_peer *emxd_client_peer(const emxd_client *c) {
  return &c->peer;
}

size_t emxd_client_inflight(emxd_client *c) {
  pthread_mutex_lock(&c->lock);
  size_t n = c->inflight;
  pthread_mutex_unlock(&c->lock);
  return n;
}

/* on_complete runs on an engine worker, in this client's stream order. */
static void on_complete(emx_request *req, int status, void *user) {
  emxd_call *k = user;
  emxd_client *c = k->cl;
  emx_timings t;
  emx_request_timings(req, &t);
  const char *msg = status < 0 ? emx_request_error(req) : "";
  emxd_done d = {.id = k->id,
                 .tag = k->tag,
                 .status = status,
                 .msg = msg,
                 .msg_len = strnlen(msg, 900),
                 .device = t.device,
                 .batch = (uint32_t)t.batch,
                 .queue_ns = t.started_ns ? t.started_ns - t.submitted_ns : 0,
                 .device_ns = t.device_ns,
                 .total_ns = (t.finished_ns ? t.finished_ns : emx_now_ns()) -
                             t.submitted_ns};
  atomic_fetch_add(status == 0 ? &k->model->completed : &k->model->failed, 1);
  if (t.batch > 0) { /* it ran: the invoke it shared counts once */
    double e = atomic_load(&k->model->executions);
    while (!atomic_compare_exchange_weak(&k->model->executions, &e,
                                         e + 1.0 / t.batch)) {
    }
    atomic_fetch_add(&k->model->queue_ns, (uint64_t)d.queue_ns);
    atomic_fetch_add(&k->model->compute_ns, (uint64_t)t.device_ns);
  }
  atomic_fetch_add(status == 0 ? &door_of(c)->completed : &door_of(c)->failed,
                   1);

  pthread_mutex_lock(&c->lock);
  bool was_listed = k->listed;
  unlist_locked(c, k);
  pthread_mutex_unlock(&c->lock);
  /* Also after close: the door's memory lives until release(), and the
   * door may hold per-request state (a reply group) to free. */
  c->ops->done(c->door_ctx, &d);
  if (was_listed)
    call_unref(k);
  call_unref(k);
}

int emxd_client_submit(emxd_client *c, const emxd_call_desc *d,
                       emx__errbuf *err) {
  emxd_server *srv = c->srv;
  emxd_door_counters *dc = door_of(c);
  emxd_call *k = calloc(1, sizeof *k);
  if (!k) {
    atomic_fetch_add(&dc->rejected, 1);
    return emx__errf(err, EMX_ENOMEM, "daemon out of memory");
  }
  k->cl = c;
  k->id = d->id;
  k->tag = d->tag;
  k->model = d->model;
  atomic_init(&k->refs, 2);
  /* Check the cap and list the call in one hold of the lock: the worker
   * completing this client's earlier requests takes it too, once per
   * completion, and each extra hold here is one more chance to make it
   * wait (a futex sleep) in the middle of a BATCH. */
  pthread_mutex_lock(&c->lock);
  if (c->inflight >= srv->opt->max_inflight) {
    pthread_mutex_unlock(&c->lock);
    free(k);
    atomic_fetch_add(&dc->rejected, 1);
    atomic_fetch_add(&d->model->rejected, 1);
    return emx__errf(err, EMX_EBUSY,
                     "too many requests in flight on this connection (%u): "
                     "wait for replies before sending more",
                     srv->opt->max_inflight);
  }
  k->next = c->calls;
  if (c->calls)
    c->calls->prev = k;
  c->calls = k;
  k->listed = true;
  c->inflight++;
  pthread_mutex_unlock(&c->lock);
  emxd_model_ref(k->model);
  atomic_fetch_add(&c->refs, 1);

  emx_request_desc rd;
  emx_request_desc_init(&rd);
  rd.model = emxd_model_engine(d->model);
  rd.inputs = d->inputs;
  rd.input_count = d->input_count;
  rd.outputs = d->outputs;
  rd.output_count = d->output_count;
  rd.priority = d->priority;
  int64_t timeout =
      d->timeout_ns ? d->timeout_ns : emxd_model_default_timeout(d->model);
  rd.deadline_ns = timeout ? emx__deadline_after(emx_now_ns(), timeout) : 0;
  rd.stream = c->stream;
  rd.on_complete = on_complete;
  rd.user = k;
  rd.flags = d->run_here ? EMX_SUBMIT_MAY_RUN_HERE : 0;
  int rc = emx_submit(srv->engine, &rd, &k->req);
  if (rc < 0) {
    pthread_mutex_lock(&c->lock);
    unlist_locked(c, k);
    pthread_mutex_unlock(&c->lock);
    emx__errf(err, rc, "%s", emx_engine_last_error(srv->engine));
    atomic_fetch_add(&dc->rejected, 1);
    atomic_fetch_add(&d->model->rejected, 1);
    atomic_store(&k->refs, 1);
    call_unref(k);
    return rc;
  }
  atomic_fetch_add(&dc->submitted, 1);
  atomic_fetch_add(&d->model->submitted, 1);
  atomic_store(&d->model->last_used_ns, emx_now_ns());
  return 0;
}

int emxd_client_cancel(emxd_client *c, uint64_t id) {
  emxd_call *found = NULL;
  pthread_mutex_lock(&c->lock);
  for (emxd_call *k = c->calls; k; k = k->next)
    if (k->id == id) {
      found = k;
      atomic_fetch_add(&k->refs, 1);
      break;
    }
  pthread_mutex_unlock(&c->lock);
  if (!found)
    return EMX_ENOENT; /* already complete: its done() is on the way */
  emx_request_cancel(found->req);
  call_unref(found);
  return 0;
}

void emxd_client_close(emxd_client *c) {
  emxd_server *srv = c->srv;
  pthread_mutex_lock(&srv->clients_lock);
  if (c->prev)
    c->prev->next = c->next;
  else
    srv->clients = c->next;
  if (c->next)
    c->next->prev = c->prev;
  srv->client_count--;
  pthread_mutex_unlock(&srv->clients_lock);
  atomic_fetch_sub(&door_of(c)->clients, 1);

  /* Cancel what is still queued: it will never run. Running requests
   * finish into the door's memory, which lives until the last one
   * completes (release()). */
  pthread_mutex_lock(&c->lock);
  size_t n = c->inflight;
  emxd_call **pending = n ? malloc(n * sizeof *pending) : NULL;
  size_t k = 0;
  for (emxd_call *it = c->calls; it && pending && k < n; it = it->next) {
    atomic_fetch_add(&it->refs, 1);
    pending[k++] = it;
  }
  pthread_mutex_unlock(&c->lock);
  for (size_t i = 0; i < k; i++) {
    emx_request_cancel(pending[i]->req);
    call_unref(pending[i]);
  }
  free(pending);
  client_unref(c);
}

void emxd_path_cancel_model(emxd_server *srv, emxd_model *m) {
  /* Collect under the locks, cancel outside them: a cancel completes the
   * request, and its done() takes the door's lock. */
  size_t cap = 64, n = 0;
  emxd_call **found = malloc(cap * sizeof *found);
  pthread_mutex_lock(&srv->clients_lock);
  for (emxd_client *c = srv->clients; c && found; c = c->next) {
    pthread_mutex_lock(&c->lock);
    for (emxd_call *k = c->calls; k && found; k = k->next) {
      if (k->model != m)
        continue;
      if (n == cap) {
        emxd_call **more = realloc(found, 2 * cap * sizeof *found);
        if (!more)
          break;
        found = more;
        cap *= 2;
      }
      atomic_fetch_add(&k->refs, 1);
      found[n++] = k;
    }
    pthread_mutex_unlock(&c->lock);
  }
  pthread_mutex_unlock(&srv->clients_lock);
  for (size_t i = 0; i < n; i++) {
    emx_request_cancel(found[i]->req);
    call_unref(found[i]);
  }
  free(found);
}

void emxd_door_stats_get(emxd_server *srv, emxd_door door,
                         emxd_door_stats *out) {
  emxd_door_counters *dc = &srv->doors[door];
  out->clients = atomic_load(&dc->clients);
  out->opened = atomic_load(&dc->opened);
  out->refused = atomic_load(&dc->refused);
  out->submitted = atomic_load(&dc->submitted);
  out->rejected = atomic_load(&dc->rejected);
  out->completed = atomic_load(&dc->completed);
  out->failed = atomic_load(&dc->failed);
}
