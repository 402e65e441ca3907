/* test_zmq.c — edgemuxd's ZeroMQ door as Frigate's zmq detector sees it:
 * REQ sockets written here (libzmq, as Frigate's pyzmq), the handshake by
 * name and by pushed bytes, frames in and 480-byte rows out, a peer that
 * times out and reconnects, garbage, wrong shapes and dtypes, a pushed
 * model that is not TFLite, and 4 detector clients plus a Unix-socket
 * client at once, every answer equal to a direct invoke of the same model
 * decoded by the same src/detect/ code. */
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include <cmocka.h>

#include "daemon_support.h"
#include "detect/detect.h"
#include "edgemux/client.h"
#include "support.h"

#define DET "object_detection_ssd_mobilenetv2_oidv4"
#define SIDE 300
#define FRAME_BYTES (SIDE * SIDE * 3)
#define ROWS 20
#define NFRAMES 3

static emxt_daemon daemon_;
static char repo[64], endpoint[160];
static void *ctx;
static emx__detect_config cfg;
static uint8_t frames[NFRAMES][FRAME_BYTES];
static float want[NFRAMES][ROWS * 6]; /* direct invoke + decode */
static int want_n[NFRAMES];
static char in_name[128]; /* the model's input, for HTTP */

/* A scene with edges and blobs (pure noise scores nothing). */
static void make_frame(uint8_t *f, int seed) {
  uint64_t s = (uint64_t)seed * 7919 + 1;
  for (int y = 0; y < SIDE; y++)
    for (int x = 0; x < SIDE; x++)
      for (int c = 0; c < 3; c++)
        f[(y * SIDE + x) * 3 + c] = (uint8_t)((x * (c + 1) + y * 2) / 3);
  for (int k = 0; k < 6; k++) {
    int x0 = (int)(prng_next(&s) % 200), y0 = (int)(prng_next(&s) % 200);
    int w = 40 + (int)(prng_next(&s) % 90), h = 60 + (int)(prng_next(&s) % 90);
    uint8_t v = (uint8_t)prng_next(&s);
    for (int y = y0; y < y0 + h && y < SIDE; y++)
      for (int x = x0; x < x0 + w && x < SIDE; x++)
        for (int c = 0; c < 3; c++)
          f[(y * SIDE + x) * 3 + c] = (uint8_t)(v + c * 40);
  }
}

/* decode runs the model's outputs through src/detect/ as the door does. */
static int decode(emx_tensor *outs, size_t n, float *rows) {
  emx__detector *d;
  emx__errbuf err = {{0}};
  assert_int_equal(emx__detector_create(&d, &cfg, &err), 0);
  emx__detect_tensor t[2];
  for (size_t i = 0; i < n; i++)
    t[i] = (emx__detect_tensor){outs[i].data, outs[i].size, EMX_DTYPE_FLOAT32,
                                0, 0};
  memset(rows, 0, ROWS * 6 * sizeof(float));
  int k = emx__detector_run(d, t, n, rows, ROWS, NULL, &err);
  emx__detector_destroy(d);
  return k;
}

static void to_input(const uint8_t *frame, float *in) {
  emx__errbuf err = {{0}};
  assert_int_equal(emx__detect_fill_input(&cfg, frame, EMX_DTYPE_UINT8,
                                          FRAME_BYTES, in, EMX_DTYPE_FLOAT32,
                                          FRAME_BYTES * 4, &err),
                   0);
}

/* The repository's detector with a low threshold, so the frames above give
 * rows to compare (not only zero rows). */
static int make_repo(void) {
  snprintf(repo, sizeof repo, "/tmp/emx-zmq-XXXXXX");
  if (!mkdtemp(repo))
    return -1;
  remove_at_exit(repo);
  char path[256];
  snprintf(path, sizeof path, "%s/" DET, repo);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/" DET "/model.tflite", repo);
  if (symlink(EMX_REPO_DIR "/" DET "/model.tflite", path) < 0)
    return -1;
  json_t *root = json_load_file(EMX_REPO_DIR "/" DET "/config.json", 0, NULL);
  if (!root)
    return -1;
  json_t *det = json_object_get(root, "detection");
  json_object_set_new(det, "score_threshold", json_real(0.05));
  json_object_del(det, "labels");
  emx__errbuf err = {{0}};
  if (emx__detect_config_parse(&cfg, det, &err) < 0)
    return -1;
  snprintf(path, sizeof path, "%s/" DET "/config.json", repo);
  int rc = json_dump_file(root, path, 0);
  json_decref(root);
  return rc;
}

