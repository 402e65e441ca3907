/* test_placement.c — which device of a pool a request goes to: the least
 * loaded, and on a tie the one that last ran the model (its interpreter and
 * caches are warm), so consecutive requests do not alternate devices and a
 * pool's devices settle into serving one model each; a request that says
 * on which CPU its result is waited for (near_cpu) goes to the worker on
 * that CPU first, and waits for it when it is about to finish. Two
 * simulated devices (real clock) in one tier, their workers pinned to two
 * CPUs where the test needs to know them; and a CPU pool's lazy
 * preparation. */
#include <dirent.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon_support.h"
#include "edgemux/client.h"
#include "support.h"

#define ROUNDS 12

static int group_setup(void **state) {
  return private_lock_dirs();
}

typedef struct pool {
  emx_engine *e;
  emx_model *m[2];
  emx_tensor *in[2], *out[2];
  emx_tensor *out_b; /* a second output set of model a, for two at once */
} pool;

static void pool_open(pool *p, const char *a, const char *b) {
  const char *devices[] = {a, b};
  emx_engine_config cfg;
  emx_engine_config_init(&cfg);
  cfg.devices = devices;
  cfg.device_count = 2;
  assert_int_equal(emx_engine_create(&p->e, &cfg), 0);
  p->m[0] = model_load(p->e, "a", MODEL_FACE_SHORT);
  p->m[1] = model_load(p->e, "b", MODEL_FACE_FULL);
  for (int i = 0; i < 2; i++) {
    p->in[i] = tensors_inputs(p->m[i]);
    p->out[i] = tensors_outputs(p->m[i]);
  }
  p->out_b = tensors_outputs(p->m[0]);
}

static void pool_close(pool *p) {
  for (int i = 0; i < 2; i++) {
    tensors_free(p->in[i], 1);
    tensors_free(p->out[i], 2);
  }
  emx_engine_destroy(p->e);
  tensors_free(p->out_b, 2);
}

static emx_request *submit_to(pool *p, int which, emx_tensor *out) {
  emx_request_desc d;
  request_init(&d, p->m[which], p->in[which], out);
  emx_request *r;
  assert_int_equal(emx_submit(p->e, &d, &r), 0);
  return r;
}

static emx_request *submit(pool *p, int which) {
  return submit_to(p, which, p->out[which]);
}

/* device_of waits for r, destroys it, and returns the device it ran on. */
static int device_of(emx_request *r) {
  assert_int_equal(emx_request_wait(r, -1), 0);
  emx_timings t;
  emx_request_timings(r, &t);
  emx_request_destroy(r);
  assert_in_range(t.device, 0, 1);
  return t.device;
}

/* One client, one request at a time: both devices are idle at every
 * submit, and every request runs where the first did. (Round robin on the
 * tie alternated them.) */
static void sequential_requests_stay_on_one_device(void **state) {
  pool p;
  pool_open(&p, "sim:90,outputs=none,compute_ms=1",
            "sim:91,outputs=none,compute_ms=1");
  int first = device_of(submit(&p, 0));
  for (int i = 0; i < ROUNDS; i++)
    assert_int_equal(device_of(submit(&p, 0)), first);
  pool_close(&p);
}

/* Two models submitted together each round, in alternating order: the
 * first of a round finds both devices idle and goes where its model ran
 * last; the second goes to the other, idle one. So each model keeps its
 * device whichever comes first. (On a round-robin tie the first would land
 * on either device, and the models would trade places about every other
 * round.) */
static void models_keep_their_devices(void **state) {
  pool p;
  pool_open(&p, "sim:92,outputs=none,compute_ms=1",
            "sim:93,outputs=none,compute_ms=1");
  emx_request *r0 = submit(&p, 0), *r1 = submit(&p, 1);
  int home[2] = {device_of(r0), device_of(r1)};
  assert_int_not_equal(home[0], home[1]);
  for (int i = 0; i < ROUNDS; i++) {
    int first = i % 2, second = 1 - first;
    emx_request *a = submit(&p, first), *b = submit(&p, second);
    if (device_of(a) != home[first] || device_of(b) != home[second])
      fail_msg("round %d: model %c left its device", i, 'a' + first);
  }
  pool_close(&p);
}

