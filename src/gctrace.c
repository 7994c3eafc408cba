/*
 * gctrace.c: a record of every garbage collection, through R's public API.
 *
 * Two sources, joined in R (R/gctrace.R):
 *
 * 1. The report stream. With gcinfo(TRUE), R prints three lines after each
 *    automatic collection through REprintf():
 *      "Garbage collection N = a+b+c (level L) ... "
 *      "\nX.Y Mbytes of cons cells used (P%)\n"
 *      "X.Y Mbytes of vectors used (P%)\n"
 *    REprintf() writes to the message sink, which R/gctrace.R points at the
 *    write end of a pipe (a file() connection on /dev/fd/N, flushed after
 *    every REprintf). A reader thread drains the pipe so that a long stretch
 *    of C code that collects many times never fills it; it stamps each record
 *    with mk_now() and keeps everything that is not a report as text for
 *    R/gctrace.R to hand back to the user. The thread never touches R: it
 *    only reads the pipe and fills the C buffers below under `mu`.
 *
 * 2. A sentinel: an external pointer nobody references, with a C finalizer.
 *    R runs finalizers at the next safe point after a collection (not inside
 *    it), so the finalizer sees the R call stack that was running. It re-arms
 *    itself, drains the pipe on the main thread (so every report printed
 *    before it is counted) and records the number of reports seen so far,
 *    sys.calls() and gc.time().
 *
 *    Re-arming from inside a finalizer is subtle: RunFinalizers() unlinks a
 *    ready weak reference at the head of R's list by moving the head to its
 *    successor, so a reference pushed at the head while it runs is cut off if
 *    that successor is also ready (e.g. five gc() calls in a row would give
 *    one callback). Each sentinel is therefore created right after an
 *    "anchor" weak reference whose key stays alive, so the sentinel's
 *    successor is never ready. Anchors are retired two generations later:
 *    the anchor created with the sentinel now firing is still its successor.
 *
 * One tracer per process; R/gctrace.R nests traces as views over it.
 *
 * Windows has no name for a pipe that R's file() can open: there the reports
 * go to a spool file that the reader thread follows (gctrace_spool.h), and
 * everything about pipes, descriptors and fork() below is POSIX only. The
 * parser, the sentinel and the read-out are the same everywhere.
 */
#define _GNU_SOURCE

#include "memkit.h"
#include "errors.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _WIN32
# include "gctrace_spool.h"
#else
# include <dirent.h>
# include <fcntl.h>
# include <poll.h>
# include <signal.h>
# include <sys/stat.h>
# include <unistd.h>
#endif

#include "utils.h"

#define LINE_MAX_LEN 4096
#define TEXT_MAX ((size_t) 16 << 20)

typedef struct {
  int nrec;
  double mono, gctime;
} cbrec;

typedef struct {
  double mono;
  int n, c0, c1, c2, level;
  double ncells_mb, vcells_mb;
  int ncells_pct, vcells_pct;
} gcrec;

/* State shared with the reader thread: everything in this block is read and
 * written only with `mu` held. */
typedef struct {
  gcrec *recs;
  size_t nrecs, caprecs;
  int pending;          /* lines still expected for the last record (0-2) */
  char line[LINE_MAX_LEN];
  size_t linelen;
  char *text;
  size_t ntext, captext;
  double dropped;       /* bytes or records dropped for lack of memory */
} stream_t;

static struct {
  int open;             /* pipe and thread exist */
  int rfd, wfd;         /* the pipe */
  int wake[2];          /* tells the thread to finish */
#ifdef _WIN32
  gc_spool *spool;      /* Windows: the spool file instead of the pipe */
#endif
  pthread_t thread;
  int thread_started;
  pthread_mutex_t mu;
  stream_t s;

  /* Other fds on the write end: R's connection opens /dev/fd/N anew. */
  int adopted[8];
  int nadopted;
  int forked;           /* this process is a fork of the traced one */
  /* The handle that owns the pipe and thread now, or NULL. A fork's child
   * inherits its parent's handle as an R object but not what it owned: when
   * that handle is closed or finalized there, it must not tear down a pipe
   * the child opened since (they may share descriptor numbers). Compared,
   * never dereferenced. */
  SEXP owner;

  /* Main thread only. */
  int armed;
  long generation;
  cbrec *cb;           /* one per callback: reports seen, time, gc.time() */
  size_t ncb, capcb;
  double cb_dropped;
  int hook_nrec;        /* reports seen by the previous callback */
  int sync_frames;      /* inside ffi_gctrace_sync(): frames a stack keeps; else -1 */
  SEXP keep;            /* preserved list: anchors, keys, sentinel, stacks */
  int quiet_children;   /* forked children turn R's reports off at once */
#ifndef _WIN32
  pthread_t main;       /* R's thread (the one that armed the sentinel) */
  int has_main;
#endif
} G = {.rfd = -1, .wfd = -1, .wake = {-1, -1}, .sync_frames = -1,
       .mu = PTHREAD_MUTEX_INITIALIZER};

enum { K_ANCHOR = 0, K_KEY = 3, K_SENTINEL = 6, K_STACKS = 7, K_HOOK = 8, K_LEN = 9 };

/* ---- the report parser (called with mu held, from either thread) -------- */

