/*
 * test_http.c — edgemuxd's HTTP door through a real socket: every KServe v2
 * endpoint, JSON and Triton-binary infers equal to a direct TFLite invoke,
 * the error statuses, bearer auth, TLS, request priority and timeout, one
 * client per address, 1000 keep-alive connections, slow and
 * killed clients, and /metrics through promtool.
 *
 * The client is a few lines of raw HTTP/1.1 over TCP: it must be able to
 * misbehave (stall, trickle, die mid-body) in ways a library would not.
 * Over 800 lines: every case shares that client and the daemon setup.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon_support.h"
#include "support.h"

#define MODEL "face_detection_short_range"
#define IN_FLOATS (128 * 128 * 3)
#define OUT0_FLOATS (896 * 16)
#define OUT1_FLOATS 896
#define CONNS 1000

static emxt_daemon daemon_;
static int port;
static float input[IN_FLOATS];
static float want0[OUT0_FLOATS], want1[OUT1_FLOATS];

typedef struct resp {
  int status;
  char head[4096];
  char *body; /* NUL-terminated */
  size_t len;
} resp;

static int http_connect(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    fail_msg("connect to port %d: %s", port, strerror(errno));
  return fd;
}

static void send_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      fail_msg("send: %s", strerror(errno));
    p += n;
    len -= (size_t)n;
  }
}

static void send_req(int fd, const char *method, const char *path,
                     const char *headers, const void *body, size_t len) {
  char head[1024];
  int n = snprintf(head, sizeof head,
                   "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: "
                   "%zu\r\n%s\r\n",
                   method, path, len, headers ? headers : "");
  send_all(fd, head, (size_t)n);
  if (len)
    send_all(fd, body, len);
}

/* read_resp reads one response (MHD always sends Content-Length). */
static void read_resp(int fd, resp *r) {
  size_t cap = 65536, have = 0;
  char *buf = malloc(cap);
  char *end = NULL;
  size_t need = SIZE_MAX;
  while (have < need) {
    if (have + 1 >= cap)
      buf = realloc(buf, cap *= 2);
    ssize_t n = recv(fd, buf + have, cap - have - 1, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      fail_msg("connection closed after %zu bytes", have);
    have += (size_t)n;
    buf[have] = '\0';
    if (!end && (end = strstr(buf, "\r\n\r\n"))) {
      size_t hl = (size_t)(end - buf) + 4;
      const char *cl = strcasestr(buf, "\r\nContent-Length:");
      assert_non_null(cl);
      need = hl + strtoull(cl + 17, NULL, 10);
      assert_true(hl < sizeof r->head);
      memcpy(r->head, buf, hl);
      r->head[hl] = '\0';
      sscanf(buf, "HTTP/1.1 %d", &r->status);
    }
  }
  size_t hl = strlen(r->head);
  r->len = need - hl;
  r->body = malloc(r->len + 1);
  memcpy(r->body, buf + hl, r->len);
  r->body[r->len] = '\0';
  free(buf);
}

static resp call(const char *method, const char *path, const char *headers,
                 const void *body, size_t len) {
  int fd = http_connect();
  send_req(fd, method, path, headers, body, len);
  resp r = {0};
  read_resp(fd, &r);
  close(fd);
  return r;
}

static void expect(const char *method, const char *path, int status,
                   const char *needle) {
  resp r = call(method, path, NULL, "{}", strcmp(method, "POST") ? 0 : 2);
  if (r.status != status || (needle && !strstr(r.body, needle)))
    fail_msg("%s %s: want %d with \"%s\", got %d %s", method, path, status,
             needle ? needle : "", r.status, r.body);
  free(r.body);
}

static int daemon_port(const emxt_daemon *d) {
  size_t n;
  char *log = read_file(d->log, &n);
  const char *p = strstr(log, "(port ");
  int v = p ? atoi(p + 6) : 0;
  free(log);
  return v;
}

static int setup(void **state) {
  /* The test holds 1000 sockets at once; the daemon raises its own. */
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 4096) {
    rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  fill_random_floats(input, IN_FLOATS, 42);
  emx_tensor in = {EMX_DTYPE_FLOAT32, input, sizeof input};
  emx_tensor out[2] = {{EMX_DTYPE_FLOAT32, want0, sizeof want0},
                       {EMX_DTYPE_FLOAT32, want1, sizeof want1}};
  direct_run(MODEL_FACE_SHORT, &in, 1, out, 2);
  static const char *const args[] = {
      "--device",    "cpu:workers=1",         "--http",
      "127.0.0.1:0", "--http-max-body-bytes", "1000000",
      NULL};
  if (emxt_daemon_start(&daemon_, args) < 0)
    return -1;
  port = daemon_port(&daemon_);
  return port > 0 ? 0 : -1;
}

static int teardown(void **state) {
  return emxt_daemon_stop(&daemon_) == 0 ? 0 : -1;
}

static void every_endpoint(void **state) {
  expect("GET", "/v2", 200,
         "\"extensions\":[\"binary_tensor_data\",\"model_repository\"]");
  expect("GET", "/v2/health/live", 200, NULL);
  expect("GET", "/v2/health/ready", 200, NULL);
  expect("GET", "/v2/models/" MODEL, 200,
         "\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,"
         "128,128,3]}]");
  expect("GET", "/v2/models/" MODEL "/versions/1", 200, "\"versions\":[\"1\"]");
  expect("GET", "/v2/models/" MODEL "/ready", 200, NULL);
  expect("GET", "/v2/models/" MODEL "/versions/1/ready", 200, NULL);
  expect("GET", "/v2/models/" MODEL "/versions/2", 404, "version");
  expect("GET", "/v2/models/nope", 404, "unknown model \\\"nope\\\"");
  expect("GET", "/v2/models/nope/ready", 404, "unknown model");
  expect("POST", "/v2/models/nope/infer", 404, "unknown model");
  expect("POST", "/v2/repository/index", 200,
         "{\"name\":\"" MODEL "\",\"version\":\"1\",\"state\":\"READY\"}");
  expect("POST", "/v2/repository/models/" MODEL "/unload", 400,
         "repository model");
  expect("GET", "/v2/models/" MODEL "/infer", 405, "POST");
  expect("POST", "/v2/health/live", 405, "GET");
  expect("GET", "/v3", 404, "no endpoint");
}

static char *json_infer_body(bool nested) {
  json_t *data = json_array();
  if (nested) { /* [1][128][128][3] */
    json_t *b = json_array();
    for (int y = 0; y < 128; y++) {
      json_t *row = json_array();
      for (int x = 0; x < 128; x++) {
        json_t *px = json_array();
        for (int c = 0; c < 3; c++)
          json_array_append_new(px, json_real(input[(y * 128 + x) * 3 + c]));
        json_array_append_new(row, px);
      }
      json_array_append_new(b, row);
    }
    json_array_append_new(data, b);
  } else {
    for (int i = 0; i < IN_FLOATS; i++)
      json_array_append_new(data, json_real(input[i]));
  }
  json_t *in = json_pack("{s:s,s:[i,i,i,i],s:s,s:o}", "name", "input", "shape",
                         1, 128, 128, 3, "datatype", "FP32", "data", data);
  json_t *doc = json_pack("{s:s,s:[o]}", "id", "req-7", "inputs", in);
  char *s = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(9));
  json_decref(doc);
  return s;
}

