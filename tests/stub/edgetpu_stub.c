/* edgetpu_stub.c — a stand-in for libedgetpu.so.1 that the tests build.
 *
 * It exports libedgetpu's C ABI. The device list comes from
 * $EMX_STUB_EDGETPU_DEVICES ("usb:PATH,pci:PATH,..."; default one USB
 * device). Like a real Edge TPU, a device can be held by one process at a
 * time: edgetpu_create_delegate takes an exclusive flock on a per-device
 * file in $EMX_STUB_EDGETPU_LOCK_DIR (default /tmp) and returns NULL when
 * another process holds it.
 *
 * The delegate claims one node of every interpreter it is applied to, so
 * that, like the real one, it runs inside every invoke: the first node in
 * execution order whose output is its first input's bytes verbatim
 * (RESHAPE, SQUEEZE or EXPAND_DIMS, with equal type and byte size). Its
 * kernel memcpy()s input 0 to output 0, so outputs stay bit-identical to
 * the same interpreter without the delegate (TFLite's own kernels: the
 * edgetpu backend applies no XNNPACK). Every other node runs on the CPU
 * inside the interpreter. A model without such a node is not claimed at
 * all: the stub never sees its invokes and the faults below never fire for
 * it. (Of the models in .deps/models, the face detection ones have
 * RESHAPEs; the hand landmark ones have no such node and are not claimed.)
 *
 * Faults and a trace, read by edgetpu_create_delegate (an isolated device's
 * edgemux-devhost child inherits the environment):
 *
 *   EMX_STUB_EDGETPU_LIST_ABORT=1  abort() in edgetpu_list_devices
 *   EMX_STUB_EDGETPU_PLUG=PATH   a TPU is plugged in after every listing:
 *                                edgetpu_list_devices lists N more USB
 *                                devices than configured, N read from
 *                                PATH (0 when absent), and writes N+1
 *                                there (locked: counts across processes).
 *   EMX_STUB_EDGETPU_ABORT_AT=N  abort() at the Nth invoke, as libedgetpu
 *                                does on a fatal USB error.
 *   EMX_STUB_EDGETPU_HANG_AT=N   block forever (a pause() loop) at the Nth
 *                                invoke, as libedgetpu can inside Invoke.
 *   EMX_STUB_EDGETPU_INVOKE_LOG=PATH
 *                                append the line "pid P invoke N" to PATH at
 *                                every invoke, before any fault: a count
 *                                that tests can read across processes.
 *   EMX_STUB_EDGETPU_FAULT_ONCE=PATH
 *                                a due fault fires only if it can create
 *                                PATH (O_EXCL): one fault in all, across
 *                                processes; the device processes that
 *                                replace the faulty one run clean.
 *
 * An invoke here is one run of a claimed node. N counts, from 1, those of
 * every interpreter built with one delegate. There is one delegate per
 * device, so when the device is isolated the count is per device process,
 * and the new process that replaces a dead one starts again at 1. The
 * engine's warm-up invoke when it prepares a model counts: with one model
 * on the device, N=1 fails every prepare and N=2 its first request. */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "tensorflow/lite/c/common.h"

enum edgetpu_device_type { EDGETPU_APEX_PCI = 0, EDGETPU_APEX_USB = 1 };
struct edgetpu_device {
  enum edgetpu_device_type type;
  const char *path;
};
struct edgetpu_option {
  const char *name;
  const char *value;
};

#define EXPORT __attribute__((visibility("default")))

EXPORT struct edgetpu_device *edgetpu_list_devices(size_t *num_devices);
EXPORT void edgetpu_free_devices(struct edgetpu_device *dev);
EXPORT TfLiteDelegate *edgetpu_create_delegate(enum edgetpu_device_type type,
                                               const char *name,
                                               const struct edgetpu_option *o,
                                               size_t num_options);
EXPORT void edgetpu_free_delegate(TfLiteDelegate *delegate);
EXPORT void edgetpu_verbosity(int verbosity);
EXPORT const char *edgetpu_version(void);

