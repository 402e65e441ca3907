/*
 * test_requests.c — the life of a request: cancel, deadlines, backpressure,
 * priorities, callbacks, fire-and-forget, polling, destroying handles early,
 * unloading and destroying the engine with requests in flight.
 *
 * Most cases use one cpu worker and hand_landmark_lite (a few ms an invoke),
 * so that a queue of a few dozen requests keeps the worker busy for a known
 * order of work. No case asserts how long anything took; where a case needs
 * "still queued" it builds a queue long enough (tens of invokes) that the
 * opposite would need the worker to be hundreds of times faster.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "support.h"

#define MS 1000000ll /* nanoseconds */

/* record is what a completion callback saw for one request. */
typedef struct record {
  struct batch *batch; /* owner; its counter is signalled per callback */
  int calls;           /* times the callback ran */
  int status;          /* status passed to it */
  int user_ok;         /* emx_request_user(req) == user */
  uint64_t order;      /* position among the batch's callbacks */
  pthread_t thread;    /* thread the callback ran on */
  char thread_name[16];
} record;

/* batch is `count` requests of one model on one input, each with its own
 * sentinel-filled outputs, handle and callback record. */
typedef struct batch {
  emx_engine *engine;
  emx_model *model;
  size_t nin, nout, count;
  emx_tensor *in;    /* shared input */
  emx_tensor *want;  /* the oracle's outputs for `in` */
  emx_tensor **out;  /* per request */
  emx_request **req; /* per request; NULL when refused or fire-and-forget */
  record *rec;       /* per request */
  counter sequence;  /* hands out record.order */
  counter done;      /* callbacks finished so far */
} batch;

static batch *batch_new(emx_engine *engine, emx_model *model, const char *path,
                        size_t count, uint64_t seed) {
  batch *b = calloc(1, sizeof(*b));
  assert_non_null(b);
  b->engine = engine;
  b->model = model;
  b->count = count;
  b->nin = emx_model_input_count(model);
  b->nout = emx_model_output_count(model);
  b->in = tensors_inputs(model);
  tensors_fill_random(b->in, b->nin, seed);
  b->want = tensors_outputs(model);
  direct_run(path, b->in, b->nin, b->want, b->nout);
  b->out = calloc(count, sizeof(*b->out));
  b->req = calloc(count, sizeof(*b->req));
  b->rec = calloc(count, sizeof(*b->rec));
  assert_non_null(b->out);
  assert_non_null(b->req);
  assert_non_null(b->rec);
  for (size_t i = 0; i < count; i++) {
    b->out[i] = tensors_outputs(model);
    b->rec[i].batch = b;
  }
  counter_init(&b->sequence);
  counter_init(&b->done);
  return b;
}

static void batch_free(batch *b) {
  for (size_t i = 0; i < b->count; i++) {
    emx_request_destroy(b->req[i]);
    tensors_free(b->out[i], b->nout);
  }
  free(b->out);
  free(b->req);
  free(b->rec);
  tensors_free(b->want, b->nout);
  tensors_free(b->in, b->nin);
  counter_destroy(&b->sequence);
  counter_destroy(&b->done);
  free(b);
}

static void on_record(emx_request *req, int status, void *user) {
  record *r = user;
  r->user_ok = emx_request_user(req) == user;
  r->status = status;
  r->calls++;
  r->thread = pthread_self();
  pthread_getname_np(r->thread, r->thread_name, sizeof r->thread_name);
  r->order = counter_add(&r->batch->sequence, 1);
  /* Last: counter_add's lock orders the writes above before the test reads
   * them (after counter_wait). */
  counter_add(&r->batch->done, 1);
}

/* batch_submit submits request i with the options in `opts` (priority,
 * deadline, enqueue timeout, stream; the rest is filled in) and a recording
 * callback. With keep_handle false it is fire-and-forget. */
