/* edgetpu.c — Coral Edge TPUs through libedgetpu, loaded at run time.
 *
 * libedgetpu is never linked: the backend dlopen()s it (default
 * "libedgetpu.so.1", or lib=PATH, or $EMX_EDGETPU_LIB) and declares its C
 * ABI here, so edgemux builds and runs on machines without it. Each device
 * gets exactly one delegate, created when the device opens; every model on
 * that device is an interpreter built with that delegate (ops the TPU does
 * not take run on the CPU inside the same interpreter, as with pycoral).
 *
 * Spec: edgetpu[:usb:N | :pci:N | :*][,lib=PATH][,performance=low|medium|
 *       high|max]. "edgetpu" alone is the first device found; "edgetpu:*"
 *       opens every device the library lists, one worker each. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/tflite.h"

/* ---- libedgetpu's C ABI (edgetpu_c.h) ------------------------------------ */
enum edgetpu_device_type { EDGETPU_APEX_PCI = 0, EDGETPU_APEX_USB = 1 };

struct edgetpu_device {
  enum edgetpu_device_type type;
  const char *path;
};

struct edgetpu_option {
  const char *name;
  const char *value;
};

typedef struct edgetpu_lib {
  void *handle;
  struct edgetpu_device *(*list_devices)(size_t *num_devices);
  void (*free_devices)(struct edgetpu_device *dev);
  TfLiteDelegate *(*create_delegate)(enum edgetpu_device_type type,
                                     const char *name,
                                     const struct edgetpu_option *options,
                                     size_t num_options);
  void (*free_delegate)(TfLiteDelegate *delegate);
  void (*verbosity)(int verbosity);
  const char *(*version)(void);
} edgetpu_lib;

typedef struct selector {
  char lib[256]; /* library to dlopen */
  int any_type;  /* "edgetpu" or "edgetpu:*": any type */
  int all;       /* "edgetpu:*" */
  enum edgetpu_device_type type;
  long index;              /* N of usb:N / pci:N */
  const char *performance; /* option value, or NULL */
} selector;

typedef struct tpu_device {
  edgetpu_lib lib;          /* this device's handle on the library */
  TfLiteDelegate *delegate; /* the one delegate of this device */
  char name[160];           /* "usb:0 (/sys/bus/usb/devices/2-1)" */
} tpu_device;

typedef struct tpu_model {
  emx__tfl_model tfl;
} tpu_model;

static int load_lib(edgetpu_lib *lib, const char *path, emx__errbuf *err) {
  memset(lib, 0, sizeof *lib);
  lib->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib->handle)
    return emx__errf(err, EMX_ENOENT,
                     "cannot load the Edge TPU runtime \"%s\": %s (install "
                     "libedgetpu1-std from Coral's package repository, or "
                     "pass lib=PATH)",
                     path, dlerror());
#define SYM(field, name)                                                       \
  *(void **)&lib->field = dlsym(lib->handle, name);                            \
  if (!lib->field) {                                                           \
    dlclose(lib->handle);                                                      \
    lib->handle = NULL;                                                        \
    return emx__errf(err, EMX_EDEVICE,                                         \
                     "\"%s\" is not libedgetpu: it lacks %s", path, name);     \
  }
  SYM(list_devices, "edgetpu_list_devices")
  SYM(free_devices, "edgetpu_free_devices")
  SYM(create_delegate, "edgetpu_create_delegate")
  SYM(free_delegate, "edgetpu_free_delegate")
  SYM(verbosity, "edgetpu_verbosity")
  SYM(version, "edgetpu_version")
#undef SYM
  return 0;
}

static int parse(emx__devspec *spec, selector *sel, emx__errbuf *err) {
  memset(sel, 0, sizeof *sel);
  const char *lib = emx__devspec_str(spec, "lib");
  if (!lib)
    lib = getenv("EMX_EDGETPU_LIB");
  snprintf(sel->lib, sizeof sel->lib, "%s",
           lib && *lib ? lib : "libedgetpu.so.1");
  sel->performance = emx__devspec_str(spec, "performance");
  if (sel->performance && strcmp(sel->performance, "low") &&
      strcmp(sel->performance, "medium") && strcmp(sel->performance, "high") &&
      strcmp(sel->performance, "max"))
    return emx__errf(err, EMX_EINVAL,
                     "device spec \"%s\": performance must be low, medium, "
                     "high or max",
                     spec->text);
  sel->any_type = 1;
  if (spec->count > 0 && !spec->items[0].value[0]) {
    const char *which = spec->items[0].key;
    spec->items[0].used = true;
    if (strcmp(which, "*") == 0) {
      sel->all = 1;
    } else {
      char type[8];
      char *end;
      const char *colon = strchr(which, ':');
      size_t tlen = colon ? (size_t)(colon - which) : strlen(which);
      if (tlen >= sizeof type)
        tlen = sizeof type - 1;
      memcpy(type, which, tlen);
      type[tlen] = '\0';
      sel->index = colon ? strtol(colon + 1, &end, 10) : 0;
      if (strcmp(type, "usb") == 0)
        sel->type = EDGETPU_APEX_USB;
      else if (strcmp(type, "pci") == 0)
        sel->type = EDGETPU_APEX_PCI;
      else
        return emx__errf(err, EMX_EINVAL,
                         "device spec \"%s\": use edgetpu:usb:N, "
                         "edgetpu:pci:N or edgetpu:*",
                         spec->text);
      if (colon && (*end || sel->index < 0))
        return emx__errf(err, EMX_EINVAL,
                         "device spec \"%s\": bad device index", spec->text);
      sel->any_type = 0;
    }
  }
  return emx__devspec_check_used(spec, err);
}