static void text_append(stream_t *s, const char *p, size_t n) {
  if (n == 0) return;
  while (s->ntext + n + 1 > s->captext) {
    size_t cap = s->captext;
    char *t = (cap >= TEXT_MAX) ? NULL : mk_grow(s->text, &cap, 1, 4096);
    if (t == NULL) { s->dropped += (double) n; return; }
    s->text = t;
    s->captext = cap;
  }
  memcpy(s->text + s->ntext, p, n);
  s->ntext += n;
  s->text[s->ntext] = '\0';
}

static const char GC_PREFIX[] = "Garbage collection ";

static void new_record(stream_t *s, const char *p, double now) {
  gcrec r;
  memset(&r, 0, sizeof r);
  r.mono = now;
  r.ncells_mb = r.vcells_mb = -1;
  r.ncells_pct = r.vcells_pct = -1;
  if (sscanf(p, "Garbage collection %d = %d+%d+%d (level %d)",
             &r.n, &r.c0, &r.c1, &r.c2, &r.level) != 5) {
    text_append(s, p, strlen(p));
    text_append(s, "\n", 1);
    return;
  }
  if (s->nrecs == s->caprecs) {
    gcrec *t = mk_grow(s->recs, &s->caprecs, sizeof *t, 256);
    if (t == NULL) { s->dropped += 1; s->pending = 0; return; }
    s->recs = t;
  }
  s->recs[s->nrecs++] = r;
  s->pending = 2;
}

static void process_line(stream_t *s, char *l, double now) {
  char *p = strstr(l, GC_PREFIX);
  if (p != NULL) {
    text_append(s, l, (size_t) (p - l));
    new_record(s, p, now);
    return;
  }
  if (s->pending > 0 && s->nrecs > 0) {
    gcrec *r = &s->recs[s->nrecs - 1];
    double mb;
    int pct;
    if (s->pending == 2 &&
        sscanf(l, "%lf Mbytes of cons cells used (%d%%)", &mb, &pct) == 2) {
      r->ncells_mb = mb;
      r->ncells_pct = pct;
      s->pending = 1;
      return;
    }
    if (s->pending == 1 &&
        sscanf(l, "%lf Mbytes of vectors used (%d%%)", &mb, &pct) == 2) {
      r->vcells_mb = mb;
      r->vcells_pct = pct;
      s->pending = 0;
      return;
    }
    s->pending = 0;
  }
  text_append(s, l, strlen(l));
  text_append(s, "\n", 1);
}

static void feed(stream_t *s, const char *buf, size_t n, double now) {
  for (size_t i = 0; i < n; i++) {
    char c = buf[i];
    if (c == '\n') {
      s->line[s->linelen] = '\0';
      process_line(s, s->line, now);
      s->linelen = 0;
    } else {
      if (s->linelen == LINE_MAX_LEN - 1) {
        /* A very long line is user text: pass it on in pieces. */
        text_append(s, s->line, s->linelen);
        s->linelen = 0;
      }
      s->line[s->linelen++] = c;
    }
  }
}

/* Read whatever the pipe holds. rfd is non-blocking; called with mu held.
 * Returns 0 at end of file, 1 otherwise. */
static int drain_locked(void) {
  char buf[65536];
#ifdef _WIN32
  /* The spool's end is where R has written so far; it has no end of file. */
  for (;;) {
    long n = G.spool != NULL ? gc_spool_read(G.spool, buf, sizeof buf) : 0;
    if (n <= 0) return 1;
    feed(&G.s, buf, (size_t) n, mk_now());
  }
#else
  for (;;) {
    ssize_t n = read(G.rfd, buf, sizeof buf);
    if (n > 0) {
      feed(&G.s, buf, (size_t) n, mk_now());
      continue;
    }
    if (n == 0) return 0;
    if (errno == EINTR) continue;
    return 1;
  }
#endif
}

static void drain(void) {
  if (!G.open) return;
  pthread_mutex_lock(&G.mu);
  drain_locked();
  pthread_mutex_unlock(&G.mu);
}

#ifdef _WIN32
/* Follow the spool's end every SPOOL_POLL_MS: a report is stamped at most
 * that much after R wrote it (the sentinel drains at once on R's thread). */
#define SPOOL_POLL_MS 5
static void *reader_main(void *arg) {
  (void) arg;
  for (;;) {
    pthread_mutex_lock(&G.mu);
    drain_locked();
    pthread_mutex_unlock(&G.mu);
    if (gc_spool_wait(G.spool, SPOOL_POLL_MS)) break;
  }
  return NULL;
}
#else
static void *reader_main(void *arg) {
  (void) arg;
  struct pollfd fds[2];
  fds[0].fd = G.rfd;
  fds[0].events = POLLIN;
  fds[1].fd = G.wake[0];
  fds[1].events = POLLIN;
  for (;;) {
    fds[0].revents = fds[1].revents = 0;
    int rc = poll(fds, 2, -1);
    if (rc < 0) {
      /* Never leave while R may still write: a pipe nobody reads would
       * block REprintf() once full. Only the wake-up ends the thread. */
      if (errno != EINTR) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
      }
      continue;
    }
    if (fds[0].revents) {
      pthread_mutex_lock(&G.mu);
      int more = drain_locked();
      pthread_mutex_unlock(&G.mu);
      if (!more) break;
    }
    if (fds[1].revents) break;
  }
  return NULL;
}
#endif

