/*
 * size.c: the object-graph walker (walk.h) and the sizes entry points.
 *
 * How R allocates (src/main/memory.c, R >= 3.1):
 *   - every node is one Ncell; a non-vector node is a 56-byte SEXPREC;
 *   - a vector is a 48-byte header followed by its data in 8-byte VECRECs;
 *     small vectors (at most 16 VECRECs) take a size class of 1, 2, 4, 8 or
 *     16 VECRECs (there has been no 6-VECREC class since R 3.1.0), large
 *     ones exactly their VECRECs; gc() counts these as Vcells;
 *   - a vector of zero VECRECs is allocated as a class-0 node: 56 bytes,
 *     no Vcells;
 *   - a CHARSXP holds len + 1 bytes (the trailing NUL);
 *   - an ALTREP object is a CONS: a plain node, its data in data1/data2.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "memkit.h"
#include "errors.h"
#include "compat.h"
#include "walk.h"

/* ---- cost of one node -------------------------------------------------- */

static double vecrecs(SEXP x, R_xlen_t n) {
  switch (TYPEOF(x)) {
  case LGLSXP:
  case INTSXP: return (double) ((n * (R_xlen_t) sizeof(int) + 7) / 8);
  case REALSXP: return (double) n;
  case CPLXSXP: return 2.0 * (double) n;
  case STRSXP:
  case VECSXP:
  case EXPRSXP: return (double) n;
  case RAWSXP: return (double) ((n + 7) / 8);
  case CHARSXP: return (double) ((n + 1 + 7) / 8);
  default: return 0;
  }
}

static int is_vector_type(int t) {
  switch (t) {
  case LGLSXP: case INTSXP: case REALSXP: case CPLXSXP: case STRSXP:
  case VECSXP: case EXPRSXP: case RAWSXP: case CHARSXP: case WEAKREFSXP:
    return 1;
  default:
    return 0;
  }
}

static void vector_cost(double v, mk_cost *out) {
  out->ncells = 1;
  if (v <= 0) {               /* class-0 node */
    out->vcells = 0;
    out->bytes = 56;
    return;
  }
  if (v <= 16) {              /* small size classes: 1, 2, 4, 8, 16 */
    double c = 1;
    while (c < v) c *= 2;
    v = c;
  }
  out->vcells = v;
  out->bytes = 48 + 8 * v;
}

void mk_node_cost(SEXP x, mk_cost *out) {
  int t = TYPEOF(x);
  if (!is_vector_type(t) || ALTREP(x)) {
    out->ncells = 1;
    out->vcells = 0;
    out->bytes = 56;
    return;
  }
  if (t == WEAKREFSXP) {      /* allocated as a list of 4 (R_MakeWeakRef) */
    vector_cost(4, out);
    return;
  }
  R_xlen_t n = (t == CHARSXP) ? XLENGTH(x) : mk_vec_capacity(x);
  vector_cost(vecrecs(x, n), out);
}

/* ---- global nodes ------------------------------------------------------ */

static int on_search_path(SEXP env) {
  for (SEXP e = R_GlobalEnv; e != R_EmptyEnv && TYPEOF(e) == ENVSXP; e = mk_env_parent(e)) {
    if (e == env) return 1;
  }
  return 0;
}

int mk_is_global(SEXP x) {
  switch (TYPEOF(x)) {
  case NILSXP:
  case SYMSXP:
  case SPECIALSXP:
  case BUILTINSXP:
    return 1;
  case CHARSXP:
    return x == NA_STRING || x == R_BlankString;
  case LGLSXP:
    /* ScalarLogical() hands out three preserved, shared scalars. */
    return XLENGTH(x) == 1 && !ALTREP(x) &&
      (x == Rf_ScalarLogical(1) || x == Rf_ScalarLogical(0) ||
       x == Rf_ScalarLogical(NA_LOGICAL));
  case ENVSXP:
    if (x == R_GlobalEnv || x == R_BaseEnv || x == R_EmptyEnv ||
        x == R_BaseNamespace)
      return 1;
    /* R_IsNamespaceEnv() looks up `.__NAMESPACE__.`; never let it call an
     * active binding of that name. */
    if (R_existsVarInFrame(x, R_NamespaceEnvSymbol) &&
        !R_BindingIsActive(R_NamespaceEnvSymbol, x) && R_IsNamespaceEnv(x))
      return 1;
    return R_IsPackageEnv(x) || on_search_path(x);
  default:
    return 0;
  }
}