static int batch_submit(batch *b, size_t i, const emx_request_desc *opts,
                        bool keep_handle) {
  emx_request_desc req = *opts;
  req.model = b->model;
  req.inputs = b->in;
  req.input_count = b->nin;
  req.outputs = b->out[i];
  req.output_count = b->nout;
  req.on_complete = on_record;
  req.user = &b->rec[i];
  b->req[i] = (emx_request *)0x1; /* must be overwritten */
  int rc = emx_submit(b->engine, &req, keep_handle ? &b->req[i] : NULL);
  if (!keep_handle) {
    b->req[i] = NULL;
  } else if (rc != 0) {
    /* A refused submit must leave *out NULL. */
    bool was_null = b->req[i] == NULL;
    b->req[i] = NULL;
    assert_true(was_null);
  }
  return rc;
}

/* batch_submit_all submits every request with default options; asserts 0. */
static void batch_submit_all(batch *b, int priority) {
  emx_request_desc opts;
  emx_request_desc_init(&opts);
  opts.priority = priority;
  opts.enqueue_timeout_ns = -1;
  for (size_t i = 0; i < b->count; i++) {
    assert_int_equal(batch_submit(b, i, &opts, true), 0);
    assert_non_null(b->req[i]);
  }
}

/* expect_ran asserts request i completed normally with the oracle's output. */
static void expect_ran(batch *b, size_t i) {
  assert_int_equal(emx_request_wait(b->req[i], -1), 0);
  assert_true(tensors_equal(b->out[i], b->want, b->nout));
  emx_timings t;
  emx_request_timings(b->req[i], &t);
  assert_true(t.started_ns > 0);
  assert_true(t.finished_ns >= t.started_ns);
  assert_int_equal(t.device, 0);
}

/* expect_never_ran asserts request i completed with `status` without
 * running, and the message contains `word`. */
static void expect_never_ran(batch *b, size_t i, int status, const char *word) {
  assert_int_equal(emx_request_wait(b->req[i], -1), status);
  emx_timings t;
  emx_request_timings(b->req[i], &t);
  assert_true(t.submitted_ns > 0);
  assert_int_equal(t.started_ns, 0);
  assert_int_equal(t.finished_ns, 0);
  assert_int_equal(t.device, -1);
  assert_true(tensors_all_sentinel(b->out[i], b->nout));
  const char *msg = emx_request_error(b->req[i]);
  if (!contains(msg, word))
    print_error("request error \"%s\" lacks \"%s\"\n", msg, word);
  assert_true(contains(msg, word));
}

/* one_worker makes an engine with a single cpu device and the hand model. */
static emx_engine *one_worker(size_t queue_capacity, emx_model **hand) {
  emx_engine *engine = engine_new("cpu:workers=1", queue_capacity);
  assert_int_equal(emx_engine_device_count(engine), 1);
  *hand = model_load(engine, "hand", MODEL_HAND_LITE);
  return engine;
}

/* ---- cancel -------------------------------------------------------------- */

static void cancel_queued(void **state) {
  (void)state;
  emx_model *hand;
  emx_engine *engine = one_worker(128, &hand);
  enum { COUNT = 56, KEEP = 16 }; /* cancel the last 40 */
  batch *b = batch_new(engine, hand, MODEL_HAND_LITE, COUNT, 1);
  batch_submit_all(b, EMX_PRIORITY_NORMAL);

  /* Canceled newest first, in microseconds; the worker needs tens of ms to
   * get through the KEEP requests ahead of them. */
  for (size_t i = COUNT; i-- > KEEP;)
    assert_int_equal(emx_request_cancel(b->req[i]), 0);

  for (size_t i = 0; i < KEEP; i++)
    expect_ran(b, i);
  for (size_t i = KEEP; i < COUNT; i++)
    expect_never_ran(b, i, EMX_ECANCELED, "cancel");

  /* Complete requests cannot be canceled, whatever their status. */
  assert_int_equal(emx_request_cancel(b->req[0]), EMX_EALREADY);
  assert_int_equal(emx_request_cancel(b->req[COUNT - 1]), EMX_EALREADY);
  assert_int_equal(emx_request_wait(b->req[COUNT - 1], 0), EMX_ECANCELED);

  assert_true(counter_wait(&b->done, COUNT));
  for (size_t i = 0; i < COUNT; i++) {
    assert_int_equal(b->rec[i].calls, 1);
    assert_int_equal(b->rec[i].status, i < KEEP ? 0 : EMX_ECANCELED);
  }
  emx_stats st;
  assert_int_equal(emx_model_stats(hand, &st), 0);
  assert_int_equal(st.requests, COUNT);
  assert_int_equal(st.errors, COUNT - KEEP);
  assert_int_equal(st.timeouts, 0);
  assert_int_equal(st.queue_depth, 0);

  emx_engine_destroy(engine);
  batch_free(b);
}

