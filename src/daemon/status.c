/* status.c — the text `edgemux status` prints: one line per fact, "key
 * value" or "kind name key=value ...", stable for scripts. */
#include <stdarg.h>
#include <stdio.h>

#include "daemon/daemon.h"

typedef struct out {
  char *buf;
  size_t cap, len;
} out;

__attribute__((format(printf, 2, 3))) static void say(out *o, const char *fmt,
                                                      ...) {
  if (o->len >= o->cap)
    return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
  va_end(ap);
  if (n > 0)
    o->len += (size_t)n < o->cap - o->len ? (size_t)n : o->cap - o->len - 1;
}

size_t emxd_status_text(emxd_server *srv, char *buf, size_t cap) {
  out o = {buf, cap, 0};
  buf[0] = '\0';
  say(&o, "version %s\n", emx_version());
  say(&o, "uptime_s %.1f\n", (emx_now_ns() - srv->started_ns) / 1e9);
  say(&o, "clients %zu\n", emxd_client_count(srv, false, 0));
  /* Liveness: this answer itself. Readiness, as KServe's health endpoints
   * mean it: every loaded model has a healthy device to run on. */
  say(&o, "live 1\n");
  int ready = 1;
  pthread_mutex_lock(&srv->models_lock);
  for (emxd_model *m = srv->models; m; m = m->next)
    ready &= emx_model_healthy(m->model);
  say(&o, "ready %d\n", ready);
  size_t ndev = emx_engine_device_count(srv->engine);
  for (size_t i = 0; i < ndev; i++) {
    emx_device_info di;
    emx_stats st;
    emx_engine_device_info(srv->engine, i, &di);
    emx_engine_device_stats(srv->engine, i, &st);
    say(&o,
        "device %s kind=%s healthy=%d faults=%llu model=%s util=%.3f "
        "queue=%llu requests=%llu errors=%llu busy_ms=%.1f p50_us=%.1f "
        "p99_us=%.1f spec=%s\n",
        di.name, di.kind, di.healthy, (unsigned long long)di.faults,
        di.model[0] ? di.model : "-", di.utilization,
        (unsigned long long)st.queue_depth, (unsigned long long)st.requests,
        (unsigned long long)st.errors, st.busy_ns / 1e6, st.latency_p50_us,
        st.latency_p99_us, di.spec);
  }
  for (emxd_model *m = srv->models; m; m = m->next) {
    emx_stats st;
    emx_model_stats(m->model, &st);
    say(&o,
        "model %s id=%u healthy=%d queue=%llu requests=%llu errors=%llu "
        "timeouts=%llu p50_us=%.1f p99_us=%.1f sha256=%.16s aliases=%zu "
        "source=%s memory_mib=%.1f prepared_on=%u\n",
        m->name, m->id, emx_model_healthy(m->model),
        (unsigned long long)st.queue_depth, (unsigned long long)st.requests,
        (unsigned long long)st.errors, (unsigned long long)st.timeouts,
        st.latency_p50_us, st.latency_p99_us, m->sha256, m->alias_count,
        m->client ? "client" : "repository", st.memory_bytes / 1048576.0,
        st.prepared_on);
  }
  pthread_mutex_unlock(&srv->models_lock);
  return o.len;
}
