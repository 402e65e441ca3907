/* test_backends.c — the sim backend (simulated Edge TPU) and the edgetpu
 * backend against the stub libedgetpu: outputs, exclusive open across
 * processes, injected faults (the stub's abort and hang inside an invoke
 * too), costs, and every load-time error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "support.h"

#ifndef EMX_STUB_EDGETPU
#error "EMX_STUB_EDGETPU must name the stub library"
#endif

static int group_setup(void **state) {
  return private_lock_dirs();
}

static int create(const char *spec, emx_engine **out) {
  const char *devices[1] = {spec};
  emx_engine_config cfg;
  emx_engine_config_init(&cfg);
  cfg.devices = devices;
  cfg.device_count = 1;
  return emx_engine_create(out, &cfg);
}

/* run_once runs one request with seeded inputs; outputs are returned. */
static int run_once(emx_engine *e, emx_model *m, uint64_t seed, emx_tensor **in,
                    emx_tensor **out, emx_timings *t) {
  *in = tensors_inputs(m);
  *out = tensors_outputs(m);
  tensors_fill_random(*in, emx_model_input_count(m), seed);
  emx_request_desc d;
  request_init(&d, m, *in, *out);
  return emx_infer(e, &d, t);
}

static void free_io(emx_model *m, emx_tensor *in, emx_tensor *out) {
  tensors_free(in, emx_model_input_count(m));
  tensors_free(out, emx_model_output_count(m));
}

/* ---- sim ---------------------------------------------------------------- */

static void sim_outputs_match_cpu(void **state) {
  emx_engine *e;
  assert_int_equal(create("sim:11", &e), 0);
  emx_model *m = model_load(e, "face", MODEL_FACE_SHORT);
  oracle *o = oracle_create(MODEL_FACE_SHORT);
  for (uint64_t seed = 1; seed <= 3; seed++) {
    emx_tensor *in, *out;
    assert_int_equal(run_once(e, m, seed, &in, &out, NULL), 0);
    emx_tensor *want = tensors_outputs(m);
    oracle_run(o, in, 1, want, 2);
    assert_true(tensors_equal(out, want, 2));
    tensors_free(want, 2);
    free_io(m, in, out);
  }
  oracle_destroy(o);
  emx_engine_destroy(e);
}

/* A child process tries to open what the parent holds. Returns the child's
 * emx_engine_create status (negated into the exit code). */
static int open_in_child(const char *spec, char *msg, size_t cap) {
  int pipefd[2];
  assert_int_equal(pipe(pipefd), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(pipefd[0]);
    emx_engine *e = NULL;
    int rc = create(spec, &e);
    const char *text = emx_engine_last_error(NULL);
    if (write(pipefd[1], text, strlen(text)) < 0)
      _exit(100);
    emx_engine_destroy(e);
    _exit(-rc);
  }
  close(pipefd[1]);
  ssize_t n = read(pipefd[0], msg, cap - 1);
  msg[n > 0 ? n : 0] = '\0';
  close(pipefd[0]);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  return -WEXITSTATUS(status);
}

static void sim_exclusive_across_processes(void **state) {
  emx_engine *e;
  char msg[512];
  assert_int_equal(create("sim:12", &e), 0);
  assert_int_equal(open_in_child("sim:12", msg, sizeof msg), EMX_EBUSY);
  assert_true(contains(msg, "device busy"));
  char pid[32];
  snprintf(pid, sizeof pid, "pid %d", (int)getpid());
  assert_true(contains(msg, pid)); /* names the holder */
  /* Another id is another device. */
  assert_int_equal(open_in_child("sim:13", msg, sizeof msg), 0);
  emx_engine_destroy(e);
  /* Released with the engine: now the child gets it. */
  assert_int_equal(open_in_child("sim:12", msg, sizeof msg), 0);
}

/* A failed invoke fails its request with EMX_EDEVICE, takes the device
 * down, and the engine brings it back after a successful probe. */
