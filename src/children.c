/*
 * children.c: child processes in profiles, mem_profile(children = TRUE)
 * (see watch.h). Linux only: it reads /proc.
 *
 * Which processes count: R's descendants (a parent chain that leads to R:
 * mclapply() forks, callr children, system() commands), and processes of
 * R's session started after the profile began that were orphaned, whose
 * parent is init or a process outside the session. The second rule catches
 * parallel's PSOCK workers: R starts them through a shell that exits at
 * once, and they are re-parented to init (or to a subreaper) before anyone
 * sees them as R's; their start time keeps out orphans of the session that
 * were there before (a job left running in the background of the same
 * terminal). R's own ancestors never count. A process is classified when it is first seen; a process
 * whose parent is also new waits for its parent's classification.
 *
 * How much each counts: its proportional set size (Pss in
 * /proc/<pid>/smaps_rollup, Linux >= 4.14): every page it maps divided by
 * the number of processes that map it, so the pages a fork shares with R
 * are split between them rather than counted twice. R's own PSS is read at
 * the same moments, so R plus its children add up. Without smaps_rollup a
 * child's resident size is used instead.
 *
 * The scan lists /proc (one getdents per few hundred processes) and reads
 * /proc/<pid>/stat only for processes not seen before; each child costs one
 * read of smaps_rollup, which walks its page tables: some tens of
 * milliseconds per gigabyte mapped, so scans are spaced to take at most a
 * fifth of the time (kids_tick()).
 */
#define _POSIX_C_SOURCE 200809L

#include "watch.h"
#include "errors.h"

#if !defined(__linux__)

mk_kids *kids_new(double every) {
  (void) every;
  mk_error("unsupported", "Child processes can be sampled on Linux only.");
}
void kids_tick(mk_kids *k, double now) { (void) k; (void) now; }
void kids_free(mk_kids *k) { (void) k; }
SEXP kids_result(const mk_kids *k) { (void) k; return R_NilValue; }

#else

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "utils.h"

/* The clock of the start times in /proc/<pid>/stat. */
#ifdef CLOCK_BOOTTIME
# define START_CLOCK CLOCK_BOOTTIME
#else
# define START_CLOCK CLOCK_MONOTONIC
#endif

#define MAX_ANCESTORS 64
#define NAME_LEN 16

typedef struct {
  pid_t pid, ppid, sid;
  int ours;     /* 1 yes, 0 no, -1 not decided yet */
  int alive;    /* listed by the last scan */
  unsigned long long start; /* start time in clock ticks, against pid reuse */
  char name[NAME_LEN];
  double first, last, peak; /* seconds (mk_now()), bytes */
} proc;

typedef struct {
  double time, children, self;
  int n;
} kid_reading;

struct mk_kids {
  pid_t self, sid;
  unsigned long long since; /* the profile's start, in clock ticks since boot */
  pid_t ancestors[MAX_ANCESTORS];
  int n_ancestors;
  double every, next;
  long page;
  proc *procs;  /* sorted by pid */
  size_t n_procs, cap_procs;
  pid_t *listed;
  size_t n_listed, cap_listed;
  proc *fresh;
  size_t n_fresh, cap_fresh;
  kid_reading *r;
  size_t n, cap;
  int truncated;
};

/* ppid, session, start time and name from /proc/<pid>/stat. 0 on success. */
static int read_stat(pid_t pid, proc *p) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", (long) pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  /* "pid (comm) state ppid pgrp session ...": comm may hold anything, so
   * the fields start after the last ')'. */
  char *open_paren = strchr(buf, '(');
  char *close_paren = strrchr(buf, ')');
  if (open_paren == NULL || close_paren == NULL || close_paren < open_paren) return -1;
  size_t len = (size_t) (close_paren - open_paren - 1);
  if (len >= NAME_LEN) len = NAME_LEN - 1;
  memcpy(p->name, open_paren + 1, len);
  p->name[len] = '\0';
  char state;
  long ppid, pgrp, sid;
  unsigned long long start;
  /* fields 3..6, then 16 to skip (7..21), then 22: starttime */
  if (sscanf(close_paren + 1, " %c %ld %ld %ld %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
             &state, &ppid, &pgrp, &sid, &start) != 5) {
    return -1;
  }
  p->pid = pid;
  p->ppid = (pid_t) ppid;
  p->sid = (pid_t) sid;
  p->start = start;
  return 0;
}

