/*
 * test_concurrency.c — many application threads on few devices.
 *
 * many_streams: 32 threads x 200 requests over two models on two cpu
 * devices, each thread with its own stream and up to 8 requests in flight.
 * Every output must equal the oracle's for its input, each stream's
 * callbacks must come in submission order, a completed request implies every
 * earlier one on its stream is complete, and the model stats must count
 * exactly what was sent.
 *
 * shared_stream: several devices, one stream, many threads. Completion order
 * must equal the order in which emx_submit returned.
 *
 * Worker threads never call cmocka asserts (they longjmp into the main
 * thread's stack); they count problems, and the main thread asserts the
 * counts are zero.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "support.h"

#define THREADS 32     /* application threads, one stream each */
#define PER_THREAD 200 /* requests per thread (the most; see per_thread) */
#define WINDOW 8       /* requests a thread keeps in flight */
#define POOL 8         /* distinct inputs per model */
#define MODELS 2

/* per_thread is PER_THREAD, or a quarter of it under a sanitizer: 6400
 * invokes took 128 s of the TSan suite (at load 14), and a race shows on
 * the first requests of the 32 threads as well as on the 200th. */
static size_t per_thread = PER_THREAD;

/* model_pool is one loaded model with POOL inputs and the oracle's outputs
 * for them. */
typedef struct model_pool {
  emx_model *model;       /* loaded in the test's engine */
  size_t nin, nout;       /* tensor counts */
  emx_tensor *in[POOL];   /* seeded random inputs */
  emx_tensor *want[POOL]; /* oracle outputs for in[i] */
} model_pool;

static void pool_init(model_pool *p, emx_engine *engine, const char *name,
                      const char *path, uint64_t seed) {
  p->model = model_load(engine, name, path);
  p->nin = emx_model_input_count(p->model);
  p->nout = emx_model_output_count(p->model);
  oracle *o = oracle_create(path);
  for (int i = 0; i < POOL; i++) {
    p->in[i] = tensors_inputs(p->model);
    p->want[i] = tensors_outputs(p->model);
    tensors_fill_random(p->in[i], p->nin, seed + (uint64_t)i);
    oracle_run(o, p->in[i], p->nin, p->want[i], p->nout);
  }
  oracle_destroy(o);
}

static void pool_free(model_pool *p) {
  for (int i = 0; i < POOL; i++) {
    tensors_free(p->in[i], p->nin);
    tensors_free(p->want[i], p->nout);
  }
}

/* job is one request of a client; it outlives the request's callback. */
typedef struct job {
  void *owner;      /* the client or shared state that submitted it */
  uint64_t seq;     /* submission index on the stream */
  int model;        /* index into the pools */
  int input;        /* index into the pool's inputs */
  emx_tensor *out;  /* fresh output buffers, sentinel-filled */
  emx_request *req; /* handle, or NULL when fire-and-forget */
  int cb_status;    /* status the callback saw */
  int cb_calls;     /* times the callback ran */
} job;

/* client is one application thread with its own stream. */
typedef struct client {
  emx_engine *engine; /* shared */
  model_pool *pools;  /* shared, read-only */
  emx_stream *stream; /* this client's stream */
  int id;             /* thread index */
  job jobs[PER_THREAD];
  pthread_mutex_t mu;         /* guards order[] and ordered (callbacks) */
  uint64_t order[PER_THREAD]; /* seq of each callback, in callback order */
  size_t ordered;             /* callbacks so far */
  counter *callbacks;         /* all clients' callbacks, for the main thread */
  /* Problems seen, asserted zero by the main thread. */
  int submit_failures;   /* emx_submit did not return 0 */
  int bad_status;        /* a request completed with non-zero status */
  int wrong_output;      /* output differs from the oracle */
  int wrong_user;        /* emx_request_user differs from desc.user */
  int visibility_breaks; /* later request done while an earlier pending */
  uint64_t sent[MODELS]; /* requests sent per model */
} client;

