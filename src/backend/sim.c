/* sim.c — a simulated single-core Coral Edge TPU.
 *
 * It behaves like the real device where that matters to the product:
 *   - opening is exclusive across processes (a second opener gets "device
 *     busy", as with a TPU held by another process), through an flock on
 *     $lock_dir/edgemux-sim-<id>.lock;
 *   - one invoke costs fixed time + (input + output bytes) / bandwidth
 *     (bandwidth_mbps=0: transfers are free) +
 *     the model's compute time, plus a swap when the model's parameters are
 *     not resident in the on-chip parameter cache (8 MiB by default);
 *     parameters larger than the cache stream on every invoke;
 *   - outputs come from a real CPU interpreter (outputs=cpu, the default),
 *     or are zeros when only timing matters (outputs=none);
 *   - faults can be injected: fail_at=N fails the Nth invoke; vanish_at=N
 *     makes the device disappear at the Nth invoke until return_after=M
 *     more attempts have been refused; abort_at=N abort()s the process and
 *     hang_at=N blocks forever at the Nth invoke, as libedgetpu does on a
 *     fatal USB error or a wedged device (use these with isolate=1, or
 *     they take the whole process down).
 *
 * Spec: sim[:ID][,compute_ms=F][,fixed_us=N][,bandwidth_mbps=N]
 *       [,cache_mib=N][,swap_ms=F][,outputs=cpu|none][,fail_at=N][,vanish_at=N]
 *       [,return_after=N][,abort_at=N][,hang_at=N][,lock_dir=PATH]
 *       [,clock=real|virtual][,max_batch=N]
 * With clock=real (the default) time is spent by sleeping (the device works
 * while the host waits), so many simulated devices run in parallel even on
 * a small machine. With clock=virtual an invoke returns at once and reports
 * its cost as its duration; the engine keeps the device's simulated clock
 * (see backend.h), so scheduling tests are exact and take no time. A
 * virtual clock counts compute_ms only: the CPU run that makes the outputs
 * is not timed, as its duration would vary. max_batch=N (default 1, as an
 * Edge TPU, whose compiled models fix the batch at 1) lets one invoke take
 * up to N requests of one model (dynamic batching): transfers and compute
 * scale with the batch; the fixed cost and a parameter swap are paid once. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/tflite.h"
#include "core/clock.h"

typedef struct sim_device {
  long id;              /* sim:ID */
  int lock_fd;          /* flock'ed: the exclusive open */
  int64_t fixed_ns;     /* per-invoke overhead (USB round trip) */
  double bytes_per_ns;  /* host <-> device transfer rate */
  int64_t compute_ns;   /* model execution, when not 0 */
  int64_t swap_ns;      /* parameter load when >= 0 (swap_ms=), else
                           parameter bytes / bandwidth */
  uint64_t cache_bytes; /* on-chip parameter cache */
  bool cpu_outputs;     /* run the real interpreter for outputs */
  long fail_at;         /* 1-based invoke that fails; 0 = never */
  long vanish_at;       /* invoke at which the device disappears */
  long return_after;    /* refused attempts before it returns */
  long abort_at;        /* invoke that abort()s the process; 0 = never */
  long hang_at;         /* invoke that never returns; 0 = never */
  long max_batch;       /* most requests one invoke takes (1: like an
                           Edge TPU, whose compiled models fix batch 1) */
  long invokes;         /* attempts so far */
  long refused;         /* attempts refused while vanished */
  bool vanished;        /* gone until return_after attempts refused */
  const void *resident; /* model whose parameters are in the cache */
  bool virtual_clock;   /* clock=virtual: report time, do not spend it */
} sim_device;

typedef struct sim_model {
  emx__tfl_model tfl;   /* for outputs and the interface */
  uint64_t param_bytes; /* parameters to load (the flatbuffer size) */
  size_t io_bytes;      /* input + output bytes per invoke */
} sim_model;

/* parse_ms reads item `key` as milliseconds (fractions allowed) in
 * [0, 60000] into *us; *us keeps its value when the item is absent. */
static int parse_ms(emx__devspec *spec, const char *key, long *us,
                    emx__errbuf *err) {
  const char *v = emx__devspec_str(spec, key);
  if (!v)
    return 0;
  char *end;
  double ms = strtod(v, &end);
  if (*end || ms < 0 || ms > 60000)
    return emx__errf(err, EMX_EINVAL,
                     "device spec \"%s\": %s=%s must be a number of "
                     "milliseconds in [0, 60000]",
                     spec->text, key, v);
  *us = (long)(ms * 1000);
  return 0;
}