/* A process's PSS (or resident size without smaps_rollup) in bytes, or -1
 * when it is gone. */
static double read_pss(const mk_kids *k, pid_t pid) {
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%ld/smaps_rollup", (long) pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    char *p = strstr(buf, "\nPss:");
    unsigned long kb;
    if (p != NULL && sscanf(p + 5, " %lu", &kb) == 1) return (double) kb * 1024.0;
    return -1;
  }
  snprintf(path, sizeof path, "/proc/%ld/statm", (long) pid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, 255);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  unsigned long size, resident;
  if (sscanf(buf, "%lu %lu", &size, &resident) != 2) return -1;
  return (double) resident * (double) k->page;
}

static int cmp_pid(const void *a, const void *b) {
  pid_t x = *(const pid_t *) a, y = *(const pid_t *) b;
  return (x > y) - (x < y);
}

static int cmp_proc(const void *a, const void *b) {
  return cmp_pid(&((const proc *) a)->pid, &((const proc *) b)->pid);
}

static proc *find(const mk_kids *k, pid_t pid) {
  proc key;
  key.pid = pid;
  return bsearch(&key, k->procs, k->n_procs, sizeof *k->procs, cmp_proc);
}

static int is_ancestor(const mk_kids *k, pid_t pid) {
  for (int i = 0; i < k->n_ancestors; i++) if (k->ancestors[i] == pid) return 1;
  return 0;
}

/* Decide p->ours if its parent allows; 1 if decided. */
static int classify(const mk_kids *k, proc *p) {
  if (p->pid == k->self || is_ancestor(k, p->pid)) { p->ours = 0; return 1; }
  if (p->ppid == k->self) { p->ours = 1; return 1; }
  proc *parent = find(k, p->ppid);
  if (parent != NULL && parent->ours == -1) return 0;
  if (parent != NULL && parent->ours == 1) { p->ours = 1; return 1; }
  /* A new orphan of R's session: its parent is init, gone, or outside. */
  p->ours = p->sid == k->sid && p->start >= k->since &&
    (p->ppid <= 1 || parent == NULL || parent->sid != k->sid);
  return 1;
}

static int list_pids(mk_kids *k) {
  DIR *d = opendir("/proc");
  if (d == NULL) return -1;
  k->n_listed = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!isdigit((unsigned char) e->d_name[0])) continue;
    long pid = strtol(e->d_name, NULL, 10);
    if (pid <= 0) continue;
    if (k->n_listed == k->cap_listed) {
      pid_t *l = mk_grow(k->listed, &k->cap_listed, sizeof *l, 512);
      if (l == NULL) break;
      k->listed = l;
    }
    k->listed[k->n_listed++] = (pid_t) pid;
  }
  closedir(d);
  qsort(k->listed, k->n_listed, sizeof *k->listed, cmp_pid);
  return 0;
}

