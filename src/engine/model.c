/* model.c — the model registry: load (prepare on one device of each spec;
 * a pool's other workers prepare it when they first run it), find,
 * describe, unload. */
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/abi.h"
#include "core/log.h"
#include "engine/internal.h"

/* Refuse files past this size early: the largest Edge TPU models are tens
 * of MiB, and reading a multi-GiB file by mistake should fail, not swap. */
#define MAX_MODEL_BYTES ((size_t)1 << 30)

/* read_file reads path whole; errors say which file and why. */
static int read_file(emx_engine *e, const char *path, void **data,
                     size_t *size) {
  int fd;
  do
    fd = open(path, O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    int err = errno;
    return emx__fail(e, err == ENOENT ? EMX_ENOENT : EMX_EIO,
                     "cannot open model file \"%s\": %s%s", path, strerror(err),
                     err == ENOENT ? " (run scripts/setup to fetch the test "
                                     "models, or check the path)"
                                   : "");
  }
  struct stat st;
  int rc = 0;
  char *buf = NULL;
  if (fstat(fd, &st) < 0) {
    rc = emx__fail(e, EMX_EIO, "cannot stat \"%s\": %s", path, strerror(errno));
    goto out;
  }
  if (!S_ISREG(st.st_mode)) {
    rc = emx__fail(e, EMX_EIO, "model path \"%s\" is not a regular file", path);
    goto out;
  }
  if ((size_t)st.st_size > MAX_MODEL_BYTES) {
    rc = emx__fail(e, EMX_EMODEL,
                   "model file \"%s\" is %lld bytes; the limit "
                   "is %zu",
                   path, (long long)st.st_size, MAX_MODEL_BYTES);
    goto out;
  }
  /* +1 so an empty file still gets a real allocation. */
  buf = malloc((size_t)st.st_size + 1);
  if (!buf) {
    rc = emx__fail(e, EMX_ENOMEM, "out of memory reading \"%s\"", path);
    goto out;
  }
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      rc = emx__fail(e, EMX_EIO, "cannot read \"%s\": %s", path,
                     n < 0 ? strerror(errno) : "file shrank while reading");
      goto out;
    }
    got += (size_t)n;
  }
  *data = buf;
  *size = got;
  buf = NULL;
out:
  free(buf);
  close(fd);
  return rc;
}

static emx_model *find_locked(emx_engine *e, const char *name) {
  for (emx_model *m = e->models; m; m = m->next)
    if (strcmp(m->name, name) == 0)
      return m;
  return NULL;
}

static void unlink_locked(emx_engine *e, emx_model *m) {
  for (emx_model **p = &e->models; *p; p = &(*p)->next)
    if (*p == m) {
      *p = m->next;
      return;
    }
}

/* The longest emx_model_load waits, by default, for a device's worker to
 * take the model: a worker stuck in a request (a hung device) never
 * does. */
#define DEFAULT_PREPARE_TIMEOUT_NS (30 * 1000000000LL)

/* wait_ctl waits for the worker to run ctl. A PREPARE it has not started
 * by `deadline` is taken back out of the device's mailbox (timed_out):
 * its worker is stuck in a request, and the model is prepared there
 * lazily if it ever comes back. One it has started is waited for (the
 * backend bounds a prepare). */
static void wait_ctl(emx__device *dev, emx__ctl *ctl, int64_t deadline) {
  pthread_mutex_lock(&dev->lock);
  while (!ctl->done) {
    if (ctl->started || deadline == INT64_MAX) {
      pthread_cond_wait(&dev->ctl_cv, &dev->lock);
      continue;
    }
    if (emx_now_ns() >= deadline) {
      emx__ctl *prev = NULL;
      for (emx__ctl *it = dev->ctl_head; it; prev = it, it = it->next)
        if (it == ctl) {
          if (prev)
            prev->next = it->next;
          else
            dev->ctl_head = it->next;
          if (dev->ctl_tail == it)
            dev->ctl_tail = prev;
          break;
        }
      ctl->timed_out = true;
      ctl->status = EMX_ETIMEDOUT;
      break;
    }
    struct timespec ts = emx__abstime(deadline);
    pthread_cond_timedwait(&dev->ctl_cv, &dev->lock, &ts);
  }
  pthread_mutex_unlock(&dev->lock);
}