/* ---- opening and closing ----------------------------------------------- */

static void check_handle(SEXP handle) {
  if (TYPEOF(handle) != EXTPTRSXP) mk_error("type", "`handle` must be a GC trace handle.");
}

#ifndef _WIN32
static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}
#endif

static void stream_free(void) {
  free(G.s.recs);
  free(G.s.text);
  memset(&G.s, 0, sizeof G.s);
}

static void teardown(void) {
#ifdef _WIN32
  if (G.thread_started) {
    gc_spool_stop(G.spool);
    pthread_join(G.thread, NULL);
    G.thread_started = 0;
  }
  gc_spool_close(G.spool);
  G.spool = NULL;
#else
  if (G.thread_started) {
    char c = 1;
    ssize_t w;
    do w = write(G.wake[1], &c, 1); while (w < 0 && errno == EINTR);
    pthread_join(G.thread, NULL);
    G.thread_started = 0;
  }
  close_fd(&G.wfd);
  close_fd(&G.rfd);
  close_fd(&G.wake[0]);
  close_fd(&G.wake[1]);
#endif
  stream_free();
  G.nadopted = 0;
  G.open = 0;
  G.owner = NULL;
}

static void handle_finalize(SEXP handle) {
  if (R_ExternalPtrAddr(handle) == NULL) return;
  R_ClearExternalPtr(handle);
  if (handle == G.owner) teardown();
}

#ifndef _WIN32
/* Set `flag` in the descriptor flags (F_GETFD/F_SETFD) or the status flags
 * (F_GETFL/F_SETFL) of `fd`. -1 with errno set on failure. */
static int add_flag(int fd, int get, int set, int flag) {
  int fl = fcntl(fd, get);
  if (fl < 0) return -1;
  return fcntl(fd, set, fl | flag) < 0 ? -1 : 0;
}

static int make_pipe(int fds[2]) {
  if (pipe(fds) != 0) return -1;
  for (int i = 0; i < 2; i++) {
    if (add_flag(fds[i], F_GETFD, F_SETFD, FD_CLOEXEC) != 0) {
      int e = errno;
      close(fds[0]);
      close(fds[1]);
      fds[0] = fds[1] = -1;
      errno = e;
      return -1;
    }
  }
  return 0;
}

/* Around fork(), hold `mu` so that the child never inherits it locked by
 * the reader thread (which does not exist in the child). */
static void atfork_prepare(void) { pthread_mutex_lock(&G.mu); }
static void atfork_parent(void) { pthread_mutex_unlock(&G.mu); }

/* In a forked child (parallel::mclapply()) the reader thread does not
 * exist and the pipe belongs to the parent: send the child's message stream
 * to its stderr, as it would go without tracing, and forget the pipe so that
 * nothing in the child waits for a thread that is not there. Only
 * async-signal-safe calls here. */
static void atfork_child(void) {
  pthread_mutex_unlock(&G.mu);
  if (!G.open) return;
  for (int i = 0; i < G.nadopted; i++) dup2(STDERR_FILENO, G.adopted[i]);
  G.nadopted = 0;
  if (G.rfd >= 0) close(G.rfd);
  if (G.wfd >= 0) close(G.wfd);
  if (G.wake[0] >= 0) close(G.wake[0]);
  if (G.wake[1] >= 0) close(G.wake[1]);
  G.rfd = G.wfd = G.wake[0] = G.wake[1] = -1;
  G.thread_started = 0;
  G.open = 0;
  G.forked = 1;
  G.owner = NULL;
  /* The child inherited gcinfo(TRUE), and R prints the report of a
   * collection before any finalizer of ours can run: the child's first
   * report would reach its stderr. Where R itself forked (mclapply() from
   * R's thread, in the middle of a .Call, where R code may run), turn the
   * reports off here, before the child collects. A fork by any other thread
   * is left alone: R must not run there. */
  if (G.armed && G.quiet_children && G.has_main && pthread_equal(pthread_self(), G.main)) {
    int err = 0;
    SEXP off = PROTECT(Rf_lang2(Rf_install("gcinfo"), Rf_ScalarLogical(FALSE)));
    R_tryEvalSilent(off, R_BaseEnv, &err);
    UNPROTECT(1);
  }
}

static void adopt_if_pipe(int fd, const struct stat *ref) {
  if (fd == G.wfd || fd == G.rfd || fd == G.wake[0] || fd == G.wake[1]) return;
  struct stat st;
  if (fstat(fd, &st) != 0) return;
  if (st.st_dev == ref->st_dev && st.st_ino == ref->st_ino) {
    /* Adopted even if this fails: a fork must still point it elsewhere. A
     * program exec'd meanwhile would hold the pipe open, which only delays
     * the reader's end of file; ffi_gctrace_close() does not wait for it. */
    (void) add_flag(fd, F_GETFD, F_SETFD, FD_CLOEXEC);
    G.adopted[G.nadopted++] = fd;
  }
}

/* Find the descriptors R opened on the pipe's write end (same inode as ours)
 * once its connection is open: they are closed on exec and, in a forked
 * child, pointed at stderr. */
