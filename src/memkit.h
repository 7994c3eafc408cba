/*
 * memkit.h: every .Call entry point, grouped by family. Included by init.c
 * (the registration table) and by the file that defines each entry point, so
 * a signature that drifts is a compile error, not a crash.
 *
 * Entry points are ffi_<topic>_<verb>; static helpers carry no prefix.
 */
#ifndef MEMKIT_H
#define MEMKIT_H

#define R_NO_REMAP
#include <R.h>
#include <Rinternals.h>

/* ---- utils (src/utils.c) ------------------------------------------------ */
SEXP ffi_utils_error(SEXP kind, SEXP msg, SEXP errnum, SEXP path);
SEXP ffi_utils_now(void);
SEXP ffi_utils_rss(void);

/* ---- sizes (src/size.c) --------------------------------------------------- */

/* ---- session (src/retained.c) -------------------------------------------- */

/* ---- file-backed matrices (src/fm.c, src/fm_altrep.c) --------------------- */

/* ---- GC tracing (src/gctrace.c) ------------------------------------------- */
SEXP ffi_gctrace_open(void);
SEXP ffi_gctrace_close(SEXP handle);
SEXP ffi_gctrace_adopt(SEXP handle);
SEXP ffi_gctrace_arm(SEXP hook);
SEXP ffi_gctrace_disarm(void);
SEXP ffi_gctrace_records(SEXP from);
SEXP ffi_gctrace_callbacks(SEXP from);
SEXP ffi_gctrace_text(void);

/* ---- profiling (src/sampler.c) -------------------------------------------- */
SEXP ffi_sampler_start(SEXP interval);
SEXP ffi_sampler_stop(SEXP sampler);
SEXP ffi_sampler_peak(void);
SEXP ffi_sampler_reset(void);
SEXP ffi_profile_trim(void);

#endif
