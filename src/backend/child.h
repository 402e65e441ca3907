/* child.h — starting and ending the device-host child processes
 * (edgemux-devhost, src/devhost/devhost.c) that run isolated devices, list
 * Edge TPUs and try models out. Nothing here knows the protocol spoken to
 * the child: that is isolate.c's (the proxy) and isolate_msg.c's. */
#ifndef EMX_BACKEND_CHILD_H
#define EMX_BACKEND_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/error.h"

#define EMX__DEVHOST_NAME "edgemux-devhost"
/* The child's end of its socket is its fd 3. */
#define EMX__CHILD_FD 3
/* How long any reap waits after SIGKILL (a process stuck in the kernel,
 * e.g. in a USB driver, can take a while to die). */
#define EMX__KILL_GRACE_MS 5000

/* emx__devhost_find puts the path of the edgemux-devhost program in out:
 * $EMX_DEVHOST; else next to the library, or the executable; else on
 * PATH. EMX_ENOENT, naming `what` and the places tried, when there is
 * none. */
int emx__devhost_find(const char *what, char *out, size_t cap,
                      emx__errbuf *err);

/* emx__devhost_spawn starts `path` (the device host) with argv the way
 * every child of libedgemux starts: fd3 (if >= 0) on its fd 3, no stdin,
 * stdout into out_fd (-1: into our stderr), or stdout and stderr both
 * discarded when quiet; default signal mask and dispositions. 0 or an
 * errno. */
int emx__devhost_spawn(const char *path, char *const argv[], int fd3,
                       int out_fd, bool quiet, pid_t *pid);

/* emx__child_end waits up to grace_ns for child pid to exit, then SIGKILLs
 * it (one that does not die even then is reaped later; `what` names it in
 * the log). Fills *status; 1 exited by itself, 0 had to be killed, -1 not
 * our child (reaped elsewhere). */
int emx__child_end(pid_t pid, int *status, int64_t grace_ns, const char *what);

/* emx__child_reap_orphans reaps (WNOHANG) the children emx__child_end had
 * to leave behind, so none stays a zombie; cheap, called at opens and
 * closes. */
void emx__child_reap_orphans(void);

#endif
