/* http_route.c — the Open Inference Protocol's URL space. */
#include <stdio.h>
#include <string.h>

#include "daemon/front/http_door.h"

/* segment copies the next path segment of *p (up to '/' or the end). */
static size_t segment(const char **p, char *out, size_t cap) {
  size_t n = strcspn(*p, "/");
  if (n < cap) {
    memcpy(out, *p, n);
    out[n] = '\0';
  }
  *p += n;
  return n;
}

static int want(const char *method, const char *need, int route,
                emxh_error *e) {
  if (strcmp(method, need) == 0)
    return route;
  emxh_errf(e, 405, "this endpoint takes %s, not %s", need, method);
  return ROUTE_NONE;
}

int emxh_route(const char *url, const char *method, int metrics_only,
               char *model, size_t model_cap, emxh_error *e) {
  model[0] = '\0';
  if (strcmp(url, "/metrics") == 0)
    return want(method, "GET", ROUTE_METRICS, e);
  if (metrics_only) {
    emxh_errf(e, 404, "this port serves only /metrics");
    return ROUTE_NONE;
  }
  if (strcmp(url, "/v2") == 0 || strcmp(url, "/v2/") == 0)
    return want(method, "GET", ROUTE_SERVER, e);
  if (strcmp(url, "/v2/health/live") == 0)
    return want(method, "GET", ROUTE_LIVE, e);
  if (strcmp(url, "/v2/health/ready") == 0)
    return want(method, "GET", ROUTE_READY, e);
  if (strcmp(url, "/v2/repository/index") == 0)
    return want(method, "POST", ROUTE_INDEX, e);
  const char *p;
  if (strncmp(url, "/v2/repository/models/", 22) == 0) {
    p = url + 22;
    size_t n = segment(&p, model, model_cap);
    if (n == 0 || n >= model_cap) {
      emxh_errf(e, 400, "model name must be 1..%zu bytes", model_cap - 1);
      return ROUTE_NONE;
    }
    if (strcmp(p, "/load") == 0)
      return want(method, "POST", ROUTE_LOAD, e);
    if (strcmp(p, "/unload") == 0)
      return want(method, "POST", ROUTE_UNLOAD, e);
  } else if (strncmp(url, "/v2/models/", 11) == 0) {
    p = url + 11;
    size_t n = segment(&p, model, model_cap);
    if (n == 0 || n >= model_cap) {
      emxh_errf(e, 400, "model name must be 1..%zu bytes", model_cap - 1);
      return ROUTE_NONE;
    }
    if (strncmp(p, "/versions/", 10) == 0) {
      p += 10;
      char version[32];
      size_t vn = segment(&p, version, sizeof version);
      if (vn != 1 || version[0] != '1') {
        emxh_errf(e, 404,
                  "model \"%s\" has no version \"%.*s\": edgemux serves one "
                  "version of each model, \"1\"",
                  model, (int)(vn < 32 ? vn : 31), p - vn);
        return ROUTE_NONE;
      }
    }
    if (*p == '\0')
      return want(method, "GET", ROUTE_MODEL, e);
    if (strcmp(p, "/ready") == 0)
      return want(method, "GET", ROUTE_MODEL_READY, e);
    if (strcmp(p, "/infer") == 0)
      return want(method, "POST", ROUTE_INFER, e);
  }
  emxh_errf(e, 404,
            "no endpoint %s %s (see the Open Inference Protocol's "
            "REST API)",
            method, url);
  return ROUTE_NONE;
}
