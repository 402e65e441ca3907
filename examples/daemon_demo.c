/*
 * examples/daemon_demo.c — edgemux's main job through the daemon: many
 * processes share one device, and every result is checked.
 *
 * Starts edgemuxd (the one next to this program) on a temporary socket, with
 * the model repository and ONE cpu device. Computes the expected outputs of a
 * few random inputs of two models with a plain TFLite interpreter (the
 * oracle). Then forks 8 processes; each connects on its own, puts its tensors
 * in its shared arena and sends 300 requests alternating the two models — one
 * batch (emx_client_submit_batch), then emx_client_infer mixed with
 * emx_client_submit + emx_client_request_wait — and compares every output bit
 * for bit with the oracle's. Prints a report with the latencies the clients
 * saw and those the daemon reports (emx_client_status, what `edgemux status`
 * prints), stops the daemon with SIGTERM and reports its exit status.
 * Exits 1 if any request failed, any output differed, or the daemon did not
 * exit cleanly.
 *
 * Usage: edgemux-daemon-demo [--repo DIR]
 */
#include <edgemux/client.h>
#include <edgemux/edgemux.h>
#include <tensorflow/lite/c/c_api.h>

#include "common/baseline.h"
#include "common/daemon.h"
#include "common/sys.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_REPO EMX_MODELS_DIR "/../repo"
#define DEVICE_SPEC "cpu:workers=1" /* ONE device, shared by everyone */
#define MODELS 2
#define MAX_TENSORS 8
#define EXAMPLES 4   /* distinct inputs per model the oracle precomputes */
#define PROCESSES 8  /* client processes */
#define REQUESTS 300 /* per process: 8 x 300 = 2400 */
#define BATCH 8      /* each process's one emx_client_submit_batch */
#define GROUP 4      /* requests per infer / submit group */
#define ARENA_BYTES ((size_t)16 << 20)
#define TIMEOUT_S 120 /* a process that has not reported by then failed */

static const char *const model_names[MODELS] = {"face_detection_short_range",
                                                "hand_landmark_lite"};

/* model_set is one model's tensor shapes and the oracle's examples. */
typedef struct model_set {
  char path[PATH_MAX];
  size_t input_count;
  size_t output_count;
  emx_tensor_info in_info[MAX_TENSORS];
  emx_tensor_info out_info[MAX_TENSORS];
  emx_tensor inputs[EXAMPLES][MAX_TENSORS];
  emx_tensor expected[EXAMPLES][MAX_TENSORS];
} model_set;

/* Filled before fork; the processes inherit them. */
static model_set models[MODELS];

/* report is what a client process sends back. */
typedef struct report {
  int requests;   /* sent */
  int ok;         /* completed and matched */
  int errors;     /* failed */
  int mismatches; /* completed, but an output differed */
  int infers, submits, batched;
  int latency_count;
  float latencies_us[REQUESTS]; /* of successful requests */
  char first_error[256];
} report;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static void shape_text(const emx_tensor_info *info, char *buf, size_t size) {
  size_t len = 0;
  buf[0] = '\0';
  for (int d = 0; d < info->rank && len < size; d++)
    len += (size_t)snprintf(buf + len, size - len, "%s%d", d ? "x" : "",
                            (int)info->dims[d]);
}

/* ------------------------------------------------------------------------ */
/* The oracle                                                                */

/* compute_expected runs every example of one model through a bare
 * interpreter set up like the daemon's CPU backend (XNNPACK without a
 * thread pool, one thread), so the daemon's outputs must match bit for
 * bit. */
