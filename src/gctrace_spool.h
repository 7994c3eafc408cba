/*
 * gctrace_spool.h: where R's GC reports go on Windows (gctrace_spool_win.c).
 *
 * On Linux and macOS R writes its reports into a pipe that it opens by name
 * as a file() connection (/dev/fd/N). Windows has no such name for a pipe, so
 * there the reports go to a spool file in R's tempdir(): R appends to it
 * through a file() connection in mode "ab" (the message sink), and the reader
 * thread follows its end, a block of new bytes at a time. A file never
 * blocks its writer, so a long stretch of C code that collects many times
 * cannot stall R as a full pipe would; the file only grows (a few hundred
 * bytes per collection) and is deleted when the trace closes.
 *
 * No R here (tools/windows-test.sh builds it without R). One reader at a
 * time: gctrace.c calls these with its mutex held, except gc_spool_wait()
 * and gc_spool_stop().
 */
#ifndef MEMKIT_GCTRACE_SPOOL_H
#define MEMKIT_GCTRACE_SPOOL_H

#include <stddef.h>

typedef struct gc_spool gc_spool;

/* Create (or empty) the spool file at `path` (R's native encoding) and open
 * it for reading. NULL with errno set on failure. */
gc_spool *gc_spool_open(const char *path);

/* Bytes written since the last read, at most n: their count (0 when none
 * are new), or -1 with errno set. */
long gc_spool_read(gc_spool *s, char *buf, size_t n);

/* Wait up to `ms` milliseconds for gc_spool_stop(): 1 once it was called, 0
 * after the wait. */
int gc_spool_wait(gc_spool *s, unsigned ms);
void gc_spool_stop(gc_spool *s);

/* Close and delete the file (R has closed its connection first; if it has
 * not, the file stays in tempdir()). */
void gc_spool_close(gc_spool *s);

#endif
