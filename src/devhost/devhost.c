/* devhost.c — edgemux-devhost: runs one device for an isolated proxy.
 *
 *   edgemux-devhost --parent=PID --unit=N [--pdeathsig] SPEC
 *
 * libedgemux starts it (src/backend/isolate.c) with a SOCK_SEQPACKET socket
 * on fd 3 and serves the messages of src/backend/isolate_msg.h: it opens
 * unit N of SPEC with the real backend, prepares models, runs invokes on
 * tensors in a shared memfd region, answers PROBE after a device fault, and
 * exits on CLOSE. It is not meant to be run by hand.
 *
 * It must not outlive the engine process, even while stuck inside a driver
 * call: with --pdeathsig (the parent asks when it spawned us from its main
 * thread: PR_SET_PDEATHSIG follows the spawning *thread*) the kernel kills
 * it with the parent; and a watchdog thread exits when the socket hangs up
 * or the parent pid changes. */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/heap.h"
#include "backend/backend.h"
#include "backend/isolate_msg.h"
#include "backend/tflite.h"
#include "core/arena.h"

/* Regions beyond this are refused: no model's tensors come near it. */
#define REGION_MAX (1ULL << 36)
/* How long the watchdog lets the main thread close the device cleanly after
 * the parent went away, before it exits anyway. */
#define HANGUP_GRACE_S 2

typedef struct host_model {
  uint32_t id; /* the proxy's handle */
  void *prep;  /* the real backend's */
  void *map;   /* the model bytes (read-only mapping) */
  size_t size;
  emx__model_desc desc; /* interface: tensor sizes and offsets */
  emx_tensor *tensors;  /* inputs then outputs, pointed into the region */
  size_t need;          /* region bytes this model uses */
  struct host_model *next;
} host_model;

typedef struct host {
  const emx__backend_ops *ops; /* the real backend */
  emx__devspec spec;           /* its spec, isolation keys stripped */
  int unit;                    /* which unit of the spec */
  void *dev;                   /* its device; NULL after a failed re-open */
  emx__arena region;           /* tensors, shared with the parent */
  host_model *models;          /* prepared */
  unsigned char *buf;          /* EMX__ISO_MSG_MAX bytes */
} host;

static pid_t parent_pid;

static void *watchdog(void *arg) {
  (void)arg;
  for (;;) {
    /* Events 0: poll still reports POLLHUP once the parent's end closes,
     * without taking the main thread's packets. */
    struct pollfd p = {.fd = EMX__ISO_FD, .events = 0};
    int n = poll(&p, 1, 250);
    if (getppid() != parent_pid)
      _exit(0);
    if (n > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL))) {
      sleep(HANGUP_GRACE_S);
      _exit(0);
    }
  }
  return NULL;
}

static void send_reply(uint32_t op, uint32_t id, int status, uint64_t arg,
                       const emx__errbuf *err) {
  size_t len = status < 0 && err ? strlen(err->msg) : 0;
  /* A failed send means the parent is gone; the loop sees EOF next. */
  emx__iso_send(EMX__ISO_FD, op, id, status, arg, err ? err->msg : NULL, len,
                -1);
}

static host_model *find_model(host *h, uint32_t id, host_model ***link) {
  for (host_model **l = &h->models; *l; l = &(*l)->next) {
    if ((*l)->id == id) {
      if (link)
        *link = l;
      return *l;
    }
  }
  return NULL;
}

static void free_model(host *h, host_model *m) {
  if (m->prep)
    h->ops->release(h->dev, m->prep);
  emx__model_desc_free(&m->desc);
  if (m->map)
    munmap(m->map, m->size);
  free(m->tensors);
  free(m);
}

