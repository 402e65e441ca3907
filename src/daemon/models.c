/* models.c — the daemon's model table: what clients open by name and send
 * requests to by wire id. Lookups hand out references, so a model can
 * leave the table (SIGHUP rescan) while a door still reads it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/sha256.h"

#include "core/log.h"
#include "daemon/daemon.h"

static emxd_model *find_locked(emxd_server *srv, const char *name) {
  for (emxd_model *m = srv->models; m; m = m->next) {
    if (strcmp(m->name, name) == 0)
      return m;
    for (size_t i = 0; i < m->alias_count; i++)
      if (strcmp(m->aliases[i], name) == 0)
        return m;
  }
  return NULL;
}

static emxd_model *find_hash_locked(emxd_server *srv, const char *hex) {
  for (emxd_model *m = srv->models; m; m = m->next)
    if (strcmp(m->sha256, hex) == 0)
      return m;
  return NULL;
}

/* same_engine_settings: would a and b load the bytes into the engine the
 * same way (placement, batching)? Only then are they one model. */
static bool same_engine_settings(const emxd_model_settings *a,
                                 const emxd_model_settings *b) {
  static const emxd_model_settings none;
  if (!a)
    a = &none;
  if (!b)
    b = &none;
  return strcmp(a->devices, b->devices) == 0 && a->max_batch == b->max_batch &&
         memcmp(a->preferred_batch, b->preferred_batch,
                sizeof a->preferred_batch) == 0 &&
         a->batch_delay_ns == b->batch_delay_ns;
}

/* find_twin_locked: a loaded model of these bytes a repository entry with
 * `set` may share. */
static emxd_model *find_twin_locked(emxd_server *srv, const char *hex,
                                    const emxd_model_settings *set) {
  for (emxd_model *m = srv->models; m; m = m->next)
    if (strcmp(m->sha256, hex) == 0 && same_engine_settings(&m->settings, set))
      return m;
  return NULL;
}

/* read_file reads a repository file (the daemon's own, never a client's
 * path) to hash it and hand the bytes to the engine. */
static int read_file(const char *path, void **data, size_t *size,
                     emx__errbuf *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    return emx__errf(err, EMX_ENOENT, "%s: %s", path,
                     fd >= 0 ? "not a regular file" : strerror(e));
  }
  *size = (size_t)st.st_size;
  *data = malloc(*size ? *size : 1);
  size_t done = 0;
  while (*data && done < *size) {
    ssize_t n = read(fd, (char *)*data + done, *size - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    done += (size_t)n;
  }
  close(fd);
  if (!*data || done != *size) {
    free(*data);
    return emx__errf(err, EMX_EIO, "%s: short read", path);
  }
  return 0;
}

/* hash_name_ok: a "model-<hex>" name claims bytes; it must name these. */
static int hash_name_check(const char *name, const char *hex,
                           emx__errbuf *err) {
  if (strncmp(name, "model-", 6) != 0)
    return 0;
  const char *h = name + 6;
  size_t n = strlen(h);
  if (n < 8 || strspn(h, "0123456789abcdef") != n)
    return 0; /* not hash-shaped: an ordinary name */
  if (n > 64 || strncmp(h, hex, n) != 0)
    return emx__errf(err, EMX_EINVAL,
                     "the name \"%s\" claims bytes whose SHA-256 starts %s, "
                     "but these are %.16s...: use another name",
                     name, h, hex);
  return 0;
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
  if (!m || atomic_fetch_sub(&m->refs, 1) != 1)
    return;
  /* Out of the table, and no door holds it: the engine may release it.
   * The engine's unload does not wait (the last running request releases
   * it), so this is safe on any thread. Until here a holder's
   * emxd_model_engine stayed valid. */
  if (m->engine && m->model)
    emx_model_unload(m->engine, m->model);
  emx__detector_destroy(atomic_load(&m->detector));
  free(m);
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
  out->executions = atomic_load(&w->executions);
  out->queue_ns = atomic_load(&w->queue_ns);
  out->compute_ns = atomic_load(&w->compute_ns);
}