/* cancel_running: a request the worker has started cannot be stopped. */
static void cancel_running(void **state) {
  (void)state;
  emx_model *hand;
  emx_engine *engine = one_worker(0, &hand);
  batch *b = batch_new(engine, hand, MODEL_HAND_LITE, 1, 2);
  batch_submit_all(b, EMX_PRIORITY_NORMAL);
  emx_timings t;
  do {
    emx_request_timings(b->req[0], &t);
  } while (t.started_ns == 0);
  int rc = emx_request_cancel(b->req[0]);
  /* Usually still running (EBUSY); on a slow machine perhaps done. */
  if (rc != EMX_EALREADY)
    assert_int_equal(rc, EMX_EBUSY);
  expect_ran(b, 0);
  emx_engine_destroy(engine);
  batch_free(b);
}

/* cancel_in_stream: canceled requests still complete in stream order. */
static void cancel_in_stream(void **state) {
  (void)state;
  emx_model *hand;
  emx_engine *engine = one_worker(0, &hand);
  emx_stream *stream;
  assert_int_equal(emx_stream_create(engine, &stream), 0);
  batch *b = batch_new(engine, hand, MODEL_HAND_LITE, 40, 3);
  emx_request_desc opts;
  emx_request_desc_init(&opts);
  opts.stream = stream;
  for (size_t i = 0; i < b->count; i++)
    assert_int_equal(batch_submit(b, i, &opts, true), 0);
  /* Cancel every other request of the last 20, oldest first. */
  for (size_t i = 20; i < b->count; i += 2)
    assert_int_equal(emx_request_cancel(b->req[i]), 0);

  assert_true(counter_wait(&b->done, b->count));
  for (size_t i = 0; i < b->count; i++) {
    assert_int_equal(b->rec[i].calls, 1);
    assert_int_equal(b->rec[i].order, i);
    if (i >= 20 && i % 2 == 0)
      expect_never_ran(b, i, EMX_ECANCELED, "cancel");
    else
      expect_ran(b, i);
  }
  emx_stream_destroy(stream);
  emx_engine_destroy(engine);
  batch_free(b);
}

/* ---- deadlines ----------------------------------------------------------- */

static void deadline_past(void **state) {
  (void)state;
  emx_model *hand;
  emx_engine *engine = one_worker(0, &hand);
  batch *b = batch_new(engine, hand, MODEL_HAND_LITE, 2, 4);

  /* emx_infer: the status comes back directly, nothing ran. */
  emx_request_desc req;
  request_init(&req, hand, b->in, b->out[0]);
  req.deadline_ns = emx_now_ns() - 1;
  emx_timings t;
  assert_int_equal(emx_infer(engine, &req, &t), EMX_ETIMEDOUT);
  assert_int_equal(t.started_ns, 0);
  assert_int_equal(t.device, -1);
  assert_true(tensors_all_sentinel(b->out[0], b->nout));

  /* emx_submit: accepted, then completes with EMX_ETIMEDOUT. */
  emx_request_desc opts;
  emx_request_desc_init(&opts);
  opts.deadline_ns = emx_now_ns() - 1;
  assert_int_equal(batch_submit(b, 1, &opts, true), 0);
  expect_never_ran(b, 1, EMX_ETIMEDOUT, "deadline");
  assert_true(counter_wait(&b->done, 1));
  assert_int_equal(b->rec[1].status, EMX_ETIMEDOUT);

  emx_stats st;
  assert_int_equal(emx_model_stats(hand, &st), 0);
  assert_int_equal(st.requests, 2);
  assert_int_equal(st.errors, 2);
  assert_int_equal(st.timeouts, 2);

  emx_engine_destroy(engine);
  batch_free(b);
}

