/* unit_queue.c — the request queue: priority order, FIFO within a
 * priority, O(1) removal from the middle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "engine/queue.h"

static void priority_then_fifo(void **state) {
  emx__queue q;
  emx__qlink l[6];
  emx__queue_init(&q);
  int prio[6] = {0, 1, 2, 1, 0, 2};
  for (int i = 0; i < 6; i++)
    emx__queue_push(&q, &l[i], prio[i]);
  assert_int_equal(q.length, 6);
  int expect[6] = {2, 5, 1, 3, 0, 4};
  for (int i = 0; i < 6; i++)
    assert_ptr_equal(emx__queue_pick(&q), &l[expect[i]]);
  assert_null(emx__queue_pick(&q));
  assert_int_equal(q.length, 0);
}

static void remove_middle(void **state) {
  emx__queue q;
  emx__qlink l[3];
  emx__queue_init(&q);
  for (int i = 0; i < 3; i++)
    emx__queue_push(&q, &l[i], 1);
  emx__queue_remove(&q, &l[1]);
  assert_int_equal(q.length, 2);
  assert_ptr_equal(emx__queue_pick(&q), &l[0]);
  assert_ptr_equal(emx__queue_pick(&q), &l[2]);
  assert_null(emx__queue_pick(&q));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(priority_then_fifo),
      cmocka_unit_test(remove_middle),
  };
  return cmocka_run_group_tests_name("queue", tests, NULL, NULL);
}