static void on_complete(emx_request *req, int status, void *user) {
  job *j = user;
  client *c = j->owner;
  pthread_mutex_lock(&c->mu);
  if (emx_request_user(req) != user)
    c->wrong_user++;
  j->cb_status = status;
  j->cb_calls++;
  if (c->ordered < per_thread)
    c->order[c->ordered] = j->seq;
  c->ordered++;
  pthread_mutex_unlock(&c->mu);
  counter_add(c->callbacks, 1);
}

/* retire waits for job i, checks it and frees its buffers. */
static void retire(client *c, job *j) {
  model_pool *p = &c->pools[j->model];
  int rc = emx_request_wait(j->req, -1);
  if (rc != 0) {
    c->bad_status++;
    fprintf(stderr, "client %d request %llu: %s: %s\n", c->id,
            (unsigned long long)j->seq, emx_err_name(rc),
            emx_request_error(j->req));
  } else if (!tensors_equal(j->out, p->want[j->input], p->nout)) {
    c->wrong_output++;
  }
  emx_request_destroy(j->req);
  j->req = NULL;
  tensors_free(j->out, p->nout);
  j->out = NULL;
}

static void *client_main(void *arg) {
  client *c = arg;
  size_t head = 0; /* oldest job still in flight */
  for (size_t i = 0; i < per_thread; i++) {
    job *j = &c->jobs[i];
    j->owner = c;
    j->seq = i;
    j->model = (int)((i + (size_t)c->id) % MODELS);
    j->input = (int)((i * 3 + (size_t)c->id) % POOL);
    model_pool *p = &c->pools[j->model];
    j->out = tensors_outputs(p->model);

    emx_request_desc req;
    request_init(&req, p->model, p->in[j->input], j->out);
    req.stream = c->stream;
    req.on_complete = on_complete;
    req.user = j;
    req.enqueue_timeout_ns = -1;
    int rc = emx_submit(c->engine, &req, &j->req);
    if (rc != 0) {
      fprintf(stderr, "client %d submit %zu: %s: %s\n", c->id, i,
              emx_err_name(rc), emx_engine_last_error(c->engine));
      c->submit_failures++;
      tensors_free(j->out, p->nout);
      j->out = NULL;
      break;
    }
    c->sent[j->model]++;

    if (i + 1 - head == WINDOW) {
      /* Now and then wait for the newest instead: once it is complete,
       * stream order says every older one on this stream is too. */
      if (i % 16 == 15) {
        if (emx_request_wait(j->req, -1) != 0)
          c->bad_status++;
        for (size_t k = head; k < i; k++)
          if (emx_request_poll(c->jobs[k].req) == EMX_EAGAIN)
            c->visibility_breaks++;
      }
      retire(c, &c->jobs[head++]);
    }
  }
  size_t submitted = (size_t)(c->sent[0] + c->sent[1]);
  while (head < submitted)
    retire(c, &c->jobs[head++]);
  return NULL;
}

/* ---- cases --------------------------------------------------------------- */

