/*
 * walk.c: the object-graph walker (walk.h) over the R-object layer (robj.h).
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

#include "walk.h"
#include "utils.h"

/* ---- cost of one node -------------------------------------------------- */

const mk_cost mk_cell_cost = {1, 0, 56};

static double vecrecs(int t, R_xlen_t n) {
  switch (t) {
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

/* The cost of x, of type t, ALTREP or not: each asked of R once per node. */
static inline void node_cost(SEXP x, int t, int alt, mk_cost *out) {
  if (!is_vector_type(t) || alt) {
    *out = mk_cell_cost;
    return;
  }
  if (t == WEAKREFSXP) {      /* allocated as a list of 4 (R_MakeWeakRef) */
    vector_cost(4, out);
    return;
  }
  R_xlen_t n = (t == CHARSXP) ? XLENGTH(x) : mk_robj_capacity(x);
  vector_cost(vecrecs(t, n), out);
}

void mk_node_cost(SEXP x, mk_cost *out) {
  node_cost(x, TYPEOF(x), ALTREP(x), out);
}

static inline void add_cost(mk_cost *acc, const mk_cost *c) {
  acc->ncells += c->ncells;
  acc->vcells += c->vcells;
  acc->bytes += c->bytes;
}

/* ---- global nodes ------------------------------------------------------ */

static int on_search_path(SEXP env) {
  for (SEXP e = R_GlobalEnv; e != R_EmptyEnv && TYPEOF(e) == ENVSXP; e = mk_robj_env_parent(e)) {
    if (e == env) return 1;
  }
  return 0;
}

/* ScalarLogical() hands out three preserved, shared scalars: TRUE, FALSE, NA. */
static SEXP shared_lgl[3] = {NULL, NULL, NULL};

static int is_global_slow(SEXP x) {
  switch (TYPEOF(x)) {
  case CHARSXP:
    return x == NA_STRING || x == R_BlankString;
  case LGLSXP:
    if (shared_lgl[0] == NULL) {
      shared_lgl[0] = Rf_ScalarLogical(1);
      shared_lgl[1] = Rf_ScalarLogical(0);
      shared_lgl[2] = Rf_ScalarLogical(NA_LOGICAL);
    }
    return x == shared_lgl[0] || x == shared_lgl[1] || x == shared_lgl[2];
  case ENVSXP:
    if (x == R_GlobalEnv || x == R_BaseEnv || x == R_EmptyEnv || x == R_BaseNamespace)
      return 1;
    /* The search path first: it also holds user databases (attach()ed
     * object tables), whose lookups would run R code. */
    return on_search_path(x) || R_IsPackageEnv(x) || mk_robj_is_namespace(x);
  default:
    return 0;
  }
}

/* By type: 1 always global, 2 global for some nodes, 0 never. */
static const unsigned char global_kind[32] = {
  [NILSXP] = 1, [SYMSXP] = 1, [SPECIALSXP] = 1, [BUILTINSXP] = 1,
  [CHARSXP] = 2, [LGLSXP] = 2, [ENVSXP] = 2
};

static inline int is_global(SEXP x) {
  int k = global_kind[TYPEOF(x) & 31];
  return k == 1 || (k == 2 && is_global_slow(x));
}

int mk_is_global(SEXP x) { return is_global(x); }

/* ---- edges ------------------------------------------------------------- */

static inline void edge(mk_edge_fn fn, void *data, SEXP child, int kind, SEXP name,
                        double index, int note) {
  if (child == NULL || child == R_NilValue) return;
  mk_edge e = {child, kind, name, index, note};
  fn(&e, data);
}

typedef struct { mk_edge_fn fn; void *data; int s4; } attr_ctx;

static void attr_edge(SEXP tag, SEXP value, void *data) {
  attr_ctx *a = data;
  SEXP nm = TYPEOF(tag) == SYMSXP ? PRINTNAME(tag) : NULL;
  int kind = (a->s4 && tag != R_ClassSymbol) ? MK_EDGE_SLOT : MK_EDGE_ATTR;
  edge(a->fn, a->data, value, kind, nm, 0, 0);
}

typedef struct {
  mk_edge_fn fn; void *data;
  mk_cost *owned;
  const mk_edge_opts *opts;
  SEXP env;
} bind_ctx;

static void binding_edges(const mk_binding *b, mk_edge_fn fn, void *data, mk_cost *owned) {
  SEXP nm = PRINTNAME(b->sym);
  switch (b->kind) {
  case MK_BIND_VALUE:
  case MK_BIND_ACTIVE:
    edge(fn, data, b->value, MK_EDGE_BINDING, nm, 0, b->kind);
    break;
  case MK_BIND_DELAYED:
  case MK_BIND_FORCED:
    if (b->promise != NULL) {
      edge(fn, data, b->promise, MK_EDGE_BINDING, nm, 0, b->kind);
      break;
    }
    /* The API hides the promise node: count it here, follow its parts. */
    if (owned) add_cost(owned, &mk_cell_cost);
    if (b->kind == MK_BIND_FORCED) {
      edge(fn, data, b->value, MK_EDGE_BINDING, nm, 0, b->kind);
      edge(fn, data, b->expr, MK_EDGE_CODE, nm, 0, 0);
    } else {
      edge(fn, data, b->expr, MK_EDGE_BINDING, nm, 0, b->kind);
      edge(fn, data, b->env, MK_EDGE_ENV, nm, 0, 0);
    }
    break;
  default:
    break;
  }
}

static void bind_edge(const mk_binding *b, void *data) {
  bind_ctx *c = data;
  if (c->opts && c->opts->skip && c->env == c->opts->skip_env &&
      c->opts->skip(b->sym, c->opts->skip_data))
    return;
  /* The binding cell is this environment's alone (none for base, which
   * keeps its bindings in symbols). */
  if (c->owned && c->env != R_BaseEnv && c->env != R_BaseNamespace)
    add_cost(c->owned, &mk_cell_cost);
  binding_edges(b, c->fn, c->data, c->owned);
}

/* Names of list elements that are unique, non-empty and not NA (strings are
 * cached, so equal names are the same CHARSXP). */
static SEXP element_name(SEXP names, R_xlen_t i, mk_ptrset *dup) {
  if (names == NULL) return NULL;
  SEXP s = STRING_ELT(names, i);
  if (s == NA_STRING || s == R_BlankString || CHAR(s)[0] == '\0') return NULL;
  if (dup != NULL && mk_ptrset_has(dup, s)) return NULL;
  return s;
}

static mk_ptrset *duplicated_names(SEXP names) {
  R_xlen_t n = XLENGTH(names);
  mk_ptrset *seen = mk_ptrset_new((size_t) n), *dup = mk_ptrset_new(0);
  if (seen == NULL || dup == NULL) {
    mk_ptrset_free(seen);
    mk_ptrset_free(dup);
    return NULL;
  }
  for (R_xlen_t i = 0; i < n; i++) {
    if (mk_ptrset_add(seen, STRING_ELT(names, i)) == 0) mk_ptrset_add(dup, STRING_ELT(names, i));
  }
  mk_ptrset_free(seen);
  return dup;
}

void mk_node_edges(SEXP x, const mk_edge_opts *opts, mk_edge_fn fn, void *data, mk_cost *owned) {
  int t = TYPEOF(x);
  if (t == CHARSXP) return;   /* its attrib links R's string cache */
  if (t == SYMSXP) {
    edge(fn, data, PRINTNAME(x), MK_EDGE_OTHER, NULL, 0, 0);
    return;
  }
  attr_ctx a = {fn, data, Rf_isS4(x)};
  int nattr = mk_robj_attrs(x, attr_edge, &a);
  if (owned) for (int i = 0; i < nattr; i++) add_cost(owned, &mk_cell_cost);
  if (ALTREP(x)) {
    edge(fn, data, R_altrep_data1(x), MK_EDGE_OTHER, NULL, 0, 0);
    edge(fn, data, R_altrep_data2(x), MK_EDGE_OTHER, NULL, 0, 0);
    return;
  }
  switch (t) {
  case LISTSXP: case LANGSXP: case DOTSXP: {
    SEXP tag = TAG(x);
    edge(fn, data, CAR(x), MK_EDGE_ELEMENT, TYPEOF(tag) == SYMSXP ? PRINTNAME(tag) : NULL, 0, 0);
    edge(fn, data, tag, MK_EDGE_OTHER, NULL, 0, 0);
    edge(fn, data, CDR(x), MK_EDGE_NEXT, NULL, 0, 0);
    break;
  }
  case BCODESXP:
    /* Code (an integer vector), constants (a list) and the expression. */
    edge(fn, data, CAR(x), MK_EDGE_OTHER, NULL, 0, 0);
    edge(fn, data, CDR(x), MK_EDGE_OTHER, NULL, 0, 0);
    edge(fn, data, TAG(x), MK_EDGE_OTHER, NULL, 0, 0);
    break;
  case PROMSXP: {
    SEXP expr, value, env;
    mk_robj_promise(x, &expr, &value, &env);
    edge(fn, data, value, MK_EDGE_VALUE, NULL, 0, 0);
    edge(fn, data, expr, MK_EDGE_CODE, NULL, 0, 0);
    edge(fn, data, env, MK_EDGE_ENV, NULL, 0, 0);
    break;
  }
  case CLOSXP:
    edge(fn, data, mk_robj_closure_formals(x), MK_EDGE_FORMALS, NULL, 0, 0);
    edge(fn, data, mk_robj_closure_body(x), MK_EDGE_BODY, NULL, 0, 0);
    edge(fn, data, mk_robj_closure_env(x), MK_EDGE_ENV, NULL, 0, 0);
    break;
  case ENVSXP: {
    if (x == R_EmptyEnv) break;
    bind_ctx c = {fn, data, owned, opts, x};
    mk_robj_bindings(x, bind_edge, &c);
    R_xlen_t nb = mk_robj_env_buckets(x);
    if (owned && nb > 0) {
      mk_cost tc;
      vector_cost(vecrecs(VECSXP, nb), &tc);
      add_cost(owned, &tc);
    }
    edge(fn, data, mk_robj_env_parent(x), MK_EDGE_PARENT, NULL, 0, 0);
    break;
  }
  case EXTPTRSXP:
    edge(fn, data, R_ExternalPtrProtected(x), MK_EDGE_OTHER, NULL, 0, 0);
    edge(fn, data, R_ExternalPtrTag(x), MK_EDGE_OTHER, NULL, 0, 0);
    break;
  case WEAKREFSXP:
    /* Key, value and finalizer; not the link to R's next weak reference. */
    for (R_xlen_t i = 0; i < 3 && i < XLENGTH(x); i++)
      edge(fn, data, VECTOR_ELT(x, i), MK_EDGE_WEAK, NULL, 0, 0);
    break;
  case STRSXP: case VECSXP: case EXPRSXP: {
    if (opts == NULL || !opts->elements) break;
    R_xlen_t n = XLENGTH(x);
    const SEXP *p = (const SEXP *) DATAPTR_RO(x);
    SEXP names = t == STRSXP ? R_NilValue : mk_robj_attr(x, R_NamesSymbol);
    /* A deferred string's elements would be created by reading them. */
    int use = TYPEOF(names) == STRSXP && !ALTREP(names) && XLENGTH(names) == n;
    mk_ptrset *dup = use ? duplicated_names(names) : NULL;
    for (R_xlen_t i = 0; i < n; i++) {
      /* NULL in a deferred string's cache: not expanded yet. */
      if (p[i] == NULL) continue;
      edge(fn, data, p[i], MK_EDGE_ELEMENT, use ? element_name(names, i, dup) : NULL,
           (double) i + 1, 0);
    }
    mk_ptrset_free(dup);
    break;
  }
  default:
    break;                    /* atomic vectors, S4 objects: attributes only */
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
  return (size_t) (((mk_ptr_hash(x) >> 32) * (uint64_t) cap) >> 32);
}

void mk_walk_oom(void) {
  mk_error("memory", "not enough memory to walk the object graph");
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

static int ptrset_rehash(mk_ptrset *s, size_t cap) {
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

static int ptrset_grow(mk_ptrset *s) {
  if (s->cap >= PTRSET_MAX_CAP) return -1;
  size_t cap = s->cap + s->cap / 2;
  if (cap > PTRSET_MAX_CAP) cap = PTRSET_MAX_CAP;
  return ptrset_rehash(s, cap);
}

/* Make room for `extra` more members in one step (a large list is about to
 * be walked) instead of growing by half many times over. */
static int ptrset_reserve(mk_ptrset *s, size_t extra) {
  size_t want = s->n + extra;
  if (want <= s->limit) return 0;
  size_t cap = want / 3 * 4 + 4;
  if (cap < s->cap + s->cap / 2) cap = s->cap + s->cap / 2;
  if (cap > PTRSET_MAX_CAP) {
    if (s->cap >= PTRSET_MAX_CAP) return 0; /* let add() report it */
    cap = PTRSET_MAX_CAP;
  }
  return ptrset_rehash(s, cap);
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

/* A frame is a node whose children are still to be visited: i < 0 for a
 * node to expand, i >= 0 for the next element of a list or character
 * vector. The stack grows with the depth of the graph and with the nodes
 * met but not yet expanded. */
typedef struct { SEXP x; R_xlen_t i; int path; } frame;

#define RECENT_SIZE 1024

struct mk_walker {
  mk_ptrset *seen;
  /* Strings seen lately, direct-mapped: a character column repeats a few
   * strings millions of times, and this check is cheaper than the set's. */
  SEXP recent[RECENT_SIZE];
  frame *stack;
  size_t cap, depth, peak;
  double nodes;
  mk_walk_opts o;
  mk_cost *out;
  int oom;
  /* Children met while expanding a node, pushed in reverse afterwards so
   * that the first is walked first. */
  frame *kids;
  size_t nkids, capkids;
  int parent_path, cur_path;
  /* Nodes reached only through weak references: a collection during the
   * walk (robj.h may allocate) could free them, so they are preserved. */
  SEXP *pins;
  size_t npins, cappins;
  mk_path *paths;
  size_t npaths, cappaths;
};

mk_walker *mk_walker_new(size_t hint) {
  mk_walker *w = calloc(1, sizeof(mk_walker));
  if (w == NULL) return NULL;
  w->seen = mk_ptrset_new(hint);
  w->cap = 64;
  w->stack = malloc(w->cap * sizeof(frame));
  w->parent_path = w->cur_path = -1;
  if (w->seen == NULL || w->stack == NULL) {
    mk_walker_free(w);
    return NULL;
  }
  return w;
}

void mk_walker_set(mk_walker *w, const mk_walk_opts *opts) {
  if (opts) w->o = *opts;
  else memset(&w->o, 0, sizeof w->o);
}

mk_ptrset *mk_walker_seen(mk_walker *w) { return w->seen; }
double mk_walker_nodes(const mk_walker *w) { return w->nodes; }
size_t mk_walker_peak(const mk_walker *w) { return w->peak; }
int mk_walker_path(const mk_walker *w) { return w->cur_path; }

const mk_path *mk_walker_paths(const mk_walker *w, size_t *n) {
  *n = w->npaths;
  return w->paths;
}

size_t mk_walker_bytes(const mk_walker *w) {
  return mk_ptrset_bytes(w->seen) + w->cap * sizeof(frame) + w->capkids * sizeof(frame) +
    w->cappaths * sizeof(mk_path) + sizeof(mk_walker);
}

void mk_walker_free(mk_walker *w) {
  if (w == NULL) return;
  for (size_t i = 0; i < w->npins; i++) R_ReleaseObject(w->pins[i]);
  mk_ptrset_free(w->seen);
  free(w->stack);
  free(w->kids);
  free(w->pins);
  free(w->paths);
  free(w);
}

static int push(mk_walker *w, SEXP x, R_xlen_t i, int path) {
  if (w->depth == w->cap) {
    frame *st = mk_grow(w->stack, &w->cap, sizeof *st, 0);
    if (st == NULL) return -1;
    w->stack = st;
  }
  w->stack[w->depth++] = (frame) {x, i, path};
  if (w->depth > w->peak) w->peak = w->depth;
  return 0;
}

static int add_path(mk_walker *w, int kind, SEXP name, double index) {
  if (w->npaths == w->cappaths) {
    mk_path *p = mk_grow(w->paths, &w->cappaths, sizeof *p, 256);
    if (p == NULL) return -1;
    w->paths = p;
  }
  if (w->npaths >= INT32_MAX) return -1;
  w->paths[w->npaths] = (mk_path) {w->parent_path, kind, name, index};
  return (int) w->npaths++;
}

static inline void count(mk_walker *w, SEXP x, int type, const mk_cost *c) {
  add_cost(w->out, c);
  if (w->o.hook) w->o.hook(w->o.hook_data, x, type, c);
}

/* Does x (of type t) have children worth a stack frame? */
static inline int has_children_t(const mk_walker *w, SEXP x, int t, int alt) {
  if (t == CHARSXP || t == NILSXP || t == SPECIALSXP || t == BUILTINSXP) return 0;
  if (t == SYMSXP) return w->o.follow_globals;
  if (alt) return 1;
  switch (t) {
  case LGLSXP: case INTSXP: case REALSXP: case CPLXSXP: case RAWSXP: case S4SXP:
    return mk_robj_has_attrs(x);
  case STRSXP: case VECSXP: case EXPRSXP:
    return XLENGTH(x) > 0 || mk_robj_has_attrs(x);
  default:
    return 1;
  }
}

/* Count x if it is new. Returns 2 if counted and it has children, 1 if
 * counted, 0 if global or seen, -1 when out of memory. */
static inline int visit(mk_walker *w, SEXP x) {
  if (x == R_NilValue) return 0;
  int t = TYPEOF(x);
  if (!w->o.follow_globals) {
    int k = global_kind[t & 31];
    if (k == 1 || (k == 2 && is_global_slow(x))) return 0;
  }
  int rc;
  if (w->o.enter) {
    rc = w->o.enter(x, w->o.enter_data);
  } else {
    rc = mk_ptrset_add(w->seen, x);
    if (rc == 0 && w->o.dups != NULL && mk_ptrset_add(w->o.dups, x) < 0) return -1;
  }
  if (rc <= 0) {
    if (rc == 0 && w->o.again) w->o.again(w->o.again_data, x, w->cur_path);
    return rc;
  }
  int alt = ALTREP(x);
  mk_cost c;
  node_cost(x, t, alt, &c);
  count(w, x, t, &c);
  if ((uint64_t) (w->nodes += 1) % (1u << 20) == 0) R_CheckUserInterrupt();
  return 1 + has_children_t(w, x, t, alt);
}

static void pin(mk_walker *w, SEXP x) {
  if (w->npins == w->cappins) {
    SEXP *p = mk_grow(w->pins, &w->cappins, sizeof *p, 16);
    if (p == NULL) {
      w->oom = 1;
      return;
    }
    w->pins = p;
  }
  R_PreserveObject(x);
  w->pins[w->npins++] = x;
}

static void kid_edge(const mk_edge *e, void *data) {
  mk_walker *w = data;
  if (w->oom) return;
  if (w->o.skip_parents && e->kind == MK_EDGE_PARENT) return;
  int path = -1;
  if (w->o.paths) {
    path = add_path(w, e->kind, e->name, e->index);
    if (path < 0) {
      w->oom = 1;
      return;
    }
  }
  w->cur_path = path;
  int rc = visit(w, e->child);
  if (rc < 0) w->oom = 1;
  if (rc <= 0) return;
  if (e->kind == MK_EDGE_WEAK) pin(w, e->child);
  if (rc < 2) return;
  if (w->nkids == w->capkids) {
    frame *k = mk_grow(w->kids, &w->capkids, sizeof *k, 64);
    if (k == NULL) {
      w->oom = 1;
      return;
    }
    w->kids = k;
  }
  w->kids[w->nkids++] = (frame) {e->child, -1, path};
}

static void owned_hook(mk_walker *w, const mk_cost *owned) {
  if (owned->ncells == 0) return;
  /* Binding and attribute cells are pairlist cells; a hash table (the one
   * owned node with Vcells) is a list. */
  int table = owned->vcells > 0;
  double ncells = owned->ncells - table;
  if (ncells > 0) {
    mk_cost cells = {ncells, 0, 56 * ncells};
    count(w, NULL, LISTSXP, &cells);
  }
  if (table) {
    mk_cost t = {1, owned->vcells, owned->bytes - 56 * ncells};
    count(w, NULL, VECSXP, &t);
  }
}

/* Expand x: visit its children and push those that have their own. */
static int expand(mk_walker *w, SEXP x, int path) {
  int t = TYPEOF(x);
  int list = (t == VECSXP || t == EXPRSXP || t == STRSXP) && !ALTREP(x);
  mk_edge_opts eo = w->o.edges;
  /* With paths, elements come as labelled edges; else the list loop below
   * reads them. */
  eo.elements = w->o.paths;
  mk_cost owned = {0, 0, 0};
  w->nkids = 0;
  w->parent_path = path;
  mk_node_edges(x, &eo, kid_edge, w, &owned);
  if (w->oom) return -1;
  if (w->o.owned && owned.ncells > 0) w->o.owned(w->o.owned_data, x, &owned);
  owned_hook(w, &owned);
  size_t n = w->nkids;
  if (list && !w->o.paths && XLENGTH(x) > 0 && push(w, x, 0, path) != 0) return -1;
  for (size_t j = n; j > 0; j--) {
    frame k = w->kids[j - 1];
    if (push(w, k.x, k.i, k.path) != 0) return -1;
  }
  return 0;
}

/* The elements of a list or character vector from element f->i on, in a
 * tight loop that prefetches ahead; stops at an element with children of
 * its own, which it pushes. Runs of the same string skip the set. */
static int walk_elements(mk_walker *w, frame *f) {
  SEXP x = f->x;
  const SEXP *p = (const SEXP *) DATAPTR_RO(x);
  R_xlen_t n = XLENGTH(x), i = f->i;
  if (TYPEOF(x) == STRSXP) {
    SEXP prev = NULL;
    for (; i < n; i++) {
      if (i + 8 < n && p[i + 8] != NULL) MK_PREFETCH(p[i + 8]);
      SEXP s = p[i];
      if (s == NULL || s == prev) continue;
      prev = s;
      /* The cache stands for the set: not with a custom enter(), which
       * may let a string in again on a later walk. */
      if (!w->o.enter) {
        SEXP *r = &w->recent[((uintptr_t) s >> 4) & (RECENT_SIZE - 1)];
        if (*r == s) continue;
        *r = s;
      }
      if (visit(w, s) < 0) return -1;
    }
    w->depth--;
    return 0;
  }
  if (i == 0 && !w->o.enter && ptrset_reserve(w->seen, (size_t) n) != 0) return -1;
  mk_ptrset *seen = w->seen;
  SEXP next = NULL;
  for (; i < n; i++) {
    /* Fetch nodes 32 ahead and their set slots 16 ahead. */
    if (i + 32 < n) MK_PREFETCH(p[i + 32]);
    if (i + 16 < n) MK_PREFETCH(&seen->slots[ptr_slot(p[i + 16], seen->cap)]);
    SEXP s = p[i];
    if (s == NULL) continue;
    int rc = visit(w, s);
    if (rc < 0) return -1;
    if (rc == 2) {
      next = s;
      i++;
      break;
    }
  }
  if (i >= n) w->depth--;
  else f->i = i;
  if (next != NULL && push(w, next, -1, -1) != 0) return -1;
  return 0;
}

static int walk(mk_walker *w, SEXP root, mk_cost *out) {
  w->out = out;
  w->oom = 0;
  w->parent_path = -1;
  if (w->o.paths) {
    int path = add_path(w, w->o.root_kind, w->o.root_name, 0);
    if (path < 0) return -1;
    w->cur_path = path;
  }
  int rc = visit(w, root);
  if (rc <= 0) return rc;
  if (rc < 2) return 0;
  w->depth = 0;
  if (push(w, root, -1, w->cur_path) != 0) return -1;
  while (w->depth > 0) {
    frame *f = &w->stack[w->depth - 1];
    if (f->i >= 0) {
      if (walk_elements(w, f) != 0) return -1;
      continue;
    }
    frame top = *f;
    w->depth--;
    if (expand(w, top.x, top.path) != 0) return -1;
  }
  return 0;
}

int mk_walker_add(mk_walker *w, SEXP x, mk_cost *out) {
  return walk(w, x, out);
}

int mk_walker_add_binding(mk_walker *w, const mk_binding *b, mk_cost *out) {
  if (b->promise == NULL && (b->kind == MK_BIND_DELAYED || b->kind == MK_BIND_FORCED)) {
    /* The promise node the API hides. */
    add_cost(out, &mk_cell_cost);
    if (w->o.hook) w->o.hook(w->o.hook_data, NULL, PROMSXP, &mk_cell_cost);
    if (walk(w, b->expr, out) != 0) return -1;
    if (b->env != NULL && walk(w, b->env, out) != 0) return -1;
    if (b->value != NULL && walk(w, b->value, out) != 0) return -1;
    return 0;
  }
  SEXP v = b->promise != NULL ? b->promise : b->value;
  return v == NULL ? 0 : walk(w, v, out);
}
