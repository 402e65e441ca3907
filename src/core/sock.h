/* sock.h — SOCK_SEQPACKET send/receive with descriptor passing. */
#ifndef EMX_CORE_SOCK_H
#define EMX_CORE_SOCK_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#define EMX__SOCK_MAX_FDS 4

/* emx__sock_send sends one packet, with fd attached when fd >= 0. Retries
 * on EINTR. flags: e.g. MSG_DONTWAIT. Returns bytes or -errno. MSG_NOSIGNAL
 * is always set: a vanished peer is an error, not a SIGPIPE. */
ssize_t emx__sock_send(int sock, const void *buf, size_t len, int fd,
                       int flags);

/* emx__sock_sendv is emx__sock_send gathering from iov (a header and a
 * payload without copying them together). */
ssize_t emx__sock_sendv(int sock, const struct iovec *iov, int iovcnt, int fd,
                        int flags);

/* emx__sock_recv receives one packet into buf (cap bytes). Received fds go
 * to fds[] (*nfds of them, at most EMX__SOCK_MAX_FDS; extra ones closed).
 * Returns bytes, 0 on orderly shutdown, or -errno; -EMSGSIZE when the packet
 * was larger than cap, and -EPROTO when control data was truncated
 * (MSG_CTRUNC) — in both cases every received fd is already closed. */
ssize_t emx__sock_recv(int sock, void *buf, size_t cap, int *fds, int *nfds,
                       int flags);

#endif
