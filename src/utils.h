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

/* The same, split for callers that read it often (the sampler thread):
 * mk_rss_open() gives a descriptor to keep open (-1 where the system needs
 * none, or on failure with errno set), mk_rss_read(fd) one reading. */
int mk_rss_open(void);
double mk_rss_read(int fd);

#endif