static int compute_expected(model_set *ms) {
  int rc = -1;
  baseline bl;
  int err = baseline_open(&bl, ms->path);
  if (err == BASELINE_ELOAD || err == BASELINE_EDELEGATE) {
    fprintf(stderr, "edgemux-daemon-demo: oracle: cannot load %s\n", ms->path);
    goto done;
  }
  if (err < 0) {
    fprintf(stderr,
            "edgemux-daemon-demo: oracle: cannot create an interpreter\n");
    goto done;
  }
  if ((size_t)TfLiteInterpreterGetInputTensorCount(bl.interpreter) !=
          ms->input_count ||
      (size_t)TfLiteInterpreterGetOutputTensorCount(bl.interpreter) !=
          ms->output_count) {
    fprintf(stderr, "edgemux-daemon-demo: oracle and daemon disagree on the "
                    "number of tensors\n");
    goto done;
  }
  for (int e = 0; e < EXAMPLES; e++) {
    err = baseline_run(&bl, ms->inputs[e], ms->input_count, ms->expected[e],
                       ms->output_count);
    if (err == BASELINE_EINVOKE) {
      fprintf(stderr, "edgemux-daemon-demo: oracle: invoke failed\n");
      goto done;
    }
    if (err < 0)
      goto size_mismatch;
  }
  rc = 0;
  goto done;
size_mismatch:
  fprintf(stderr, "edgemux-daemon-demo: oracle and daemon disagree on a "
                  "tensor size\n");
done:
  baseline_close(&bl);
  return rc;
}

/* prepare_models asks the daemon for both models' tensors, makes the
 * examples and has the oracle compute their outputs. */
static int prepare_models(const bench_daemon *d, const char *repo) {
  emx_client *c;
  int rc = bench_daemon_connect(d, 0, &c);
  if (rc < 0) {
    fprintf(stderr, "edgemux-daemon-demo: %s\n", emx_client_last_error(NULL));
    return -1;
  }
  unsigned seed = 20240611;
  for (int k = 0; k < MODELS && rc == 0; k++) {
    model_set *ms = &models[k];
    snprintf(ms->path, sizeof ms->path, "%.*s/%s/model.tflite", PATH_MAX - 100,
             repo, model_names[k]);
    emx_client_model *m;
    rc = emx_client_model_open(c, model_names[k], &m);
    if (rc < 0) {
      fprintf(stderr, "edgemux-daemon-demo: %s\n", emx_client_last_error(c));
      break;
    }
    ms->input_count = emx_client_model_input_count(m);
    ms->output_count = emx_client_model_output_count(m);
    if (ms->input_count > MAX_TENSORS || ms->output_count > MAX_TENSORS) {
      fprintf(stderr,
              "edgemux-daemon-demo: the demo handles at most %d "
              "inputs and outputs\n",
              MAX_TENSORS);
      rc = -1;
      break;
    }
    for (size_t i = 0; i < ms->input_count; i++) {
      emx_client_model_input_info(m, i, &ms->in_info[i]);
      ms->in_info[i].name = NULL; /* dies with the client */
    }
    for (size_t i = 0; i < ms->output_count; i++) {
      emx_client_model_output_info(m, i, &ms->out_info[i]);
      ms->out_info[i].name = NULL;
    }
    for (int e = 0; e < EXAMPLES && rc == 0; e++) {
      for (size_t i = 0; i < ms->input_count && rc == 0; i++) {
        rc = bench_tensor_alloc(&ms->inputs[e][i], ms->in_info[i].dtype,
                                ms->in_info[i].bytes);
        if (rc == 0)
          bench_fill_random(&ms->inputs[e][i], &seed);
      }
      for (size_t i = 0; i < ms->output_count && rc == 0; i++)
        rc = bench_tensor_alloc(&ms->expected[e][i], ms->out_info[i].dtype,
                                ms->out_info[i].bytes);
    }
    if (rc == 0)
      rc = compute_expected(ms);
  }
  emx_client_destroy(c);
  return rc;
}

static void free_models(void) {
  for (int k = 0; k < MODELS; k++)
    for (int e = 0; e < EXAMPLES; e++)
      for (int i = 0; i < MAX_TENSORS; i++) {
        free(models[k].inputs[e][i].data);
        free(models[k].expected[e][i].data);
      }
}

/* ------------------------------------------------------------------------ */
/* A client process                                                          */

typedef struct child {
  int index;
  unsigned seed;
  emx_client *c;
  emx_client_model *m[MODELS];
  emx_tensor in[BATCH][MODELS][MAX_TENSORS];
  emx_tensor out[BATCH][MODELS][MAX_TENSORS];
  report rep;
} child;

static void child_error(child *ch, const char *call, int rc, const char *msg) {
  ch->rep.errors++;
  if (!ch->rep.first_error[0])
    snprintf(ch->rep.first_error, sizeof ch->rep.first_error,
             "process %d: %s: %s: %s", ch->index, call, emx_err_name(rc),
             msg ? msg : "");
}

