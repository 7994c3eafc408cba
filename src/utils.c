#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
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

double mk_rss_bytes(void) {
#if defined(__linux__)
  /* statm: size resident shared text lib data dt, in pages. One read() of a
   * small buffer; cheaper than parsing /proc/self/status. */
  char buf[256];
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NA_REAL;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return NA_REAL;
  buf[n] = '\0';
  unsigned long size = 0, resident = 0;
  if (sscanf(buf, "%lu %lu", &size, &resident) != 2) return NA_REAL;
  return (double) resident * (double) sysconf(_SC_PAGESIZE);
#elif defined(__APPLE__)
  mach_task_basic_info_data_t info;
  mach_msg_type_number_t count = MACH_TASK_BASIC_INFO_COUNT;
  if (task_info(mach_task_self(), MACH_TASK_BASIC_INFO, (task_info_t) &info, &count) != KERN_SUCCESS)
    return NA_REAL;
  return (double) info.resident_size;
#else
  return NA_REAL;
#endif
}

SEXP ffi_utils_rss(void) {
  return Rf_ScalarReal(mk_rss_bytes());
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
