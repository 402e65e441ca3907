/* isolate.c — the isolating proxy: a device whose real backend runs in an
 * edgemux-devhost child process (overview in isolate.h, messages in
 * isolate_msg.h). Everything here runs on the device's worker thread, as
 * for any backend, except open/close. */
#include "backend/isolate.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/child.h"
#include "backend/isolate_msg.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/arena.h"

extern char **environ;

/* Opening a real Edge TPU (USB enumeration, firmware upload on first use)
 * and preparing a model (parameters streamed to the device) take seconds;
 * they get at least this long, or deadline_ms if that is longer. */
#define SLOW_OP_MS 30000
/* How long close waits for the child to exit by itself before SIGKILL
 * (EMX__KILL_GRACE_MS, child.h, is how long any reap waits after it). */
#define EXIT_GRACE_MS 2000

typedef struct iso_device {
  char spec[256];      /* the spec, for messages and the child's argv */
  char path[PATH_MAX]; /* the device host program */
  int unit;            /* which unit of the spec */
  pid_t pid;           /* the device host; 0 once reaped or given up */
  int sock;            /* our end of the socketpair; -1 when closed */
  emx__arena region;   /* tensors, mapped by both sides */
  long deadline_ms;    /* reply deadline per invoke */
  uint32_t next_id;    /* prepared model ids */
  bool dead;           /* no child: every call fails until probe restarts it */
  emx__errbuf why;     /* why it is dead */
  unsigned char *buf;  /* EMX__ISO_MSG_MAX bytes for replies */
} iso_device;

typedef struct iso_model {
  uint32_t id; /* the child's handle */
} iso_model;

static int64_t ms_to_ns(long ms) {
  return (int64_t)ms * 1000000;
}

/* reap ends the device's child (see emx__child_end). */
static int reap(iso_device *d, int *status, int64_t grace_ns) {
  if (d->pid <= 0)
    return -1;
  int r = emx__child_end(d->pid, status, grace_ns, d->spec);
  d->pid = 0;
  return r;
}

/* drop releases the connection to the child: the socket and the region. */
static void drop(iso_device *d) {
  if (d->sock >= 0)
    close(d->sock);
  d->sock = -1;
  emx__arena_close(&d->region);
}

/* condemned marks the device unusable after d->why was written: logged
 * once, and every later call fails with the same reason until a probe
 * restarts the child. */
static int condemned(iso_device *d, emx__errbuf *err) {
  d->dead = true;
  emx__log(EMX_LOG_WARN, "%s", d->why.msg);
  return emx__errf(err, EMX_EDEVICE, "%s", d->why.msg);
}

/* kill_child kills the child, drops the connection and reaps it; returns
 * the pid it had, for the message. */
static pid_t kill_child(iso_device *d) {
  pid_t pid = d->pid;
  int status;
  kill(pid, SIGKILL);
  drop(d);
  reap(d, &status, ms_to_ns(EMX__KILL_GRACE_MS));
  return pid;
}

/* died records that the child stopped answering during `what` (EOF or a
 * reset on the socket): reaps it and explains how it ended. */
static int died(iso_device *d, const char *what, emx__errbuf *err) {
  pid_t pid = d->pid;
  int status = 0;
  drop(d);
  /* Its end of the socket closed, so it is exiting: give it a moment. */
  int r = reap(d, &status, ms_to_ns(EXIT_GRACE_MS));
  if (r == 1 && WIFSIGNALED(status))
    emx__errf(&d->why, EMX_EDEVICE,
              "%s: device process %d died: signal %d (%s) during %s", d->spec,
              (int)pid, WTERMSIG(status), strsignal(WTERMSIG(status)), what);
  else if (r == 1)
    emx__errf(&d->why, EMX_EDEVICE,
              "%s: device process %d exited with status %d during %s", d->spec,
              (int)pid, WEXITSTATUS(status), what);
  else if (r == 0)
    emx__errf(&d->why, EMX_EDEVICE,
              "%s: device process %d closed its connection during %s and "
              "was killed",
              d->spec, (int)pid, what);
  else
    emx__errf(&d->why, EMX_EDEVICE,
              "%s: device process %d died during %s (its exit status was "
              "collected elsewhere)",
              d->spec, (int)pid, what);
  return condemned(d, err);
}

