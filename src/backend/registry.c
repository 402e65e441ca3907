/* registry.c — the table of backends: the one file that knows them all. */
#include "backend/backend.h"

#include <stdlib.h>
#include <string.h>

static const emx__backend_ops *const backends[] = {
    &emx__backend_cpu,
    &emx__backend_sim,
    &emx__backend_edgetpu,
};

const emx__backend_ops *emx__backend_find(const char *kind) {
  for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
    if (strcmp(backends[i]->kind, kind) == 0)
      return backends[i];
  return NULL;
}

const char *emx__backend_kinds(void) {
  return "cpu, sim, edgetpu";
}