static void many_streams(void **state) {
  (void)state;
  emx_engine *engine = engine_new("cpu:workers=2", 0);
  assert_int_equal(emx_engine_device_count(engine), 2);
  model_pool pools[MODELS];
  pool_init(&pools[0], engine, "face", MODEL_FACE_SHORT, 1);
  pool_init(&pools[1], engine, "hand", MODEL_HAND_LITE, 2);

  counter callbacks;
  counter_init(&callbacks);
  client *clients = calloc(THREADS, sizeof(*clients));
  assert_non_null(clients);
  pthread_t threads[THREADS];
  for (int t = 0; t < THREADS; t++) {
    client *c = &clients[t];
    c->engine = engine;
    c->pools = pools;
    c->id = t;
    c->callbacks = &callbacks;
    pthread_mutex_init(&c->mu, NULL);
    assert_int_equal(emx_stream_create(engine, &c->stream), 0);
    assert_non_null(c->stream);
  }
  for (int t = 0; t < THREADS; t++)
    assert_int_equal(
        pthread_create(&threads[t], NULL, client_main, &clients[t]), 0);
  for (int t = 0; t < THREADS; t++)
    pthread_join(threads[t], NULL);

  uint64_t sent[MODELS] = {0, 0};
  for (int t = 0; t < THREADS; t++)
    for (int m = 0; m < MODELS; m++)
      sent[m] += clients[t].sent[m];
  /* Callbacks may still be running after the last wait returned. */
  assert_true(counter_wait(&callbacks, sent[0] + sent[1]));

  for (int t = 0; t < THREADS; t++) {
    client *c = &clients[t];
    assert_int_equal(c->submit_failures, 0);
    assert_int_equal(c->bad_status, 0);
    assert_int_equal(c->wrong_output, 0);
    assert_int_equal(c->wrong_user, 0);
    assert_int_equal(c->visibility_breaks, 0);
    pthread_mutex_lock(&c->mu);
    assert_int_equal(c->ordered, per_thread);
    for (size_t k = 0; k < per_thread; k++) {
      assert_int_equal(c->order[k], k);
      assert_int_equal(c->jobs[k].cb_calls, 1);
      assert_int_equal(c->jobs[k].cb_status, 0);
    }
    pthread_mutex_unlock(&c->mu);
  }
  assert_int_equal(sent[0] + sent[1], (uint64_t)THREADS * per_thread);

  uint64_t device_requests = 0;
  for (int m = 0; m < MODELS; m++) {
    emx_stats st;
    assert_int_equal(emx_model_stats(pools[m].model, &st), 0);
    assert_int_equal(st.requests, sent[m]);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.timeouts, 0);
    assert_int_equal(st.queue_depth, 0);
    assert_true(st.busy_ns > 0);
  }
  for (size_t d = 0; d < emx_engine_device_count(engine); d++) {
    emx_stats st;
    assert_int_equal(emx_engine_device_stats(engine, d, &st), 0);
    assert_int_equal(st.errors, 0);
    device_requests += st.requests;
  }
  assert_int_equal(device_requests, (uint64_t)THREADS * per_thread);

  for (int t = 0; t < THREADS; t++) {
    emx_stream_destroy(clients[t].stream);
    pthread_mutex_destroy(&clients[t].mu);
  }
  free(clients);
  counter_destroy(&callbacks);
  pool_free(&pools[0]);
  pool_free(&pools[1]);
  emx_engine_destroy(engine);
}

/* ---- one stream shared by many threads ----------------------------------- */

#define SHARED_THREADS 8
#define SHARED_PER_THREAD 60
#define SHARED_TOTAL (SHARED_THREADS * SHARED_PER_THREAD)

/* shared is the state of the shared_stream case. */
typedef struct shared {
  emx_engine *engine;
  model_pool *pools;
  emx_stream *stream;
  pthread_mutex_t submit_mu;  /* held around emx_submit: defines the order */
  uint64_t next_seq;          /* order of the next successful submit */
  job jobs[SHARED_TOTAL];     /* indexed by thread * SHARED_PER_THREAD + i */
  pthread_mutex_t log_mu;     /* guards log and logged */
  uint64_t log[SHARED_TOTAL]; /* seq of each callback, in callback order */
  size_t logged;
  counter callbacks;
  int submit_failures;
  int wrong_user;
} shared;

typedef struct shared_arg {
  shared *s;
  int id;
} shared_arg;

static void on_shared_complete(emx_request *req, int status, void *user) {
  job *j = user;
  shared *s = j->owner;
  pthread_mutex_lock(&s->log_mu);
  if (emx_request_user(req) != user)
    s->wrong_user++;
  j->cb_status = status;
  j->cb_calls++;
  if (s->logged < SHARED_TOTAL)
    s->log[s->logged] = j->seq;
  s->logged++;
  pthread_mutex_unlock(&s->log_mu);
  counter_add(&s->callbacks, 1);
}

