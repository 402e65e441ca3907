/* optlib.c — opening an optional door's library (see optlib.h). */
#include <dlfcn.h>

#include "daemon/front/optlib.h"

static int open_lib(const char *soname, const char *const *names, void **fns,
                    size_t n, const char *what, const char *package,
                    emx__errbuf *err) {
  /* RTLD_LOCAL: its symbols stay out of the global namespace, where
   * edgemuxd's forwarders of the same names are. */
  void *lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char *why = dlerror();
    return emx__errf(err, EMX_EUNSUPPORTED,
                     "%s needs %s, which cannot be loaded (%s): install %s, "
                     "or run without %s",
                     what, soname, why ? why : "unknown error", package, what);
  }
  for (size_t i = 0; i < n; i++) {
    fns[i] = dlsym(lib, names[i]);
    if (!fns[i]) {
      dlclose(lib);
      return emx__errf(err, EMX_EUNSUPPORTED,
                       "%s: the %s found has no %s (older than edgemuxd "
                       "was built with?): install a current %s, or run "
                       "without %s",
                       what, soname, names[i], package, what);
    }
  }
  return 0; /* kept open for the daemon's life */
}

int emxd_optlib_load(emxd_optlib *l, emx__errbuf *err) {
  pthread_mutex_lock(&l->mu);
  if (!l->tried) {
    l->status = open_lib(l->soname, l->names, l->fns, l->n, l->what, l->package,
                         &l->err);
    l->tried = true;
  }
  int status = l->status;
  pthread_mutex_unlock(&l->mu);
  if (status < 0)
    return emx__errf(err, status, "%s", l->err.msg);
  return 0;
}
