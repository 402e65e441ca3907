/* engine.c — engine life cycle: devices from specs, workers, shutdown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/isolate.h"
#include "core/abi.h"
#include "core/devspec.h"
#include "core/log.h"
#include "engine/internal.h"

static void config_defaults(emx_engine_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->struct_size = sizeof *cfg;
  cfg->queue_capacity = EMX__DEFAULT_QUEUE_CAPACITY;
  cfg->log_level = EMX_LOG_WARN;
}

EMX_EXPORT void(emx_engine_config_init)(emx_engine_config *cfg) {
  emx_engine_config own;
  config_defaults(&own);
  emx__abi_init(cfg, &own, sizeof own);
}

EMX_EXPORT const char *emx_engine_last_error(const emx_engine *e) {
  return emx__last_error(e);
}

/* A device to open, resolved from its spec once: create opens it and its
 * worker's recovery re-opens it from this, so nothing is parsed or
 * counted twice (a TPU plugged in between two counts must not change how
 * many devices there are). */
typedef struct resolved {
  emx__devspec spec;           /* isolation and scheduling keys consumed */
  const emx__backend_ops *ops; /* the backend, or the isolating proxy */
  int unit;                    /* which unit of the spec */
  int policy;                  /* EMX__SCHED_* */
  int64_t max_delay_ns;        /* sched=affinity's bound */
  int64_t idle_release_ns;     /* idle_release_ms= (worker.c) */
} resolved;

/* resolve_one parses one spec, picks its backend and counts its units. */
static int resolve_one(const char *text, resolved *r, int *units,
                       emx__errbuf *err) {
  emx__devspec *spec = &r->spec;
  int rc = emx__devspec_parse(spec, text, err);
  if (rc < 0)
    return rc;
  const emx__backend_ops *own = emx__backend_find(spec->kind);
  if (!own)
    return emx__errf(err, EMX_EINVAL,
                     "device spec \"%s\": unknown device kind \"%s\" "
                     "(known: %s)",
                     spec->text, spec->kind, emx__backend_kinds());
  /* Isolation (isolate=, deadline_ms=): maybe the proxy instead. */
  r->ops = own;
  rc = emx__isolate_select(spec, &r->ops, err);
  const char *clock = emx__devspec_str(spec, "clock");
  if (rc == 0 && r->ops != own && clock && strcmp(clock, "virtual") == 0)
    return emx__errf(err, EMX_EINVAL,
                     "device spec \"%s\": a virtual clock runs in-process "
                     "only; drop isolate=1 or clock=virtual",
                     spec->text);
  if (rc == 0) /* scheduling (sched=, max_delay_ms=) */
    rc = emx__sched_parse(spec, &r->policy, &r->max_delay_ns,
                          &r->idle_release_ns, err);
  if (rc == 0)
    rc = r->ops->units(spec, units, err);
  return rc;
}

/* resolve_all resolves every spec into one entry per unit (*out, malloc'd),
 * so that a bad spec is reported before any device is opened. */
static int resolve_all(const char *const *specs, size_t n, resolved **out,
                       size_t *total, emx__errbuf *err) {
  resolved *all = NULL, one;
  size_t count = 0;
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    int units = 0;
    rc = resolve_one(specs[i], &one, &units, err);
    if (rc < 0)
      break;
    resolved *grown =
        units > 0 ? realloc(all, (count + (size_t)units) * sizeof *all) : all;
    if (!grown) {
      rc = emx__errf(err, EMX_ENOMEM, "out of memory resolving devices");
      break;
    }
    all = grown;
    for (int u = 0; u < units; u++) {
      all[count] = one;
      all[count++].unit = u;
    }
  }
  if (rc == 0 && count == 0)
    rc = emx__errf(err, EMX_EINVAL, "no devices configured");
  if (rc < 0) {
    free(all);
    return rc;
  }
  *out = all;
  *total = count;
  return 0;
}

static void device_init(emx__device *dev, emx_engine *e, size_t index,
                        size_t capacity) {
  dev->engine = e;
  dev->index = index;
  atomic_init(&dev->cpu, -1);
  dev->capacity = capacity;
  pthread_mutex_init(&dev->lock, NULL);
  /* Monotonic: the worker's timed waits (re-probe, batch delay) are on
   * CLOCK_MONOTONIC. */
  emx__cond_init_monotonic(&dev->work_cv);
  emx__cond_init_monotonic(&dev->space_cv);
  emx__cond_init_monotonic(&dev->ctl_cv); /* loaders' prepare timeout */
  emx__queue_init(&dev->queue);
}