/* The load still decides first: with its warm device busy, a request goes
 * to the idle one. */
static void load_beats_warmth(void **state) {
  pool p;
  pool_open(&p, "sim:94,outputs=none,compute_ms=200",
            "sim:95,outputs=none,compute_ms=200");
  int home = device_of(submit(&p, 0));
  emx_request *a = submit(&p, 0), *b = submit_to(&p, 0, p.out_b);
  int da = device_of(a), db = device_of(b);
  assert_int_equal(da, home);
  assert_int_equal(db, 1 - home);
  pool_close(&p);
}

/* ---- near_cpu ------------------------------------------------------------ */

/* pin_thread pins process pid's (0: this one's) thread named `comm`
 * ("emx:sim0") to `cpu`: the engine keeps no CPU of its own, the kernel
 * places workers. */
static void pin_thread(pid_t pid, const char *comm, int cpu) {
  char dir[64];
  if (pid)
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
  else
    snprintf(dir, sizeof dir, "/proc/self/task");
  DIR *d = opendir(dir);
  assert_non_null(d);
  int pinned = 0;
  for (struct dirent *de; (de = readdir(d));) {
    char path[400], name[32] = "";
    snprintf(path, sizeof path, "%s/%s/comm", dir, de->d_name);
    FILE *f = fopen(path, "r");
    if (!f)
      continue;
    if (fgets(name, sizeof name, f))
      name[strcspn(name, "\n")] = '\0';
    fclose(f);
    if (strcmp(name, comm) != 0)
      continue;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    assert_int_equal(sched_setaffinity(atoi(de->d_name), sizeof set, &set), 0);
    pinned++;
  }
  closedir(d);
  assert_int_equal(pinned, 1);
}

/* two_cpus finds two CPUs this process may use; false when it has one. */
static bool two_cpus(int cpu[2]) {
  cpu_set_t set;
  assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
  int n = 0;
  for (int i = 0; i < CPU_SETSIZE && n < 2; i++)
    if (CPU_ISSET(i, &set))
      cpu[n++] = i;
  return n == 2;
}

static emx_request *submit_near(pool *p, int cpu, emx_tensor *out) {
  emx_request_desc d;
  request_init(&d, p->m[0], p->in[0], out);
  d.near_cpu = EMX_NEAR_CPU(cpu);
  emx_request *r;
  assert_int_equal(emx_submit(p->e, &d, &r), 0);
  return r;
}

/* near_pool opens two devices with their workers on cpu[0] and cpu[1],
 * and runs a request on each, so that each has run on its CPU. */
static void near_pool(pool *p, const char *a, const char *b, const int cpu[2]) {
  pool_open(p, a, b);
  pin_thread(0, "emx:sim0", cpu[0]); /* devices are named by kind, order */
  pin_thread(0, "emx:sim1", cpu[1]);
  /* Two at once: the second finds the first's device busy. */
  emx_request *r0 = submit(p, 0), *r1 = submit_to(p, 0, p->out_b);
  int d0 = device_of(r0), d1 = device_of(r1);
  assert_int_not_equal(d0, d1);
}

/* Both devices idle at every submit: each request goes to the worker on
 * the CPU it names, alternating as the CPUs do (the warm device alone, as
 * before near_cpu, would have kept every one). */
static void near_cpu_picks_the_worker_there(void **state) {
  int cpu[2];
  if (!two_cpus(cpu)) {
    print_message("skipped: this process may use one CPU only\n");
    skip();
  }
  pool p;
  near_pool(&p, "sim:96,outputs=none,compute_ms=1",
            "sim:97,outputs=none,compute_ms=1", cpu);
  for (int i = 0; i < ROUNDS; i++) {
    int want = i % 2;
    int got = device_of(submit_near(&p, cpu[want], p.out[0]));
    if (got != want)
      fail_msg("round %d: the request waited on CPU %d ran on device %d, not "
               "on device %d, whose worker runs there",
               i, cpu[want], got, want);
  }
  pool_close(&p);
}

/* The worker on the request's CPU is busy: a request that finds it at the
 * start of its run goes to the other, idle device; one that finds it in
 * the last quarter of its run waits for it. */