/* run_on_all posts one control task per device and waits for all of them
 * (a PREPARE until `deadline`, see wait_ctl): prepare and release must run
 * on each device's own worker. */
static void run_on_all(emx_engine *e, emx__ctl *ctls, emx__ctl_kind kind,
                       emx_model *m, const bool *only, int64_t deadline) {
  for (size_t i = 0; i < e->device_count; i++) {
    ctls[i].kind = kind;
    ctls[i].model = m;
    ctls[i].posted = false;
    ctls[i].status = 0;
    if (only && !only[i])
      continue;
    if (emx__device_post_ctl(&e->devices[i], &ctls[i]) < 0)
      ctls[i].status = EMX_ESHUTDOWN;
    else
      ctls[i].posted = true; /* from here the worker owns `status` */
  }
  for (size_t i = 0; i < e->device_count; i++)
    if (ctls[i].posted)
      wait_ctl(&e->devices[i], &ctls[i], deadline);
}

/* release_everywhere drops the model's interpreters. After shutdown the
 * workers are gone, and this thread is the only one left to do it. */
static void release_everywhere(emx_engine *e, emx_model *m) {
  if (e->shutdown_done) {
    for (size_t i = 0; i < e->device_count; i++)
      if (m->prep[i])
        e->devices[i].ops->release(e->devices[i].impl, m->prep[i]);
    return;
  }
  emx__ctl *ctls = calloc(e->device_count, sizeof *ctls);
  bool *only = calloc(e->device_count, sizeof *only);
  if (ctls && only) {
    /* m->prep belongs to the workers: ask every device the model may have
     * been prepared on, and let each check its own. */
    for (size_t i = 0; i < e->device_count; i++)
      only[i] = m->tier[i] >= 0;
    run_on_all(e, ctls, EMX__CTL_RELEASE, m, only, INT64_MAX);
  }
  free(ctls);
  free(only);
}

static int check_name(emx_engine *e, const char *name) {
  size_t len = name ? strlen(name) : 0;
  if (len == 0 || len >= EMX__MODEL_NAME_MAX)
    return emx__fail(e, EMX_EINVAL, "model name must be 1 to %d bytes long",
                     EMX__MODEL_NAME_MAX - 1);
  for (const char *p = name; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == '/')
      return emx__fail(e, EMX_EINVAL,
                       "model name \"%s\" contains '/' or a control "
                       "character",
                       name);
  return 0;
}

/* check_batching validates the dynamic batching settings. */
static int check_batching(emx_engine *e, const char *name,
                          const emx_model_config *cfg) {
  if (cfg->max_batch < 0 || cfg->max_batch > EMX_MAX_BATCH)
    return emx__fail(e, EMX_EINVAL,
                     "model \"%s\": max_batch %d is out of range [0, %d]", name,
                     cfg->max_batch, EMX_MAX_BATCH);
  int prev = 1;
  for (int i = 0; i < EMX_MAX_PREFERRED_BATCH && cfg->preferred_batch[i]; i++) {
    int b = cfg->preferred_batch[i];
    if (b <= prev || b > cfg->max_batch)
      return emx__fail(e, EMX_EINVAL,
                       "model \"%s\": preferred batch sizes must be "
                       "ascending, above 1 and at most max_batch (%d); got %d",
                       name, cfg->max_batch, b);
    prev = b;
  }
  if (cfg->batch_delay_ns < 0 || cfg->batch_delay_ns > 10 * 1000000000LL)
    return emx__fail(e, EMX_EINVAL,
                     "model \"%s\": batch_delay_ns must be in [0, 10 s]", name);
  return 0;
}

