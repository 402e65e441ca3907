/* zmq_handshake.c — the ZeroMQ door's model handshake. Frigate asks for its
 * model by file name ({"model_request": true, "model_name": "x.tflite"});
 * when the daemon has none by that name it sends the file's bytes
 * ([{"model_data": true, "model_name": ...}, bytes]), which are loaded as a
 * client model: the admin thread tries them in a throwaway edgemux-devhost
 * first and shares a loaded copy of the same bytes, as for the Unix and
 * HTTP doors' LOAD. The daemon never opens a path a peer names. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/log.h"
#include "daemon/front/zmq_int.h"

/* A trial child may take seconds; Frigate waits 30 s for the handshake. */
#define PUSH_TIMEOUT_NS (25LL * 1000000000)

static void collect(void *arg, const char *name) {
  char **names = arg;
  for (size_t i = 0; i < 256; i++)
    if (!names[i]) {
      names[i] = strdup(name);
      return;
    }
}

static const char *base(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* stem copies name without its extension (".tflite"). */
static void stem(const char *name, char *out, size_t cap) {
  snprintf(out, cap, "%s", name);
  char *dot = strrchr(out, '.');
  if (dot && dot != out)
    *dot = 0;
}

emxd_model *emxz_model_by_name(emxd_server *srv, const char *name) {
  if (!name[0] || strchr(name, '/'))
    return NULL;
  emxd_model *m = emxd_model_get(srv, name);
  char s[256];
  stem(name, s, sizeof s);
  if (!m)
    m = emxd_model_get(srv, s);
  if (m)
    return m;
  /* A repository folder's file of that name (.../ssd/ssd.tflite). */
  char *names[256] = {0};
  emxd_model_names(srv, collect, names);
  for (size_t i = 0; i < 256 && names[i]; i++) {
    emxd_model *c = m ? NULL : emxd_model_get(srv, names[i]);
    if (c && c->from_repo && strcmp(base(c->path), name) == 0)
      m = c;
    else
      emxd_model_put(c);
    free(names[i]);
  }
  return m;
}

static void keep_model(zpeer *p, emxd_model *m) {
  emxd_model_put(p->model);
  p->model = m;
  emx__errbuf err = {{0}};
  if (m && !emxd_model_detector(m, &err))
    emx__log(EMX_LOG_WARN,
             "zmq: %s: model \"%s\": %s; its frames get zero "
             "rows",
             p->name, emxd_model_name(m), err.msg);
}

void emxz_handshake(zpeer *p, json_t *hdr) {
  const char *name = json_string_value(json_object_get(hdr, "model_name"));
  emxd_model *m = name ? emxz_model_by_name(p->z->srv, name) : NULL;
  if (m) {
    emx__log(EMX_LOG_INFO, "zmq: %s: model \"%s\" answers \"%s\"", p->name,
             emxd_model_name(m), name);
    keep_model(p, m);
  } else {
    emx__log(EMX_LOG_INFO,
             "zmq: %s: no model named \"%s\" in the repository; asking "
             "for its bytes",
             p->name, name ? name : "");
  }
  json_t *r = json_object();
  json_object_set_new(r, "model_available", json_boolean(m != NULL));
  json_object_set_new(r, "model_loaded", json_boolean(m != NULL));
  emxz_reply_json(p, r);
}

static void push_reply(zpeer *p, bool ok) {
  json_t *r = json_object();
  json_object_set_new(r, "model_saved", json_boolean(ok));
  json_object_set_new(r, "model_loaded", json_boolean(ok));
  emxz_reply_json(p, r);
}

/* on_job_answer: the I/O thread hands the admin thread's answer over. */
static void on_job_answer(emxd_job *j) {
  zanswer *a = j->answer_ctx;
  a->status = j->status;
  snprintf(a->msg, sizeof a->msg, "%.290s", j->msg);
  if (j->status == 0 && j->model) {
    emxd_model_ref(j->model);
    a->m = j->model;
  }
  emxz_post_answer(a->peer->z, a);
}

void emxz_push_model(zpeer *p, json_t *hdr, const void *data, size_t len) {
  emxd_server *srv = p->z->srv;
  const emxd_options *o = srv->opt;
  const char *name = json_string_value(json_object_get(hdr, "model_name"));
  char s[256];
  stem(name ? base(name) : "", s, sizeof s);
  const char *why = NULL;
  if (o->no_client_models)
    why = "this daemon serves only its model repository "
          "(--no-client-models): put the model in the repository";
  else if (!s[0] || strlen(s) >= 64)
    why = "model_name must be a file name of 1..63 characters";
  else if (len == 0 || len > o->max_client_model_bytes)
    why = len ? "the model is larger than --max-client-model-mb allows"
              : "no model bytes";
  zanswer *a = why ? NULL : calloc(1, sizeof *a);
  emxd_job *j = a ? calloc(1, sizeof *j) : NULL;
  int fd = j ? emx__memfd_sealed("edgemux-zmq-model", data, len) : -1;
  if (fd < 0) {
    free(a);
    free(j);
    emx__log(EMX_LOG_WARN, "zmq: %s: pushed model \"%s\" refused: %s", p->name,
             name ? name : "", why ? why : "out of memory");
    push_reply(p, false);
    return;
  }
  a->peer = p;
  a->gen = p->gen;
  j->kind = EMXD_JOB_LOAD;
  j->uid = EMXD_ZMQ_UID;
  j->fd = fd;
  j->size = len;
  snprintf(j->name, sizeof j->name, "%s", s);
  j->answer = on_job_answer;
  j->answer_ctx = a;
  p->outstanding++;
  p->deadline_ns = emx_now_ns() + PUSH_TIMEOUT_NS;
  emxd_admin_post(srv, j);
}

void emxz_push_answered(struct emxd_zmq *z, zanswer *a) {
  (void)z;
  zpeer *p = a->peer;
  p->outstanding--;
  if (a->status < 0)
    emx__log(EMX_LOG_WARN, "zmq: %s: pushed model refused: %s", p->name,
             a->msg);
  if (p->waiting && p->gen == a->gen) {
    push_reply(p, a->status == 0);
    if (a->status == 0) {
      emx__log(EMX_LOG_INFO, "zmq: %s: pushed model loaded as \"%s\"", p->name,
               emxd_model_name(a->m));
      keep_model(p, a->m);
      a->m = NULL;
    }
  }
  emxd_model_put(a->m);
  free(a);
}