static void check_json_output(json_t *outs, const char *name, const float *want,
                              size_t n) {
  size_t i;
  json_t *o;
  json_array_foreach(outs, i, o) {
    if (strcmp(json_string_value(json_object_get(o, "name")), name) != 0)
      continue;
    json_t *data = json_object_get(o, "data");
    assert_int_equal(json_array_size(data), n);
    for (size_t k = 0; k < n; k++) {
      float got = (float)json_number_value(json_array_get(data, k));
      if (memcmp(&got, &want[k], 4) != 0)
        fail_msg("%s[%zu]: %.9g, direct invoke %.9g", name, k, got, want[k]);
    }
    return;
  }
  fail_msg("output %s missing", name);
}

/* JSON in, JSON out, nested and flat: equal to the direct invoke. */
static void json_infer_equals_direct(void **state) {
  for (int nested = 0; nested < 2; nested++) {
    char *body = json_infer_body(nested);
    resp r =
        call("POST", "/v2/models/" MODEL "/infer", NULL, body, strlen(body));
    free(body);
    if (r.status != 200)
      fail_msg("%d %s", r.status, r.body);
    json_t *doc = json_loads(r.body, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "id")), "req-7");
    json_t *outs = json_object_get(doc, "outputs");
    check_json_output(outs, "regressors", want0, OUT0_FLOATS);
    check_json_output(outs, "classificators", want1, OUT1_FLOATS);
    json_decref(doc);
    free(r.body);
  }
}

static size_t binary_body(char **out, const char *extra) {
  char hdr[512];
  int h = snprintf(hdr, sizeof hdr,
                   "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,128,128,3],"
                   "\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\""
                   ":%zu}}]%s}",
                   sizeof input, extra);
  *out = malloc((size_t)h + sizeof input);
  memcpy(*out, hdr, (size_t)h);
  memcpy(*out + h, input, sizeof input);
  return (size_t)h;
}