SEXP ffi_gctrace_adopt(SEXP handle) {
  static int atfork_done = 0;
  check_handle(handle);
  if (!G.open || R_ExternalPtrAddr(handle) == NULL) mk_error("state", "The GC trace pipe is closed.");
  if (!atfork_done) {
    if (pthread_atfork(atfork_prepare, atfork_parent, atfork_child) == 0) atfork_done = 1;
  }
  struct stat ref;
  if (fstat(G.wfd, &ref) != 0) mk_error_sys("system", errno, "pipe", "Can't inspect the GC trace pipe");
  G.nadopted = 0;
  /* List the open descriptors where the system can: probing every possible
   * one costs a system call each, thousands per trace. */
  DIR *dir = opendir("/proc/self/fd");
  if (dir == NULL) dir = opendir("/dev/fd");
  if (dir != NULL) {
    int own = dirfd(dir);
    struct dirent *e;
    while ((e = readdir(dir)) != NULL && G.nadopted < 8) {
      char *end;
      long fd = strtol(e->d_name, &end, 10);
      if (end == e->d_name || *end != '\0' || fd < 3 || fd > INT_MAX || fd == own) continue;
      adopt_if_pipe((int) fd, &ref);
    }
    closedir(dir);
  } else {
    long maxfd = sysconf(_SC_OPEN_MAX);
    if (maxfd < 0 || maxfd > 65536) maxfd = 65536;
    for (int fd = 3; fd < maxfd && G.nadopted < 8; fd++) adopt_if_pipe(fd, &ref);
  }
  return Rf_ScalarInteger(G.nadopted);
}
#else
/* No fork() and no descriptors to inherit on exec: nothing to adopt. */
SEXP ffi_gctrace_adopt(SEXP handle) {
  check_handle(handle);
  if (!G.open || R_ExternalPtrAddr(handle) == NULL) mk_error("state", "The GC trace pipe is closed.");
  return Rf_ScalarInteger(0);
}
#endif

/* Undo a half-finished ffi_gctrace_open() and signal the error: the handle
 * lets go first, so that its finalizer (run later) finds nothing to do. */
static void open_failed(SEXP handle, int err, const char *what, const char *msg) MK_NORETURN;
static void open_failed(SEXP handle, int err, const char *what, const char *msg) {
  R_ClearExternalPtr(handle);
  teardown();
  mk_error_sys("system", err, what, "%s", msg);
}

/* Open the pipe and start the reader. Returns an external pointer that owns
 * both (its finalizer closes them) with the write end's fd in attribute
 * "fd". The pointer exists, with its finalizer, before anything it owns.
 * On Windows `spool` is the path of the spool file to create (R's tempfile())
 * and "fd" is -1; elsewhere it is NULL. */
SEXP ffi_gctrace_open(SEXP spool) {
  if (G.open || G.rfd >= 0) mk_error("state", "A GC trace pipe is already open.");
  int nprot = 0;
  SEXP handle = PROTECT(R_MakeExternalPtr(NULL, R_NilValue, R_NilValue)); nprot++;
  /* The finalizer is a weak reference kept in the handle, so that closing
   * can run and retire it: a C finalizer left pending would point into this
   * library after it is unloaded. */
  SEXP wr = PROTECT(R_MakeWeakRefC(handle, R_NilValue, handle_finalize, TRUE)); nprot++;
  R_SetExternalPtrProtected(handle, wr);
  SEXP fdattr = PROTECT(Rf_allocVector(INTSXP, 1)); nprot++;
  Rf_setAttrib(handle, Rf_install("fd"), fdattr);
  memset(&G.s, 0, sizeof G.s);
  G.forked = 0;
  /* From here on the handle owns G's descriptors and thread. */
  R_SetExternalPtrAddr(handle, &G);

#ifdef _WIN32
  if (TYPEOF(spool) != STRSXP || XLENGTH(spool) != 1 || STRING_ELT(spool, 0) == NA_STRING)
    open_failed(handle, EINVAL, "spool", "The GC trace needs the path of its spool file");
  const char *spath = Rf_translateChar(STRING_ELT(spool, 0));
  G.spool = gc_spool_open(spath);
  if (G.spool == NULL) open_failed(handle, errno, spath, "Can't create the GC trace's spool file");
  int rc = pthread_create(&G.thread, NULL, reader_main, NULL);
  if (rc != 0) open_failed(handle, rc, "pthread_create", "Can't start the GC report reader");
  G.thread_started = 1;
  G.open = 1;
  G.owner = handle;
  INTEGER(fdattr)[0] = -1;
  UNPROTECT(nprot);
  return handle;
#else
  (void) spool;
  int p[2];
  if (make_pipe(p) != 0) open_failed(handle, errno, "pipe", "Can't create a pipe");
  G.rfd = p[0];
  G.wfd = p[1];
  if (make_pipe(G.wake) != 0) open_failed(handle, errno, "pipe", "Can't create a pipe");
  /* The reader drains without blocking, so that a drain on R's thread never
   * waits for a writer. */
  if (add_flag(G.rfd, F_GETFL, F_SETFL, O_NONBLOCK) != 0) {
    open_failed(handle, errno, "fcntl", "Can't make the GC trace pipe non-blocking");
  }
#ifdef F_SETPIPE_SZ
  /* Room for thousands of reports in case the reader is descheduled; a full
   * pipe would make REprintf() wait for it. Best effort: the default size
   * only makes such waits likelier. */
  (void) fcntl(G.wfd, F_SETPIPE_SZ, 1 << 20);
#endif

  /* The thread must never take R's signals (SIGINT belongs to R). */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&G.thread, NULL, reader_main, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) open_failed(handle, rc, "pthread_create", "Can't start the GC report reader");
  G.thread_started = 1;
  G.open = 1;
  G.owner = handle;
  INTEGER(fdattr)[0] = G.wfd;
  UNPROTECT(nprot);
  return handle;