static const char *device_list(void) {
  const char *env = getenv("EMX_STUB_EDGETPU_DEVICES");
  return env ? env : "usb:/sys/bus/usb/devices/stub-0";
}

/* One allocation holds the array and the strings after it, so
 * edgetpu_free_devices is a single free(), as in the real library. */
/* plugged: EMX_STUB_EDGETPU_PLUG's count before this listing, bumped. */
static int plugged(void) {
  const char *path = getenv("EMX_STUB_EDGETPU_PLUG");
  if (!path)
    return 0;
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return 0;
  flock(fd, LOCK_EX);
  char buf[32] = "";
  ssize_t got = pread(fd, buf, sizeof buf - 1, 0);
  int n = got > 0 ? atoi(buf) : 0;
  int len = snprintf(buf, sizeof buf, "%d\n", n + 1);
  if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, (size_t)len, 0) != len)
    n = 0;
  close(fd); /* drops the lock */
  return n;
}

struct edgetpu_device *edgetpu_list_devices(size_t *num_devices) {
  if (getenv("EMX_STUB_EDGETPU_LIST_ABORT"))
    abort();
  char grown[4096];
  const char *list = device_list();
  int extra = plugged();
  if (extra > 0) {
    size_t used = (size_t)snprintf(grown, sizeof grown, "%s", list);
    for (int i = 0; i < extra && used < sizeof grown; i++)
      used += (size_t)snprintf(grown + used, sizeof grown - used,
                               "%susb:/sys/bus/usb/devices/plugged-%d",
                               used ? "," : "", i);
    list = grown;
  }
  size_t n = 0, len = strlen(list);
  for (const char *p = list; *p; p++)
    n += *p == ',';
  n += len > 0;
  *num_devices = 0;
  if (n == 0)
    return NULL;
  struct edgetpu_device *devs = calloc(1, n * sizeof *devs + len + 1);
  if (!devs)
    return NULL;
  char *text = (char *)(devs + n);
  memcpy(text, list, len + 1);
  size_t k = 0;
  for (char *item = strtok(text, ","); item && k < n;
       item = strtok(NULL, ",")) {
    char *colon = strchr(item, ':');
    if (!colon)
      continue;
    *colon = '\0';
    devs[k].type =
        strcmp(item, "pci") == 0 ? EDGETPU_APEX_PCI : EDGETPU_APEX_USB;
    devs[k].path = colon + 1;
    k++;
  }
  *num_devices = k;
  return devs;
}

void edgetpu_free_devices(struct edgetpu_device *dev) {
  free(dev);
}

/* ---- the delegate --------------------------------------------------------- */

/* Builtin operator codes from tensorflow/lite/builtin_ops.h, which the C
 * API distribution does not ship. */
enum {
  OP_RESHAPE = 22,
  OP_SQUEEZE = 43,
  OP_DELEGATE = 51,
  OP_EXPAND_DIMS = 70,
};

typedef struct stub_delegate {
  TfLiteDelegate base; /* first: the pointer handed to TFLite */
  int lock_fd;         /* the exclusive hold on the device */
  long abort_at;       /* EMX_STUB_EDGETPU_ABORT_AT; 0: never */
  long hang_at;        /* EMX_STUB_EDGETPU_HANG_AT; 0: never */
  char log[512];       /* EMX_STUB_EDGETPU_INVOKE_LOG; "": none */
  char once[512];      /* EMX_STUB_EDGETPU_FAULT_ONCE; "": every time */
  atomic_long invokes; /* invokes of claimed nodes so far */
} stub_delegate;

/* The tensors of the node being claimed, handed from prepare to
 * kernel_init, which TFLite calls inside prepare, on the same thread. */
static _Thread_local int claim_in, claim_out;

/* stub_kernel is one claimed node of one interpreter. */
typedef struct stub_kernel {
  stub_delegate *owner; /* counts the invokes and holds the faults */
  int in;               /* tensor copied from */
  int out;              /* tensor copied to */
} stub_kernel;

static long env_long(const char *name) {
  const char *v = getenv(name);
  return v && *v ? strtol(v, NULL, 10) : 0;
}