/* ---- children ---------------------------------------------------------- */

/* Children are numbered: 0 is the attribute pairlist, then the type's own
 * references. child_at() returns NULL for a slot that holds no node. */
static R_xlen_t nchildren(SEXP x) {
  int t = TYPEOF(x);
  if (ALTREP(x)) return 3;
  switch (t) {
  case NILSXP: case SYMSXP: case CHARSXP: case SPECIALSXP: case BUILTINSXP:
    return 0;
  case LISTSXP: case LANGSXP: case DOTSXP: case BCODESXP:
  case CLOSXP: case ENVSXP: case PROMSXP:
    return 4;
  case EXTPTRSXP:
    return 3;
  case WEAKREFSXP:
    return 4;             /* attrib, key, value, finalizer (not the next link) */
  case STRSXP: case VECSXP: case EXPRSXP:
    return 1 + XLENGTH(x);
  default:
    return 1;             /* atomic vectors, S4 objects: attributes only */
  }
}

static SEXP child_at(SEXP x, R_xlen_t i) {
  if (i == 0) return mk_attrib(x);
  if (ALTREP(x)) return i == 1 ? R_altrep_data1(x) : R_altrep_data2(x);
  switch (TYPEOF(x)) {
  case LISTSXP: case LANGSXP: case DOTSXP: case BCODESXP: case PROMSXP:
    /* A binding cell (or, from R 4.5, an evaluated promise) may hold an
     * immediate value in its first field: not a node. */
    if (i == 1) return mk_cell_immediate(x) ? NULL : mk_field1(x);
    return i == 2 ? mk_field2(x) : mk_field3(x);
  case CLOSXP:
    return i == 1 ? mk_closure_formals(x) : i == 2 ? mk_closure_body(x) : mk_closure_env(x);
  case ENVSXP:
    return i == 1 ? mk_env_frame(x) : i == 2 ? mk_env_parent(x) : mk_env_hashtab(x);
  case EXTPTRSXP:
    return i == 1 ? R_ExternalPtrProtected(x) : R_ExternalPtrTag(x);
  case WEAKREFSXP:
    return VECTOR_ELT(x, i - 1);
  case STRSXP:
    return ((const SEXP *) DATAPTR_RO(x))[i - 1]; /* NULL in a deferred string's cache */
  case VECSXP: case EXPRSXP:
    return ((const SEXP *) DATAPTR_RO(x))[i - 1];
  default:
    return NULL;
  }
}

void mk_node_children(SEXP x, mk_visit_fn visit, void *data) {
  if (TYPEOF(x) == CHARSXP) return;   /* its attrib links R's string cache */
  R_xlen_t n = nchildren(x);
  for (R_xlen_t i = 0; i < n; i++) {
    SEXP c = child_at(x, i);
    if (c != NULL) visit(c, data);
  }
}

/* ---- pointer set ------------------------------------------------------- */

/* Open addressing with linear probing. The capacity grows by half when the
 * set is 3/4 full, so it holds between 1.33 and 2 slots (10.7 to 16 bytes)
 * per member; any capacity works because a slot is picked by multiplying a
 * 32-bit hash by the capacity (Lemire's range reduction). */
struct mk_ptrset {
  SEXP *slots;
  size_t cap, n, limit;
};

#define PTRSET_MAX_CAP ((size_t) 0xFFFFFFFFu)

static inline size_t ptr_slot(SEXP x, size_t cap) {
  uint64_t h = ((uint64_t) (uintptr_t) x >> 3) * UINT64_C(0x9E3779B97F4A7C15);
  return (size_t) (((h >> 32) * (uint64_t) cap) >> 32);
}

static int ptrset_alloc(mk_ptrset *s, size_t cap) {
  SEXP *slots = calloc(cap, sizeof(SEXP));
  if (slots == NULL) return -1;
  s->slots = slots;
  s->cap = cap;
  s->limit = cap / 4 * 3;
  return 0;
}

