/* repo.c — the model repository: DIR/<name>/model.tflite, with an optional
 * DIR/<name>/config.json of per-model settings. A rescan (SIGHUP, on the
 * admin thread) loads new models and unloads removed ones; a config.json
 * with errors or a missing repository keeps what is loaded. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "daemon/daemon.h"

/* join joins a/b into dst; -1 if it does not fit (the entry is skipped
 * rather than loaded from a truncated path). */
static int join(char *dst, size_t cap, const char *a, const char *b) {
  int n = snprintf(dst, cap, "%s/%s", a, b);
  return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* read_batching applies "dynamic_batching": {"max_batch_size": N,
 * "preferred_batch_size": [N, ...], "max_queue_delay_us": N} (the names
 * Triton's model configs use). The engine checks the values at load. */
static int read_batching(const char *path, json_t *obj,
                         emxd_model_settings *set) {
  if (!json_is_object(obj)) {
    emx__log(EMX_LOG_ERROR, "%s: \"dynamic_batching\" must be an object", path);
    return -1;
  }
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    if (strcmp(key, "max_batch_size") == 0 && json_is_integer(v) &&
        json_integer_value(v) >= 0 && json_integer_value(v) <= EMX_MAX_BATCH) {
      set->max_batch = (int)json_integer_value(v);
    } else if (strcmp(key, "preferred_batch_size") == 0 && json_is_array(v) &&
               json_array_size(v) <= EMX_MAX_PREFERRED_BATCH) {
      size_t i;
      json_t *item;
      json_array_foreach(v, i, item) {
        if (!json_is_integer(item) || json_integer_value(item) < 2 ||
            json_integer_value(item) > EMX_MAX_BATCH) {
          emx__log(EMX_LOG_ERROR,
                   "%s: preferred_batch_size holds sizes from 2 to %d", path,
                   EMX_MAX_BATCH);
          return -1;
        }
        set->preferred_batch[i] = (int)json_integer_value(item);
      }
    } else if (strcmp(key, "max_queue_delay_us") == 0 && json_is_integer(v) &&
               json_integer_value(v) >= 0 &&
               json_integer_value(v) <= 10000000) {
      set->batch_delay_ns = json_integer_value(v) * 1000;
    } else {
      emx__log(EMX_LOG_ERROR,
               "%s: dynamic_batching: unknown or malformed key \"%s\" "
               "(known: max_batch_size 0..%d, preferred_batch_size "
               "[up to %d sizes], max_queue_delay_us 0..10000000)",
               path, key, EMX_MAX_BATCH, EMX_MAX_PREFERRED_BATCH);
      return -1;
    }
  }
  return 0;
}

/* read_config applies DIR/<name>/config.json: {"model": "file.tflite",
 * "devices": "edgetpu,cpu", "timeout_ms": N, "dynamic_batching": {...}}.
 * Unknown keys are reported, not ignored. */
static int read_config(const char *dir, emxd_model_settings *set) {
  char path[4200];
  struct stat st;
  if (join(path, sizeof path, dir, "config.json") < 0 || stat(path, &st) < 0)
    return 0;
  json_error_t jerr;
  json_t *root = json_load_file(path, 0, &jerr);
  if (!root || !json_is_object(root)) {
    emx__log(EMX_LOG_ERROR, "%s:%d: %s", path, jerr.line,
             root ? "not a JSON object" : jerr.text);
    json_decref(root);
    return -1;
  }
  int rc = 0;
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    if (strcmp(key, "model") == 0 && json_is_string(v)) {
      snprintf(set->file, sizeof set->file, "%s", json_string_value(v));
      if (strchr(set->file, '/')) {
        emx__log(EMX_LOG_ERROR,
                 "%s: \"model\" must be a file name in the "
                 "model's folder",
                 path);
        rc = -1;
      }
    } else if (strcmp(key, "devices") == 0 && json_is_string(v)) {
      snprintf(set->devices, sizeof set->devices, "%s", json_string_value(v));
    } else if (strcmp(key, "timeout_ms") == 0 && json_is_integer(v) &&
               json_integer_value(v) >= 0) {
      set->timeout_ns = json_integer_value(v) * 1000000;
    } else if (strcmp(key, "dynamic_batching") == 0) {
      if (read_batching(path, v, set) < 0)
        rc = -1;
    } else if (strcmp(key, "detection") == 0) {
      emx__errbuf err = {{0}};
      if (emx__detect_config_parse(&set->detection, v, &err) < 0) {
        emx__log(EMX_LOG_ERROR, "%s: %s (docs/detection.md)", path, err.msg);
        rc = -1;
      }
      set->has_detection = true;
    } else {
      emx__log(EMX_LOG_ERROR,
               "%s: unknown or malformed key \"%s\" (known: "
               "model, devices, timeout_ms, dynamic_batching, detection)",
               path, key);
      rc = -1;
    }
  }
  json_decref(root);
  return rc;
}

