/* options.c — edgemuxd's settings: defaults, and the JSON config file
 * (--config FILE) with the same names as the flags. */
#include <grp.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "edgemux/client.h"

void emxd_options_init(emxd_options *o) {
  memset(o, 0, sizeof *o);
  /* The client library's rule, so both sides agree without flags. */
  emx_client_default_socket(o->socket_path, sizeof o->socket_path);
  o->log_level = EMX_LOG_INFO;
  o->queue_capacity = 256;
  o->max_inflight = 256;
  /* dbus-daemon's max_connections_per_user: one user's process pool with
   * an Interpreter per model per process reaches 64. */
  o->max_conns_per_uid = 256;
  o->handshake_timeout_ns = 5LL * 1000000000;
  o->max_outbox = 1 << 20;
  o->max_arena = 1ULL << 30;
  o->http_max_body = 64u << 20;
  o->http_max_header = 16u << 10;
  o->http_max_conns = 1024;
  o->http_idle_timeout_s = 30;
  o->http_request_timeout_ns = 60LL * 1000000000;
  o->http_threads = 2;
  o->zmq_timeout_ns = 180LL * 1000000; /* under Frigate's 200 ms default */
  o->zmq_max_peers = 64;
  o->max_client_models = 16;
  o->max_client_model_bytes = 1ULL << 30;
  o->model_idle_ns = 600LL * 1000000000;
  o->max_incomplete_conns = 64; /* dbus' max_incomplete_connections */
  o->max_arena_per_uid = 16ULL << 30;
  o->socket_mode = 0660;
  o->max_model_memory = 1ULL << 30;
  o->load_timeout_ns = 30LL * 1000000000;
  o->stop_timeout_ns = 90LL * 1000000000;
}

static char *dup_or_die(const char *s) {
  char *d = strdup(s);
  if (!d) {
    fprintf(stderr, "edgemuxd: out of memory\n");
    exit(1);
  }
  return d;
}

int emxd_log_level_parse(const char *s);
int emxd_log_level_parse(const char *s) {
  static const char *const names[] = {"error", "warn", "info", "debug"};
  for (int i = 0; i < 4; i++)
    if (strcmp(s, names[i]) == 0)
      return i;
  return -1;
}

/* string_key: where a string setting of the HTTP door goes; NULL for
 * other keys. */