/* Triton's binary extension both ways, several requests on one keep-alive
 * connection: the bytes after the JSON header are the direct invoke's. */
static void binary_infer_equals_direct(void **state) {
  char *body;
  size_t h = binary_body(&body, ",\"parameters\":{\"binary_data_output\":"
                                "true},\"outputs\":[{\"name\":"
                                "\"classificators\"},{\"name\":\"regressors\","
                                "\"parameters\":{\"binary_data\":true}}]");
  char headers[128];
  snprintf(headers, sizeof headers, "Inference-Header-Content-Length: %zu\r\n",
           h);
  int fd = http_connect();
  for (int i = 0; i < 3; i++) {
    send_req(fd, "POST", "/v2/models/" MODEL "/infer", headers, body,
             h + sizeof input);
    resp r = {0};
    read_resp(fd, &r);
    if (r.status != 200)
      fail_msg("%d %s", r.status, r.body);
    const char *hv = strcasestr(r.head, "Inference-Header-Content-Length:");
    assert_non_null(hv);
    size_t jl = strtoull(hv + 32, NULL, 10);
    assert_int_equal(r.len, jl + sizeof want0 + sizeof want1);
    json_t *doc = json_loadb(r.body, jl, 0, NULL);
    assert_non_null(doc);
    json_decref(doc);
    /* Outputs in the model's order, whatever order they were asked in. */
    assert_memory_equal(r.body + jl, want0, sizeof want0);
    assert_memory_equal(r.body + jl + sizeof want0, want1, sizeof want1);
    free(r.body);
  }
  close(fd);
  free(body);
}

/* A model loaded with its bytes in the request (raw, then Triton's base64
 * JSON), run, unloaded; junk bytes are refused by the trial. */