static void *shared_main(void *arg) {
  shared_arg *a = arg;
  shared *s = a->s;
  for (int i = 0; i < SHARED_PER_THREAD; i++) {
    job *j = &s->jobs[a->id * SHARED_PER_THREAD + i];
    j->owner = s;
    j->model = (a->id + i) % MODELS;
    j->input = (a->id * 5 + i) % POOL;
    model_pool *p = &s->pools[j->model];
    j->out = tensors_outputs(p->model);

    emx_request_desc req;
    request_init(&req, p->model, p->in[j->input], j->out);
    req.stream = s->stream;
    req.on_complete = on_shared_complete;
    req.user = j;
    req.enqueue_timeout_ns = -1;

    pthread_mutex_lock(&s->submit_mu);
    j->seq = s->next_seq; /* before submit: the callback may run at once */
    int rc = emx_submit(s->engine, &req, NULL); /* fire and forget */
    if (rc == 0)
      s->next_seq++;
    else
      s->submit_failures++;
    pthread_mutex_unlock(&s->submit_mu);
    if (rc != 0) {
      tensors_free(j->out, p->nout);
      j->out = NULL;
      return NULL;
    }
  }
  return NULL;
}

static void shared_stream(void **state) {
  (void)state;
  const char *devices[] = {"cpu:workers=2", "cpu:workers=1"};
  emx_engine_config cfg;
  emx_engine_config_init(&cfg);
  cfg.devices = devices;
  cfg.device_count = 2;
  emx_engine *engine = NULL;
  assert_int_equal(emx_engine_create(&engine, &cfg), 0);
  assert_int_equal(emx_engine_device_count(engine), 3);

  model_pool pools[MODELS];
  pool_init(&pools[0], engine, "face", MODEL_FACE_SHORT, 11);
  pool_init(&pools[1], engine, "hand", MODEL_HAND_LITE, 12);

  shared *s = calloc(1, sizeof(*s));
  assert_non_null(s);
  s->engine = engine;
  s->pools = pools;
  pthread_mutex_init(&s->submit_mu, NULL);
  pthread_mutex_init(&s->log_mu, NULL);
  counter_init(&s->callbacks);
  assert_int_equal(emx_stream_create(engine, &s->stream), 0);

  pthread_t threads[SHARED_THREADS];
  shared_arg args[SHARED_THREADS];
  for (int t = 0; t < SHARED_THREADS; t++) {
    args[t] = (shared_arg){s, t};
    assert_int_equal(pthread_create(&threads[t], NULL, shared_main, &args[t]),
                     0);
  }
  for (int t = 0; t < SHARED_THREADS; t++)
    pthread_join(threads[t], NULL);
  assert_true(counter_wait(&s->callbacks, s->next_seq));
  assert_int_equal(s->submit_failures, 0);
  assert_int_equal(s->next_seq, SHARED_TOTAL);

  pthread_mutex_lock(&s->log_mu);
  assert_int_equal(s->logged, SHARED_TOTAL);
  assert_int_equal(s->wrong_user, 0);
  for (size_t k = 0; k < SHARED_TOTAL; k++)
    assert_int_equal(s->log[k], k);
  pthread_mutex_unlock(&s->log_mu);

  for (size_t k = 0; k < SHARED_TOTAL; k++) {
    job *j = &s->jobs[k];
    model_pool *p = &pools[j->model];
    assert_int_equal(j->cb_calls, 1);
    assert_int_equal(j->cb_status, 0);
    assert_true(tensors_equal(j->out, p->want[j->input], p->nout));
    tensors_free(j->out, p->nout);
  }

  emx_stream_destroy(s->stream);
  counter_destroy(&s->callbacks);
  pthread_mutex_destroy(&s->log_mu);
  pthread_mutex_destroy(&s->submit_mu);
  free(s);
  pool_free(&pools[0]);
  pool_free(&pools[1]);
  emx_engine_destroy(engine);
}

int main(void) {
  filters_from_env();
  if (sanitizer()[0])
    per_thread = PER_THREAD / 4;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(many_streams),
      cmocka_unit_test(shared_stream),
  };
  return cmocka_run_group_tests_name("concurrency", tests, NULL, NULL);
}
