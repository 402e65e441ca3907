/* server.c — the daemon's I/O thread: one epoll loop for the listener,
 * signals (signalfd) and every client. Engine workers reply to clients
 * directly; this thread only reads, accepts and flushes slow writers. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "daemon/daemon.h"
#include "daemon/front/unix.h"

/* On SIGTERM the daemon finishes in-flight work, but a wedged client or
 * device must not keep it alive forever. */
#define DRAIN_LIMIT_NS (30 * 1000000000LL)

static void count_name(void *arg, const char *name) {
  (void)name;
  ++*(size_t *)arg;
}

static int setup_signals(emxd_server *srv) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  /* Blocked in every thread (the engine's workers inherit the mask when
   * they are created after this), delivered only through the signalfd. */
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  srv->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  return srv->signal_fd < 0 ? -1 : 0;
}

static void accept_all(emxd_server *srv) {
  for (;;) {
    int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno == EMFILE || errno == ENFILE) {
        emx__log(EMX_LOG_WARN,
                 "accept: %s; not accepting until a client "
                 "disconnects",
                 strerror(errno));
        emxd_listen_pause(srv);
      } else if (errno != EAGAIN) {
        emx__log(EMX_LOG_WARN, "accept: %s", strerror(errno));
      }
      return;
    }
    emxd_session_accept(srv, fd);
  }
}

/* stop_watchdog ends the process --stop-timeout-s after SIGTERM, whatever
 * is stuck: a device worker in an invoke that never returns cannot be
 * joined, and the engine's shutdown joins it. Better a logged exit than a
 * daemon systemd has to SIGKILL, or one nothing ends at all. */
static void *stop_watchdog(void *arg) {
  int64_t limit = *(const int64_t *)arg;
  int64_t until = emx__deadline_after(emx_now_ns(), limit);
  struct timespec ts = {0, 0};
  for (int64_t now = emx_now_ns(); now < until; now = emx_now_ns()) {
    int64_t left = until - now;
    ts.tv_sec = (time_t)(left / 1000000000);
    ts.tv_nsec = (long)(left % 1000000000);
    nanosleep(&ts, NULL);
  }
  emx__log(EMX_LOG_ERROR,
           "did not stop within %lld s of SIGTERM (--stop-timeout-s): a "
           "device or request is stuck; exiting without cleaning up",
           (long long)(limit / 1000000000));
  _exit(EXIT_FAILURE);
  return NULL;
}

static void start_watchdog(emxd_server *srv) {
  pthread_t t;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&t, &a, stop_watchdog, &srv->opt->stop_timeout_ns) != 0)
    emx__log(EMX_LOG_WARN, "could not start the --stop-timeout-s watchdog");
  pthread_attr_destroy(&a);
}

static void start_drain(emxd_server *srv) {
  start_watchdog(srv);
  emx__log(EMX_LOG_INFO, "SIGTERM: no new connections; finishing in-flight "
                         "requests");
  srv->draining = true;
  if (srv->listen_fd >= 0)
    epoll_ctl(srv->epfd, EPOLL_CTL_DEL, srv->listen_fd, NULL);
  emxd_listen_close(srv);
  emxd_http_quiesce(srv->http);
  emxd_http_quiesce(srv->metrics);
  emxd_sessions_drain(srv);
}

static void on_signal(emxd_server *srv) {
  struct signalfd_siginfo si;
  while (read(srv->signal_fd, &si, sizeof si) == sizeof si) {
    if (si.ssi_signo == SIGHUP) {
      emx__log(EMX_LOG_INFO, "SIGHUP: rescanning the model repository");
      emxd_job *j = calloc(1, sizeof *j);
      if (j) {
        j->kind = EMXD_JOB_RESCAN;
        j->fd = -1;
        emxd_admin_post(srv, j);
      }
    } else if (!srv->draining) {
      start_drain(srv);
    }
  }
}

static int loop(emxd_server *srv) {
  struct epoll_event evs[64];
  int64_t drain_until = 0;
  for (;;) {
    int64_t now = emx_now_ns();
    int64_t next = emxd_session_check_timeouts(srv, now);
    if (srv->draining) {
      if (!drain_until)
        drain_until = now + DRAIN_LIMIT_NS;
      if ((emxd_sessions_idle(srv) && emxd_http_idle(srv->http) &&
           emxd_zmq_idle(srv->zmq)) ||
          now >= drain_until)
        return 0;
      next = now + 10000000; /* poll the drain every 10 ms */
    }
    int timeout_ms = -1;
    if (next != INT64_MAX)
      timeout_ms = (int)((next - now) / 1000000 + 1);
    int n = epoll_wait(srv->epfd, evs, 64, timeout_ms);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      emx__log(EMX_LOG_ERROR, "epoll_wait: %s", strerror(errno));
      return -1;
    }
    for (int i = 0; i < n; i++) {
      emxd_ev *ev = evs[i].data.ptr;
      if (ev->kind == EMXD_EV_LISTEN) {
        accept_all(srv);
      } else if (ev->kind == EMXD_EV_SIGNAL) {
        on_signal(srv);
      } else if (ev->kind == EMXD_EV_ADMIN) {
        emxd_sessions_answer(srv);
      } else {
        emxd_session_event(srv, ev->ptr, evs[i].events);
      }
    }
  }
}

