/*
 * heap.c: the C allocator's own view of its heap, and its tuning knobs.
 *
 * GNU C library >= 2.33: mallinfo2(), whose fields are size_t. Older glibc:
 * mallinfo(), whose fields are int and wrap past 2 GiB (read as unsigned
 * here, so they are right up to 4 GiB). macOS: malloc_zone_statistics() over
 * all zones gives bytes allocated from the system and bytes in use; the rest
 * is NA. Elsewhere (Windows): all NA.
 *
 * mallopt() sets the knobs; glibc has no call that reads them back, so the R
 * side remembers what it set (see R/heap.R).
 */
#include <stdlib.h>
#ifdef __GLIBC__
# include <malloc.h>
#endif
#ifdef __APPLE__
# include <malloc/malloc.h>
#endif

#include "memkit.h"
#include "errors.h"

/* Fields, in this order (R/heap.R names them): heap obtained from the system
 * (not mmapped), in use, free inside the heap, free chunks, free in fastbins,
 * mmapped bytes, mmapped blocks, releasable at the top; then the source:
 * 2 = mallinfo2(), 1 = mallinfo(), 3 = malloc_zone_statistics(), 0 = none. */
#define HEAP_FIELDS 9

SEXP ffi_heap_info(void) {
  SEXP out = PROTECT(Rf_allocVector(REALSXP, HEAP_FIELDS));
  double *v = REAL(out);
  for (int i = 0; i < HEAP_FIELDS; i++) v[i] = NA_REAL;
  v[8] = 0;
#if defined(__GLIBC__)
# if __GLIBC_PREREQ(2, 33)
  struct mallinfo2 mi = mallinfo2();
  v[0] = (double) mi.arena;
  v[1] = (double) mi.uordblks;
  v[2] = (double) mi.fordblks;
  v[3] = (double) mi.ordblks + (double) mi.smblks;
  v[4] = (double) mi.fsmblks;
  v[5] = (double) mi.hblkhd;
  v[6] = (double) mi.hblks;
  v[7] = (double) mi.keepcost;
  v[8] = 2;
# else
  struct mallinfo mi = mallinfo();
  v[0] = (double) (unsigned int) mi.arena;
  v[1] = (double) (unsigned int) mi.uordblks;
  v[2] = (double) (unsigned int) mi.fordblks;
  v[3] = (double) (unsigned int) mi.ordblks + (double) (unsigned int) mi.smblks;
  v[4] = (double) (unsigned int) mi.fsmblks;
  v[5] = (double) (unsigned int) mi.hblkhd;
  v[6] = (double) (unsigned int) mi.hblks;
  v[7] = (double) (unsigned int) mi.keepcost;
  v[8] = 1;
# endif
#elif defined(__APPLE__)
  malloc_statistics_t st;
  malloc_zone_statistics(NULL, &st);
  v[0] = (double) st.size_allocated;
  v[1] = (double) st.size_in_use;
  v[2] = (double) st.size_allocated - (double) st.size_in_use;
  v[8] = 3;
#endif
  UNPROTECT(1);
  return out;
}

/* mallopt() for the knobs by number: 1 arena_max, 2 trim_threshold,
 * 3 mmap_threshold. TRUE when glibc took the value, FALSE when it refused
 * it. The R side checks ranges first and calls this only on glibc. */
SEXP ffi_heap_mallopt(SEXP knob, SEXP value) {
  if (TYPEOF(knob) != INTSXP || XLENGTH(knob) != 1 || TYPEOF(value) != REALSXP ||
      XLENGTH(value) != 1)
    MK_INTERNAL_ERROR("bad arguments to ffi_heap_mallopt");
  int k = INTEGER(knob)[0];
  double x = REAL(value)[0];
  if (!(x >= 0 && x <= 2147483647.0))
    mk_error("argument", "an allocator setting must be between 0 and 2147483647, not %g", x);
#if defined(__GLIBC__)
  int param;
  switch (k) {
# ifdef M_ARENA_MAX
  case 1: param = M_ARENA_MAX; break;
# endif
  case 2: param = M_TRIM_THRESHOLD; break;
  case 3: param = M_MMAP_THRESHOLD; break;
  default: mk_error("unsupported", "this C library has no allocator setting number %d", k);
  }
  return Rf_ScalarLogical(mallopt(param, (int) x) == 1);
#else
  (void) k;
  mk_error("unsupported", "allocator settings need the GNU C library's mallopt()");
#endif
}
