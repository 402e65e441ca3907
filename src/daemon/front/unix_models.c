/* unix_models.c — the Unix door's model messages: OPEN and LIST replies,
 * LOAD_BYTES and UNLOAD handed to the admin thread, and its answers sent
 * back to the sessions that asked. I/O thread only. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/name.h"
#include "daemon/front/unix.h"
#include "daemon/front/unix_int.h"

/* Scratch for replies built on the I/O thread (MODEL, MODELS). */
static _Alignas(8) uint8_t txbuf[EMX_WIRE_MAX_MSG];

static void put_name(emx__wire_buf *b, const char *name) {
  size_t len = strlen(name);
  emx__wire_name n = {.len = (uint32_t)len};
  emx__wire_put(b, &n, sizeof n);
  emx__wire_put(b, name, len);
}

static void put_tensor(emx__wire_buf *b, const emx_tensor_info *ti) {
  size_t len = strnlen(ti->name, EMX_WIRE_MAX_NAME);
  emx__wire_tensor t = {.name_len = (uint32_t)len,
                        .dtype = (uint32_t)ti->dtype,
                        .rank = ti->rank,
                        .zero_point = ti->zero_point,
                        .scale = ti->scale,
                        .bytes = ti->bytes};
  for (int d = 0; d < ti->rank && d < 8; d++)
    t.dims[d] = ti->dims[d];
  emx__wire_put(b, &t, sizeof t);
  emx__wire_put(b, ti->name, len);
}

void emxd__unix_reply_model(emxd_session *s, uint64_t id,
                            const emxd_model *dm) {
  emx__wire_buf b;
  emx__wire_begin(&b, txbuf, EMX_WIRE_MODEL, id);
  emx_model *m = emxd_model_engine(dm);
  size_t nin = emx_model_input_count(m);
  size_t nout = emx_model_output_count(m);
  emx__wire_model wm = {
      .model = emxd_model_id(dm), .nin = (uint16_t)nin, .nout = (uint16_t)nout};
  emx__wire_put(&b, &wm, sizeof wm);
  emx_tensor_info ti;
  for (size_t i = 0; i < nin; i++) {
    emx_model_input_info(m, i, &ti);
    put_tensor(&b, &ti);
  }
  for (size_t i = 0; i < nout; i++) {
    emx_model_output_info(m, i, &ti);
    put_tensor(&b, &ti);
  }
  size_t len = emx__wire_end(&b);
  if (len == 0) {
    emxd__unix_error(s, id, EMX_EUNSUPPORTED,
                     "model description does not fit in one message");
    return;
  }
  emxd__unix_send(s, txbuf, len);
}

/* A legacy client (no EMX_WIRE_HELLO_PAGED) cannot ask for more: its one
 * page ends with this pseudo-name instead of stopping silently. Room for
 * it (and its count) stays free on every page. */
#define TRUNC_MARK "...(more models: a paging client lists them all)"
#define TRUNC_ROOM (sizeof(emx__wire_name) + EMX_WIRE_PAD8(sizeof TRUNC_MARK))

typedef struct name_list {
  emx__wire_buf *b;
  uint32_t index; /* of the next name seen */
  uint32_t first; /* first name asked for */
  uint32_t count; /* names put */
  uint32_t next;  /* first name that did not fit; 0 none */
} name_list;

static void add_name(void *arg, const char *name) {
  name_list *l = arg;
  uint32_t i = l->index++;
  if (i < l->first || l->next)
    return;
  size_t need = sizeof(emx__wire_name) + EMX_WIRE_PAD8(strlen(name));
  if (l->b->len + need + TRUNC_ROOM > EMX_WIRE_MAX_MSG) {
    l->next = i;
    return;
  }
  put_name(l->b, name);
  l->count++;
}

void emxd__unix_reply_models(emxd_session *s, uint64_t id, uint32_t first) {
  emx__wire_buf b;
  emx__wire_begin(&b, txbuf, EMX_WIRE_MODELS, id);
  emx__wire_models *hdr = emx__wire_put(&b, NULL, sizeof *hdr);
  name_list l = {&b, 0, first, 0, 0};
  emxd_model_names(s->srv, add_name, &l);
  /* A page that holds nothing would make a pager ask again forever. */
  if (l.next && l.next == first) {
    emxd__unix_error(s, id, EMX_EUNSUPPORTED,
                     "a model name does not fit in one message");
    return;
  }
  if (l.next && !s->paged) {
    put_name(&b, TRUNC_MARK);
    l.count++;
  }
  uint32_t count = l.count;
  size_t len = emx__wire_end(&b);
  if (len == 0) {
    emxd__unix_error(s, id, EMX_EUNSUPPORTED,
                     "model list does not fit in one "
                     "message");
    return;
  }
  hdr->count = count;
  hdr->next = l.next;
  emxd__unix_send(s, txbuf, len);
}

/* fd_kind names what a non-regular descriptor is, for the error. */
static const char *fd_kind(mode_t mode) {
  if (S_ISFIFO(mode))
    return "a pipe or FIFO";
  if (S_ISSOCK(mode))
    return "a socket";
  if (S_ISDIR(mode))
    return "a directory";
  if (S_ISCHR(mode) || S_ISBLK(mode))
    return "a device";
  return "a file of another kind";
}