#endif
}

/* Stop the reader after it has read everything, close every fd. R closes
 * its connection on the write end first. Idempotent. */
SEXP ffi_gctrace_close(SEXP handle) {
  check_handle(handle);
  if (R_ExternalPtrAddr(handle) != NULL) {
    R_ClearExternalPtr(handle);
    if (handle == G.owner) {
#ifndef _WIN32
      close_fd(&G.wfd);
#endif
      if (G.open) drain();
      teardown();
    }
  }
  SEXP wr = R_ExternalPtrProtected(handle);
  if (TYPEOF(wr) == WEAKREFSXP) {
    R_SetExternalPtrProtected(handle, R_NilValue);
    R_RunWeakRefFinalizer(wr); /* handle_finalize() on a cleared handle: a no-op */
  }
  return R_NilValue;
}

/* Between traces: the pipe and its reader stay for the session (opened by
 * the first trace, closed when the package unloads), but the connection R
 * wrote through is closed, so its descriptors are no longer ours to point
 * elsewhere in a fork; and what the stream held is forgotten (the trace
 * that ended has read it). Also at the start of a trace. */
SEXP ffi_gctrace_reset(SEXP handle) {
  check_handle(handle);
  if (!G.open || R_ExternalPtrAddr(handle) == NULL || handle != G.owner) return Rf_ScalarLogical(FALSE);
  G.nadopted = 0;
  pthread_mutex_lock(&G.mu);
  drain_locked();
  G.s.nrecs = 0;
  G.s.pending = 0;
  G.s.linelen = 0;
  G.s.ntext = 0;
  if (G.s.text) G.s.text[0] = '\0';
  G.s.dropped = 0;
  pthread_mutex_unlock(&G.mu);
  return Rf_ScalarLogical(TRUE);
}

/* ---- the sentinel ------------------------------------------------------- */

static void sentinel_fired(SEXP key);

static SEXP stacks_slot(void) { return VECTOR_ELT(G.keep, K_STACKS); }

static void arm(void) {
  int nprot = 0;
  long j = G.generation++;
  int slot = (int) (j % 3);
  /* Retire the anchor from two generations ago (slot of j - 2). */
  int old = (int) ((j + 1) % 3);
  SEXP oldw = VECTOR_ELT(G.keep, K_ANCHOR + old);
  if (oldw != R_NilValue) {
    R_RunWeakRefFinalizer(oldw);
    SET_VECTOR_ELT(G.keep, K_ANCHOR + old, R_NilValue);
    SET_VECTOR_ELT(G.keep, K_KEY + old, R_NilValue);
  }
  SEXP key = PROTECT(R_MakeExternalPtr(NULL, R_NilValue, R_NilValue)); nprot++;
  SET_VECTOR_ELT(G.keep, K_KEY + slot, key);
  SEXP anchor = PROTECT(R_MakeWeakRef(key, R_NilValue, R_NilValue, FALSE)); nprot++;
  SET_VECTOR_ELT(G.keep, K_ANCHOR + slot, anchor);
  SEXP skey = PROTECT(R_MakeExternalPtr(NULL, R_NilValue, R_NilValue)); nprot++;
  SEXP sentinel = PROTECT(R_MakeWeakRefC(skey, R_NilValue, sentinel_fired, FALSE)); nprot++;
  SET_VECTOR_ELT(G.keep, K_SENTINEL, sentinel);
  UNPROTECT(nprot);
}

/* A call whose arguments hold large values (do.call(f, list(big))) would keep
 * them alive as long as the trace: replace such arguments by a placeholder. */
static int heavy_arg(SEXP a) {
  switch (TYPEOF(a)) {
  case NILSXP: case SYMSXP: case LANGSXP: case PROMSXP: case DOTSXP:
  case CHARSXP: case BCODESXP:
    return 0;
  case LGLSXP: case INTSXP: case REALSXP: case CPLXSXP: case STRSXP:
  case RAWSXP:
    return XLENGTH(a) > 8;
  default:
    return 1;
  }
}

/* The calls of a stack, at most `max` of them from the outermost (all if
 * `max` < 0). */
