#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define NETNS_DIR "/run/netns/"

struct netns_job {
  const char *netns;
  int (*fn)(void *);
  void *arg;
  char *step;
  size_t step_len;
  int err;
};

static int job_fail(struct netns_job *j, const char *what, const char *path, int err) {
  snprintf(j->step, j->step_len, "%s %s", what, path);
  return err;
}

/* This thread exists for the one call and ends here: no other thread runs in the wrong namespace. */
static void *netns_thread(void *arg) {
  struct netns_job *j = arg;
  char path[sizeof NETNS_DIR + 256]; /* names are checked to be at most 255 bytes */
  snprintf(path, sizeof path, NETNS_DIR "%s", j->netns);
  int ns = open(path, O_RDONLY | O_CLOEXEC);
  if (ns < 0) {
    j->err = job_fail(j, "open", path, errno);
    return NULL;
  }
  if (setns(ns, CLONE_NEWNET) < 0) {
    j->err = job_fail(j, "setns", path, errno);
    close(ns);
    return NULL;
  }
  close(ns);
  j->err = j->fn(j->arg);
  return NULL;
}

int netns_call(const char *netns, int (*fn)(void *), void *arg, char *step, size_t step_len) {
  if (!netns) return fn(arg);
  /* A name, not a path: no separators, no dot entries. */
  size_t n = strlen(netns);
  if (n == 0 || n > 255 || strchr(netns, '/') || strcmp(netns, ".") == 0 || strcmp(netns, "..") == 0) {
    snprintf(step, step_len, "netns name");
    return EINVAL;
  }
  struct netns_job job = {netns, fn, arg, step, step_len, 0};
  pthread_t t;
  int err = pthread_create(&t, NULL, netns_thread, &job);
  if (err) {
    snprintf(step, step_len, "pthread_create");
    return err;
  }
  pthread_join(t, NULL);
  return job.err;
}
