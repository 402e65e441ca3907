/* daemon_support.c — see daemon_support.h. */
#include "daemon_support.h"
#include "support.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "edgemux/client.h"

#ifndef EMX_BIN_DIR
#error "EMX_BIN_DIR must name the build's bin/ folder"
#endif
#ifndef EMX_DAEMON_REPO_DIR
#error "EMX_DAEMON_REPO_DIR must name the test model repository"
#endif

void emxt_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

/* Sanitizer builds run slower. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED_BUILD 1
#endif
#endif
#ifndef SANITIZED_BUILD
#define SANITIZED_BUILD 0
#endif

int emxt_sanitized(void) {
  return SANITIZED_BUILD || sanitizer()[0];
}

int emxt_slow(void) {
  return (emxt_sanitized() ? 4 : 1) * emxt_time_scale();
}

int emxt_raw_connect(const char *path) {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  int rc;
  do
    rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

void emxt_daemon_print_log(const emxt_daemon *d) {
  FILE *f = fopen(d->log, "r");
  if (!f)
    return;
  char line[512];
  fprintf(stderr, "---- edgemuxd log (%s) ----\n", d->log);
  while (fgets(line, sizeof line, f))
    fputs(line, stderr);
  fclose(f);
}

int emxt_time_scale(void) {
  const char *env = getenv("EMX_TEST_TIME_SCALE");
  int scale = env ? atoi(env) : 1;
  return scale >= 1 && scale <= 100 ? scale : 1;
}

void emxt_execv(const char *path, char *const argv[]) {
  const char *wrapper = getenv("EMX_EXEC_WRAPPER");
  if (!wrapper || !*wrapper) {
    execv(path, argv);
    return;
  }
  char buf[512], *wargv[80], *save = NULL;
  int n = 0;
  snprintf(buf, sizeof buf, "%s", wrapper);
  for (char *w = strtok_r(buf, " ", &save); w && n < 16;
       w = strtok_r(NULL, " ", &save))
    wargv[n++] = w;
  wargv[n++] = (char *)path;
  for (int i = 1; argv[i] && n < 79; i++)
    wargv[n++] = argv[i];
  wargv[n] = NULL;
  execvp(wargv[0], wargv);
}

int emxt_run(const char *path, char *const argv[]) {
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    emxt_execv(path, argv);
    _exit(127);
  }
  int st;
  for (int i = 0; i < 1000 * emxt_time_scale(); i++) {
    if (waitpid(pid, &st, WNOHANG) == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    usleep(10000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return -1;
}

int emxt_daemon_start(emxt_daemon *d, const char *const *extra_args) {
  memset(d, 0, sizeof *d);
  snprintf(d->dir, sizeof d->dir, "/tmp/emxt-XXXXXX");
  if (!mkdtemp(d->dir))
    return -1;
  remove_at_exit(d->dir);
  snprintf(d->socket, sizeof d->socket, "%s/edgemux.sock", d->dir);
  snprintf(d->log, sizeof d->log, "%s/edgemuxd.log", d->dir);
  setenv("EDGEMUX_SOCKET", d->socket, 1);

  const char *argv[64];
  int argc = 0;
  argv[argc++] = EMX_BIN_DIR "/edgemuxd";
  argv[argc++] = "--socket";
  argv[argc++] = d->socket;
  argv[argc++] = "--models";
  argv[argc++] = EMX_DAEMON_REPO_DIR;
  argv[argc++] = "--log-level";
  argv[argc++] = "info";
  for (int i = 0; extra_args && extra_args[i] && argc < 62; i++)
    argv[argc++] = extra_args[i];
  argv[argc] = NULL;

  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    emxt_execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  d->pid = pid;
  /* A wall-clock bound, generous: the repository's models load before the
   * socket answers, and on a loaded 2-core machine (or under a sanitizer)
   * that alone has taken over 15 s. */
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec - t0.tv_sec > 90 * emxt_time_scale())
      break;
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      d->pid = 0;
      emxt_daemon_print_log(d);
      return -1;
    }
    emx_client_config cfg;
    emx_client_config_init(&cfg);
    cfg.socket_path = d->socket;
    cfg.arena_bytes = 0;
    emx_client *c;
    if (emx_client_connect(&c, &cfg) == 0) {
      int rc = emx_client_ping(c);
      emx_client_destroy(c);
      if (rc == 0)
        return 0;
    }
    emxt_sleep_ms(20);
  }
  emxt_daemon_print_log(d);
  emxt_daemon_kill(d);
  return -1;
}

