/*
 * errors.h: raising classed R conditions from C.
 *
 * Every error memkit raises is an R condition of class
 *   c("memkit_error_<kind>", "memkit_error", "error", "condition")
 * built by the R function memkit:::mk_c_error(), so R code can catch it with
 *   tryCatch(..., memkit_error_file = function(e) ...).
 *
 *   mk_error("type", "`x` must be a double matrix, not %s", type2char(t));
 *   mk_error_sys("file", errno, path, "cannot open '%s'", path);
 *
 * The system form appends strerror(errnum) to the message and stores `errno`
 * (the number) and `path` in the condition. Both longjmp; nothing after them
 * runs, so release C resources before calling them (or run under
 * R_UnwindProtect / R_ExecWithCleanup).
 */
#ifndef MEMKIT_ERRORS_H
#define MEMKIT_ERRORS_H

#if defined(__GNUC__) || defined(__clang__)
# define MK_NORETURN __attribute__((noreturn))
# define MK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
# define MK_NORETURN
# define MK_PRINTF(a, b)
#endif

void mk_error(const char *kind, const char *fmt, ...) MK_NORETURN MK_PRINTF(2, 3);
void mk_error_sys(const char *kind, int errnum, const char *path,
                  const char *fmt, ...) MK_NORETURN MK_PRINTF(4, 5);

/* Internal invariant broken: a bug in memkit, never the user's fault. */
#define MK_INTERNAL_ERROR(msg) \
  mk_error("internal", "internal error at %s:%d: %s", __FILE__, __LINE__, (msg))

#endif