/* Sanitizer builds run the model ~10x slower: every timeout stretches. */
static int slow = 1;
#define MS(n) ((n)*slow)

static int setup(void **state) {
  slow = sanitizer()[0] ? 10 : 1;
  if (private_lock_dirs() < 0 || make_repo() < 0)
    return -1;
  /* The direct baseline: the same model, invoked in this process. */
  emx_engine *e = engine_new(NULL, 0);
  emx_model *m = model_load(e, "det", EMX_REPO_DIR "/" DET "/model.tflite");
  emx_tensor *in = tensors_inputs(m), *out = tensors_outputs(m);
  emx_tensor_info info = {.struct_size = sizeof info};
  if (emx_model_input_info(m, 0, &info) < 0)
    return -1;
  snprintf(in_name, sizeof in_name, "%s", info.name);
  emx_request_desc d;
  request_init(&d, m, in, out);
  for (int i = 0; i < NFRAMES; i++) {
    make_frame(frames[i], i);
    to_input(frames[i], in[0].data);
    if (emx_infer(e, &d, NULL) < 0)
      return -1;
    want_n[i] = decode(out, 2, want[i]);
  }
  tensors_free(in, 1);
  tensors_free(out, 2);
  emx_engine_destroy(e);
  if (want_n[0] < 1)
    return -1; /* a comparison of zero rows proves nothing */
  snprintf(endpoint, sizeof endpoint, "ipc://%s/zmq_detector", repo);
  static char timeout[32];
  snprintf(timeout, sizeof timeout, "%d", MS(10000));
  const char *args[] = {
      "--models", repo,     "--zmq",       endpoint, "--zmq-timeout-ms",
      timeout,    "--http", "127.0.0.1:0", NULL};
  if (emxt_daemon_start(&daemon_, args) < 0)
    return -1;
  ctx = zmq_ctx_new();
  return 0;
}

/* Sockets still open (a failed case jumps past its zmq_close): closed
 * before zmq_ctx_term, which would wait for them. */
static void *open_socks[64];
static pthread_mutex_t socks_lock = PTHREAD_MUTEX_INITIALIZER;

static void sock_close(void *s) {
  pthread_mutex_lock(&socks_lock);
  for (size_t i = 0; i < 64; i++)
    if (open_socks[i] == s)
      open_socks[i] = NULL;
  pthread_mutex_unlock(&socks_lock);
  zmq_close(s);
}

static int teardown(void **state) {
  for (size_t i = 0; i < 64; i++)
    if (open_socks[i])
      zmq_close(open_socks[i]);
  if (ctx)
    zmq_ctx_term(ctx);
  return emxt_daemon_stop(&daemon_) == 0 ? 0 : -1;
}

/* ---- a Frigate detector's socket ---------------------------------------- */

static void *req_socket(const char *ep, int timeout_ms) {
  void *s = zmq_socket(ctx, ZMQ_REQ);
  int zero = 0;
  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
  zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout_ms, sizeof timeout_ms);
  pthread_mutex_lock(&socks_lock);
  for (size_t i = 0; i < 64; i++)
    if (!open_socks[i]) {
      open_socks[i] = s;
      break;
    }
  pthread_mutex_unlock(&socks_lock);
  assert_int_equal(zmq_connect(s, ep), 0);
  return s;
}

/* exchange sends one or two frames and returns the reply's size (-1: none
 * in time) with the reply in buf. */
static int exchange(void *s, const char *hdr, const void *data, size_t len,
                    void *buf, size_t cap) {
  if (zmq_send(s, hdr, strlen(hdr), data ? ZMQ_SNDMORE : 0) < 0)
    return -1;
  if (data && zmq_send(s, data, len, 0) < 0)
    return -1;
  return zmq_recv(s, buf, cap, 0);
}

static json_t *exchange_json(void *s, const char *hdr, const void *data,
                             size_t len) {
  char buf[512];
  int n = exchange(s, hdr, data, len, buf, sizeof buf - 1);
  assert_true(n > 0);
  json_t *doc = json_loadb(buf, (size_t)n, 0, NULL);
  assert_non_null(doc);
  return doc;
}

static void handshake(void *s, const char *name, bool available) {
  char hdr[256];
  snprintf(hdr, sizeof hdr, "{\"model_request\": true, \"model_name\": \"%s\"}",
           name);
  json_t *r = exchange_json(s, hdr, NULL, 0);
  assert_int_equal(json_is_true(json_object_get(r, "model_available")),
                   available);
  assert_int_equal(json_is_true(json_object_get(r, "model_loaded")), available);
  json_decref(r);
}

