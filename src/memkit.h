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
SEXP ffi_utils_trim(void);

/* ---- sizes (src/size.c) --------------------------------------------------- */
SEXP ffi_size_cells(SEXP objs);
SEXP ffi_size_each(SEXP objs);
SEXP ffi_size_stats(SEXP objs);
SEXP ffi_size_tree(SEXP x, SEXP max_depth, SEXP min_bytes);
SEXP ffi_size_by_type(SEXP x);

/* ---- session (src/retained.c) -------------------------------------------- */
SEXP ffi_retained_size(SEXP envir, SEXP names, SEXP roots);
SEXP ffi_retained_ls(SEXP envir, SEXP roots);
SEXP ffi_retained_hash(SEXP vecs);
SEXP ffi_retained_vectors(SEXP x, SEXP min_bytes);

/* ---- file-backed matrices (src/fm.c, src/fm_altrep.c) --------------------- */
SEXP ffi_fm_create(SEXP path, SEXP tmp, SEXP type, SEXP nrow, SEXP ncol, SEXP dimnames);
SEXP ffi_fm_header(SEXP path);
SEXP ffi_fm_open(SEXP path, SEXP mode, SEXP type, SEXP nrow, SEXP ncol, SEXP offset,
                 SEXP header, SEXP checksum, SEXP dimnames);
SEXP ffi_fm_fill(SEXP x, SEXP value, SEXP at, SEXP from, SEXP n);
SEXP ffi_fm_write(SEXP x, SEXP value, SEXP i, SEXP j);
SEXP ffi_fm_read(SEXP x, SEXP i, SEXP j);
SEXP ffi_fm_read_block(SEXP x, SEXP margin, SEXP from, SEXP count);
SEXP ffi_fm_flush(SEXP x);
SEXP ffi_fm_info(SEXP x);
SEXP ffi_fm_is(SEXP x);

/* ---- growing and importing (src/fm_append.c, src/fm_import.c) ------------- */
SEXP ffi_fm_grow_begin(SEXP x, SEXP ncol_new, SEXP dimnames);
SEXP ffi_fm_grow_write(SEXP handle, SEXP value, SEXP at, SEXP from, SEXP n);
SEXP ffi_fm_grow_commit(SEXP handle, SEXP dimnames);
SEXP ffi_fm_grow_abort(SEXP handle);
SEXP ffi_fm_pwrite(SEXP x, SEXP value, SEXP at, SEXP from, SEXP n);
SEXP ffi_fm_import_open(SEXP path, SEXP compressed);
SEXP ffi_fm_import_close(SEXP xp);
SEXP ffi_fm_import_fill(SEXP xp, SEXP more, SEXP eof, SEXP block);
SEXP ffi_fm_import_line(SEXP xp, SEXP skip, SEXP sep, SEXP quote);
SEXP ffi_fm_import_count(SEXP xp);
SEXP ffi_fm_import_parse(SEXP xp, SEXP kinds, SEXP sep, SEXP quote, SEXP na, SEXP max_rows,
                         SEXP first_line, SEXP out, SEXP at);

/* ---- GC tracing (src/gctrace.c) ------------------------------------------- */
SEXP ffi_gctrace_open(SEXP spool);
SEXP ffi_gctrace_close(SEXP handle);
SEXP ffi_gctrace_adopt(SEXP handle);
SEXP ffi_gctrace_arm(SEXP hook, SEXP quiet_children);
SEXP ffi_gctrace_reset(SEXP handle);
SEXP ffi_gctrace_disarm(void);
SEXP ffi_gctrace_records(SEXP from);
SEXP ffi_gctrace_callbacks(SEXP from);
SEXP ffi_gctrace_text(void);
SEXP ffi_gctrace_sync(SEXP frames);

/* ---- profiling (src/sampler.c) -------------------------------------------- */
SEXP ffi_sampler_start(SEXP interval);
SEXP ffi_sampler_stop(SEXP sampler);
SEXP ffi_sampler_peak(void);
SEXP ffi_sampler_reset(void);

/* ---- needing less (src/heap.c, src/offload.c) ----------------------------- */
SEXP ffi_heap_info(void);
SEXP ffi_heap_mallopt(SEXP knob, SEXP value);
SEXP ffi_offload_probe(SEXP envir, SEXP names);
/* ---- room and limits (src/limits.c; the watch: src/sampler.c, src/watch.c) */
SEXP ffi_sampler_start_ex(SEXP interval, SEXP watch, SEXP children);
SEXP ffi_sampler_halt(SEXP sampler);
SEXP ffi_watch_drain(void);
SEXP ffi_limits_rlimit(void);
SEXP ffi_limits_system(void);

#endif
