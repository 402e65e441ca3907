/* sock.c — packet I/O with SCM_RIGHTS. */
#include "core/sock.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

ssize_t emx__sock_sendv(int sock, const struct iovec *iov, int iovcnt, int fd,
                        int flags) {
  struct msghdr mh = {.msg_iov = (struct iovec *)iov,
                      .msg_iovlen = (size_t)iovcnt};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctl;
  if (fd >= 0) {
    memset(&ctl, 0, sizeof ctl);
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof ctl.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  ssize_t n;
  do
    n = sendmsg(sock, &mh, flags | MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

ssize_t emx__sock_send(int sock, const void *buf, size_t len, int fd,
                       int flags) {
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  return emx__sock_sendv(sock, &iov, 1, fd, flags);
}

ssize_t emx__sock_recv(int sock, void *buf, size_t cap, int *fds, int *nfds,
                       int flags) {
  struct iovec iov = {.iov_base = buf, .iov_len = cap};
  union {
    char buf[CMSG_SPACE(sizeof(int) * EMX__SOCK_MAX_FDS)];
    struct cmsghdr align;
  } ctl;
  struct msghdr mh = {.msg_iov = &iov,
                      .msg_iovlen = 1,
                      .msg_control = ctl.buf,
                      .msg_controllen = sizeof ctl.buf};
  *nfds = 0;
  ssize_t n;
  do
    n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -errno;

  /* Collect every fd that arrived, whatever else is wrong: an fd we do not
   * keep must be closed, or a hostile peer leaks our descriptor table. */
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
      continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (*nfds < EMX__SOCK_MAX_FDS)
        fds[(*nfds)++] = fd;
      else
        close(fd);
    }
  }
  int bad = (mh.msg_flags & MSG_CTRUNC)  ? -EPROTO
            : (mh.msg_flags & MSG_TRUNC) ? -EMSGSIZE
                                         : 0;
  if (bad) {
    for (int i = 0; i < *nfds; i++)
      close(fds[i]);
    *nfds = 0;
    return bad;
  }
  return n;
}
