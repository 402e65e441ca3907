/* edgetpu_stub.c — a stand-in for libedgetpu.so.1 that the tests build.
 *
 * It exports libedgetpu's C ABI. The device list comes from
 * $EMX_STUB_EDGETPU_DEVICES ("usb:PATH,pci:PATH,..."; default one USB
 * device). Like a real Edge TPU, a device can be held by one process at a
 * time: edgetpu_create_delegate takes an exclusive flock on a per-device
 * file in $EMX_STUB_EDGETPU_LOCK_DIR (default /tmp) and returns NULL when
 * another process holds it. The delegate claims no nodes, so models run on
 * the CPU inside the interpreter. */
#include <fcntl.h>
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
struct edgetpu_device *edgetpu_list_devices(size_t *num_devices) {
  const char *list = device_list();
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

typedef struct stub_delegate {
  TfLiteDelegate base; /* first: the pointer handed to TFLite */
  int lock_fd;         /* the exclusive hold on the device */
} stub_delegate;

static TfLiteStatus prepare(TfLiteContext *context, TfLiteDelegate *d) {
  return kTfLiteOk; /* claims nothing: everything runs on the CPU */
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
