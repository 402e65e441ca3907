/* unit_client_pace.c — the hybrid wait's estimate of a model's round trip
 * (src/client/rtt.c): when polling starts and stops; and the switch
 * that turns it off (pace.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/internal.h"

#define US 1000LL

static void no_window_until_known(void **state) {
  (void)state;
  emx__pace p = {0};
  int64_t from = -1, until = -1;
  for (int i = 0; i < 3; i++) {
    emx__pace_note(&p, 1000 * US);
    assert_false(emx__pace_window(&p, 0, 0, &from, &until));
  }
  emx__pace_note(&p, 1000 * US);
  assert_true(emx__pace_window(&p, 0, 0, &from, &until));
  emx__pace_note(&p, 0); /* not a round trip: ignored */
  emx__pace_note(&p, -5);
  assert_int_equal(p.srtt_ns, 1000 * US);
}

static void steady_round_trips_give_a_narrow_window(void **state) {
  (void)state;
  emx__pace p = {0};
  for (int i = 0; i < 40; i++)
    emx__pace_note(&p, 1000 * US);
  int64_t from, until, sent = 5000 * US, late = 150 * US;
  assert_true(emx__pace_window(&p, sent, late, &from, &until));
  /* Polling starts before the reply is due, by the sleep's lateness and
   * a little more, and ends soon after it. */
  assert_true(from < sent + 1000 * US - late);
  assert_true(from > sent + 1000 * US - late - 100 * US);
  assert_true(until > sent + 1000 * US);
  assert_true(until < sent + 1000 * US + 100 * US);
}

static void jitter_widens_the_window(void **state) {
  (void)state;
  emx__pace steady = {0}, jumpy = {0};
  for (int i = 0; i < 40; i++) {
    emx__pace_note(&steady, 1000 * US);
    emx__pace_note(&jumpy, (i % 2 ? 800 : 1200) * US);
  }
  int64_t f1, u1, f2, u2;
  assert_true(emx__pace_window(&steady, 0, 0, &f1, &u1));
  assert_true(emx__pace_window(&jumpy, 0, 0, &f2, &u2));
  assert_true(f2 < f1 - 200 * US); /* starts before the early replies */
  assert_true(u2 > u1 + 200 * US); /* and waits out the late ones */
}

static void follows_a_change_of_pace(void **state) {
  (void)state;
  emx__pace p = {0};
  for (int i = 0; i < 40; i++)
    emx__pace_note(&p, 1000 * US);
  for (int i = 0; i < 40; i++)
    emx__pace_note(&p, 3000 * US); /* a slower model version, a busier
                                      device */
  int64_t from, until;
  assert_true(emx__pace_window(&p, 0, 0, &from, &until));
  assert_true(from > 2800 * US && until > 3000 * US);
}

static void a_short_round_trip_polls_at_once(void **state) {
  (void)state;
  emx__pace p = {0};
  for (int i = 0; i < 10; i++)
    emx__pace_note(&p, 30 * US);
  int64_t from, until, sent = 1000 * US;
  assert_true(emx__pace_window(&p, sent, 150 * US, &from, &until));
  assert_true(from <= sent); /* nothing to sleep through */
  assert_true(until > sent + 30 * US);
}

/* EDGEMUX_WAIT is read once per process: each case in a child. */
static int enabled_in_child(const char *value) {
  pid_t pid = fork();
  if (pid == 0) {
    if (value)
      setenv("EDGEMUX_WAIT", value, 1);
    else
      unsetenv("EDGEMUX_WAIT");
    _exit(emx__pace_enabled() ? 1 : 0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void edgemux_wait_block_turns_it_off(void **state) {
  (void)state;
  assert_int_equal(enabled_in_child(NULL), 1);
  assert_int_equal(enabled_in_child("hybrid"), 1);
  assert_int_equal(enabled_in_child("block"), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(no_window_until_known),
      cmocka_unit_test(steady_round_trips_give_a_narrow_window),
      cmocka_unit_test(jitter_widens_the_window),
      cmocka_unit_test(follows_a_change_of_pace),
      cmocka_unit_test(a_short_round_trip_polls_at_once),
      cmocka_unit_test(edgemux_wait_block_turns_it_off),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
