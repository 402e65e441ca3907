/*
 * bench/common/daemon.c — an edgemuxd for the benchmarks and demos, and a
 * throwaway model repository; see daemon.h.
 */
#include "common/daemon.h"

#include "common/baseline.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define START_TIMEOUT_NS ((int64_t)10 * 1000000000)
#define START_POLL_NS ((int64_t)10000000)
/* On SIGTERM edgemuxd finishes the work in flight for up to 30 s
 * (DRAIN_LIMIT_NS in src/daemon/app/server.c) before it exits. */
#define STOP_TIMEOUT_NS ((int64_t)30 * 1000000000)
#define STOP_POLL_NS ((int64_t)5000000)

int bench_daemon_path(char *out, size_t size, const char *prog) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n < 0) {
    fprintf(stderr, "%s: readlink /proc/self/exe: %s\n", prog, strerror(errno));
    return -1;
  }
  self[n] = '\0';
  char *slash = strrchr(self, '/');
  if (slash)
    *slash = '\0';
  if (snprintf(out, size, "%s/edgemuxd", self) >= (int)size) {
    fprintf(stderr, "%s: the path of edgemuxd is too long\n", prog);
    return -1;
  }
  if (access(out, X_OK) != 0) {
    fprintf(stderr,
            "%s: cannot run %s: %s\n"
            "  build it first (make build)\n",
            prog, out, strerror(errno));
    return -1;
  }
  return 0;
}

void bench_daemon_print_log(const bench_daemon *d) {
  FILE *f = fopen(d->log, "r");
  if (!f)
    return;
  char line[512];
  fprintf(stderr, "---- edgemuxd log (%s) ----\n", d->log);
  while (fgets(line, sizeof line, f))
    fputs(line, stderr);
  fclose(f);
}

int bench_daemon_connect(const bench_daemon *d, size_t arena_bytes,
                         emx_client **out) {
  emx_client_config cfg;
  emx_client_config_init(&cfg);
  cfg.socket_path = d->socket;
  cfg.arena_bytes = arena_bytes;
  return emx_client_connect(out, &cfg);
}

/* ping is the readiness check: the socket file exists as soon as edgemuxd
 * binds it, but only an answer shows it serves. */
static int ping(const bench_daemon *d) {
  emx_client *c;
  if (bench_daemon_connect(d, 0, &c) < 0)
    return -1;
  int rc = emx_client_ping(c);
  emx_client_destroy(c);
  return rc;
}

static void reap(pid_t pid) {
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
}

/* make_temp_dir makes a private folder /tmp/PROG<suffix>-XXXXXX, named
 * after the program so that one left behind says whose it is; 0, or -1
 * after saying why (dir is then ""). */
static int make_temp_dir(char *dir, size_t size, const char *prog,
                         const char *suffix) {
  if (snprintf(dir, size, "/tmp/%s%s-XXXXXX", prog, suffix) >= (int)size) {
    fprintf(stderr, "%s: the program name is too long for a temp folder\n",
            prog);
    dir[0] = '\0';
    return -1;
  }
  if (!mkdtemp(dir)) {
    fprintf(stderr, "%s: mkdtemp: %s\n", prog, strerror(errno));
    dir[0] = '\0';
    return -1;
  }
  return 0;
}

/* remove_dir deletes the temp folder and what the daemon made in it. */
static void remove_dir(bench_daemon *d) {
  if (!d->dir[0])
    return;
  unlink(d->log);
  unlink(d->socket);
  rmdir(d->dir);
  d->dir[0] = '\0';
}