static void log_invoke(const stub_delegate *d, long n) {
  if (!d->log[0])
    return;
  int fd = open(d->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0)
    return;
  char line[64];
  int len =
      snprintf(line, sizeof line, "pid %d invoke %ld\n", (int)getpid(), n);
  /* One short write with O_APPEND: lines from many processes never mix. */
  if (write(fd, line, (size_t)len) < 0)
    fprintf(stderr, "edgetpu stub: cannot write %s\n", d->log);
  close(fd);
}

/* may_fault: a fault is due at this invoke; may it fire? Unless the
 * faults are once only, yes; if they are, only for the first to claim the
 * marker file, in this process or any other. */
static int may_fault(const stub_delegate *d) {
  if (!d->once[0])
    return 1;
  int fd = open(d->once, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0)
    return 0; /* EEXIST: the fault happened already */
  close(fd);
  return 1;
}

/* kernel_init runs inside ReplaceNodeSubsetsWithDelegateKernels, called by
 * prepare below, which left the claimed node's tensors in claim_in and
 * claim_out. For a delegate kernel, `buffer` is its TfLiteDelegateParams. */
static void *kernel_init(TfLiteContext *context, const char *buffer,
                         size_t length) {
  const TfLiteDelegateParams *params = (const TfLiteDelegateParams *)buffer;
  stub_delegate *d = (stub_delegate *)params->delegate;
  stub_kernel *k = calloc(1, sizeof *k);
  if (!k)
    return NULL;
  k->owner = d;
  k->in = claim_in;
  k->out = claim_out;
  return k;
}

static void kernel_free(TfLiteContext *context, void *buffer) {
  free(buffer);
}

static TfLiteStatus kernel_prepare(TfLiteContext *context, TfLiteNode *node) {
  const stub_kernel *k = node->user_data;
  if (!k) {
    context->ReportError(context, "edgetpu stub: out of memory");
    return kTfLiteError;
  }
  const TfLiteTensor *in = &context->tensors[k->in];
  const TfLiteTensor *out = &context->tensors[k->out];
  if (in->bytes != out->bytes || in->type != out->type) {
    context->ReportError(context,
                         "edgetpu stub: the claimed node would copy %zu bytes "
                         "into %zu",
                         in->bytes, out->bytes);
    return kTfLiteError;
  }
  return kTfLiteOk;
}

/* kernel_invoke counts, faults when told to, then does the node's work.
 * Only context->tensors is used here: TfLiteContext's graph functions
 * (GetNodeAndRegistration, ...) are valid only inside the delegate's
 * Prepare. */
static TfLiteStatus kernel_invoke(TfLiteContext *context, TfLiteNode *node) {
  const stub_kernel *k = node->user_data;
  stub_delegate *d = k->owner;
  long n = atomic_fetch_add(&d->invokes, 1) + 1;
  log_invoke(d, n);
  if (n == d->abort_at && may_fault(d)) {
    fprintf(stderr, "edgetpu stub: abort at invoke %ld\n", n);
    abort();
  }
  if (n == d->hang_at && may_fault(d)) {
    fprintf(stderr, "edgetpu stub: hanging at invoke %ld\n", n);
    for (;;)
      pause();
  }
  const TfLiteTensor *in = &context->tensors[k->in];
  TfLiteTensor *out = &context->tensors[k->out];
  memcpy(out->data.raw, in->data.raw, out->bytes);
  return kTfLiteOk;
}

/* copies_input reports whether a node's output is its first input's bytes
 * verbatim, so that running it as a memcpy cannot change any result. */
static int copies_input(const TfLiteContext *context, const TfLiteNode *node,
                        const TfLiteRegistration *reg) {
  int op = reg->builtin_code;
  if (op != OP_RESHAPE && op != OP_SQUEEZE && op != OP_EXPAND_DIMS)
    return 0;
  if (node->inputs->size < 1 || node->outputs->size != 1)
    return 0;
  int in = node->inputs->data[0], out = node->outputs->data[0];
  if (in < 0 || out < 0)
    return 0;
  const TfLiteTensor *ti = &context->tensors[in];
  const TfLiteTensor *to = &context->tensors[out];
  return ti->type == to->type && ti->bytes == to->bytes && ti->bytes > 0 &&
         to->allocation_type != kTfLiteDynamic;
}