/* deadline_behind_queue: requests with a deadline a few ms ahead, queued
 * behind 40 invokes (~100 ms of work), time out unless they started in
 * time. */
static void deadline_behind_queue(void **state) {
  (void)state;
  enum { BLOCKERS = 40, LATE = 10 };
  emx_model *hand;
  emx_engine *engine = one_worker(128, &hand);
  batch *b = batch_new(engine, hand, MODEL_HAND_LITE, BLOCKERS + LATE, 5);
  emx_request_desc opts;
  emx_request_desc_init(&opts);
  for (size_t i = 0; i < BLOCKERS; i++)
    assert_int_equal(batch_submit(b, i, &opts, true), 0);
  int64_t deadline = emx_now_ns() + 5 * MS;
  opts.deadline_ns = deadline;
  for (size_t i = BLOCKERS; i < b->count; i++)
    assert_int_equal(batch_submit(b, i, &opts, true), 0);

  for (size_t i = 0; i < BLOCKERS; i++)
    expect_ran(b, i);
  uint64_t timeouts = 0;
  for (size_t i = BLOCKERS; i < b->count; i++) {
    int rc = emx_request_wait(b->req[i], -1);
    if (rc == EMX_ETIMEDOUT) {
      expect_never_ran(b, i, EMX_ETIMEDOUT, "deadline");
      timeouts++;
    } else {
      /* Only a request that started by its deadline may run. */
      expect_ran(b, i);
      emx_timings t;
      emx_request_timings(b->req[i], &t);
      assert_true(t.started_ns <= deadline);
    }
  }
  assert_true(timeouts >= 1);

  assert_true(counter_wait(&b->done, b->count));
  emx_stats st;
  assert_int_equal(emx_model_stats(hand, &st), 0);
  assert_int_equal(st.requests, b->count);
  assert_int_equal(st.errors, timeouts);
  assert_int_equal(st.timeouts, timeouts);
  emx_engine_destroy(engine);
  batch_free(b);
}

/* ---- backpressure -------------------------------------------------------- */

static void backpressure_fail_fast(void **state) {
  (void)state;
  emx_model *hand;
  emx_engine *engine = one_worker(4, &hand);
  batch *b = batch_new(engine, hand, MODEL_HAND_LITE, 30, 6);
  emx_request_desc opts;
  emx_request_desc_init(&opts);
  assert_int_equal(opts.enqueue_timeout_ns, 0); /* the default */
  size_t busy = 0, accepted = 0;
  for (size_t i = 0; i < b->count; i++) {
    int rc = batch_submit(b, i, &opts, true);
    if (rc == EMX_EBUSY) {
      busy++;
      assert_null(b->req[i]);
      const char *msg = emx_engine_last_error(engine);
      if (!contains(msg, "queue") || !contains(msg, "full"))
        print_error("EBUSY message: \"%s\"\n", msg);
      assert_true(contains(msg, "queue"));
      assert_true(contains(msg, "full"));
    } else {
      assert_int_equal(rc, 0);
      assert_non_null(b->req[i]);
      accepted++;
    }
  }
  /* The queue holds 4 (plus 1 running once the worker took it), and thirty
   * submits take far less than the dozens of invokes needed to make room. */
  assert_true(busy >= 1);
  assert_true(accepted >= 4);
  for (size_t i = 0; i < b->count; i++) {
    if (b->req[i] != NULL)
      expect_ran(b, i);
    else
      assert_true(tensors_all_sentinel(b->out[i], b->nout));
  }
  /* Refused requests get no callback. */
  assert_true(counter_wait(&b->done, accepted));
  emx_engine_destroy(engine);
  assert_int_equal(counter_get(&b->done), accepted);
  for (size_t i = 0; i < b->count; i++)
    assert_int_equal(b->rec[i].calls, b->req[i] != NULL ? 1 : 0);
  batch_free(b);
}