struct emx_client *emxt_connect(const char *socket, size_t arena_bytes) {
  emx_client_config cfg;
  emx_client_config_init(&cfg);
  cfg.socket_path = socket;
  cfg.arena_bytes = arena_bytes;
  emx_client *c = NULL;
  int rc = emx_client_connect(&c, &cfg);
  if (rc < 0)
    fprintf(stderr, "connecting to %s: %s: %s\n", socket, emx_err_name(rc),
            emx_client_last_error(NULL));
  return rc < 0 ? NULL : c;
}

static int reap(emxt_daemon *d, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 10) {
    int status;
    pid_t r = waitpid(d->pid, &status, WNOHANG);
    if (r == d->pid) {
      d->pid = 0;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    emxt_sleep_ms(10);
  }
  return -1;
}

int emxt_daemon_stop(emxt_daemon *d) {
  if (!d->pid)
    return -1;
  kill(d->pid, SIGTERM);
  int rc = reap(d, 30000 * emxt_time_scale());
  if (rc < 0) {
    emxt_daemon_print_log(d);
    emxt_daemon_kill(d);
  }
  return rc;
}

void emxt_daemon_kill(emxt_daemon *d) {
  if (!d->pid)
    return;
  kill(d->pid, SIGKILL);
  waitpid(d->pid, NULL, 0);
  d->pid = 0;
}

int emxt_fd_count(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
  DIR *dir = opendir(path);
  if (!dir)
    return -1;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(dir)))
    n += de->d_name[0] != '.';
  closedir(dir);
  return n;
}

int emxt_memfd_maps(pid_t pid) {
  char path[64], line[512];
  snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  int n = 0;
  while (fgets(line, sizeof line, f))
    n += strstr(line, "/memfd:") != NULL;
  fclose(f);
  return n;
}

long emxt_rss_kib(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  long kib = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
      break;
  fclose(f);
  return kib;
}

int emxt_log_contains(const emxt_daemon *d, const char *text) {
  FILE *f = fopen(d->log, "r");
  if (!f)
    return 0;
  char line[1024];
  int found = 0;
  while (!found && fgets(line, sizeof line, f))
    found = strstr(line, text) != NULL;
  fclose(f);
  return found;
}

int emxt_wait_log(const emxt_daemon *d, const char *text, int ms) {
  for (int waited = 0; waited < ms * emxt_time_scale(); waited += 10) {
    if (emxt_log_contains(d, text))
      return 1;
    emxt_sleep_ms(10);
  }
  return emxt_log_contains(d, text);
}

int emxt_repo_add(const char *repo, const char *name, const char *model,
                  const char *config) {
  char dir[256], path[320];
  snprintf(dir, sizeof dir, "%s/%s", repo, name);
  snprintf(path, sizeof path, "%s/model.tflite", dir);
  if (mkdir(dir, 0755) < 0 || symlink(model, path) < 0) {
    fprintf(stderr, "repository entry %s: %s\n", path, strerror(errno));
    return -1;
  }
  if (!config)
    return 0;
  snprintf(path, sizeof path, "%s/config.json", dir);
  FILE *f = fopen(path, "w");
  if (!f || fputs(config, f) < 0 || fclose(f) != 0) {
    fprintf(stderr, "writing %s: %s\n", path, strerror(errno));
    return -1;
  }
  return 0;
}

int emxt_repo_with(char repo[64], const char *name, const char *model) {
  snprintf(repo, 64, "/tmp/emxt-repo-XXXXXX");
  if (!mkdtemp(repo)) {
    fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
    return -1;
  }
  remove_at_exit(repo);
  return name ? emxt_repo_add(repo, name, model, NULL) : 0;
}