/* load copies example e of model k into slot and fills its outputs with a
 * byte pattern, so an output the daemon did not write cannot match. */
static void load(child *ch, int slot, int k, int e) {
  const model_set *ms = &models[k];
  for (size_t i = 0; i < ms->input_count; i++)
    memcpy(ch->in[slot][k][i].data, ms->inputs[e][i].data,
           ms->inputs[e][i].size);
  for (size_t i = 0; i < ms->output_count; i++)
    memset(ch->out[slot][k][i].data, 0xA5, ch->out[slot][k][i].size);
}

static void check(child *ch, int slot, int k, int e, int64_t started) {
  const model_set *ms = &models[k];
  ch->rep.latencies_us[ch->rep.latency_count++] =
      (float)((double)(emx_now_ns() - started) / 1e3);
  for (size_t i = 0; i < ms->output_count; i++)
    if (memcmp(ch->out[slot][k][i].data, ms->expected[e][i].data,
               ms->expected[e][i].size) != 0) {
      ch->rep.mismatches++;
      return;
    }
  ch->rep.ok++;
}

static int child_setup(child *ch, const bench_daemon *d) {
  int rc = bench_daemon_connect(d, ARENA_BYTES, &ch->c);
  if (rc < 0) {
    child_error(ch, "emx_client_connect", rc, emx_client_last_error(NULL));
    return -1;
  }
  for (int k = 0; k < MODELS; k++) {
    rc = emx_client_model_open(ch->c, model_names[k], &ch->m[k]);
    if (rc < 0) {
      child_error(ch, "emx_client_model_open", rc,
                  emx_client_last_error(ch->c));
      return -1;
    }
    for (int s = 0; s < BATCH && rc == 0; s++) {
      for (size_t i = 0; i < models[k].input_count && rc == 0; i++)
        rc =
            emx_client_tensor_alloc_input(ch->c, ch->m[k], i, &ch->in[s][k][i]);
      for (size_t i = 0; i < models[k].output_count && rc == 0; i++)
        rc = emx_client_tensor_alloc_output(ch->c, ch->m[k], i,
                                            &ch->out[s][k][i]);
    }
    if (rc < 0) {
      child_error(ch, "emx_client_tensor_alloc", rc,
                  emx_client_last_error(ch->c));
      return -1;
    }
  }
  return 0;
}

static void wait_one(child *ch, emx_client_request *r, int slot, int k, int e,
                     int64_t started) {
  int rc = emx_client_request_wait(r, -1);
  if (rc < 0)
    child_error(ch, "emx_client_request_wait", rc, emx_client_request_error(r));
  else
    check(ch, slot, k, e, started);
  emx_client_request_destroy(r);
}

/* run_batch sends requests j..j+BATCH-1 in one message. */
static void run_batch(child *ch, int j) {
  emx_client_batch_item items[BATCH];
  emx_client_request *reqs[BATCH];
  int k[BATCH], e[BATCH];
  for (int i = 0; i < BATCH; i++) {
    k[i] = (j + i) % MODELS;
    e[i] = rand_r(&ch->seed) % EXAMPLES;
    load(ch, i, k[i], e[i]);
    items[i] = (emx_client_batch_item){
        ch->m[k[i]], ch->in[i][k[i]], models[k[i]].input_count,
        ch->out[i][k[i]], models[k[i]].output_count};
  }
  ch->rep.requests += BATCH;
  ch->rep.batched += BATCH;
  int64_t started = emx_now_ns();
  int rc = emx_client_submit_batch(ch->c, items, BATCH, NULL, reqs);
  if (rc < 0) {
    for (int i = 0; i < BATCH; i++)
      child_error(ch, "emx_client_submit_batch", rc,
                  emx_client_last_error(ch->c));
    return;
  }
  for (int i = 0; i < BATCH; i++)
    wait_one(ch, reqs[i], i, k[i], e[i], started);
}