static void scan(mk_kids *k, double now) {
  if (list_pids(k) != 0) return;
  /* Merge the listing into the table: mark what is alive, collect what is
   * new. Both are sorted by pid. */
  size_t i = 0;
  k->n_fresh = 0;
  for (size_t j = 0; j < k->n_procs; j++) k->procs[j].alive = 0;
  for (size_t j = 0; j < k->n_listed; j++) {
    pid_t pid = k->listed[j];
    while (i < k->n_procs && k->procs[i].pid < pid) i++;
    if (i < k->n_procs && k->procs[i].pid == pid) {
      k->procs[i].alive = 1;
      continue;
    }
    proc p;
    memset(&p, 0, sizeof p);
    if (read_stat(pid, &p) != 0) continue;
    p.ours = -1;
    p.alive = 1;
    p.first = now;
    p.peak = -1;
    if (k->n_fresh == k->cap_fresh) {
      proc *f = mk_grow(k->fresh, &k->cap_fresh, sizeof *f, 64);
      if (f == NULL) break;
      k->fresh = f;
    }
    k->fresh[k->n_fresh++] = p;
  }
  /* Drop the dead that were never ours (ours stay for the summary); a pid
   * reused by a new process comes back as new. */
  size_t kept = 0;
  for (size_t j = 0; j < k->n_procs; j++) {
    if (k->procs[j].alive || k->procs[j].ours == 1) {
      /* A child that has ended keeps its row under -pid - 1, out of the
       * way of a new process that gets its pid. */
      if (!k->procs[j].alive && k->procs[j].pid >= 0) k->procs[j].pid = -k->procs[j].pid - 1;
      k->procs[kept++] = k->procs[j];
    }
  }
  k->n_procs = kept;
  for (size_t j = 0; j < k->n_fresh; j++) {
    if (k->n_procs == k->cap_procs) {
      proc *t = mk_grow(k->procs, &k->cap_procs, sizeof *t, 256);
      if (t == NULL) { k->truncated = 1; break; }
      k->procs = t;
    }
    k->procs[k->n_procs++] = k->fresh[j];
  }
  qsort(k->procs, k->n_procs, sizeof *k->procs, cmp_proc);
  /* Classify the new: parents first, as many passes as the chain is long. */
  for (int changed = 1, pass = 0; changed && pass < 64; pass++) {
    changed = 0;
    for (size_t j = 0; j < k->n_procs; j++) {
      if (k->procs[j].ours == -1 && classify(k, &k->procs[j])) changed = 1;
    }
  }
  for (size_t j = 0; j < k->n_procs; j++) {
    if (k->procs[j].ours == -1) k->procs[j].ours = 0;
  }
  /* Read the children, between two readings of R's own PSS: a child that
   * starts or ends meanwhile moves R's share of the pages they have in
   * common, and the smaller of the two does not count those pages twice. */
  double self_before = read_pss(k, k->self);
  double total = 0;
  int n = 0;
  for (size_t j = 0; j < k->n_procs; j++) {
    proc *p = &k->procs[j];
    if (!p->alive || p->ours != 1) continue;
    double pss = read_pss(k, p->pid);
    if (pss < 0) continue;
    total += pss;
    n++;
    p->last = now;
    if (pss > p->peak) p->peak = pss;
  }
  double self = read_pss(k, k->self);
  if (self_before >= 0 && (self < 0 || self_before < self)) self = self_before;
  if (k->n == k->cap) {
    if (k->truncated) return;
    kid_reading *r = mk_grow(k->r, &k->cap, sizeof *r, 256);
    if (r == NULL) { k->truncated = 1; return; }
    k->r = r;
  }
  k->r[k->n++] = (kid_reading) {now, total, self >= 0 ? self : NA_REAL, n};
}

mk_kids *kids_new(double every) {
  mk_kids *k = calloc(1, sizeof *k);
  if (k == NULL) mk_error("memory", "Cannot allocate the table of child processes.");
  k->self = getpid();
  k->sid = getsid(0);
  k->every = every > 0 ? every : 0.1;
  k->page = sysconf(_SC_PAGESIZE);
  struct timespec ts;
  long hz = sysconf(_SC_CLK_TCK);
  if (clock_gettime(START_CLOCK, &ts) == 0 && hz > 0) {
    /* One tick early: a process started in the same tick counts. */
    unsigned long long ticks = (unsigned long long) ts.tv_sec * (unsigned long long) hz +
      (unsigned long long) ((double) ts.tv_nsec * (double) hz / 1e9);
    k->since = ticks > 0 ? ticks - 1 : 0;
  }
  pid_t p = getppid();
  while (p > 1 && k->n_ancestors < MAX_ANCESTORS) {
    k->ancestors[k->n_ancestors++] = p;
    proc info;
    if (read_stat(p, &info) != 0) break;
    p = info.ppid;
  }
  if (access("/proc/self/stat", R_OK) != 0) {
    free(k);
    mk_error("unsupported", "Child processes cannot be sampled: /proc is not readable.");
  }
  return k;
}