static void load_infer_unload(void **state) {
  size_t size;
  uint8_t *bytes = read_file(MODEL_FACE_SHORT, &size);
  resp r = call("POST", "/v2/repository/models/mine/load",
                "Content-Type: application/octet-stream\r\n", bytes, size);
  if (r.status != 200)
    fail_msg("load: %d %s", r.status, r.body);
  free(r.body);
  char *body;
  size_t h = binary_body(&body, ",\"parameters\":{\"binary_data_output\":"
                                "true}");
  char headers[128];
  snprintf(headers, sizeof headers, "Inference-Header-Content-Length: %zu\r\n",
           h);
  r = call("POST", "/v2/models/mine/infer", headers, body, h + sizeof input);
  assert_int_equal(r.status, 200);
  const char *hv = strcasestr(r.head, "Inference-Header-Content-Length:");
  size_t jl = strtoull(hv + 32, NULL, 10);
  assert_memory_equal(r.body + jl, want0, sizeof want0);
  free(r.body);
  free(body);
  /* The same bytes as a repository model are that model (models are
   * content): it stays, however it is asked for. */
  r = call("POST", "/v2/repository/models/mine/unload", NULL, NULL, 0);
  assert_int_equal(r.status, 400);
  assert_non_null(strstr(r.body, "repository model"));
  free(r.body);
  free(bytes);
  bytes = read_file(EMX_MODELS_DIR "/face_detection_full_range_sparse.tflite",
                    &size);

  /* Triton's form: the file in a JSON parameter, base64. */
  static const char b64[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t blen = (size + 2) / 3 * 4;
  char *json = malloc(blen + 128);
  size_t n = (size_t)sprintf(json, "{\"parameters\":{\"file:1/model."
                                   "tflite\":\"");
  for (size_t i = 0; i < size; i += 3) {
    uint32_t v = (uint32_t)bytes[i] << 16;
    if (i + 1 < size)
      v |= (uint32_t)bytes[i + 1] << 8;
    if (i + 2 < size)
      v |= bytes[i + 2];
    json[n++] = b64[v >> 18];
    json[n++] = b64[(v >> 12) & 63];
    json[n++] = i + 1 < size ? b64[(v >> 6) & 63] : '=';
    json[n++] = i + 2 < size ? b64[v & 63] : '=';
  }
  n += (size_t)sprintf(json + n, "\"}}");
  r = call("POST", "/v2/repository/models/mine2/load",
           "Content-Type: application/json\r\n", json, n);
  if (r.status != 200)
    fail_msg("load (base64): %d %s", r.status, r.body);
  free(r.body);
  free(json);
  expect("GET", "/v2/models/mine2", 200, "\"name\":\"mine2\"");
  r = call("POST", "/v2/repository/models/mine2/unload", NULL, NULL, 0);
  if (r.status != 200)
    fail_msg("unload: %d %s", r.status, r.body);
  free(r.body);
  expect("GET", "/v2/models/mine2", 404, "unknown model");

  memset(bytes, 0x5a, size / 2);
  r = call("POST", "/v2/repository/models/junk/load", NULL, bytes, size / 2);
  assert_int_equal(r.status, 400);
  assert_non_null(strstr(r.body, "not a valid TensorFlow Lite model"));
  free(r.body);
  free(bytes);
}

static void malformed_over_http(void **state) {
  char *body;
  size_t h = binary_body(&body, "");
  char headers[128];
  snprintf(headers, sizeof headers, "Inference-Header-Content-Length: %zu\r\n",
           h + sizeof input + 1);
  resp r = call("POST", "/v2/models/" MODEL "/infer", headers, body,
                h + sizeof input);
  assert_int_equal(r.status, 400);
  assert_non_null(strstr(r.body, "larger than the"));
  free(r.body);
  /* Without the header the binary tail is not JSON. */
  r = call("POST", "/v2/models/" MODEL "/infer", NULL, body, h + sizeof input);
  assert_int_equal(r.status, 400);
  assert_non_null(strstr(r.body, "\"error\":"));
  free(r.body);
  free(body);
  const char *bad = "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,128,128,"
                    "3],\"datatype\":\"FP99\",\"data\":[1]}]}";
  r = call("POST", "/v2/models/" MODEL "/infer", NULL, bad, strlen(bad));
  assert_int_equal(r.status, 400);
  assert_non_null(strstr(r.body, "unknown datatype"));
  free(r.body);
  /* Over the body limit: refused before the body is read. */
  static char big[1000001];
  memset(big, ' ', sizeof big);
  int fd = http_connect();
  char head[256];
  int n = snprintf(head, sizeof head,
                   "POST /v2/models/" MODEL "/infer HTTP/1.1\r\nHost: x\r\n"
                   "Content-Length: %zu\r\n\r\n",
                   sizeof big);
  send_all(fd, head, (size_t)n);
  resp t = {0};
  read_resp(fd, &t);
  assert_int_equal(t.status, 413);
  assert_non_null(strstr(t.body, "--http-max-body-bytes"));
  free(t.body);
  close(fd);
}

/* 1000 keep-alive connections at once, each asked twice. */
static void thousand_keepalive_connections(void **state) {
  static int fds[CONNS];
  for (int i = 0; i < CONNS; i++)
    fds[i] = http_connect();
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < CONNS; i++)
      send_req(fds[i], "GET", "/v2/health/live", NULL, NULL, 0);
    for (int i = 0; i < CONNS; i++) {
      resp r = {0};
      read_resp(fds[i], &r);
      assert_int_equal(r.status, 200);
      free(r.body);
    }
  }
  /* These 1000 and the scrape's own; a connection an earlier test closed
   * may not have been reaped yet. */
  resp m = call("GET", "/metrics", NULL, NULL, 0);
  const char *v = strstr(m.body, "\nedgemux_http_connections ");
  assert_non_null(v);
  long open_now = atol(v + strlen("\nedgemux_http_connections "));
  if (open_now < CONNS + 1 || open_now > CONNS + 4)
    fail_msg("edgemux_http_connections %ld, want %d", open_now, CONNS + 1);
  free(m.body);
  for (int i = 0; i < CONNS; i++)
    close(fds[i]);
}

/* closed_within: does the daemon close fd within `ms`? Reads and drops
 * whatever it sends first (an error response). */
static bool closed_within(int fd, int ms) {
  int64_t until = emx_now_ns() + (int64_t)ms * 1000000;
  char buf[4096];
  for (;;) {
    int left = (int)((until - emx_now_ns()) / 1000000);
    if (left <= 0)
      return false;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, left) <= 0)
      continue;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      return true;
  }
}

/* A client that stops halfway through its headers is closed by the idle
 * timeout (1 s here); one that trickles a body a byte at a time, never
 * idle, by the request timeout (1.5 s here). */
