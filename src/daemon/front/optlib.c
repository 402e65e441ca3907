/* optlib.c — opening an optional door's library (see optlib.h). */
#include <dlfcn.h>

#include "daemon/front/optlib.h"

int emxd_optlib_open(const char *soname, const char *const *names, void **fns,
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