void kids_tick(mk_kids *k, double now) {
  if (k == NULL || k->self != getpid() || now < k->next) return;
  scan(k, now);
  /* Reading smaps_rollup walks the page tables of each process (some tens
   * of milliseconds per gigabyte) and holds off R's own mmap() calls
   * meanwhile (only R's own read, not the children's): scans are spaced so
   * that they take at most a fifth of the time, on the sampler's thread. */
  double took = mk_now() - now;
  k->next = now + (k->every > 5 * took ? k->every : 5 * took);
}

void kids_free(mk_kids *k) {
  if (k == NULL) return;
  free(k->procs);
  free(k->listed);
  free(k->fresh);
  free(k->r);
  free(k);
}

static SEXP named_list(SEXP *elts, const char **names, int n) {
  SEXP out = PROTECT(Rf_allocVector(VECSXP, n));
  SEXP nms = PROTECT(Rf_allocVector(STRSXP, n));
  for (int i = 0; i < n; i++) {
    SET_VECTOR_ELT(out, i, elts[i]);
    SET_STRING_ELT(nms, i, Rf_mkChar(names[i]));
  }
  Rf_setAttrib(out, R_NamesSymbol, nms);
  UNPROTECT(2);
  return out;
}

SEXP kids_result(const mk_kids *k) {
  int nprot = 0;
  if (k == NULL) return R_NilValue;
  R_xlen_t n = (R_xlen_t) k->n;
  SEXP time = PROTECT(Rf_allocVector(REALSXP, n)); nprot++;
  SEXP children = PROTECT(Rf_allocVector(REALSXP, n)); nprot++;
  SEXP self = PROTECT(Rf_allocVector(REALSXP, n)); nprot++;
  SEXP count = PROTECT(Rf_allocVector(INTSXP, n)); nprot++;
  for (R_xlen_t i = 0; i < n; i++) {
    REAL(time)[i] = k->r[i].time;
    REAL(children)[i] = k->r[i].children;
    REAL(self)[i] = k->r[i].self;
    INTEGER(count)[i] = k->r[i].n;
  }
  R_xlen_t m = 0;
  for (size_t j = 0; j < k->n_procs; j++) if (k->procs[j].ours == 1 && k->procs[j].peak >= 0) m++;
  SEXP pid = PROTECT(Rf_allocVector(INTSXP, m)); nprot++;
  SEXP name = PROTECT(Rf_allocVector(STRSXP, m)); nprot++;
  SEXP first = PROTECT(Rf_allocVector(REALSXP, m)); nprot++;
  SEXP last = PROTECT(Rf_allocVector(REALSXP, m)); nprot++;
  SEXP peak = PROTECT(Rf_allocVector(REALSXP, m)); nprot++;
  R_xlen_t i = 0;
  for (size_t j = 0; j < k->n_procs && i < m; j++) {
    const proc *p = &k->procs[j];
    if (p->ours != 1 || p->peak < 0) continue;
    INTEGER(pid)[i] = p->pid >= 0 ? (int) p->pid : (int) (-p->pid - 1);
    SET_STRING_ELT(name, i, Rf_mkCharCE(p->name, CE_NATIVE));
    REAL(first)[i] = p->first;
    REAL(last)[i] = p->last;
    REAL(peak)[i] = p->peak;
    i++;
  }
  SEXP pe[] = {pid, name, first, last, peak};
  const char *pn[] = {"pid", "name", "first", "last", "peak"};
  SEXP procs = PROTECT(named_list(pe, pn, 5)); nprot++;
  SEXP oe[] = {time, children, self, count, procs, Rf_ScalarLogical(k->truncated)};
  const char *on[] = {"time", "children", "self", "n", "procs", "truncated"};
  /* Rf_ScalarLogical allocates: protect it before named_list allocates. */
  oe[5] = PROTECT(oe[5]); nprot++;
  SEXP out = named_list(oe, on, 6);
  UNPROTECT(nprot);
  return out;
}

#endif