static void backpressure_wait_forever(void **state) {
  (void)state;
  emx_model *hand;
  emx_engine *engine = one_worker(4, &hand);
  batch *b = batch_new(engine, hand, MODEL_HAND_LITE, 30, 7);
  emx_request_desc opts;
  emx_request_desc_init(&opts);
  opts.enqueue_timeout_ns = -1;
  for (size_t i = 0; i < b->count; i++)
    assert_int_equal(batch_submit(b, i, &opts, true), 0);
  for (size_t i = 0; i < b->count; i++)
    expect_ran(b, i);
  emx_engine_destroy(engine);
  batch_free(b);
}

static void backpressure_wait_bounded(void **state) {
  (void)state;
  emx_model *hand;
  emx_engine *engine = one_worker(4, &hand);
  batch *b = batch_new(engine, hand, MODEL_HAND_LITE, 30, 8);
  emx_request_desc opts;
  emx_request_desc_init(&opts);
  opts.enqueue_timeout_ns = 1 * MS;
  for (size_t i = 0; i < b->count; i++) {
    int rc = batch_submit(b, i, &opts, true);
    if (rc == EMX_EBUSY) {
      assert_null(b->req[i]);
      assert_true(contains(emx_engine_last_error(engine), "full"));
    } else {
      assert_int_equal(rc, 0);
    }
  }
  for (size_t i = 0; i < b->count; i++)
    if (b->req[i] != NULL)
      expect_ran(b, i);
  emx_engine_destroy(engine);
  batch_free(b);
}

/* timeouts_near_int64_max: a relative timeout near INT64_MAX means "wait",
 * not a deadline wrapped into the past (signed overflow: a full queue
 * answered EMX_EBUSY at once and a wait EMX_EAGAIN at once). */
static void timeouts_near_int64_max(void **state) {
  (void)state;
  emx_model *hand;
  emx_engine *engine = one_worker(4, &hand);
  batch *b = batch_new(engine, hand, MODEL_HAND_LITE, 30, 13);
  emx_request_desc opts;
  emx_request_desc_init(&opts);
  opts.enqueue_timeout_ns = INT64_MAX;
  for (size_t i = 0; i < b->count; i++)
    assert_int_equal(batch_submit(b, i, &opts, true), 0);
  /* The last one is still behind most of the others here. */
  assert_int_equal(emx_request_wait(b->req[b->count - 1], INT64_MAX), 0);
  assert_int_equal(emx_request_wait(b->req[0], INT64_MAX - 1), 0);
  for (size_t i = 0; i < b->count; i++)
    expect_ran(b, i);
  emx_engine_destroy(engine);
  batch_free(b);
}

/* cancel_completes_on_engine_thread: the header promises every completion
 * callback an engine thread; a cancel ran it inside the caller's
 * emx_request_cancel (where the caller may hold locks the callback takes). */
static void cancel_completes_on_engine_thread(void **state) {
  (void)state;
  emx_model *hand;
  emx_engine *engine = one_worker(128, &hand);
  enum { COUNT = 40, KEEP = 8 };
  batch *b = batch_new(engine, hand, MODEL_HAND_LITE, COUNT, 14);
  batch_submit_all(b, EMX_PRIORITY_NORMAL);
  for (size_t i = COUNT; i-- > KEEP;) {
    assert_int_equal(emx_request_cancel(b->req[i]), 0);
    /* Canceled: a second cancel has nothing left to do, whether or not the
     * worker completed it yet. */
    assert_int_equal(emx_request_cancel(b->req[i]), EMX_EALREADY);
  }
  for (size_t i = 0; i < KEEP; i++)
    expect_ran(b, i);
  for (size_t i = KEEP; i < COUNT; i++) {
    expect_never_ran(b, i, EMX_ECANCELED, "cancel");
    assert_int_equal(b->rec[i].calls, 1);
    assert_false(pthread_equal(b->rec[i].thread, pthread_self()));
    if (strncmp(b->rec[i].thread_name, "emx:", 4) != 0)
      fail_msg("request %zu completed on thread \"%s\", not a worker", i,
               b->rec[i].thread_name);
  }
  emx_engine_destroy(engine);
  batch_free(b);
}

/* waiter: one thread in emx_request_wait while the engine is destroyed. */
typedef struct waiter {
  emx_request *req;
  int status;
  counter *started; /* counted once the thread is about to wait */
} waiter;

