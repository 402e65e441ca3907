/* metrics.c — what /metrics says: per model, per device, the daemon.
 * Names follow Prometheus' conventions (counters end in _total, base
 * units spelled out) so that `promtool check metrics` finds nothing. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "daemon/front/model_names.h"
#include "daemon/path.h"
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
       "Requests for the model that failed, by reason: refused at "
       "submission (a full queue, a bad tensor), deadline passed, other."},
      {M("model_queue_depth"), "gauge",
       "Requests for the model waiting for a device."},
      {M("model_latency_p50_seconds"), "gauge",
       "Median submit-to-completion time of successful requests."},
      {M("model_latency_p99_seconds"), "gauge",
       "99th percentile submit-to-completion time of successful requests."},
      {M("model_ready"), "gauge",
       "1 when a device the model may use is healthy."},
      {M("model_inferences_total"), "counter",
       "Inferences the model completed successfully (one per request)."},
      {M("model_executions_total"), "counter",
       "Device invokes of the model: requests dynamically batched into one "
       "invoke count once."},
      {M("model_queue_seconds_total"), "counter",
       "Time the model's requests waited in a queue before a device took "
       "them, summed over requests that ran."},
      {M("model_compute_seconds_total"), "counter",
       "Time inside the device's invoke, summed over the model's requests "
       "that ran (a batch's invoke counts for each of its requests)."},
  };
  emxh_names n;
  emxh_names_get(srv, &n);
  for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
    emx__prom_family(p, fam[f].name, fam[f].type, fam[f].help);
    for (size_t i = 0; i < n.count; i++) {
      emxd_model *m = emxd_model_get(srv, n.v[i]);
      if (!m)
        continue; /* unloaded since the listing */
      emx_model *em = emxd_model_engine(m);
      emx_stats st;
      emxd_model_counters mc;
      emx_model_stats(em, &st);
      emxd_model_counters_get(m, &mc);
      const char *l[] = {"model", n.v[i], "reason", "rejected"};
      switch (f) {
      case 0:
        emx__prom_sample(p, fam[f].name, l, 1, (double)mc.completed);
        break;
      case 1:
        emx__prom_sample(p, fam[f].name, l, 2, (double)mc.rejected);
        l[3] = "timeout";
        emx__prom_sample(p, fam[f].name, l, 2, (double)st.timeouts);
        l[3] = "other";
        emx__prom_sample(
            p, fam[f].name, l, 2,
            mc.failed > st.timeouts ? (double)(mc.failed - st.timeouts) : 0);
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
      case 5:
        emx__prom_sample(p, fam[f].name, l, 1, emx_model_healthy(em));
        break;
      case 6:
        emx__prom_sample(p, fam[f].name, l, 1, (double)mc.completed);
        break;
      case 7: /* sums of 1/batch: whole numbers but for rounding */
        emx__prom_sample(p, fam[f].name, l, 1, (double)llround(mc.executions));
        break;
      case 8:
        emx__prom_sample(p, fam[f].name, l, 1, (double)mc.queue_ns / 1e9);
        break;
      default:
        emx__prom_sample(p, fam[f].name, l, 1, (double)mc.compute_ns / 1e9);
      }
      emxd_model_put(m);
    }
  }
  free(n.v);
}

static void doors(emxd_server *srv, emx__prom *p) {
  emxd_door_stats ds[EMXD_DOOR_COUNT];
  for (int d = 0; d < EMXD_DOOR_COUNT; d++)
    emxd_door_stats_get(srv, (emxd_door)d, &ds[d]);
  /* A family's samples must be contiguous: one loop per family. */
  emx__prom_family(p, M("clients"), "gauge",
                   "Clients open now, by front door (HTTP: one per client "
                   "address).");
  for (int d = 0; d < EMXD_DOOR_COUNT; d++) {
    const char *l[] = {"door", emxd_door_name((emxd_door)d)};
    emx__prom_sample(p, M("clients"), l, 1, (double)ds[d].clients);
  }
  emx__prom_family(p, M("door_requests_total"), "counter",
                   "Requests through each front door, by outcome.");
  for (int d = 0; d < EMXD_DOOR_COUNT; d++) {
    const char *l[] = {"door", emxd_door_name((emxd_door)d), "outcome",
                       "completed"};
    emx__prom_sample(p, M("door_requests_total"), l, 2,
                     (double)ds[d].completed);
    l[3] = "failed";
    emx__prom_sample(p, M("door_requests_total"), l, 2, (double)ds[d].failed);
    l[3] = "rejected";
    emx__prom_sample(p, M("door_requests_total"), l, 2, (double)ds[d].rejected);
  }
  emx__prom_family(p, M("http_connections"), "gauge", "Open HTTP connections.");
  emx__prom_sample(p, M("http_connections"), NULL, 0,
                   (double)atomic_load(&srv->http_conns));
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
  models(srv, &p);
  devices(srv, &p);
  doors(srv, &p);
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
