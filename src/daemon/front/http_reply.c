/* http_reply.c — what both HTTP handlers (http.c: infer, metadata,
 * metrics; http_repo.c: the repository extension) answer with: a body or
 * an {"error"} body, and the release of a request's state. Apart from
 * http.c so that the two handlers do not call each other. */
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "daemon/daemon.h"
#include "daemon/front/http_codec.h"
#include "daemon/front/http_conn.h"

void emxh__hreq_unref(hreq *r) {
  if (atomic_fetch_sub(&r->refs, 1) != 1)
    return;
  if (r->m)
    emxd_model_put(r->m);
  emxh_request_free(&r->parsed);
  emxh__spare_give(r->h, r->outbuf, r->outcap);
  emxh__spare_give(r->h, r->body, r->cap);
  pthread_mutex_destroy(&r->lock);
  free(r);
}

enum MHD_Result emxh__send_body(struct MHD_Connection *c, int status,
                                char *text, const char *type) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      text ? strlen(text) : 0, text, MHD_RESPMEM_MUST_FREE);
  if (!resp) {
    free(text);
    return MHD_NO;
  }
  if (type)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  if (status == MHD_HTTP_UNAUTHORIZED)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
  enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, resp);
  MHD_destroy_response(resp);
  return rc;
}

enum MHD_Result emxh__send_error(struct MHD_Connection *c, int status,
                                 const char *msg) {
  emx__log(EMX_LOG_DEBUG, "http: %d %s", status, msg);
  return emxh__send_body(c, status, emxh_error_json(msg), "application/json");
}