static void do_prepare(host *h, const emx__iso_hdr *hdr, int fd) {
  emx__errbuf err = {{0}};
  int rc;
  host_model *m = calloc(1, sizeof *m);
  if (!m) {
    rc = emx__errf(&err, EMX_ENOMEM, "device process: out of memory");
    goto fail;
  }
  m->id = hdr->id;
  m->size = (size_t)hdr->arg;
  if (!h->dev) {
    /* The proxy prepares only after a probe succeeded; guard anyway. */
    rc = emx__errf(&err, EMX_EDEVICE,
                   "device process: the device is closed (its re-open "
                   "failed)");
    goto fail;
  }
  if (fd < 0 || m->size == 0) {
    rc = emx__errf(&err, EMX_EPROTO,
                   "device process: prepare without a "
                   "model");
    goto fail;
  }
  m->map = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (m->map == MAP_FAILED) {
    m->map = NULL;
    rc = emx__errf(&err, EMX_ENOMEM,
                   "device process: mapping the %zu-byte "
                   "model: %s",
                   m->size, strerror(errno));
    goto fail;
  }
  close(fd);
  fd = -1;
  rc = h->ops->prepare(h->dev, m->map, m->size, &m->prep, &m->desc, &err);
  if (rc < 0) {
    m->prep = NULL;
    goto fail;
  }
  size_t n = m->desc.input_count + m->desc.output_count;
  m->tensors = calloc(n ? n : 1, sizeof *m->tensors);
  if (!m->tensors) {
    rc = emx__errf(&err, EMX_ENOMEM, "device process: out of memory");
    goto fail;
  }
  for (size_t i = 0; i < n; i++) {
    const emx_tensor_info *t = i < m->desc.input_count
                                   ? &m->desc.inputs[i]
                                   : &m->desc.outputs[i - m->desc.input_count];
    m->tensors[i].dtype = t->dtype;
    m->tensors[i].size = t->bytes;
  }
  m->need = emx__iso_region_need(&m->desc);
  size_t len = emx__iso_desc_encode(&m->desc, h->buf,
                                    EMX__ISO_MSG_MAX - sizeof(emx__iso_hdr));
  if (len == 0) {
    rc = emx__errf(&err, EMX_EUNSUPPORTED,
                   "the model's interface (%zu tensors) is too large to "
                   "pass to the device process",
                   n);
    goto fail;
  }
  m->next = h->models;
  h->models = m;
  emx__iso_send(EMX__ISO_FD, EMX__ISO_PREPARE, m->id, 0, 0, h->buf, len, -1);
  return;
fail:
  if (fd >= 0)
    close(fd);
  if (m)
    free_model(h, m);
  send_reply(EMX__ISO_PREPARE, hdr->id, rc, 0, &err);
}

static void do_release(host *h, const emx__iso_hdr *hdr) {
  host_model **link;
  host_model *m = find_model(h, hdr->id, &link);
  if (!m)
    return;
  *link = m->next;
  free_model(h, m);
}

static void do_region(host *h, const emx__iso_hdr *hdr, int fd) {
  emx__errbuf err = {{0}};
  emx__arena fresh;
  int rc = fd < 0 ? emx__errf(&err, EMX_EPROTO,
                              "device process: region without a memfd")
                  : emx__arena_accept(&fresh, fd, hdr->arg, REGION_MAX, &err);
  if (rc == 0) {
    emx__arena_close(&h->region);
    h->region = fresh;
  }
  send_reply(EMX__ISO_REGION, 0, rc, 0, &err);
}

static void do_invoke(host *h, const emx__iso_hdr *hdr) {
  emx__errbuf err = {{0}};
  int64_t device_ns = 0;
  int rc;
  host_model *m = find_model(h, hdr->id, NULL);
  if (!m) {
    rc = emx__errf(&err, EMX_EPROTO, "device process: no model %u",
                   (unsigned)hdr->id);
  } else if (m->need > h->region.size) {
    rc = emx__errf(&err, EMX_EPROTO,
                   "device process: the model needs %zu region bytes, the "
                   "region has %llu",
                   m->need, (unsigned long long)h->region.size);
  } else {
    size_t nin = m->desc.input_count, nout = m->desc.output_count;
    char *base = h->region.base;
    size_t off = 0;
    for (size_t i = 0; i < nin + nout; i++) {
      m->tensors[i].data = base + off;
      off += emx__iso_align(m->tensors[i].size);
    }
    rc = h->ops->invoke(h->dev, m->prep, m->tensors, nin, m->tensors + nin,
                        nout, &device_ns, &err);
  }
  send_reply(EMX__ISO_INVOKE, hdr->id, rc, (uint64_t)device_ns, &err);
}