static void sim_fail_at(void **state) {
  emx_engine *e;
  assert_int_equal(create("sim:14,fail_at=2", &e), 0);
  emx_model *m = model_load(e, "face", MODEL_FACE_SHORT);
  int want[4] = {0, EMX_EDEVICE, 0, 0};
  for (int i = 0; i < 4; i++) {
    assert_true(wait_healthy(e, 0));
    emx_tensor *in, *out;
    assert_int_equal(run_once(e, m, 5, &in, &out, NULL), want[i]);
    if (want[i])
      assert_true(contains(emx_engine_last_error(e), "injected"));
    free_io(m, in, out);
  }
  emx_device_info di;
  assert_int_equal(emx_engine_device_info(e, 0, &di), 0);
  assert_int_equal(di.faults, 1);
  assert_string_equal(di.model, "face");
  emx_engine_destroy(e);
}

/* A vanished device refuses the failing invoke and the next probe, then
 * comes back (return_after=2) with its models prepared again. */
static void sim_vanish_and_return(void **state) {
  emx_engine *e;
  assert_int_equal(create("sim:15,vanish_at=2,return_after=2", &e), 0);
  emx_model *m = model_load(e, "face", MODEL_FACE_SHORT);
  oracle *o = oracle_create(MODEL_FACE_SHORT);
  int want[4] = {0, EMX_EDEVICE, 0, 0};
  for (int i = 0; i < 4; i++) {
    assert_true(wait_healthy(e, 0));
    emx_tensor *in, *out;
    assert_int_equal(run_once(e, m, 7, &in, &out, NULL), want[i]);
    if (want[i]) {
      assert_true(contains(emx_engine_last_error(e), "vanished"));
    } else {
      emx_tensor *expect = tensors_outputs(m);
      oracle_run(o, in, 1, expect, 2);
      assert_true(tensors_equal(out, expect, 2));
      tensors_free(expect, 2);
    }
    free_io(m, in, out);
  }
  oracle_destroy(o);
  emx_engine_destroy(e);
}

/* A device that never comes back: requests fail at once with a message
 * that says no healthy device can run the model. */
static void sim_vanish_for_good(void **state) {
  emx_engine *e;
  assert_int_equal(create("sim:18,vanish_at=1", &e), 0);
  emx_model *m = model_load(e, "face", MODEL_FACE_SHORT);
  emx_tensor *in, *out;
  assert_int_equal(run_once(e, m, 1, &in, &out, NULL), EMX_EDEVICE);
  free_io(m, in, out);
  /* Time for the re-probes (20 ms, 40 ms backoff) to run and fail: what
   * is checked is that nothing happens, and no event marks that. */
  usleep(100000);
  assert_int_equal(run_once(e, m, 1, &in, &out, NULL), EMX_EDEVICE);
  assert_true(contains(emx_engine_last_error(e), "no healthy device"));
  assert_false(emx_model_healthy(m));
  free_io(m, in, out);
  emx_engine_destroy(e);
}

/* With outputs=none the device only spends time: outputs are zeros, and
 * an invoke takes at least compute + fixed + transfer (+ a swap the first
 * time). Lower bounds only: the device sleeps at least that long. */
static void sim_time_only_costs(void **state) {
  emx_engine *e;
  assert_int_equal(create("sim:16,outputs=none,compute_ms=5,fixed_us=200,"
                          "bandwidth_mbps=100",
                          &e),
                   0);
  emx_model *m = model_load(e, "face", MODEL_FACE_SHORT);
  size_t model_bytes = 0;
  free(read_file(MODEL_FACE_SHORT, &model_bytes));
  double io = 196608 + 57344 + 3584;
  int64_t base = 5000000 + 200000 + (int64_t)(io / 100e6 * 1e9);
  int64_t swap = (int64_t)((double)model_bytes / 100e6 * 1e9);
  for (int i = 0; i < 3; i++) {
    emx_tensor *in, *out;
    emx_timings t;
    tensors_fill_sentinel(out = tensors_outputs(m), 2);
    tensors_free(out, 2);
    assert_int_equal(run_once(e, m, 9, &in, &out, &t), 0);
    for (size_t k = 0; k < 2; k++)
      for (size_t b = 0; b < out[k].size; b++)
        assert_int_equal(((uint8_t *)out[k].data)[b], 0);
    assert_true(t.device_ns >= base + (i == 0 ? swap : 0));
    free_io(m, in, out);
  }
  emx_engine_destroy(e);
}

