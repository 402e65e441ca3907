/* http.c — the HTTP front door: KServe v2 / Open Inference Protocol with
 * Triton's binary tensor extension, and Prometheus /metrics, on
 * libmicrohttpd's own threads (never the Unix-socket I/O thread).
 *
 * An infer does not hold a thread while it runs: the connection is
 * suspended after the submit and resumed by the engine's completion
 * callback, and binary outputs go out straight from the buffers the
 * engine wrote (an iovec response, no copy). */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/log.h"
#include "daemon/daemon.h"
#include "daemon/front/http_codec.h"
#include "daemon/front/http_conn.h"
#include "daemon/front/http_detect.h"
#include "daemon/front/http_door.h"
#include "daemon/front/optlib.h"
#include "daemon/path.h"

/* The response owns what its iovec points at until MHD is done with it. */
typedef struct held {
  struct emxd_http *h;
  char *json;
  uint8_t *outbuf; /* a spare buffer, returned when MHD is done */
  size_t outcap;
} held;

/* ---- peers (streams per client address) -------------------------------- */

static void peer_addr(struct MHD_Connection *c, char *out, size_t cap) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  snprintf(out, cap, "?");
  if (!ci || !ci->client_addr)
    return;
  const struct sockaddr *sa = ci->client_addr;
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out,
              (socklen_t)cap);
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out,
              (socklen_t)cap);
}

static void on_done(void *door_ctx, const emxd_done *d);

/* The path frees a client only after its last request completed; the
 * peer goes with it. */
static void on_release(void *door_ctx) {
  free(door_ctx);
}

static const emxd_door_ops door_ops = {on_done, on_release};

static void on_connection(void *cls, struct MHD_Connection *c,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
  struct emxd_http *h = cls;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    atomic_fetch_add(&h->conns, 1);
    atomic_fetch_add(&h->srv->http_conns, 1);
    if (h->metrics_only)
      return;
    char addr[INET6_ADDRSTRLEN];
    peer_addr(c, addr, sizeof addr);
    pthread_mutex_lock(&h->lock);
    peer *p = h->peers;
    while (p && strcmp(p->addr, addr) != 0)
      p = p->next;
    if (!p && (p = calloc(1, sizeof *p))) {
      snprintf(p->addr, sizeof p->addr, "%s", addr);
      emxd_peer who = {.door = EMXD_DOOR_HTTP};
      snprintf(who.name, sizeof who.name, "http %s", addr);
      emx__errbuf err = {{0}};
      if (emxd_client_open(h->srv, &who, &door_ops, p, &p->cl, &err) < 0)
        snprintf(p->refused, sizeof p->refused, "%.150s", err.msg);
      p->next = h->peers;
      h->peers = p;
    }
    if (p)
      p->conns++;
    pthread_mutex_unlock(&h->lock);
    *socket_context = p;
    return;
  }
  atomic_fetch_sub(&h->conns, 1);
  atomic_fetch_sub(&h->srv->http_conns, 1);
  peer *p = *socket_context;
  if (!p)
    return;
  pthread_mutex_lock(&h->lock);
  if (--p->conns == 0) {
    for (peer **pp = &h->peers; *pp; pp = &(*pp)->next)
      if (*pp == p) {
        *pp = p->next;
        break;
      }
    if (p->cl)
      emxd_client_close(p->cl); /* on_release frees p */
    else
      free(p);
  }
  pthread_mutex_unlock(&h->lock);
}