static void device_fini(emx__device *dev) {
  if (dev->impl)
    dev->ops->close(dev->impl);
  pthread_mutex_destroy(&dev->lock);
  pthread_cond_destroy(&dev->work_cv);
  pthread_cond_destroy(&dev->space_cv);
  pthread_cond_destroy(&dev->ctl_cv);
}

/* open_devices opens each resolved device and starts its worker. Device
 * names are kind + a per-kind counter: cpu0, cpu1, sim0... */
static int open_devices(emx_engine *e, const resolved *table,
                        emx__errbuf *err) {
  for (size_t index = 0; index < e->device_count; index++) {
    const resolved *r = &table[index];
    emx__device *dev = &e->devices[index];
    dev->policy = r->policy;
    dev->max_delay_ns = r->max_delay_ns;
    dev->idle_release_ns = r->idle_release_ns;
    dev->ops = r->ops;
    dev->resolved = r->spec;
    dev->unit = r->unit;
    size_t same_kind = 0;
    for (size_t k = 0; k < index; k++)
      same_kind += strcmp(e->devices[k].kind, r->spec.kind) == 0;
    snprintf(dev->kind, sizeof dev->kind, "%s", r->spec.kind);
    snprintf(dev->spec, sizeof dev->spec, "%s", r->spec.text);
    snprintf(dev->name, sizeof dev->name, "%s%zu", r->spec.kind, same_kind);
    int rc = r->ops->open(&dev->resolved, r->unit, &dev->impl, err);
    if (rc < 0)
      return rc;
    dev->virtual_clock =
        r->ops->virtual_clock && r->ops->virtual_clock(dev->impl);
    dev->healthy = 1;
    if (pthread_create(&dev->thread, NULL, emx__worker_main, dev) != 0)
      return emx__errf(err, EMX_ENOMEM, "cannot start the worker of %s",
                       dev->name);
    dev->started = true;
  }
  return 0;
}

static void stop_workers(emx_engine *e) {
  for (size_t i = 0; i < e->device_count; i++) {
    emx__device *dev = &e->devices[i];
    pthread_mutex_lock(&dev->lock);
    dev->stopping = true;
    dev->healthy = 0;
    pthread_cond_broadcast(&dev->work_cv);
    pthread_cond_broadcast(&dev->space_cv);
    pthread_mutex_unlock(&dev->lock);
  }
  for (size_t i = 0; i < e->device_count; i++) {
    emx__device *dev = &e->devices[i];
    if (dev->started)
      pthread_join(dev->thread, NULL);
    dev->started = false;
  }
}

EMX_EXPORT int emx_engine_create(emx_engine **out,
                                 const emx_engine_config *user_cfg) {
  static const char *const default_devices[] = {"cpu"};
  emx__errbuf err = {{0}};
  if (!out)
    return emx__fail(NULL, EMX_EINVAL, "out must not be NULL");
  *out = NULL;
  emx_engine_config own, *cfg = &own;
  config_defaults(&own);
  if (user_cfg) {
    int arc =
        emx__abi_in(&own, sizeof own, user_cfg, "emx_engine_config", &err);
    if (arc < 0)
      return emx__fail_buf(NULL, arc, &err);
  }
  const char *const *specs = cfg->devices;
  size_t nspecs = cfg->device_count;
  if (!specs || nspecs == 0) {
    specs = default_devices;
    nspecs = 1;
  }
  emx__log_set_level(cfg->log_level);
  size_t capacity =
      cfg->queue_capacity ? cfg->queue_capacity : EMX__DEFAULT_QUEUE_CAPACITY;

  size_t ndev;
  resolved *table;
  int rc = resolve_all(specs, nspecs, &table, &ndev, &err);
  if (rc < 0)
    return emx__fail_buf(NULL, rc, &err);

  emx_engine *e = calloc(1, sizeof *e);
  emx__device *devs = calloc(ndev, sizeof *devs);
  if (!e || !devs) {
    free(e);
    free(devs);
    free(table);
    return emx__fail(NULL, EMX_ENOMEM, "out of memory creating the engine");
  }
  pthread_mutex_init(&e->admin_lock, NULL);
  pthread_mutex_init(&e->lock, NULL);
  e->devices = devs;
  e->device_count = ndev;
  for (size_t i = 0; i < ndev; i++)
    device_init(&devs[i], e, i, capacity);

  rc = open_devices(e, table, &err);
  free(table);
  if (rc < 0) {
    stop_workers(e);
    for (size_t i = 0; i < ndev; i++)
      device_fini(&devs[i]);
    pthread_mutex_destroy(&e->lock);
    pthread_mutex_destroy(&e->admin_lock);
    free(devs);
    free(e);
    return emx__fail_buf(NULL, rc, &err);
  }
  emx__log(EMX_LOG_INFO, "engine started with %zu device(s)", ndev);
  *out = e;
  return 0;
}

