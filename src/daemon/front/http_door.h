/* http_door.h — the HTTP door's routes: which endpoint a URL names, and
 * the answers that need no body (metadata, health, repository, metrics). */
#ifndef EMX_DAEMON_FRONT_HTTP_DOOR_H
#define EMX_DAEMON_FRONT_HTTP_DOOR_H

#include <microhttpd.h>
#include <stddef.h>

#include "daemon/front/http_codec.h"
#include "daemon/front/model_names.h"

struct emxd_server;

enum {
  ROUTE_NONE = 0,    /* refused: the reason is in the error */
  ROUTE_SERVER,      /* GET /v2 */
  ROUTE_LIVE,        /* GET /v2/health/live */
  ROUTE_READY,       /* GET /v2/health/ready */
  ROUTE_MODEL,       /* GET /v2/models/{m}[/versions/{v}] */
  ROUTE_MODEL_READY, /* GET .../ready */
  ROUTE_INFER,       /* POST .../infer */
  ROUTE_INDEX,       /* POST /v2/repository/index */
  ROUTE_LOAD,        /* POST /v2/repository/models/{m}/load */
  ROUTE_UNLOAD,      /* POST /v2/repository/models/{m}/unload */
  ROUTE_METRICS      /* GET /metrics */
};

/* emxh_route names the endpoint of (url, method) and copies the model name
 * into model. ROUTE_NONE with e filled (404 unknown path or version, 405
 * wrong method) otherwise. metrics_only: only /metrics exists. */
int emxh_route(const char *url, const char *method, int metrics_only,
               char *model, size_t model_cap, emxh_error *e);

/* emxh_door_answer queues the answer of every route but ROUTE_INFER. */
enum MHD_Result emxh_door_answer(struct emxd_server *srv,
                                 struct MHD_Connection *c, int route,
                                 const char *model);

#endif