static peer *conn_peer(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

/* ---- infer ---------------------------------------------------------------- */

/* on_done runs on an engine worker: it must not block, so it only
 * records the outcome and wakes the suspended connection. */
static void on_done(void *door_ctx, const emxd_done *d) {
  hreq *r = d->tag;
  pthread_mutex_lock(&r->lock);
  r->status = d->status;
  if (d->status < 0)
    snprintf(r->errmsg, sizeof r->errmsg, "%.*s", (int)d->msg_len, d->msg);
  r->done = true;
  bool wake = r->suspended;
  pthread_mutex_unlock(&r->lock);
  struct emxd_http *h = r->h;
  if (wake)
    MHD_resume_connection(r->conn);
  emxh__hreq_unref(r);
  /* Last: once nothing is in flight the daemon may stop the door, and
   * the unref above may still give buffers back to it. */
  atomic_fetch_sub(&h->inflight, 1);
}

/* describe copies the model's tensor descriptions for the codec. */
static void describe(hreq *r) {
  emx_model *em = emxd_model_engine(r->m);
  r->desc.name = emxd_model_name(r->m);
  r->desc.nin = emx_model_input_count(em);
  r->desc.nout = emx_model_output_count(em);
  if (r->desc.nin > EMXH_MAX_TENSORS || r->desc.nout > EMXH_MAX_TENSORS)
    return; /* the codec refuses it with 501 */
  for (size_t i = 0; i < r->desc.nin; i++)
    emx_model_input_info(em, i, &r->in[i]);
  for (size_t i = 0; i < r->desc.nout; i++)
    emx_model_output_info(em, i, &r->out[i]);
  r->desc.in = r->in;
  r->desc.out = r->out;
}

static size_t header_len(struct MHD_Connection *c, bool *bad) {
  const char *v = MHD_lookup_connection_value(
      c, MHD_HEADER_KIND, "Inference-Header-Content-Length");
  *bad = false;
  if (!v)
    return SIZE_MAX;
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  *bad = end == v || *end || errno || v[0] == '-';
  return (size_t)n;
}

/* start_infer parses, submits and suspends; or answers at once. */
static enum MHD_Result finish_infer(hreq *r);

static enum MHD_Result start_infer(hreq *r) {
  struct emxd_http *h = r->h;
  emxd_server *srv = h->srv;
  emxh_error e = {0};
  bool bad_len;
  size_t hlen = header_len(r->conn, &bad_len);
  if (bad_len)
    return emxh__send_error(r->conn, 400,
                            "Inference-Header-Content-Length must be a "
                            "non-negative integer");
  peer *p = conn_peer(r->conn);
  if (!p || !p->cl)
    return emxh__send_error(
        r->conn, 503,
        p && p->refused[0] ? p->refused : "this client was not admitted");
  r->m = emxd_model_get(srv, r->model);
  if (!r->m) {
    char msg[160];
    snprintf(msg, sizeof msg, "unknown model \"%s\"", r->model);
    return emxh__send_error(r->conn, 404, msg);
  }
  describe(r);
  if (emxh_request_parse(&r->parsed, &r->desc, r->body, r->len, hlen, &e) < 0)
    return emxh__send_error(r->conn, e.status, e.msg);
  size_t total = 0;
  for (size_t i = 0; i < r->desc.nout; i++)
    total += (r->out[i].bytes + 63) & ~(size_t)63;
  r->outbuf = emxh__spare_take(r->h, total, &r->outcap);
  if (!r->outbuf)
    return emxh__send_error(r->conn, 500, "out of memory for the outputs");
  for (size_t i = 0, at = 0; i < r->desc.nout; i++) {
    r->outs[i] = (emx_tensor){r->out[i].dtype, r->outbuf + at, r->out[i].bytes};
    at += (r->out[i].bytes + 63) & ~(size_t)63;
  }
  /* No deadline given and none in the model's config.json: the door's
   * request timeout bounds how long a connection waits. */
  int64_t t = r->parsed.timeout_ns;
  if (!t && !emxd_model_default_timeout(r->m))
    t = srv->opt->http_request_timeout_ns;
  emxd_call_desc d = {.tag = r,
                      .model = r->m,
                      .inputs = r->parsed.inputs,
                      .input_count = r->desc.nin,
                      .outputs = r->outs,
                      .output_count = r->desc.nout,
                      .priority = r->parsed.priority,
                      .timeout_ns = t,
                      /* A device with next to no work runs it on this
                       * thread: no hand-over to its worker and back. */
                      .run_here = true};
  atomic_fetch_add(&r->refs, 1);
  atomic_fetch_add(&h->inflight, 1);
  emx__errbuf err = {{0}};
  int rc = emxd_client_submit(p->cl, &d, &err);
  if (rc < 0) {
    atomic_fetch_sub(&h->inflight, 1);
    atomic_fetch_sub(&r->refs, 1);
    return emxh__send_error(r->conn, emxh_status_for(rc), err.msg);
  }
  pthread_mutex_lock(&r->lock);
  bool done = r->done;
  if (!done) {
    MHD_suspend_connection(r->conn);
    r->suspended = true;
  }
  pthread_mutex_unlock(&r->lock);
  /* Done already (a fast device): answer in this turn. Returning MHD_YES
   * would wait for libmicrohttpd's next turn on the connection. */
  return done ? finish_infer(r) : MHD_YES;
}

static void free_held(void *cls) {
  held *k = cls;
  free(k->json);
  emxh__spare_give(k->h, k->outbuf, k->outcap);
  free(k);
}

static enum MHD_Result finish_infer(hreq *r) {
  if (r->status < 0)
    return emxh__send_error(r->conn, emxh_status_for(r->status), r->errmsg);
  size_t jlen;
  char *json = emxh_response_json(&r->desc, &r->parsed, r->outs, &jlen);
  if (json && emxh_detections_wanted(r) &&
      !(json =
            emxh_add_detections(r, json, &jlen, r->errmsg, sizeof r->errmsg)))
    return emxh__send_error(r->conn, 400, r->errmsg);
  held *k = malloc(sizeof *k);
  if (!json || !k) {
    free(json);
    free(k);
    return emxh__send_error(
        r->conn, 500,
        "could not encode the outputs as JSON (out of memory, "
        "or a NaN or infinity: request binary_data)");
  }
  struct MHD_IoVec iov[1 + EMXH_MAX_TENSORS];
  unsigned n = 0;
  iov[n++] = (struct MHD_IoVec){json, jlen};
  bool binary = false;
  for (size_t i = 0; i < r->desc.nout; i++)
    if (r->parsed.want[i] && r->parsed.binary[i]) {
      iov[n++] = (struct MHD_IoVec){r->outs[i].data, r->outs[i].size};
      binary = true;
    }
  k->h = r->h;
  k->json = json;
  k->outbuf = r->outbuf;
  k->outcap = r->outcap;
  r->outbuf = NULL; /* the response owns it now */
  struct MHD_Response *resp =
      MHD_create_response_from_iovec(iov, n, free_held, k);
  if (!resp) {
    free_held(k);
    return MHD_NO;
  }
  if (binary) {
    char v[32];
    snprintf(v, sizeof v, "%zu", jlen);
    MHD_add_response_header(resp, "Inference-Header-Content-Length", v);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/octet-stream");
  } else {
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json");
  }
  enum MHD_Result rc = MHD_queue_response(r->conn, 200, resp);
  MHD_destroy_response(resp);
  return rc;
}

/* ---- routes --------------------------------------------------------------- */

static bool authorized(struct emxd_http *h, struct MHD_Connection *c) {
  if (!h->token_len)
    return true;
  const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                              MHD_HTTP_HEADER_AUTHORIZATION);
  if (!v || strncmp(v, "Bearer ", 7) != 0)
    return false;
  v += 7;
  /* Constant time in the token: every byte is compared whatever the
   * first difference, and the length difference counts as one. */
  size_t n = strlen(v);
  unsigned char diff = n != h->token_len;
  for (size_t i = 0; i < h->token_len; i++)
    diff |= (unsigned char)(h->token[i] ^ (i < n ? v[i] : 0));
  return diff == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  struct emxd_http *h = cls;
  hreq *r = *con_cls;
  if (!r) {
    r = calloc(1, sizeof *r);
    if (!r)
      return MHD_NO;
    r->h = h;
    r->conn = c;
    atomic_init(&r->refs, 1);
    pthread_mutex_init(&r->lock, NULL);
    r->deadline_ns = emx_now_ns() + h->srv->opt->http_request_timeout_ns;
    *con_cls = r;
    r->route = emxh_route(url, method, h->metrics_only, r->model,
                          sizeof r->model, &r->early);
    if (r->route == ROUTE_INFER || r->route == ROUTE_LOAD) {
      const char *cl = MHD_lookup_connection_value(
          c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
      unsigned long long n = cl ? strtoull(cl, NULL, 10) : 0;
      if (n > h->srv->opt->http_max_body)
        emxh_errf(&r->early, 413,
                  "request body of %llu bytes is larger than the %zu-byte "
                  "limit (raise --http-max-body-bytes)",
                  n, h->srv->opt->http_max_body);
      else if (n && !(r->body = emxh__spare_take(h, n, &r->cap)))
        emxh_errf(&r->early, 500, "out of memory for a %llu-byte body", n);
    }
    /* Refuse now rather than after reading a body nobody will use; MHD
     * closes the connection after this answer. */
    if (r->early.status) {
      r->posted = true;
      return emxh__send_error(c, r->early.status, r->early.msg);
    }
    return MHD_YES;
  }
  if (*upload_size) {
    /* A body trickled in (slowloris) is cut off at the request timeout,
     * whatever the idle timeout lets through between bytes. */
    if (emx_now_ns() > r->deadline_ns) {
      emx__log(EMX_LOG_WARN, "http: a request body took longer than "
                             "--http-request-timeout-ms; closing");
      return MHD_NO;
    }
    if (!r->early.status &&
        (r->route == ROUTE_INFER || r->route == ROUTE_LOAD)) {
      if (r->len + *upload_size > h->srv->opt->http_max_body) {
        emxh_errf(&r->early, 413,
                  "request body is larger than the %zu-byte limit (raise "
                  "--http-max-body-bytes)",
                  h->srv->opt->http_max_body);
      } else {
        if (r->len + *upload_size > r->cap) { /* chunked: no length */
          size_t cap = (r->len + *upload_size) * 2;
          if (cap > h->srv->opt->http_max_body)
            cap = h->srv->opt->http_max_body;
          uint8_t *b = realloc(r->body, cap);
          if (!b)
            return MHD_NO;
          r->body = b;
          r->cap = cap;
        }
        memcpy(r->body + r->len, upload, *upload_size);
        r->len += *upload_size;
      }
    }
    *upload_size = 0;
    return MHD_YES;
  }
  if (r->posted) /* resumed: the engine or the admin thread is done */
    return r->route == ROUTE_INFER ? finish_infer(r) : emxh__finish_admin(r);
  r->posted = true;
  if (r->early.status)
    return emxh__send_error(c, r->early.status, r->early.msg);
  if (r->route != ROUTE_LIVE && r->route != ROUTE_READY && !authorized(h, c))
    return emxh__send_error(c, 401,
                            "missing or wrong bearer token (send "
                            "'Authorization: Bearer <token>')");
  if (r->route == ROUTE_INFER)
    return start_infer(r);
  if (r->route == ROUTE_LOAD || r->route == ROUTE_UNLOAD)
    return emxh__start_admin(r);
  return emxh_door_answer(h->srv, c, r->route, r->model);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  hreq *r = *con_cls;
  if (r)
    emxh__hreq_unref(r);
  *con_cls = NULL;
}

/* on_accept applies --http-max-connections to all threads together. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr,
                                 socklen_t len) {
  struct emxd_http *h = cls;
  if (atomic_load(&h->conns) < h->max_conns)
    return MHD_YES;
  int64_t now = emx_now_ns(), last = atomic_load(&h->refused_log_ns);
  if (now - last > 10000000000LL &&
      atomic_compare_exchange_strong(&h->refused_log_ns, &last, now))
    emx__log(EMX_LOG_WARN,
             "http: %zu connections open, refusing more (raise "
             "--http-max-connections)",
             h->max_conns);
  return MHD_NO;
}

/* ---- start and stop ------------------------------------------------------- */

static int parse_listen(const char *text, struct sockaddr_storage *ss,
                        emx__errbuf *err) {
  char host[128] = "127.0.0.1";
  const char *port = text;
  const char *colon = strrchr(text, ':');
  if (colon) {
    size_t n = (size_t)(colon - text);
    if (n >= sizeof host)
      return emx__errf(err, EMX_EINVAL, "address \"%s\" is too long", text);
    memcpy(host, text, n);
    host[n] = '\0';
    if (host[0] == '[' && n > 1 && host[n - 1] == ']') { /* [::1]:8000 */
      memmove(host, host + 1, n - 2);
      host[n - 2] = '\0';
    }
    port = colon + 1;
  }
  struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                           .ai_socktype = SOCK_STREAM};
  struct addrinfo *ai = NULL;
  int rc = getaddrinfo(host, port, &hints, &ai);
  if (rc != 0)
    return emx__errf(err, EMX_EINVAL,
                     "\"%s\" is not [ADDR:]PORT with a numeric address (%s)",
                     text, gai_strerror(rc));
  memcpy(ss, ai->ai_addr, ai->ai_addrlen);
  freeaddrinfo(ai);
  return 0;
}