static const char *frame_hdr =
    "{\"shape\": [1, 300, 300, 3], \"dtype\": \"uint8\", \"model_type\": "
    "\"ssd\"}";

static void assert_rows(void *s, int i) {
  float rows[ROWS * 6 + 1];
  int n = exchange(s, frame_hdr, frames[i], FRAME_BYTES, rows, sizeof rows);
  assert_int_equal(n, ROWS * 6 * 4);
  assert_memory_equal(rows, want[i], sizeof want[i]);
}

static void assert_zero_rows(int n, const float *rows) {
  assert_int_equal(n, ROWS * 6 * 4);
  for (int k = 0; k < ROWS * 6; k++)
    assert_true(rows[k] == 0.0f);
}

/* ---- cases ---------------------------------------------------------------- */

/* The three exchanges: by name (file name and model name), by pushed
 * bytes, then frames, each answered with the direct invoke's rows. */
static void three_exchanges(void **state) {
  void *s = req_socket(endpoint, MS(10000));
  handshake(s, DET ".tflite", true);
  for (int i = 0; i < NFRAMES; i++)
    assert_rows(s, i);
  sock_close(s);

  s = req_socket(endpoint, MS(10000));
  handshake(s, "frigate_ssd.tflite", false);
  size_t size;
  void *bytes = read_file(EMX_REPO_DIR "/" DET "/model.tflite", &size);
  assert_non_null(bytes);
  json_t *r = exchange_json(
      s, "{\"model_data\": true, \"model_name\": \"frigate_ssd.tflite\"}",
      bytes, size);
  free(bytes);
  assert_true(json_is_true(json_object_get(r, "model_saved")));
  assert_true(json_is_true(json_object_get(r, "model_loaded")));
  json_decref(r);
  assert_rows(s, 1);
  sock_close(s);

  /* The pushed name now answers the handshake by itself. */
  s = req_socket(endpoint, MS(10000));
  handshake(s, "frigate_ssd.tflite", true);
  assert_rows(s, 2);
  sock_close(s);
}

/* Garbage, wrong shapes and dtypes each get zero rows (the protocol has
 * no error frame), are logged, and leave the peer usable. */
static void garbage_and_wrong_frames(void **state) {
  void *s = req_socket(endpoint, MS(10000));
  handshake(s, DET ".tflite", true);
  float rows[ROWS * 6 + 1];
  const char *bad[] = {
      "not json at all",
      "[1, 2, 3]",
      "{\"what\": 1}",
      "{\"shape\": [1, 320, 320, 3], \"dtype\": \"uint8\"}",
      "{\"shape\": [1, 300, 300, 3], \"dtype\": \"int64\"}",
      "{\"shape\": [1, 300, 300, 3]}",
      "{\"shape\": [1, -300, 300, 3], \"dtype\": \"uint8\"}",
      "{\"shape\": [1, 300, 300, 3], \"dtype\": \"float32\"}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int n = exchange(s, bad[i], frames[0], FRAME_BYTES, rows, sizeof rows);
    assert_zero_rows(n, rows);
  }
  /* One frame only, and three frames. */
  int n = exchange(s, frame_hdr, NULL, 0, rows, sizeof rows);
  assert_zero_rows(n, rows);
  zmq_send(s, frame_hdr, strlen(frame_hdr), ZMQ_SNDMORE);
  zmq_send(s, frames[0], FRAME_BYTES, ZMQ_SNDMORE);
  zmq_send(s, "x", 1, 0);
  n = zmq_recv(s, rows, sizeof rows, 0);
  assert_zero_rows(n, rows);
  /* The peer still works. */
  assert_rows(s, 0);
  sock_close(s);
  assert_true(emxt_log_contains(&daemon_, "zero rows"));
}

/* Bytes that are not a TFLite model are refused (tried in a throwaway
 * child first), with model_saved false; the peer stays usable. */
static void pushed_model_not_tflite(void **state) {
  void *s = req_socket(endpoint, MS(20000));
  handshake(s, "junk.tflite", false);
  char junk[4096];
  memset(junk, 'j', sizeof junk);
  json_t *r = exchange_json(
      s, "{\"model_data\": true, \"model_name\": \"junk.tflite\"}", junk,
      sizeof junk);
  assert_false(json_is_true(json_object_get(r, "model_saved")));
  assert_false(json_is_true(json_object_get(r, "model_loaded")));
  json_decref(r);
  handshake(s, DET, true);
  assert_rows(s, 0);
  sock_close(s);
}

/* A detector that gives up on a frame (Frigate's request_timeout_ms)
 * drops its socket and starts over: the new socket gets its own answers,
 * never the old frame's. Then a daemon whose --zmq-timeout-ms passes
 * answers zero rows and logs it. */