/* same_settings: do a and b load the same model the same way (all but
 * the timeout)? */
static bool same_settings(const emxd_model_settings *a,
                          const emxd_model_settings *b) {
  return strcmp(a->file, b->file) == 0 && strcmp(a->devices, b->devices) == 0 &&
         a->max_batch == b->max_batch &&
         memcmp(a->preferred_batch, b->preferred_batch,
                sizeof a->preferred_batch) == 0 &&
         a->batch_delay_ns == b->batch_delay_ns &&
         a->has_detection == b->has_detection &&
         (!a->has_detection ||
          memcmp(&a->detection, &b->detection, sizeof a->detection) == 0);
}

void emxd_repo_scan(emxd_server *srv) {
  const char *dir = srv->opt->models_dir;
  if (!dir[0])
    return;
  for (emxd_model *m = srv->models; m; m = m->next)
    m->seen = !m->from_repo;
  DIR *d = opendir(dir);
  if (!d) {
    /* A repository briefly missing (a remount, a deploy swapping a
     * symlink) must not take every model away: keep what is loaded, as
     * `nginx -s reload` keeps the old config on error. */
    emx__log(EMX_LOG_ERROR,
             "model repository %s: %s; keeping the loaded models (fix it "
             "and send SIGHUP again)",
             dir, strerror(errno));
    return;
  } else {
    struct dirent *de;
    while ((de = readdir(d))) {
      if (de->d_name[0] == '.')
        continue;
      char sub[4200], path[4500];
      emxd_model_settings set = {.file = "model.tflite"};
      struct stat st;
      if (join(sub, sizeof sub, dir, de->d_name) < 0 || stat(sub, &st) < 0 ||
          !S_ISDIR(st.st_mode))
        continue;
      if (read_config(sub, &set) < 0) {
        emxd_model *old = emxd_model_get(srv, de->d_name);
        emxd_model_put(old); /* only this thread changes the table */
        if (old) {
          old->seen = true;
          emx__log(EMX_LOG_ERROR,
                   "model repository: %s/config.json has errors (above); "
                   "keeping the loaded \"%s\" as it was",
                   sub, de->d_name);
        }
        continue;
      }
      if (join(path, sizeof path, sub, set.file) < 0 || stat(path, &st) < 0) {
        emx__log(EMX_LOG_WARN, "model repository: %s has no %s; skipped", sub,
                 set.file);
        continue;
      }
      emxd_model *m = emxd_model_get(srv, de->d_name);
      emxd_model_put(m); /* only this thread changes the table */
      /* A client's model under this name does not stand in for the
       * repository's: repository names win (emxd_model_load moves the
       * client's to its hash name, or adopts it if the bytes are the
       * same). */
      if (m && m->client)
        m = NULL;
      if (m) {
        m->seen = true;
        atomic_store(&m->default_timeout_ns, set.timeout_ns);
        /* Only the timeout applies to a loaded model: say so, rather than
         * let an edit seem to have taken effect. */
        if (m->from_repo && !same_settings(&set, &m->settings))
          emx__log(EMX_LOG_WARN,
                   "model repository: %s/config.json changed; timeout_ms "
                   "applies now, the other settings when the model is "
                   "loaded again (move it out, SIGHUP, move it back, "
                   "SIGHUP; or restart)",
                   sub);
        continue;
      }
      emx__errbuf err = {{0}};
      if (emxd_model_load(srv, de->d_name, path, &set, true, &m, &err) < 0) {
        emx__log(EMX_LOG_ERROR, "model repository: %s", err.msg);
        continue;
      }
      atomic_store(&m->default_timeout_ns, set.timeout_ns);
    }
    closedir(d);
  }
  emxd_model *m = srv->models;
  while (m) {
    emxd_model *next = m->next;
    if (!m->seen)
      emxd_model_unload(srv, m);
    m = next;
  }
}