static void slowloris_is_cut_off(void **state) {
  /* A daemon of its own with short timeouts: the shared one keeps the
   * defaults, which the 1000 connections need on a loaded machine. */
  static const char *const args[] = {"--device",
                                     "cpu:workers=1",
                                     "--http",
                                     "127.0.0.1:0",
                                     "--http-idle-timeout-s",
                                     "1",
                                     "--http-request-timeout-ms",
                                     "1500",
                                     NULL};
  emxt_daemon slow;
  assert_int_equal(emxt_daemon_start(&slow, args), 0);
  int shared_port = port;
  port = daemon_port(&slow);
  int fd = http_connect();
  const char *part = "GET /v2 HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  send_all(fd, part, strlen(part));
  assert_true(closed_within(fd, 5000));
  close(fd);

  fd = http_connect();
  const char *head = "POST /v2/models/" MODEL "/infer HTTP/1.1\r\nHost: x\r\n"
                     "Content-Length: 100000\r\n\r\n";
  send_all(fd, head, strlen(head));
  int64_t start = emx_now_ns();
  bool cut = false;
  /* The pacing is the attack itself (under the idle timeout), not a wait
   * for a result. */
  while (!cut && emx_now_ns() - start < 8000000000LL) {
    if (send(fd, "{", 1, MSG_NOSIGNAL) != 1)
      cut = true;
    else
      cut = closed_within(fd, 250);
  }
  assert_true(cut);
  close(fd);
  expect("GET", "/v2/health/live", 200, NULL);
  int status = emxt_daemon_stop(&slow);
  port = shared_port;
  /* emxt_daemon_start pointed EDGEMUX_SOCKET at the short-lived one. */
  setenv("EDGEMUX_SOCKET", daemon_.socket, 1);
  assert_int_equal(status, 0);
}

/* Clients killed with SIGKILL halfway through a body leave the daemon
 * serving, and their connections are closed. */
static void killed_clients_mid_body(void **state) {
  enum { KIDS = 8 };
  pid_t kids[KIDS];
  int ready[2];
  assert_int_equal(pipe(ready), 0);
  for (int k = 0; k < KIDS; k++) {
    kids[k] = fork();
    if (kids[k] == 0) {
      /* No cmocka here: a failing assert in a child would run the rest
       * of the suite in it. */
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
      sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        _exit(1);
      char *body;
      size_t h = binary_body(&body, "");
      char headers[128];
      snprintf(headers, sizeof headers,
               "Inference-Header-Content-Length: %zu\r\n", h);
      char head[512];
      int n = snprintf(head, sizeof head,
                       "POST /v2/models/" MODEL "/infer HTTP/1.1\r\nHost: "
                       "x\r\nContent-Length: %zu\r\n%s\r\n",
                       h + sizeof input, headers);
      if (send(fd, head, (size_t)n, MSG_NOSIGNAL) != n ||
          send(fd, body, h + sizeof input / 2, MSG_NOSIGNAL) !=
              (ssize_t)(h + sizeof input / 2))
        _exit(1);
      if (write(ready[1], "r", 1) != 1)
        _exit(1);
      pause();
      _exit(0);
    }
  }
  for (int k = 0; k < KIDS; k++) {
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
  }
  for (int k = 0; k < KIDS; k++) {
    kill(kids[k], SIGKILL);
    waitpid(kids[k], NULL, 0);
  }
  close(ready[0]);
  close(ready[1]);
  binary_infer_equals_direct(state);
}

/* maps_lib: whether pid maps a file whose name contains lib. */
static int maps_lib(pid_t pid, const char *lib) {
  char path[64], line[512];
  snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  int found = 0;
  while (!found && fgets(line, sizeof line, f))
    found = strstr(line, lib) != NULL;
  fclose(f);
  return found;
}

/* libmicrohttpd and libzmq (and GnuTLS, libsodium... with them) are opened
 * only for a door: a daemon without one does not carry them (~1.8 MiB). */
static void door_libraries_only_when_asked(void **state) {
  static const char *const args[] = {"--device", "cpu:workers=1", NULL};
  emxt_daemon d;
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  int plain_mhd = maps_lib(d.pid, "libmicrohttpd");
  int plain_zmq = maps_lib(d.pid, "libzmq");
  int plain_tls = maps_lib(d.pid, "libgnutls");
  int status = emxt_daemon_stop(&d);
  setenv("EDGEMUX_SOCKET", daemon_.socket, 1);
  assert_int_equal(status, 0);
  assert_int_equal(plain_mhd, 0);
  assert_int_equal(plain_zmq, 0);
  assert_int_equal(plain_tls, 0);
  assert_int_equal(maps_lib(daemon_.pid, "libmicrohttpd"), 1);
}

