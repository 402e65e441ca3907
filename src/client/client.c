/* client.c — the client's public face: connect/destroy, models, ping and
 * status. Requests and tensors are in request.c, the connection in io.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/internal.h"
#include "core/abi.h"

#define DEFAULT_ARENA_BYTES ((size_t)64 << 20)
#define DEFAULT_TIMEOUT_NS (5 * 1000000000LL)

static void config_defaults(emx_client_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->struct_size = sizeof *cfg;
  cfg->arena_bytes = DEFAULT_ARENA_BYTES;
  cfg->timeout_ns = DEFAULT_TIMEOUT_NS;
}

EMX_EXPORT void(emx_client_config_init)(emx_client_config *cfg) {
  emx_client_config own;
  config_defaults(&own);
  emx__abi_init(cfg, &own, sizeof own);
}

EMX_EXPORT const char *emx_client_default_socket(char *buf, size_t len) {
  if (!buf || len == 0)
    return buf;
  /* One rule for daemon and clients alike: root's daemon serves the whole
   * machine from /run; a user's own daemon lives in its runtime dir. */
  const char *env = getenv("EDGEMUX_SOCKET");
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  if (env && *env)
    snprintf(buf, len, "%s", env);
  else if (geteuid() != 0 && xdg && *xdg)
    snprintf(buf, len, "%s/edgemux.sock", xdg);
  else
    snprintf(buf, len, "/run/edgemux/edgemux.sock");
  return buf;
}

EMX_EXPORT int emx_client_connect(emx_client **out,
                                  const emx_client_config *user_cfg) {
  if (!out)
    return emx__fail(NULL, EMX_EINVAL, "emx_client_connect: out is NULL");
  *out = NULL;
  emx_client_config own, *cfg = &own;
  config_defaults(&own);
  if (user_cfg) {
    emx__errbuf aerr;
    int arc =
        emx__abi_in(&own, sizeof own, user_cfg, "emx_client_config", &aerr);
    if (arc < 0)
      return emx__fail_buf(NULL, arc, &aerr);
  }
  emx_client *c = calloc(1, sizeof *c);
  if (!c)
    return emx__fail(NULL, EMX_ENOMEM, "out of memory creating a client");
  c->rbuf = malloc(EMX_WIRE_MAX_MSG);
  if (!c->rbuf) {
    free(c);
    return emx__fail(NULL, EMX_ENOMEM, "out of memory creating a client");
  }
  char path[4096];
  if (cfg->socket_path && *cfg->socket_path)
    snprintf(path, sizeof path, "%s", cfg->socket_path);
  else
    emx_client_default_socket(path, sizeof path);
  if (strlen(path) >= sizeof c->path) {
    free(c->rbuf);
    free(c);
    return emx__fail(NULL, EMX_EINVAL,
                     "socket path \"%.200s...\" is too long (a Unix socket "
                     "path holds at most %zu bytes)",
                     path, sizeof c->path - 1);
  }
  memcpy(c->path, path, strlen(path) + 1);
  c->arena_bytes = cfg->arena_bytes;
  c->timeout_ns = cfg->timeout_ns > 0 ? cfg->timeout_ns : DEFAULT_TIMEOUT_NS;
  c->sock = -1;
  c->arena.fd = -1;
  c->next_id = 1;
  c->refs = 1;
  emx__client_init_sync(c);
  emx__errbuf err;
  int rc = emx__client_open(c, &err);
  if (rc < 0) {
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c->rbuf);
    free(c);
    return emx__fail(NULL, rc, "%s", err.msg);
  }
  *out = c;
  return 0;
}

static void model_free(emx_client_model *m) {
  if (!m)
    return;
  for (size_t i = 0; i < m->nin + m->nout; i++)
    free((char *)m->info[i].name);
  free(m->info);
  free(m->name);
  free(m);
}

EMX_EXPORT void emx_client_destroy(emx_client *c) {
  if (!c)
    return;
  emx__client_enter(c, 0);
  c->closed = 1;
  /* Handles the caller still holds complete now; abandoned ones are freed.
   * Closing the socket tells the daemon to drop what is left. */
  emx__client_set_broken(c, EMX_ECANCELED,
                         "the client was destroyed before the request "
                         "completed");
  if (c->sock >= 0)
    close(c->sock);
  c->sock = -1;
  emx__arena_close(&c->arena);
  emx__alloc_fini(&c->alloc);
  while (c->models) {
    emx_client_model *m = c->models;
    c->models = m->next;
    model_free(m);
  }
  free(c->rbuf);
  c->rbuf = NULL;
  emx__client_release(c); /* the shell lives on while request handles do */
}

