/* http_door.c — the HTTP door's answers that need no request body: server
 * and model metadata, health, the repository index, /metrics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "daemon/front/http_door.h"

static enum MHD_Result reply(struct MHD_Connection *c, int status, char *body,
                             const char *type) {
  if (!body && type) { /* a body was meant: building it failed */
    status = 500;
    type = "application/json";
    body = emxh_error_json("out of memory");
  }
  struct MHD_Response *r = MHD_create_response_from_buffer(
      body ? strlen(body) : 0, body, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(body);
    return MHD_NO;
  }
  if (type)
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, r);
  MHD_destroy_response(r);
  return rc;
}

static enum MHD_Result error(struct MHD_Connection *c, int status,
                             const char *msg) {
  return reply(c, status, emxh_error_json(msg), "application/json");
}

static char *dump(json_t *doc) {
  char *s = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  return s;
}

static char *server_metadata(void) {
  json_t *doc = json_object();
  json_object_set_new(doc, "name", json_string("edgemux"));
  json_object_set_new(doc, "version", json_string(emx_version()));
  /* Only what works end to end: model loading over HTTP does not yet, so
   * "model_repository" is not claimed although the index answers. */
  json_t *ext = json_array();
  json_array_append_new(ext, json_string("binary_tensor_data"));
  json_object_set_new(doc, "extensions", ext);
  return dump(doc);
}

static char *model_metadata(emxd_model *m) {
  emx_tensor_info in[EMXH_MAX_TENSORS], out[EMXH_MAX_TENSORS];
  emxh_model_desc d = {m->name, in, out, emx_model_input_count(m->model),
                       emx_model_output_count(m->model)};
  if (d.nin > EMXH_MAX_TENSORS || d.nout > EMXH_MAX_TENSORS)
    return NULL;
  for (size_t i = 0; i < d.nin; i++)
    emx_model_input_info(m->model, i, &in[i]);
  for (size_t i = 0; i < d.nout; i++)
    emx_model_output_info(m->model, i, &out[i]);
  return emxh_model_metadata(&d);
}

static char *repository_index(emxd_server *srv) {
  json_t *doc = json_array();
  for (emxd_model *m = srv->models; m; m = m->next) {
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(m->name));
    json_object_set_new(o, "version", json_string("1"));
    json_object_set_new(
        o, "state",
        json_string(emx_model_healthy(m->model) ? "READY" : "UNAVAILABLE"));
    json_array_append_new(doc, o);
  }
  return dump(doc);
}

enum MHD_Result emxh_door_answer(emxd_server *srv, struct MHD_Connection *c,
                                 int route, const char *model) {
  switch (route) {
  case ROUTE_SERVER:
    return reply(c, 200, server_metadata(), "application/json");
  case ROUTE_LIVE:
    return reply(c, 200, NULL, NULL);
  case ROUTE_METRICS: {
    size_t len;
    char *text = emxd_metrics_text(srv, &len);
    return reply(c, 200, text, "text/plain; version=0.0.4; charset=utf-8");
  }
  case ROUTE_LOAD:
  case ROUTE_UNLOAD:
    return error(c, 501,
                 "loading and unloading models over HTTP is not available "
                 "yet: put the model in the --models repository and send "
                 "edgemuxd SIGHUP");
  default:
    break;
  }
  /* The rest read the model table, which a rescan changes. */
  pthread_mutex_lock(&srv->models_lock);
  enum MHD_Result rc;
  if (route == ROUTE_READY) {
    int ready = 1;
    for (emxd_model *m = srv->models; m; m = m->next)
      ready &= emx_model_healthy(m->model);
    /* The protocol: 200 is true, a 4xx is false. */
    rc = ready ? reply(c, 200, NULL, NULL)
               : error(c, 400, "not ready: a model has no healthy device");
  } else if (route == ROUTE_INDEX) {
    rc = reply(c, 200, repository_index(srv), "application/json");
  } else {
    emxd_model *m = emxd_model_by_name(srv, model);
    char msg[160];
    snprintf(msg, sizeof msg, "unknown model \"%s\"", model);
    if (!m)
      rc = error(c, 404, msg);
    else if (route == ROUTE_MODEL)
      rc = reply(c, 200, model_metadata(m), "application/json");
    else if (emx_model_healthy(m->model))
      rc = reply(c, 200, NULL, NULL);
    else
      rc = error(c, 400, "model not ready: no device it may use is healthy");
  }
  pthread_mutex_unlock(&srv->models_lock);
  return rc;
}