/* Two models on one device with a small cache: alternating them pays the
 * parameter swap on every invoke. */
static void sim_swap_when_alternating(void **state) {
  emx_engine *e;
  assert_int_equal(
      create("sim:17,outputs=none,cache_mib=8,bandwidth_mbps=50", &e), 0);
  emx_model *a = model_load(e, "a", MODEL_FACE_SHORT);
  emx_model *b = model_load(e, "b", MODEL_FACE_FULL);
  size_t bytes_b = 0;
  free(read_file(MODEL_FACE_FULL, &bytes_b));
  int64_t swap_b = (int64_t)((double)bytes_b / 50e6 * 1e9);
  for (int i = 0; i < 3; i++) {
    emx_tensor *in, *out;
    emx_timings t;
    assert_int_equal(run_once(e, a, 1, &in, &out, &t), 0);
    free_io(a, in, out);
    assert_int_equal(run_once(e, b, 1, &in, &out, &t), 0);
    assert_true(t.device_ns >= swap_b); /* b was evicted by a */
    free_io(b, in, out);
  }
  emx_engine_destroy(e);
}

static void sim_bad_specs(void **state) {
  static const char *const bad[] = {"sim:x", "sim:0,outputs=gpu",
                                    "sim:0,compute_ms=-1", "sim:0,bogus=1",
                                    "sim:0,cache_mib=99999"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    emx_engine *e = NULL;
    assert_int_equal(create(bad[i], &e), EMX_EINVAL);
    assert_null(e);
    assert_true(strlen(emx_engine_last_error(NULL)) > 0);
  }
}

/* ---- edgetpu, against the stub libedgetpu -------------------------------- */

#define STUB ",lib=" EMX_STUB_EDGETPU

/* The face detector has no edgetpu-custom-op, so the stub's delegate
 * claims none of it and TFLite's own kernels run it all (the edgetpu
 * backend adds no XNNPACK), as a real Edge TPU runs an uncompiled model:
 * the oracle is a bare interpreter without delegates. */
static void edgetpu_runs_models(void **state) {
  setenv("EMX_STUB_EDGETPU_DEVICES", "usb:/sys/bus/usb/devices/2-1", 1);
  emx_engine *e;
  assert_int_equal(create("edgetpu:usb:0" STUB, &e), 0);
  emx_device_info di;
  assert_int_equal(emx_engine_device_info(e, 0, &di), 0);
  assert_string_equal(di.kind, "edgetpu");
  emx_model *m = model_load(e, "face", MODEL_FACE_SHORT);
  oracle *o = oracle_create_bare(MODEL_FACE_SHORT);
  for (uint64_t seed = 1; seed <= 2; seed++) {
    emx_tensor *in, *out;
    assert_int_equal(run_once(e, m, seed, &in, &out, NULL), 0);
    emx_tensor *want = tensors_outputs(m);
    oracle_run(o, in, 1, want, 2);
    assert_true(tensors_equal(out, want, 2));
    tensors_free(want, 2);
    free_io(m, in, out);
  }
  oracle_destroy(o);
  emx_engine_destroy(e);
}

/* check_stub_invokes runs `spec` (the stub, with an invoke log) with the
 * Edge TPU-compiled fixture, whose edgetpu-custom-op node the stub's
 * delegate claims, and the face detector, which has no node it claims.
 * Outputs are the stub's function and TFLite's own kernels, bit for bit,
 * and the log holds the compiled model's warm-up and each of its requests,
 * numbered, all from one process, whose pid is returned. */
