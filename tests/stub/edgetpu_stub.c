/* edgetpu_stub.c — a stand-in for libedgetpu.so.1 that the tests build.
 *
 * It exports libedgetpu's C ABI. The device list comes from
 * $EMX_STUB_EDGETPU_DEVICES ("usb:PATH,pci:PATH,..."; default one USB
 * device). Like a real Edge TPU, a device can be held by one process at a
 * time: edgetpu_create_delegate takes an exclusive flock on a per-device
 * file in $EMX_STUB_EDGETPU_LOCK_DIR (default /tmp) and returns NULL when
 * another process holds it.
 *
 * The delegate claims exactly the nodes a real Edge TPU's driver claims:
 * the CUSTOM op "edgetpu-custom-op" that edgetpu_compiler puts in place of
 * the part of the graph it maps to the TPU. Its custom options (the TPU
 * executable, for the real one) are not read. Every other node runs on the
 * CPU inside the interpreter; a model without the op is not claimed at all,
 * so the stub never sees its invokes and the faults below never fire for it
 * (none of the models in .deps/models has it; scripts/gen-fixtures writes
 * quant_uint8_edgetpu.tflite, which is that op alone).
 *
 * What a claimed node computes, so that a test can check it independently
 * (tests/support.c, stub_edgetpu_expected): let x be the bytes of the
 * node's inputs, concatenated in order (n bytes), and s their sum modulo
 * 256. Output k (counting from 0) gets, at byte i,
 *
 *     out_k[i] = (x[i mod n] + s + k + i) mod 256   (x taken as 0 if n = 0)
 *
 * so every output byte depends on every input byte and on its position.
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
  OP_CUSTOM = 32,
  OP_DELEGATE = 51,
};

/* The custom op name edgetpu_compiler writes and libedgetpu claims. */
#define EDGETPU_OP "edgetpu-custom-op"

typedef struct stub_delegate {
  TfLiteDelegate base; /* first: the pointer handed to TFLite */
  int lock_fd;         /* the exclusive hold on the device */
  long abort_at;       /* EMX_STUB_EDGETPU_ABORT_AT; 0: never */
  long hang_at;        /* EMX_STUB_EDGETPU_HANG_AT; 0: never */
  char log[512];       /* EMX_STUB_EDGETPU_INVOKE_LOG; "": none */
  char once[512];      /* EMX_STUB_EDGETPU_FAULT_ONCE; "": every time */
  atomic_long invokes; /* invokes of claimed nodes so far */
} stub_delegate;

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

/* kernel_init runs once per claimed node. For a delegate kernel, `buffer`
 * is its TfLiteDelegateParams; the kernel keeps only the delegate, which
 * counts the invokes and holds the faults. The node's inputs and outputs
 * are the claimed op's, passed again to prepare and invoke. */
static void *kernel_init(TfLiteContext *context, const char *buffer,
                         size_t length) {
  const TfLiteDelegateParams *params = (const TfLiteDelegateParams *)buffer;
  return params->delegate;
}

static TfLiteStatus kernel_prepare(TfLiteContext *context, TfLiteNode *node) {
  for (int i = 0; i < node->outputs->size; i++) {
    const TfLiteTensor *t = &context->tensors[node->outputs->data[i]];
    if (t->allocation_type == kTfLiteDynamic) {
      context->ReportError(context,
                           "edgetpu stub: output %d of the %s node "
                           "has no static shape",
                           i, EDGETPU_OP);
      return kTfLiteError;
    }
  }
  return kTfLiteOk;
}

/* compute writes the documented function of the inputs (see the top of
 * this file) into every output. */
static void compute(TfLiteContext *context, const TfLiteNode *node) {
  size_t n = 0;
  unsigned sum = 0;
  for (int j = 0; j < node->inputs->size; j++) {
    const TfLiteTensor *t = &context->tensors[node->inputs->data[j]];
    const unsigned char *p = (const unsigned char *)t->data.raw;
    for (size_t b = 0; b < t->bytes; b++)
      sum += p[b];
    n += t->bytes;
  }
  for (int k = 0; k < node->outputs->size; k++) {
    TfLiteTensor *t = &context->tensors[node->outputs->data[k]];
    unsigned char *out = (unsigned char *)t->data.raw;
    /* x[i mod n]: walk the inputs in order, wrapping at the end. */
    int j = 0;
    size_t at = 0;
    for (size_t i = 0; i < t->bytes; i++) {
      unsigned char x = 0;
      if (n > 0) {
        const TfLiteTensor *in = &context->tensors[node->inputs->data[j]];
        while (at >= in->bytes) {
          at = 0;
          j = (j + 1) % node->inputs->size;
          in = &context->tensors[node->inputs->data[j]];
        }
        x = ((const unsigned char *)in->data.raw)[at++];
      }
      out[i] = (unsigned char)(x + sum + (unsigned)k + i);
    }
  }
}

/* kernel_invoke counts, faults when told to, then does the node's work.
 * Only context->tensors is used here: TfLiteContext's graph functions
 * (GetNodeAndRegistration, ...) are valid only inside the delegate's
 * Prepare. */
static TfLiteStatus kernel_invoke(TfLiteContext *context, TfLiteNode *node) {
  stub_delegate *d = node->user_data;
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
  compute(context, node);
  return kTfLiteOk;
}

static int is_edgetpu_op(const TfLiteRegistration *reg) {
  return reg->builtin_code == OP_CUSTOM && reg->custom_name &&
         strcmp(reg->custom_name, EDGETPU_OP) == 0;
}

/* prepare claims every edgetpu-custom-op node. TFLite makes one delegate
 * kernel of each connected group of claimed nodes; a compiled model has
 * one such node per TPU segment, never two in a row, so a kernel is one
 * node and its inputs and outputs are that node's. */
static TfLiteStatus prepare(TfLiteContext *context, TfLiteDelegate *base) {
  TfLiteIntArray *plan;
  TfLiteStatus st = context->GetExecutionPlan(context, &plan);
  if (st != kTfLiteOk)
    return st;
  TfLiteIntArray *claimed = TfLiteIntArrayCreate(plan->size);
  if (!claimed)
    return kTfLiteError;
  claimed->size = 0;
  for (int i = 0; i < plan->size; i++) {
    TfLiteNode *node;
    TfLiteRegistration *reg;
    if (context->GetNodeAndRegistration(context, plan->data[i], &node, &reg) ==
            kTfLiteOk &&
        is_edgetpu_op(reg))
      claimed->data[claimed->size++] = plan->data[i];
  }
  TfLiteRegistration kernel = {
      .init = kernel_init,
      .prepare = kernel_prepare,
      .invoke = kernel_invoke,
      .builtin_code = OP_DELEGATE,
      .custom_name = "EdgeTpuStub",
      .version = 1,
  };
  if (claimed->size > 0) /* else all of it runs on the CPU */
    st = context->ReplaceNodeSubsetsWithDelegateKernels(context, kernel,
                                                        claimed, base);
  TfLiteIntArrayFree(claimed);
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
  /* Without this flag TFLite prepares every node before handing the graph
   * over, to look for dynamic tensors, and the edgetpu-custom-op node,
   * which has no CPU kernel, fails that ("unresolved custom op") before
   * the delegate can claim it. The Flex delegate sets it for the same
   * reason. */
  d->base.flags = kTfLiteDelegateFlagsAllowDynamicTensors;
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
