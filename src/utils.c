#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "memkit.h"
#include "errors.h"
#include "utils.h"
#include "procmem.h"

double mk_now(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0.0;
  return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/* The readings are the platform's (procmem.h); here -1 becomes NA. */
int mk_rss_open(void) {
  return mk_mem_open();
}

void mk_rss_close(int fd) {
  mk_mem_close(fd);
}

double mk_rss_read(int fd) {
  double r = mk_mem_resident(fd);
  return r < 0 ? NA_REAL : r;
}

double mk_rss_bytes(void) {
  int fd = mk_rss_open();
  double rss = mk_rss_read(fd);
  mk_rss_close(fd);
  return rss;
}

void *mk_grow(void *p, size_t *cap, size_t size, size_t first) {
  size_t n = *cap ? *cap : first;
  if (size == 0 || n == 0) return NULL;
  if (*cap) {
    if (n > SIZE_MAX / 2 / size) return NULL;
    n *= 2;
  } else if (n > SIZE_MAX / size) {
    return NULL;
  }
  void *q = realloc(p, n * size);
  if (q == NULL) return NULL;
  *cap = n;
  return q;
}

SEXP ffi_utils_rss(void) {
  return Rf_ScalarReal(mk_rss_bytes());
}

/* Give the C allocator's free memory back to the system (glibc's
 * malloc_trim(): the top of each arena and whole free pages inside them;
 * macOS: malloc_zone_pressure_relief(); Windows: _heapmin(); procmem.h).
 * mem_gc(trim = TRUE) reports what that gave back; mem_leaks() trims before
 * each reading so that resident memory measures what is in use rather than
 * what the allocator keeps cached (a native leak would otherwise be served
 * from freed, already resident memory and not show). TRUE if memory was
 * returned (on Windows: the heap was compacted), FALSE if none was, NA
 * where the system has no way to (other C libraries). */
SEXP ffi_utils_trim(void) {
  int r = mk_mem_trim();
  return Rf_ScalarLogical(r < 0 ? NA_LOGICAL : r ? TRUE : FALSE);
}

SEXP ffi_utils_now(void) {
  return Rf_ScalarReal(mk_now());
}

/* Raise a memkit error from C. Used by the tests of the error helpers, so the
 * C path (message formatting, strerror, class) is exercised directly. */
SEXP ffi_utils_error(SEXP kind, SEXP msg, SEXP errnum, SEXP path) {
  const char *k = CHAR(STRING_ELT(kind, 0));
  const char *m = CHAR(STRING_ELT(msg, 0));
  int e = Rf_asInteger(errnum);
  if (e != NA_INTEGER && e != 0) {
    mk_error_sys(k, e, CHAR(STRING_ELT(path, 0)), "%s", m);
  }
  mk_error(k, "%s", m);
}
