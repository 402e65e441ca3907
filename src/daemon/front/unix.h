/* unix.h — the Unix-socket front door: SEQPACKET framing, the memfd arena
 * and replies (front/unix.c). Everything past framing goes through path.h.
 * All of it runs on the daemon's I/O thread, except the replies engine
 * workers send through path.h's done(). */
#ifndef EMX_DAEMON_FRONT_UNIX_H
#define EMX_DAEMON_FRONT_UNIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/daemon.h"

/* emxd_session_accept takes a connected socket (nonblocking) from the
 * listener: checks the peer, admits it through the path, starts reading. */
void emxd_session_accept(emxd_server *srv, int fd);
/* emxd_session_event handles epoll events for the session tagged `ptr`
 * (skipped when it was closed earlier in the same batch). */
void emxd_session_event(emxd_server *srv, void *ptr, uint32_t events);
/* emxd_session_read handles up to `budget` packets; false when the
 * session was closed. */
bool emxd_session_read(emxd_session *s, size_t budget);
void emxd_session_close(emxd_session *s, const char *why);
/* emxd_session_check_timeouts drops sessions past their handshake
 * deadline; returns the next deadline (INT64_MAX: none). */
int64_t emxd_session_check_timeouts(emxd_server *srv, int64_t now);
/* SIGTERM: read every session dry, then stop reading them. */
void emxd_sessions_drain(emxd_server *srv);
/* emxd_sessions_idle: no session has a request in flight or a reply
 * unsent. */
bool emxd_sessions_idle(emxd_server *srv);
/* emxd_sessions_answer sends the admin thread's finished LOADs and
 * UNLOADs to the sessions that asked (those still open). */
void emxd_sessions_answer(emxd_server *srv);

#endif