int bench_daemon_start(bench_daemon *d, const char *prog,
                       const char *const *args) {
  memset(d, 0, sizeof *d);
  d->prog = prog;
  const char *argv[BENCH_DAEMON_MAX_ARGS + 4];
  int argc = 0;
  argv[argc++] = d->exe;
  argv[argc++] = "--socket";
  argv[argc++] = d->socket;
  for (int i = 0; args && args[i]; i++) {
    if (i == BENCH_DAEMON_MAX_ARGS) {
      fprintf(stderr, "%s: more than %d arguments for edgemuxd\n", prog,
              BENCH_DAEMON_MAX_ARGS);
      return -1;
    }
    argv[argc++] = args[i];
  }
  argv[argc] = NULL;
  if (bench_daemon_path(d->exe, sizeof d->exe, prog) < 0)
    return -1;
  if (make_temp_dir(d->dir, sizeof d->dir, prog, "") < 0)
    return -1;
  snprintf(d->socket, sizeof d->socket, "%s/edgemux.sock", d->dir);
  snprintf(d->log, sizeof d->log, "%s/edgemuxd.log", d->dir);
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
    goto fail;
  }
  if (pid == 0) {
    int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    execv(d->exe, (char *const *)argv);
    _exit(127);
  }
  d->pid = pid;
  for (int64_t waited = 0; waited < START_TIMEOUT_NS; waited += START_POLL_NS) {
    if (waitpid(pid, NULL, WNOHANG) == pid) {
      d->pid = 0;
      fprintf(stderr, "%s: edgemuxd exited at startup\n", prog);
      goto fail;
    }
    if (ping(d) == 0)
      return 0;
    bench_sleep_ns(START_POLL_NS);
  }
  fprintf(stderr, "%s: edgemuxd did not answer within 10 s\n", prog);
  kill(pid, SIGKILL);
  reap(pid);
  d->pid = 0;
fail:
  bench_daemon_print_log(d);
  remove_dir(d);
  return -1;
}

int bench_daemon_stop(bench_daemon *d) {
  if (!d->pid)
    return -1;
  int rc = -1;
  kill(d->pid, SIGTERM);
  for (int64_t waited = 0; waited < STOP_TIMEOUT_NS && rc < 0;
       waited += STOP_POLL_NS) {
    int status;
    if (waitpid(d->pid, &status, WNOHANG) == d->pid)
      rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    else
      bench_sleep_ns(STOP_POLL_NS);
  }
  if (rc < 0) {
    kill(d->pid, SIGKILL);
    reap(d->pid);
  }
  d->pid = 0;
  if (rc != 0) {
    fprintf(stderr, "%s: edgemuxd exit status %d\n", d->prog, rc);
    bench_daemon_print_log(d);
  }
  remove_dir(d);
  return rc;
}

int bench_repo_make(bench_repo *r, const char *prog, const char *name,
                    const char *file) {
  memset(r, 0, sizeof *r);
  /* The link is resolved from inside the repository, so it must not be
   * relative to this process's working folder. */
  char target[PATH_MAX];
  if (name && !realpath(file, target)) {
    fprintf(stderr, "%s: %s: %s\n", prog, file, strerror(errno));
    return -1;
  }
  if (make_temp_dir(r->dir, sizeof r->dir, prog, "-repo") < 0)
    return -1;
  if (!name)
    return 0;
  if (snprintf(r->model_dir, sizeof r->model_dir, "%s/%s", r->dir, name) >=
          (int)sizeof r->model_dir ||
      snprintf(r->model, sizeof r->model, "%s/model.tflite", r->model_dir) >=
          (int)sizeof r->model) {
    fprintf(stderr, "%s: model name too long: %s\n", prog, name);
    r->model_dir[0] = r->model[0] = '\0'; /* nothing of them was made */
    goto fail;
  }
  if (mkdir(r->model_dir, 0700) < 0 || symlink(target, r->model) < 0) {
    fprintf(stderr, "%s: making the model repository: %s\n", prog,
            strerror(errno));
    goto fail;
  }
  return 0;
fail:
  bench_repo_remove(r);
  return -1;
}

void bench_repo_remove(bench_repo *r) {
  if (!r->dir[0])
    return;
  if (r->model[0])
    unlink(r->model);
  if (r->model_dir[0])
    rmdir(r->model_dir);
  rmdir(r->dir);
  memset(r, 0, sizeof *r);
}