/* find returns the position in the library's list of the unit-th device the
 * selector matches, or -1. */
static long find(const selector *sel, const struct edgetpu_device *devs,
                 size_t n, int unit) {
  long seen = 0;
  long want = sel->all ? unit : sel->index;
  for (size_t i = 0; i < n; i++) {
    if (!sel->any_type && devs[i].type != sel->type)
      continue;
    if (seen++ == want)
      return (long)i;
  }
  return -1;
}

static int tpu_units(emx__devspec *spec, int *count, emx__errbuf *err) {
  selector sel;
  int rc = parse(spec, &sel, err);
  if (rc < 0)
    return rc;
  if (!sel.all) {
    *count = 1;
    return 0;
  }
  edgetpu_lib lib;
  rc = load_lib(&lib, sel.lib, err);
  if (rc < 0)
    return rc;
  size_t n = 0;
  struct edgetpu_device *devs = lib.list_devices(&n);
  if (devs)
    lib.free_devices(devs);
  dlclose(lib.handle);
  if (n == 0)
    return emx__errf(err, EMX_ENOENT,
                     "device spec \"%s\": no Edge TPU found (is it plugged "
                     "in, and is the udev rule for its USB id installed?)",
                     spec->text);
  *count = (int)n;
  return 0;
}

static int tpu_open(const emx__devspec *spec, int unit, void **dev,
                    emx__errbuf *err) {
  emx__devspec copy = *spec;
  selector sel;
  int rc = parse(&copy, &sel, err);
  if (rc < 0)
    return rc;
  tpu_device *d = calloc(1, sizeof *d);
  if (!d)
    return emx__errf(err, EMX_ENOMEM, "out of memory opening %s", spec->text);
  rc = load_lib(&d->lib, sel.lib, err);
  if (rc < 0) {
    free(d);
    return rc;
  }
  size_t n = 0;
  struct edgetpu_device *devs = d->lib.list_devices(&n);
  long at = devs ? find(&sel, devs, n, unit) : -1;
  if (at < 0) {
    rc = emx__errf(err, EMX_ENOENT,
                   "device spec \"%s\": no such Edge TPU (the runtime %s "
                   "lists %zu device%s)",
                   spec->text, d->lib.version(), n, n == 1 ? "" : "s");
    goto fail;
  }
  const char *type = devs[at].type == EDGETPU_APEX_USB ? "usb" : "pci";
  snprintf(d->name, sizeof d->name, "%s (%s)", type, devs[at].path);
  static const char *const perf_values[] = {"low",  "Low",  "medium", "Medium",
                                            "high", "High", "max",    "Max"};
  struct edgetpu_option opts[1];
  size_t nopts = 0;
  if (sel.performance) {
    for (size_t i = 0; i < 8; i += 2)
      if (strcmp(sel.performance, perf_values[i]) == 0)
        opts[nopts++] =
            (struct edgetpu_option){"Performance", perf_values[i + 1]};
  }
  d->delegate =
      d->lib.create_delegate(devs[at].type, devs[at].path, opts, nopts);
  if (!d->delegate) {
    /* libedgetpu returns NULL without a reason; the usual ones are below. */
    rc = emx__errf(err, EMX_EBUSY,
                   "Edge TPU %s refused a delegate: device busy (held by "
                   "another process: share it through edgemuxd), unplugged, "
                   "or not permitted (udev rule / plugdev group)",
                   d->name);
    goto fail;
  }
  d->lib.free_devices(devs);
  *dev = d;
  return 0;
fail:
  if (devs)
    d->lib.free_devices(devs);
  dlclose(d->lib.handle);
  free(d);
  return rc;
}

static void tpu_close(void *dev) {
  tpu_device *d = dev;
  d->lib.free_delegate(d->delegate);
  dlclose(d->lib.handle);
  free(d);
}

static int tpu_prepare(void *dev, const void *data, size_t size, void **prep,
                       emx__model_desc *desc, emx__errbuf *err) {
  tpu_device *d = dev;
  tpu_model *m = calloc(1, sizeof *m);
  if (!m)
    return emx__errf(err, EMX_ENOMEM, "out of memory preparing a model");
  /* The device's delegate is shared by its interpreters and outlives them:
   * no free function here. */
  int rc =
      emx__tfl_prepare(&m->tfl, data, size, 1, d->delegate, NULL, desc, err);
  if (rc < 0) {
    free(m);
    return rc;
  }
  *prep = m;
  return 0;
}

static void tpu_release(void *dev, void *prep) {
  tpu_model *m = prep;
  emx__tfl_release(&m->tfl);
  free(m);
}

static int tpu_invoke(void *dev, void *prep, const emx_tensor *inputs,
                      size_t nin, const emx_tensor *outputs, size_t nout,
                      int64_t *device_ns, emx__errbuf *err) {
  tpu_model *m = prep;
  return emx__tfl_invoke(&m->tfl, inputs, nin, outputs, nout, device_ns, err);
}

const emx__backend_ops emx__backend_edgetpu = {
    .kind = "edgetpu",
    .units = tpu_units,
    .open = tpu_open,
    .close = tpu_close,
    .prepare = tpu_prepare,
    .release = tpu_release,
    .invoke = tpu_invoke,
};
