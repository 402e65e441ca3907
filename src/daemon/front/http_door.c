/* http_door.c — the HTTP door's answers that need no request body: server
 * and model metadata, health, the repository index, /metrics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "daemon/front/http_door.h"
#include "daemon/path.h"

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
  /* Only what works end to end. */
  json_t *ext = json_array();
  json_array_append_new(ext, json_string("binary_tensor_data"));
  json_array_append_new(ext, json_string("model_repository"));
  json_object_set_new(doc, "extensions", ext);
  return dump(doc);
}

static char *model_metadata(emxd_model *m) {
  emx_model *em = emxd_model_engine(m);
  emx_tensor_info in[EMXH_MAX_TENSORS], out[EMXH_MAX_TENSORS];
  emxh_model_desc d = {emxd_model_name(m), in, out, emx_model_input_count(em),
                       emx_model_output_count(em)};
  if (d.nin > EMXH_MAX_TENSORS || d.nout > EMXH_MAX_TENSORS)
    return NULL;
  for (size_t i = 0; i < d.nin; i++)
    emx_model_input_info(em, i, &in[i]);
  for (size_t i = 0; i < d.nout; i++)
    emx_model_output_info(em, i, &out[i]);
  return emxh_model_metadata(&d);
}

/* health: every model (NULL: each of them) has a healthy device. A model
 * gone between the listing and the lookup no longer counts. */
static int healthy(emxd_server *srv, const char *name) {
  emxd_model *m = emxd_model_get(srv, name);
  if (!m)
    return -1;
  int ok = emx_model_healthy(emxd_model_engine(m));
  emxd_model_put(m);
  return ok;
}

static char *repository_index(emxd_server *srv) {
  emxh_names n;
  emxh_names_get(srv, &n);
  json_t *doc = json_array();
  for (size_t i = 0; i < n.count; i++) {
    int ok = healthy(srv, n.v[i]);
    if (ok < 0)
      continue;
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(n.v[i]));
    json_object_set_new(o, "version", json_string("1"));
    json_object_set_new(o, "state", json_string(ok ? "READY" : "UNAVAILABLE"));
    json_array_append_new(doc, o);
  }
  free(n.v);
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
  default:
    break;
  }
  if (route == ROUTE_INDEX)
    return reply(c, 200, repository_index(srv), "application/json");
  if (route == ROUTE_READY) {
    emxh_names n;
    emxh_names_get(srv, &n);
    int ready = 1;
    for (size_t i = 0; i < n.count; i++)
      ready &= healthy(srv, n.v[i]) != 0;
    free(n.v);
    /* The protocol: 200 is true, a 4xx is false. */
    return ready ? reply(c, 200, NULL, NULL)
                 : error(c, 400, "not ready: a model has no healthy device");
  }
  emxd_model *m = emxd_model_get(srv, model);
  if (!m) {
    char msg[160];
    snprintf(msg, sizeof msg, "unknown model \"%s\"", model);
    return error(c, 404, msg);
  }
  enum MHD_Result rc;
  if (route == ROUTE_MODEL)
    rc = reply(c, 200, model_metadata(m), "application/json");
  else if (emx_model_healthy(emxd_model_engine(m)))
    rc = reply(c, 200, NULL, NULL);
  else
    rc = error(c, 400, "model not ready: no device it may use is healthy");
  emxd_model_put(m);
  return rc;
}
