/* optlib.h — the libraries of the optional doors (libmicrohttpd for --http
 * and --metrics, libzmq for --zmq), opened only when a door is asked for.
 *
 * Linked, they cost every edgemuxd about 1.8 MiB of memory (PSS; GnuTLS,
 * libsodium, Kerberos and the rest come with them) whether or not a door
 * is on: as much as half of what one CPU worker's interpreter of a small
 * model holds. mhd_dl.c and zmq_dl.c define the functions the doors call
 * under their own names and forward them to the library once it is open,
 * so the doors' code is written against the real headers. A door that
 * starts calling a new function of its library fails to link until the
 * function is added there. */
#ifndef EMX_DAEMON_FRONT_OPTLIB_H
#define EMX_DAEMON_FRONT_OPTLIB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

/* emxd_optlib is one optional library: what to open, where its functions
 * go, and the outcome of the first attempt. A door's library is opened at
 * most once; later calls return the first result, so a daemon that could
 * not open it says the same thing every time it is asked. */
typedef struct emxd_optlib {
  const char *soname;
  const char *const *names; /* n function names ... */
  void **fns;               /* ... looked up into these slots */
  size_t n;
  const char *what;    /* what needs it, for errors: "the HTTP door (--http)" */
  const char *package; /* the Debian package that installs it */
  pthread_mutex_t mu;
  bool tried;
  int status;
  emx__errbuf err;
} emxd_optlib;

#define EMXD_OPTLIB_INIT(soname_, names_, fns_, n_, what_, package_)           \
  {                                                                            \
    .soname = (soname_), .names = (names_), .fns = (fns_), .n = (n_),          \
    .what = (what_), .package = (package_), .mu = PTHREAD_MUTEX_INITIALIZER    \
  }

/* emxd_optlib_load opens l's library and looks up its functions the first
 * time it is called: 0 or EMX_EUNSUPPORTED, with the error naming what
 * needs the library and the package to install. */
int emxd_optlib_load(emxd_optlib *l, emx__errbuf *err);

/* emxd_mhd_load / emxd_zmq_load open libmicrohttpd / libzmq once (later
 * calls return the first result): 0 or EMX_EUNSUPPORTED. Call before any
 * MHD_* / zmq_* function. */
int emxd_mhd_load(emx__errbuf *err);
int emxd_zmq_load(emx__errbuf *err);

#endif