static int check_stub_invokes(const char *spec) {
  char log[64];
  snprintf(log, sizeof log, "%s/invokes-%s",
           getenv("EMX_STUB_EDGETPU_LOCK_DIR"),
           strstr(spec, "isolate=0") ? "local" : "isolated");
  unlink(log);
  setenv("EMX_STUB_EDGETPU_DEVICES", "usb:/seen0", 1);
  setenv("EMX_STUB_EDGETPU_INVOKE_LOG", log, 1);
  emx_engine *e;
  assert_int_equal(create(spec, &e), 0);
  emx_model *tpu = model_load(e, "tpu", MODEL_Q_EDGETPU);
  emx_model *face = model_load(e, "face", MODEL_FACE_SHORT);
  stub_invoke inv[8];
  assert_int_equal(stub_log_read(log, inv, 8), 1); /* the warm-up */
  oracle *of = oracle_create_bare(MODEL_FACE_SHORT);
  for (uint64_t seed = 1; seed <= 3; seed++) {
    emx_tensor *in, *out;
    assert_int_equal(run_once(e, tpu, seed, &in, &out, NULL), 0);
    emx_tensor *want = tensors_outputs(tpu);
    stub_edgetpu_expected(in, 1, want, 1);
    assert_true(tensors_equal(out, want, 1));
    tensors_free(want, 1);
    free_io(tpu, in, out);

    assert_int_equal(run_once(e, face, seed, &in, &out, NULL), 0);
    want = tensors_outputs(face);
    oracle_run(of, in, 1, want, 2);
    assert_true(tensors_equal(out, want, 2));
    tensors_free(want, 2);
    free_io(face, in, out);
  }
  oracle_destroy(of);
  emx_engine_destroy(e);
  unsetenv("EMX_STUB_EDGETPU_INVOKE_LOG");
  assert_int_equal(stub_log_read(log, inv, 8), 4);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(inv[i].n, i + 1);
    assert_int_equal(inv[i].pid, inv[0].pid);
  }
  unlink(log);
  return inv[0].pid;
}

static void edgetpu_stub_sees_every_invoke(void **state) {
  /* Isolated (the default for edgetpu): the device process invokes. */
  assert_int_not_equal(check_stub_invokes("edgetpu:usb:0" STUB), getpid());
  assert_int_equal(check_stub_invokes("edgetpu:usb:0,isolate=0" STUB),
                   getpid());
}

/* ---- faults in the stub libedgetpu -----------------------------------------
 * The stub's delegate runs the edgetpu-custom-op node of every invoke of
 * the Edge TPU-compiled fixture, so it can abort or hang inside one, as
 * libedgetpu does; the device runs isolated, as edgetpu does by default. The faults here are once only: the device process that
 * replaces the faulty one runs clean. */

static const char *const stub_vars[] = {
    "EMX_STUB_EDGETPU_ABORT_AT", "EMX_STUB_EDGETPU_HANG_AT",
    "EMX_STUB_EDGETPU_FAULT_ONCE", "EMX_STUB_EDGETPU_INVOKE_LOG"};

/* stub_teardown clears the stub's settings, also after a failed assertion,
 * so that no later test inherits a fault. */
static int stub_teardown(void **state) {
  for (size_t i = 0; i < sizeof stub_vars / sizeof stub_vars[0]; i++)
    unsetenv(stub_vars[i]);
  return 0;
}

typedef struct stub_run {
  char log[96];  /* the stub's invoke log */
  char once[96]; /* its fault-once marker */
} stub_run;

/* stub_faults sets up the stub's environment, which the device processes
 * inherit: device `path`, `var` (..._ABORT_AT or ..._HANG_AT) = `at`. */