EMX_EXPORT const char *emx_client_last_error(const emx_client *c) {
  return emx__last_error(c);
}

/* ---- helpers for control calls ------------------------------------------- */

/* put_name appends an emx__wire_name and the bytes. */
static void put_name(emx__wire_buf *b, const char *s, size_t len) {
  emx__wire_name n = {.len = (uint32_t)len};
  emx__wire_put(b, &n, sizeof n);
  emx__wire_put(b, s, len);
}

/* page_rpc: a header-only request, or with page > 0 one that asks for the
 * page from there (only a daemon that said more follows gets that: older
 * ones refuse a body). Locked. */
static int page_rpc(emx_client *c, uint8_t type, uint32_t page, uint8_t expect,
                    void **reply, emx__wire_msg *msg) {
  uint64_t storage[4];
  emx__wire_buf b;
  emx__wire_begin(&b, storage, type, 0);
  if (page) {
    emx__wire_page pg = {.offset = page};
    emx__wire_put(&b, &pg, sizeof pg);
  }
  size_t len = emx__wire_end(&b);
  return emx__client_rpc(c, storage, len, expect, reply, msg);
}

static int simple_rpc(emx_client *c, uint8_t type, uint8_t expect, void **reply,
                      emx__wire_msg *msg) {
  return page_rpc(c, type, 0, expect, reply, msg);
}

EMX_EXPORT int emx_client_ping(emx_client *c) {
  if (!c)
    return emx__fail(c, EMX_EINVAL, "client is NULL");
  emx__client_enter(c, 1);
  void *reply;
  emx__wire_msg m;
  int rc = simple_rpc(c, EMX_WIRE_PING, EMX_WIRE_PONG, &reply, &m);
  free(reply);
  emx__client_leave(c);
  return rc;
}

/* status_trailer: does text[0..len) end with the daemon's "truncated N"
 * line (more follows from line N)? Returns N and cuts *len before it. */
static uint32_t status_trailer(const char *text, size_t *len) {
  size_t n = *len;
  if (n < 2 || text[n - 1] != '\n')
    return 0;
  size_t start = n - 1;
  while (start > 0 && text[start - 1] != '\n')
    start--;
  static const char key[] = "truncated ";
  if (n - start < sizeof key || memcmp(text + start, key, sizeof key - 1))
    return 0;
  unsigned long v = 0;
  for (size_t i = start + sizeof key - 1; i < n - 1; i++) {
    if (text[i] < '0' || text[i] > '9' || v > UINT32_MAX / 10)
      return 0;
    v = v * 10 + (unsigned long)(text[i] - '0');
  }
  *len = start;
  return (uint32_t)v;
}

/* text_rpc asks for a text the daemon answers with STATUS_OK; for STATUS
 * it follows the pages until the daemon says no more follows. */
static int text_rpc(emx_client *c, uint8_t type, char **text) {
  if (!c || !text)
    return emx__fail(c, EMX_EINVAL, "client and text must not be NULL");
  *text = NULL;
  char *all = NULL;
  size_t total = 0;
  uint32_t page = 0;
  for (;;) {
    emx__client_enter(c, 1);
    void *reply;
    emx__wire_msg m;
    int rc = page_rpc(c, type, page, EMX_WIRE_STATUS_OK, &reply, &m);
    emx__client_leave(c);
    if (rc < 0) {
      free(all);
      return rc;
    }
    /* STATUS_OK has no length field: its text runs to the end of the
     * packet, possibly with NUL padding. */
    size_t len = strnlen(m.u.text.text, m.u.text.len);
    uint32_t next =
        type == EMX_WIRE_STATUS ? status_trailer(m.u.text.text, &len) : 0;
    char *s = realloc(all, total + len + 1);
    if (!s) {
      free(reply);
      free(all);
      return emx__fail(c, EMX_ENOMEM, "out of memory copying the status");
    }
    all = s;
    memcpy(all + total, m.u.text.text, len);
    total += len;
    all[total] = '\0';
    free(reply);
    if (next <= page) /* done (a page that does not advance ends it too) */
      break;
    page = next;
  }
  *text = all;
  return 0;
}

EMX_EXPORT int emx_client_status(emx_client *c, char **text) {
  return text_rpc(c, EMX_WIRE_STATUS, text);
}

EMX_EXPORT int emx_client_metrics(emx_client *c, char **text) {
  return text_rpc(c, EMX_WIRE_METRICS, text);
}

