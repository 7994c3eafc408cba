#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
# include <malloc.h>
#endif
#ifdef __APPLE__
# include <mach/mach.h>
#endif

#include "memkit.h"
#include "errors.h"
#include "utils.h"

double mk_now(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0.0;
  return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

int mk_rss_open(void) {
#if defined(__linux__)
  return open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
#else
  return -1;
#endif
}

double mk_rss_read(int fd) {
#if defined(__linux__)
  /* statm: size resident shared text lib data dt, in pages. One pread() of a
   * small buffer at offset 0 re-reads the file without reopening it; cheaper
   * than parsing /proc/self/status. */
  if (fd < 0) return NA_REAL;
  long page = sysconf(_SC_PAGESIZE);
  char buf[256];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return NA_REAL;
  buf[n] = '\0';
  unsigned long size = 0, resident = 0;
  if (sscanf(buf, "%lu %lu", &size, &resident) != 2) return NA_REAL;
  return (double) resident * (double) page;
#elif defined(__APPLE__)
  (void) fd;
  mach_task_basic_info_data_t info;
  mach_msg_type_number_t count = MACH_TASK_BASIC_INFO_COUNT;
  if (task_info(mach_task_self(), MACH_TASK_BASIC_INFO, (task_info_t) &info, &count) != KERN_SUCCESS)
    return NA_REAL;
  return (double) info.resident_size;
#else
  (void) fd;
  return NA_REAL;
#endif
}

double mk_rss_bytes(void) {
  int fd = mk_rss_open();
  double rss = mk_rss_read(fd);
  if (fd >= 0) close(fd);
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
 * malloc_trim(): the top of each arena and whole free pages inside them).
 * mem_gc(trim = TRUE) reports what that gave back; mem_leaks() trims before
 * each reading so that resident memory measures what is in use rather than
 * what the allocator keeps cached (a native leak would otherwise be served
 * from freed, already resident memory and not show). TRUE if memory was
 * returned, FALSE if none was, NA where there is no malloc_trim (not the GNU
 * C library). */
SEXP ffi_utils_trim(void) {
#ifdef __GLIBC__
  return Rf_ScalarLogical(malloc_trim(0) ? TRUE : FALSE);
#else
  return Rf_ScalarLogical(NA_LOGICAL);
#endif
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
