/* stats.c — request counters and latency percentiles. */
#include "engine/internal.h"

#include <string.h>

void emx__counters_record(emx__counters *c, int status, int64_t latency_ns,
                          int64_t busy_ns) {
  c->requests++;
  if (status != 0)
    c->errors++;
  if (status == EMX_ETIMEDOUT)
    c->timeouts++;
  if (busy_ns > 0)
    c->busy_ns += (uint64_t)busy_ns;
  /* Latency of failures (a request refused at once, one canceled) would
   * mix two populations; percentiles describe served requests. */
  if (status == 0 && latency_ns >= 0)
    emx__hist_add(&c->latency, (uint64_t)latency_ns);
}

void emx__counters_snapshot(const emx__counters *c, uint64_t queued,
                            emx_stats *out) {
  memset(out, 0, sizeof *out);
  out->requests = c->requests;
  out->errors = c->errors;
  out->timeouts = c->timeouts;
  out->queue_depth = queued;
  out->busy_ns = c->busy_ns;
  out->latency_p50_us = emx__hist_quantile(&c->latency, 0.50) / 1e3;
  out->latency_p99_us = emx__hist_quantile(&c->latency, 0.99) / 1e3;
}