/* load takes ownership of data. `origin` names it in messages. */
static int load(emx_engine *e, const char *name, void *data, size_t size,
                const char *origin, const emx_model_config *cfg,
                emx_model **out) {
  const char *placement = cfg->devices;
  int rc;
  emx_model *m = calloc(1, sizeof *m);
  emx__ctl *ctls = calloc(e->device_count, sizeof *ctls);
  bool *placed = calloc(e->device_count, sizeof *placed);
  if (m) {
    m->prep = calloc(e->device_count, sizeof *m->prep);
    m->service_ewma_ns = calloc(e->device_count, sizeof *m->service_ewma_ns);
    m->tier = calloc(e->device_count, sizeof *m->tier);
    m->batch_ok = calloc(e->device_count, sizeof *m->batch_ok);
    m->last_run_ns = calloc(e->device_count, sizeof *m->last_run_ns);
    m->mem_bytes = calloc(e->device_count, sizeof *m->mem_bytes);
  }
  if (!m || !ctls || !placed || !m->prep || !m->service_ewma_ns || !m->tier ||
      !m->batch_ok || !m->last_run_ns || !m->mem_bytes) {
    if (m) {
      free(m->last_run_ns);
      free(m->mem_bytes);
      free(m->prep);
      free(m->service_ewma_ns);
      free(m->tier);
      free(m->batch_ok);
    }
    free(m);
    free(ctls);
    free(placed);
    free(data);
    return emx__fail(e, EMX_ENOMEM, "out of memory loading model \"%s\"", name);
  }
  m->engine = e;
  atomic_init(&m->last_device, 0);
  strcpy(m->name, name); /* length checked by check_name */
  m->data = data;
  m->size = size;
  m->max_batch = cfg->max_batch > 1 ? cfg->max_batch : 1;
  memcpy(m->preferred_batch, cfg->preferred_batch, sizeof m->preferred_batch);
  m->batch_delay_ns = cfg->batch_delay_ns;
  pthread_mutex_init(&m->lock, NULL);
  pthread_cond_init(&m->idle_cv, NULL);
  emx__errbuf perr = {{0}};
  if (emx__placement_parse(e, placement, m->tier, &perr) < 0) {
    free(ctls);
    free(placed);
    emx__model_free(m);
    return emx__fail_buf(e, EMX_EINVAL, &perr);
  }
  snprintf(m->placement, sizeof m->placement, "%s", placement ? placement : "");
  for (size_t i = 0; i < e->device_count; i++) {
    placed[i] = m->tier[i] >= 0;
    if (m->tier[i] > m->max_tier)
      m->max_tier = m->tier[i];
  }

  pthread_mutex_lock(&e->admin_lock);
  if (atomic_load(&e->shut)) {
    rc = emx__fail(e, EMX_ESHUTDOWN, "the engine is shut down");
    goto fail_admin;
  }
  pthread_mutex_lock(&e->lock);
  bool taken = find_locked(e, name) != NULL;
  pthread_mutex_unlock(&e->lock);
  if (taken) {
    rc = emx__fail(e, EMX_EEXIST,
                   "a model named \"%s\" is already loaded: unload it first "
                   "or pick another name",
                   name);
    goto fail_admin;
  }

  /* The CPU workers opened from one spec (a pool) are alike: the model is
   * prepared now on one of them, to check it and learn its tensors, and on
   * the others when a request first needs it there (worker.c), so a model
   * costs one interpreter until the load needs more. Accelerators prepare
   * at load, where a refusal belongs to the load and a first request
   * should not pay for the transfer. */
  bool *now = calloc(e->device_count, sizeof *now);
  if (!now) {
    rc = emx__fail(e, EMX_ENOMEM, "out of memory loading model \"%s\"", name);
    goto fail_admin;
  }
  for (size_t i = 0; i < e->device_count; i++) {
    now[i] = placed[i];
    for (size_t j = 0; j < i && now[i]; j++)
      if (now[j] && strcmp(e->devices[i].kind, "cpu") == 0 &&
          e->devices[j].ops == e->devices[i].ops &&
          strcmp(e->devices[j].spec, e->devices[i].spec) == 0 &&
          atomic_load(&e->devices[j].healthy))
        now[i] = false;
  }
  int64_t timeout = cfg->prepare_timeout_ns > 0 ? cfg->prepare_timeout_ns
                                                : DEFAULT_PREPARE_TIMEOUT_NS;
  run_on_all(e, ctls, EMX__CTL_PREPARE, m, now,
             emx__deadline_after(emx_now_ns(), timeout));
  rc = 0;
  long first = -1; /* the device whose view of the tensors is the model's */
  long stuck = -1; /* a device whose worker never took the model */
  for (size_t i = 0; i < e->device_count && rc == 0; i++) {
    if (now[i] && ctls[i].timed_out) {
      emx__log(EMX_LOG_WARN,
               "model \"%s\": device %s did not take it within %lld ms (its "
               "worker is stuck in a request: a hung device?); prepared "
               "there if it comes back",
               name, e->devices[i].name, (long long)(timeout / 1000000));
      stuck = (long)i;
      continue;
    }
    if (!now[i] || ctls[i].deferred)
      continue;
    if (ctls[i].status < 0) {
      rc = emx__fail(e, ctls[i].status,
                     "cannot load model \"%s\" from %s on "
                     "device %s: %s",
                     name, origin, e->devices[i].name,
                     ctls[i].status == EMX_ESHUTDOWN ? "engine shut down"
                                                     : ctls[i].err.msg);
    } else if (first < 0) {
      first = (long)i;
    } else if (!emx__model_desc_equal(&ctls[first].desc, &ctls[i].desc)) {
      rc = emx__fail(e, EMX_EDEVICE,
                     "model \"%s\": device %s sees different "
                     "tensors than %s",
                     name, e->devices[i].name, e->devices[first].name);
    }
  }
  if (rc == 0 && first < 0 && stuck >= 0)
    rc =
        emx__fail(e, EMX_ETIMEDOUT,
                  "cannot load model \"%s\": device %s did not take it "
                  "within %lld ms (its worker is stuck in a request: a hung "
                  "device?), and no other device it may use did",
                  name, e->devices[stuck].name, (long long)(timeout / 1000000));
  if (rc == 0 && first < 0)
    rc = emx__fail(e, EMX_EDEVICE,
                   "cannot load model \"%s\": every device it may use is down "
                   "(being re-probed); try again shortly",
                   name);
  free(now);
  if (rc < 0) {
    pthread_mutex_unlock(&e->admin_lock);
    for (size_t i = 0; i < e->device_count; i++)
      emx__model_desc_free(&ctls[i].desc);
    free(ctls);
    free(placed);
    /* Released like an unloaded model: without waiting, since a device
     * that did not take the PREPARE would not take the RELEASE either. */
    m->unloaded = m->releasing = true;
    pthread_mutex_lock(&e->lock);
    m->next = e->retiring;
    e->retiring = m;
    pthread_mutex_unlock(&e->lock);
    emx__model_retire(m);
    return rc;
  }
  m->desc = ctls[first].desc;
  ctls[first].desc = (emx__model_desc){0};
  atomic_store(&m->last_device, (int)first); /* it is warm there */

  pthread_mutex_lock(&e->lock);
  m->next = e->models;
  e->models = m;
  pthread_mutex_unlock(&e->lock);
  pthread_mutex_unlock(&e->admin_lock);
  for (size_t i = 0; i < e->device_count; i++)
    emx__model_desc_free(&ctls[i].desc);
  free(ctls);
  free(placed);
  if (out)
    *out = m;
  return 0;

fail_admin:
  pthread_mutex_unlock(&e->admin_lock);
  for (size_t i = 0; i < e->device_count; i++)
    emx__model_desc_free(&ctls[i].desc);
  free(ctls);
  free(placed);
  emx__model_free(m);
  return rc;
}

