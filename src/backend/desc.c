/* desc.c — model descriptions (a model's tensors as a backend saw them):
 * shared by every backend, the proxy and the engine, so it sits below them
 * all. */
#include "backend/backend.h"

#include <stdlib.h>
#include <string.h>

static void free_infos(emx_tensor_info *infos, size_t n) {
  for (size_t i = 0; infos && i < n; i++)
    free((char *)infos[i].name);
  free(infos);
}

void emx__model_desc_free(emx__model_desc *desc) {
  if (!desc)
    return;
  free_infos(desc->inputs, desc->input_count);
  free_infos(desc->outputs, desc->output_count);
  memset(desc, 0, sizeof *desc);
}

static int infos_equal(const emx_tensor_info *a, const emx_tensor_info *b,
                       size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (strcmp(a[i].name, b[i].name) != 0 || a[i].dtype != b[i].dtype ||
        a[i].rank != b[i].rank || a[i].bytes != b[i].bytes ||
        memcmp(a[i].dims, b[i].dims, sizeof a[i].dims) != 0)
      return 0;
  }
  return 1;
}

int emx__model_desc_equal(const emx__model_desc *a, const emx__model_desc *b) {
  return a->input_count == b->input_count &&
         a->output_count == b->output_count &&
         infos_equal(a->inputs, b->inputs, a->input_count) &&
         infos_equal(a->outputs, b->outputs, a->output_count);
}