static void near_cpu_waits_only_for_a_worker_about_to_finish(void **state) {
  int cpu[2];
  if (!two_cpus(cpu)) {
    print_message("skipped: this process may use one CPU only\n");
    skip();
  }
  int run_ms = 40 * emxt_time_scale();
  char a[96], b[96];
  snprintf(a, sizeof a, "sim:98,outputs=none,compute_ms=%d", run_ms);
  snprintf(b, sizeof b, "sim:99,outputs=none,compute_ms=%d", run_ms);
  pool p;
  near_pool(&p, a, b, cpu);
  for (int i = 0; i < 3; i++) /* the run time device 1 expects */
    assert_int_equal(device_of(submit_near(&p, cpu[1], p.out[0])), 1);

  emx_request *first = submit_near(&p, cpu[1], p.out[0]);
  emx_request *early = submit_near(&p, cpu[1], p.out_b);
  assert_int_equal(device_of(first), 1);
  assert_int_equal(device_of(early), 0); /* 40 ms to go: not worth it */

  /* The late one must find the first in its last quarter: on a loaded
   * machine the worker may start well after the submit, so the start is
   * read back and a round that missed the window is run again. */
  int64_t run_ns = (int64_t)run_ms * 1000000;
  for (int tries = 0;; tries++) {
    emx_request *r = submit_near(&p, cpu[1], p.out[0]);
    usleep((useconds_t)run_ms * 1000 * 7 / 8); /* 5 ms to go, of 10 allowed */
    int64_t at = emx_now_ns();
    emx_request *late = submit_near(&p, cpu[1], p.out_b);
    assert_int_equal(emx_request_wait(r, -1), 0);
    emx_timings t;
    emx_request_timings(r, &t);
    emx_request_destroy(r);
    assert_int_equal(t.device, 1);
    int dev = device_of(late);
    if (at >= t.started_ns + run_ns * 3 / 4) {
      assert_int_equal(dev, 1);
      break;
    }
    if (tries == 10)
      fail_msg("the late request never found the first one's run ending");
  }
  pool_close(&p);
}

static void pin_self(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  assert_int_equal(sched_setaffinity(0, sizeof set, &set), 0);
}

/* Through edgemuxd: the client library sends the CPU it waits on with each
 * request, and the daemon runs it on the worker there. */
static void daemon_runs_a_request_beside_its_client(void **state) {
  int cpu[2];
  if (!two_cpus(cpu)) {
    print_message("skipped: this process may use one CPU only\n");
    skip();
  }
  cpu_set_t was;
  assert_int_equal(sched_getaffinity(0, sizeof was, &was), 0);
  emxt_daemon d;
  const char *args[] = {"--device", "sim:86,outputs=none,compute_ms=2",
                        "--device", "sim:87,outputs=none,compute_ms=2", NULL};
  assert_int_equal(emxt_daemon_start(&d, args), 0);
  pin_thread(d.pid, "emx:sim0", cpu[0]);
  pin_thread(d.pid, "emx:sim1", cpu[1]);
  emx_client *c = emxt_connect(d.socket, 4 << 20);
  assert_non_null(c);
  emx_client_model *m;
  assert_int_equal(emx_client_model_open(c, "face_detection_short_range", &m),
                   0);
  size_t nout = emx_client_model_output_count(m);
  assert_true(nout <= 2);
  emx_tensor in, outs[2][2];
  assert_int_equal(emx_client_tensor_alloc_input(c, m, 0, &in), 0);
  for (int k = 0; k < 2; k++)
    for (size_t i = 0; i < nout; i++)
      assert_int_equal(emx_client_tensor_alloc_output(c, m, i, &outs[k][i]), 0);
  /* Two at once until each worker has run one (and knows its CPU). */
  bool seen[2] = {false, false};
  for (int tries = 0; tries < 20 && !(seen[0] && seen[1]); tries++) {
    emx_client_request *r[2];
    for (int k = 0; k < 2; k++)
      assert_int_equal(
          emx_client_submit(c, m, &in, 1, outs[k], nout, NULL, &r[k]), 0);
    for (int k = 0; k < 2; k++) {
      assert_int_equal(emx_client_request_wait(r[k], -1), 0);
      emx_timings t;
      emx_client_request_timings(r[k], &t);
      assert_in_range(t.device, 0, 1);
      seen[t.device] = true;
      emx_client_request_destroy(r[k]);
    }
  }
  assert_true(seen[0] && seen[1]);
  for (int i = 0; i < ROUNDS; i++) {
    int want = i % 2;
    pin_self(cpu[want]);
    emx_timings t;
    assert_int_equal(emx_client_infer(c, m, &in, 1, outs[0], nout, &t), 0);
    if (t.device != want)
      fail_msg("round %d: a client on CPU %d got device %d, not device %d, "
               "whose worker runs there",
               i, cpu[want], t.device, want);
  }
  assert_int_equal(sched_setaffinity(0, sizeof was, &was), 0);
  emx_client_destroy(c);
  assert_int_equal(emxt_daemon_stop(&d), 0);
}