static SEXP light_calls(SEXP calls, int max) {
  int nprot = 0;
  int n = Rf_length(calls);
  if (max >= 0 && max < n) n = max;
  SEXP out = PROTECT(Rf_allocVector(VECSXP, n)); nprot++;
  SEXP placeholder = Rf_install("<value>");
  R_xlen_t i = 0;
  for (SEXP c = calls; c != R_NilValue && i < n; c = CDR(c), i++) {
    SEXP call = CAR(c);
    int heavy = 0;
    if (TYPEOF(call) == LANGSXP) {
      for (SEXP a = CDR(call); a != R_NilValue && !heavy; a = CDR(a))
        heavy = heavy_arg(CAR(a));
    }
    if (heavy) {
      call = PROTECT(Rf_shallow_duplicate(call));
      for (SEXP a = CDR(call); a != R_NilValue; a = CDR(a))
        if (heavy_arg(CAR(a))) SETCAR(a, placeholder);
      SET_VECTOR_ELT(out, i, call);
      UNPROTECT(1);
    } else {
      SET_VECTOR_ELT(out, i, call);
    }
  }
  UNPROTECT(nprot);
  return out;
}

static int grow_callbacks(void) {
  if (G.ncb < G.capcb) return 1;
  cbrec *c = mk_grow(G.cb, &G.capcb, sizeof *c, 256);
  if (c == NULL) return 0;
  G.cb = c;
  return 1;
}

static void sentinel_fired(SEXP key) {
  (void) key;
  if (!G.armed || G.keep == NULL) return;
  int nprot = 0;
  if (G.forked) {
    /* A forked child inherited gcinfo(TRUE): stop its reports (they would
     * reach its stderr) and stop listening. */
    G.armed = 0;
    int err = 0;
    SEXP hook = VECTOR_ELT(G.keep, K_HOOK);
    /* The R side's hook, in a child, gives the message sink and gcinfo()
     * back as they were before the parent traced. */
    SEXP off = TYPEOF(hook) == CLOSXP ?
      PROTECT(Rf_lang1(hook)) :
      PROTECT(Rf_lang2(Rf_install("gcinfo"), Rf_ScalarLogical(FALSE)));
    nprot++;
    R_tryEvalSilent(off, TYPEOF(hook) == CLOSXP ? R_GlobalEnv : R_BaseEnv, &err);
    UNPROTECT(nprot);
    return;
  }
  /* Re-arm first: if anything below fails (R longjmps out of a finalizer
   * only to R's own top level), the next collection is still seen. */
  arm();
  double now = mk_now();
  drain();
  int nrec = G.open ? (int) G.s.nrecs : 0;

  int err = 0;
  /* The R side's hook puts the message sink back if code in the traced
   * expression reset it (bench::mark() does, on exit). A report that
   * arrived since the last callback shows the sink still points at the
   * pipe: the hook (an R closure, the costliest part of a callback) runs
   * only when none did, i.e. after an explicit gc() or when the reports
   * went elsewhere. */
  SEXP hook = VECTOR_ELT(G.keep, K_HOOK);
  int reported = G.ncb > 0 && nrec > G.hook_nrec;
  G.hook_nrec = nrec;
  if (TYPEOF(hook) == CLOSXP && !reported) {
    SEXP hcall = PROTECT(Rf_lang1(hook)); nprot++;
    R_tryEvalSilent(hcall, R_GlobalEnv, &err);
  }
  SEXP call = PROTECT(Rf_lang1(Rf_install("sys.calls"))); nprot++;
  SEXP calls = PROTECT(R_tryEvalSilent(call, R_BaseEnv, &err)); nprot++;
  SEXP stack = R_NilValue;
  if (!err) stack = light_calls(calls, G.sync_frames);
  PROTECT(stack); nprot++;
  SEXP gcall = PROTECT(Rf_lang1(Rf_install("gc.time"))); nprot++;
  SEXP gct = PROTECT(R_tryEvalSilent(gcall, R_BaseEnv, &err)); nprot++;
  double gctime = (!err && TYPEOF(gct) == REALSXP && XLENGTH(gct) >= 3) ? REAL(gct)[2] : NA_REAL;

  if (!grow_callbacks()) {
    G.cb_dropped += 1;
    UNPROTECT(nprot);
    return;
  }
  SEXP stacks = stacks_slot();
  if ((size_t) XLENGTH(stacks) <= G.ncb) {
    R_xlen_t n = XLENGTH(stacks);
    SEXP bigger = PROTECT(Rf_allocVector(VECSXP, n < 64 ? 256 : 2 * n)); nprot++;
    for (R_xlen_t i = 0; i < n; i++) SET_VECTOR_ELT(bigger, i, VECTOR_ELT(stacks, i));
    SET_VECTOR_ELT(G.keep, K_STACKS, bigger);
    stacks = bigger;
  }
  SET_VECTOR_ELT(stacks, (R_xlen_t) G.ncb, stack);
  G.cb[G.ncb] = (cbrec) {nrec, now, gctime};
  G.ncb++;
  UNPROTECT(nprot);
}

static void free_callbacks(void) {
  free(G.cb);
  G.cb = NULL;
  G.ncb = G.capcb = 0;
  G.cb_dropped = 0;
}

/* Start recording callbacks: the first sentinel fires after the next
 * collection. `hook` (a function of no arguments, or NULL) runs first in
 * every callback. `quiet_children`: R's reports were off before the trace,
 * so a forked child turns them off again as it is forked. */
