/*
 * watch.h: what the sampler thread does besides recording resident memory.
 *
 * - A limit watch (watch.c), behind with_mem_limit(): each reading is
 *   compared with a limit and, the first time it passes it, R's main thread
 *   gets a SIGINT, which R's own handler turns into an interrupt at its next
 *   check. The thread touches nothing of R's.
 * - Child processes (children.c), behind mem_profile(children = TRUE): the
 *   process table is scanned every so often for R's children and their
 *   proportional set size (PSS) summed.
 *
 * The *_new() and *_result() functions run on R's thread; *_check() and
 * *_tick() on the sampler thread, never calling R; *_free() on either,
 * never calling R. Main-thread code reads a watch or a child table only
 * after the sampler thread has been joined.
 */
#ifndef MEMKIT_WATCH_H
#define MEMKIT_WATCH_H

#define R_NO_REMAP
#include <R.h>
#include <Rinternals.h>

typedef struct mk_watch mk_watch;
typedef struct mk_kids mk_kids;

/* A watch of `limit` bytes of resident memory, or of the cgroup's usage
 * when `usage_path` (memory.current or memory.usage_in_bytes) is given;
 * `stat_path` is the cgroup's memory.stat, whose inactive file cache is
 * subtracted from the usage (NULL: none). Signals a classed R error when
 * it cannot be set up; returns NULL only where watches do not exist. */
mk_watch *watch_new(double limit, const char *usage_path, const char *stat_path);
void watch_check(mk_watch *w, double rss, double now);
void watch_free(mk_watch *w);
/* list(fired, time, value, peak, signalled) */
SEXP watch_result(const mk_watch *w);

/* A table of child processes, scanned at most every `every` seconds. */
mk_kids *kids_new(double every);
void kids_tick(mk_kids *k, double now);
void kids_free(mk_kids *k);
/* list(time, children, self, n, procs = list(pid, name, first, last, peak)) */
SEXP kids_result(const mk_kids *k);

#endif