EMX_EXPORT int emx_client_models(emx_client *c,
                                 void (*fn)(const char *name, void *user),
                                 void *user) {
  if (!c || !fn)
    return emx__fail(c, EMX_EINVAL, "client and fn must not be NULL");
  /* Pages until the daemon says the list is complete (next == 0; older
   * daemons always say so). Calls fn unlocked: it may use the client. The
   * names were validated by emx__wire_decode (lengths in range, padded,
   * no NUL). */
  uint32_t page = 0;
  for (;;) {
    emx__client_enter(c, 1);
    void *reply;
    emx__wire_msg m;
    int rc = page_rpc(c, EMX_WIRE_LIST, page, EMX_WIRE_MODELS, &reply, &m);
    emx__client_leave(c);
    if (rc < 0)
      return rc;
    const uint8_t *p = m.u.models.names;
    char name[EMX_WIRE_MAX_NAME + 1];
    for (uint32_t i = 0; i < m.u.models.count; i++) {
      emx__wire_name n;
      memcpy(&n, p, sizeof n);
      memcpy(name, p + sizeof n, n.len);
      name[n.len] = '\0';
      p += sizeof n + EMX_WIRE_PAD8(n.len);
      fn(name, user);
    }
    uint32_t next = m.u.models.next;
    free(reply);
    if (next <= page)
      return 0;
    page = next;
  }
}

/* ---- models -------------------------------------------------------------- */

/* parse_model builds a model object from a decoded MODEL reply. */
static int parse_model(emx_client *c, const char *name,
                       const emx__wire_msg *msg, emx_client_model **out) {
  const emx__wire_model *wm = msg->u.model.m;
  size_t n = (size_t)wm->nin + wm->nout;
  emx_client_model *m = calloc(1, sizeof *m);
  if (!m || !(m->name = strdup(name)) ||
      !(m->info = calloc(n ? n : 1, sizeof *m->info))) {
    if (m)
      free(m->name);
    free(m);
    return emx__fail(c, EMX_ENOMEM, "out of memory opening model \"%s\"", name);
  }
  m->client = c;
  m->id = wm->model;
  m->gen = c->gen;
  const uint8_t *p = msg->u.model.tensors;
  for (size_t i = 0; i < n; i++) {
    emx__wire_tensor t;
    memcpy(&t, p, sizeof t);
    emx_tensor_info *ti = &m->info[i];
    char *tn = malloc((size_t)t.name_len + 1);
    if (!tn) {
      model_free(m);
      return emx__fail(c, EMX_ENOMEM, "out of memory opening model \"%s\"",
                       name);
    }
    memcpy(tn, p + sizeof t, t.name_len);
    tn[t.name_len] = '\0';
    ti->name = tn;
    ti->dtype = (emx_dtype)t.dtype;
    ti->rank = t.rank; /* 0..8, checked by decode */
    for (int d = 0; d < EMX_MAX_DIMS; d++)
      ti->dims[d] = d < t.rank ? t.dims[d] : 0;
    ti->bytes = (size_t)t.bytes;
    ti->scale = t.scale;
    ti->zero_point = t.zero_point;
    /* Counted after the name so model_free frees what exists. */
    if (i < wm->nin)
      m->nin++;
    else
      m->nout++;
    p += sizeof t + EMX_WIRE_PAD8(t.name_len);
  }
  *out = m;
  return 0;
}

static int same_info(const emx_client_model *a, const emx_client_model *b) {
  if (a->nin != b->nin || a->nout != b->nout)
    return 0;
  for (size_t i = 0; i < a->nin + a->nout; i++) {
    const emx_tensor_info *x = &a->info[i], *y = &b->info[i];
    if (strcmp(x->name, y->name) || x->dtype != y->dtype ||
        x->rank != y->rank || x->bytes != y->bytes || x->scale != y->scale ||
        x->zero_point != y->zero_point ||
        memcmp(x->dims, y->dims, sizeof x->dims))
      return 0;
  }
  return 1;
}

/* open_reply: turn a MODEL reply into a model object; an object already
 * open under that name with the same tensors is reused (so opening in a
 * loop does not grow memory). Locked. */
static int open_reply(emx_client *c, const char *name, const emx__wire_msg *msg,
                      emx_client_model **out) {
  emx_client_model *m = NULL;
  int rc = parse_model(c, name, msg, &m);
  if (rc < 0)
    return rc;
  for (emx_client_model *o = c->models; o; o = o->next) {
    if (strcmp(o->name, name) == 0 && same_info(o, m)) {
      o->id = m->id;
      o->gen = m->gen;
      model_free(m);
      *out = o;
      return 0;
    }
  }
  m->next = c->models;
  c->models = m;
  *out = m;
  return 0;
}

