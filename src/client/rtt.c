/* rtt.c — a model's round-trip estimate, which the hybrid wait (pace.c)
 * sleeps by. Apart from pace.c because replies are timed where they are
 * dispatched (io.c), and pace.c reads through io.c. */
#include "client/internal.h"

/* Polling starts GUARD_NS before the earliest likely reply, plus however
 * late a timed sleep wakes here (measured by pace.c). */
#define GUARD_NS 20000
/* ... and stops SLACK_NS after the latest likely one. */
#define SLACK_NS 50000
/* Samples before a model's round trip is trusted. */
#define PACE_MIN_SAMPLES 4

void emx__pace_note(emx__pace *p, int64_t rtt_ns) {
  if (rtt_ns <= 0)
    return;
  if (p->samples == 0) {
    p->srtt_ns = rtt_ns;
    p->rttvar_ns = rtt_ns / 2;
  } else {
    /* RFC 6298's estimator (gains 1/8 and 1/4), as TCP times its
     * retransmissions: the mean and the mean deviation. */
    int64_t err = rtt_ns - p->srtt_ns;
    p->srtt_ns += err / 8;
    p->rttvar_ns += ((err < 0 ? -err : err) - p->rttvar_ns) / 4;
  }
  if (p->samples < PACE_MIN_SAMPLES)
    p->samples++;
}

bool emx__pace_window(const emx__pace *p, int64_t sent_ns, int64_t late,
                      int64_t *poll_from, int64_t *poll_until) {
  if (p->samples < PACE_MIN_SAMPLES)
    return false;
  int64_t early = p->srtt_ns - 2 * p->rttvar_ns;
  if (early < 0)
    early = 0;
  *poll_from = sent_ns + early - late - GUARD_NS;
  *poll_until = sent_ns + p->srtt_ns + 2 * p->rttvar_ns + SLACK_NS;
  return true;
}
