/*
 * bench/users/client.c — bench-users-client FRAME SOCKET MODEL: one user's
 * program as a client of edgemuxd (it links the client library only), the
 * edgemux side of bench-users. Each request copies the frame into the
 * arena, runs emx_client_infer, copies the outputs out of the arena and
 * compares them with the reference (see users.h).
 */
#include <edgemux/client.h>

#include "users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "bench-users-client"

typedef struct client {
  emx_client *c;
  emx_client_model *m;
  users_frame frame;
  emx_tensor in[USERS_MAX_TENSORS], out[USERS_MAX_TENSORS]; /* arena */
  void *frame_copy[USERS_MAX_TENSORS]; /* the program's own input */
  void *result[USERS_MAX_TENSORS];     /* and output buffers */
} client;

static int work(void *ctx) {
  client *k = ctx;
  for (size_t i = 0; i < k->frame.input_count; i++)
    memcpy(k->in[i].data, k->frame_copy[i], k->in[i].size);
  int rc = emx_client_infer(k->c, k->m, k->in, k->frame.input_count, k->out,
                            k->frame.output_count, NULL);
  if (rc < 0) {
    fprintf(stderr, "%s: emx_client_infer: %s: %s\n", PROG, emx_err_name(rc),
            emx_client_last_error(k->c));
    return -1;
  }
  int same = 1;
  for (size_t i = 0; i < k->frame.output_count; i++) {
    memcpy(k->result[i], k->out[i].data, k->out[i].size);
    same &= memcmp(k->result[i], k->frame.output[i], k->out[i].size) == 0;
  }
  return same ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s FRAME SOCKET MODEL (run by bench-users)\n",
            PROG);
    return 2;
  }
  static client k;
  if (users_frame_read(argv[1], &k.frame, PROG) < 0)
    return 1;
  size_t arena = 4096;
  for (size_t i = 0; i < k.frame.input_count; i++)
    arena += k.frame.input_size[i] + 4096;
  for (size_t i = 0; i < k.frame.output_count; i++)
    arena += k.frame.output_size[i] + 4096;
  emx_client_config cfg;
  emx_client_config_init(&cfg);
  cfg.socket_path = argv[2];
  cfg.arena_bytes = arena;
  int rc = emx_client_connect(&k.c, &cfg);
  if (rc == 0)
    rc = emx_client_model_open(k.c, argv[3], &k.m);
  for (size_t i = 0; rc == 0 && i < k.frame.input_count; i++) {
    rc = emx_client_tensor_alloc_input(k.c, k.m, i, &k.in[i]);
    k.frame_copy[i] = malloc(k.frame.input_size[i]);
    if (rc == 0 && (!k.frame_copy[i] || k.in[i].size != k.frame.input_size[i]))
      rc = -1;
    else if (rc == 0)
      memcpy(k.frame_copy[i], k.frame.input[i], k.in[i].size);
  }
  for (size_t i = 0; rc == 0 && i < k.frame.output_count; i++) {
    rc = emx_client_tensor_alloc_output(k.c, k.m, i, &k.out[i]);
    k.result[i] = malloc(k.frame.output_size[i]);
    if (rc == 0 && (!k.result[i] || k.out[i].size != k.frame.output_size[i]))
      rc = -1;
  }
  if (rc < 0) {
    fprintf(stderr, "%s: setting up model %s on %s: %s\n", PROG, argv[3],
            argv[2], emx_client_last_error(k.c));
    return 1;
  }
  rc = users_run(work, &k, PROG);
  emx_client_destroy(k.c);
  return rc;
}