EMX_EXPORT void(emx_model_config_init)(emx_model_config *cfg) {
  emx_model_config own;
  memset(&own, 0, sizeof own);
  emx__abi_init(cfg, &own, sizeof own);
}

EMX_EXPORT int emx_model_load(emx_engine *e, const char *name,
                              const emx_model_config *user_cfg,
                              emx_model **out) {
  if (out)
    *out = NULL;
  if (!e || !user_cfg)
    return emx__fail(e, EMX_EINVAL, "engine and config must not be NULL");
  emx_model_config own, *cfg = &own;
  emx__errbuf err;
  memset(&own, 0, sizeof own);
  int arc = emx__abi_in(&own, sizeof own, user_cfg, "emx_model_config", &err);
  if (arc < 0)
    return emx__fail_buf(e, arc, &err);
  if (!cfg->path == !cfg->data || (!cfg->data && cfg->size))
    return emx__fail(e, EMX_EINVAL,
                     "model config needs exactly one of path and data");
  if (atomic_load(&e->shut))
    return emx__fail(e, EMX_ESHUTDOWN, "the engine is shut down");
  int rc = check_name(e, name);
  if (rc == 0)
    rc = check_batching(e, name, cfg);
  if (rc < 0)
    return rc;
  void *data = NULL;
  size_t size = 0;
  char origin[300];
  if (cfg->path) {
    rc = read_file(e, cfg->path, &data, &size);
    if (rc < 0)
      return rc;
    snprintf(origin, sizeof origin, "\"%s\"", cfg->path);
  } else {
    size = cfg->size;
    data = malloc(size + 1);
    if (!data)
      return emx__fail(e, EMX_ENOMEM, "out of memory copying model \"%s\"",
                       name);
    memcpy(data, cfg->data, size);
    snprintf(origin, sizeof origin, "a memory buffer");
  }
  return load(e, name, data, size, origin, cfg, out);
}