mk_ptrset *mk_ptrset_new(size_t hint) {
  mk_ptrset *s = malloc(sizeof(mk_ptrset));
  if (s == NULL) return NULL;
  size_t cap = 64;
  while (cap / 4 * 3 < hint && cap < PTRSET_MAX_CAP / 2) cap *= 2;
  s->n = 0;
  if (ptrset_alloc(s, cap) != 0) {
    free(s);
    return NULL;
  }
  return s;
}

static int ptrset_grow(mk_ptrset *s) {
  if (s->cap >= PTRSET_MAX_CAP) return -1;
  size_t cap = s->cap + s->cap / 2;
  if (cap > PTRSET_MAX_CAP) cap = PTRSET_MAX_CAP;
  SEXP *old = s->slots;
  size_t oldcap = s->cap;
  if (ptrset_alloc(s, cap) != 0) return -1;
  for (size_t i = 0; i < oldcap; i++) {
    SEXP x = old[i];
    if (x == NULL) continue;
    size_t j = ptr_slot(x, cap);
    while (s->slots[j] != NULL) if (++j == cap) j = 0;
    s->slots[j] = x;
  }
  free(old);
  return 0;
}

int mk_ptrset_add(mk_ptrset *s, SEXP x) {
  size_t cap = s->cap, i = ptr_slot(x, cap);
  SEXP *slots = s->slots;
  for (;;) {
    SEXP y = slots[i];
    if (y == x) return 0;
    if (y == NULL) break;
    if (++i == cap) i = 0;
  }
  if (s->n >= s->limit) {
    if (ptrset_grow(s) != 0) return -1;
    cap = s->cap;
    i = ptr_slot(x, cap);
    while (s->slots[i] != NULL) if (++i == cap) i = 0;
  }
  s->slots[i] = x;
  s->n++;
  return 1;
}

int mk_ptrset_has(const mk_ptrset *s, SEXP x) {
  size_t cap = s->cap, i = ptr_slot(x, cap);
  for (;;) {
    SEXP y = s->slots[i];
    if (y == x) return 1;
    if (y == NULL) return 0;
    if (++i == cap) i = 0;
  }
}

size_t mk_ptrset_size(const mk_ptrset *s) { return s->n; }
size_t mk_ptrset_bytes(const mk_ptrset *s) { return s->cap * sizeof(SEXP) + sizeof(mk_ptrset); }

void mk_ptrset_free(mk_ptrset *s) {
  if (s == NULL) return;
  free(s->slots);
  free(s);
}

/* ---- the walker -------------------------------------------------------- */

/* One stack frame per node whose children are being visited; the stack
 * grows with the depth of the graph, never with its breadth. */
typedef struct { SEXP x; R_xlen_t i, n; } frame;

struct mk_walker {
  mk_ptrset *seen;
  frame *stack;
  size_t cap, peak;
  double nodes;               /* nodes counted, for interrupt checks */
};

mk_walker *mk_walker_new(size_t hint) {
  mk_walker *w = malloc(sizeof(mk_walker));
  if (w == NULL) return NULL;
  w->seen = mk_ptrset_new(hint);
  w->cap = 64;
  w->stack = malloc(w->cap * sizeof(frame));
  w->peak = 0;
  w->nodes = 0;
  if (w->seen == NULL || w->stack == NULL) {
    mk_ptrset_free(w->seen);
    free(w->stack);
    free(w);
    return NULL;
  }
  return w;
}

mk_ptrset *mk_walker_seen(mk_walker *w) { return w->seen; }

void mk_walker_free(mk_walker *w) {
  if (w == NULL) return;
  mk_ptrset_free(w->seen);
  free(w->stack);
  free(w);
}

static size_t walker_bytes(const mk_walker *w) {
  return mk_ptrset_bytes(w->seen) + w->cap * sizeof(frame) + sizeof(mk_walker);
}

static inline void add_cost(mk_cost *acc, const mk_cost *c) {
  acc->ncells += c->ncells;
  acc->vcells += c->vcells;
  acc->bytes += c->bytes;
}

/* Does x have children worth a stack frame? */
static inline int has_children(SEXP x) {
  int t = TYPEOF(x);
  if (t == CHARSXP) return 0;
  if (ALTREP(x)) return 1;
  switch (t) {
  case LGLSXP: case INTSXP: case REALSXP: case CPLXSXP: case RAWSXP: case S4SXP:
    return mk_attrib(x) != R_NilValue;
  default:
    return nchildren(x) > 0;
  }
}

