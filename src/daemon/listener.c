/* listener.c — the listening socket: bound here, or handed over by systemd
 * socket activation (LISTEN_PID/LISTEN_FDS, first fd is 3). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"
#include "daemon/daemon.h"

#define SD_LISTEN_FDS_START 3

/* 128: the connections that may wait for accept() while the I/O thread is
 * busy (a model load on SIGHUP); the kernel caps it at somaxconn anyway. */
#define BACKLOG 128

static int activated_fd(emx__errbuf *err) {
  const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
  if (!pid || !fds || atol(pid) != (long)getpid())
    return -1;
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  if (atoi(fds) < 1)
    return -1;
  int fd = SD_LISTEN_FDS_START, type = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
      type != SOCK_SEQPACKET) {
    emx__errf(err, EMX_EINVAL,
              "LISTEN_FDS: fd 3 is not a SOCK_SEQPACKET "
              "socket (use ListenSequentialPacket= in the .socket unit)");
    return -2;
  }
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

/* mkdir_parent creates the socket's folder (e.g. /run/edgemux) if absent. */
static void mkdir_parent(const char *path) {
  char dir[sizeof((struct sockaddr_un *)0)->sun_path];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash || slash == dir)
    return;
  *slash = '\0';
  mkdir(dir, 0755);
}

int emxd_listen(emxd_server *srv, emx__errbuf *err) {
  int fd = activated_fd(err);
  if (fd == -2)
    return EMX_EINVAL;
  if (fd >= 0) {
    srv->listen_fd = fd;
    srv->owns_socket_path = false;
    emx__log(EMX_LOG_INFO, "listening on the socket systemd passed (fd 3)");
    return 0;
  }
  const char *path = srv->opt->socket_path;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return emx__errf(err, EMX_EINVAL, "socket path \"%s\" is too long", path);
  strcpy(sa.sun_path, path);
  fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return emx__errf(err, EMX_EIO, "socket: %s", strerror(errno));
  mkdir_parent(path);

  /* A socket file left by a crashed daemon would make bind fail. Remove it
   * only if nobody answers on it: never steal a live daemon's socket. */
  int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (probe >= 0) {
    if (connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
      close(probe);
      close(fd);
      return emx__errf(err, EMX_EBUSY,
                       "another edgemuxd is already "
                       "listening on %s",
                       path);
    }
    close(probe);
  }
  /* Only ever a socket: --socket pointing at a file that is something
   * else (a typo, a config file) must not delete it. */
  struct stat st;
  if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
    close(fd);
    return emx__errf(err, EMX_EINVAL,
                     "%s exists and is not a socket; not replacing it "
                     "(choose another --socket path)",
                     path);
  }
  unlink(path);
  mode_t old = umask(0177); /* owner only until mode and group are set */
  int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
  umask(old);
  if (rc < 0 || listen(fd, BACKLOG) < 0) {
    int e = errno;
    close(fd);
    return emx__errf(err, EMX_EIO, "cannot listen on %s: %s", path,
                     strerror(e));
  }
  /* Group first, then mode: the socket is never open to a group it was
   * not meant for. --allow-uid only widens who the daemon accepts among
   * those the file lets connect. */
  const emxd_options *o = srv->opt;
  if ((o->socket_group_set && chown(path, (uid_t)-1, o->socket_group) < 0) ||
      chmod(path, o->socket_mode) < 0) {
    int e = errno;
    close(fd);
    unlink(path);
    return emx__errf(err, EMX_EIO,
                     "cannot set %s's group to %d and mode to %04o: %s "
                     "(--socket-group, --socket-mode)",
                     path, o->socket_group_set ? (int)o->socket_group : -1,
                     o->socket_mode, strerror(e));
  }
  srv->listen_fd = fd;
  srv->owns_socket_path = true;
  emx__log(EMX_LOG_INFO, "listening on %s", path);
  return 0;
}

void emxd_listen_close(emxd_server *srv) {
  if (srv->listen_fd < 0)
    return;
  close(srv->listen_fd);
  srv->listen_fd = -1;
  if (srv->owns_socket_path)
    unlink(srv->opt->socket_path);
}

void emxd_listen_pause(emxd_server *srv) {
  if (srv->listen_fd < 0 || srv->listen_paused)
    return;
  epoll_ctl(srv->epfd, EPOLL_CTL_DEL, srv->listen_fd, NULL);
  srv->listen_paused = true;
}

void emxd_listen_resume(emxd_server *srv) {
  if (srv->listen_fd < 0 || !srv->listen_paused)
    return;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &srv->listen_ev};
  if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->listen_fd, &ev) == 0)
    srv->listen_paused = false;
}