/* insert loads bytes into the engine and files them under name. */
static int insert(emxd_server *srv, const char *name, const char *path,
                  const void *data, size_t size, const char *hex,
                  const emxd_model_settings *set, bool from_repo, bool client,
                  uid_t owner, emxd_model **out, emx__errbuf *err) {
  /* 64-aligned: its per-request counters sit on lines of their own. */
  emxd_model *m = aligned_alloc(_Alignof(emxd_model), sizeof *m);
  if (!m)
    return emx__errf(err, EMX_ENOMEM, "out of memory");
  memset(m, 0, sizeof *m);
  if (snprintf(m->name, sizeof m->name, "%s", name) >= (int)sizeof m->name ||
      snprintf(m->path, sizeof m->path, "%s", path) >= (int)sizeof m->path) {
    free(m);
    return emx__errf(err, EMX_EINVAL, "model name or path too long");
  }
  emx_model_config mc;
  emx_model_config_init(&mc);
  mc.data = data;
  mc.size = size;
  if (set) {
    mc.devices = set->devices[0] ? set->devices : NULL;
    mc.max_batch = set->max_batch;
    memcpy(mc.preferred_batch, set->preferred_batch, sizeof mc.preferred_batch);
    mc.batch_delay_ns = set->batch_delay_ns;
  }
  /* A device stuck in a request must not hold the admin thread (and every
   * LOAD, UNLOAD and rescan behind it) forever. */
  mc.prepare_timeout_ns = srv->opt->load_timeout_ns;
  /* The engine's name for a client's model is its hash name: the daemon
   * may rename it (a repository model taking its name), the engine
   * cannot, and the same bytes are never two client models. */
  char engine_name[64];
  snprintf(engine_name, sizeof engine_name, "model-%.16s", hex);
  if (set && set->devices[0]) {
    /* The same bytes pinned elsewhere are another engine model (see
     * emxd_model_client_check): the placement goes in the name too. */
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = set->devices; *p; p++)
      h = (h ^ (uint8_t)*p) * 16777619u;
    snprintf(engine_name, sizeof engine_name, "model-%.16s-%08x", hex, h);
  }
  int rc =
      emx_model_load(srv->engine, client ? engine_name : name, &mc, &m->model);
  if (rc < 0) {
    emx__errf(err, rc, "%s", emx_engine_last_error(srv->engine));
    free(m);
    return rc;
  }
  atomic_init(&m->refs, 1); /* the table's */
  m->engine = srv->engine;
  snprintf(m->sha256, sizeof m->sha256, "%s", hex);
  m->size = size;
  m->from_repo = from_repo;
  m->client = client;
  m->owner = owner;
  atomic_init(&m->last_used_ns, emx_now_ns());
  if (set)
    m->settings = *set;
  m->seen = true;
  /* A repository model that comes back (a rescan that briefly missed it)
   * keeps its id, so clients holding it carry on. */
  uint32_t id = 0;
  for (size_t i = 0; from_repo && i < EMXD_RETIRED; i++)
    if (srv->retired[i].id && strcmp(srv->retired[i].name, name) == 0 &&
        strcmp(srv->retired[i].sha256, hex) == 0) {
      id = srv->retired[i].id;
      srv->retired[i].id = 0;
    }
  pthread_mutex_lock(&srv->models_lock);
  m->id = id ? id : ++srv->next_model_id;
  m->next = srv->models;
  srv->models = m;
  pthread_mutex_unlock(&srv->models_lock);
  emx__log(EMX_LOG_INFO, "model \"%s\" loaded from %s (id %u, sha256 %.16s)",
           name, path, m->id, hex);
  *out = m;
  return 0;
}