/* --http-token-file: every endpoint but health needs the bearer token. */
static void bearer_token(void **state) {
  char *tok = write_temp_file("s3cret-token\n", 13);
  const char *const args[] = {"--device",    "cpu:workers=1",     "--http",
                              "127.0.0.1:0", "--http-token-file", tok,
                              NULL};
  emxt_daemon d;
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  int shared_port = port;
  port = daemon_port(&d);
  expect("GET", "/v2/health/live", 200, NULL);
  expect("GET", "/v2", 401, "bearer token");
  resp r = call("GET", "/v2", "Authorization: Bearer s3cret-toke\r\n", NULL, 0);
  int short_status = r.status;
  free(r.body);
  r = call("GET", "/v2", "Authorization: Bearer s3cret-token\r\n", NULL, 0);
  int good_status = r.status;
  free(r.body);
  int status = emxt_daemon_stop(&d);
  port = shared_port;
  setenv("EDGEMUX_SOCKET", daemon_.socket, 1);
  unlink(tok);
  free(tok);
  assert_int_equal(short_status, 401);
  assert_int_equal(good_status, 200);
  assert_int_equal(status, 0);
}

/* answered_within: fd has a response to read within ms. */
static bool answered_within(int fd, int ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, ms) == 1;
}

/* sim_daemon starts a daemon whose one device is a simulated accelerator
 * spending `us` per invoke (its lock in a folder of this test's own), with
 * extra args after; port points at it. */
static void sim_daemon(emxt_daemon *d, int us, const char *sched,
                       const char *listen, char *lockdir, size_t cap) {
  snprintf(lockdir, cap, "/tmp/test_http-sim-XXXXXX");
  assert_non_null(mkdtemp(lockdir));
  static char spec[256];
  snprintf(spec, sizeof spec,
           "sim:0,fixed_us=%d,outputs=none,bandwidth_mbps=0,lock_dir=%s,"
           "sched=%s",
           us, lockdir, sched);
  const char *const args[] = {"--device", spec, "--http", listen, NULL};
  assert_int_equal(emxt_daemon_start(d, args), 0);
  port = daemon_port(d);
}

static void sim_daemon_stop(emxt_daemon *d, int shared_port, char *lockdir) {
  int status = emxt_daemon_stop(d);
  port = shared_port;
  setenv("EDGEMUX_SOCKET", daemon_.socket, 1);
  char lock[512];
  snprintf(lock, sizeof lock, "%s/edgemux-sim-0.lock", lockdir);
  unlink(lock);
  rmdir(lockdir);
  assert_int_equal(status, 0);
}

/* post_infer_to sends a binary infer of zeros to `model`, whose one
 * input is "input" of shape [1, side, side, 3] FP32, with `params` (a JSON
 * object's members, or "") as the request's parameters, on a connection
 * of its own from address `from`. */
static int post_infer_to(const char *model, int side, const char *params,
                         uint32_t from) {
  size_t bytes = (size_t)side * (size_t)side * 3 * sizeof(float);
  char hdr[512];
  int h = snprintf(hdr, sizeof hdr,
                   "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,%d,%d,3],"
                   "\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\""
                   ":%zu}}],\"parameters\":{%s}}",
                   side, side, bytes, params);
  char *body = calloc(1, (size_t)h + bytes);
  memcpy(body, hdr, (size_t)h);
  char headers[128], path[128];
  snprintf(headers, sizeof headers, "Inference-Header-Content-Length: %d\r\n",
           h);
  snprintf(path, sizeof path, "/v2/models/%s/infer", model);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in me = {.sin_family = AF_INET};
  me.sin_addr.s_addr = htonl(from);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&me, sizeof me) < 0 ||
      connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    fail_msg("connect from %08x to port %d: %s", from, port, strerror(errno));
  send_req(fd, "POST", path, headers, body, (size_t)h + bytes);
  free(body);
  return fd;
}

static int post_infer(const char *params) {
  return post_infer_to(MODEL, 128, params, INADDR_LOOPBACK);
}

/* queued_is waits (up to 10 s) for the model's queue to hold n. */
static bool queued_is(int n) {
  char want[128];
  snprintf(want, sizeof want,
           "edgemux_model_queue_depth{model=\"" MODEL "\"} %d\n", n);
  for (int64_t t0 = emx_now_ns(); emx_now_ns() - t0 < 10000000000LL;) {
    resp m = call("GET", "/metrics", NULL, NULL, 0);
    bool hit = strstr(m.body, want) != NULL;
    free(m.body);
    if (hit)
      return true;
    usleep(5000);
  }
  return false;
}

/* Triton's request parameters: "timeout" (microseconds) fails a request
 * still queued when it passes, with 503; "priority" 1 (highest) runs
 * before a priority 3 queued earlier. The device spends 1 s an invoke:
 * of two priority-3 requests one runs and one is queued when the others
 * arrive; `high` must be answered between the two. It comes from
 * another address: one address is one stream, whose requests complete in
 * the order they were submitted, whatever their priorities. */
