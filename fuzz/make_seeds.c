/* make_seeds.c — writes one valid packet of each client message type into
 * a folder, as the fuzzer's starting corpus. */
#include <stdio.h>
#include <string.h>

#include "wire/wire.h"

static _Alignas(8) unsigned char buf[EMX_WIRE_MAX_MSG];

static void save(const char *dir, const char *name, size_t len) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f) {
    perror(path);
    return;
  }
  fwrite(buf, 1, len, f);
  fclose(f);
}

static void put_infer(emx__wire_buf *b, int nin, int nout) {
  emx__wire_infer in = {.model = 1,
                        .priority = 1,
                        .nin = (uint8_t)nin,
                        .nout = (uint8_t)nout,
                        .timeout_ns = 1000};
  emx__wire_put(b, &in, sizeof in);
  for (int i = 0; i < nin + nout; i++) {
    emx__wire_ref r = {.offset = (uint64_t)i * 64, .length = 64, .dtype = 1};
    emx__wire_put(b, &r, sizeof r);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: make_seeds DIR\n");
    return 2;
  }
  const char *dir = argv[1];
  emx__wire_buf b;

  emx__wire_begin(&b, buf, EMX_WIRE_HELLO, 1);
  emx__wire_hello h = {.proto = EMX_WIRE_VERSION, .arena_size = 4096};
  emx__wire_put(&b, &h, sizeof h);
  save(dir, "hello", emx__wire_end(&b));

  emx__wire_begin(&b, buf, EMX_WIRE_OPEN, 2);
  emx__wire_name n = {.len = 4};
  emx__wire_put(&b, &n, sizeof n);
  emx__wire_put(&b, "face", 4);
  save(dir, "open", emx__wire_end(&b));

  emx__wire_begin(&b, buf, EMX_WIRE_LOAD, 3);
  emx__wire_put(&b, &n, sizeof n);
  emx__wire_put(&b, "face", 4);
  emx__wire_name p = {.len = 10};
  emx__wire_put(&b, &p, sizeof p);
  emx__wire_put(&b, "/tmp/x.tfl", 10);
  save(dir, "load", emx__wire_end(&b));

  emx__wire_begin(&b, buf, EMX_WIRE_LOAD_BYTES, 3);
  emx__wire_load_bytes lb = {.size = 4096};
  emx__wire_put(&b, &lb, sizeof lb);
  emx__wire_put(&b, &n, sizeof n);
  emx__wire_put(&b, "face", 4);
  save(dir, "load_bytes", emx__wire_end(&b));

  emx__wire_begin(&b, buf, EMX_WIRE_UNLOAD, 3);
  emx__wire_put(&b, &n, sizeof n);
  emx__wire_put(&b, "face", 4);
  save(dir, "unload", emx__wire_end(&b));

  emx__wire_begin(&b, buf, EMX_WIRE_INFER, 4);
  put_infer(&b, 1, 2);
  save(dir, "infer", emx__wire_end(&b));

  emx__wire_begin(&b, buf, EMX_WIRE_BATCH, 5);
  emx__wire_models count = {.count = 2};
  emx__wire_put(&b, &count, sizeof count);
  for (int i = 0; i < 2; i++) {
    emx__wire_batch_item it = {.id = 10 + (uint64_t)i,
                               .size = sizeof it + sizeof(emx__wire_infer) +
                                       3 * sizeof(emx__wire_ref)};
    emx__wire_put(&b, &it, sizeof it);
    put_infer(&b, 1, 2);
  }
  save(dir, "batch", emx__wire_end(&b));

  static const struct {
    int type;
    const char *name;
  } empty[] = {{EMX_WIRE_LIST, "list"},
               {EMX_WIRE_STATUS, "status"},
               {EMX_WIRE_METRICS, "metrics"},
               {EMX_WIRE_PING, "ping"},
               {EMX_WIRE_CANCEL, "cancel"}};
  for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
    emx__wire_begin(&b, buf, (uint8_t)empty[i].type, 6);
    save(dir, empty[i].name, emx__wire_end(&b));
  }

  /* LIST and STATUS asking for a page further on. */
  emx__wire_page page = {.offset = 3};
  emx__wire_begin(&b, buf, EMX_WIRE_LIST, 6);
  emx__wire_put(&b, &page, sizeof page);
  save(dir, "list_page", emx__wire_end(&b));
  emx__wire_begin(&b, buf, EMX_WIRE_STATUS, 6);
  emx__wire_put(&b, &page, sizeof page);
  save(dir, "status_page", emx__wire_end(&b));

  emx__wire_begin(&b, buf, EMX_WIRE_COMPLETE, 7);
  emx__wire_complete c = {.status = -5, .msg_len = 5};
  emx__wire_put(&b, &c, sizeof c);
  emx__wire_put(&b, "hello", 5);
  save(dir, "complete", emx__wire_end(&b));

  emx__wire_begin(&b, buf, EMX_WIRE_COMPLETE_MANY, 0);
  emx__wire_many many = {.count = 2};
  emx__wire_put(&b, &many, sizeof many);
  emx__wire_many_rec r1 = {.id = 8, .c = {.status = 0, .batch = 2}};
  emx__wire_put(&b, &r1, sizeof r1);
  emx__wire_many_rec r2 = {.id = 9, .c = {.status = -10, .msg_len = 3}};
  emx__wire_put(&b, &r2, sizeof r2);
  emx__wire_put(&b, "dev", 3);
  save(dir, "complete_many", emx__wire_end(&b));
  return 0;
}
