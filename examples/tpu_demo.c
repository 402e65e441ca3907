/*
 * tpu_demo.c — the failure edgemux exists for, then the remedy (part of
 * `make demo`).
 *
 * 1. N processes each open the Edge TPU themselves, as a multiprocessing
 *    program does. The device is simulated (sim:0: a single-core Coral
 *    Edge TPU, exclusive to one process, like the real one): one process
 *    gets it, every other one fails with "device busy".
 * 2. The same N processes through edgemuxd, which owns the device: all of
 *    them get their results.
 */
#include <edgemux/client.h>
#include <edgemux/edgemux.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef EMX_MODELS_DIR
#define EMX_MODELS_DIR ".deps/models"
#endif

#define PROCESSES 4
#define REQUESTS 50

/* Phase 1: each child opens sim:0 and holds it until the parent has heard
 * from all of them. */
static int phase_direct(void) {
  int results[2], release[2];
  if (pipe(results) < 0 || pipe(release) < 0)
    return -1;
  for (int i = 0; i < PROCESSES; i++) {
    pid_t pid = fork();
    if (pid < 0)
      return -1;
    if (pid == 0) {
      close(results[0]);
      close(release[1]);
      const char *devices[] = {"sim:0"};
      emx_engine_config cfg;
      emx_engine_config_init(&cfg);
      cfg.devices = devices;
      cfg.device_count = 1;
      cfg.log_level = EMX_LOG_ERROR;
      emx_engine *e = NULL;
      int rc = emx_engine_create(&e, &cfg);
      char line[700];
      int n = snprintf(line, sizeof line, "  process %d (pid %d): %s\n", i + 1,
                       (int)getpid(),
                       rc ? emx_engine_last_error(NULL) : "opened the TPU");
      if (write(results[1], line, (size_t)n) < 0)
        _exit(2);
      char c;
      if (read(release[0], &c, 1) < 0)
        _exit(2);
      emx_engine_destroy(e);
      _exit(rc ? 1 : 0);
    }
  }
  close(results[1]);
  close(release[0]);
  FILE *f = fdopen(results[0], "r");
  char line[700];
  for (int i = 0; i < PROCESSES && fgets(line, sizeof line, f); i++)
    fputs(line, stdout);
  fclose(f);
  close(release[1]);
  int opened = 0;
  for (int i = 0; i < PROCESSES; i++) {
    int status;
    wait(&status);
    opened += WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  return opened;
}

/* A child of phase 2: REQUESTS inferences through edgemuxd. */
static int child_client(uint64_t seed) {
  emx_client *c;
  emx_client_model *m;
  emx_tensor in, out[2];
  if (emx_client_connect(&c, NULL) < 0 ||
      emx_client_model_open(c, "face_detection_short_range", &m) < 0 ||
      emx_client_tensor_alloc_input(c, m, 0, &in) < 0 ||
      emx_client_tensor_alloc_output(c, m, 0, &out[0]) < 0 ||
      emx_client_tensor_alloc_output(c, m, 1, &out[1]) < 0) {
    fprintf(stderr, "  client: %s\n", emx_client_last_error(c));
    return 1;
  }
  float *px = in.data;
  for (size_t i = 0; i < in.size / sizeof *px; i++) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    px[i] = (float)(seed >> 40) / (float)(1 << 24) * 2 - 1;
  }
  int failed = 0;
  for (int i = 0; i < REQUESTS; i++)
    failed += emx_client_infer(c, m, &in, 1, out, 2, NULL) != 0;
  emx_client_destroy(c);
  return failed ? 1 : 0;
}

static pid_t start_daemon(const char *exe_dir, const char *sock) {
  char daemon[PATH_MAX], repo[PATH_MAX];
  snprintf(daemon, sizeof daemon, "%s/edgemuxd", exe_dir);
  snprintf(repo, sizeof repo, "%s/../repo", EMX_MODELS_DIR);
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    execl(daemon, daemon, "--socket", sock, "--models", repo, "--device",
          "sim:0", "--log-level", "warn", (char *)NULL);
    _exit(127);
  }
  /* Ready when it answers a ping. */
  for (int i = 0; i < 500; i++) {
    emx_client_config cfg;
    emx_client_config_init(&cfg);
    cfg.socket_path = sock;
    cfg.arena_bytes = 0;
    emx_client *c;
    if (emx_client_connect(&c, &cfg) == 0) {
      int rc = emx_client_ping(c);
      emx_client_destroy(c);
      if (rc == 0)
        return pid;
    }
    if (waitpid(pid, NULL, WNOHANG) == pid)
      return -1;
    usleep(20000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

int main(int argc, char **argv) {
  if (argc > 1) {
    printf("usage: edgemux-tpu-demo\n"
           "Shows N processes failing to share one (simulated) Edge TPU, then\n"
           "the same processes sharing it through edgemuxd.\n");
    return strcmp(argv[1], "--help") == 0 ? 0 : 2;
  }
  char lock_dir[] = "/tmp/emx-demo-XXXXXX";
  if (!mkdtemp(lock_dir))
    return 1;
  setenv("EMX_SIM_LOCK_DIR", lock_dir, 1); /* the demo's own "TPU" */

  printf("1. %d processes open the Edge TPU directly (the classic failure):\n",
         PROCESSES);
  fflush(stdout);
  int opened = phase_direct();
  printf("   -> %d of %d processes could use the TPU\n\n", opened, PROCESSES);

  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0)
    return 1;
  exe[n] = '\0';
  char sock[128];
  snprintf(sock, sizeof sock, "%s/edgemux.sock", lock_dir);
  setenv("EDGEMUX_SOCKET", sock, 1);
  printf("2. the same %d processes through edgemuxd (it owns sim:0):\n",
         PROCESSES);
  fflush(stdout);
  pid_t daemon = start_daemon(dirname(exe), sock);
  if (daemon < 0) {
    fprintf(stderr, "edgemux-tpu-demo: edgemuxd did not start\n");
    return 1;
  }
  int64_t t0 = emx_now_ns();
  for (int i = 0; i < PROCESSES; i++)
    if (fork() == 0)
      _exit(child_client((uint64_t)i + 1));
  int ok = 0;
  for (int i = 0; i < PROCESSES; i++) {
    int status;
    wait(&status);
    ok += WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  double secs = (emx_now_ns() - t0) / 1e9;
  kill(daemon, SIGTERM);
  int status;
  waitpid(daemon, &status, 0);
  printf("   -> %d of %d processes got all %d results (%d requests in %.2f s, "
         "%.0f req/s); edgemuxd exited %d\n",
         ok, PROCESSES, REQUESTS, PROCESSES * REQUESTS, secs,
         PROCESSES * REQUESTS / secs,
         WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  rmdir(lock_dir);
  int pass = opened == 1 && ok == PROCESSES;
  printf("\n%s\n", pass ? "tpu demo: failure reproduced, remedy works"
                        : "tpu demo: FAILED");
  return pass ? 0 : 1;
}