EMX_EXPORT void emx_engine_shutdown(emx_engine *e) {
  if (!e)
    return;
  pthread_mutex_lock(&e->admin_lock);
  atomic_store(&e->shut, true);
  if (!e->shutdown_done) {
    /* Workers drain their queues with EMX_ESHUTDOWN before they exit. */
    stop_workers(e);
    e->shutdown_done = true;
  }
  pthread_mutex_unlock(&e->admin_lock);
}

EMX_EXPORT void emx_engine_destroy(emx_engine *e) {
  if (!e)
    return;
  emx_engine_shutdown(e);
  emx__model_free_all(e);
  for (size_t i = 0; i < e->device_count; i++)
    device_fini(&e->devices[i]);
  pthread_mutex_destroy(&e->lock);
  pthread_mutex_destroy(&e->admin_lock);
  free(e->devices);
  free(e);
}

EMX_EXPORT size_t emx_engine_device_count(const emx_engine *e) {
  return e ? e->device_count : 0;
}

static int check_index(emx_engine *e, size_t index, void *out) {
  if (!e || !out)
    return emx__fail(e, EMX_EINVAL, "engine and out must not be NULL");
  if (index >= e->device_count)
    return emx__fail(e, EMX_EINVAL,
                     "device index %zu is out of range (the engine has %zu)",
                     index, e->device_count);
  return 0;
}

EMX_EXPORT int(emx_engine_device_info)(emx_engine *e, size_t index,
                                       emx_device_info *user_out) {
  int rc = check_index(e, index, user_out);
  if (rc < 0)
    return rc;
  emx__device *dev = &e->devices[index];
  emx_device_info own, *out = &own;
  emx__errbuf err;
  memset(out, 0, sizeof *out);
  snprintf(out->name, sizeof out->name, "%s", dev->name);
  snprintf(out->kind, sizeof out->kind, "%s", dev->kind);
  snprintf(out->spec, sizeof out->spec, "%.95s", dev->spec); /* may cut */
  pthread_mutex_lock(&dev->lock);
  out->healthy = atomic_load(&dev->healthy);
  out->faults = dev->faults;
  snprintf(out->model, sizeof out->model, "%s", dev->last_model);
  int64_t up = emx_now_ns() - dev->started_ns;
  out->utilization = up > 0 ? (double)dev->stats.busy_ns / (double)up : 0;
  pthread_mutex_unlock(&dev->lock);
  rc = emx__abi_out(user_out, out, sizeof *out, "emx_device_info", &err);
  return rc < 0 ? emx__fail_buf(e, rc, &err) : 0;
}

EMX_EXPORT int(emx_engine_device_stats)(emx_engine *e, size_t index,
                                        emx_stats *out) {
  int rc = check_index(e, index, out);
  if (rc < 0)
    return rc;
  emx__device *dev = &e->devices[index];
  emx_stats st;
  emx__errbuf err;
  pthread_mutex_lock(&dev->lock);
  emx__counters_snapshot(&dev->stats, dev->queue.length, &st);
  pthread_mutex_unlock(&dev->lock);
  rc = emx__abi_out(out, &st, sizeof st, "emx_stats", &err);
  return rc < 0 ? emx__fail_buf(e, rc, &err) : 0;
}

EMX_EXPORT void emx_engine_pause(emx_engine *e) {
  if (e)
    atomic_store(&e->paused, true);
}

EMX_EXPORT void emx_engine_resume(emx_engine *e) {
  if (!e)
    return;
  atomic_store(&e->paused, false);
  for (size_t i = 0; i < e->device_count; i++) {
    emx__device *dev = &e->devices[i];
    pthread_mutex_lock(&dev->lock);
    pthread_cond_signal(&dev->work_cv);
    pthread_mutex_unlock(&dev->lock);
  }
}
