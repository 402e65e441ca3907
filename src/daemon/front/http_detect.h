/* http_detect.h — the HTTP infer's extra output: a request with
 * "parameters": {"detections": true} on a model with a "detection" config
 * also gets "detections", FP32 [max_detections, 6], the rows the ZeroMQ
 * door sends Frigate ([class_id, score, ymin, xmin, ymax, xmax]). */
#ifndef EMX_DAEMON_FRONT_HTTP_DETECT_H
#define EMX_DAEMON_FRONT_HTTP_DETECT_H

#include "daemon/front/http_conn.h"

/* emxh_detections_wanted: did r ask for them? */
bool emxh_detections_wanted(const hreq *r);

/* emxh_add_detections appends the output to the response JSON `json`
 * (consumed) and returns the new text (length in *len); NULL with msg
 * filled (the model is not a detector, decoding failed, out of memory). */
char *emxh_add_detections(hreq *r, char *json, size_t *len, char *msg,
                          size_t cap);

#endif