static void stub_faults(stub_run *r, const char *path, const char *var,
                        const char *at) {
  const char *dir = getenv("EMX_STUB_EDGETPU_LOCK_DIR");
  snprintf(r->log, sizeof r->log, "%s/%s.log", dir, var);
  snprintf(r->once, sizeof r->once, "%s/%s.once", dir, var);
  unlink(r->log);
  unlink(r->once);
  char devices[64];
  snprintf(devices, sizeof devices, "usb:%s", path);
  setenv("EMX_STUB_EDGETPU_DEVICES", devices, 1);
  setenv("EMX_STUB_EDGETPU_INVOKE_LOG", r->log, 1);
  setenv("EMX_STUB_EDGETPU_FAULT_ONCE", r->once, 1);
  setenv(var, at, 1);
}

/* stub_done clears the settings (once no device process can start) and
 * returns how many invokes the stub saw; `inv` gets the first `cap`. */
static size_t stub_done(stub_run *r, stub_invoke *inv, size_t cap) {
  stub_teardown(NULL);
  size_t n = stub_log_read(r->log, inv, cap);
  unlink(r->log);
  unlink(r->once);
  return n;
}

/* run_checked runs one request of the Edge TPU-compiled fixture and, when
 * it succeeds, checks its output is the stub's function of the input. */
static int run_checked(emx_engine *e, emx_model *m, uint64_t seed) {
  emx_tensor *in, *out;
  int rc = run_once(e, m, seed, &in, &out, NULL);
  if (rc == 0) {
    emx_tensor *want = tensors_outputs(m);
    stub_edgetpu_expected(in, 1, want, 1);
    assert_true(tensors_equal(out, want, 1));
    tensors_free(want, 1);
  }
  free_io(m, in, out);
  return rc;
}

/* The stub aborts at its 3rd invoke (the warm-up, one request, then this):
 * that request fails with EMX_EDEVICE naming the signal; the device comes
 * back in a new process, which prepares the model again, and every later
 * request is served with the same bits. */
static void edgetpu_abort_fails_only_the_request(void **state) {
  stub_run r;
  stub_faults(&r, "/abort0", "EMX_STUB_EDGETPU_ABORT_AT", "3");
  emx_engine *e;
  assert_int_equal(create("edgetpu:usb:0" STUB, &e), 0);
  emx_model *m = model_load(e, "tpu", MODEL_Q_EDGETPU);
  assert_int_equal(run_checked(e, m, 1), 0);
  assert_int_equal(run_checked(e, m, 2), EMX_EDEVICE);
  const char *msg = emx_engine_last_error(e);
  assert_true(contains(msg, "signal 6"));
  assert_true(contains(msg, "during invoke"));
  for (uint64_t seed = 3; seed <= 5; seed++) {
    assert_true(wait_healthy(e, 0));
    assert_int_equal(run_checked(e, m, seed), 0);
  }
  emx_device_info di;
  assert_int_equal(emx_engine_device_info(e, 0, &di), 0);
  assert_int_equal(di.faults, 1);
  emx_engine_destroy(e);
  /* The first process: warm-up, a request, the abort; the second: warm-up
   * and three requests. */
  stub_invoke inv[8];
  assert_int_equal(stub_done(&r, inv, 8), 7);
  static const long want_n[7] = {1, 2, 3, 1, 2, 3, 4};
  for (int i = 0; i < 7; i++) {
    assert_int_equal(inv[i].n, want_n[i]);
    assert_int_equal(inv[i].pid, inv[i < 3 ? 0 : 3].pid);
  }
  assert_int_not_equal(inv[0].pid, inv[3].pid);
  assert_int_not_equal(inv[0].pid, getpid());
}

/* The stub hangs at its 2nd invoke (the first request): after deadline_ms
 * the request fails with EMX_EDEVICE "hung", and a new device process
 * serves the next ones. */