static void *wait_thread(void *arg) {
  waiter *w = arg;
  counter_add(w->started, 1);
  w->status = emx_request_wait(w->req, -1);
  return NULL;
}

/* destroy_engine_while_waiting: emx_request_wait may run while
 * emx_engine_destroy frees the devices (the handles stay valid). The old
 * wait read its request's device between two loads of its state, a window
 * of a few instructions that this case exercises but does not reliably hit
 * (it passed on the old code under TSan); the fix is that wait has no path
 * to the device any more (the request carries the worker's CPU). */
static void destroy_engine_while_waiting(void **state) {
  (void)state;
  emx_model *hand;
  emx_engine *engine = one_worker(128, &hand);
  enum { COUNT = 24 };
  batch *b = batch_new(engine, hand, MODEL_HAND_LITE, COUNT, 15);
  batch_submit_all(b, EMX_PRIORITY_NORMAL);
  counter started;
  counter_init(&started);
  waiter w[COUNT];
  pthread_t t[COUNT];
  for (size_t i = 0; i < COUNT; i++) {
    w[i] = (waiter){.req = b->req[i], .started = &started};
    assert_int_equal(pthread_create(&t[i], NULL, wait_thread, &w[i]), 0);
  }
  assert_true(counter_wait(&started, COUNT));
  emx_engine_destroy(engine); /* the queued ones complete EMX_ESHUTDOWN */
  for (size_t i = 0; i < COUNT; i++) {
    pthread_join(t[i], NULL);
    assert_true(w[i].status == 0 || w[i].status == EMX_ESHUTDOWN);
    assert_int_equal(emx_request_wait(b->req[i], 0), w[i].status);
  }
  counter_destroy(&started);
  batch_free(b);
}

/* ---- priorities ---------------------------------------------------------- */

static void priorities(void **state) {
  (void)state;
  enum { LOW = 20, HIGH = 5 };
  emx_model *hand;
  emx_engine *engine = one_worker(64, &hand);
  batch *b = batch_new(engine, hand, MODEL_HAND_LITE, LOW + HIGH, 9);
  emx_request_desc opts;
  emx_request_desc_init(&opts);
  assert_int_equal(opts.priority, EMX_PRIORITY_NORMAL);
  opts.priority = EMX_PRIORITY_LOW;
  for (size_t i = 0; i < LOW; i++)
    assert_int_equal(batch_submit(b, i, &opts, true), 0);
  opts.priority = EMX_PRIORITY_HIGH;
  for (size_t i = LOW; i < b->count; i++)
    assert_int_equal(batch_submit(b, i, &opts, true), 0);

  emx_timings t[LOW + HIGH];
  for (size_t i = 0; i < b->count; i++) {
    expect_ran(b, i);
    emx_request_timings(b->req[i], &t[i]);
  }
  for (size_t h = LOW; h < b->count; h++) {
    /* Every LOW request still waiting when h arrived starts after h. One may
     * have been taken by the worker just before h arrived and stamped its
     * start just after: at most one such. */
    int overtaken = 0;
    for (size_t l = 0; l < LOW; l++)
      if (t[l].started_ns > t[h].submitted_ns &&
          t[l].started_ns < t[h].started_ns)
        overtaken++;
    assert_true(overtaken <= 1);
    /* Equal priorities run in arrival order. */
    if (h > LOW)
      assert_true(t[h].started_ns > t[h - 1].started_ns);
  }
  /* The HIGH ones did jump the queue. */
  assert_true(t[LOW - 1].started_ns > t[LOW + HIGH - 1].started_ns);
  for (size_t l = 1; l < LOW; l++)
    assert_true(t[l].started_ns > t[l - 1].started_ns);

  emx_engine_destroy(engine);
  batch_free(b);
}

/* ---- callbacks ----------------------------------------------------------- */

/* callbacks_once: each request's callback runs exactly once, with its own
 * user pointer and its final status. */