static int check_name(emx_client *c, const char *name) {
  size_t len = name ? strlen(name) : 0;
  if (len == 0 || len > EMX_WIRE_MAX_NAME)
    return emx__fail(c, EMX_EINVAL, "model name must be 1..%d bytes (got %zu)",
                     EMX_WIRE_MAX_NAME, len);
  return 0;
}

EMX_EXPORT int emx_client_model_open(emx_client *c, const char *name,
                                     emx_client_model **out) {
  if (!c || !out)
    return emx__fail(c, EMX_EINVAL, "client and out must not be NULL");
  *out = NULL;
  int rc = check_name(c, name);
  if (rc < 0)
    return rc;
  uint64_t storage[(sizeof(emx__wire_hdr) + sizeof(emx__wire_name) +
                    EMX_WIRE_MAX_NAME + 8) /
                       8 +
                   1];
  emx__wire_buf b;
  emx__wire_begin(&b, storage, EMX_WIRE_OPEN, 0);
  put_name(&b, name, strlen(name));
  size_t len = emx__wire_end(&b);
  emx__client_enter(c, 1);
  void *reply;
  emx__wire_msg msg;
  rc = emx__client_rpc(c, storage, len, EMX_WIRE_MODEL, &reply, &msg);
  if (rc == 0)
    rc = open_reply(c, name, &msg, out);
  emx__client_leave(c);
  free(reply);
  return rc;
}

/* sealed_copy puts size bytes into a memfd sealed against any change, so
 * the daemon can check them once and trust them after. */
static int sealed_copy(emx_client *c, const void *data, size_t size, int *out) {
  int fd = emx__memfd_sealed("edgemux-model", data, size);
  if (fd < 0)
    return emx__fail(c, EMX_EIO, "copying the model into a sealed memfd: %s",
                     strerror(-fd));
  *out = fd;
  return 0;
}

EMX_EXPORT int emx_client_model_load_bytes(emx_client *c, const char *name,
                                           const void *data, size_t size,
                                           emx_client_model **out) {
  return emx_client_model_load_placed(c, name, data, size, NULL, out);
}

EMX_EXPORT int emx_client_model_load_placed(emx_client *c, const char *name,
                                            const void *data, size_t size,
                                            const char *placement,
                                            emx_client_model **out) {
  if (!c || !out || !data || size == 0)
    return emx__fail(c, EMX_EINVAL,
                     "client, data (of at least one byte) and out must not be "
                     "NULL");
  *out = NULL;
  if (size > EMX_CLIENT_MODEL_MAX_BYTES)
    return emx__fail(c, EMX_EINVAL,
                     "the model is %zu MiB; a client may send at most %zu MiB "
                     "(EMX_CLIENT_MODEL_MAX_BYTES): serve it from the "
                     "daemon's model repository (--models)",
                     size >> 20, EMX_CLIENT_MODEL_MAX_BYTES >> 20);
  int rc = check_name(c, name);
  if (rc < 0)
    return rc;
  size_t plen = placement ? strlen(placement) : 0;
  if (plen > EMX_WIRE_MAX_PLACEMENT)
    return emx__fail(c, EMX_EINVAL,
                     "placement \"%.32s...\" is %zu bytes; at most %d",
                     placement, plen, EMX_WIRE_MAX_PLACEMENT);
  int fd = -1;
  if ((rc = sealed_copy(c, data, size, &fd)) < 0)
    return rc;
  uint64_t storage[(sizeof(emx__wire_hdr) + sizeof(emx__wire_load_bytes) +
                    2 * sizeof(emx__wire_name) + EMX_WIRE_MAX_NAME +
                    EMX_WIRE_MAX_PLACEMENT + 16) /
                       8 +
                   1];
  emx__wire_buf b;
  emx__wire_begin(&b, storage, EMX_WIRE_LOAD_BYTES, 0);
  emx__wire_load_bytes lb = {.size = size,
                             .flags = plen ? EMX_WIRE_LOAD_PLACED : 0};
  emx__wire_put(&b, &lb, sizeof lb);
  put_name(&b, name, strlen(name));
  if (plen)
    put_name(&b, placement, plen);
  size_t len = emx__wire_end(&b);
  emx__client_enter(c, 1);
  void *reply;
  emx__wire_msg msg;
  rc = emx__client_rpc_fd(c, storage, len, fd, EMX_WIRE_MODEL, &reply, &msg);
  if (rc == 0)
    rc = open_reply(c, name, &msg, out);
  emx__client_leave(c);
  free(reply);
  close(fd);
  return rc;
}

