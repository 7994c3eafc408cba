/*
 * sampler.c: the memory timeline behind mem_profile() and the kernel's peak
 * behind mem_peak().
 *
 * A background thread reads the process's resident memory every `interval`
 * seconds (Linux: pread() of an open /proc/self/statm, about a microsecond)
 * and stamps each reading with mk_now(), the clock of every memkit timestamp.
 * The thread never touches R: it writes to malloc'd buffers that the main
 * thread reads only after joining it. All signals are blocked in the thread,
 * so SIGINT, SIGPROF (Rprof) and SIGCHLD keep going to R's thread.
 *
 * The thread, its descriptor and its buffers are owned by an external pointer
 * whose C finalizer stops, joins and frees everything, so a sampler dropped
 * after an error or an interrupt still goes away; mem_profile() also stops it
 * explicitly on exit.
 *
 * The exact peak comes from the kernel, not from sampling: VmHWM in
 * /proc/self/status is the highest resident size since the last reset, and
 * writing "5" to /proc/self/clear_refs (Linux >= 4.0) resets it to the
 * current resident size. Elsewhere (macOS's resident_size_peak, Windows's
 * PeakWorkingSetSize, getrusage()'s ru_maxrss) the peak is the one since the
 * process started, which cannot be reset.
 *
 * The readings are the platform's (procmem.h, through utils.h). The thread
 * is a POSIX thread everywhere: on Windows that of R's toolchain
 * (winpthreads), which has no signals to block.
 */
#define _POSIX_C_SOURCE 200809L


#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "memkit.h"
#include "errors.h"
#include "utils.h"
#include "procmem.h"
#include "watch.h"

/* pthread_condattr_setclock() is POSIX but missing on macOS, and winpthreads
 * accepts it but always waits on the real-time clock; there the waits use the
 * real-time clock (the timestamps still use mk_now()). */
#if defined(__APPLE__) || defined(_WIN32)
# define WAIT_CLOCK CLOCK_REALTIME
#else
# define WAIT_CLOCK CLOCK_MONOTONIC
# define HAVE_CONDATTR_SETCLOCK 1
#endif

#define INITIAL_CAPACITY 4096
/* The longest wait between readings, in seconds. mem_profile() refuses
 * longer intervals; this keeps the deadline arithmetic far from overflow
 * whatever it is given. */
#define MAX_INTERVAL 86400.0

typedef struct {
  double time, rss;
} reading;

typedef struct {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  int have_sync;   /* lock and wake initialised */
  int have_thread; /* started and not yet joined */
  int stop;        /* guarded by lock */
  int fd;          /* /proc/self/statm, or -1 */
  pid_t pid;       /* the process that started the thread */
  double interval;
  /* Written by the thread only; read by R's thread only after the join. */
  reading *r;
  size_t n;
  size_t cap;
  int truncated;   /* a buffer could not grow: later samples dropped */
  /* Optional, set before the thread starts (watch.h): a limit watch and a
   * table of child processes, fed from record(). */
  mk_watch *watch;
  mk_kids *kids;
} sampler;

static void record(sampler *s) {
  double rss = mk_rss_read(s->fd);
  double now = mk_now();
  if (s->n == s->cap) {
    if (s->truncated) return;
    reading *r = mk_grow(s->r, &s->cap, sizeof *r, INITIAL_CAPACITY);
    if (r == NULL) { s->truncated = 1; return; }
    s->r = r;
  }
  s->r[s->n++] = (reading) {now, rss};
  watch_check(s->watch, rss, now);
  kids_tick(s->kids, now);
}

/* ts += secs, for 0 < secs <= MAX_INTERVAL: whole seconds and nanoseconds
 * apart, so that no product overflows (a double of 1e10 seconds times 1e9
 * does not fit a long long). */
static void add_seconds(struct timespec *ts, double secs) {
  if (!(secs > 0)) secs = 0;
  if (secs > MAX_INTERVAL) secs = MAX_INTERVAL;
  double whole = (double) (long) secs;
  long ns = (long) ((secs - whole) * 1e9) + ts->tv_nsec;
  ts->tv_sec += (time_t) whole + (time_t) (ns / 1000000000L);
  ts->tv_nsec = ns % 1000000000L;
}

static int before(const struct timespec *a, const struct timespec *b) {
  return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void *sampler_main(void *arg) {
  sampler *s = arg;
  struct timespec next, now;
  clock_gettime(WAIT_CLOCK, &next);
  for (;;) {
    record(s);
    add_seconds(&next, s->interval);
    /* After a stall (the machine was busy) start afresh rather than catch
     * up with a burst of back-to-back readings. */
    clock_gettime(WAIT_CLOCK, &now);
    if (before(&next, &now)) {
      next = now;
      add_seconds(&next, s->interval);
    }
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
      /* Anything but a wake-up (the deadline passed, or an error) means
       * it is time for the next reading. */
      if (pthread_cond_timedwait(&s->wake, &s->lock, &next) != 0) break;
    }
    int stop = s->stop;
    pthread_mutex_unlock(&s->lock);
    if (stop) break;
  }
  record(s); /* the last reading, at the moment of the stop */
  return NULL;
}

