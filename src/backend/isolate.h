/* isolate.h — run a device in a supervised child process.
 *
 * libedgetpu abort()s the whole process on a fatal USB error and can hang
 * inside Invoke. An isolated device therefore runs its real backend in a
 * child, the program edgemux-devhost (src/devhost/devhost.c), and the engine
 * drives it through a proxy with the same emx__backend_ops functions:
 *
 *   - open spawns the child (posix_spawn: fork + exec, never fork alone, as
 *     the engine process is multithreaded) with a SOCK_SEQPACKET socket on
 *     its fd 3; the child opens the real device and says whether it could;
 *   - prepare sends the model bytes in a sealed memfd; the child prepares
 *     and answers with the model's interface;
 *   - invoke copies the inputs into a sealed memfd region both sides map,
 *     sends one small packet, and waits for the reply at most deadline_ms;
 *     the outputs come back through the region;
 *   - a child that dies (crash, abort) or misses the deadline (it is killed)
 *     makes the call fail with EMX_EDEVICE and a message naming the cause;
 *     from then on every call fails with EMX_EDEVICE until a probe;
 *   - probe (the engine calls it with backoff after any device fault) asks
 *     a live child, which asks the real backend's probe, or closes and
 *     re-opens the device when the backend has none (what the engine does
 *     in-process); the device's own fault state survives, e.g. a vanished
 *     sim refuses return_after probes. A dead child is replaced: probe
 *     spawns a new one, which opens the device again.
 *
 * Spec keys, read here and hidden from the real backend:
 *   isolate=0|1     run isolated; default 1 for edgetpu, 0 for the others
 *   deadline_ms=N   per-invoke reply deadline (default 10000); only with
 *                   isolation
 *
 * The child program is $EMX_DEVHOST, else edgemux-devhost found next to the
 * library (<libdir>/../bin, <libdir>), in the installed folder
 * (EMX_DEVHOST_INSTALLED_DIR, <libexecdir>/edgemux, set by
 * cmake/install.cmake), next to the executable, or on PATH. */
#ifndef EMX_BACKEND_ISOLATE_H
#define EMX_BACKEND_ISOLATE_H

#include "backend/backend.h"

#define EMX__ISO_DEFAULT_DEADLINE_MS 10000

/* emx__backend_isolate is the proxy. Its open reads the real kind from the
 * spec; its state per device names the child. */
extern const emx__backend_ops emx__backend_isolate;

/* emx__isolate_select reads the isolation keys of spec (see above), marks
 * them used so the real backend accepts the spec, and sets *ops to the
 * proxy when the device runs isolated, else to the spec kind's own backend
 * (which must exist). EMX_EINVAL names a bad key. Call it on every parsed
 * spec before ops->units and ops->open. */
int emx__isolate_select(emx__devspec *spec, const emx__backend_ops **ops,
                        emx__errbuf *err);

#endif