static void timeout_and_reconnect(void **state) {
  void *s = req_socket(endpoint, MS(10000));
  char buf[16];
  handshake(s, DET, true);
  int one = 1;
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &one, sizeof one);
  assert_int_equal(
      exchange(s, frame_hdr, frames[2], FRAME_BYTES, buf, sizeof buf),
      -1); /* 1 ms: gave up */
  sock_close(s);
  s = req_socket(endpoint, MS(10000));
  handshake(s, DET, true);
  for (int i = 0; i < NFRAMES; i++)
    assert_rows(s, i);
  sock_close(s);

  emxt_daemon quick;
  char ep[200];
  snprintf(ep, sizeof ep, "ipc://%s/quick", repo);
  const char *args[] = {"--models",         repo, "--zmq", ep,
                        "--zmq-timeout-ms", "1",  NULL};
  assert_int_equal(emxt_daemon_start(&quick, args), 0);
  s = req_socket(ep, MS(10000));
  handshake(s, DET, true);
  float rows[ROWS * 6 + 1];
  int n = exchange(s, frame_hdr, frames[0], FRAME_BYTES, rows, sizeof rows);
  assert_zero_rows(n, rows);
  sock_close(s);
  bool logged = emxt_log_contains(&quick, "--zmq-timeout-ms");
  if (!logged) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "grep -h 'zmq' %s | tail -n 3 >&2", quick.log);
    if (system(cmd) != 0)
      fprintf(stderr, "(no zmq line in the daemon's log)\n");
  }
  int status = emxt_daemon_stop(&quick);
  setenv("EDGEMUX_SOCKET", daemon_.socket, 1);
  assert_true(logged);
  assert_int_equal(status, 0);
}

/* ---- the same rows over HTTP (the extra output) ------------------------- */

static int http_port(void) {
  size_t n;
  char *log = read_file(daemon_.log, &n);
  const char *p = log ? strstr(log, "(port ") : NULL;
  int v = p ? atoi(p + 6) : 0;
  free(log);
  return v;
}

/* A binary infer with "detections": true; the response's JSON part. */
static json_t *http_infer_detections(const float *input, size_t bytes) {
  char hdr[512];
  int hl = snprintf(hdr, sizeof hdr,
                    "{\"inputs\": [{\"name\": \"%s\", \"shape\": [1, 300, 300, "
                    "3], \"datatype\": \"FP32\", \"parameters\": "
                    "{\"binary_data_size\": %zu}}], \"parameters\": "
                    "{\"binary_data_output\": true, \"detections\": true}}",
                    in_name, bytes);
  char head[512];
  int l = snprintf(head, sizeof head,
                   "POST /v2/models/" DET "/infer HTTP/1.1\r\nHost: x\r\n"
                   "Connection: close\r\nContent-Type: "
                   "application/octet-stream\r\n"
                   "Inference-Header-Content-Length: %d\r\n"
                   "Content-Length: %zu\r\n\r\n",
                   hl, (size_t)hl + bytes);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)http_port())};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(send(fd, head, (size_t)l, MSG_NOSIGNAL), l);
  assert_int_equal(send(fd, hdr, (size_t)hl, MSG_NOSIGNAL), hl);
  for (size_t at = 0; at < bytes;) {
    ssize_t n = send(fd, (const char *)input + at, bytes - at, MSG_NOSIGNAL);
    assert_true(n > 0);
    at += (size_t)n;
  }
  size_t cap = 4 << 20, got = 0;
  char *resp = malloc(cap);
  for (ssize_t n; (n = recv(fd, resp + got, cap - 1 - got, 0)) > 0;)
    got += (size_t)n;
  close(fd);
  resp[got] = 0;
  if (!strstr(resp, " 200 "))
    fprintf(stderr, "%.600s\n", resp);
  assert_non_null(strstr(resp, " 200 "));
  const char *ihcl = strstr(resp, "Inference-Header-Content-Length: ");
  const char *body = strstr(resp, "\r\n\r\n");
  assert_non_null(ihcl);
  assert_non_null(body);
  json_t *doc = json_loadb(body + 4, (size_t)atol(ihcl + 33), 0, NULL);
  free(resp);
  assert_non_null(doc);
  return doc;
}

/* A Frigate frame's rows over ZeroMQ equal the HTTP infer's "detections"
 * output for the same frame converted the same way. */
