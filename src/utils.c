#include "memkit.h"
#include "errors.h"

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
