/* A native leak for the tests of mem_leaks(): each call malloc()s `bytes`,
 * writes them (so they are resident) and never frees them. Compiled at test
 * time into a temporary directory; never part of the package. */
#include <stdlib.h>
#include <string.h>
#include <Rinternals.h>

/* The last block, so the compiler cannot drop the allocation. */
static void *volatile last;

SEXP leak_native(SEXP bytes) {
  size_t n = (size_t) Rf_asReal(bytes);
  char *p = malloc(n);
  if (p != NULL) memset(p, 1, n);
  last = p;
  return R_NilValue;
}