/* Stop and join the thread and close the descriptor. Never calls R, never
 * fails; safe to call twice. */
static void sampler_halt(sampler *s) {
  /* A child forked while the sampler ran (parallel::mcparallel()) has a copy
   * of this struct but not the thread: there is nothing to stop or join. */
  if (s->have_thread && s->pid != getpid()) s->have_thread = 0;
  if (s->have_thread) {
    pthread_mutex_lock(&s->lock);
    s->stop = 1;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    s->have_thread = 0;
  }
  if (s->fd >= 0) {
    close(s->fd);
    s->fd = -1;
  }
}

static void sampler_free(sampler *s) {
  sampler_halt(s);
  if (s->have_sync) {
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
  }
  watch_free(s->watch);
  kids_free(s->kids);
  free(s->r);
  free(s);
}

static void sampler_finalize(SEXP ptr) {
  sampler *s = R_ExternalPtrAddr(ptr);
  if (s == NULL) return;
  R_ClearExternalPtr(ptr);
  sampler_free(s);
}

static sampler *sampler_get(SEXP ptr) {
  if (TYPEOF(ptr) != EXTPTRSXP || R_ExternalPtrTag(ptr) != Rf_install("memkit_sampler")) {
    mk_error("type", "`sampler` must be a memkit sampler");
  }
  sampler *s = R_ExternalPtrAddr(ptr);
  if (s == NULL) mk_error("state", "The sampler has already been stopped.");
  return s;
}

static void sampler_extend(sampler *s, SEXP watch, SEXP children);

/* Start a sampler thread reading resident memory every `interval` seconds. */
SEXP ffi_sampler_start(SEXP interval) {
  return ffi_sampler_start_ex(interval, R_NilValue, R_NilValue);
}