static void callbacks_once(void **state) {
  (void)state;
  emx_model *hand;
  emx_engine *engine = one_worker(64, &hand);
  batch *b = batch_new(engine, hand, MODEL_HAND_LITE, 20, 10);
  for (size_t i = 0; i < b->count; i++) {
    emx_request_desc opts;
    emx_request_desc_init(&opts);
    if (i % 4 == 3)
      opts.deadline_ns = emx_now_ns() - 1;
    assert_int_equal(batch_submit(b, i, &opts, true), 0);
  }
  for (size_t i = 0; i < b->count; i++) {
    if (i % 4 == 3)
      expect_never_ran(b, i, EMX_ETIMEDOUT, "deadline");
    else
      expect_ran(b, i);
  }
  assert_true(counter_wait(&b->done, b->count));
  emx_engine_destroy(engine); /* no callback can come after this */
  assert_int_equal(counter_get(&b->done), b->count);
  for (size_t i = 0; i < b->count; i++) {
    assert_int_equal(b->rec[i].calls, 1);
    assert_true(b->rec[i].user_ok);
    assert_int_equal(b->rec[i].status, i % 4 == 3 ? EMX_ETIMEDOUT : 0);
    assert_ptr_equal(emx_request_user(b->req[i]), &b->rec[i]);
  }
  batch_free(b);
}

/* fire_and_forget: no handle, only the callback. */
static void fire_and_forget(void **state) {
  (void)state;
  emx_model *hand;
  emx_engine *engine = one_worker(64, &hand);
  batch *b = batch_new(engine, hand, MODEL_HAND_LITE, 10, 11);
  emx_request_desc opts;
  emx_request_desc_init(&opts);
  for (size_t i = 0; i < b->count; i++) {
    assert_int_equal(batch_submit(b, i, &opts, false), 0);
    assert_null(b->req[i]);
  }
  assert_true(counter_wait(&b->done, b->count));
  for (size_t i = 0; i < b->count; i++) {
    assert_int_equal(b->rec[i].calls, 1);
    assert_int_equal(b->rec[i].status, 0);
    assert_true(b->rec[i].user_ok);
    assert_true(tensors_equal(b->out[i], b->want, b->nout));
  }
  emx_engine_destroy(engine);
  batch_free(b);
}

/* ---- waiting and handles ------------------------------------------------- */

static void wait_pending(void **state) {
  (void)state;
  enum { BLOCKERS = 30 };
  emx_model *hand;
  emx_engine *engine = one_worker(64, &hand);
  batch *b = batch_new(engine, hand, MODEL_HAND_LITE, BLOCKERS + 1, 12);
  batch_submit_all(b, EMX_PRIORITY_NORMAL);
  emx_request *last = b->req[BLOCKERS];

  assert_int_equal(emx_request_poll(last), EMX_EAGAIN);
  assert_int_equal(emx_request_wait(last, 0), EMX_EAGAIN);
  assert_int_equal(emx_request_wait(last, 1 * MS), EMX_EAGAIN);
  emx_timings t;
  emx_request_timings(last, &t);
  assert_true(t.submitted_ns > 0);
  assert_true(t.submitted_ns <= emx_now_ns());
  assert_int_equal(t.started_ns, 0);
  assert_string_equal(emx_request_error(last), "");

  for (size_t i = 0; i <= BLOCKERS; i++)
    expect_ran(b, i);
  /* The final status stays. */
  assert_int_equal(emx_request_poll(last), 0);
  assert_int_equal(emx_request_wait(last, 0), 0);
  assert_int_equal(emx_request_cancel(last), EMX_EALREADY);
  emx_engine_destroy(engine);
  batch_free(b);
}

/* destroy_pending_handle: a handle released before its request completes;
 * the request still runs, writes its outputs and calls back. */
static void destroy_pending_handle(void **state) {
  (void)state;
  emx_model *hand;
  emx_engine *engine = one_worker(64, &hand);
  batch *b = batch_new(engine, hand, MODEL_HAND_LITE, 20, 13);
  batch_submit_all(b, EMX_PRIORITY_NORMAL);
  for (size_t i = 5; i < b->count; i++) {
    emx_request_destroy(b->req[i]);
    b->req[i] = NULL;
  }
  assert_true(counter_wait(&b->done, b->count));
  for (size_t i = 0; i < b->count; i++) {
    assert_int_equal(b->rec[i].calls, 1);
    assert_int_equal(b->rec[i].status, 0);
    assert_true(tensors_equal(b->out[i], b->want, b->nout));
  }
  emx_engine_destroy(engine);
  batch_free(b);
}

