/* utils.h: small helpers shared by several families. */
#ifndef MEMKIT_UTILS_H
#define MEMKIT_UTILS_H

#include <stddef.h>
#include <stdint.h>

/* Seconds on CLOCK_MONOTONIC: the one clock every memkit timestamp uses, so
 * GC events (gctrace.c) and memory samples (sampler.c) line up. Safe to call
 * from any thread; never touches R. */
double mk_now(void);

/* The process's resident memory in bytes (Linux: /proc/self/statm; macOS:
 * task_info; Windows: the working set; elsewhere NA_REAL; see procmem.h).
 * Safe to call from any thread; never touches R (NA_REAL is a plain double
 * here). */
double mk_rss_bytes(void);

/* The same, split for callers that read it often (the sampler thread):
 * mk_rss_open() gives a descriptor to keep open (-1 where the system needs
 * none, or on failure with errno set), mk_rss_read(fd) one reading. */
int mk_rss_open(void);
double mk_rss_read(int fd);
void mk_rss_close(int fd);

/* The one growth rule of memkit's C-side stacks and buffers: room for more
 * items in the malloc'd array `p` of *cap items of `size` bytes. Returns the
 * array reallocated to twice *cap (`first` items when *cap is 0) and updates
 * *cap, or NULL when the size would overflow or memory is short (then `p` and
 * *cap are unchanged). Safe from any thread; never touches R. */
void *mk_grow(void *p, size_t *cap, size_t size, size_t first);

/* 64-bit FNV-1a: the one hash of memkit's checksums and content keys.
 * Start from MK_FNV_SEED; chain calls to hash several pieces. */
#define MK_FNV_SEED UINT64_C(14695981039346656037)
static inline uint64_t mk_fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *s = (const unsigned char *) p;
  for (size_t i = 0; i < n; i++) {
    h ^= s[i];
    h *= UINT64_C(1099511628211);
  }
  return h;
}

/* A hint to fetch the memory at p ahead of its use: walks over large
 * graphs are bound by memory latency. */
#if defined(__GNUC__) || defined(__clang__)
# define MK_PREFETCH(p) __builtin_prefetch(p)
#else
# define MK_PREFETCH(p) ((void) 0)
#endif

#endif
