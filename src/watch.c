/*
 * watch.c: the limit watch of with_mem_limit() (see watch.h).
 *
 * How R is interrupted: the sampler thread sends SIGINT to R's main thread
 * with pthread_kill(). R's own SIGINT handler (the one a user's Ctrl-C
 * reaches) marks an interrupt as pending, and R raises it as an `interrupt`
 * condition at its next check: every thousand or so evaluations, in loops,
 * in R_CheckUserInterrupt() calls of compiled code. with_mem_limit() tells
 * its own interrupt from a user's by the watch's `fired` flag, read after
 * the thread is joined. The signal is sent once per watch.
 *
 * Nothing here touches R from the sampler thread: watch_check() reads a
 * number it was given (or a cgroup file), compares and signals.
 */
#define _POSIX_C_SOURCE 200809L

#include "watch.h"
#include "errors.h"

#if defined(_WIN32)

/* No POSIX signals: with_mem_limit() says so before it gets here. */
mk_watch *watch_new(double limit, const char *usage_path, const char *stat_path) {
  (void) limit; (void) usage_path; (void) stat_path;
  mk_error("unsupported", "Memory limits are not available on Windows.");
}
void watch_check(mk_watch *w, double rss, double now) { (void) w; (void) rss; (void) now; }
void watch_free(mk_watch *w) { (void) w; }
SEXP watch_result(const mk_watch *w) { (void) w; return R_NilValue; }

#else

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct mk_watch {
  double limit;
  int usage_fd;      /* the cgroup's usage file, or -1: watch resident memory */
  int stat_fd;       /* the cgroup's memory.stat, or -1 */
  pthread_t target;  /* R's main thread */
  pid_t pid;         /* the process that owns the watch */
  /* Written by the sampler thread; read by R's thread after the join. */
  int fired;
  int signalled;     /* pthread_kill() succeeded */
  double fired_time, fired_value, peak;
};

/* A number at the start of a file read with pread(), or -1. */
static double read_number_fd(int fd) {
  char buf[64];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char *end;
  double v = strtod(buf, &end);
  if (end == buf || v < 0) return -1;
  return v;
}

/* The value of `key` ("total_inactive_file", "inactive_file") in a
 * memory.stat held in buf, or -1. Keys are matched at line starts. */
static double stat_value(const char *buf, const char *key) {
  size_t len = strlen(key);
  const char *p = buf;
  while (p != NULL && *p != '\0') {
    if (strncmp(p, key, len) == 0 && p[len] == ' ') {
      char *end;
      double v = strtod(p + len + 1, &end);
      return end == p + len + 1 ? -1 : v;
    }
    p = strchr(p, '\n');
    if (p != NULL) p++;
  }
  return -1;
}

/* The cgroup's usage without its inactive file cache (what the kernel
 * reclaims before it kills), or -1. */
static double cgroup_usage(const mk_watch *w) {
  double usage = read_number_fd(w->usage_fd);
  if (usage < 0 || w->stat_fd < 0) return usage;
  char buf[8192];
  ssize_t n = pread(w->stat_fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return usage;
  buf[n] = '\0';
  double inactive = stat_value(buf, "total_inactive_file"); /* v1, hierarchical */
  if (inactive < 0) inactive = stat_value(buf, "inactive_file");
  if (inactive > 0 && inactive < usage) usage -= inactive;
  return usage;
}

mk_watch *watch_new(double limit, const char *usage_path, const char *stat_path) {
  /* The signal must reach R's handler: without one (R embedded in a program
   * that left SIGINT at its default), SIGINT would end the process. */
  struct sigaction sa;
  if (sigaction(SIGINT, NULL, &sa) != 0) {
    mk_error_sys("system", errno, NULL, "Cannot read the SIGINT handler");
  }
  if (!(sa.sa_flags & SA_SIGINFO) && (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN)) {
    mk_error("unsupported",
             "R does not handle interrupts in this process (SIGINT is %s), so a memory limit "
             "cannot interrupt it.", sa.sa_handler == SIG_IGN ? "ignored" : "at its default");
  }
  mk_watch *w = calloc(1, sizeof *w);
  if (w == NULL) mk_error("memory", "Cannot allocate the memory watch.");
  w->limit = limit;
  w->usage_fd = w->stat_fd = -1;
  w->target = pthread_self();
  w->pid = getpid();
  w->peak = -1;
  if (usage_path != NULL) {
    w->usage_fd = open(usage_path, O_RDONLY | O_CLOEXEC);
    if (w->usage_fd < 0 || read_number_fd(w->usage_fd) < 0) {
      int err = errno;
      watch_free(w);
      mk_error_sys("file", err ? err : EINVAL, usage_path, "Cannot read the cgroup's usage from '%s'",
                   usage_path);
    }
    if (stat_path != NULL) w->stat_fd = open(stat_path, O_RDONLY | O_CLOEXEC);
  }
  return w;
}

void watch_check(mk_watch *w, double rss, double now) {
  if (w == NULL || w->pid != getpid()) return;
  double value = w->usage_fd >= 0 ? cgroup_usage(w) : rss;
  if (!(value >= 0)) return; /* NA or unreadable: no decision */
  if (value > w->peak) w->peak = value;
  if (!w->fired && value > w->limit) {
    w->fired = 1;
    w->fired_time = now;
    w->fired_value = value;
    w->signalled = pthread_kill(w->target, SIGINT) == 0;
  }
}

void watch_free(mk_watch *w) {
  if (w == NULL) return;
  if (w->usage_fd >= 0) close(w->usage_fd);
  if (w->stat_fd >= 0) close(w->stat_fd);
  free(w);
}

SEXP watch_result(const mk_watch *w) {
  int nprot = 0;
  if (w == NULL) return R_NilValue;
  const char *nms[] = {"fired", "time", "value", "peak", "signalled"};
  SEXP out = PROTECT(Rf_allocVector(VECSXP, 5)); nprot++;
  SEXP names = PROTECT(Rf_allocVector(STRSXP, 5)); nprot++;
  SET_VECTOR_ELT(out, 0, Rf_ScalarLogical(w->fired));
  SET_VECTOR_ELT(out, 1, Rf_ScalarReal(w->fired ? w->fired_time : NA_REAL));
  SET_VECTOR_ELT(out, 2, Rf_ScalarReal(w->fired ? w->fired_value : NA_REAL));
  SET_VECTOR_ELT(out, 3, Rf_ScalarReal(w->peak >= 0 ? w->peak : NA_REAL));
  SET_VECTOR_ELT(out, 4, Rf_ScalarLogical(w->signalled));
  for (int i = 0; i < 5; i++) SET_STRING_ELT(names, i, Rf_mkChar(nms[i]));
  Rf_setAttrib(out, R_NamesSymbol, names);
  UNPROTECT(nprot);
  return out;
}

#endif

/* ---- entry points ----------------------------------------------------------- */

#include "memkit.h"

#if !defined(_WIN32)
# include <signal.h>
#endif

/* Give an interrupt that a watch signalled to R now, while with_mem_limit()
 * can still tell it is its own: the signal was sent before the sampler
 * thread was joined, so it is pending on this thread at the latest; any
 * system call delivers it to R's handler, and R_CheckUserInterrupt() raises
 * it. */
SEXP ffi_watch_drain(void) {
#if !defined(_WIN32)
  sigset_t pending;
  sigpending(&pending);
#endif
  R_CheckUserInterrupt();
  return R_NilValue;
}
