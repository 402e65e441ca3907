/* trial.c — a client's model bytes run once in a throwaway edgemux-devhost
 * (--trial) before the daemon parses them itself: TFLite's parser trusts
 * its input, and a crafted model (a RELU whose output is its own input)
 * makes TfLiteInterpreterCreate write out of bounds. The child takes the
 * crash; the client gets a clear error. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/child.h"
#include "backend/tflite.h"
#include "daemon/daemon.h"

/* A model TFLite runs once on the CPU within this is a model a client may
 * load; a slower one belongs in the model repository. */
#define TRIAL_NS (30 * 1000000000LL)

int emxd_trial(int memfd, uint64_t max_bytes, emx__errbuf *err) {
  char path[PATH_MAX];
  int rc = emx__devhost_find("the model trial", path, sizeof path, err);
  if (rc < 0)
    return rc;
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0)
    return emx__errf(err, EMX_EIO, "model trial: pipe: %s", strerror(errno));
  char max[32];
  snprintf(max, sizeof max, "%llu", (unsigned long long)max_bytes);
  char *argv[] = {path, "--trial", max, NULL};
  pid_t pid;
  int src = emx__devhost_spawn(path, argv, memfd, pipefd[1], false, &pid);
  close(pipefd[1]);
  if (src != 0) {
    close(pipefd[0]);
    return emx__errf(err, EMX_EIO, "model trial: starting %s: %s", path,
                     strerror(src));
  }
  int status = 0;
  int ended = emx__child_end(pid, &status, TRIAL_NS, "a model trial");
  /* The child has exited: what it wrote (at most a line) is in the pipe. */
  char why[400] = "";
  ssize_t n = read(pipefd[0], why, sizeof why - 1);
  close(pipefd[0]);
  why[n > 0 ? n : 0] = '\0';
  if (ended != 1)
    return emx__errf(err, EMX_ETIMEDOUT,
                     "model rejected: one trial run did not finish within "
                     "%lld s (a model that slow can be served from the "
                     "model repository, --models)",
                     TRIAL_NS / 1000000000LL);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return 0;
  if (WIFEXITED(status) && WEXITSTATUS(status) == EMX__TRIAL_TOO_BIG)
    return emx__errf(err, EMX_EBUSY,
                     "model rejected: once loaded it takes %s, more than a "
                     "client's model may (--max-model-memory-mb %llu)",
                     why[0] ? why : "too much memory",
                     (unsigned long long)(max_bytes >> 20));
  if (WIFEXITED(status) && WEXITSTATUS(status) == EMX__TRIAL_REFUSED)
    return emx__errf(err, EMX_EMODEL,
                     "model rejected: TensorFlow Lite cannot run it: %s",
                     why[0] ? why : "(no reason given)");
  if (WIFSIGNALED(status))
    return emx__errf(err, EMX_EMODEL,
                     "model rejected: it crashed TensorFlow Lite (signal %d, "
                     "%s) in a trial process; the daemon did not load it",
                     WTERMSIG(status), strsignal(WTERMSIG(status)));
  return emx__errf(err, EMX_EMODEL,
                   "model rejected: it crashed TensorFlow Lite (exit %d) in a "
                   "trial process; the daemon did not load it",
                   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}
