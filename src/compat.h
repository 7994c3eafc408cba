/*
 * compat.h: version guards, and the only place for access that R's API lacks.
 *
 * Every use of something outside R's documented API must live here, behind a
 * macro with a comment saying why no API exists. None of it references a
 * non-API symbol: tools/symbols.sh checks the built library against
 * tools/nonapi.txt.
 */
#ifndef MEMKIT_COMPAT_H
#define MEMKIT_COMPAT_H

#include <Rversion.h>

#if defined(__GNUC__) || defined(__clang__)
# define MK_NORETURN __attribute__((noreturn))
# define MK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
# define MK_NORETURN
# define MK_PRINTF(a, b)
#endif


/* ---- sizes: reading node fields that R's API does not expose ------------
 *
 * An object-size walker must see every field that keeps memory alive. R's
 * API offers no accessor for some of them, in any version:
 *   - the attribute pairlist of a node (ATTRIB): getAttrib() needs a name,
 *     and neither it nor R_mapAttrib (R >= 4.6) hands out the pairlist cells,
 *     which are nodes gc() counts;
 *   - an environment's frame (the binding cells, FRAME) and hash table
 *     (HASHTAB): R_lsInternal3() + findVarInFrame() allocate, call active
 *     bindings and hide the cells and the table, so they cannot count them;
 *   - a binding cell's value when the cell holds an immediate (unboxed)
 *     value: CAR() raises "bad binding access" there; the cell then holds a
 *     raw double or int, not a node, which BNDCELL_TAG (sxpinfo.extra) says;
 *   - a promise's value, code and environment (PRVALUE, PRCODE, PRENV): the
 *     API can only force a promise;
 *   - a growable vector's capacity (TRUELENGTH and the GROWABLE bit): R 4.6
 *     adds R_isResizable()/R_maxLength(), used there.
 * Closures' formals/body/environment and an environment's parent have API
 * from R 4.5 (R_ClosureFormals/Body/Env, R_ParentEnv), used there.
 *
 * These read the fields through a mirror of R's node header (Defn.h:
 * SEXPREC_HEADER and the three-pointer union, unchanged since R 3.5), so
 * they add no symbol to the library. size.c checks the mirror against the
 * API once per session (check_layout()) and refuses to walk if it disagrees. */
#ifndef R_NO_REMAP
# define R_NO_REMAP
#endif
#include <Rinternals.h>

struct mk_sxpinfo {
  unsigned int type : 5, scalar : 1, obj : 1, alt : 1, gp : 16, mark : 1,
    debug : 1, trace : 1, spare : 1, gcgen : 1, gccls : 3;
  unsigned int named : 16, extra : 16;
};
typedef struct {
  struct mk_sxpinfo sxpinfo;
  SEXP attrib, gengc_next_node, gengc_prev_node;
  union {
    struct { SEXP a, b, c; } three; /* car/cdr/tag, frame/enclos/hashtab, ... */
    struct { R_xlen_t length, truelength; } vec;
  } u;
} mk_node_layout;

#define MK_LAYOUT(x) ((const mk_node_layout *) (const void *) (x))

static inline SEXP mk_attrib(SEXP x) { return MK_LAYOUT(x)->attrib; }
/* Non-zero when the cell's first field is an immediate value, not a node. */
static inline int mk_cell_immediate(SEXP x) { return MK_LAYOUT(x)->sxpinfo.extra != 0; }
/* The three pointer fields of a non-vector node: CAR/CDR/TAG of a pairlist,
 * language object or bytecode; value/code/env of a promise; frame/enclos/
 * hashtab of an environment; formals/body/env of a closure. */
static inline SEXP mk_field1(SEXP x) { return MK_LAYOUT(x)->u.three.a; }
static inline SEXP mk_field2(SEXP x) { return MK_LAYOUT(x)->u.three.b; }
static inline SEXP mk_field3(SEXP x) { return MK_LAYOUT(x)->u.three.c; }

#if R_VERSION >= R_Version(4, 5, 0)
static inline SEXP mk_closure_formals(SEXP x) { return R_ClosureFormals(x); }
static inline SEXP mk_closure_body(SEXP x) { return R_ClosureBody(x); }
static inline SEXP mk_closure_env(SEXP x) { return R_ClosureEnv(x); }
static inline SEXP mk_env_parent(SEXP x) { return R_ParentEnv(x); }
#else
static inline SEXP mk_closure_formals(SEXP x) { return mk_field1(x); }
static inline SEXP mk_closure_body(SEXP x) { return mk_field2(x); }
static inline SEXP mk_closure_env(SEXP x) { return mk_field3(x); }
static inline SEXP mk_env_parent(SEXP x) { return mk_field2(x); }
#endif
static inline SEXP mk_env_frame(SEXP x) { return mk_field1(x); }
static inline SEXP mk_env_hashtab(SEXP x) { return mk_field3(x); }

/* Capacity of a vector in elements: its length, or more for a growable
 * vector that R over-allocated on x[n + 1] <- v. */
#if R_VERSION >= R_Version(4, 6, 0)
static inline R_xlen_t mk_vec_capacity(SEXP x) {
  return R_isResizable(x) ? R_maxLength(x) : XLENGTH(x);
}
#else
static inline R_xlen_t mk_vec_capacity(SEXP x) {
  const mk_node_layout *p = MK_LAYOUT(x);
  /* GROWABLE_MASK is bit 5 of gp (Defn.h). */
  if ((p->sxpinfo.gp & (1u << 5)) && p->u.vec.truelength > p->u.vec.length)
    return p->u.vec.truelength;
  return p->u.vec.length;
}
#endif

#endif
