/* unit_daemon_paging.c — LIST and STATUS that do not fit in one message.
 *
 * A repository of NMODELS models with 63-byte names (distinct bytes: a small
 * fixture with a different count of zeros after its flatbuffer, which TFLite
 * ignores and the hash does not) makes both the MODELS reply (~72 bytes a
 * name) and the STATUS text (~330 bytes a model) larger than a packet.
 * emx_client_models and emx_client_status page, so every model shows up
 * exactly once; a client that does not page (HELLO without
 * EMX_WIRE_HELLO_PAGED, requests without a body) gets the first page and a
 * marker saying it was cut. Before paging, MODELS was refused ("does not
 * fit") and STATUS was cut silently at 60000 bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon_support.h"
#include "edgemux/client.h"
#include "support.h"
#include "wire/wire.h"

#define NMODELS 1000

/* model_name: 63 bytes, the longest a name may be. */
static void model_name(char *out, size_t cap, int i) {
  snprintf(out, cap, "paging-%04d-%.*s", i, 51,
           "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
}

static void make_repo(char *repo) {
  assert_non_null(mkdtemp(repo));
  remove_at_exit(repo);
  size_t size;
  uint8_t *base = read_file(MODEL_Q_UINT8, &size);
  assert_non_null(base);
  uint8_t *buf = calloc(1, size + 8 * NMODELS + 8);
  memcpy(buf, base, size);
  for (int i = 0; i < NMODELS; i++) {
    char name[64], path[256];
    model_name(name, sizeof name, i);
    snprintf(path, sizeof path, "%s/%s", repo, name);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/%s/model.tflite", repo, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, size + 8 * (size_t)i, f),
                     size + 8 * (size_t)i);
    fclose(f);
  }
  free(buf);
  free(base);
}

typedef struct seen {
  int count[NMODELS];
  int other;
} seen;

static void note(seen *s, const char *name) {
  int i;
  char want[64];
  if (sscanf(name, "paging-%4d-", &i) == 1 && i >= 0 && i < NMODELS) {
    model_name(want, sizeof want, i);
    if (strcmp(want, name) == 0) {
      s->count[i]++;
      return;
    }
  }
  s->other++;
}

static void on_name(const char *name, void *user) {
  note(user, name);
}

static void each_once(const seen *s) {
  for (int i = 0; i < NMODELS; i++) {
    if (s->count[i] != 1)
      fprintf(stderr, "model %d seen %d times\n", i, s->count[i]);
    assert_int_equal(s->count[i], 1);
  }
  assert_int_equal(s->other, 0);
}

/* legacy_rpc sends a body-less request of `type` on a raw connection and
 * returns the decoded reply (in buf). */
static void legacy_rpc(int fd, uint8_t type, void *buf, emx__wire_msg *m) {
  emx__wire_buf b;
  uint64_t out[4];
  emx__wire_begin(&b, out, type, 7);
  size_t len = emx__wire_end(&b);
  assert_int_equal(send(fd, out, len, 0), (ssize_t)len);
  ssize_t n = recv(fd, buf, EMX_WIRE_MAX_MSG, 0);
  assert_true(n > 0);
  emx__errbuf err;
  assert_int_equal(emx__wire_decode(buf, (size_t)n, m, &err), 0);
  assert_int_equal(m->hdr.id, 7);
}

static void list_and_status_page(void **state) {
  (void)state;
  char repo[] = "/tmp/emxt-paging-XXXXXX";
  make_repo(repo);
  emxt_daemon d;
  const char *args[] = {"--device", "cpu", "--models", repo, NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  emx_client_config cfg;
  emx_client_config_init(&cfg);
  cfg.socket_path = d.socket;
  emx_client *c = NULL;
  assert_int_equal(emx_client_connect(&c, &cfg), 0);

  seen *s = calloc(1, sizeof *s);
  assert_int_equal(emx_client_models(c, on_name, s), 0);
  each_once(s);

  char *text = NULL;
  assert_int_equal(emx_client_status(c, &text), 0);
  assert_true(strlen(text) > EMX_WIRE_MAX_TEXT); /* it did page */
  memset(s, 0, sizeof *s);
  int versions = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    assert_true(strncmp(line, "truncated ", 10) != 0);
    versions += strncmp(line, "version ", 8) == 0;
    if (strncmp(line, "model ", 6) == 0) {
      char name[64];
      assert_int_equal(sscanf(line + 6, "%63s", name), 1);
      note(s, name);
    }
  }
  assert_int_equal(versions, 1);
  each_once(s);
  emx_client_free(text);
  emx_client_destroy(c);

  /* A client that does not page: its one page says it was cut. */
  int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", d.socket);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  uint64_t out[8];
  emx__wire_buf b;
  emx__wire_begin(&b, out, EMX_WIRE_HELLO, 1);
  emx__wire_hello h = {.proto = EMX_WIRE_VERSION, .pid = (uint32_t)getpid()};
  emx__wire_put(&b, &h, sizeof h);
  size_t len = emx__wire_end(&b);
  assert_int_equal(send(fd, out, len, 0), (ssize_t)len);
  static _Alignas(8) uint8_t in[EMX_WIRE_MAX_MSG];
  assert_true(recv(fd, in, sizeof in, 0) > 0);
  emx__wire_msg m;
  legacy_rpc(fd, EMX_WIRE_LIST, in, &m);
  assert_int_equal(m.hdr.type, EMX_WIRE_MODELS);
  assert_true(m.u.models.next > 0 && m.u.models.next < NMODELS);
  assert_int_equal(m.u.models.count, m.u.models.next + 1);
  const uint8_t *p = m.u.models.names;
  emx__wire_name n = {0};
  for (uint32_t i = 0; i < m.u.models.count; i++) {
    memcpy(&n, p, sizeof n);
    if (i + 1 < m.u.models.count)
      p += sizeof n + EMX_WIRE_PAD8(n.len);
  }
  assert_true(n.len > 3 && memcmp(p + sizeof n, "...", 3) == 0);
  legacy_rpc(fd, EMX_WIRE_STATUS, in, &m);
  assert_int_equal(m.hdr.type, EMX_WIRE_STATUS_OK);
  size_t tl = strnlen(m.u.text.text, m.u.text.len);
  assert_true(tl > 12 && m.u.text.text[tl - 1] == '\n');
  const char *last = m.u.text.text + tl - 1;
  while (last > m.u.text.text && last[-1] != '\n')
    last--;
  assert_true(strncmp(last, "truncated ", 10) == 0);
  close(fd);
  free(s);
  assert_int_equal(emxt_daemon_stop(&d), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(list_and_status_page),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