typedef void (*node_hook)(void *data, SEXP x, const mk_cost *c);

/* The walk. `hook`, when given, sees every counted node. */
static int walk(mk_walker *w, SEXP root, mk_cost *out, node_hook hook, void *hdata) {
  mk_cost c;
  if (mk_is_global(root)) return 0;
  int rc = mk_ptrset_add(w->seen, root);
  if (rc < 0) return -1;
  if (rc == 0) return 0;
  mk_node_cost(root, &c);
  add_cost(out, &c);
  if (hook) hook(hdata, root, &c);
  if (!has_children(root)) return 0;

  size_t depth = 0;
  w->stack[depth++] = (frame) {root, 0, nchildren(root)};
  while (depth > 0) {
    frame *f = &w->stack[depth - 1];
    if (f->i >= f->n) {
      depth--;
      continue;
    }
    SEXP x = f->x;
    SEXP child;
    if (f->i > 0 && TYPEOF(x) == STRSXP && !ALTREP(x)) {
      /* Strings have no children: count them in a tight loop. Runs of the
       * same string (common in character columns) skip the set. */
      const SEXP *p = (const SEXP *) DATAPTR_RO(x);
      SEXP prev = NULL;
      for (R_xlen_t i = f->i - 1; i < f->n - 1; i++) {
        SEXP s = p[i];
        if (s == NULL || s == prev || s == NA_STRING || s == R_BlankString) continue;
        prev = s;
        rc = mk_ptrset_add(w->seen, s);
        if (rc < 0) return -1;
        if (rc == 0) continue;
        mk_node_cost(s, &c);
        add_cost(out, &c);
        if (hook) hook(hdata, s, &c);
      }
      depth--;
      w->nodes += (double) f->n;
      continue;
    }
    child = child_at(x, f->i++);
    if (child == NULL || mk_is_global(child)) continue;
    rc = mk_ptrset_add(w->seen, child);
    if (rc < 0) return -1;
    if (rc == 0) continue;
    mk_node_cost(child, &c);
    add_cost(out, &c);
    if (hook) hook(hdata, child, &c);
    if ((uint64_t) (w->nodes += 1) % (1u << 20) == 0) R_CheckUserInterrupt();
    if (!has_children(child)) continue;
    if (depth == w->cap) {
      size_t cap = w->cap * 2;
      frame *st = realloc(w->stack, cap * sizeof(frame));
      if (st == NULL) return -1;
      w->stack = st;
      w->cap = cap;
    }
    w->stack[depth++] = (frame) {child, 0, nchildren(child)};
    if (depth > w->peak) w->peak = depth;
  }
  return 0;
}

int mk_walker_add(mk_walker *w, SEXP x, mk_cost *out) {
  return walk(w, x, out, NULL, NULL);
}

/* ---- the layout check -------------------------------------------------- */

/* compat.h reads some node fields through a mirror of R's header. Check it
 * once against what the API reports, and refuse to walk if they differ. */
static int layout_checked = 0;

static void check_layout(void) {
  if (layout_checked) return;
  int nprot = 0;
  SEXP v = PROTECT(Rf_allocVector(INTSXP, 3)); nprot++;
  SEXP nm = PROTECT(Rf_allocVector(STRSXP, 3)); nprot++;
  Rf_setAttrib(v, R_NamesSymbol, nm);
  SEXP a = mk_attrib(v);
  int ok = TYPEOF(a) == LISTSXP && TAG(a) == R_NamesSymbol && CAR(a) == nm &&
    mk_vec_capacity(v) == 3;
  SEXP cl = PROTECT(Rf_lang3(Rf_install("function"), R_NilValue, R_NilValue)); nprot++;
  SEXP body = PROTECT(Rf_lang2(Rf_install("c"), R_NilValue)); nprot++;
  SETCADDR(cl, body);
  SEXP env = PROTECT(R_NewEnv(R_GlobalEnv, FALSE, 0)); nprot++;
  SEXP fun = PROTECT(Rf_eval(cl, env)); nprot++;
  ok = ok && TYPEOF(fun) == CLOSXP && mk_closure_body(fun) == R_ClosureExpr(fun) &&
    mk_closure_env(fun) == env && mk_env_parent(env) == R_GlobalEnv;
  Rf_defineVar(R_NamesSymbol, v, env);
  SEXP frame = mk_env_frame(env);
  ok = ok && TYPEOF(frame) == LISTSXP && CAR(frame) == v && TAG(frame) == R_NamesSymbol;
  UNPROTECT(nprot);
  if (!ok) {
    mk_error("internal", "this R's object layout is not the one memkit was written for; "
             "sizes are not available");
  }
  layout_checked = 1;
}