/* A pool of two CPU workers (one spec) prepares a model on one of them at
 * load; the other prepares it when the load first sends it a request, and
 * releases it once it has been idle there for idle_release_ms (the worker
 * that ran it last keeps its copy). emx_model_stats says where it is
 * prepared and what that holds. */
static void pool_prepares_on_first_use(void **state) {
  /* The idle time and the wait for the release stretch with
   * EMX_TEST_TIME_SCALE: under qemu-user (make check-arm64) one invoke takes
   * over 300 ms, so the loaded copy went idle and was released while the
   * other worker prepared its own, and the sum below was of two later,
   * smaller samples (each blurred by the other worker's allocations). */
  int scale = emxt_time_scale();
  char spec[64];
  snprintf(spec, sizeof spec, "cpu:workers=2,idle_release_ms=%d", 300 * scale);
  emx_engine *e = engine_new(spec, 16);
  emx_model *m = model_load(e, "face", MODEL_FACE_SHORT);
  emx_stats st;
  assert_int_equal(emx_model_stats(m, &st), 0);
  assert_int_equal(st.prepared_on, 1);
  /* An interpreter and its arena; a sanitizer's allocator is invisible to
   * mallinfo2, so there only "some" is checked. */
  bool plain = sanitizer()[0] == '\0';
  assert_true(st.memory_bytes > (plain ? 100000 : 0));
  uint64_t one = st.memory_bytes;
  emx_tensor *in[2] = {tensors_inputs(m), tensors_inputs(m)};
  emx_tensor *out[2] = {tensors_outputs(m), tensors_outputs(m)};
  /* Two at once: the second finds the warm worker loaded and goes to the
   * other one (a preempted submitter may see the first done: try again). */
  for (int tries = 0; tries < 50 && st.prepared_on < 2; tries++) {
    emx_request *r[2];
    for (int i = 0; i < 2; i++) {
      emx_request_desc d;
      request_init(&d, m, in[i], out[i]);
      assert_int_equal(emx_submit(e, &d, &r[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
      assert_int_equal(emx_request_wait(r[i], -1), 0);
      emx_request_destroy(r[i]);
    }
    assert_int_equal(emx_model_stats(m, &st), 0);
  }
  assert_int_equal(st.prepared_on, 2);
  assert_true(plain ? st.memory_bytes > one : st.memory_bytes > 0);
  for (int waited = 0; waited < 100 * scale && st.prepared_on > 1; waited++) {
    usleep(50 * 1000);
    assert_int_equal(emx_model_stats(m, &st), 0);
  }
  assert_int_equal(st.prepared_on, 1); /* released where idle ... */
  assert_true(st.memory_bytes > 0);    /* ... but one copy stays */
  for (int i = 0; i < 2; i++) {
    tensors_free(in[i], 1);
    tensors_free(out[i], 2);
  }
  emx_engine_destroy(e);
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sequential_requests_stay_on_one_device),
      cmocka_unit_test(models_keep_their_devices),
      cmocka_unit_test(load_beats_warmth),
      cmocka_unit_test(near_cpu_picks_the_worker_there),
      cmocka_unit_test(near_cpu_waits_only_for_a_worker_about_to_finish),
      cmocka_unit_test(daemon_runs_a_request_beside_its_client),
      cmocka_unit_test(pool_prepares_on_first_use),
  };
  return cmocka_run_group_tests_name("placement", tests, group_setup, NULL);
}
