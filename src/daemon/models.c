/* models.c — the daemon's model table: what clients open by name and send
 * requests to by wire id. Lookups hand out references, so a model can
 * leave the table (SIGHUP rescan) while a door still reads it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "daemon/daemon.h"

static emxd_model *find_locked(emxd_server *srv, const char *name) {
  for (emxd_model *m = srv->models; m; m = m->next)
    if (strcmp(m->name, name) == 0)
      return m;
  return NULL;
}

emxd_model *emxd_model_get(emxd_server *srv, const char *name) {
  pthread_mutex_lock(&srv->models_lock);
  emxd_model *m = find_locked(srv, name);
  if (m)
    emxd_model_ref(m);
  pthread_mutex_unlock(&srv->models_lock);
  return m;
}

emxd_model *emxd_model_get_id(emxd_server *srv, uint32_t id) {
  pthread_mutex_lock(&srv->models_lock);
  emxd_model *m = srv->models;
  while (m && m->id != id)
    m = m->next;
  if (m)
    emxd_model_ref(m);
  pthread_mutex_unlock(&srv->models_lock);
  return m;
}

void emxd_model_ref(emxd_model *m) {
  atomic_fetch_add(&m->refs, 1);
}

void emxd_model_put(emxd_model *m) {
  if (m && atomic_fetch_sub(&m->refs, 1) == 1)
    free(m); /* out of the table, its engine model already unloaded */
}

uint32_t emxd_model_id(const emxd_model *m) {
  return m->id;
}

const char *emxd_model_name(const emxd_model *m) {
  return m->name;
}

emx_model *emxd_model_engine(const emxd_model *m) {
  return m->model;
}

int64_t emxd_model_default_timeout(emxd_model *m) {
  return atomic_load(&m->default_timeout_ns);
}

void emxd_model_names(emxd_server *srv, void (*fn)(void *, const char *),
                      void *arg) {
  pthread_mutex_lock(&srv->models_lock);
  for (emxd_model *m = srv->models; m; m = m->next)
    fn(arg, m->name);
  pthread_mutex_unlock(&srv->models_lock);
}

void emxd_model_counters_get(const emxd_model *m, emxd_model_counters *out) {
  emxd_model *w = (emxd_model *)m; /* atomics: loads only */
  out->submitted = atomic_load(&w->submitted);
  out->rejected = atomic_load(&w->rejected);
  out->completed = atomic_load(&w->completed);
  out->failed = atomic_load(&w->failed);
}

int emxd_model_load(emxd_server *srv, const char *name, const char *path,
                    const emxd_model_settings *set, bool from_repo,
                    emxd_model **out, emx__errbuf *err) {
  emxd_model *have = emxd_model_get(srv, name);
  if (have) {
    /* The same file (e.g. every worker of a pool loading it, or a path
     * to the repository's own symlink target) is the same model. */
    struct stat a, b;
    bool same = strcmp(have->path, path) == 0 ||
                (stat(have->path, &a) == 0 && stat(path, &b) == 0 &&
                 a.st_dev == b.st_dev && a.st_ino == b.st_ino);
    int rc = same ? 0
                  : emx__errf(err, EMX_EEXIST,
                              "a model named \"%s\" is already loaded from "
                              "\"%s\"",
                              name, have->path);
    *out = same ? have : NULL;
    emxd_model_put(have); /* the table still holds it */
    return rc;
  }
  emxd_model *m = calloc(1, sizeof *m);
  if (!m)
    return emx__errf(err, EMX_ENOMEM, "out of memory");
  if (snprintf(m->name, sizeof m->name, "%s", name) >= (int)sizeof m->name ||
      snprintf(m->path, sizeof m->path, "%s", path) >= (int)sizeof m->path) {
    free(m);
    return emx__errf(err, EMX_EINVAL, "model name or path too long");
  }
  emx_model_config mc;
  emx_model_config_init(&mc);
  mc.path = path;
  if (set) {
    mc.devices = set->devices[0] ? set->devices : NULL;
    mc.max_batch = set->max_batch;
    memcpy(mc.preferred_batch, set->preferred_batch, sizeof mc.preferred_batch);
    mc.batch_delay_ns = set->batch_delay_ns;
  }
  int rc = emx_model_load(srv->engine, name, &mc, &m->model);
  if (rc < 0) {
    emx__errf(err, rc, "%s", emx_engine_last_error(srv->engine));
    free(m);
    return rc;
  }
  atomic_init(&m->refs, 1); /* the table's */
  m->from_repo = from_repo;
  if (set)
    m->settings = *set;
  m->seen = true;
  pthread_mutex_lock(&srv->models_lock);
  m->id = ++srv->next_model_id;
  m->next = srv->models;
  srv->models = m;
  pthread_mutex_unlock(&srv->models_lock);
  emx__log(EMX_LOG_INFO, "model \"%s\" loaded from %s (id %u)", name, path,
           m->id);
  *out = m;
  return 0;
}

void emxd_model_unload(emxd_server *srv, emxd_model *m) {
  pthread_mutex_lock(&srv->models_lock);
  for (emxd_model **p = &srv->models; *p; p = &(*p)->next)
    if (*p == m) {
      *p = m->next;
      break;
    }
  pthread_mutex_unlock(&srv->models_lock);
  /* No new request can find it now; the engine waits for those it has. */
  emx_model_unload(srv->engine, m->model);
  emx__log(EMX_LOG_INFO, "model \"%s\" unloaded", m->name);
  emxd_model_put(m);
}

void emxd_models_free(emxd_server *srv) {
  while (srv->models) {
    emxd_model *m = srv->models;
    srv->models = m->next;
    emxd_model_put(m); /* engine models die with the engine */
  }
}