/* hung kills a child that missed its deadline. */
static int hung(iso_device *d, const char *what, long ms, emx__errbuf *err) {
  pid_t pid = kill_child(d);
  emx__errf(&d->why, EMX_EDEVICE,
            "%s: device process %d hung: no reply within %ld ms during %s; "
            "killed it",
            d->spec, (int)pid, ms, what);
  return condemned(d, err);
}

/* broken kills a child that broke the protocol (a bug, not a device
 * fault, but handled the same way: the device is unusable). */
static int broken(iso_device *d, const char *what, const char *detail,
                  emx__errbuf *err) {
  pid_t pid = kill_child(d);
  emx__errf(&d->why, EMX_EDEVICE,
            "%s: device process %d broke the protocol during %s (%s); "
            "killed it",
            d->spec, (int)pid, what, detail);
  return condemned(d, err);
}

static int down(iso_device *d, emx__errbuf *err) {
  return emx__errf(err, EMX_EDEVICE,
                   "device is down until its process is restarted: %s",
                   d->why.msg);
}

/* request sends one packet; a failure means the child is gone. */
static int request(iso_device *d, uint32_t op, uint32_t id, uint64_t arg,
                   int fd, const char *what, emx__errbuf *err) {
  int rc = emx__iso_send(d->sock, op, id, 0, arg, NULL, 0, fd);
  if (rc == -EPIPE || rc == -ECONNRESET || rc == -ENOTCONN)
    return died(d, what, err);
  if (rc < 0)
    return broken(d, what, strerror(-rc), err);
  return 0;
}

/* reply waits up to ms for the answer to `op`. On success *hdr is its
 * header and the payload is at d->buf + sizeof *hdr. */
static int reply(iso_device *d, uint32_t op, long ms, const char *what,
                 emx__iso_hdr *hdr, emx__errbuf *err) {
  int64_t end = emx__deadline_after(emx_now_ns(), ms_to_ns(ms));
  for (;;) {
    int64_t left = end - emx_now_ns();
    struct pollfd p = {.fd = d->sock, .events = POLLIN};
    /* Round up: poll's timeout is whole ms, and 0 would not wait at all. */
    int n = left > 0 ? poll(&p, 1, (int)((left + 999999) / 1000000)) : 0;
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return broken(d, what, strerror(errno), err);
    if (n == 0) {
      if (emx_now_ns() < end)
        continue; /* woke a little early */
      return hung(d, what, ms, err);
    }
    int fd;
    ssize_t got = emx__iso_recv(d->sock, d->buf, hdr, &fd);
    if (fd >= 0)
      close(fd); /* replies never carry one */
    if (got == 0 || got == -ECONNRESET)
      return died(d, what, err);
    if (got < 0)
      return broken(d, what, strerror((int)-got), err);
    if (hdr->op != op)
      return broken(d, what, "unexpected reply", err);
    return 0;
  }
}

/* reply_error turns a reply's failure status into the caller's error, with
 * the child's message (the real backend's). */
static int reply_error(iso_device *d, const emx__iso_hdr *hdr,
                       emx__errbuf *err) {
  return emx__errf(err, hdr->status, "%.*s", (int)hdr->len,
                   (const char *)d->buf + sizeof *hdr);
}

/* ---- the proxy's backend functions --------------------------------------- */

int emx__isolate_select(emx__devspec *spec, const emx__backend_ops **ops,
                        emx__errbuf *err) {
  int isolate;
  long deadline_ms = 0;
  int rc = emx__iso_strip(spec, &isolate, &deadline_ms, err);
  if (rc < 0)
    return rc;
  if (isolate < 0)
    isolate = strcmp(spec->kind, "edgetpu") == 0;
  if (!isolate && deadline_ms)
    return emx__errf(err, EMX_EINVAL,
                     "device spec \"%s\": deadline_ms applies to isolated "
                     "devices only (add isolate=1)",
                     spec->text);
  *ops = isolate ? &emx__backend_isolate : emx__backend_find(spec->kind);
  return 0;
}

