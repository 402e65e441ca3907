/* metrics.c — what /metrics says: per model, per device, the daemon.
 * Names follow Prometheus' conventions (counters end in _total, base
 * units spelled out) so that `promtool check metrics` finds nothing. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "daemon/front/prom.h"

#define M(name) "edgemux_" name

static double resident_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "re");
  unsigned long size = 0, rss = 0;
  if (f) {
    if (fscanf(f, "%lu %lu", &size, &rss) != 2)
      rss = 0;
    fclose(f);
  }
  return (double)rss * (double)sysconf(_SC_PAGESIZE);
}

static void models(emxd_server *srv, emx__prom *p) {
  static const struct {
    const char *name, *type, *help;
  } fam[] = {
      {M("model_requests_succeeded_total"), "counter",
       "Requests for the model that completed successfully, all front doors."},
      {M("model_requests_failed_total"), "counter",
       "Requests for the model that failed, by reason."},
      {M("model_queue_depth"), "gauge",
       "Requests for the model waiting for a device."},
      {M("model_latency_p50_seconds"), "gauge",
       "Median submit-to-completion time of successful requests."},
      {M("model_latency_p99_seconds"), "gauge",
       "99th percentile submit-to-completion time of successful requests."},
      {M("model_ready"), "gauge",
       "1 when a device the model may use is healthy."},
  };
  for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
    emx__prom_family(p, fam[f].name, fam[f].type, fam[f].help);
    for (emxd_model *m = srv->models; m; m = m->next) {
      emx_stats st;
      emx_model_stats(m->model, &st);
      const char *l[] = {"model", m->name, "reason", "timeout"};
      switch (f) {
      case 0:
        emx__prom_sample(p, fam[f].name, l, 1,
                         (double)(st.requests - st.errors));
        break;
      case 1:
        emx__prom_sample(p, fam[f].name, l, 2, (double)st.timeouts);
        l[3] = "other";
        emx__prom_sample(p, fam[f].name, l, 2,
                         (double)(st.errors - st.timeouts));
        break;
      case 2:
        emx__prom_sample(p, fam[f].name, l, 1, (double)st.queue_depth);
        break;
      case 3:
        emx__prom_sample(p, fam[f].name, l, 1, st.latency_p50_us / 1e6);
        break;
      case 4:
        emx__prom_sample(p, fam[f].name, l, 1, st.latency_p99_us / 1e6);
        break;
      default:
        emx__prom_sample(p, fam[f].name, l, 1, emx_model_healthy(m->model));
      }
    }
  }
}

static void devices(emxd_server *srv, emx__prom *p) {
  static const struct {
    const char *name, *type, *help;
  } fam[] = {
      {M("device_healthy"), "gauge",
       "1 while the device serves, 0 while it "
       "is down and being re-probed."},
      {M("device_faults_total"), "counter", "Device faults since start."},
      {M("device_utilization_ratio"), "gauge",
       "Busy time over time since start, 0 to 1."},
      {M("device_busy_seconds_total"), "counter",
       "Time the device spent running requests."},
      {M("device_queue_depth"), "gauge", "Requests queued on the device."},
      {M("device_requests_total"), "counter",
       "Requests the device completed, whatever the status."},
      {M("device_resident_model"), "gauge",
       "1 for the model the device ran last (on an accelerator, the one "
       "whose parameters are resident)."},
  };
  size_t n = emx_engine_device_count(srv->engine);
  for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
    emx__prom_family(p, fam[f].name, fam[f].type, fam[f].help);
    for (size_t i = 0; i < n; i++) {
      emx_device_info di;
      emx_stats st;
      emx_engine_device_info(srv->engine, i, &di);
      emx_engine_device_stats(srv->engine, i, &st);
      const char *l[] = {"device", di.name, "kind", di.kind, "model", di.model};
      double v[] = {di.healthy,
                    (double)di.faults,
                    di.utilization,
                    st.busy_ns / 1e9,
                    (double)st.queue_depth,
                    (double)st.requests,
                    1};
      if (f == 6 && !di.model[0])
        continue;
      emx__prom_sample(p, fam[f].name, l, f == 6 ? 3 : 2, v[f]);
    }
  }
}

char *emxd_metrics_text(emxd_server *srv, size_t *len) {
  emx__prom p = {0};
  pthread_mutex_lock(&srv->models_lock);
  models(srv, &p);
  pthread_mutex_unlock(&srv->models_lock);
  devices(srv, &p);
  emx__prom_family(&p, M("connections"), "gauge",
                   "Open client connections, by front door.");
  const char *unix_l[] = {"door", "unix"}, *http_l[] = {"door", "http"};
  emx__prom_sample(
      &p, M("connections"), unix_l, 1,
      (double)__atomic_load_n(&srv->session_count, __ATOMIC_RELAXED));
  emx__prom_sample(&p, M("connections"), http_l, 1,
                   (double)emxd_http_connections(srv->http));
  emx__prom_family(&p, M("uptime_seconds"), "gauge",
                   "Seconds since edgemuxd started.");
  emx__prom_sample(&p, M("uptime_seconds"), NULL, 0,
                   (emx_now_ns() - srv->started_ns) / 1e9);
  emx__prom_family(&p, M("resident_memory_bytes"), "gauge",
                   "Resident memory of the edgemuxd process.");
  emx__prom_sample(&p, M("resident_memory_bytes"), NULL, 0, resident_bytes());
  if (p.failed) {
    emx__prom_free(&p);
    return NULL;
  }
  *len = p.len;
  return p.buf;
}