static int parse(emx__devspec *spec, sim_device *d, char *lock_dir,
                 size_t lock_cap, emx__errbuf *err) {
  long fixed_us = 100, mbps = 320, cache_mib = 8, compute_us = 0;
  const char *v;
  int rc = 0;
  d->id = 0;
  /* The first bare item is the id: "sim:0". */
  if (spec->count > 0 && !spec->items[0].value[0] &&
      strchr("0123456789", spec->items[0].key[0])) {
    char *end;
    d->id = strtol(spec->items[0].key, &end, 10);
    if (*end || d->id < 0)
      return emx__errf(err, EMX_EINVAL, "device spec \"%s\": bad sim id",
                       spec->text);
    spec->items[0].used = true;
  }
  long swap_us = -1;
  rc = parse_ms(spec, "swap_ms", &swap_us, err);
  rc = rc ? rc : parse_ms(spec, "compute_ms", &compute_us, err);
  rc = rc ? rc : emx__devspec_int(spec, "fixed_us", 0, 1000000, &fixed_us, err);
  rc =
      rc ? rc : emx__devspec_int(spec, "bandwidth_mbps", 0, 100000, &mbps, err);
  rc = rc ? rc : emx__devspec_int(spec, "cache_mib", 0, 4096, &cache_mib, err);
  rc = rc ? rc
          : emx__devspec_int(spec, "fail_at", 0, 1L << 40, &d->fail_at, err);
  rc =
      rc ? rc
         : emx__devspec_int(spec, "vanish_at", 0, 1L << 40, &d->vanish_at, err);
  rc = rc ? rc
          : emx__devspec_int(spec, "return_after", 0, 1L << 40,
                             &d->return_after, err);
  rc = rc ? rc
          : emx__devspec_int(spec, "abort_at", 0, 1L << 40, &d->abort_at, err);
  rc = rc ? rc
          : emx__devspec_int(spec, "hang_at", 0, 1L << 40, &d->hang_at, err);
  d->max_batch = 1;
  rc = rc ? rc
          : emx__devspec_int(spec, "max_batch", 1, EMX_MAX_BATCH, &d->max_batch,
                             err);
  if (rc < 0)
    return rc;
  d->virtual_clock = false;
  if ((v = emx__devspec_str(spec, "clock"))) {
    if (strcmp(v, "real") != 0 && strcmp(v, "virtual") != 0)
      return emx__errf(err, EMX_EINVAL,
                       "device spec \"%s\": clock must be real or virtual",
                       spec->text);
    d->virtual_clock = strcmp(v, "virtual") == 0;
  }
  d->cpu_outputs = true;
  if ((v = emx__devspec_str(spec, "outputs"))) {
    if (strcmp(v, "cpu") != 0 && strcmp(v, "none") != 0)
      return emx__errf(err, EMX_EINVAL,
                       "device spec \"%s\": outputs must be cpu or none",
                       spec->text);
    d->cpu_outputs = strcmp(v, "cpu") == 0;
  }
  const char *dir = emx__devspec_str(spec, "lock_dir");
  if (!dir)
    dir = getenv("EMX_SIM_LOCK_DIR");
  snprintf(lock_dir, lock_cap, "%s", dir && *dir ? dir : "/tmp");
  d->fixed_ns = fixed_us * 1000;
  d->bytes_per_ns = mbps ? (double)mbps * 1e6 / 1e9 : 0; /* 0: instant */
  d->compute_ns = compute_us * 1000;
  d->swap_ns = swap_us >= 0 ? swap_us * 1000 : -1;
  d->cache_bytes = (uint64_t)cache_mib << 20;
  return emx__devspec_check_used(spec, err);
}

static int sim_units(emx__devspec *spec, int *count, emx__errbuf *err) {
  sim_device d;
  char dir[256];
  int rc = parse(spec, &d, dir, sizeof dir, err);
  if (rc == 0)
    *count = 1;
  return rc;
}

