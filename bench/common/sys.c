/*
 * bench/common/sys.c — thread, process and file-descriptor helpers for the
 * benchmarks and demos; see sys.h.
 */
#include "common/sys.h"

#include <edgemux/edgemux.h>

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

pid_t bench_thread_named(pid_t pid, const char *name) {
  char dirpath[64];
  if (pid > 0)
    snprintf(dirpath, sizeof dirpath, "/proc/%d/task", (int)pid);
  else
    snprintf(dirpath, sizeof dirpath, "/proc/self/task");
  DIR *dir = opendir(dirpath);
  if (!dir)
    return 0;
  struct dirent *de;
  pid_t found = 0;
  while (!found && (de = readdir(dir))) {
    char path[600], comm[64] = "";
    snprintf(path, sizeof path, "%s/%.256s/comm", dirpath, de->d_name);
    FILE *f = fopen(path, "r");
    if (!f)
      continue; /* "." and "..", or a thread that just ended */
    if (fgets(comm, sizeof comm, f))
      comm[strcspn(comm, "\n")] = '\0';
    fclose(f);
    if (strcmp(comm, name) == 0)
      found = (pid_t)atoi(de->d_name);
  }
  closedir(dir);
  return found;
}

int bench_pin(pid_t tid, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu < 0) {
    for (long i = 0; i < sysconf(_SC_NPROCESSORS_ONLN) && i < CPU_SETSIZE; i++)
      CPU_SET(i, &set);
  } else {
    CPU_SET(cpu, &set);
  }
  return sched_setaffinity(tid, sizeof set, &set);
}

long bench_rss_kib(pid_t pid) {
  char path[64], line[256];
  if (pid > 0)
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  else
    snprintf(path, sizeof path, "/proc/self/status");
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

/* wait_readable waits until fd can be read or the deadline passes; 0, or
 * -1 on an error or the deadline. */
static int wait_readable(int fd, int64_t deadline_ns) {
  for (;;) {
    int64_t left_ms = (deadline_ns - emx_now_ns()) / 1000000;
    if (left_ms <= 0)
      return -1;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    /* A second at a time, so that a far deadline fits poll's int. */
    int n = poll(&pfd, 1, (int)(left_ms > 1000 ? 1000 : left_ms));
    if (n > 0)
      return 0;
    if (n < 0 && errno != EINTR)
      return -1;
  }
}

int bench_read_full(int fd, void *buf, size_t size, int64_t deadline_ns) {
  size_t got = 0;
  while (got < size) {
    if (deadline_ns > 0 && wait_readable(fd, deadline_ns) < 0)
      return -1;
    ssize_t n = read(fd, (char *)buf + got, size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    got += (size_t)n;
  }
  return 0;
}

int bench_write_full(int fd, const void *buf, size_t size) {
  size_t put = 0;
  while (put < size) {
    ssize_t n = write(fd, (const char *)buf + put, size - put);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    put += (size_t)n;
  }
  return 0;
}

double bench_loadavg(void) {
  double load = -1;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf", &load) != 1)
      load = -1;
    fclose(f);
  }
  return load;
}
