/* daemon_support.h — start, stop and inspect a real edgemuxd for tests. */
#ifndef EMX_TESTS_DAEMON_SUPPORT_H
#define EMX_TESTS_DAEMON_SUPPORT_H

#include <stddef.h>
#include <sys/types.h>

typedef struct emxt_daemon {
  pid_t pid;        /* edgemuxd, 0 when not running */
  char dir[64];     /* private temp folder (socket, log) */
  char socket[108]; /* its socket */
  char log[128];    /* its stderr */
} emxt_daemon;

/* emxt_time_scale is $EMX_TEST_TIME_SCALE (1..100, default 1): make
 * check-arm64 sets 10, since everything runs ~10x slower under emulation.
 * Tests multiply their waits by it (and may divide their load). */
int emxt_time_scale(void);

/* emxt_sanitized: is this a sanitizer build (also when $EMX_SANITIZER is
 * not set)? emxt_slow is the factor for hang guards: 4 in one, else 1;
 * times emxt_time_scale. */
int emxt_sanitized(void);
int emxt_slow(void);

/* emxt_sleep_ms sleeps ms milliseconds, through signals. */
void emxt_sleep_ms(int ms);

/* emxt_raw_connect opens a SOCK_SEQPACKET connection to the socket `path`
 * and says nothing on it (for tests that speak the wire protocol
 * themselves): the fd, or -1 with errno set. */
int emxt_raw_connect(const char *path);

/* emxt_execv is execv, through $EMX_EXEC_WRAPPER's words when set (make
 * check-arm64 sets the emulator: a program under qemu-aarch64 cannot exec
 * another arm64 program without binfmt_misc). Returns only on failure. */
void emxt_execv(const char *path, char *const argv[]);

/* emxt_run runs path with argv (through emxt_execv) to its end: its exit
 * status, 128 + the signal that ended it, or -1 when it was still running
 * after 10 s (stretched by EMX_TEST_TIME_SCALE) and had to be killed. */
int emxt_run(const char *path, char *const argv[]);

/* emxt_daemon_start runs build/bin/edgemuxd with --socket in a fresh temp
 * folder, --models on the test repository (.deps/repo), and the extra
 * arguments (NULL-terminated, may be NULL), then waits until it answers a
 * ping (10 s at most). Sets EDGEMUX_SOCKET for this process, so clients
 * (and forked children) find it. Returns 0, or -1 with the log printed. */
int emxt_daemon_start(emxt_daemon *d, const char *const *extra_args);

/* emxt_connect connects a client to `socket` with an arena of
 * arena_bytes: the client, or NULL with the reason printed. */
struct emx_client *emxt_connect(const char *socket, size_t arena_bytes);

/* emxt_daemon_stop sends SIGTERM and waits; returns the exit status (or
 * 128+signal), -1 if it did not exit within 30 s x EMX_TEST_TIME_SCALE
 * (then it is killed). */
int emxt_daemon_stop(emxt_daemon *d);

/* emxt_daemon_kill sends SIGKILL and reaps it. */
void emxt_daemon_kill(emxt_daemon *d);

/* /proc readings of a process: open fds, mappings of memfds, VmRSS. */
int emxt_fd_count(pid_t pid);
int emxt_memfd_maps(pid_t pid);
long emxt_rss_kib(pid_t pid);

/* emxt_daemon_print_log copies the daemon's log to stderr: for a test
 * that fails on what the daemon did, so the run's output says why. */
void emxt_daemon_print_log(const emxt_daemon *d);

/* emxt_log_contains: does the daemon's log contain `text`? */
int emxt_log_contains(const emxt_daemon *d, const char *text);

/* emxt_wait_log polls the daemon's log for `text` (a line the daemon
 * writes when it has done something), `ms` at most (× EMX_TEST_TIME_SCALE):
 * 1 when it appeared. */
int emxt_wait_log(const emxt_daemon *d, const char *text, int ms);

/* emxt_repo_add makes repo/<name>/ holding model.tflite, a link to the
 * file `model`, and, when config is not NULL, a config.json with that
 * text. 0, or -1 with what failed printed. */
int emxt_repo_add(const char *repo, const char *name, const char *model,
                  const char *config);

/* emxt_repo_with makes a temporary model repository in `repo` (a buffer of
 * 64 bytes), removed when this process exits, holding `name` (a link to
 * the file `model`) unless name is NULL: then it starts empty. 0 or -1. */
int emxt_repo_with(char repo[64], const char *name, const char *model);

#endif