/* unload_with_pending: unloading a model lets submitted requests run. */
static void unload_with_pending(void **state) {
  (void)state;
  emx_model *hand;
  emx_engine *engine = one_worker(64, &hand);
  batch *b = batch_new(engine, hand, MODEL_HAND_LITE, 20, 14);
  batch_submit_all(b, EMX_PRIORITY_NORMAL);
  assert_int_equal(emx_model_unload(engine, hand), 0);
  emx_model *found = NULL;
  assert_int_equal(emx_model_find(engine, "hand", &found), EMX_ENOENT);
  assert_null(found);
  for (size_t i = 0; i < b->count; i++)
    expect_ran(b, i);
  /* The name is free again. */
  emx_model *again = model_load(engine, "hand", MODEL_HAND_LITE);
  assert_non_null(again);
  emx_engine_destroy(engine);
  batch_free(b);
}

/* ---- shutdown with requests in flight ------------------------------------ */

static void check_shut_down(batch *b, size_t *shutdown_count) {
  *shutdown_count = 0;
  for (size_t i = 0; i < b->count; i++) {
    int rc = emx_request_poll(b->req[i]);
    if (rc == EMX_ESHUTDOWN) {
      expect_never_ran(b, i, EMX_ESHUTDOWN, "shut");
      (*shutdown_count)++;
    } else {
      assert_int_equal(rc, 0);
      expect_ran(b, i);
    }
    assert_int_equal(b->rec[i].calls, 1);
    assert_int_equal(b->rec[i].status, rc);
  }
}

static void destroy_engine_in_flight(void **state) {
  (void)state;
  emx_model *hand;
  emx_engine *engine = one_worker(256, &hand);
  batch *b = batch_new(engine, hand, MODEL_HAND_LITE, 150, 15);
  batch_submit_all(b, EMX_PRIORITY_NORMAL);
  emx_engine_destroy(engine);
  /* Every request is complete and called back by now: no engine thread is
   * left to do it later. */
  assert_int_equal(counter_get(&b->done), b->count);
  size_t shut = 0;
  check_shut_down(b, &shut);
  assert_true(shut >= 1);
  batch_free(b); /* destroys the handles, after their engine */
}

static void shutdown_in_flight(void **state) {
  (void)state;
  emx_model *hand;
  emx_engine *engine = one_worker(256, &hand);
  batch *b = batch_new(engine, hand, MODEL_HAND_LITE, 120, 16);
  batch_submit_all(b, EMX_PRIORITY_NORMAL);
  emx_engine_shutdown(engine);
  emx_engine_shutdown(engine); /* idempotent */
  assert_true(counter_wait(&b->done, b->count));
  size_t shut = 0;
  check_shut_down(b, &shut);
  assert_true(shut >= 1);
  emx_engine_destroy(engine);
  batch_free(b);
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(cancel_queued),
      cmocka_unit_test(cancel_running),
      cmocka_unit_test(cancel_in_stream),
      cmocka_unit_test(deadline_past),
      cmocka_unit_test(deadline_behind_queue),
      cmocka_unit_test(backpressure_fail_fast),
      cmocka_unit_test(backpressure_wait_forever),
      cmocka_unit_test(backpressure_wait_bounded),
      cmocka_unit_test(timeouts_near_int64_max),
      cmocka_unit_test(cancel_completes_on_engine_thread),
      cmocka_unit_test(destroy_engine_while_waiting),
      cmocka_unit_test(priorities),
      cmocka_unit_test(callbacks_once),
      cmocka_unit_test(fire_and_forget),
      cmocka_unit_test(wait_pending),
      cmocka_unit_test(destroy_pending_handle),
      cmocka_unit_test(unload_with_pending),
      cmocka_unit_test(destroy_engine_in_flight),
      cmocka_unit_test(shutdown_in_flight),
  };
  return cmocka_run_group_tests_name("requests", tests, NULL, NULL);
}
