/*
 * robj.h: the one place that knows how R lays out objects.
 *
 * Every question memkit's walker asks of a node goes through these functions:
 * attributes, an environment's bindings (without forcing a promise or calling
 * an active binding), its binding cells and hash table, closure and promise
 * parts, a vector's capacity, namespaces. robj.c answers each with R's API,
 * one branch per API generation, chosen at compile time by R_VERSION:
 *
 *   R >= 4.6   the API alone: R_mapAttrib(), R_GetBindingType() with
 *              R_getVar(), R_ActiveBindingFunction(), R_DelayedBinding*(),
 *              R_ForcedBindingExpression(), R_lsInternal3(), R_ClosureFormals/
 *              Body/Env(), R_ParentEnv(), R_isResizable()/R_maxLength().
 *   R <  4.6   the accessors those versions export and their own check
 *              accepts: ATTRIB, FRAME, HASHTAB, PRCODE/PRVALUE/PRENV,
 *              IS_GROWABLE/TRUELENGTH, R_lsInternal3(), Rf_findVarInFrame3(),
 *              R_HasFancyBindings() (declared up to R 4.5), CAR/TAG of
 *              binding cells (CAR() refuses an unboxed value with an error,
 *              caught by R_tryCatchError()) (and FORMALS/BODY/CLOENV/ENCLOS
 *              before R 4.5).
 *
 * No struct mirroring R's internals exists anywhere in memkit.
 *
 * What R >= 4.6's API cannot see exactly (the bounds, also in ?mem_size):
 *   - A scalar stored unboxed ("immediate") in a binding cell: R_getVar()
 *     boxes it (and so does Rf_findVarInFrame3() before R 4.6). The first
 *     measurement of such an environment adds one 56-byte node per immediate
 *     binding to the session, and counts it.
 *   - A promise held by a binding: the API gives its code, environment and
 *     value but not the promise node. Its 56 bytes are counted with the
 *     binding; if the same promise is also reachable elsewhere (a `...`
 *     list), those 56 bytes are counted twice.
 *   - The bytecode form of a promise's code is not handed out: the API gives
 *     the expression, so compiled promise code counts as its expression.
 *   - Attribute cells are counted one per attribute (56 bytes), never shared.
 * R < 4.6 has the same bounds for immediates, none for promises.
 *
 * Functions that enumerate bindings or ask about namespaces may allocate on
 * R's heap (and so may run a garbage collection): callers hold only nodes
 * reachable from protected roots.
 */
#ifndef MEMKIT_ROBJ_H
#define MEMKIT_ROBJ_H

#ifndef R_NO_REMAP
# define R_NO_REMAP
#endif
#include <Rinternals.h>
#include <Rversion.h>

/* The API generation this build uses: 1 for R >= 4.6 (API only). */
#if R_VERSION >= R_Version(4, 6, 0)
# define MK_ROBJ_API_ONLY 1
#else
# define MK_ROBJ_API_ONLY 0
#endif

/* ---- attributes ---- */

/* 1 if x has attributes (never for a CHARSXP, whose field R uses for its
 * string cache). */
int mk_robj_has_attrs(SEXP x);
/* The same for a node known not to be a CHARSXP: inline, for the walker's
 * inner loop. */
static inline int mk_robj_has_attrs_t(SEXP x) {
#if MK_ROBJ_API_ONLY
  return ANY_ATTRIB(x);
#else
  return ATTRIB(x) != R_NilValue;
#endif
}
/* Calls fn(tag, value, data) for each attribute of x, in order; returns the
 * number of attributes (each one a 56-byte pairlist cell). */
typedef void (*mk_attr_fn)(SEXP tag, SEXP value, void *data);
int mk_robj_attrs(SEXP x, mk_attr_fn fn, void *data);
/* The value of attribute `sym`, or R_NilValue: never allocates (unlike
 * getAttrib() for compact row names). */
SEXP mk_robj_attr(SEXP x, SEXP sym);

/* ---- environments ---- */

enum {
  MK_BIND_VALUE,    /* value: the value */
  MK_BIND_MISSING,  /* a function's argument given no value: nothing */
  MK_BIND_DELAYED,  /* an unforced promise: expr, env (promise if visible) */
  MK_BIND_FORCED,   /* a forced promise: value, expr (promise if visible) */
  MK_BIND_ACTIVE    /* an active binding: value is its function (never called) */
};

typedef struct {
  SEXP sym;
  int kind;
  SEXP value;       /* or NULL */
  SEXP expr, env;   /* a promise's code and environment, or NULL */
  SEXP promise;     /* the promise node where the API shows it, else NULL */
} mk_binding;

typedef void (*mk_binding_fn)(const mk_binding *b, void *data);
/* Calls fn for every binding of env; returns the number of bindings. Never
 * forces a promise or calls an active binding. An attach()ed user database
 * (whose bindings only its own R code can list) has none. */
R_xlen_t mk_robj_bindings(SEXP env, mk_binding_fn fn, void *data);
/* The kind of the binding of sym in env (MK_BIND_*), or -1 when unbound. */
int mk_robj_binding_kind(SEXP env, SEXP sym);
/* Buckets of env's hash table, 0 when it has none. */
R_xlen_t mk_robj_env_buckets(SEXP env);
SEXP mk_robj_env_parent(SEXP env);
/* 1 if env is a namespace registered with R. Never calls an active binding:
 * a look-alike holding `.__NAMESPACE__.` is not one. Answers are cached
 * until mk_robj_reset(). */
int mk_robj_is_namespace(SEXP env);
/* Forget cached answers; every entry point that walks calls it first. */
void mk_robj_reset(void);
/* R_CheckUserInterrupt() for walkers: an interrupt's handlers may run R
 * code and resume, and bindings read ahead are then read again. */
void mk_robj_check_interrupt(void);

/* ---- closures, promises, vectors ---- */

SEXP mk_robj_closure_formals(SEXP x);
SEXP mk_robj_closure_body(SEXP x);
SEXP mk_robj_closure_env(SEXP x);
/* The parts of a promise node met outside a binding (a `...` list):
 * *value is NULL while it is unforced; *env is NULL once forced. */
void mk_robj_promise(SEXP p, SEXP *expr, SEXP *value, SEXP *env);
/* Capacity in elements: the length, or more for a growable vector that R
 * over-allocated on x[n + 1] <- v. */
R_xlen_t mk_robj_capacity(SEXP x);
/* The same given x's length: inline, for the walker's inner loop. */
static inline R_xlen_t mk_robj_capacity_len(SEXP x, R_xlen_t len) {
#if MK_ROBJ_API_ONLY
  return R_isResizable(x) ? R_maxLength(x) : len;
#else
  if (IS_GROWABLE(x)) {
    R_xlen_t tl = TRUELENGTH(x);
    if (tl > len) return tl;
  }
  return len;
#endif
}

#endif
