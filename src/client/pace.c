/* pace.c — the hybrid wait of a synchronous call (emx_client_infer).
 *
 * A blocked reader that edgemuxd wakes pays the wake-up of its CPU: on an
 * idle CPU that is the way out of a halt (or a deep C-state), and on the
 * virtual machines these tests run on it measured 80-150 us a request
 * (`perf sched timehist`: the client's scheduling delay after the worker's
 * wake-up), a tenth of a 1 ms inference. The separate program that edgemux
 * replaces never sleeps between its invokes, so it never pays it.
 *
 * So a lone synchronous request whose model's round trip is known sleeps
 * until shortly before its reply is due, and polls the socket from then
 * on, as Linux's hybrid block polling does: the wake-up is paid while the
 * daemon is still working. The poll gives way at once when anything else
 * wants the CPU (a sched_yield that returns late means something ran), so
 * it only takes time that would otherwise be idle; past the end of the
 * likely window it blocks as before. EDGEMUX_WAIT=block turns it off
 * (battery-powered machines: the poll costs power, not throughput). */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/internal.h"
#include "core/clock.h"

/* A sched_yield that took longer than this ran someone else: stop. */
#define YIELD_BAIL_NS 30000
/* A timed sleep's lateness before the first is measured. */
#define LATE_INIT_NS 100000
/* A poll lasts at most a quarter of the round trip (and never over 1 ms):
 * a jittery or slow model's reply may then come after it gave up, but the
 * CPU it spends stays a small part of the wait. */
#define POLL_SHARE 4
#define POLL_MAX_NS 1000000

/* After a poll that gave way, the next lone requests block: 1, 2, 4 ...
 * up to this many, until a poll gets its reply again. A busy machine
 * thus pays a failed poll (a timer wake-up, a recv, a yield) rarely. */
#define BACKOFF_MAX 64

/* How late a timed sleep wakes: a property of the machine, so one for the
 * process. Relaxed: a lost update only delays the average. */
static _Atomic int64_t late_ns = LATE_INIT_NS;

bool emx__pace_enabled(void) {
  static _Atomic int on = -1; /* read once: the environment of the first
                                 call (threads that race read the same) */
  int v = atomic_load_explicit(&on, memory_order_relaxed);
  if (v < 0) {
    const char *e = getenv("EDGEMUX_WAIT");
    v = !(e && strcmp(e, "block") == 0);
    atomic_store_explicit(&on, v, memory_order_relaxed);
  }
  return v;
}

static void sleep_until(int fd, int64_t when) {
  for (;;) {
    int64_t left = when - emx_now_ns();
    if (left <= 0)
      return;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    struct timespec ts = {.tv_sec = left / 1000000000,
                          .tv_nsec = left % 1000000000};
    int n = ppoll(&pfd, 1, &ts, NULL);
    if (n < 0 && errno == EINTR)
      continue;   /* a signal: sleep out the rest */
    if (n == 0) { /* the timer, not the reply */
      int64_t late = emx_now_ns() - when;
      int64_t avg = atomic_load_explicit(&late_ns, memory_order_relaxed);
      atomic_store_explicit(&late_ns, avg + (late - avg) / 8,
                            memory_order_relaxed);
    }
    return;
  }
}

void emx__client_pace_wait(emx_client *c, emx_client_request *r) {
  emx__pending *p = &r->p;
  const emx__pace *pace = r->pace;
  int64_t from, until;
  if (!pace || p->done)
    return;
  if (c->pace_skip) {
    c->pace_skip--;
    return;
  }
  if (c->reading || c->inflight != 1 || !emx__pace_enabled() ||
      !emx__pace_window(pace, r->submitted_ns,
                        atomic_load_explicit(&late_ns, memory_order_relaxed),
                        &from, &until))
    return;
  int64_t cap = pace->srtt_ns / POLL_SHARE; /* pace is not read unlocked */
  if (cap > POLL_MAX_NS)
    cap = POLL_MAX_NS;
  c->reading = 1; /* the reader role, as emx__client_wait takes it */
  int fd = c->sock;
  pthread_mutex_unlock(&c->mu);
  sleep_until(fd, from);
  int64_t stop = emx_now_ns() + cap;
  if (stop < until)
    until = stop;
  pthread_mutex_lock(&c->mu);
  while (!p->done && !c->broken) {
    if (emx__client_read_now(c) != 0) {
      /* A packet, or broken: other threads' requests may be done (the
       * connection had one in flight at submit, not necessarily now). */
      pthread_cond_broadcast(&c->cv);
      continue;
    }
    int64_t t = emx_now_ns();
    if (t >= until)
      break;
    pthread_mutex_unlock(&c->mu);
    sched_yield();
    int64_t took = emx_now_ns() - t;
    pthread_mutex_lock(&c->mu);
    if (took > YIELD_BAIL_NS) { /* the CPU is wanted: block instead */
      c->pace_backoff = c->pace_backoff ? 2 * c->pace_backoff : 1;
      if (c->pace_backoff > BACKOFF_MAX)
        c->pace_backoff = BACKOFF_MAX;
      c->pace_skip = c->pace_backoff;
      break;
    }
  }
  if (p->done)
    c->pace_backoff = 0;
  c->reading = 0;
  pthread_cond_broadcast(&c->cv);
}