SEXP ffi_gctrace_arm(SEXP hook, SEXP quiet_children) {
  if (G.armed) mk_error("state", "The GC sentinel is already armed.");
  int nprot = 0;
  G.quiet_children = Rf_asLogical(quiet_children) == TRUE;
#ifndef _WIN32
  G.main = pthread_self();
  G.has_main = 1;
#endif
  free_callbacks();
  SEXP keep = PROTECT(Rf_allocVector(VECSXP, K_LEN)); nprot++;
  SET_VECTOR_ELT(keep, K_STACKS, Rf_allocVector(VECSXP, 0));
  SET_VECTOR_ELT(keep, K_HOOK, hook);
  R_PreserveObject(keep);
  G.keep = keep;
  G.generation = 0;
  G.hook_nrec = 0;
  G.armed = 1;
  arm();
  UNPROTECT(nprot);
  return R_NilValue;
}

/* Stop recording; retire every anchor and the pending sentinel now, so
 * nothing of ours is left in R's list of weak references. Idempotent. */
SEXP ffi_gctrace_disarm(void) {
  if (G.keep == NULL) return R_NilValue;
  G.armed = 0;
  SEXP keep = G.keep;
  for (int i = 0; i < 3; i++) {
    SEXP w = VECTOR_ELT(keep, K_ANCHOR + i);
    if (w != R_NilValue) R_RunWeakRefFinalizer(w);
  }
  SEXP s = VECTOR_ELT(keep, K_SENTINEL);
  if (s != R_NilValue) R_RunWeakRefFinalizer(s); /* runs sentinel_fired: a no-op now */
  G.keep = NULL;
  R_ReleaseObject(keep);
  free_callbacks();
  return R_NilValue;
}

/* Where a trace starts or ends, without a collection: the callbacks of
 * collections made since the last safe point are run now (R runs pending
 * finalizers at safe points, every thousand evaluations or so, and gc()
 * runs them at once), then the pipe is drained. Every collection before
 * this point is then among the reports and callbacks already recorded, and
 * none after it. The stacks of the callbacks run here keep only their
 * first `frames` calls: the code that ran since the last safe point, not
 * memkit's frames above it. Returns the number of reports and of callbacks
 * recorded so far. */
static SEXP run_pending(void *data) {
  (void) data;
  R_RunPendingFinalizers();
  return R_NilValue;
}

static void sync_done(void *data, Rboolean jump) {
  (void) data; (void) jump;
  G.sync_frames = -1;
}

SEXP ffi_gctrace_sync(SEXP frames) {
  SEXP out = PROTECT(Rf_allocVector(REALSXP, 2));
  int f = Rf_asInteger(frames);
  G.sync_frames = (f == NA_INTEGER || f < 0) ? 0 : f;
  SEXP cont = PROTECT(R_MakeUnwindCont());
  R_UnwindProtect(run_pending, NULL, sync_done, NULL, cont);   /* sync_done() resets */
  UNPROTECT(1);
  drain();
  size_t n = 0;
  if (G.open) {
    pthread_mutex_lock(&G.mu);
    n = G.s.nrecs;
    pthread_mutex_unlock(&G.mu);
  }
  REAL(out)[0] = (double) n;
  REAL(out)[1] = G.keep == NULL ? 0 : (double) G.ncb;
  UNPROTECT(1);
  return out;
}

/* ---- reading out -------------------------------------------------------- */

/* Reports from index `from` (0-based) on, as a list of columns.
 *
 * Nothing here is malloc'd: the R vectors are allocated first, without the
 * lock (an allocation may collect, and the finalizer it runs takes the lock;
 * or it may fail and long-jump), and the records are then copied straight
 * into them under the lock. Records are only ever appended, so the `m`
 * counted first are still there. */
SEXP ffi_gctrace_records(SEXP from_) {
  int nprot = 0;
  drain();
  if (G.open) pthread_mutex_lock(&G.mu);
  size_t n = G.open ? G.s.nrecs : 0;
  if (G.open) pthread_mutex_unlock(&G.mu);
  double fromd = Rf_asReal(from_);
  size_t from = (ISNAN(fromd) || fromd < 0) ? 0 : (fromd > (double) n ? n : (size_t) fromd);
  size_t m = n - from;

  const char *names[] = {"mono", "gc", "level0", "level1", "level2", "level",
                         "ncells_mb", "ncells_pct", "vcells_mb", "vcells_pct", ""};
  SEXP out = PROTECT(Rf_mkNamed(VECSXP, names)); nprot++;
  SEXP mono = Rf_allocVector(REALSXP, (R_xlen_t) m); SET_VECTOR_ELT(out, 0, mono);
  SEXP ints[5];
  for (int k = 0; k < 5; k++) {
    ints[k] = Rf_allocVector(INTSXP, (R_xlen_t) m);
    SET_VECTOR_ELT(out, 1 + k, ints[k]);
  }
  SEXP nmb = Rf_allocVector(REALSXP, (R_xlen_t) m); SET_VECTOR_ELT(out, 6, nmb);
  SEXP npc = Rf_allocVector(INTSXP, (R_xlen_t) m); SET_VECTOR_ELT(out, 7, npc);
  SEXP vmb = Rf_allocVector(REALSXP, (R_xlen_t) m); SET_VECTOR_ELT(out, 8, vmb);
  SEXP vpc = Rf_allocVector(INTSXP, (R_xlen_t) m); SET_VECTOR_ELT(out, 9, vpc);
  SEXP total = PROTECT(Rf_ScalarReal((double) n)); nprot++;
  SEXP dropped = PROTECT(Rf_ScalarReal(0)); nprot++;

  if (G.open) pthread_mutex_lock(&G.mu);
  if (G.open && G.s.nrecs >= n) {
    for (size_t i = 0; i < m; i++) {
      const gcrec *r = &G.s.recs[from + i];
      REAL(mono)[i] = r->mono;
      INTEGER(ints[0])[i] = r->n;
      INTEGER(ints[1])[i] = r->c0;
      INTEGER(ints[2])[i] = r->c1;
      INTEGER(ints[3])[i] = r->c2;
      INTEGER(ints[4])[i] = r->level;
      REAL(nmb)[i] = r->ncells_mb < 0 ? NA_REAL : r->ncells_mb;
      INTEGER(npc)[i] = r->ncells_pct < 0 ? NA_INTEGER : r->ncells_pct;
      REAL(vmb)[i] = r->vcells_mb < 0 ? NA_REAL : r->vcells_mb;
      INTEGER(vpc)[i] = r->vcells_pct < 0 ? NA_INTEGER : r->vcells_pct;
    }
    REAL(dropped)[0] = G.s.dropped;
  }
  if (G.open) pthread_mutex_unlock(&G.mu);
  Rf_setAttrib(out, Rf_install("total"), total);
  Rf_setAttrib(out, Rf_install("dropped"), dropped);
  UNPROTECT(nprot);
  return out;
}