int emxd_model_load(emxd_server *srv, const char *name, const char *path,
                    const emxd_model_settings *set, bool from_repo,
                    emxd_model **out, emx__errbuf *err) {
  void *data = NULL;
  size_t size = 0;
  int rc = read_file(path, &data, &size, err);
  if (rc < 0)
    return rc;
  char hex[65];
  emx__sha256_hex(data, size, hex);
  pthread_mutex_lock(&srv->models_lock);
  emxd_model *named = find_locked(srv, name);
  emxd_model *same = find_twin_locked(srv, hex, set);
  if (named && named != same && named->client) {
    /* Repository names win: the client's model keeps its id and bytes
     * under its hash name. */
    emx__log(EMX_LOG_WARN,
             "model repository: \"%s\" was a client's name for other bytes; "
             "that model is now \"model-%.16s\"",
             name, named->sha256);
    if (strcmp(named->name, name) == 0)
      snprintf(named->name, sizeof named->name, "model-%.16s", named->sha256);
    for (size_t i = 0; i < named->alias_count; i++)
      if (strcmp(named->aliases[i], name) == 0)
        snprintf(named->aliases[i], sizeof named->aliases[i], "%s",
                 named->aliases[--named->alias_count]);
    named = NULL;
  }
  if (same && (!named || named == same)) {
    /* The same bytes are one model, whatever the names. */
    if (!named && same->alias_count < EMXD_MAX_ALIASES)
      snprintf(same->aliases[same->alias_count++], sizeof same->aliases[0],
               "%s", name);
    if (from_repo) {
      same->from_repo = true;
      same->client = false;
      if (set)
        same->settings = *set;
    }
    same->seen = true;
    pthread_mutex_unlock(&srv->models_lock);
    free(data);
    *out = same;
    return 0;
  }
  pthread_mutex_unlock(&srv->models_lock);
  if (named) {
    free(data);
    return emx__errf(err, EMX_EEXIST,
                     "a model named \"%s\" is already loaded from \"%s\"", name,
                     named->path);
  }
  rc = insert(srv, name, path, data, size, hex, set, from_repo, false, 0, out,
              err);
  free(data);
  return rc;
}

/* client_settings: a client's placement as model settings (no batching). */
static emxd_model_settings client_settings(const char *devices) {
  emxd_model_settings set;
  memset(&set, 0, sizeof set);
  snprintf(set.devices, sizeof set.devices, "%s", devices ? devices : "");
  return set;
}

int emxd_model_client_check(emxd_server *srv, const char *name, const char *hex,
                            const char *devices, uint64_t size, uid_t uid,
                            emx__errbuf *err) {
  const emxd_options *o = srv->opt;
  int rc = hash_name_check(name, hex, err);
  if (rc < 0)
    return rc;
  emxd_model_settings set = client_settings(devices);
  pthread_mutex_lock(&srv->models_lock);
  emxd_model *named = find_locked(srv, name);
  /* The same bytes placed elsewhere are another engine model: only a twin
   * with this placement is shared. */
  emxd_model *same = devices && devices[0] ? find_twin_locked(srv, hex, &set)
                                           : find_hash_locked(srv, hex);
  uint32_t count = 0;
  uint64_t bytes = 0;
  for (emxd_model *m = srv->models; m; m = m->next)
    if (m->client && m->owner == uid) {
      count++;
      bytes += m->size;
    }
  if (named && named != same)
    rc = emx__errf(err, EMX_EEXIST,
                   "the name \"%s\" is taken by %s model with other bytes "
                   "(sha256 %.16s...): choose another name, or omit it",
                   name, named->client ? "a client's" : "the repository's",
                   named->sha256);
  else if (same)
    rc = 1;
  else if (count + 1 > o->max_client_models)
    rc = emx__errf(err, EMX_EBUSY,
                   "uid %d has loaded %u models, the most one user may "
                   "(--max-client-models %u): UNLOAD one, or raise the limit",
                   (int)uid, count, o->max_client_models);
  else if (bytes + size > o->max_client_model_bytes)
    rc = emx__errf(err, EMX_EBUSY,
                   "uid %d's models would take %llu MiB, more than one user "
                   "may (--max-client-model-mb %llu): UNLOAD one, or raise "
                   "the limit",
                   (int)uid, (unsigned long long)((bytes + size) >> 20),
                   (unsigned long long)(o->max_client_model_bytes >> 20));
  pthread_mutex_unlock(&srv->models_lock);
  return rc;
}

