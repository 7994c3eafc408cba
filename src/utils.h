/* utils.h: small helpers shared by several families. */
#ifndef MEMKIT_UTILS_H
#define MEMKIT_UTILS_H

/* Seconds on CLOCK_MONOTONIC: the one clock every memkit timestamp uses, so
 * GC events (gctrace.c) and memory samples (sampler.c) line up. Safe to call
 * from any thread; never touches R. */
double mk_now(void);

/* The process's resident memory in bytes (Linux: /proc/self/statm; macOS:
 * task_info; elsewhere NA_REAL). Safe to call from any thread; never touches
 * R (NA_REAL is a plain double here). */
double mk_rss_bytes(void);

#endif
