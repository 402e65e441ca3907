/* model_names.h — a snapshot of the model table's names. */
#ifndef EMX_DAEMON_FRONT_MODEL_NAMES_H
#define EMX_DAEMON_FRONT_MODEL_NAMES_H

#include <stddef.h>

struct emxd_server;

/* emxh_names: the names, each cut to 63 bytes. */
typedef struct emxh_names {
  char (*v)[64]; /* malloc'd; free(v) */
  size_t count, cap;
} emxh_names;

void emxh_names_get(struct emxd_server *srv, emxh_names *n);

#endif