static void http_extra_output(void **state) {
  float *in = malloc(FRAME_BYTES * 4);
  for (int i = 0; i < NFRAMES; i++) {
    to_input(frames[i], in);
    json_t *doc = http_infer_detections(in, FRAME_BYTES * 4);
    json_t *outs = json_object_get(doc, "outputs"), *o, *det = NULL;
    size_t k;
    json_array_foreach(outs, k, o) {
      if (strcmp(json_string_value(json_object_get(o, "name")), "detections") ==
          0)
        det = o;
    }
    assert_non_null(det);
    json_t *data = json_object_get(det, "data");
    assert_int_equal(json_array_size(data), ROWS * 6);
    for (size_t j = 0; j < ROWS * 6; j++)
      assert_true((float)json_real_value(json_array_get(data, j)) ==
                  want[i][j]);
    json_decref(doc);
  }
  free(in);
}

/* ---- 4 detector clients and a Unix-socket client on one device -------- */

#define ROUNDS 4
static atomic_int bad_answers;

static void *detector_client(void *arg) {
  void *s = req_socket(endpoint, MS(30000));
  char hdr[128];
  snprintf(hdr, sizeof hdr,
           "{\"model_request\": true, \"model_name\": \"%s.tflite\"}", DET);
  char ok[256];
  if (exchange(s, hdr, NULL, 0, ok, sizeof ok) < 0)
    atomic_fetch_add(&bad_answers, 100);
  for (int r = 0; r < ROUNDS; r++) {
    int i = (r + (int)(intptr_t)arg) % NFRAMES;
    float rows[ROWS * 6 + 1];
    int n = exchange(s, frame_hdr, frames[i], FRAME_BYTES, rows, sizeof rows);
    if (n != ROWS * 6 * 4 || memcmp(rows, want[i], sizeof want[i]) != 0) {
      fprintf(stderr, "detector %d frame %d: %d bytes, first row %g %g\n",
              (int)(intptr_t)arg, i, n, rows[0], rows[1]);
      atomic_fetch_add(&bad_answers, 1);
    }
  }
  sock_close(s);
  return NULL;
}

static void *unix_client(void *arg) {
  emx_client *c;
  emx_client_model *m;
  if (emx_client_connect(&c, NULL) < 0) {
    atomic_fetch_add(&bad_answers, 100);
    return NULL;
  }
  if (emx_client_model_open(c, DET, &m) < 0) {
    atomic_fetch_add(&bad_answers, 100);
    emx_client_destroy(c);
    return NULL;
  }
  emx_tensor in, out[2];
  emx_client_tensor_alloc_input(c, m, 0, &in);
  emx_client_tensor_alloc_output(c, m, 0, &out[0]);
  emx_client_tensor_alloc_output(c, m, 1, &out[1]);
  for (int r = 0; r < ROUNDS; r++) {
    int i = r % NFRAMES;
    float rows[ROWS * 6];
    to_input(frames[i], in.data);
    int rc = emx_client_infer(c, m, &in, 1, out, 2, NULL);
    if (rc < 0 || decode(out, 2, rows) != want_n[i] ||
        memcmp(rows, want[i], sizeof rows) != 0) {
      fprintf(stderr, "unix client frame %d: %s\n", i,
              rc < 0 ? emx_client_last_error(c) : "other rows");
      atomic_fetch_add(&bad_answers, 1);
    }
  }
  emx_client_tensor_free(c, &in);
  emx_client_tensor_free(c, &out[0]);
  emx_client_tensor_free(c, &out[1]);
  emx_client_destroy(c);
  return NULL;
}

static void four_detectors_and_a_unix_client(void **state) {
  pthread_t t[5];
  atomic_store(&bad_answers, 0);
  for (intptr_t i = 0; i < 4; i++)
    pthread_create(&t[i], NULL, detector_client, (void *)i);
  pthread_create(&t[4], NULL, unix_client, NULL);
  for (int i = 0; i < 5; i++)
    pthread_join(t[i], NULL);
  if (atomic_load(&bad_answers)) { /* why, from the daemon's side */
    char cmd[300];
    snprintf(cmd, sizeof cmd, "grep -h 'zero rows' %s | tail -n 3 >&2",
             daemon_.log);
    if (system(cmd) != 0)
      fprintf(stderr, "(no zero-row line in the daemon's log)\n");
  }
  assert_int_equal(atomic_load(&bad_answers), 0);
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(three_exchanges),
      cmocka_unit_test(garbage_and_wrong_frames),
      cmocka_unit_test(pushed_model_not_tflite),
      cmocka_unit_test(timeout_and_reconnect),
      cmocka_unit_test(http_extra_output),
      cmocka_unit_test(four_detectors_and_a_unix_client),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