/* The non-report text received so far, removed from the buffer. A trailing
 * piece without a newline is included unless it may be the start of a
 * report still being written. As for the records, R owns every buffer: a
 * raw vector is allocated first, the text moved into it under the lock. */
SEXP ffi_gctrace_text(void) {
  int nprot = 0;
  if (!G.open) return Rf_mkString("");
  drain();
  pthread_mutex_lock(&G.mu);
  stream_t *s = &G.s;
  if (s->linelen > 0 && s->pending == 0) {
    size_t k = s->linelen < sizeof GC_PREFIX - 1 ? s->linelen : sizeof GC_PREFIX - 1;
    if (strncmp(s->line, GC_PREFIX, k) != 0) {
      text_append(s, s->line, s->linelen);
      s->linelen = 0;
    }
  }
  size_t n = s->ntext;
  pthread_mutex_unlock(&G.mu);
  if (n > INT_MAX) n = INT_MAX; /* the rest comes with the next call */
  SEXP buf = PROTECT(Rf_allocVector(RAWSXP, (R_xlen_t) n)); nprot++;
  pthread_mutex_lock(&G.mu);
  /* The reader only appends meanwhile: the first n bytes are the same. */
  if (G.open && s->ntext >= n) {
    if (n) memcpy(RAW(buf), s->text, n);
    /* No text buffer yet when nothing was ever read. */
    if (s->ntext > n) memmove(s->text, s->text + n, s->ntext - n);
    s->ntext -= n;
    if (s->text) s->text[s->ntext] = '\0';
  } else {
    n = 0;
  }
  pthread_mutex_unlock(&G.mu);
  SEXP out = PROTECT(Rf_allocVector(STRSXP, 1)); nprot++;
  SET_STRING_ELT(out, 0, Rf_mkCharLenCE((const char *) RAW(buf), (int) n, CE_NATIVE));
  UNPROTECT(nprot);
  return out;
}

/* Callbacks from index `from` (0-based) on. */
SEXP ffi_gctrace_callbacks(SEXP from_) {
  int nprot = 0;
  size_t n = G.keep == NULL ? 0 : G.ncb;
  double fromd = Rf_asReal(from_);
  size_t from = (ISNAN(fromd) || fromd < 0) ? 0 : (size_t) fromd;
  if (from > n) from = n;
  size_t m = n - from;
  const char *names[] = {"nrec", "mono", "gctime", "stack", ""};
  SEXP out = PROTECT(Rf_mkNamed(VECSXP, names)); nprot++;
  SEXP nrec = Rf_allocVector(INTSXP, (R_xlen_t) m); SET_VECTOR_ELT(out, 0, nrec);
  SEXP mono = Rf_allocVector(REALSXP, (R_xlen_t) m); SET_VECTOR_ELT(out, 1, mono);
  SEXP gct = Rf_allocVector(REALSXP, (R_xlen_t) m); SET_VECTOR_ELT(out, 2, gct);
  SEXP st = Rf_allocVector(VECSXP, (R_xlen_t) m); SET_VECTOR_ELT(out, 3, st);
  SEXP stacks = G.keep == NULL ? R_NilValue : stacks_slot();
  for (size_t i = 0; i < m; i++) {
    INTEGER(nrec)[i] = G.cb[from + i].nrec;
    REAL(mono)[i] = G.cb[from + i].mono;
    REAL(gct)[i] = G.cb[from + i].gctime;
    SET_VECTOR_ELT(st, (R_xlen_t) i, VECTOR_ELT(stacks, (R_xlen_t) (from + i)));
  }
  Rf_setAttrib(out, Rf_install("total"), Rf_ScalarReal((double) n));
  Rf_setAttrib(out, Rf_install("dropped"), Rf_ScalarReal(G.cb_dropped));
  UNPROTECT(nprot);
  return out;
}