static void priority_and_timeout_parameters(void **state) {
  emxt_daemon d;
  char lockdir[64];
  int shared_port = port;
  sim_daemon(&d, 1000000, "fifo", "0.0.0.0:0", lockdir, sizeof lockdir);
  int low[2] = {post_infer("\"priority\":3"), post_infer("\"priority\":3")};
  bool one_queued = queued_is(1);
  int high = post_infer_to(MODEL, 128, "\"priority\":1", 0x7f000002);
  /* A third stream: in the first, `late` would complete after low[1]. */
  int late = post_infer_to(MODEL, 128, "\"timeout\":1000", 0x7f000003);
  resp r = {0};
  read_resp(late, &r);
  int late_status = r.status;
  char late_body[256];
  snprintf(late_body, sizeof late_body, "%s", r.body);
  free(r.body);
  bool high_answered = answered_within(high, 5000);
  int lows_before = answered_within(low[0], 0) + answered_within(low[1], 0);
  int st[3];
  int fds[3] = {high, low[0], low[1]};
  for (int i = 0; i < 3; i++) {
    read_resp(fds[i], &r);
    st[i] = r.status;
    free(r.body);
    close(fds[i]);
  }
  close(late);
  sim_daemon_stop(&d, shared_port, lockdir);
  assert_true(one_queued);
  if (late_status != 503)
    fail_msg("timeout 1000 us behind a 1 s invoke: %d %s", late_status,
             late_body);
  for (int i = 0; i < 3; i++)
    assert_int_equal(st[i], 200);
  assert_true(high_answered);
  assert_int_equal(lows_before, 1);
}

/* Under sched=fair each client address is one stream (one client of the
 * HTTP door), whatever its number of connections: two connections from
 * 127.0.0.1 and one from 127.0.0.2 are two clients. */
static void one_client_per_address(void **state) {
  emxt_daemon d;
  char lockdir[64];
  int shared_port = port;
  sim_daemon(&d, 0, "fair", "0.0.0.0:0", lockdir, sizeof lockdir);
  int fds[3];
  for (int i = 0; i < 3; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in me = {.sin_family = AF_INET};
    me.sin_addr.s_addr = htonl(i < 2 ? 0x7f000001 : 0x7f000002);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fds[i], (struct sockaddr *)&me, sizeof me), 0);
    assert_int_equal(connect(fds[i], (struct sockaddr *)&sa, sizeof sa), 0);
    send_req(fds[i], "GET", "/v2/health/live", NULL, NULL, 0);
    resp r = {0};
    read_resp(fds[i], &r); /* accepted and counted by now */
    free(r.body);
  }
  int fd = fds[0];
  send_req(fd, "GET", "/metrics", NULL, NULL, 0);
  resp m = {0};
  read_resp(fd, &m);
  bool two = strstr(m.body, "edgemux_clients{door=\"http\"} 2\n") != NULL;
  char *at = strstr(m.body, "edgemux_clients{door=\"http\"}");
  char line[128] = "";
  if (at)
    snprintf(line, sizeof line, "%.*s", (int)strcspn(at, "\n"), at);
  free(m.body);
  for (int i = 0; i < 3; i++)
    close(fds[i]);
  sim_daemon_stop(&d, shared_port, lockdir);
  if (!two)
    fail_msg("want 2 HTTP clients (addresses), got: %s", line);
}

/* --tls-cert/--tls-key: HTTPS with a self-signed certificate (openssl and
 * curl from Debian); plain HTTP on that port gets no answer. */
static void tls_with_self_signed_cert(void **state) {
  if (system("command -v openssl >/dev/null && command -v curl >/dev/null") !=
      0)
    skip();
  char dir[] = "/tmp/test_http-tls-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char cmd[1024], cert[64], key[64];
  snprintf(cert, sizeof cert, "%s/cert.pem", dir);
  snprintf(key, sizeof key, "%s/key.pem", dir);
  snprintf(cmd, sizeof cmd,
           "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "
           "/CN=localhost -keyout %s -out %s >/dev/null 2>&1",
           key, cert);
  assert_int_equal(system(cmd), 0);
  const char *const args[] = {
      "--device", "cpu:workers=1", "--http", "127.0.0.1:0", "--tls-cert",
      cert,       "--tls-key",     key,      NULL};
  emxt_daemon d;
  int shared_port = port;
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  port = daemon_port(&d);
  snprintf(cmd, sizeof cmd,
           "curl -s -o /dev/null -w '%%{http_code}' --cacert %s "
           "https://localhost:%d/v2/health/ready",
           cert, port);
  FILE *p = popen(cmd, "r");
  char code[16] = "";
  size_t n = fread(code, 1, sizeof code - 1, p);
  code[n] = '\0';
  pclose(p);
  snprintf(cmd, sizeof cmd,
           "curl -s -m 5 -o /dev/null -w '%%{http_code}' "
           "http://127.0.0.1:%d/v2/health/ready",
           port);
  p = popen(cmd, "r");
  char plain[16] = "";
  n = fread(plain, 1, sizeof plain - 1, p);
  plain[n] = '\0';
  pclose(p);
  int status = emxt_daemon_stop(&d);
  port = shared_port;
  setenv("EDGEMUX_SOCKET", daemon_.socket, 1);
  unlink(cert);
  unlink(key);
  rmdir(dir);
  assert_string_equal(code, "200");
  assert_string_not_equal(plain, "200");
  assert_int_equal(status, 0);
}