static void free_models(host *h) {
  while (h->models) {
    host_model *m = h->models;
    h->models = m->next;
    free_model(h, m);
  }
}

/* do_probe answers the engine's question after a device fault: is the
 * device usable again? The engine released every model first (those
 * RELEASEs came before this packet, in order). A backend with a probe
 * answers itself, and keeps its state: a vanished sim keeps counting the
 * attempts it refuses. A backend without one is closed and opened again,
 * which is what the engine does to it in-process: the fault may have been
 * in its handle, so that this process is alive says nothing about the
 * device. A failed re-open leaves the device closed; the next probe tries
 * again. */
static void do_probe(host *h) {
  emx__errbuf err = {{0}};
  int rc;
  if (h->dev && h->ops->probe) {
    rc = h->ops->probe(h->dev, &err);
  } else {
    free_models(h); /* none, unless the proxy broke its promise */
    if (h->dev)
      h->ops->close(h->dev);
    h->dev = NULL;
    rc = h->ops->open(&h->spec, h->unit, &h->dev, &err);
    if (rc < 0)
      h->dev = NULL;
  }
  send_reply(EMX__ISO_PROBE, 0, rc, 0, &err);
}

/* shut_down closes the device (a TPU handle, a lock file) and exits. */
static void shut_down(host *h) {
  free_models(h);
  if (h->dev)
    h->ops->close(h->dev);
  emx__arena_close(&h->region);
  /* _exit: skip C++ static destructors of the runtimes, which have been
   * seen to stall; everything that matters is closed above. */
  _exit(0);
}

static void serve(host *h) {
  for (;;) {
    emx__iso_hdr hdr;
    int fd;
    ssize_t n = emx__iso_recv(EMX__ISO_FD, h->buf, &hdr, &fd);
    if (n <= 0) /* EOF: the parent closed; an error: it is gone */
      break;
    switch (hdr.op) {
    case EMX__ISO_PREPARE:
      do_prepare(h, &hdr, fd);
      fd = -1;
      break;
    case EMX__ISO_RELEASE:
      do_release(h, &hdr);
      break;
    case EMX__ISO_REGION:
      do_region(h, &hdr, fd);
      fd = -1;
      break;
    case EMX__ISO_INVOKE:
      do_invoke(h, &hdr);
      break;
    case EMX__ISO_PROBE:
      do_probe(h);
      break;
    case EMX__ISO_CLOSE:
      shut_down(h);
      break;
    default:
      break; /* unknown: ignore, the parent times out if it waits */
    }
    if (fd >= 0)
      close(fd);
  }
  shut_down(h);
}

static int usage(void) {
  fprintf(stderr,
          "edgemux-devhost --parent=PID --unit=N [--pdeathsig] SPEC\n"
          "edgemux-devhost --count SPEC\n"
          "edgemux-devhost --try-batch N THREADS (model on fd 3)\n"
          "edgemux-devhost --trial (untrusted model on fd 3)\n"
          "runs one device for libedgemux's device isolation (isolate=1); "
          "libedgemux starts it with a socket on fd 3\n");
  return 2;
}

/* count_units: `--count SPEC` prints "STATUS COUNT MESSAGE" for the
 * parent's units() (see count_in_child in backend/isolate.c). */
/* real_backend parses a device spec as the parent passed it and finds the
 * backend that runs it here (the isolation keys were the parent's). */
static int real_backend(const char *text, emx__devspec *spec,
                        const emx__backend_ops **ops, emx__errbuf *err) {
  int isolate;
  long deadline_ms = 0;
  int rc = emx__devspec_parse(spec, text, err);
  if (rc == 0)
    rc = emx__iso_strip(spec, &isolate, &deadline_ms, err);
  if (rc == 0 && !(*ops = emx__backend_find(spec->kind)))
    rc = emx__errf(err, EMX_EINVAL, "device spec \"%s\": unknown kind",
                   spec->text);
  return rc;
}

static int count_units(const char *spec_text) {
  emx__errbuf err = {{0}};
  emx__devspec spec;
  int count = 0;
  const emx__backend_ops *ops = NULL;
  int rc = real_backend(spec_text, &spec, &ops, &err);
  if (rc == 0)
    rc = ops->units(&spec, &count, &err);
  printf("%d %d %s\n", rc, count, rc < 0 ? err.msg : "");
  return fflush(stdout) == 0 ? 0 : 1;
}

