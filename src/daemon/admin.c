/* admin.c — the admin thread: client LOADs (checks, trial, load), UNLOADs,
 * SIGHUP rescans and idle unloads run here, one at a time, so the I/O
 * thread never waits on a parse, a trial child, a device or a request
 * draining. Finished jobs go back to the I/O thread through an eventfd. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/sha256.h"
#include "daemon/daemon.h"

struct emxd_admin {
  pthread_t thread;
  pthread_mutex_t lock; /* guards the four below */
  pthread_cond_t cv;    /* work posted, or stop */
  emxd_job *todo, *todo_tail;
  emxd_job *done;
  bool stop;
  int efd; /* readable: jobs in done */
};

void emxd_job_free(emxd_job *job) {
  if (!job)
    return;
  if (job->fd >= 0)
    close(job->fd);
  emxd_model_put(job->model);
  free(job);
}

/* load maps the sealed memfd (it cannot change under us), names the bytes
 * by their hash, and tries them in a child unless they are loaded
 * already. */
static int load(emxd_server *srv, emxd_job *j, emx__errbuf *err) {
  void *data = mmap(NULL, j->size, PROT_READ, MAP_SHARED, j->fd, 0);
  if (data == MAP_FAILED)
    return emx__errf(err, EMX_EIO, "mapping the model: %s", strerror(errno));
  char hex[65];
  emx__sha256_hex(data, j->size, hex);
  int rc = emxd_model_client_check(srv, j->name, hex, j->devices, j->size,
                                   j->uid, err);
  if (rc == 0) {
    emx__log(EMX_LOG_INFO,
             "session %u: LOAD \"%s\" (%llu bytes, sha256 %.16s): new "
             "bytes, trying them in a child",
             j->session, j->name, (unsigned long long)j->size, hex);
    rc = emxd_trial(j->fd, srv->opt->max_model_memory, err);
  }
  emxd_model *m = NULL;
  if (rc >= 0)
    rc = emxd_model_load_client(srv, j->name, data, j->size, hex, j->devices,
                                j->uid, &m, err);
  munmap(data, j->size);
  if (rc < 0)
    return rc;
  emxd_model_ref(m);
  j->model = m;
  return 0;
}

static void run(emxd_server *srv, emxd_job *j) {
  emx__errbuf err = {{0}};
  switch (j->kind) {
  case EMXD_JOB_LOAD:
    j->status = load(srv, j, &err);
    break;
  case EMXD_JOB_UNLOAD:
    j->status = emxd_model_unload_name(srv, j->name, j->uid, &err);
    break;
  case EMXD_JOB_RESCAN:
    emxd_repo_scan(srv);
    break;
  }
  if (j->status < 0) {
    snprintf(j->msg, sizeof j->msg, "%s", err.msg);
    emx__log(EMX_LOG_WARN, "session %u: %s \"%s\" refused: %s", j->session,
             j->kind == EMXD_JOB_LOAD ? "LOAD" : "UNLOAD", j->name, err.msg);
  }
}

static void *admin_main(void *arg) {
  emxd_server *srv = arg;
  emxd_admin *a = srv->admin;
  pthread_mutex_lock(&a->lock);
  for (;;) {
    while (!a->todo && !a->stop) {
      /* Idle unloads are slow work too: done here, without the lock. */
      pthread_mutex_unlock(&a->lock);
      int64_t next = emxd_models_sweep(srv, emx_now_ns());
      pthread_mutex_lock(&a->lock);
      if (a->todo || a->stop)
        break;
      if (next == INT64_MAX) {
        pthread_cond_wait(&a->cv, &a->lock);
      } else {
        struct timespec ts = emx__abstime(next);
        pthread_cond_timedwait(&a->cv, &a->lock, &ts);
      }
    }
    if (a->stop)
      break;
    emxd_job *j = a->todo;
    a->todo = j->next;
    if (!a->todo)
      a->todo_tail = NULL;
    pthread_mutex_unlock(&a->lock);
    run(srv, j);
    pthread_mutex_lock(&a->lock);
    if (j->kind == EMXD_JOB_RESCAN) {
      emxd_job_free(j); /* nobody to answer */
      continue;
    }
    j->next = a->done;
    a->done = j;
    uint64_t one = 1;
    if (write(a->efd, &one, sizeof one) < 0) {
      /* Only EAGAIN (counter full) is possible: it is readable anyway. */
    }
  }
  pthread_mutex_unlock(&a->lock);
  return NULL;
}

int emxd_admin_start(emxd_server *srv, emx__errbuf *err) {
  emxd_admin *a = calloc(1, sizeof *a);
  if (!a)
    return emx__errf(err, EMX_ENOMEM, "out of memory");
  a->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (a->efd < 0) {
    free(a);
    return emx__errf(err, EMX_EIO, "eventfd: %s", strerror(errno));
  }
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&a->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&a->lock, NULL);
  srv->admin = a;
  int rc = pthread_create(&a->thread, NULL, admin_main, srv);
  if (rc != 0) {
    srv->admin = NULL;
    close(a->efd);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->lock);
    free(a);
    return emx__errf(err, EMX_EIO, "starting the admin thread: %s",
                     strerror(rc));
  }
  return 0;
}

void emxd_admin_stop(emxd_server *srv) {
  emxd_admin *a = srv->admin;
  if (!a)
    return;
  pthread_mutex_lock(&a->lock);
  a->stop = true;
  pthread_cond_signal(&a->cv);
  pthread_mutex_unlock(&a->lock);
  /* A job in progress finishes first (a trial child is bounded; an unload
   * waits for its running requests, which the engine's shutdown ends). */
  pthread_join(a->thread, NULL);
  while (a->todo) {
    emxd_job *j = a->todo;
    a->todo = j->next;
    emxd_job_free(j);
  }
  emxd_job_free_list(a->done);
  close(a->efd);
  pthread_cond_destroy(&a->cv);
  pthread_mutex_destroy(&a->lock);
  free(a);
  srv->admin = NULL;
}

void emxd_admin_post(emxd_server *srv, emxd_job *job) {
  emxd_admin *a = srv->admin;
  job->next = NULL;
  pthread_mutex_lock(&a->lock);
  if (a->todo_tail)
    a->todo_tail->next = job;
  else
    a->todo = job;
  a->todo_tail = job;
  pthread_cond_signal(&a->cv);
  pthread_mutex_unlock(&a->lock);
}

int emxd_admin_fd(emxd_server *srv) {
  return srv->admin->efd;
}

emxd_job *emxd_admin_take(emxd_server *srv) {
  emxd_admin *a = srv->admin;
  uint64_t n;
  if (read(a->efd, &n, sizeof n) < 0) {
    /* EAGAIN: nothing new; the list says what there is. */
  }
  pthread_mutex_lock(&a->lock);
  emxd_job *list = a->done;
  a->done = NULL;
  pthread_mutex_unlock(&a->lock);
  /* Oldest first: the thread pushed them on the front. */
  emxd_job *rev = NULL;
  while (list) {
    emxd_job *next = list->next;
    list->next = rev;
    rev = list;
    list = next;
  }
  return rev;
}

void emxd_job_free_list(emxd_job *list) {
  while (list) {
    emxd_job *next = list->next;
    emxd_job_free(list);
    list = next;
  }
}
