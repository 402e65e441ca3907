/* child.c — the device-host child processes of libedgemux: find the
 * program, start it, end it (wait, then SIGKILL), and reap the ones that
 * outlived the kill. The isolating proxy (isolate.c), the --count listing
 * and the dynamic-batching trial (tflite_batch.c) all start and end their
 * children here. */
#include "backend/child.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"

extern char **environ;

/* ---- children we could not reap ------------------------------------------
 * A child killed while stuck in the kernel may outlive EMX__KILL_GRACE_MS; its
 * pid is kept here and reaped (WNOHANG) at later opens and closes, so it
 * does not stay a zombie and the worker is not blocked on it. */
#define MAX_ORPHANS 64
static pthread_mutex_t orphans_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t orphans[MAX_ORPHANS];

void emx__child_reap_orphans(void) {
  pthread_mutex_lock(&orphans_lock);
  for (int i = 0; i < MAX_ORPHANS; i++) {
    int status;
    if (orphans[i] > 0 && waitpid(orphans[i], &status, WNOHANG) != 0)
      orphans[i] = 0; /* reaped, or not ours any more (ECHILD) */
  }
  pthread_mutex_unlock(&orphans_lock);
}

static void orphans_add(pid_t pid) {
  pthread_mutex_lock(&orphans_lock);
  for (int i = 0; i < MAX_ORPHANS; i++) {
    if (orphans[i] <= 0) {
      orphans[i] = pid;
      break;
    }
  }
  pthread_mutex_unlock(&orphans_lock);
}

/* wait_exit reaps pid within wait_ns: 1 reaped (*status set), 0 still
 * running, -1 not our child any more (reaped elsewhere: SIGCHLD ignored, or
 * the application waits for any child). */
static int wait_exit(pid_t pid, int *status, int64_t wait_ns) {
  int64_t end = emx__deadline_after(emx_now_ns(), wait_ns);
  long nap_ns = 50000; /* 50 us, doubling to 10 ms: most exits are quick */
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid)
      return 1;
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -1;
    if (emx_now_ns() >= end)
      return 0;
    struct timespec ts = {0, nap_ns};
    nanosleep(&ts, NULL);
    if (nap_ns < 10000000)
      nap_ns *= 2;
  }
}

int emx__child_end(pid_t pid, int *status, int64_t grace_ns, const char *what) {
  int r = wait_exit(pid, status, grace_ns);
  if (r == 0) {
    kill(pid, SIGKILL);
    if (wait_exit(pid, status, (int64_t)EMX__KILL_GRACE_MS * 1000000) == 0) {
      emx__log(EMX_LOG_WARN,
               "%s: device process %d did not die within %d ms of SIGKILL; "
               "it will be reaped later",
               what, (int)pid, EMX__KILL_GRACE_MS);
      orphans_add(pid);
    }
  }
  return r;
}

/* ---- finding the device host program ------------------------------------ */

static bool executable(const char *path) {
  return access(path, X_OK) == 0;
}

/* try_dir: is dir/rel executable? Appends what it tried to `tried`. */
static bool try_dir(const char *dir, const char *rel, char *out, size_t cap,
                    char *tried, size_t tcap) {
  if (snprintf(out, cap, "%s/%s", dir, rel) >= (int)cap)
    return false;
  if (executable(out))
    return true;
  size_t used = strlen(tried);
  snprintf(tried + used, tcap - used, "%s%s", used ? ", " : "", out);
  return false;
}

static bool dir_of(const char *path, char *dir, size_t cap) {
  const char *slash = strrchr(path, '/');
  if (!slash || (size_t)(slash - path) >= cap)
    return false;
  size_t n = slash == path ? 1 : (size_t)(slash - path);
  memcpy(dir, path, n);
  dir[n] = '\0';
  return true;
}

/* emx__devhost_find: $EMX_DEVHOST; next to the library (libedgemux.so in
 * <prefix>/lib, the program in <prefix>/bin, or both in one folder); the
 * installed <libexecdir>/edgemux; next to the executable; PATH. */