EMX_EXPORT int emx_model_load_file(emx_engine *e, const char *name,
                                   const char *path, emx_model **out) {
  emx_model_config cfg;
  emx_model_config_init(&cfg);
  cfg.path = path;
  if (!path) {
    if (out)
      *out = NULL;
    return emx__fail(e, EMX_EINVAL, "engine and path must not be NULL");
  }
  return emx_model_load(e, name, &cfg, out);
}

EMX_EXPORT int emx_model_load_buffer(emx_engine *e, const char *name,
                                     const void *data, size_t size,
                                     emx_model **out) {
  emx_model_config cfg;
  emx_model_config_init(&cfg);
  cfg.data = data;
  cfg.size = size;
  if (!data) {
    if (out)
      *out = NULL;
    return emx__fail(e, EMX_EINVAL, "engine and data must not be NULL");
  }
  return emx_model_load(e, name, &cfg, out);
}

EMX_EXPORT int emx_model_healthy(const emx_model *m) {
  if (!m)
    return 0;
  for (size_t i = 0; i < m->engine->device_count; i++)
    if (m->tier[i] >= 0 && atomic_load(&m->engine->devices[i].healthy))
      return 1;
  return 0;
}

EMX_EXPORT int emx_model_find(emx_engine *e, const char *name,
                              emx_model **out) {
  if (!e || !name || !out)
    return emx__fail(e, EMX_EINVAL, "engine, name and out must not be NULL");
  *out = NULL;
  if (atomic_load(&e->shut))
    return emx__fail(e, EMX_ESHUTDOWN, "the engine is shut down");
  pthread_mutex_lock(&e->lock);
  emx_model *m = find_locked(e, name);
  if (m) {
    *out = m;
    pthread_mutex_unlock(&e->lock);
    return 0;
  }
  /* List what is loaded: the usual cause is a typo or a model that failed
   * to load earlier. */
  char names[256] = "";
  size_t used = 0;
  for (emx_model *it = e->models; it && used < sizeof names - 1; it = it->next)
    used += (size_t)snprintf(names + used, sizeof names - used, "%s\"%s\"",
                             used ? ", " : "", it->name);
  pthread_mutex_unlock(&e->lock);
  return emx__fail(e, EMX_ENOENT,
                   "no model named \"%s\" is loaded (loaded: %s)", name,
                   used ? names : "none");
}

