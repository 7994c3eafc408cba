/*
 * offload.c: which bindings are unforced promises, and their environments,
 * without forcing any (mem_ls() recognises the lazy bindings that
 * mem_offload() left by their environment; see R/offload.R). Reads bindings
 * through the R-object layer (robj.h) only.
 */
#include "memkit.h"
#include "robj.h"
#include "errors.h"

typedef struct {
  SEXP syms;  /* a list of the symbols asked for */
  SEXP out;   /* a list: the promise's environment, or NULL */
} probe_data;

static void probe_binding(const mk_binding *b, void *data) {
  probe_data *d = (probe_data *) data;
  if (b->kind != MK_BIND_DELAYED || b->env == NULL) return;
  R_xlen_t n = XLENGTH(d->syms);
  for (R_xlen_t i = 0; i < n; i++) {
    if (VECTOR_ELT(d->syms, i) == b->sym) {
      SET_VECTOR_ELT(d->out, i, b->env);
      return;
    }
  }
}

/* For each of `names`, the environment of the unforced promise bound to it
 * in `envir`, or NULL when the binding is anything else (or absent). */
SEXP ffi_offload_probe(SEXP envir, SEXP names) {
  if (TYPEOF(envir) != ENVSXP || TYPEOF(names) != STRSXP)
    MK_INTERNAL_ERROR("ffi_offload_probe: bad arguments");
  int nprot = 0;
  R_xlen_t n = XLENGTH(names);
  SEXP syms = PROTECT(Rf_allocVector(VECSXP, n)); nprot++;
  for (R_xlen_t i = 0; i < n; i++)
    SET_VECTOR_ELT(syms, i, Rf_installTrChar(STRING_ELT(names, i)));
  SEXP out = PROTECT(Rf_allocVector(VECSXP, n)); nprot++;
  if (n > 0) {
    probe_data d = {syms, out};
    mk_robj_reset();
    mk_robj_bindings(envir, probe_binding, &d);
  }
  UNPROTECT(nprot);
  return out;
}
