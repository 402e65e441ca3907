/* http_repo.c — the HTTP door's model repository extension: load (with
 * the model's bytes in the request) and unload, handed to the admin thread
 * as the Unix door's LOAD_BYTES and UNLOAD are, the connection suspended
 * until it answers. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/arena.h"
#include "daemon/daemon.h"
#include "core/name.h"
#include "daemon/front/http_conn.h"
#include "daemon/front/http_door.h"

/* suspend_until_done suspends the connection unless the answer already
 * came; the handler runs again on resume. */
static enum MHD_Result suspend_until_done(hreq *r) {
  pthread_mutex_lock(&r->lock);
  if (!r->done) {
    MHD_suspend_connection(r->conn);
    r->suspended = true;
  }
  pthread_mutex_unlock(&r->lock);
  return MHD_YES;
}

/* on_admin_answer: the admin thread finished a LOAD or UNLOAD (called on
 * the I/O thread, which must not wait: it records and wakes). */
static void on_admin_answer(emxd_job *j) {
  hreq *r = j->answer_ctx;
  pthread_mutex_lock(&r->lock);
  r->status = j->status;
  if (j->status < 0)
    snprintf(r->errmsg, sizeof r->errmsg, "%s", j->msg);
  r->done = true;
  bool wake = r->suspended;
  pthread_mutex_unlock(&r->lock);
  atomic_fetch_sub(&r->h->inflight, 1);
  if (wake)
    MHD_resume_connection(r->conn);
  emxh__hreq_unref(r);
}

/* model_bytes finds the model in a load body: the raw bytes
 * (application/octet-stream), or Triton's JSON override
 * {"parameters": {"file:<anything>": "<base64>"}}, decoded into *owned. */
static int model_bytes(hreq *r, const uint8_t **data, size_t *len,
                       uint8_t **owned, emxh_error *e) {
  *owned = NULL;
  const char *type = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
  if (!type || strncmp(type, "application/json", 16) != 0) {
    *data = r->body;
    *len = r->len;
    return 0;
  }
  if (!emxh_json_depth_ok((const char *)r->body, r->len))
    return emxh_errf(e, 400, "JSON nested too deep");
  json_t *doc = json_loadb((const char *)r->body, r->len, 0, NULL);
  const char *key;
  json_t *v, *b64 = NULL;
  json_object_foreach(json_object_get(doc, "parameters"), key, v) {
    if (strncmp(key, "file:", 5) == 0 && json_is_string(v))
      b64 = v;
  }
  if (!b64) {
    json_decref(doc);
    return emxh_errf(e, 400,
                     "send the model's bytes as the body "
                     "(application/octet-stream), or as Triton's "
                     "{\"parameters\": {\"file:model.tflite\": "
                     "\"<base64>\"}}");
  }
  int rc = emxh_base64_decode(json_string_value(b64), json_string_length(b64),
                              owned, len);
  json_decref(doc);
  if (rc < 0)
    return emxh_errf(e, 400, "the \"file:\" parameter is not valid base64");
  *data = *owned;
  return 0;
}

enum MHD_Result emxh__start_admin(hreq *r) {
  emxd_server *srv = r->h->srv;
  const emxd_options *o = srv->opt;
  emxh_error e = {0};
  if (r->route == ROUTE_LOAD && o->no_client_models)
    return emxh__send_error(
        r->conn, 403,
        "this daemon serves only its model repository "
        "(--no-client-models): ask its administrator to add "
        "the model");
  emx__errbuf nerr;
  if (r->route == ROUTE_LOAD &&
      emx__name_check(r->model, strlen(r->model), &nerr) < 0)
    return emxh__send_error(r->conn, 400, nerr.msg);
  emxd_job *j = calloc(1, sizeof *j);
  if (!j)
    return emxh__send_error(r->conn, 500, "out of memory");
  j->fd = -1;
  j->uid = EMXD_HTTP_UID;
  snprintf(j->name, sizeof j->name, "%s", r->model);
  j->kind = r->route == ROUTE_LOAD ? EMXD_JOB_LOAD : EMXD_JOB_UNLOAD;
  if (r->route == ROUTE_LOAD) {
    const uint8_t *data = NULL;
    size_t len = 0;
    uint8_t *owned = NULL;
    if (model_bytes(r, &data, &len, &owned, &e) < 0) {
      free(j);
      return emxh__send_error(r->conn, e.status, e.msg);
    }
    if (len == 0 || len > o->max_client_model_bytes) {
      free(owned);
      free(j);
      return emxh__send_error(
          r->conn, len ? 413 : 400,
          len ? "the model is larger than one user may load "
                "(raise --max-client-model-mb)"
              : "no model bytes in the request");
    }
    j->fd = emx__memfd_sealed("edgemux-http-model", data, len);
    j->size = len;
    free(owned);
    if (j->fd < 0) {
      free(j);
      return emxh__send_error(r->conn, 500,
                              "could not put the model in a memfd");
    }
  }
  j->answer = on_admin_answer;
  j->answer_ctx = r;
  atomic_fetch_add(&r->refs, 1);
  atomic_fetch_add(&r->h->inflight, 1);
  emxd_admin_post(srv, j);
  return suspend_until_done(r);
}

enum MHD_Result emxh__finish_admin(hreq *r) {
  if (r->status < 0)
    return emxh__send_error(
        r->conn, r->status == EMX_EMODEL ? 400 : emxh_status_for(r->status),
        r->errmsg);
  return emxh__send_body(r->conn, 200, NULL, NULL);
}