static char *string_key(emxd_options *o, const char *key, size_t *cap) {
  const struct {
    const char *key;
    char *dst;
    size_t cap;
  } t[] = {{"http", o->http_listen, sizeof o->http_listen},
           {"metrics", o->metrics_listen, sizeof o->metrics_listen},
           {"http_token_file", o->http_token_file, sizeof o->http_token_file},
           {"tls_cert", o->tls_cert, sizeof o->tls_cert},
           {"tls_key", o->tls_key, sizeof o->tls_key}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (strcmp(key, t[i].key) == 0) {
      *cap = t[i].cap;
      return t[i].dst;
    }
  return NULL;
}

#define BAD(...) (emx__errf(err, EMX_EINVAL, __VA_ARGS__))

int emxd_config_load(emxd_options *o, const char *path, emx__errbuf *err) {
  json_error_t jerr;
  json_t *root = json_load_file(path, 0, &jerr);
  if (!root)
    return BAD("%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
  int rc = 0;
  if (!json_is_object(root)) {
    rc = BAD("%s: the top level must be an object", path);
    goto out;
  }
  const char *key;
  json_t *v;
  size_t cap;
  json_object_foreach(root, key, v) {
    if (strcmp(key, "socket") == 0 && json_is_string(v)) {
      if (snprintf(o->socket_path, sizeof o->socket_path, "%s",
                   json_string_value(v)) >= (int)sizeof o->socket_path)
        rc = BAD("%s: socket path too long", path);
    } else if (strcmp(key, "devices") == 0 && json_is_array(v)) {
      size_t i;
      json_t *d;
      o->device_count = 0;
      json_array_foreach(v, i, d) {
        if (!json_is_string(d) || o->device_count == EMX_D_MAX_DEVICES) {
          rc = BAD("%s: devices must be at most %d strings", path,
                   EMX_D_MAX_DEVICES);
          break;
        }
        o->devices[o->device_count++] = dup_or_die(json_string_value(d));
      }
    } else if (strcmp(key, "models") == 0 && json_is_string(v)) {
      snprintf(o->models_dir, sizeof o->models_dir, "%s", json_string_value(v));
    } else if (strcmp(key, "log_level") == 0 && json_is_string(v)) {
      int l = emxd_log_level_parse(json_string_value(v));
      if (l < 0)
        rc = BAD("%s: log_level must be error, warn, info or debug", path);
      else
        o->log_level = l;
    } else if (strcmp(key, "socket_mode") == 0 && json_is_string(v)) {
      rc = emxd_socket_mode_set(o, json_string_value(v), err);
    } else if (strcmp(key, "socket_group") == 0 && json_is_string(v)) {
      rc = emxd_socket_group_set(o, json_string_value(v), err);
    } else if (json_is_string(v) && string_key(o, key, &cap)) {
      char *dst = string_key(o, key, &cap);
      if (snprintf(dst, cap, "%s", json_string_value(v)) >= (int)cap)
        rc = BAD("%s: \"%s\" is too long (at most %zu bytes)", path, key,
                 cap - 1);
    } else if (strcmp(key, "zmq") == 0 && json_is_array(v)) {
      size_t i;
      json_t *d;
      o->zmq_count = 0;
      json_array_foreach(v, i, d) {
        if (!json_is_string(d) || o->zmq_count == EMXD_MAX_ZMQ ||
            json_string_length(d) >= sizeof o->zmq_endpoints[0]) {
          rc = BAD("%s: zmq must be at most %d endpoint strings of under %zu "
                   "bytes",
                   path, EMXD_MAX_ZMQ, sizeof o->zmq_endpoints[0]);
          break;
        }
        snprintf(o->zmq_endpoints[o->zmq_count++], sizeof o->zmq_endpoints[0],
                 "%s", json_string_value(d));
      }
    } else if (strcmp(key, "allow_load") == 0 && json_is_boolean(v)) {
      /* Accepted for old configs: clients send bytes now. */
    } else if (strcmp(key, "no_client_models") == 0 && json_is_boolean(v)) {
      o->no_client_models = json_is_true(v);
    } else if (json_is_integer(v) && json_integer_value(v) > 0) {
      json_int_t n = json_integer_value(v);
      if (strcmp(key, "queue_capacity") == 0)
        o->queue_capacity = (size_t)n;
      else if (strcmp(key, "max_inflight") == 0)
        o->max_inflight = (uint32_t)n;
      else if (strcmp(key, "max_conns_per_uid") == 0)
        o->max_conns_per_uid = (uint32_t)n;
      else if (strcmp(key, "handshake_timeout_ms") == 0)
        o->handshake_timeout_ns = n * 1000000;
      else if (strcmp(key, "max_outbox_bytes") == 0)
        o->max_outbox = (size_t)n;
      else if (strcmp(key, "max_arena_bytes") == 0)
        o->max_arena = (uint64_t)n;
      else if (strcmp(key, "http_max_body_bytes") == 0)
        o->http_max_body = (size_t)n;
      else if (strcmp(key, "http_max_header_bytes") == 0)
        o->http_max_header = (size_t)n;
      else if (strcmp(key, "http_max_connections") == 0)
        o->http_max_conns = (unsigned)n;
      else if (strcmp(key, "http_idle_timeout_s") == 0)
        o->http_idle_timeout_s = (unsigned)n;
      else if (strcmp(key, "http_request_timeout_ms") == 0)
        o->http_request_timeout_ns = n * 1000000;
      else if (strcmp(key, "http_threads") == 0)
        o->http_threads = (unsigned)n;
      else if (strcmp(key, "max_client_models") == 0)
        o->max_client_models = (uint32_t)n;
      else if (strcmp(key, "max_incomplete_conns") == 0)
        o->max_incomplete_conns = (uint32_t)n;
      else if (strcmp(key, "max_arena_bytes_per_uid") == 0)
        o->max_arena_per_uid = (uint64_t)n;
      else if (strcmp(key, "max_client_model_mb") == 0)
        o->max_client_model_bytes = (uint64_t)n << 20;
      else if (strcmp(key, "zmq_timeout_ms") == 0)
        o->zmq_timeout_ns = n * 1000000;
      else if (strcmp(key, "zmq_max_peers") == 0)
        o->zmq_max_peers = (unsigned)n;
      else if (strcmp(key, "model_idle_s") == 0)
        o->model_idle_ns = n * 1000000000LL;
      else if (strcmp(key, "max_model_memory_mb") == 0 && n > 0)
        o->max_model_memory = (uint64_t)n << 20;
      else if (strcmp(key, "load_timeout_s") == 0 && n > 0)
        o->load_timeout_ns = n * 1000000000LL;
      else if (strcmp(key, "stop_timeout_s") == 0 && n > 0)
        o->stop_timeout_ns = n * 1000000000LL;
      else
        rc = BAD("%s: unknown key \"%s\"", path, key);
    } else if (strcmp(key, "client_weights") == 0 && json_is_object(v)) {
      const char *uid;
      json_t *w;
      json_object_foreach(v, uid, w) {
        char text[64];
        snprintf(text, sizeof text, "%s:%lld", uid,
                 json_is_integer(w) ? (long long)json_integer_value(w) : -1LL);
        if ((rc = emxd_weight_add(o, text, err)) < 0)
          break;
      }
    } else if ((strcmp(key, "allow_uids") == 0 ||
                strcmp(key, "allow_gids") == 0) &&
               json_is_array(v)) {
      bool uids = key[6] == 'u';
      size_t i;
      json_t *d;
      json_array_foreach(v, i, d) {
        size_t *count = uids ? &o->allow_uid_count : &o->allow_gid_count;
        if (!json_is_integer(d) || *count == EMX_D_MAX_ALLOW) {
          rc = BAD("%s: %s must be at most %d integers", path, key,
                   EMX_D_MAX_ALLOW);
          break;
        }
        if (uids)
          o->allow_uids[(*count)++] = (uid_t)json_integer_value(d);
        else
          o->allow_gids[(*count)++] = (gid_t)json_integer_value(d);
      }
    } else {
      rc = BAD("%s: unknown or malformed key \"%s\"", path, key);
    }
    if (rc < 0)
      break;
  }
out:
  json_decref(root);
  return rc;
}

int emxd_weight_add(emxd_options *o, const char *text, emx__errbuf *err) {
  char *end;
  long uid = strtol(text, &end, 10);
  long w = -1;
  if (end != text && *end == ':' && uid >= 0)
    w = strtol(end + 1, &end, 10);
  if (w < 1 || w > EMX_MAX_STREAM_WEIGHT || *end)
    return emx__errf(err, EMX_EINVAL,
                     "client weight \"%s\" must be UID:WEIGHT with WEIGHT "
                     "in 1..%d",
                     text, EMX_MAX_STREAM_WEIGHT);
  if (o->weight_count == EMX_D_MAX_ALLOW)
    return emx__errf(err, EMX_EINVAL, "at most %d client weights",
                     EMX_D_MAX_ALLOW);
  o->weights[o->weight_count].uid = (uid_t)uid;
  o->weights[o->weight_count++].weight = (unsigned)w;
  return 0;
}

int emxd_socket_mode_set(emxd_options *o, const char *text, emx__errbuf *err) {
  char *end;
  long mode = strtol(text, &end, 8);
  /* Owner read/write is the daemon's own; never any execute or special
   * bit; "other" access is allowed (a deliberately open socket). */
  if (!*text || *end || mode < 0 || mode > 0777 || (mode & 0600) != 0600 ||
      (mode & 0111))
    return emx__errf(err, EMX_EINVAL,
                     "socket mode \"%s\" must be octal, like 0660: owner "
                     "read+write, no execute bits",
                     text);
  o->socket_mode = (unsigned)mode;
  return 0;
}

int emxd_socket_group_set(emxd_options *o, const char *text, emx__errbuf *err) {
  char *end;
  long gid = strtol(text, &end, 10);
  if (*text && !*end && gid >= 0) {
    o->socket_group = (gid_t)gid;
  } else {
    struct group *g = getgrnam(text);
    if (!g)
      return emx__errf(err, EMX_EINVAL,
                       "socket group \"%s\" is neither a group name nor a "
                       "gid (see getent group)",
                       text);
    o->socket_group = g->gr_gid;
  }
  o->socket_group_set = true;
  return 0;
}