static void edgetpu_hang_is_killed_at_the_deadline(void **state) {
  stub_run r;
  stub_faults(&r, "/hang0", "EMX_STUB_EDGETPU_HANG_AT", "2");
  emx_engine *e;
  assert_int_equal(create("edgetpu:usb:0,deadline_ms=300" STUB, &e), 0);
  emx_model *m = model_load(e, "tpu", MODEL_Q_EDGETPU);
  int64_t t0 = emx_now_ns();
  assert_int_equal(run_checked(e, m, 1), EMX_EDEVICE);
  double took = (double)(emx_now_ns() - t0) / 1e9;
  const char *msg = emx_engine_last_error(e);
  assert_true(contains(msg, "hung"));
  assert_true(contains(msg, "300 ms"));
  assert_true(took >= 0.29);
  assert_true(took < 3.0);
  for (uint64_t seed = 2; seed <= 3; seed++) {
    assert_true(wait_healthy(e, 0));
    assert_int_equal(run_checked(e, m, seed), 0);
  }
  emx_engine_destroy(e);
  /* The first process: warm-up and the hang; the second: warm-up and two
   * requests. */
  stub_invoke inv[8];
  assert_int_equal(stub_done(&r, inv, 8), 5);
  assert_int_equal(inv[1].n, 2);
  assert_int_equal(inv[1].pid, inv[0].pid);
  assert_int_equal(inv[2].n, 1);
  assert_int_not_equal(inv[2].pid, inv[0].pid);
}

static void edgetpu_all_devices(void **state) {
  setenv("EMX_STUB_EDGETPU_DEVICES", "usb:/u0,usb:/u1,pci:/dev/apex_0", 1);
  emx_engine *e;
  assert_int_equal(create("edgetpu:*" STUB, &e), 0);
  assert_int_equal(emx_engine_device_count(e), 3);
  emx_model *m = model_load(e, "tpu", MODEL_Q_EDGETPU);
  emx_tensor *in, *out;
  assert_int_equal(run_once(e, m, 3, &in, &out, NULL), 0);
  free_io(m, in, out);
  emx_engine_destroy(e);

  /* One of each type, by index. */
  assert_int_equal(create("edgetpu:pci:0" STUB, &e), 0);
  emx_engine_destroy(e);
  assert_int_equal(create("edgetpu:usb:1" STUB, &e), 0);
  emx_engine_destroy(e);
  assert_int_equal(create("edgetpu:usb:2" STUB, &e), EMX_ENOENT);
  assert_true(contains(emx_engine_last_error(NULL), "no such Edge TPU"));
}

/* edgetpu_plugged_while_creating: a TPU plugged in while the engine is
 * created (the stub lists one more device at every listing) must not change
 * how many devices the engine has: "edgetpu:*" is counted once, and that
 * count sizes the device array and decides what is opened. Counting twice
 * opened a second device past the end of a one-device array. */
static void edgetpu_plugged_while_creating(void **state) {
  (void)state;
  char *plug = write_temp_file("", 0);
  assert_non_null(plug);
  setenv("EMX_STUB_EDGETPU_DEVICES", "usb:/u0", 1);
  setenv("EMX_STUB_EDGETPU_PLUG", plug, 1);
  emx_engine *e;
  int rc = create("edgetpu:*" STUB, &e);
  unsetenv("EMX_STUB_EDGETPU_PLUG");
  size_t size = 0;
  char *listings = read_file(plug, &size);
  unlink(plug);
  free(plug);
  assert_int_equal(rc, 0);
  assert_int_equal(emx_engine_device_count(e), 1);
  /* The listings did go on growing, and only the device counted first was
   * opened (the stub takes a lock file per device it opens). */
  assert_non_null(listings);
  assert_true(atoi(listings) >= 2);
  free(listings);
  char lock[600];
  snprintf(lock, sizeof lock, "%s/edgetpu-stub-_u0.lock",
           getenv("EMX_STUB_EDGETPU_LOCK_DIR"));
  assert_int_equal(access(lock, F_OK), 0);
  snprintf(lock, sizeof lock,
           "%s/edgetpu-stub-_sys_bus_usb_devices_plugged-0.lock",
           getenv("EMX_STUB_EDGETPU_LOCK_DIR"));
  if (access(lock, F_OK) == 0)
    fail_msg("a device plugged in after the count was opened: %s", lock);
  emx_model *m = model_load(e, "face", MODEL_FACE_SHORT);
  emx_tensor *in, *out;
  assert_int_equal(run_once(e, m, 5, &in, &out, NULL), 0);
  free_io(m, in, out);
  emx_engine_destroy(e);
}