/* try_batch: `--try-batch N THREADS`, the model in a memfd on fd 3: build
 * the model's batch-N interpreter and say by the exit status whether that
 * worked (see the trial in backend/tflite_batch.c). A crash is the answer
 * the parent is there for. */
static int try_batch(const char *n_text, const char *threads_text) {
  struct stat st;
  int n = atoi(n_text), threads = atoi(threads_text);
  if (n < 2 || threads < 1 || fstat(EMX__ISO_FD, &st) < 0 || st.st_size <= 0)
    return usage();
  void *data =
      mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, EMX__ISO_FD, 0);
  if (data == MAP_FAILED)
    return usage();
  emx__tfl_model m;
  emx__model_desc desc;
  emx__errbuf err = {{0}};
  if (emx__tfl_prepare_xnnpack(&m, data, (size_t)st.st_size, threads, &desc,
                               &err) < 0)
    return EMX__TRIAL_REFUSED;
  int rc = emx__tfl_batch_check(&m, n, &err);
  emx__model_desc_free(&desc);
  emx__tfl_release(&m);
  return rc == 0 ? 0 : EMX__TRIAL_REFUSED;
}

/* trial_model: `--trial`, a client's model bytes in a memfd on fd 3: parse
 * them, build the interpreter the cpu backend builds (XNNPACK, 1 thread),
 * allocate, and invoke once on zeros — everything the daemon will do with
 * them in its own process. Exit 0: it survived; EMX__TRIAL_REFUSED with
 * TFLite's reason on stdout: refused cleanly; anything else (a signal, a
 * sanitizer's exit) is the crash the daemon is spared (edgemuxd's trial.c). */
/* heap_bytes: what malloc has handed out (core/heap.h; 0 in a sanitizer
 * build, where only the inputs and outputs are bounded). */
static uint64_t heap_bytes(void) {
  return (uint64_t)emx__heap_bytes();
}