/* /metrics is valid Prometheus text with no lint warnings, and counts
 * per model. */
static void metrics_pass_promtool(void **state) {
  resp r = call("GET", "/metrics", NULL, NULL, 0);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.head, "text/plain; version=0.0.4"));
  assert_non_null(strstr(r.body, "edgemux_model_requests_succeeded_total{"
                                 "model=\"" MODEL "\"}"));
  /* The earlier cases ran the model: each per-model family has counted. */
  static const char *const ran[] = {"inferences_total", "executions_total",
                                    "queue_seconds_total",
                                    "compute_seconds_total"};
  for (size_t i = 0; i < sizeof ran / sizeof ran[0]; i++) {
    char key[128];
    snprintf(key, sizeof key, "edgemux_model_%s{model=\"" MODEL "\"} ", ran[i]);
    const char *at = strstr(r.body, key);
    if (!at || !(strtod(at + strlen(key), NULL) > 0))
      fail_msg("%s: missing or zero after infers", key);
  }
  if (system("command -v promtool >/dev/null 2>&1") != 0) {
    free(r.body);
    skip(); /* scripts/setup installs Debian's prometheus */
  }
  char *path = write_temp_file(r.body, r.len);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
  FILE *p = popen(cmd, "r");
  char out[4096] = "";
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = '\0';
  int rc = pclose(p);
  if (rc != 0 || n != 0)
    fail_msg("promtool check metrics: rc %d: %s", rc, out);
  unlink(path);
  free(path);
  free(r.body);
}

/* `edgemux status --prometheus` prints the same families over the Unix
 * socket, and promtool finds nothing in them either. */
static void status_prometheus_over_socket(void **state) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           EMX_BIN_DIR "/edgemux --socket %s status --prometheus",
           daemon_.socket);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t cap = 1 << 20, n = 0, k;
  char *text = malloc(cap);
  while ((k = fread(text + n, 1, cap - 1 - n, p)) > 0)
    n += k;
  text[n] = '\0';
  assert_int_equal(pclose(p), 0);
  resp r = call("GET", "/metrics", NULL, NULL, 0);
  assert_int_equal(r.status, 200);
  /* Values move between the two reads; the families and series may not. */
  for (const char *l = r.body; *l; l = strchr(l, '\n') + 1) {
    size_t len = strcspn(l, l[0] == '#' ? "\n" : " ");
    char series[512];
    snprintf(series, sizeof series, "%.*s", (int)len, l);
    if (!strstr(text, series))
      fail_msg("/metrics has \"%s\", status --prometheus has not", series);
    if (!strchr(l, '\n'))
      break;
  }
  free(r.body);
  if (system("command -v promtool >/dev/null 2>&1") == 0) {
    char *path = write_temp_file(text, n);
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
    assert_int_equal(system(cmd), 0);
    unlink(path);
    free(path);
  }
  free(text);
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_endpoint),
      cmocka_unit_test(json_infer_equals_direct),
      cmocka_unit_test(binary_infer_equals_direct),
      cmocka_unit_test(load_infer_unload),
      cmocka_unit_test(malformed_over_http),
      cmocka_unit_test(thousand_keepalive_connections),
      cmocka_unit_test(slowloris_is_cut_off),
      cmocka_unit_test(killed_clients_mid_body),
      cmocka_unit_test(bearer_token),
      cmocka_unit_test(priority_and_timeout_parameters),
      cmocka_unit_test(one_client_per_address),
      cmocka_unit_test(tls_with_self_signed_cert),
      cmocka_unit_test(metrics_pass_promtool),
      cmocka_unit_test(status_prometheus_over_socket),
      cmocka_unit_test(door_libraries_only_when_asked),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
