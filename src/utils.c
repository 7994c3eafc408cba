#define _POSIX_C_SOURCE 200809L
#include <time.h>

#include "memkit.h"
#include "errors.h"
#include "utils.h"

double mk_now(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0.0;
  return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
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