static char *slurp(const char *path, emx__errbuf *err) {
  FILE *f = fopen(path, "re");
  if (!f) {
    emx__errf(err, EMX_ENOENT, "cannot read \"%s\": %s", path, strerror(errno));
    return NULL;
  }
  char *buf = NULL;
  size_t cap = 0, len = 0, n;
  char chunk[4096];
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    char *b = realloc(buf, cap = len + n + 1);
    if (!b) {
      free(buf);
      fclose(f);
      emx__errf(err, EMX_ENOMEM, "out of memory reading \"%s\"", path);
      return NULL;
    }
    buf = b;
    memcpy(buf + len, chunk, n);
    len += n;
  }
  fclose(f);
  if (!buf && (buf = malloc(1)))
    len = 0;
  if (buf)
    buf[len] = '\0';
  return buf;
}

/* raise_nofile: each HTTP connection is a descriptor; let the daemon have
 * as many as the hard limit allows, so --http-max-connections is the
 * limit that refuses, with its own message. */
static void raise_nofile(size_t want) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
    rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int emxd_http_start(emxd_server *srv, const char *listen, bool metrics_only,
                    struct emxd_http **out, emx__errbuf *err) {
  const emxd_options *o = srv->opt;
  struct sockaddr_storage ss;
  if (parse_listen(listen, &ss, err) < 0 || emxd_mhd_load(err) < 0)
    return -1;
  struct emxd_http *h = calloc(1, sizeof *h);
  if (!h)
    return emx__errf(err, EMX_ENOMEM, "out of memory");
  h->srv = srv;
  h->metrics_only = metrics_only;
  pthread_mutex_init(&h->lock, NULL);
  pthread_mutex_init(&h->spares.lock, NULL);
  unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
                   MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC;
  if (ss.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  if (!metrics_only && o->http_token_file[0]) {
    char *t = slurp(o->http_token_file, err);
    if (!t)
      goto fail;
    t[strcspn(t, "\r\n")] = '\0';
    h->token_len = strlen(t);
    if (h->token_len == 0 || h->token_len >= sizeof h->token) {
      free(t);
      emx__errf(err, EMX_EINVAL,
                "%s: the token (its first line) must be 1..%zu bytes",
                o->http_token_file, sizeof h->token - 1);
      goto fail;
    }
    memcpy(h->token, t, h->token_len + 1);
    free(t);
  }
  if (o->tls_cert[0] || o->tls_key[0]) {
    if (!o->tls_cert[0] || !o->tls_key[0]) {
      emx__errf(err, EMX_EINVAL, "--tls-cert and --tls-key go together");
      goto fail;
    }
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
      emx__errf(err, EMX_EUNSUPPORTED,
                "this libmicrohttpd was built without TLS (GnuTLS): drop "
                "--tls-cert/--tls-key or install one with it");
      goto fail;
    }
    if (!(h->tls_cert = slurp(o->tls_cert, err)) ||
        !(h->tls_key = slurp(o->tls_key, err)))
      goto fail;
    flags |= MHD_USE_TLS;
  }
  raise_nofile((size_t)o->http_max_conns + 256);
  struct MHD_OptionItem tls[] = {
      {h->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0,
       h->tls_cert},
      {MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key},
      {MHD_OPTION_END, 0, NULL}};
  /* libmicrohttpd splits its connection limit evenly between its
   * threads, and one thread may accept more than its share: its limit is
   * set past ours, and on_accept applies ours to the total. */
  unsigned threads = metrics_only ? 1u : o->http_threads;
  h->max_conns = o->http_max_conns;
  h->mhd = MHD_start_daemon(
      flags, 0, on_accept, h, on_request, h, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)o->http_max_conns * threads, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned)o->http_idle_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
      o->http_max_header, MHD_OPTION_THREAD_POOL_SIZE, threads,
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_ARRAY, tls,
      MHD_OPTION_END);
  if (!h->mhd) {
    emx__errf(err, EMX_EIO,
              "cannot serve HTTP on %s: %s (is the port in use, or the "
              "address not local?)",
              listen, strerror(errno));
    goto fail;
  }
  const union MHD_DaemonInfo *di =
      MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
  emx__log(EMX_LOG_INFO, "%s on %s (port %u)%s%s",
           metrics_only ? "Prometheus /metrics" : "HTTP (KServe v2)", listen,
           di ? di->port : 0, h->tls_cert ? ", TLS" : "",
           h->token_len ? ", bearer token required" : "");
  *out = h;
  return 0;
fail:
  free(h->tls_cert);
  free(h->tls_key);
  pthread_mutex_destroy(&h->lock);
  emxh__spares_free(h);
  free(h);
  return -1;
}

void emxd_http_quiesce(struct emxd_http *h) {
  if (h && h->mhd) {
    MHD_socket fd = MHD_quiesce_daemon(h->mhd);
    if (fd != MHD_INVALID_SOCKET)
      close(fd);
  }
}

bool emxd_http_idle(struct emxd_http *h) {
  return !h || atomic_load(&h->inflight) == 0;
}

void emxd_http_stop(struct emxd_http *h) {
  if (!h)
    return;
  MHD_stop_daemon(h->mhd);
  /* MHD_stop_daemon closed every connection, and each close released
   * its peer. */
  pthread_mutex_destroy(&h->lock);
  emxh__spares_free(h);
  free(h->tls_cert);
  free(h->tls_key);
  free(h);
}