int emx__devhost_find(const char *spec, char *out, size_t cap,
                      emx__errbuf *err) {
  const char *env = getenv("EMX_DEVHOST");
  if (env && *env) {
    if (snprintf(out, cap, "%s", env) < (int)cap && executable(env))
      return 0;
    return emx__errf(err, EMX_ENOENT,
                     "%s: cannot run the device host program "
                     "EMX_DEVHOST=%s: %s",
                     spec, env, strerror(errno));
  }
  char tried[1024] = "", dir[PATH_MAX];
  Dl_info info;
  if (dladdr((void *)emx__devhost_find, &info) && info.dli_fname &&
      dir_of(info.dli_fname, dir, sizeof dir)) {
    if (try_dir(dir, "../bin/" EMX__DEVHOST_NAME, out, cap, tried,
                sizeof tried) ||
        try_dir(dir, EMX__DEVHOST_NAME, out, cap, tried, sizeof tried))
      return 0;
  }
#ifdef EMX_DEVHOST_INSTALLED_DIR
  /* Installed, it sits in <libexecdir>/edgemux (cmake/install.cmake), which
   * is neither beside the library nor on PATH. */
  if (try_dir(EMX_DEVHOST_INSTALLED_DIR, EMX__DEVHOST_NAME, out, cap, tried,
              sizeof tried))
    return 0;
#endif
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    if (dir_of(exe, dir, sizeof dir) &&
        try_dir(dir, EMX__DEVHOST_NAME, out, cap, tried, sizeof tried))
      return 0;
  }
  const char *path = getenv("PATH");
  while (path && *path) {
    size_t len = strcspn(path, ":");
    if (len > 0 && len < sizeof dir) {
      memcpy(dir, path, len);
      dir[len] = '\0';
      char ignored[1] = "";
      if (try_dir(dir, EMX__DEVHOST_NAME, out, cap, ignored, sizeof ignored))
        return 0;
    }
    path += len + (path[len] == ':');
  }
  return emx__errf(err, EMX_ENOENT,
                   "%s: cannot find the device host program %s (looked "
                   "for %s, and on PATH); install it beside libedgemux or "
                   "set EMX_DEVHOST",
                   spec, EMX__DEVHOST_NAME, tried[0] ? tried : "nothing");
}

/* wrap: with EMX_EXEC_WRAPPER set (words split on spaces, e.g.
 * "qemu-aarch64 -L /usr/aarch64-linux-gnu"), the child runs as those words,
 * then path, then argv[1..]. A process under user-mode emulation cannot exec
 * a program of its own architecture without binfmt_misc, so make
 * check-arm64 names the emulator here. It chooses the program run, as
 * EMX_DEVHOST does: the same trust. 0, or E2BIG when the words do not fit
 * buf/out. */
#define MAX_EXEC_ARGS 64
static int wrap(const char *wrapper, const char *path, char *const argv[],
                char *buf, size_t cap, char **out) {
  if (snprintf(buf, cap, "%s", wrapper) >= (int)cap)
    return E2BIG;
  int n = 0;
  char *save = NULL;
  for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
    if (n >= MAX_EXEC_ARGS - 2)
      return E2BIG;
    out[n++] = w;
  }
  out[n++] = (char *)path;
  for (int i = 1; argv[0] && argv[i]; i++) {
    if (n >= MAX_EXEC_ARGS - 1)
      return E2BIG;
    out[n++] = argv[i];
  }
  out[n] = NULL;
  return 0;
}

int emx__devhost_spawn(const char *path, char *const argv[], int fd3,
                       int out_fd, bool quiet, pid_t *pid) {
  const char *wrapper = getenv("EMX_EXEC_WRAPPER");
  char wbuf[512], *wargv[MAX_EXEC_ARGS];
  if (wrapper && *wrapper) {
    int wrc = wrap(wrapper, path, argv, wbuf, sizeof wbuf, wargv);
    if (wrc != 0)
      return wrc;
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  /* dup2 onto fd 3 clears close-on-exec there; every other descriptor of
   * ours is CLOEXEC, and the device host closes any the application
   * leaked. */
  if (fd3 >= 0)
    posix_spawn_file_actions_adddup2(&fa, fd3, EMX__CHILD_FD);
  /* No stdin; stdout goes to stderr unless the caller reads it: a
   * library's child must not write into the application's output (TFLite
   * and libedgetpu log freely). */
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (quiet) {
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
  } else {
    posix_spawn_file_actions_adddup2(&fa, out_fd >= 0 ? out_fd : 2, 1);
  }
  /* The calling thread's signal mask and ignored signals would otherwise
   * carry over exec (edgemuxd's threads block the signals it reads from a
   * signalfd). */
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  int rc = wrapper && *wrapper
               ? posix_spawnp(pid, wargv[0], &fa, &attr, wargv, environ)
               : posix_spawn(pid, path, &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  return rc;
}