EMX_EXPORT int emx_client_model_load(emx_client *c, const char *name,
                                     const char *path, emx_client_model **out) {
  if (!c || !out || !path)
    return emx__fail(c, EMX_EINVAL, "client, path and out must not be NULL");
  *out = NULL;
  /* Opened here, with the caller's rights: the daemon never opens a
   * client's path. O_NONBLOCK: a FIFO must not hang the open. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  struct stat st;
  if (fd < 0)
    return emx__fail(c, errno == ENOENT ? EMX_ENOENT : EMX_EIO,
                     "model file \"%s\": %s", path, strerror(errno));
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
    close(fd);
    return emx__fail(c, EMX_EINVAL,
                     "model file \"%s\" is not a non-empty regular file "
                     "(a FIFO, device or socket is refused unread)",
                     path);
  }
  /* Checked before a byte is read: a 1 GiB sparse file must not be
   * copied first and refused after. */
  if ((uint64_t)st.st_size > EMX_CLIENT_MODEL_MAX_BYTES) {
    close(fd);
    return emx__fail(c, EMX_EINVAL,
                     "model file \"%s\" is %llu MiB; a client may send at "
                     "most %zu MiB (EMX_CLIENT_MODEL_MAX_BYTES): serve it "
                     "from the daemon's model repository (--models)",
                     path, (unsigned long long)st.st_size >> 20,
                     EMX_CLIENT_MODEL_MAX_BYTES >> 20);
  }
  void *data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (data == MAP_FAILED)
    return emx__fail(c, EMX_EIO, "model file \"%s\": mmap: %s", path,
                     strerror(errno));
  int rc = emx_client_model_load_bytes(c, name, data, (size_t)st.st_size, out);
  munmap(data, (size_t)st.st_size);
  return rc;
}

EMX_EXPORT int emx_client_model_unload(emx_client *c, const char *name) {
  if (!c)
    return emx__fail(c, EMX_EINVAL, "client must not be NULL");
  int rc = check_name(c, name);
  if (rc < 0)
    return rc;
  uint64_t storage[(sizeof(emx__wire_hdr) + sizeof(emx__wire_name) +
                    EMX_WIRE_MAX_NAME + 8) /
                       8 +
                   1];
  emx__wire_buf b;
  emx__wire_begin(&b, storage, EMX_WIRE_UNLOAD, 0);
  put_name(&b, name, strlen(name));
  size_t len = emx__wire_end(&b);
  emx__client_enter(c, 1);
  void *reply;
  emx__wire_msg msg;
  rc = emx__client_rpc(c, storage, len, EMX_WIRE_PONG, &reply, &msg);
  emx__client_leave(c);
  free(reply);
  return rc;
}

/* The counts and infos never change after open (a reopen after fork only
 * updates the id), so they are read without the lock. */
EMX_EXPORT size_t emx_client_model_input_count(const emx_client_model *m) {
  return m ? m->nin : 0;
}

EMX_EXPORT size_t emx_client_model_output_count(const emx_client_model *m) {
  return m ? m->nout : 0;
}

static int info(const emx_client_model *m, size_t index, int output,
                emx_tensor_info *out) {
  if (!m || !out)
    return emx__fail(m ? m->client : NULL, EMX_EINVAL,
                     "model and out must not be NULL");
  size_t n = output ? m->nout : m->nin;
  if (index >= n)
    return emx__fail(m->client, EMX_EINVAL,
                     "model \"%s\" has %zu %s%s; index %zu is out of range",
                     m->name, n, output ? "output" : "input", n == 1 ? "" : "s",
                     index);
  emx__errbuf err;
  int rc = emx__abi_out(out, &m->info[(output ? m->nin : 0) + index],
                        sizeof *out, "emx_tensor_info", &err);
  return rc < 0 ? emx__fail_buf(m->client, rc, &err) : 0;
}

EMX_EXPORT int(emx_client_model_input_info)(const emx_client_model *m,
                                            size_t index,
                                            emx_tensor_info *out) {
  return info(m, index, 0, out);
}

EMX_EXPORT int(emx_client_model_output_info)(const emx_client_model *m,
                                             size_t index,
                                             emx_tensor_info *out) {
  return info(m, index, 1, out);
}

EMX_EXPORT void emx_client_free(void *p) {
  free(p);
}