EMX_EXPORT int emx_model_unload(emx_engine *e, emx_model *m) {
  if (!e || !m)
    return emx__fail(e, EMX_EINVAL, "engine and model must not be NULL");
  /* Not under admin_lock: a load may hold that while it waits for a busy
   * device, and an unload must never wait. A shutdown racing this leaves
   * the model on e->retiring for emx_engine_destroy. */
  if (atomic_load(&e->shut))
    return emx__fail(e, EMX_ESHUTDOWN, "the engine is shut down");
  pthread_mutex_lock(&e->lock);
  bool found = false;
  for (emx_model *it = e->models; it; it = it->next)
    found |= it == m;
  if (found) {
    unlink_locked(e, m);
    m->next = e->retiring;
    e->retiring = m;
  }
  pthread_mutex_unlock(&e->lock);
  if (!found)
    return emx__fail(e, EMX_ENOENT, "that model is not loaded in this engine");
  /* Requests already accepted still run; nobody waits for them: the last
   * one to be delivered retires the model (finish.c), or we do now. A
   * busy or hung device never holds the caller up. */
  pthread_mutex_lock(&m->lock);
  m->unloaded = true;
  bool retire = m->inflight == 0 && !m->releasing;
  if (retire)
    m->releasing = true;
  pthread_mutex_unlock(&m->lock);
  if (retire)
    emx__model_retire(m);
  return 0;
}

/* free_list releases and frees models once the workers are gone. */
static void free_list(emx_engine *e, emx_model *m) {
  while (m) {
    emx_model *next = m->next;
    release_everywhere(e, m);
    emx__model_free(m);
    m = next;
  }
}

void emx__model_free_all(emx_engine *e) {
  emx_model *m = e->models;
  e->models = NULL;
  free_list(e, m);
  /* Unloaded models still waiting for a RELEASE a stopping device
   * refused, or for requests that never finished. */
  m = e->retiring;
  e->retiring = NULL;
  free_list(e, m);
}

EMX_EXPORT const char *emx_model_name(const emx_model *m) {
  return m ? m->name : "";
}

EMX_EXPORT size_t emx_model_input_count(const emx_model *m) {
  return m ? m->desc.input_count : 0;
}

EMX_EXPORT size_t emx_model_output_count(const emx_model *m) {
  return m ? m->desc.output_count : 0;
}

EMX_EXPORT int(emx_model_input_info)(const emx_model *m, size_t index,
                                     emx_tensor_info *out) {
  if (!m || !out || index >= m->desc.input_count)
    return EMX_EINVAL;
  return emx__abi_out(out, &m->desc.inputs[index], sizeof *out,
                      "emx_tensor_info", NULL);
}

EMX_EXPORT int(emx_model_output_info)(const emx_model *m, size_t index,
                                      emx_tensor_info *out) {
  if (!m || !out || index >= m->desc.output_count)
    return EMX_EINVAL;
  return emx__abi_out(out, &m->desc.outputs[index], sizeof *out,
                      "emx_tensor_info", NULL);
}

EMX_EXPORT int(emx_model_stats)(const emx_model *m, emx_stats *out) {
  if (!m || !out)
    return EMX_EINVAL;
  emx_model *mm = (emx_model *)m; /* the lock is not part of its value */
  emx_stats st;
  pthread_mutex_lock(&mm->lock);
  emx__counters_snapshot(&mm->stats, atomic_load(&mm->queued), &st);
  pthread_mutex_unlock(&mm->lock);
  for (size_t i = 0; i < m->engine->device_count; i++) {
    long long b = atomic_load_explicit(&m->mem_bytes[i], memory_order_relaxed);
    if (b > 0) {
      st.memory_bytes += (uint64_t)b;
      st.prepared_on++;
    }
  }
  return emx__abi_out(out, &st, sizeof st, "emx_stats", NULL);
}