static int sim_open(const emx__devspec *spec, int unit, void **dev,
                    emx__errbuf *err) {
  emx__devspec copy = *spec;
  sim_device *d = calloc(1, sizeof *d);
  if (!d)
    return emx__errf(err, EMX_ENOMEM, "out of memory opening %s", spec->text);
  char dir[256], path[320];
  int rc = parse(&copy, d, dir, sizeof dir, err);
  if (rc < 0) {
    free(d);
    return rc;
  }
  snprintf(path, sizeof path, "%s/edgemux-sim-%ld.lock", dir, d->id);
  d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (d->lock_fd < 0) {
    rc = emx__errf(err, EMX_EIO, "sim:%ld: cannot open %s: %s", d->id, path,
                   strerror(errno));
    free(d);
    return rc;
  }
  /* The lock dies with the process (or the fd), like a real device handle:
   * no stale locks after a crash. */
  if (flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0) {
    char holder[32] = "";
    ssize_t n = pread(d->lock_fd, holder, sizeof holder - 1, 0);
    holder[n > 0 ? n : 0] = '\0';
    holder[strcspn(holder, "\n")] = '\0';
    rc = emx__errf(err, EMX_EBUSY,
                   "device busy: sim:%ld is held by another process%s%s%s "
                   "(one process at a time, as with a real Edge TPU: share "
                   "it through edgemuxd)",
                   d->id, holder[0] ? " (pid " : "", holder,
                   holder[0] ? ")" : "");
    close(d->lock_fd);
    free(d);
    return rc;
  }
  char pid[32];
  int len = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
  /* The holder's pid is only for the message above: failures are moot. */
  if (ftruncate(d->lock_fd, 0) == 0 &&
      pwrite(d->lock_fd, pid, (size_t)len, 0) < 0) {
  }
  *dev = d;
  return 0;
}

static void sim_close(void *dev) {
  sim_device *d = dev;
  close(d->lock_fd); /* releases the flock */
  free(d);
}

static int sim_prepare(void *dev, const void *data, size_t size, void **prep,
                       emx__model_desc *desc, emx__errbuf *err) {
  sim_model *m = calloc(1, sizeof *m);
  if (!m)
    return emx__errf(err, EMX_ENOMEM, "out of memory preparing a model");
  /* The interpreter gives the interface and, with outputs=cpu, the
   * results; one thread, as the simulated device runs one thing at once. */
  int rc = emx__tfl_prepare_xnnpack(&m->tfl, data, size, 1, desc, err);
  if (rc < 0) {
    free(m);
    return rc;
  }
  m->param_bytes = size;
  for (size_t i = 0; i < desc->input_count; i++)
    m->io_bytes += desc->inputs[i].bytes;
  for (size_t i = 0; i < desc->output_count; i++)
    m->io_bytes += desc->outputs[i].bytes;
  *prep = m;
  return 0;
}

static void sim_release(void *dev, void *prep) {
  sim_device *d = dev;
  sim_model *m = prep;
  if (d->resident == m)
    d->resident = NULL;
  emx__tfl_release(&m->tfl);
  free(m);
}

/* sleep_until ends a simulated operation at time t, precisely: the
 * kernel's default timer slack (50 us) and wake-up latency would otherwise
 * add ~5% to a 2 ms invoke, which a real device does not. So: no slack for
 * this thread, sleep to just before t, then poll the last stretch. */
#define SPIN_TAIL_NS 30000
static void sleep_until(int64_t t) {
  static _Thread_local int slack_set;
  if (!slack_set) {
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    slack_set = 1;
  }
  /* Short waits (a few microseconds of a small request) only spin: even
   * a sleep that returns at once is a syscall, and costs more than that
   * in a VM. */
  if (t - SPIN_TAIL_NS > emx_now_ns()) {
    struct timespec ts = emx__abstime(t - SPIN_TAIL_NS);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
           EINTR) {
    }
  }
  while (emx_now_ns() < t)
    emx__cpu_relax();
}

/* transfer_ns: time to move `bytes` over the device's link. */
static int64_t transfer_ns(const sim_device *d, uint64_t bytes) {
  return d->bytes_per_ns > 0 ? (int64_t)((double)bytes / d->bytes_per_ns) : 0;
}

/* spend ends an operation that began at t0 and costs `cost`: on a real
 * clock by sleeping until then; on a virtual one by reporting it. */
static void spend(const sim_device *d, int64_t t0, int64_t cost,
                  int64_t *device_ns) {
  if (d->virtual_clock) {
    *device_ns = cost;
    return;
  }
  sleep_until(emx__deadline_after(t0, cost));
  *device_ns = emx_now_ns() - t0;
}

/* run is one invoke of `batch` requests (1 unless dynamically batched):
 * faults are per invoke; transfers and compute scale with the batch, the
 * fixed cost and a parameter swap do not. */