int emxd_model_load_client(emxd_server *srv, const char *name, const void *data,
                           size_t size, const char *hex, const char *devices,
                           uid_t uid, emxd_model **out, emx__errbuf *err) {
  int rc = emxd_model_client_check(srv, name, hex, devices, size, uid, err);
  if (rc < 0)
    return rc;
  emxd_model_settings set = client_settings(devices);
  bool placed = devices && devices[0];
  if (rc == 1) {
    pthread_mutex_lock(&srv->models_lock);
    emxd_model *same =
        placed ? find_twin_locked(srv, hex, &set) : find_hash_locked(srv, hex);
    if (!find_locked(srv, name) && same->alias_count < EMXD_MAX_ALIASES)
      snprintf(same->aliases[same->alias_count++], sizeof same->aliases[0],
               "%s", name);
    atomic_store(&same->last_used_ns, emx_now_ns());
    pthread_mutex_unlock(&srv->models_lock);
    *out = same;
    return 0;
  }
  char from[96];
  snprintf(from, sizeof from, "bytes from uid %d", (int)uid);
  return insert(srv, name, from, data, size, hex, placed ? &set : NULL, false,
                true, uid, out, err);
}

void emxd_model_unload(emxd_server *srv, emxd_model *m) {
  emx__log(EMX_LOG_INFO,
           "model \"%s\" unloaded: no new requests, queued ones cancelled; "
           "released once the running ones finish",
           m->name);
  pthread_mutex_lock(&srv->models_lock);
  for (emxd_model **p = &srv->models; *p; p = &(*p)->next)
    if (*p == m) {
      *p = m->next;
      break;
    }
  pthread_mutex_unlock(&srv->models_lock);
  if (m->from_repo) {
    size_t i = srv->retired_next++ % EMXD_RETIRED;
    snprintf(srv->retired[i].name, sizeof srv->retired[i].name, "%s", m->name);
    snprintf(srv->retired[i].sha256, sizeof srv->retired[i].sha256, "%s",
             m->sha256);
    srv->retired[i].id = m->id;
  }
  /* No new request can find it now. Its queued ones are cancelled (a hung
   * device would keep them forever); the engine releases the model when
   * the last running one completes, on whichever thread that is: nobody
   * here waits, so a busy or hung device never holds the admin thread,
   * and never the I/O thread. */
  if (srv->cancel_model)
    srv->cancel_model(srv, m);
  emxd_model_put(m); /* the table's: the last holder's unloads it */
}

int emxd_model_unload_name(emxd_server *srv, const char *name, uid_t uid,
                           emx__errbuf *err) {
  pthread_mutex_lock(&srv->models_lock);
  emxd_model *m = find_locked(srv, name);
  int rc = 0;
  if (!m)
    rc = emx__errf(err, EMX_ENOENT, "no model named \"%s\"", name);
  else if (!m->client)
    rc = emx__errf(err, EMX_EINVAL,
                   "\"%s\" is a repository model: remove its folder and "
                   "send SIGHUP to unload it",
                   name);
  else if (m->owner != uid && uid != 0)
    rc = emx__errf(err, EMX_EINVAL,
                   "\"%s\" was loaded by uid %d; only that user (or root) "
                   "may unload it",
                   name, (int)m->owner);
  pthread_mutex_unlock(&srv->models_lock);
  if (rc == 0)
    emxd_model_unload(srv, m);
  return rc;
}

int64_t emxd_models_sweep(emxd_server *srv, int64_t now) {
  int64_t idle = srv->opt->model_idle_ns, next = INT64_MAX;
  if (idle <= 0)
    return next;
  emxd_model *m = srv->models;
  while (m) {
    emxd_model *following = m->next;
    int64_t at = emx__deadline_after(atomic_load(&m->last_used_ns), idle);
    if (m->client && at <= now) {
      emx__log(EMX_LOG_INFO, "model \"%s\": unused for %lld s; unloading",
               m->name, (long long)(idle / 1000000000));
      emxd_model_unload(srv, m);
    } else if (m->client && at < next) {
      next = at;
    }
    m = following;
  }
  return next;
}

void emxd_models_free(emxd_server *srv) {
  while (srv->models) {
    emxd_model *m = srv->models;
    srv->models = m->next;
    m->model = NULL; /* engine models died with the engine */
    emxd_model_put(m);
  }
}