/* prepare claims the first node in execution order that copies_input.
 * ReplaceNodeSubsetsWithDelegateKernels adds a node, which may move the
 * others: only tensor indices are kept across it. */
static TfLiteStatus prepare(TfLiteContext *context, TfLiteDelegate *base) {
  TfLiteIntArray *plan;
  TfLiteStatus st = context->GetExecutionPlan(context, &plan);
  if (st != kTfLiteOk)
    return st;
  int chosen = -1;
  for (int i = 0; i < plan->size && chosen < 0; i++) {
    TfLiteNode *node;
    TfLiteRegistration *reg;
    if (context->GetNodeAndRegistration(context, plan->data[i], &node, &reg) !=
        kTfLiteOk)
      continue;
    if (copies_input(context, node, reg)) {
      chosen = plan->data[i];
      claim_in = node->inputs->data[0];
      claim_out = node->outputs->data[0];
    }
  }
  if (chosen < 0)
    return kTfLiteOk; /* nothing to claim: all of it runs on the CPU */
  TfLiteRegistration kernel = {
      .init = kernel_init,
      .free = kernel_free,
      .prepare = kernel_prepare,
      .invoke = kernel_invoke,
      .builtin_code = OP_DELEGATE,
      .custom_name = "EdgeTpuStub",
      .version = 1,
  };
  TfLiteIntArray *nodes = TfLiteIntArrayCreate(1);
  if (!nodes)
    return kTfLiteError;
  nodes->data[0] = chosen;
  st = context->ReplaceNodeSubsetsWithDelegateKernels(context, kernel, nodes,
                                                      base);
  TfLiteIntArrayFree(nodes);
  return st;
}

TfLiteDelegate *edgetpu_create_delegate(enum edgetpu_device_type type,
                                        const char *name,
                                        const struct edgetpu_option *o,
                                        size_t num_options) {
  size_t n = 0;
  struct edgetpu_device *devs = edgetpu_list_devices(&n);
  int known = 0;
  for (size_t i = 0; i < n; i++)
    known |= devs[i].type == type && name && strcmp(devs[i].path, name) == 0;
  free(devs);
  if (!known)
    return NULL;

  const char *dir = getenv("EMX_STUB_EDGETPU_LOCK_DIR");
  char path[512], safe[256];
  size_t k = 0;
  for (const char *p = name; *p && k < sizeof safe - 1; p++)
    safe[k++] = (*p == '/') ? '_' : *p;
  safe[k] = '\0';
  snprintf(path, sizeof path, "%s/edgetpu-stub-%s.lock", dir ? dir : "/tmp",
           safe);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0)
    return NULL;
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    close(fd); /* held by another process: NULL, as the real one does */
    return NULL;
  }
  stub_delegate *d = calloc(1, sizeof *d);
  if (!d) {
    close(fd);
    return NULL;
  }
  d->base = TfLiteDelegateCreate();
  d->base.Prepare = prepare;
  d->lock_fd = fd;
  d->abort_at = env_long("EMX_STUB_EDGETPU_ABORT_AT");
  d->hang_at = env_long("EMX_STUB_EDGETPU_HANG_AT");
  const char *log = getenv("EMX_STUB_EDGETPU_INVOKE_LOG");
  snprintf(d->log, sizeof d->log, "%s", log ? log : "");
  const char *once = getenv("EMX_STUB_EDGETPU_FAULT_ONCE");
  snprintf(d->once, sizeof d->once, "%s", once ? once : "");
  atomic_init(&d->invokes, 0);
  return &d->base;
}

void edgetpu_free_delegate(TfLiteDelegate *delegate) {
  stub_delegate *d = (stub_delegate *)delegate;
  if (!d)
    return;
  close(d->lock_fd);
  free(d);
}

void edgetpu_verbosity(int verbosity) {}

const char *edgetpu_version(void) {
  return "edgemux test stub (libedgetpu C ABI)";
}
