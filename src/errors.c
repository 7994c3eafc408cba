#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define R_NO_REMAP
#include <R.h>
#include <Rinternals.h>

#include "errors.h"

/*
 * Build the message in C, then let R construct and signal the condition:
 * memkit:::mk_c_error(kind, message, errno, path). Evaluating in the namespace
 * keeps the class structure in one place (R/errors.R).
 */
static void MK_NORETURN throw(const char *kind, const char *msg, int errnum,
                              const char *path) {
  SEXP ns = PROTECT(R_FindNamespace(PROTECT(Rf_mkString("memkit"))));
  SEXP s_errno = PROTECT(Rf_ScalarInteger(errnum ? errnum : NA_INTEGER));
  SEXP s_path = PROTECT(path ? Rf_mkString(path) : Rf_ScalarString(NA_STRING));
  SEXP call = PROTECT(Rf_lang5(Rf_install("mk_c_error"), PROTECT(Rf_mkString(kind)),
                               PROTECT(Rf_mkString(msg)), s_errno, s_path));
  Rf_eval(call, ns);
  UNPROTECT(7);
  Rf_error("%s", msg); /* not reached: mk_c_error() always signals */
}

void mk_error(const char *kind, const char *fmt, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  throw(kind, buf, 0, NULL);
}

void mk_error_sys(const char *kind, int errnum, const char *path, const char *fmt, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t) n < sizeof buf) {
    snprintf(buf + n, sizeof buf - (size_t) n, ": %s", strerror(errnum));
  }
  throw(kind, buf, errnum, path);
}