/* The same with a limit watch and child processes (see sampler_extend()). */
SEXP ffi_sampler_start_ex(SEXP interval, SEXP watch, SEXP children) {
  int nprot = 0;
  double secs = Rf_asReal(interval);
  if (!R_FINITE(secs) || secs <= 0) {
    mk_error("argument", "`interval` must be a positive number of seconds.");
  }

  /* The pointer exists, with its finalizer, before anything it will own. */
  SEXP ptr = PROTECT(R_MakeExternalPtr(NULL, Rf_install("memkit_sampler"), R_NilValue)); nprot++;
  R_RegisterCFinalizerEx(ptr, sampler_finalize, TRUE);

  sampler *s = calloc(1, sizeof *s);
  if (s == NULL) mk_error("memory", "Cannot allocate the sampler.");
  s->fd = -1;
  R_SetExternalPtrAddr(ptr, s);
  s->interval = secs > MAX_INTERVAL ? MAX_INTERVAL : secs;

  s->r = mk_grow(NULL, &s->cap, sizeof *s->r, INITIAL_CAPACITY);
  if (s->r == NULL) mk_error("memory", "Cannot allocate the sampler's buffers.");
  sampler_extend(s, watch, children);

#if defined(__linux__)
  s->fd = mk_rss_open();
  if (s->fd < 0) {
    mk_error_sys("file", errno, "/proc/self/statm", "Cannot open '/proc/self/statm'");
  }
#endif

  pthread_condattr_t cattr;
  int rc = pthread_condattr_init(&cattr);
  if (rc != 0) mk_error_sys("system", rc, NULL, "Cannot set up the sampler");
#ifdef HAVE_CONDATTR_SETCLOCK
  /* Waits must run on the clock the deadlines are computed with. */
  rc = pthread_condattr_setclock(&cattr, WAIT_CLOCK);
  if (rc != 0) {
    pthread_condattr_destroy(&cattr);
    mk_error_sys("system", rc, NULL, "Cannot set up the sampler's clock");
  }
#endif
  rc = pthread_cond_init(&s->wake, &cattr);
  pthread_condattr_destroy(&cattr);
  if (rc != 0) mk_error_sys("system", rc, NULL, "Cannot set up the sampler");
  rc = pthread_mutex_init(&s->lock, NULL);
  if (rc != 0) {
    pthread_cond_destroy(&s->wake);
    mk_error_sys("system", rc, NULL, "Cannot set up the sampler");
  }
  s->have_sync = 1;

  s->pid = getpid();
#if defined(_WIN32)
  rc = pthread_create(&s->thread, NULL, sampler_main, s);
#else
  /* The thread inherits the signal mask: block everything while creating it
   * so that signals meant for R are never delivered to the sampler. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = pthread_create(&s->thread, NULL, sampler_main, s);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
#endif
  if (rc != 0) mk_error_sys("system", rc, NULL, "Cannot start the sampler thread");
  s->have_thread = 1;

  UNPROTECT(nprot);
  return ptr;
}

/* Stop the thread and return its readings: list(time, rss, truncated). */
SEXP ffi_sampler_stop(SEXP ptr) {
  int nprot = 0;
  sampler *s = sampler_get(ptr);
  sampler_halt(s);

  R_xlen_t n = (R_xlen_t) s->n;
  SEXP time = PROTECT(Rf_allocVector(REALSXP, n)); nprot++;
  SEXP rss = PROTECT(Rf_allocVector(REALSXP, n)); nprot++;
  for (R_xlen_t i = 0; i < n; i++) {
    REAL(time)[i] = s->r[i].time;
    REAL(rss)[i] = s->r[i].rss;
  }
  SEXP out = PROTECT(Rf_allocVector(VECSXP, 3)); nprot++;
  SEXP names = PROTECT(Rf_allocVector(STRSXP, 3)); nprot++;
  SET_VECTOR_ELT(out, 0, time);
  SET_VECTOR_ELT(out, 1, rss);
  SET_VECTOR_ELT(out, 2, Rf_ScalarLogical(s->truncated));
  SET_STRING_ELT(names, 0, Rf_mkChar("time"));
  SET_STRING_ELT(names, 1, Rf_mkChar("rss"));
  SET_STRING_ELT(names, 2, Rf_mkChar("truncated"));
  Rf_setAttrib(out, R_NamesSymbol, names);

  /* Only now, with nothing left that can fail, give up ownership. */
  R_ClearExternalPtr(ptr);
  sampler_free(s);
  UNPROTECT(nprot);
  return out;
}

/* The process's peak resident memory as list(bytes, source): source is
 * "VmHWM" (resettable) or what gives the peak since the process started
 * (procmem.h). */
SEXP ffi_sampler_peak(void) {
  int nprot = 0;
  const char *source = NULL;
  double bytes = mk_mem_peak(&source);
  if (bytes < 0) bytes = NA_REAL;
  SEXP out = PROTECT(Rf_allocVector(VECSXP, 2)); nprot++;
  SEXP names = PROTECT(Rf_allocVector(STRSXP, 2)); nprot++;
  SET_VECTOR_ELT(out, 0, Rf_ScalarReal(bytes));
  SET_VECTOR_ELT(out, 1, source ? Rf_mkString(source) : Rf_ScalarString(NA_STRING));
  SET_STRING_ELT(names, 0, Rf_mkChar("bytes"));
  SET_STRING_ELT(names, 1, Rf_mkChar("source"));
  Rf_setAttrib(out, R_NamesSymbol, names);
  UNPROTECT(nprot);
  return out;
}

/* Reset the kernel's high-water mark to the current resident size. TRUE if
 * the system allowed it. */
SEXP ffi_sampler_reset(void) {
  return Rf_ScalarLogical(mk_mem_peak_reset() ? TRUE : FALSE);
}

/* ---- extensions: the limit watch and child processes (watch.h) ---------- */

/* `watch`: NULL, or list(limit, usage_path, stat_path) with the paths NULL
 * or strings; `children`: NULL, or the seconds between scans. Runs before
 * the thread exists; `s` is already owned by its external pointer, so what
 * is attached here is freed with it if a later step fails. */
static void sampler_extend(sampler *s, SEXP watch, SEXP children) {
  if (TYPEOF(watch) == VECSXP && XLENGTH(watch) == 3) {
    SEXP usage = VECTOR_ELT(watch, 1), stat = VECTOR_ELT(watch, 2);
    int has_usage = TYPEOF(usage) == STRSXP && XLENGTH(usage) == 1 && STRING_ELT(usage, 0) != NA_STRING;
    int has_stat = TYPEOF(stat) == STRSXP && XLENGTH(stat) == 1 && STRING_ELT(stat, 0) != NA_STRING;
    s->watch = watch_new(Rf_asReal(VECTOR_ELT(watch, 0)),
                         has_usage ? CHAR(STRING_ELT(usage, 0)) : NULL,
                         has_stat ? CHAR(STRING_ELT(stat, 0)) : NULL);
  }
  if (TYPEOF(children) == REALSXP && XLENGTH(children) == 1) {
    s->kids = kids_new(REAL(children)[0]);
  }
}

/* Stop the thread, keep the readings: list(watch, children), each NULL
 * when not asked for. ffi_sampler_stop() then gives the readings. */
SEXP ffi_sampler_halt(SEXP ptr) {
  int nprot = 0;
  sampler *s = sampler_get(ptr);
  sampler_halt(s);
  SEXP out = PROTECT(Rf_allocVector(VECSXP, 2)); nprot++;
  SEXP names = PROTECT(Rf_allocVector(STRSXP, 2)); nprot++;
  SET_VECTOR_ELT(out, 0, watch_result(s->watch));
  SET_VECTOR_ELT(out, 1, kids_result(s->kids));
  SET_STRING_ELT(names, 0, Rf_mkChar("watch"));
  SET_STRING_ELT(names, 1, Rf_mkChar("children"));
  Rf_setAttrib(out, R_NamesSymbol, names);
  UNPROTECT(nprot);
  return out;
}