static int trial_model(uint64_t max_bytes) {
  uint64_t base = heap_bytes();
  struct stat st;
  if (fstat(EMX__ISO_FD, &st) < 0 || st.st_size <= 0)
    return usage();
  void *data =
      mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, EMX__ISO_FD, 0);
  if (data == MAP_FAILED)
    return usage();
  emx__tfl_model m;
  emx__model_desc desc;
  emx__errbuf err = {{0}};
  /* A trial vouches only for what behaves the same in the daemon: a graph
   * TFLite mishandles into memory corruption is refused by rule, and
   * fresh heap memory is filled (glibc's M_PERTURB: allocations get ~0xa5,
   * freed blocks 0xa5) so that a read of uninitialised memory, which in a
   * new process would see zeros, sees what a long-running daemon's heap
   * holds: garbage. (A sanitizer's allocator ignores it.) */
  if (emx__tfl_graph_check(data, (size_t)st.st_size, &err) < 0) {
    printf("%s", err.msg);
    return EMX__TRIAL_REFUSED;
  }
  mallopt(M_PERTURB, 0xa5);
  if (emx__tfl_prepare_xnnpack(&m, data, (size_t)st.st_size, 1, &desc, &err) <
      0) {
    /* A model compiled for the Edge TPU: TFLite parsed and verified it,
     * and refused only its edgetpu-custom-op node, which no CPU kernel
     * runs (libedgetpu's delegate claims it). That is as far as a CPU
     * trial can go; the engine prepares it on the Edge TPU devices its
     * placement names, and says so where there are none. */
    if (strstr(err.msg, "edgetpu-custom-op"))
      return 0;
    printf("%s", err.msg);
    return EMX__TRIAL_REFUSED;
  }
  /* Measured before a byte of it is touched: a 300-byte model may declare
   * tensors of gigabytes. The daemon would take the same in its own
   * process, plus the request buffers (input and output bytes). */
  uint64_t used = heap_bytes() - base;
  uint64_t io = 0;
  for (size_t i = 0; i < desc.input_count; i++)
    io += desc.inputs[i].bytes;
  for (size_t i = 0; i < desc.output_count; i++)
    io += desc.outputs[i].bytes;
  if (max_bytes && (used > max_bytes || io > max_bytes - used)) {
    printf("%llu MiB (interpreter and tensor arena %llu MiB, inputs and "
           "outputs %llu MiB)",
           (unsigned long long)((used + io) >> 20),
           (unsigned long long)(used >> 20), (unsigned long long)(io >> 20));
    return EMX__TRIAL_TOO_BIG;
  }
  size_t n = desc.input_count + desc.output_count;
  emx_tensor *t = calloc(n ? n : 1, sizeof *t);
  int rc = t ? 0 : EMX_ENOMEM;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const emx_tensor_info *ti = i < desc.input_count
                                    ? &desc.inputs[i]
                                    : &desc.outputs[i - desc.input_count];
    t[i].dtype = ti->dtype;
    t[i].size = ti->bytes;
    t[i].data = calloc(1, ti->bytes ? ti->bytes : 1);
    if (!t[i].data)
      rc = emx__errf(&err, EMX_ENOMEM,
                     "tensor \"%s\" of %zu bytes does not fit in memory",
                     ti->name, ti->bytes);
  }
  int64_t device_ns = 0;
  if (rc == 0)
    rc = emx__tfl_invoke(&m, t, desc.input_count, t + desc.input_count,
                         desc.output_count, &device_ns, &err);
  if (rc < 0)
    printf("%s", err.msg);
  for (size_t i = 0; t && i < n; i++)
    free(t[i].data);
  free(t);
  emx__model_desc_free(&desc);
  emx__tfl_release(&m);
  return rc == 0 ? 0 : EMX__TRIAL_REFUSED;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--count") == 0)
    return count_units(argv[2]);
  if (argc == 4 && strcmp(argv[1], "--try-batch") == 0)
    return try_batch(argv[2], argv[3]);
  if (argc == 2 && strcmp(argv[1], "--trial") == 0)
    return trial_model(0);
  if (argc == 3 && strcmp(argv[1], "--trial") == 0) {
    char *end;
    unsigned long long max = strtoull(argv[2], &end, 10);
    if (*end || !argv[2][0])
      return usage();
    return trial_model(max);
  }
  long unit = -1;
  int pdeathsig = 0;
  const char *spec_text = NULL;
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--parent=", 9) == 0)
      parent_pid = (pid_t)strtol(argv[i] + 9, NULL, 10);
    else if (strncmp(argv[i], "--unit=", 7) == 0)
      unit = strtol(argv[i] + 7, NULL, 10);
    else if (strcmp(argv[i], "--pdeathsig") == 0)
      pdeathsig = 1;
    else if (!spec_text && argv[i][0] != '-')
      spec_text = argv[i];
    else
      return usage();
  }
  int type = 0;
  socklen_t tlen = sizeof type;
  if (parent_pid <= 0 || unit < 0 || unit > INT_MAX || !spec_text ||
      getsockopt(EMX__ISO_FD, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 ||
      type != SOCK_SEQPACKET)
    return usage();
  if (pdeathsig)
    prctl(PR_SET_PDEATHSIG, SIGKILL);
  /* The parent may have died before prctl took effect. */
  if (getppid() != parent_pid)
    return 1;
  /* Descriptors the application left inheritable are not ours to hold (a
   * device lock among them would stay locked while we live). */
  close_range(EMX__ISO_FD + 1, ~0U, 0);
  signal(SIGPIPE, SIG_IGN);

  host h = {.region = {.fd = -1}};
  h.buf = malloc(EMX__ISO_MSG_MAX);
  pthread_t dog;
  if (!h.buf || pthread_create(&dog, NULL, watchdog, NULL) != 0)
    return 1;
  pthread_detach(dog);

  emx__errbuf err = {{0}};
  h.unit = (int)unit;
  int rc = real_backend(spec_text, &h.spec, &h.ops, &err);
  if (rc == 0)
    rc = h.ops->open(&h.spec, h.unit, &h.dev, &err);
  if (rc < 0)
    h.dev = NULL;
  send_reply(EMX__ISO_HELLO, 0, rc, 0, &err);
  if (rc < 0)
    shut_down(&h);
  serve(&h);
  return 0;
}