/* count_in_child runs `edgemux-devhost --count SPEC`, which counts the
 * spec's units with the real backend and prints "STATUS COUNT MESSAGE". */
static int count_in_child(const char *spec, int *count, emx__errbuf *err) {
  char path[PATH_MAX];
  int rc = emx__devhost_find(spec, path, sizeof path, err);
  if (rc < 0)
    return rc;
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) < 0)
    return emx__errf(err, EMX_EIO, "%s: pipe: %s", spec, strerror(errno));
  char *argv[] = {path, "--count", (char *)spec, NULL};
  pid_t pid;
  int src = emx__devhost_spawn(path, argv, -1, pfd[1], false, &pid);
  close(pfd[1]);
  if (src != 0) {
    close(pfd[0]);
    return emx__errf(err, EMX_EDEVICE, "%s: cannot start %s: %s", spec, path,
                     strerror(src));
  }
  char out[sizeof err->msg + 32];
  size_t got = 0;
  struct pollfd p = {.fd = pfd[0], .events = POLLIN};
  int64_t end = emx__deadline_after(emx_now_ns(), ms_to_ns(SLOW_OP_MS));
  while (got < sizeof out - 1) {
    int64_t left = end - emx_now_ns();
    if (left <= 0 || poll(&p, 1, (int)(left / 1000000) + 1) <= 0)
      break;
    ssize_t n = read(pfd[0], out + got, sizeof out - 1 - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  out[got] = '\0';
  close(pfd[0]);
  int status = 0;
  if (emx__child_end(pid, &status, ms_to_ns(EXIT_GRACE_MS), spec) == 0)
    return emx__errf(err, EMX_EDEVICE,
                     "%s: listing the devices hung (killed after %d ms)", spec,
                     SLOW_OP_MS);
  if (WIFSIGNALED(status))
    return emx__errf(err, EMX_EDEVICE,
                     "%s: the driver crashed listing the devices (signal %d, "
                     "%s)",
                     spec, WTERMSIG(status), strsignal(WTERMSIG(status)));
  /* The answer is the last line: a driver may have printed before it. */
  int code = 0, n = 0, used = -1;
  for (char *line = out; *line;) {
    int c, k, u = 0;
    if (sscanf(line, "%d %d %n", &c, &k, &u) == 2) {
      code = c;
      n = k;
      used = (int)(line - out) + u;
    }
    char *nl = strchr(line, '\n');
    line = nl ? nl + 1 : line + strlen(line);
  }
  if (used < 0)
    return emx__errf(err, EMX_EDEVICE,
                     "%s: the device host could not count the devices (exit "
                     "%d)",
                     spec, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  if (code < 0) {
    char *msg = out + used;
    msg[strcspn(msg, "\n")] = '\0';
    return emx__errf(err, code, "%s", msg);
  }
  *count = n;
  return 0;
}

static int iso_units(emx__devspec *spec, int *count, emx__errbuf *err) {
  const emx__backend_ops *real = emx__backend_find(spec->kind);
  if (!real)
    return emx__errf(err, EMX_EINVAL, "device spec \"%s\": unknown kind",
                     spec->text);
  /* An Edge TPU spec may count by listing the devices through libedgetpu
   * ("edgetpu:*"): that is driver code, so it runs in a child like every
   * other call into the driver, and a driver that aborts or hangs while
   * listing fails the spec instead of the process. Other kinds count by
   * parsing. */
  if (strcmp(spec->kind, "edgetpu") == 0)
    return count_in_child(spec->text, count, err);
  return real->units(spec, count, err);
}

/* spawn starts the device host on the child's end of the socket. */
static int spawn(iso_device *d, const char *path, int child_sock, int unit,
                 emx__errbuf *err) {
  char parent[32], unit_arg[32];
  snprintf(parent, sizeof parent, "--parent=%d", (int)getpid());
  snprintf(unit_arg, sizeof unit_arg, "--unit=%d", unit);
  /* PR_SET_PDEATHSIG fires when the *thread* that made the child exits, not
   * the process: ask for it only when that thread is the main one (the
   * child also watches its socket and its parent pid for the rest). */
  char *argv[6];
  int argc = 0;
  argv[argc++] = (char *)path;
  argv[argc++] = parent;
  argv[argc++] = unit_arg;
  if (gettid() == getpid())
    argv[argc++] = "--pdeathsig";
  argv[argc++] = d->spec;
  argv[argc] = NULL;
  int rc = emx__devhost_spawn(path, argv, child_sock, -1, false, &d->pid);
  if (rc != 0) {
    d->pid = 0;
    return emx__errf(err, rc == ENOMEM ? EMX_ENOMEM : EMX_EDEVICE,
                     "%s: cannot start the device host %s: %s", d->spec, path,
                     strerror(rc));
  }
  return 0;
}

static void iso_free(iso_device *d) {
  free(d->buf);
  free(d);
}

/* slow_ms: the reply deadline of an open (or a re-open in a probe) and a
 * prepare, see SLOW_OP_MS. */
static long slow_ms(const iso_device *d) {
  return d->deadline_ms > SLOW_OP_MS ? d->deadline_ms : SLOW_OP_MS;
}

/* start spawns a device host and waits for its HELLO: on success the child
 * has the device open. On failure no socket and no child are left. */
static int start(iso_device *d, emx__errbuf *err) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return emx__errf(err, EMX_EIO, "%s: socketpair: %s", d->spec,
                     strerror(errno));
  /* dup2(3, 3) would keep close-on-exec set: keep the child's end off 3. */
  if (sv[1] == EMX__ISO_FD) {
    int moved = fcntl(sv[1], F_DUPFD_CLOEXEC, EMX__ISO_FD + 1);
    close(sv[1]);
    sv[1] = moved;
  }
  d->sock = sv[0];
  int rc = sv[1] < 0 ? emx__errf(err, EMX_EIO, "%s: fcntl: %s", d->spec,
                                 strerror(errno))
                     : spawn(d, d->path, sv[1], d->unit, err);
  if (sv[1] >= 0)
    close(sv[1]);
  if (rc < 0) {
    drop(d);
    return rc;
  }

  emx__iso_hdr hdr;
  rc = reply(d, EMX__ISO_HELLO, slow_ms(d), "open", &hdr, err);
  if (rc == 0 && hdr.status < 0) {
    /* The real open failed: pass its code and message on. The child exits
     * by itself. */
    rc = reply_error(d, &hdr, err);
    int status;
    drop(d);
    reap(d, &status, ms_to_ns(EXIT_GRACE_MS));
  }
  return rc;
}

static int iso_open(const emx__devspec *spec, int unit, void **dev,
                    emx__errbuf *err) {
  emx__devspec copy = *spec;
  int isolate;
  long deadline_ms = EMX__ISO_DEFAULT_DEADLINE_MS;
  int rc = emx__iso_strip(&copy, &isolate, &deadline_ms, err);
  if (rc < 0)
    return rc;
  emx__child_reap_orphans();
  iso_device *d = calloc(1, sizeof *d);
  unsigned char *buf = malloc(EMX__ISO_MSG_MAX);
  if (!d || !buf) {
    free(d);
    free(buf);
    return emx__errf(err, EMX_ENOMEM, "out of memory opening %s", spec->text);
  }
  d->buf = buf;
  d->sock = -1;
  d->region.fd = -1;
  d->deadline_ms = deadline_ms;
  d->unit = unit;
  snprintf(d->spec, sizeof d->spec, "%s", spec->text);
  rc = emx__devhost_find(spec->text, d->path, sizeof d->path, err);
  if (rc == 0)
    rc = start(d, err);
  if (rc < 0) {
    iso_free(d);
    return rc;
  }
  *dev = d;
  return 0;
}

static void iso_close(void *dev) {
  iso_device *d = dev;
  if (d->pid > 0 && d->sock >= 0 &&
      emx__iso_send(d->sock, EMX__ISO_CLOSE, 0, 0, 0, NULL, 0, -1) == 0) {
    /* The child closes the real device (a TPU handle, a lock) and exits;
     * its end of the socket closing is the answer. */
    int64_t end = emx__deadline_after(emx_now_ns(), ms_to_ns(EXIT_GRACE_MS));
    for (;;) {
      int64_t left = end - emx_now_ns();
      struct pollfd p = {.fd = d->sock, .events = POLLIN};
      if (left <= 0 || poll(&p, 1, (int)((left + 999999) / 1000000)) == 0)
        break;
      emx__iso_hdr hdr;
      int fd;
      ssize_t got = emx__iso_recv(d->sock, d->buf, &hdr, &fd);
      if (fd >= 0)
        close(fd);
      if (got == 0 || (got < 0 && got != -EINTR && got != -EPROTO))
        break;
    }
  }
  drop(d);
  int status;
  /* After its EOF the child is a moment from exiting; after a silent
   * EXIT_GRACE_MS it is stuck, and the short wait ends in SIGKILL. */
  if (d->pid > 0)
    reap(d, &status, ms_to_ns(200));
  emx__child_reap_orphans();
  iso_free(d);
}

/* seal_model copies the model into a sealed memfd for the child. */
static int seal_model(const char *spec, const void *data, size_t size, int *out,
                      emx__errbuf *err) {
  int fd = emx__memfd_sealed("edgemux-model", data, size);
  if (fd < 0)
    return emx__errf(err, fd == -ENOMEM || fd == -ENOSPC ? EMX_ENOMEM : EMX_EIO,
                     "%s: copying the model for the device process: %s", spec,
                     strerror(-fd));
  *out = fd;
  return 0;
}

/* grow_region gives the child a region of at least `need` bytes. */
static int grow_region(iso_device *d, size_t need, long ms, emx__errbuf *err) {
  if (d->region.size >= need)
    return 0;
  /* Whole pages; the old region goes once the child has the new one. */
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t size = (need + page - 1) / page * page;
  emx__arena fresh;
  int rc = emx__arena_create(&fresh, size, err);
  if (rc < 0)
    return rc;
  rc = request(d, EMX__ISO_REGION, 0, size, fresh.fd, "prepare", err);
  emx__iso_hdr hdr;
  if (rc == 0)
    rc = reply(d, EMX__ISO_REGION, ms, "prepare", &hdr, err);
  if (rc == 0 && hdr.status < 0)
    rc = reply_error(d, &hdr, err);
  if (rc < 0) {
    emx__arena_close(&fresh);
    return rc;
  }
  emx__arena_close(&d->region);
  d->region = fresh;
  return 0;
}

static int iso_prepare(void *dev, const void *data, size_t size, void **prep,
                       emx__model_desc *desc, emx__errbuf *err) {
  iso_device *d = dev;
  if (d->dead)
    return down(d, err);
  iso_model *m = calloc(1, sizeof *m);
  if (!m)
    return emx__errf(err, EMX_ENOMEM, "out of memory preparing a model");
  int fd = -1;
  int rc = seal_model(d->spec, data, size, &fd, err);
  if (rc < 0) {
    free(m);
    return rc;
  }
  long ms = slow_ms(d);
  m->id = ++d->next_id;
  rc = request(d, EMX__ISO_PREPARE, m->id, size, fd, "prepare", err);
  close(fd);
  emx__iso_hdr hdr;
  if (rc == 0)
    rc = reply(d, EMX__ISO_PREPARE, ms, "prepare", &hdr, err);
  if (rc < 0) {
    free(m);
    return rc;
  }
  if (hdr.status < 0) {
    free(m);
    return reply_error(d, &hdr, err);
  }
  rc = emx__iso_desc_decode(d->buf + sizeof hdr, hdr.len, desc, err);
  if (rc == 0) {
    rc = grow_region(d, emx__iso_region_need(desc), ms, err);
    if (rc < 0)
      emx__model_desc_free(desc);
  }
  if (rc < 0) {
    if (!d->dead)
      emx__iso_send(d->sock, EMX__ISO_RELEASE, m->id, 0, 0, NULL, 0, -1);
    free(m);
    return rc;
  }
  *prep = m;
  return 0;
}

static void iso_release(void *dev, void *prep) {
  iso_device *d = dev;
  iso_model *m = prep;
  /* No reply: the child handles packets in order, and a child that fails
   * here is found out by the next call that waits. */
  if (!d->dead && d->sock >= 0)
    emx__iso_send(d->sock, EMX__ISO_RELEASE, m->id, 0, 0, NULL, 0, -1);
  free(m);
}

static int iso_invoke(void *dev, void *prep, const emx_tensor *inputs,
                      size_t nin, const emx_tensor *outputs, size_t nout,
                      int64_t *device_ns, emx__errbuf *err) {
  iso_device *d = dev;
  iso_model *m = prep;
  if (d->dead)
    return down(d, err);
  /* The region was sized from this model's desc, which the engine checked
   * every buffer against; the bound check only guards that promise. */
  char *base = d->region.base;
  size_t off = 0;
  for (size_t i = 0; i < nin + nout; i++) {
    const emx_tensor *t = i < nin ? &inputs[i] : &outputs[i - nin];
    if (emx__iso_align(t->size) > d->region.size - off)
      return emx__errf(err, EMX_ESIZE,
                       "%s: tensors exceed the %llu-byte shared region",
                       d->spec, (unsigned long long)d->region.size);
    if (i < nin)
      memcpy(base + off, t->data, t->size);
    off += emx__iso_align(t->size);
  }
  int rc = request(d, EMX__ISO_INVOKE, m->id, 0, -1, "invoke", err);
  emx__iso_hdr hdr;
  if (rc == 0)
    rc = reply(d, EMX__ISO_INVOKE, d->deadline_ms, "invoke", &hdr, err);
  if (rc < 0)
    return rc;
  if (hdr.status < 0)
    return reply_error(d, &hdr, err);
  off = 0;
  for (size_t i = 0; i < nin; i++)
    off += emx__iso_align(inputs[i].size);
  for (size_t i = 0; i < nout; i++) {
    memcpy(outputs[i].data, base + off, outputs[i].size);
    off += emx__iso_align(outputs[i].size);
  }
  *device_ns = (int64_t)hdr.arg;
  return 0;
}

/* iso_probe: the engine asks, after a fault, whether the device is usable
 * again (it has released every model first). A live child asks the real
 * backend (see do_probe in devhost.c): a fault the device itself reported
 * keeps its state there, e.g. a vanished sim refuses return_after probes,
 * exactly as in-process. A child that is gone (crashed, aborted, or killed
 * for a missed deadline) is replaced by a fresh one that opens the device
 * again; the engine's probe backoff paces the restarts. */
static int iso_probe(void *dev, emx__errbuf *err) {
  iso_device *d = dev;
  emx__child_reap_orphans();
  if (d->dead) {
    int rc = start(d, err);
    if (rc < 0) {
      /* start's failures from reply() condemned the device anew; a failed
       * open in the child (say, the device is still busy) did not. */
      d->dead = true;
      return rc;
    }
    d->dead = false;
    emx__log(EMX_LOG_INFO, "%s: device process restarted (pid %d)", d->spec,
             (int)d->pid);
    return 0;
  }
  /* A child that dies or hangs here is condemned like one that does so in
   * an invoke; the next probe restarts it. */
  int rc = request(d, EMX__ISO_PROBE, 0, 0, -1, "probe", err);
  emx__iso_hdr hdr;
  if (rc == 0)
    rc = reply(d, EMX__ISO_PROBE, slow_ms(d), "probe", &hdr, err);
  if (rc < 0)
    return rc;
  if (hdr.status < 0)
    return reply_error(d, &hdr, err);
  return 0;
}

const emx__backend_ops emx__backend_isolate = {
    .kind = "isolate",
    .units = iso_units,
    .open = iso_open,
    .close = iso_close,
    .prepare = iso_prepare,
    .release = iso_release,
    .invoke = iso_invoke,
    .probe = iso_probe,
};
