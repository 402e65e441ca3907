/*
 * bench/common/daemon.h — an edgemuxd for a benchmark or a demo: the one
 * built beside the running program, started on a private temporary socket
 * and stopped with everything it left removed; and a throwaway model
 * repository for it to serve.
 *
 *   bench_repo repo;
 *   bench_daemon d;
 *   if (bench_repo_make(&repo, "bench-x", "m", "/models/m.tflite") < 0)
 *     return 1;
 *   const char *args[] = {"--models", repo.dir, "--device", "cpu", NULL};
 *   if (bench_daemon_start(&d, "bench-x", args) < 0) { // why and the log
 *     bench_repo_remove(&repo);                        // are printed
 *     return 1;
 *   }
 *   emx_client *c;
 *   if (bench_daemon_connect(&d, 8u << 20, &c) == 0) {
 *     ...
 *     emx_client_destroy(c);
 *   }
 *   int status = bench_daemon_stop(&d); // 0: edgemuxd exited cleanly
 *   bench_repo_remove(&repo);
 *
 * Messages go to stderr, each prefixed with the caller's program name.
 */
#ifndef EMX_BENCH_COMMON_DAEMON_H
#define EMX_BENCH_COMMON_DAEMON_H

#include <edgemux/client.h>

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

/* The most caller arguments bench_daemon_start passes on. */
#define BENCH_DAEMON_MAX_ARGS 32

/* bench_daemon is an edgemuxd this program started; bench_daemon_start
 * fills it. Its pid is the daemon's process (for /proc, affinity, RSS). */
typedef struct bench_daemon {
  pid_t pid;          /* 0 when not running */
  const char *prog;   /* prefix of its messages; the caller's string */
  char exe[PATH_MAX]; /* the edgemuxd that runs */
  char dir[80];       /* private temp folder: the socket and the log */
  char socket[108];   /* dir/edgemux.sock, its --socket (a sun_path) */
  char log[128];      /* dir/edgemuxd.log: its stdout and stderr */
} bench_daemon;

/* bench_daemon_path writes the path of the edgemuxd beside this program's
 * executable to out; 0, or -1 after saying on stderr (prefixed with prog)
 * why it cannot be run. */
int bench_daemon_path(char *out, size_t size, const char *prog);

/* bench_daemon_start runs `edgemuxd --socket SOCKET ARGS...` (the edgemuxd
 * of bench_daemon_path) on a socket in a fresh temp folder, its output in a
 * log file there, and waits up to 10 s until it answers a ping. args is
 * NULL-terminated (at most BENCH_DAEMON_MAX_ARGS; NULL for none) and is read
 * only during the call; prog (messages, and the temp folder's name) must
 * outlive d. The daemon inherits this process's environment. 0, or -1 after
 * saying why and printing the daemon's log; d then holds nothing to stop. */
int bench_daemon_start(bench_daemon *d, const char *prog,
                       const char *const *args);

/* bench_daemon_stop sends SIGTERM, waits up to 30 s for the daemon to exit
 * (then SIGKILL), and removes the temp folder. Returns its exit status,
 * 128 + the signal that ended it, or -1 (it did not exit in time, or d was
 * not running); on any status but 0 it first says so and prints the log.
 * d may be zeroed or already stopped: then it returns -1 and does nothing. */
int bench_daemon_stop(bench_daemon *d);

/* bench_daemon_print_log copies the daemon's log to stderr, under a header
 * line naming it; nothing when there is no log. */
void bench_daemon_print_log(const bench_daemon *d);

/* bench_daemon_connect connects a client to d with a shared arena of
 * arena_bytes (0: none, enough for models, status and ping). Returns
 * emx_client_connect's status and prints nothing: the reason is in
 * emx_client_last_error(NULL). */
int bench_daemon_connect(const bench_daemon *d, size_t arena_bytes,
                         emx_client **out);

/* bench_repo is a model repository in a private temp folder. */
typedef struct bench_repo {
  char dir[80];        /* the repository: pass it to --models */
  char model_dir[192]; /* dir/NAME; "" when the repository is empty */
  char model[224];     /* dir/NAME/model.tflite, a symlink; "" when empty */
} bench_repo;

/* bench_repo_make makes a repository holding model `name` as a symbolic
 * link to the .tflite file `file`, or an empty one when name is NULL. 0, or
 * -1 after saying why on stderr (prefixed with prog; r then holds nothing
 * to remove). */
int bench_repo_make(bench_repo *r, const char *prog, const char *name,
                    const char *file);

/* bench_repo_remove deletes what bench_repo_make made; r may be zeroed or
 * already removed. */
void bench_repo_remove(bench_repo *r);

#endif