/* ---- entry points: mem_size(), mem_sizes(), mem_cells() ----------------- */

/* The walker is freed by R_ExecWithCleanup's cleanup on every exit, a
 * longjmp (an interrupt, an allocation error) included. */
typedef struct {
  SEXP objs;        /* a list of the objects to measure */
  int each;         /* 1: one walk per object; 0: one shared walk */
  mk_walker *w;
} sizes_call;

static void sizes_cleanup(void *data) {
  sizes_call *c = data;
  mk_walker_free(c->w);
  c->w = NULL;
}

static void oom(void) {
  mk_error("size", "not enough memory to walk the object graph");
}

static SEXP sizes_body(void *data) {
  sizes_call *c = data;
  R_xlen_t n = XLENGTH(c->objs);
  c->w = mk_walker_new(0);
  if (c->w == NULL) oom();
  if (c->each) {
    SEXP out = PROTECT(Rf_allocVector(REALSXP, n));
    for (R_xlen_t i = 0; i < n; i++) {
      mk_cost cost = {0, 0, 0};
      if (i > 0) {
        mk_walker_free(c->w);
        c->w = mk_walker_new(0);
        if (c->w == NULL) oom();
      }
      if (walk(c->w, VECTOR_ELT(c->objs, i), &cost, NULL, NULL) != 0) oom();
      REAL(out)[i] = cost.bytes;
    }
    UNPROTECT(1);
    return out;
  }
  mk_cost cost = {0, 0, 0};
  for (R_xlen_t i = 0; i < n; i++) {
    if (walk(c->w, VECTOR_ELT(c->objs, i), &cost, NULL, NULL) != 0) oom();
  }
  SEXP out = PROTECT(Rf_allocVector(REALSXP, 4));
  REAL(out)[0] = cost.ncells;
  REAL(out)[1] = cost.vcells;
  REAL(out)[2] = cost.bytes;
  REAL(out)[3] = (double) mk_ptrset_size(c->w->seen);
  UNPROTECT(1);
  return out;
}

static SEXP run_sizes(SEXP objs, int each) {
  if (TYPEOF(objs) != VECSXP) MK_INTERNAL_ERROR("objs must be a list");
  check_layout();
  sizes_call c = {objs, each, NULL};
  return R_ExecWithCleanup(sizes_body, &c, sizes_cleanup, &c);
}

/* c(ncells, vcells, bytes, nodes) of all objects together, shared nodes once. */
SEXP ffi_size_cells(SEXP objs) { return run_sizes(objs, 0); }

/* Bytes of each object on its own. */
SEXP ffi_size_each(SEXP objs) { return run_sizes(objs, 1); }

/* What a walk of the objects costs the walker itself: c(nodes, bytes of
 * the walker at the end (set, stack, struct), deepest stack in frames). */
static SEXP stats_body(void *data) {
  sizes_call *c = data;
  c->w = mk_walker_new(0);
  if (c->w == NULL) oom();
  mk_cost cost = {0, 0, 0};
  for (R_xlen_t i = 0; i < XLENGTH(c->objs); i++) {
    if (walk(c->w, VECTOR_ELT(c->objs, i), &cost, NULL, NULL) != 0) oom();
  }
  SEXP out = PROTECT(Rf_allocVector(REALSXP, 3));
  REAL(out)[0] = (double) mk_ptrset_size(c->w->seen);
  REAL(out)[1] = (double) walker_bytes(c->w);
  REAL(out)[2] = (double) c->w->peak;
  UNPROTECT(1);
  return out;
}

SEXP ffi_size_stats(SEXP objs) {
  if (TYPEOF(objs) != VECSXP) MK_INTERNAL_ERROR("objs must be a list");
  check_layout();
  sizes_call c = {objs, 0, NULL};
  return R_ExecWithCleanup(stats_body, &c, sizes_cleanup, &c);
}