static int run(sim_device *d, sim_model *m, size_t batch,
               const emx_tensor *const *inputs, size_t nin,
               const emx_tensor *const *outputs, size_t nout,
               int64_t *device_ns, emx__errbuf *err) {
  int64_t t0 = emx_now_ns();
  d->invokes++;
  if (d->vanish_at && d->invokes >= d->vanish_at) {
    /* Like a USB transfer that times out: the failure comes after the
     * invoke's time. This attempt is the first refused one; probes refuse
     * the rest (see sim_probe). */
    spend(d, t0, d->fixed_ns + d->compute_ns, device_ns);
    d->vanished = true;
    d->refused = 1;
    d->vanish_at = 0;
    d->resident = NULL; /* a device that comes back has an empty cache */
    return emx__errf(err, EMX_EDEVICE,
                     "sim:%ld: device vanished (injected at invoke %ld)", d->id,
                     d->invokes);
  }
  if (d->abort_at && d->invokes == d->abort_at)
    abort();
  if (d->hang_at && d->invokes == d->hang_at) {
    for (;;)
      pause();
  }
  if (d->fail_at && d->invokes == d->fail_at) {
    spend(d, t0, d->fixed_ns + d->compute_ns, device_ns);
    return emx__errf(err, EMX_EDEVICE, "sim:%ld: invoke %ld failed (injected)",
                     d->id, d->invokes);
  }

  int64_t n = (int64_t)batch;
  int64_t cost =
      d->fixed_ns + n * (transfer_ns(d, m->io_bytes) + d->compute_ns);
  int64_t swap = d->swap_ns >= 0 ? d->swap_ns : transfer_ns(d, m->param_bytes);
  if (m->param_bytes > d->cache_bytes) {
    cost += swap; /* does not fit: parameters stream in on every invoke */
  } else if (d->resident != m) {
    cost += swap;
    d->resident = m;
  }
  for (size_t r = 0; r < batch; r++) {
    if (d->cpu_outputs) {
      int64_t cpu_ns = 0;
      int rc = emx__tfl_invoke(&m->tfl, inputs[r], nin, outputs[r], nout,
                               &cpu_ns, err);
      if (rc < 0)
        return rc;
      if (!d->compute_ns && !d->virtual_clock)
        cost += cpu_ns; /* the CPU run stands in for the device's compute */
    } else {
      for (size_t i = 0; i < nout; i++)
        memset(outputs[r][i].data, 0, outputs[r][i].size);
    }
  }
  spend(d, t0, cost, device_ns);
  return 0;
}

static int sim_invoke(void *dev, void *prep, const emx_tensor *inputs,
                      size_t nin, const emx_tensor *outputs, size_t nout,
                      int64_t *device_ns, emx__errbuf *err) {
  return run(dev, prep, 1, &inputs, nin, &outputs, nout, device_ns, err);
}

static int sim_invoke_batch(void *dev, void *prep, size_t batch,
                            const emx_tensor *const *inputs, size_t nin,
                            const emx_tensor *const *outputs, size_t nout,
                            int64_t *device_ns, emx__errbuf *err) {
  sim_device *d = dev;
  if ((long)batch > d->max_batch)
    return emx__errf(err, EMX_EUNSUPPORTED,
                     "sim:%ld runs at most %ld requests per invoke "
                     "(max_batch=)",
                     d->id, d->max_batch);
  return run(d, prep, batch, inputs, nin, outputs, nout, device_ns, err);
}

/* sim_probe: the engine asks whether a faulted device is usable again.
 * A vanished device refuses until return_after attempts have failed (0:
 * never comes back); a device that only failed one invoke is fine. */
static int sim_probe(void *dev, emx__errbuf *err) {
  sim_device *d = dev;
  if (d->vanished) {
    if (d->return_after == 0 || d->refused < d->return_after) {
      d->refused++;
      return emx__errf(err, EMX_EDEVICE,
                       "sim:%ld: still vanished (%ld of "
                       "%ld attempts refused)",
                       d->id, d->refused, d->return_after);
    }
    d->vanished = false;
  }
  d->resident = NULL;
  return 0;
}

static bool sim_virtual_clock(const void *dev) {
  return ((const sim_device *)dev)->virtual_clock;
}

const emx__backend_ops emx__backend_sim = {
    .kind = "sim",
    .units = sim_units,
    .open = sim_open,
    .close = sim_close,
    .prepare = sim_prepare,
    .release = sim_release,
    .invoke = sim_invoke,
    .invoke_batch = sim_invoke_batch,
    .probe = sim_probe,
    .virtual_clock = sim_virtual_clock,
};