int emxd_server_run(emxd_options *opt) {
  emxd_server srv = {.opt = opt,
                     .listen_fd = -1,
                     .signal_fd = -1,
                     .cancel_model = emxd_path_cancel_model};
  pthread_mutex_init(&srv.models_lock, NULL);
  pthread_mutex_init(&srv.clients_lock, NULL);
  emx__errbuf err = {{0}};
  int rc = 1;
  srv.started_ns = emx_now_ns();
  srv.listen_ev.kind = EMXD_EV_LISTEN;
  srv.signal_ev.kind = EMXD_EV_SIGNAL;
  srv.admin_ev.kind = EMXD_EV_ADMIN;
  if (setup_signals(&srv) < 0) {
    emx__log(EMX_LOG_ERROR, "signalfd: %s", strerror(errno));
    return 1;
  }

  emx_engine_config cfg;
  emx_engine_config_init(&cfg);
  cfg.devices = opt->device_count ? opt->devices : NULL;
  cfg.device_count = opt->device_count;
  cfg.queue_capacity = opt->queue_capacity;
  cfg.log_level = opt->log_level;
  if (emx_engine_create(&srv.engine, &cfg) < 0) {
    emx__log(EMX_LOG_ERROR, "%s", emx_engine_last_error(NULL));
    goto out;
  }
  emxd_repo_scan(&srv); /* before any client: no admin thread needed yet */
  if (emxd_admin_start(&srv, &err) < 0 || emxd_listen(&srv, &err) < 0) {
    emx__log(EMX_LOG_ERROR, "%s", err.msg);
    goto out;
  }
  /* The HTTP doors run on libmicrohttpd's threads, started after the
   * engine and the repository scan so their first request finds both. */
  if ((opt->http_listen[0] &&
       emxd_http_start(&srv, opt->http_listen, false, &srv.http, &err) < 0) ||
      (opt->metrics_listen[0] &&
       emxd_http_start(&srv, opt->metrics_listen, true, &srv.metrics, &err) <
           0)) {
    emx__log(EMX_LOG_ERROR, "%s", err.msg);
    goto out;
  }
  if (opt->zmq_count && emxd_zmq_start(&srv, &srv.zmq, &err) < 0) {
    emx__log(EMX_LOG_ERROR, "%s", err.msg);
    goto out;
  }
  srv.epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event le = {.events = EPOLLIN, .data.ptr = &srv.listen_ev};
  struct epoll_event se = {.events = EPOLLIN, .data.ptr = &srv.signal_ev};
  struct epoll_event ae = {.events = EPOLLIN, .data.ptr = &srv.admin_ev};
  if (srv.epfd < 0 ||
      epoll_ctl(srv.epfd, EPOLL_CTL_ADD, srv.listen_fd, &le) < 0 ||
      epoll_ctl(srv.epfd, EPOLL_CTL_ADD, srv.signal_fd, &se) < 0 ||
      epoll_ctl(srv.epfd, EPOLL_CTL_ADD, emxd_admin_fd(&srv), &ae) < 0) {
    emx__log(EMX_LOG_ERROR, "epoll: %s", strerror(errno));
    goto out;
  }
  size_t ndev = emx_engine_device_count(srv.engine);
  size_t nmodels = 0;
  emxd_model_names(&srv, count_name, &nmodels);
  emx__log(EMX_LOG_INFO, "edgemuxd %s ready: %zu device(s), %zu model(s)",
           emx_version(), ndev, nmodels);
  rc = loop(&srv) < 0 ? 1 : 0;

out:
  while (srv.sessions)
    emxd_session_close(srv.sessions, NULL);
  emxd_listen_close(&srv);
  /* The admin thread finishes the job it is on (a trial is bounded; an
   * unload waits for running requests, which devices finish) before the
   * engine goes. */
  emxd_admin_stop(&srv);
  /* Shutting the engine down completes any request still running; only
   * then can sessions' arenas be unmapped (the last reference does it). */
  /* Shutting the engine down completes every request, which resumes the
   * HTTP connections waiting on them; only then may libmicrohttpd stop. */
  emx_engine_shutdown(srv.engine);
  emxd_http_stop(srv.http);
  emxd_http_stop(srv.metrics);
  emxd_zmq_stop(srv.zmq);
  emx_engine_destroy(srv.engine);
  emxd_models_free(&srv);
  pthread_mutex_destroy(&srv.models_lock);
  pthread_mutex_destroy(&srv.clients_lock);
  if (srv.epfd > 0)
    close(srv.epfd);
  if (srv.signal_fd >= 0)
    close(srv.signal_fd);
  emx__log(EMX_LOG_INFO, "edgemuxd stopped");
  return rc;
}
