/*
 * init.c: the one registration table. R calls every routine by symbol
 * (useDynLib(memkit, .registration = TRUE) and R_forceSymbols), so nothing is
 * looked up by string and nothing else in the library is visible.
 */
#include <R_ext/Rdynload.h>
#include <R_ext/Visibility.h>

#include "memkit.h"
#include "fm.h"
#include "walk.h"

/* The detour through void (*)(void) is the portable way to say "any function"
 * and keeps -Wcast-function-type quiet. */
#define CALLDEF(name, n) {#name, (DL_FUNC) (void (*)(void)) &name, n}

static const R_CallMethodDef call_methods[] = {
  /* utils */
  CALLDEF(ffi_utils_error, 4),
  CALLDEF(ffi_utils_now, 0),
  CALLDEF(ffi_utils_rss, 0),
  CALLDEF(ffi_utils_trim, 0),

  /* sizes */
  CALLDEF(ffi_size_cells, 1),
  CALLDEF(ffi_size_each, 1),
  CALLDEF(ffi_size_stats, 1),
  CALLDEF(ffi_size_tree, 3),
  CALLDEF(ffi_size_by_type, 1),

  /* session */
  CALLDEF(ffi_retained_size, 3),
  CALLDEF(ffi_retained_ls, 2),
  CALLDEF(ffi_retained_hash, 1),
  CALLDEF(ffi_retained_vectors, 2),

  /* file-backed matrices */
  CALLDEF(ffi_fm_create, 6),
  CALLDEF(ffi_fm_header, 1),
  CALLDEF(ffi_fm_open, 9),
  CALLDEF(ffi_fm_fill, 5),
  CALLDEF(ffi_fm_write, 4),
  CALLDEF(ffi_fm_read, 3),
  CALLDEF(ffi_fm_read_block, 4),
  CALLDEF(ffi_fm_flush, 1),
  CALLDEF(ffi_fm_info, 1),
  CALLDEF(ffi_fm_is, 1),
  CALLDEF(ffi_fm_grow_begin, 3),
  CALLDEF(ffi_fm_grow_write, 5),
  CALLDEF(ffi_fm_grow_commit, 2),
  CALLDEF(ffi_fm_grow_abort, 1),
  CALLDEF(ffi_fm_pwrite, 5),
  CALLDEF(ffi_fm_import_open, 2),
  CALLDEF(ffi_fm_import_close, 1),
  CALLDEF(ffi_fm_import_fill, 4),
  CALLDEF(ffi_fm_import_line, 4),
  CALLDEF(ffi_fm_import_count, 1),
  CALLDEF(ffi_fm_import_parse, 9),

  /* GC tracing */
  CALLDEF(ffi_gctrace_open, 1),
  CALLDEF(ffi_gctrace_close, 1),
  CALLDEF(ffi_gctrace_adopt, 1),
  CALLDEF(ffi_gctrace_arm, 2),
  CALLDEF(ffi_gctrace_reset, 1),
  CALLDEF(ffi_gctrace_disarm, 0),
  CALLDEF(ffi_gctrace_records, 1),
  CALLDEF(ffi_gctrace_callbacks, 1),
  CALLDEF(ffi_gctrace_text, 0),
  CALLDEF(ffi_gctrace_sync, 1),

  /* profiling */
  CALLDEF(ffi_sampler_start, 1),
  CALLDEF(ffi_sampler_stop, 1),
  CALLDEF(ffi_sampler_peak, 0),
  CALLDEF(ffi_sampler_reset, 0),

  /* needing less: the allocator's heap, offloaded bindings */
  CALLDEF(ffi_heap_info, 0),
  CALLDEF(ffi_heap_mallopt, 2),
  CALLDEF(ffi_offload_probe, 2),
  /* room and limits */
  CALLDEF(ffi_sampler_start_ex, 3),
  CALLDEF(ffi_sampler_halt, 1),
  CALLDEF(ffi_watch_drain, 0),
  CALLDEF(ffi_limits_rlimit, 0),
  CALLDEF(ffi_limits_system, 0),

  {NULL, NULL, 0}
};

void attribute_visible R_init_memkit(DllInfo *dll) {
  R_registerRoutines(dll, NULL, call_methods, NULL, NULL);
  R_useDynamicSymbols(dll, FALSE);
  R_forceSymbols(dll, TRUE);
  /* file-backed matrices: the ALTREP classes must exist before anything is
   * unserialized. */
  fm_init_altrep(dll);
}

/* The walker's cached tables go back to the system with the package. */
void attribute_visible R_unload_memkit(DllInfo *dll) {
  (void) dll;
  mk_walk_release();
}