static void edgetpu_busy_across_processes(void **state) {
  setenv("EMX_STUB_EDGETPU_DEVICES", "usb:/busy0", 1);
  emx_engine *e;
  char msg[512];
  assert_int_equal(create("edgetpu:usb:0" STUB, &e), 0);
  assert_int_equal(open_in_child("edgetpu:usb:0" STUB, msg, sizeof msg),
                   EMX_EBUSY);
  assert_true(contains(msg, "device busy"));
  emx_engine_destroy(e);
  assert_int_equal(open_in_child("edgetpu:usb:0" STUB, msg, sizeof msg), 0);
}

static void edgetpu_load_errors(void **state) {
  emx_engine *e = NULL;
  assert_int_equal(create("edgetpu:usb:0,lib=/nonexistent/libedgetpu.so.1", &e),
                   EMX_ENOENT);
  assert_true(contains(emx_engine_last_error(NULL),
                       "cannot load the Edge TPU runtime"));
  assert_true(contains(emx_engine_last_error(NULL), "/nonexistent"));

  assert_int_equal(create("edgetpu:usb:0,lib=libm.so.6", &e), EMX_EDEVICE);
  assert_true(contains(emx_engine_last_error(NULL), "is not libedgetpu"));

  setenv("EMX_STUB_EDGETPU_DEVICES", "", 1);
  assert_int_equal(create("edgetpu:*" STUB, &e), EMX_ENOENT);
  assert_true(contains(emx_engine_last_error(NULL), "no Edge TPU found"));
  assert_int_equal(create("edgetpu:lib=" EMX_STUB_EDGETPU, &e), EMX_ENOENT);

  /* "edgetpu:*" lists the devices in a device host: a driver that aborts
   * there fails the spec, and this process lives on. */
  setenv("EMX_STUB_EDGETPU_DEVICES", "usb:/u0", 1);
  setenv("EMX_STUB_EDGETPU_LIST_ABORT", "1", 1);
  assert_int_equal(create("edgetpu:*" STUB, &e), EMX_EDEVICE);
  if (!contains(emx_engine_last_error(NULL),
                "crashed listing the devices (signal 6"))
    fail_msg("%s", emx_engine_last_error(NULL));
  unsetenv("EMX_STUB_EDGETPU_LIST_ABORT");

  assert_int_equal(create("edgetpu:gpu:0" STUB, &e), EMX_EINVAL);
  assert_int_equal(create("edgetpu:usb:0,performance=turbo" STUB, &e),
                   EMX_EINVAL);
  assert_int_equal(create("edgetpu:usb:0,performance=max" STUB, &e), 0);
  emx_engine_destroy(e);
}

int main(void) {
  filters_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sim_outputs_match_cpu),
      cmocka_unit_test(sim_exclusive_across_processes),
      cmocka_unit_test(sim_fail_at),
      cmocka_unit_test(sim_vanish_and_return),
      cmocka_unit_test(sim_vanish_for_good),
      cmocka_unit_test(sim_time_only_costs),
      cmocka_unit_test(sim_swap_when_alternating),
      cmocka_unit_test(sim_bad_specs),
      cmocka_unit_test(edgetpu_runs_models),
      cmocka_unit_test_teardown(edgetpu_stub_sees_every_invoke, stub_teardown),
      cmocka_unit_test_teardown(edgetpu_abort_fails_only_the_request,
                                stub_teardown),
      cmocka_unit_test_teardown(edgetpu_hang_is_killed_at_the_deadline,
                                stub_teardown),
      cmocka_unit_test(edgetpu_all_devices),
      cmocka_unit_test(edgetpu_plugged_while_creating),
      cmocka_unit_test(edgetpu_busy_across_processes),
      cmocka_unit_test(edgetpu_load_errors),
  };
  return cmocka_run_group_tests_name("backends", tests, group_setup, NULL);
}
