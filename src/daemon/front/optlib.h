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

#include <stddef.h>

#include "core/error.h"

/* emxd_optlib_open opens soname and looks up n functions (names[i] into
 * fns[i]); what needs it (e.g. "--http") is named in the error, with the
 * package to install. 0 or EMX_EUNSUPPORTED. */
int emxd_optlib_open(const char *soname, const char *const *names, void **fns,
                     size_t n, const char *what, const char *package,
                     emx__errbuf *err);

/* emxd_mhd_load / emxd_zmq_load open libmicrohttpd / libzmq once (later
 * calls return the first result): 0 or EMX_EUNSUPPORTED. Call before any
 * MHD_* / zmq_* function. */
int emxd_mhd_load(emx__errbuf *err);
int emxd_zmq_load(emx__errbuf *err);

#endif
