/* model_names.c — a snapshot of the model table's names, for the doors
 * that list models (the HTTP repository index and readiness, /metrics). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/front/model_names.h"
#include "daemon/path.h"

static void add_name(void *arg, const char *name) {
  emxh_names *n = arg;
  if (n->count == n->cap) {
    size_t cap = n->cap ? 2 * n->cap : 16;
    char(*v)[64] = realloc(n->v, cap * sizeof *v);
    if (!v)
      return;
    n->v = v;
    n->cap = cap;
  }
  snprintf(n->v[n->count++], 64, "%s", name);
}

void emxh_names_get(emxd_server *srv, emxh_names *n) {
  memset(n, 0, sizeof *n);
  emxd_model_names(srv, add_name, n);
}