/* Seals a model memfd must carry: its bytes cannot change or be cut
 * after the daemon hashed and tried them. */
#define MODEL_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

/* handle_load_bytes checks what is cheap here (the fd, its seals and
 * size, the policy) and hands the rest to the admin thread, which
 * answers through emxd_sessions_answer. */
int emxd__unix_load_bytes(emxd_session *s, const emx__wire_msg *m, int *fds,
                          int nfds) {
  emxd_server *srv = s->srv;
  const emxd_options *o = srv->opt;
  uint64_t size = m->u.load_bytes.l->size;
  struct stat st;
  char msg[320];
  if (nfds != 1) {
    emx__log(EMX_LOG_WARN,
             "session %u (pid %d): LOAD_BYTES with %d descriptors; dropping",
             s->id, (int)s->pid, nfds);
    return -1;
  }
  /* fstat before anything else touches the descriptor: only a regular
   * file (a memfd) is used; a pipe, FIFO or socket could block a reader. */
  int have = fstat(fds[0], &st) == 0;
  int seals = have && S_ISREG(st.st_mode) ? fcntl(fds[0], F_GET_SEALS) : -1;
  int status = EMX_EINVAL;
  emx__errbuf nerr;
  if (emx__name_check(m->u.load_bytes.name, m->u.load_bytes.name_len, &nerr) <
      0) {
    /* A newline would forge log lines, a space STATUS fields. */
    snprintf(msg, sizeof msg, "%.300s", nerr.msg);
  } else if (o->no_client_models) {
    snprintf(msg, sizeof msg,
             "this daemon serves only its model repository "
             "(--no-client-models): ask its administrator to add the model");
  } else if (!have || !S_ISREG(st.st_mode)) {
    snprintf(msg, sizeof msg,
             "the model descriptor is %s, not a memfd: pass the model's "
             "bytes in a sealed memfd (emx_client_model_load_bytes does)",
             have ? fd_kind(st.st_mode) : "unusable (fstat failed)");
  } else if (seals < 0 || (seals & MODEL_SEALS) != MODEL_SEALS) {
    snprintf(msg, sizeof msg,
             "the model must come in a memfd sealed with F_SEAL_SHRINK, "
             "F_SEAL_GROW and F_SEAL_WRITE (seals 0x%x)",
             seals < 0 ? 0 : seals);
  } else if ((uint64_t)st.st_size != size || size == 0) {
    snprintf(msg, sizeof msg,
             "the model memfd holds %lld bytes; the message says %llu",
             (long long)st.st_size, (unsigned long long)size);
  } else if (size > o->max_client_model_bytes) {
    status = EMX_EBUSY;
    snprintf(msg, sizeof msg,
             "the model is %llu MiB, more than one user may load "
             "(--max-client-model-mb %llu)",
             (unsigned long long)(size >> 20),
             (unsigned long long)(o->max_client_model_bytes >> 20));
  } else {
    emxd_job *j = calloc(1, sizeof *j);
    if (!j) {
      emxd__unix_error(s, m->hdr.id, EMX_ENOMEM, "daemon out of memory");
      return 0;
    }
    j->kind = EMXD_JOB_LOAD;
    j->session = s->id;
    j->req = m->hdr.id;
    j->uid = emxd_client_peer(s->cl)->uid;
    j->fd = fds[0];
    fds[0] = -1; /* the job's now */
    j->size = size;
    memcpy(j->name, m->u.load_bytes.name, m->u.load_bytes.name_len);
    if (m->u.load_bytes.placement) /* at most EMX_WIRE_MAX_PLACEMENT bytes */
      memcpy(j->devices, m->u.load_bytes.placement,
             m->u.load_bytes.placement_len);
    emxd_admin_post(srv, j);
    return 0;
  }
  emxd__unix_error(s, m->hdr.id, status, msg);
  return 0;
}

void emxd_sessions_answer(emxd_server *srv) {
  emxd_job *list = emxd_admin_take(srv);
  for (emxd_job *j = list; j; j = j->next) {
    if (j->answer) {
      j->answer(j);
      continue;
    }
    emxd_session *s = srv->sessions;
    while (s && s->id != j->session)
      s = s->next;
    if (!s)
      continue; /* gone meanwhile; a loaded model stays (idle unload) */
    if (j->status < 0) {
      emxd__unix_error(s, j->req, j->status, j->msg);
    } else if (j->kind == EMXD_JOB_LOAD) {
      emxd__unix_reply_model(s, j->req, j->model);
    } else {
      _Alignas(8) uint8_t buf[16];
      emx__wire_buf b;
      emx__wire_begin(&b, buf, EMX_WIRE_PONG, j->req);
      emxd__unix_send(s, buf, emx__wire_end(&b));
    }
  }
  emxd_job_free_list(list);
}

void emxd__unix_unload(emxd_session *s, const emx__wire_msg *m) {
  emxd_job *j = calloc(1, sizeof *j);
  if (!j) {
    emxd__unix_error(s, m->hdr.id, EMX_ENOMEM, "daemon out of memory");
    return;
  }
  j->kind = EMXD_JOB_UNLOAD;
  j->session = s->id;
  j->req = m->hdr.id;
  j->uid = emxd_client_peer(s->cl)->uid;
  j->fd = -1;
  memcpy(j->name, m->u.name.name, m->u.name.len);
  emxd_admin_post(s->srv, j);
}