/* run_submits sends GROUP requests, then waits for them in order. */
static void run_submits(child *ch, int j) {
  emx_client_request *reqs[GROUP];
  int k[GROUP], e[GROUP];
  int64_t started[GROUP];
  for (int i = 0; i < GROUP; i++) {
    k[i] = (j + i) % MODELS;
    e[i] = rand_r(&ch->seed) % EXAMPLES;
    load(ch, i, k[i], e[i]);
    ch->rep.requests++;
    ch->rep.submits++;
    started[i] = emx_now_ns();
    int rc = emx_client_submit(ch->c, ch->m[k[i]], ch->in[i][k[i]],
                               models[k[i]].input_count, ch->out[i][k[i]],
                               models[k[i]].output_count, NULL, &reqs[i]);
    if (rc < 0) {
      child_error(ch, "emx_client_submit", rc, emx_client_last_error(ch->c));
      reqs[i] = NULL;
    }
  }
  for (int i = 0; i < GROUP; i++)
    if (reqs[i])
      wait_one(ch, reqs[i], i, k[i], e[i], started[i]);
}

/* run_infers sends GROUP blocking requests. */
static void run_infers(child *ch, int j) {
  for (int i = 0; i < GROUP; i++) {
    int k = (j + i) % MODELS, e = rand_r(&ch->seed) % EXAMPLES;
    load(ch, 0, k, e);
    ch->rep.requests++;
    ch->rep.infers++;
    int64_t started = emx_now_ns();
    int rc =
        emx_client_infer(ch->c, ch->m[k], ch->in[0][k], models[k].input_count,
                         ch->out[0][k], models[k].output_count, NULL);
    if (rc < 0)
      child_error(ch, "emx_client_infer", rc, emx_client_last_error(ch->c));
    else
      check(ch, 0, k, e, started);
  }
}

/* child_main is one client process; never returns. */
static void child_main(int index, const bench_daemon *d, int report_fd) {
  alarm(TIMEOUT_S + 10); /* a hung process dies; the parent sees EOF */
  static child ch;
  memset(&ch, 0, sizeof ch);
  ch.index = index;
  ch.seed = 1000u + (unsigned)index;
  if (child_setup(&ch, d) == 0) {
    run_batch(&ch, 0);
    for (int j = BATCH; j < REQUESTS; j += GROUP) {
      /* One group in three is submit + wait, the others infer. */
      if ((j - BATCH) / GROUP % 3 == 2)
        run_submits(&ch, j);
      else
        run_infers(&ch, j);
    }
  }
  bench_write_full(report_fd, &ch.rep, sizeof ch.rep);
  close(report_fd);
  emx_client_destroy(ch.c);
  _exit(0);
}

/* ------------------------------------------------------------------------ */
/* The daemon's report                                                        */

/* status_line finds the line of `text` that starts with `prefix`. */
static const char *status_line(const char *text, const char *prefix) {
  size_t len = strlen(prefix);
  for (const char *line = text; line && *line;) {
    if (strncmp(line, prefix, len) == 0)
      return line;
    line = strchr(line, '\n');
    if (line)
      line++;
  }
  return NULL;
}

/* status_value reads " key=NUMBER" from a status line; -1 if absent. */
static double status_value(const char *line, const char *key) {
  if (!line)
    return -1;
  const char *end = strchr(line, '\n');
  char pat[64];
  snprintf(pat, sizeof pat, " %s=", key);
  const char *at = strstr(line, pat);
  if (!at || (end && at > end))
    return -1;
  return strtod(at + strlen(pat), NULL);
}

/* print_daemon_report prints the daemon's latencies per model and its
 * device lines; returns the device count, or -1. */
static int print_daemon_report(const char *text, long long *model_requests) {
  for (int k = 0; k < MODELS; k++) {
    char prefix[128];
    snprintf(prefix, sizeof prefix, "model %s ", model_names[k]);
    const char *line = status_line(text, prefix);
    model_requests[k] = (long long)status_value(line, "requests");
    printf("              p50 %.2f ms, p99 %.2f ms (daemon, "
           "emx_client_status: %s, %lld requests, %lld errors)\n",
           status_value(line, "p50_us") / 1e3,
           status_value(line, "p99_us") / 1e3, model_names[k],
           model_requests[k], (long long)status_value(line, "errors"));
  }
  int devices = 0;
  printf("per device:\n");
  for (const char *line = status_line(text, "device "); line;
       line = status_line(line + 1, "device ")) {
    char name[64] = "?";
    sscanf(line, "device %63s", name);
    printf("  %-8s %6lld requests, %lld errors, busy %.2f s, p50 %.2f ms, "
           "%s\n",
           name, (long long)status_value(line, "requests"),
           (long long)status_value(line, "errors"),
           status_value(line, "busy_ms") / 1e3,
           status_value(line, "p50_us") / 1e3,
           status_value(line, "healthy") == 1 ? "healthy" : "UNHEALTHY");
    devices++;
  }
  return devices;
}

/* ------------------------------------------------------------------------ */
/* Main                                                                      */

static void usage(FILE *f) {
  fprintf(f,
          "usage: edgemux-daemon-demo [--repo DIR]\n"
          "\n"
          "Starts edgemuxd (next to this program) with one CPU device on the\n"
          "model repository DIR (default %s), runs %d processes x %d\n"
          "requests over %s and %s through it, checks\n"
          "every output against a plain TFLite interpreter, prints a report\n"
          "and stops the daemon.\n",
          DEFAULT_REPO, PROCESSES, REQUESTS, model_names[0], model_names[1]);
}

int main(int argc, char **argv) {
  const char *repo = DEFAULT_REPO;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--repo") == 0 && i + 1 < argc) {
      repo = argv[++i];
    } else {
      usage(stderr);
      return 2;
    }
  }
  for (int k = 0; k < MODELS; k++) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%.*s/%s/model.tflite", PATH_MAX - 100, repo,
             model_names[k]);
    if (access(path, R_OK) != 0) {
      fprintf(stderr,
              "edgemux-daemon-demo: cannot read %s: %s\n"
              "  The model repository is made by scripts/setup: run `make "
              "demo`\n"
              "  (which runs it) or scripts/setup, or pass --repo DIR.\n",
              path, strerror(errno));
      return 1;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  static char repo_real[PATH_MAX];
  if (realpath(repo, repo_real))
    repo = repo_real;

  static bench_daemon d;
  int exit_code = 1;
  const char *args[] = {"--models",    repo,   "--device", DEVICE_SPEC,
                        "--log-level", "info", NULL};
  if (bench_daemon_start(&d, "edgemux-daemon-demo", args) < 0)
    return 1;
  printf("edgemux %s daemon demo, TensorFlow Lite %s\n", emx_version(),
         TfLiteVersion());
  printf("daemon:       %s (pid %d), --device %s\n", d.exe, (int)d.pid,
         DEVICE_SPEC);
  printf("socket:       %s\n", d.socket);
  printf("repository:   %s\n", repo);
  if (prepare_models(&d, repo) < 0)
    goto stop;
  for (int k = 0; k < MODELS; k++) {
    char shape[128];
    shape_text(&models[k].in_info[0], shape, sizeof shape);
    printf("%-13s %s: input %s %s, %zu output%s\n",
           k ? "" : "models:", model_names[k],
           emx_dtype_name(models[k].in_info[0].dtype), shape,
           models[k].output_count, models[k].output_count == 1 ? "" : "s");
  }
  printf("oracle:       %d random inputs per model run on a plain TFLite "
         "interpreter\n",
         EXAMPLES);
  fflush(stdout);

  /* The processes: each connects on its own; the examples are inherited. */
  pid_t pids[PROCESSES];
  int fds[PROCESSES];
  int started = 0;
  int64_t start = emx_now_ns();
  for (; started < PROCESSES; started++) {
    int pipefd[2];
    if (pipe(pipefd) < 0) {
      perror("edgemux-daemon-demo: pipe");
      break;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
      perror("edgemux-daemon-demo: fork");
      close(pipefd[0]);
      close(pipefd[1]);
      break;
    }
    if (pid == 0) {
      close(pipefd[0]);
      for (int q = 0; q < started; q++)
        close(fds[q]);
      child_main(started, &d, pipefd[1]);
    }
    close(pipefd[1]);
    pids[started] = pid;
    fds[started] = pipefd[0];
  }

  static report reps[PROCESSES];
  int reported = 0, exited = 0;
  int64_t deadline = emx_now_ns() + (int64_t)TIMEOUT_S * 1000000000;
  for (int p = 0; p < started; p++) {
    if (bench_read_full(fds[p], &reps[p], sizeof reps[p], deadline) == 0)
      reported++;
    else
      fprintf(stderr, "edgemux-daemon-demo: process %d sent no report\n", p);
    close(fds[p]);
  }
  for (int p = 0; p < started; p++) {
    int st = 0;
    if (reported < started)
      kill(pids[p], SIGKILL);
    while (waitpid(pids[p], &st, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
      exited++;
    else
      fprintf(stderr, "edgemux-daemon-demo: process %d: wait status 0x%x\n", p,
              st);
  }
  double wall_s = (double)(emx_now_ns() - start) / 1e9;

  static double latencies[PROCESSES * REQUESTS];
  size_t latency_count = 0;
  int requests = 0, ok = 0, errors = 0, mismatches = 0;
  int infers = 0, submits = 0, batched = 0, printed = 0;
  for (int p = 0; p < reported; p++) {
    report *r = &reps[p];
    requests += r->requests;
    ok += r->ok;
    errors += r->errors;
    mismatches += r->mismatches;
    infers += r->infers;
    submits += r->submits;
    batched += r->batched;
    for (int i = 0; i < r->latency_count && i < REQUESTS; i++)
      latencies[latency_count++] = r->latencies_us[i];
    if (r->first_error[0] && printed++ < 5)
      fprintf(stderr, "edgemux-daemon-demo: %s\n", r->first_error);
  }
  qsort(latencies, latency_count, sizeof *latencies, bench_compare_double);

  printf("load:         %d processes x %d requests, one connection each, "
         "alternating the two models;\n"
         "              emx_client_infer %d, submit+wait %d, "
         "submit_batch %d\n",
         PROCESSES, REQUESTS, infers, submits, batched);
  printf("processes:    %d started, %d reported, %d exited cleanly\n", started,
         reported, exited);
  printf("requests:     %d\n", requests);
  printf("errors:       %d\n", errors);
  printf("mismatches:   %d (outputs compared bit for bit with the oracle)\n",
         mismatches);
  printf("wall time:    %.3f s\n", wall_s);
  printf("throughput:   %.1f req/s\n", (double)ok / wall_s);
  printf("latency:      p50 %.2f ms, p99 %.2f ms (seen by the clients)\n",
         bench_percentile(latencies, latency_count, 50) / 1e3,
         bench_percentile(latencies, latency_count, 99) / 1e3);

  long long model_requests[MODELS] = {-1, -1};
  int devices = -1;
  emx_client *c;
  if (bench_daemon_connect(&d, 0, &c) == 0) {
    char *text = NULL;
    if (emx_client_status(c, &text) == 0) {
      devices = print_daemon_report(text, model_requests);
      free(text);
    } else {
      fprintf(stderr, "edgemux-daemon-demo: emx_client_status: %s\n",
              emx_client_last_error(c));
    }
    emx_client_destroy(c);
  } else {
    fprintf(stderr, "edgemux-daemon-demo: %s\n", emx_client_last_error(NULL));
  }

  bool counted = true;
  for (int k = 0; k < MODELS; k++)
    counted = counted && model_requests[k] == PROCESSES * REQUESTS / MODELS;
  int want = PROCESSES * REQUESTS;
  if (started == PROCESSES && reported == PROCESSES && exited == PROCESSES &&
      requests == want && ok == want && errors == 0 && mismatches == 0 &&
      devices == 1 && counted)
    exit_code = 0;
  else if (!counted || devices != 1)
    fprintf(stderr,
            "edgemux-daemon-demo: the daemon's counts disagree: %d "
            "device(s), %lld + %lld requests (want 1 device, %d + %d)\n",
            devices, model_requests[0], model_requests[1], want / MODELS,
            want / MODELS);

stop:;
  int status = bench_daemon_stop(&d); /* on a failure, says so with the log */
  if (status == 0) {
    printf("daemon stop:  SIGTERM, edgemuxd exited with status 0\n");
  } else {
    printf("daemon stop:  SIGTERM, edgemuxd exit status %d\n", status);
    exit_code = 1;
  }
  free_models();
  printf("result:       %s\n",
         exit_code == 0 ? "OK, every output matched the oracle" : "FAILED");
  return exit_code;
}
