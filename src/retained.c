/*
 * retained.c: what removing bindings would free (mem_retained(), mem_ls(),
 * mem_rm()), duplicated vectors (mem_dupes()).
 *
 * Retained size is a question about the whole session: a node is freed by
 * the next full collection when no root reaches it. So we first mark every
 * node reachable from the roots without passing through the chosen bindings
 * (the marking goes INTO the global environment, namespaces and the search
 * path, which the size walker treats as opaque), then walk from the chosen
 * bindings' values with the size walker, which skips what is marked. The
 * bindings' own cells (the pairlist cells of the frame) are freed too: each
 * is one 56-byte node.
 *
 * Roots come from two places: R hands over what R code can see (the call
 * stack's frames, calls and functions, on.exit expressions, the search
 * path), and C adds the global, base and empty environments and the
 * namespace registry. The base environment keeps its bindings in the
 * symbols themselves, so it is enumerated by name (R_lsInternal3() and
 * findVarInFrame(), which never forces a promise there; active bindings are
 * checked first and never called).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "memkit.h"
#include "errors.h"
#include "compat.h"
#include "walk.h"
#include "utils.h"

/* ---- marking ------------------------------------------------------------ */

typedef struct {
  mk_ptrset *seen;        /* marked nodes */
  SEXP *stack;
  size_t n, cap;
  SEXP envir;             /* its bindings are handled by name */
  mk_ptrset *skip_syms;   /* bindings of envir that are not roots; NULL: all */
  int base_done;
  double count;
} marker;

static void oom(void) {
  mk_error("memory", "not enough memory to walk the session's objects");
}

#if defined(__GNUC__) || defined(__clang__)
# define PREFETCH(p) __builtin_prefetch(p)
#else
# define PREFETCH(p) ((void) 0)
#endif

/* Nodes with nothing to follow: marked, never stacked. */
static inline int is_leaf(SEXP x) {
  switch (TYPEOF(x)) {
  case CHARSXP:
    return 1;
  case LGLSXP: case INTSXP: case REALSXP: case CPLXSXP: case RAWSXP:
    return !ALTREP(x) && mk_attrib(x) == R_NilValue;
  default:
    return 0;
  }
}

static void mark_push(marker *m, SEXP x) {
  if (x == NULL || x == R_NilValue) return;
  int rc = mk_ptrset_add(m->seen, x);
  if (rc < 0) oom();
  if (rc == 0 || is_leaf(x)) return;
  if (m->n == m->cap) {
    SEXP *st = mk_grow(m->stack, &m->cap, sizeof *st, 1024);
    if (st == NULL) oom();
    m->stack = st;
  }
  m->stack[m->n++] = x;
}

static void mark_visit(SEXP child, void *data) { mark_push(data, child); }

static int skipped_binding(const marker *m, SEXP cell) {
  return m->skip_syms == NULL || mk_ptrset_has(m->skip_syms, TAG(cell));
}

/* A chain of binding cells of `envir`: the cells of bindings that are not
 * roots are neither marked nor followed (removing the binding frees them). */
static void mark_chain(marker *m, SEXP cell) {
  for (; cell != R_NilValue; cell = CDR(cell)) {
    if (skipped_binding(m, cell)) continue;
    if (mk_ptrset_add(m->seen, cell) < 0) oom();
    if (!mk_cell_immediate(cell)) mark_push(m, mk_field1(cell));
    mark_push(m, mk_attrib(cell));
  }
}

static void mark_envir(marker *m, SEXP env) {
  mark_push(m, mk_attrib(env));
  mark_push(m, mk_env_parent(env));
  mark_chain(m, mk_env_frame(env));
  SEXP ht = mk_env_hashtab(env);
  if (ht != R_NilValue) {
    /* The table itself stays; its chains are the bindings. */
    if (mk_ptrset_add(m->seen, ht) < 0) oom();
    R_xlen_t n = XLENGTH(ht);
    for (R_xlen_t i = 0; i < n; i++) mark_chain(m, VECTOR_ELT(ht, i));
  }
}

/* The base environment and base namespace keep their values in symbols. */
static void mark_base(marker *m) {
  if (m->base_done) return;
  m->base_done = 1;
  SEXP nms = PROTECT(R_lsInternal3(R_BaseEnv, TRUE, FALSE));
  R_xlen_t n = XLENGTH(nms);
  for (R_xlen_t i = 0; i < n; i++) {
    SEXP sym = Rf_installTrChar(STRING_ELT(nms, i));
    if (R_BindingIsActive(sym, R_BaseEnv)) {
      mark_push(m, R_ActiveBindingFunction(sym, R_BaseEnv));
    } else {
      SEXP v = Rf_findVarInFrame(R_BaseEnv, sym);
      if (v != R_UnboundValue) mark_push(m, v);
    }
  }
  UNPROTECT(1);
}

static void mark_all(marker *m) {
  while (m->n > 0) {
    SEXP x = m->stack[--m->n];
    if ((uint64_t) (m->count += 1) % (1u << 20) == 0) R_CheckUserInterrupt();
    switch (TYPEOF(x)) {
    case SYMSXP:
      /* Symbols are never freed, nor the strings that name them. Their
       * values are the base environment's bindings (mark_base). */
      mark_push(m, PRINTNAME(x));
      continue;
    case ENVSXP:
      if (x == m->envir) {
        mark_envir(m, x);
        continue;
      }
      if (x == R_BaseEnv || x == R_BaseNamespace) mark_base(m);
      break;
    case STRSXP:
    case VECSXP:
    case EXPRSXP:
      if (!ALTREP(x)) {
        /* Elements in a tight loop, fetching nodes ahead: the marking is
         * bound by memory latency. Unset slots of a deferred string's cache
         * are NULL. */
        mark_push(m, mk_attrib(x));
        const SEXP *p = (const SEXP *) DATAPTR_RO(x);
        R_xlen_t n = XLENGTH(x);
        for (R_xlen_t i = 0; i < n; i++) {
          if (i + 8 < n && p[i + 8] != NULL) PREFETCH(p[i + 8]);
          mark_push(m, p[i]);
        }
        continue;
      }
      break;
    default:
      break;
    }
    mk_node_children(x, mark_visit, m);
  }
}

static void mark_roots(marker *m, SEXP roots) {
  mark_push(m, R_GlobalEnv);
  mark_push(m, R_BaseEnv);
  mark_push(m, R_BaseNamespace);
  mark_push(m, R_EmptyEnv);
  mark_push(m, R_NamespaceRegistry);
  mark_push(m, roots);
  mark_all(m);
}

/* ---- the bindings of an environment ------------------------------------ */

/* Calls fn for every binding cell of env, in frame then hash-table order. */
typedef void (*cell_fn)(SEXP cell, void *data);

static void for_each_cell(SEXP env, cell_fn fn, void *data) {
  for (SEXP c = mk_env_frame(env); c != R_NilValue; c = CDR(c)) fn(c, data);
  SEXP ht = mk_env_hashtab(env);
  if (ht == R_NilValue) return;
  R_xlen_t n = XLENGTH(ht);
  for (R_xlen_t i = 0; i < n; i++) {
    for (SEXP c = VECTOR_ELT(ht, i); c != R_NilValue; c = CDR(c)) fn(c, data);
  }
}

/* The node a binding cell holds (the value, the promise, or the active
 * binding's function), or NULL for an immediate value, which is not a node. */
static SEXP cell_value(SEXP cell) {
  return mk_cell_immediate(cell) ? NULL : mk_field1(cell);
}

/* "value", "promise" (not yet forced: a promise's first field is its value,
 * unbound until then), "active", or "missing" (a function's argument given
 * no value and no default). A forced promise reads as a value: reading it
 * evaluates nothing. */
static const char *binding_kind(SEXP cell, SEXP env) {
  SEXP v = cell_value(cell);
  if (R_BindingIsActive(TAG(cell), env)) return "active";
  if (v == R_MissingArg) return "missing";
  if (v != NULL && TYPEOF(v) == PROMSXP && mk_field1(v) == R_UnboundValue) return "promise";
  return "value";
}

/* ---- mem_retained() ------------------------------------------------------ */

typedef struct {
  SEXP envir, syms, roots;
  marker m;
  mk_ptrset *syms_set;
  mk_walker *w;
  mk_cost cost;
} retained_call;

static void marker_free(marker *m) {
  free(m->stack);
  m->stack = NULL;
}

static void retained_cleanup(void *data, Rboolean jump) {
  (void) jump;
  retained_call *c = data;
  marker_free(&c->m);
  mk_walker_free(c->w);
  c->w = NULL;
  mk_ptrset_free(c->syms_set);
  c->syms_set = NULL;
}

static void count_named(SEXP cell, void *data) {
  retained_call *c = data;
  if (!mk_ptrset_has(c->syms_set, TAG(cell))) return;
  mk_cost cc;
  mk_node_cost(cell, &cc);
  c->cost.ncells += cc.ncells;
  c->cost.vcells += cc.vcells;
  c->cost.bytes += cc.bytes;
  SEXP v = cell_value(cell);
  if (v != NULL && mk_walker_add(c->w, v, &c->cost) != 0) oom();
}

static SEXP retained_body(void *data) {
  retained_call *c = data;
  R_xlen_t n = XLENGTH(c->syms);
  c->syms_set = mk_ptrset_new((size_t) n);
  c->w = mk_walker_new(1u << 19);
  if (c->syms_set == NULL || c->w == NULL) oom();
  for (R_xlen_t i = 0; i < n; i++) {
    if (mk_ptrset_add(c->syms_set, VECTOR_ELT(c->syms, i)) < 0) oom();
  }
  c->m.seen = mk_walker_seen(c->w);
  c->m.envir = c->envir;
  c->m.skip_syms = c->syms_set;
  mark_roots(&c->m, c->roots);
  for_each_cell(c->envir, count_named, c);
  SEXP out = PROTECT(Rf_allocVector(REALSXP, 4));
  REAL(out)[0] = c->cost.ncells;
  REAL(out)[1] = c->cost.vcells;
  REAL(out)[2] = c->cost.bytes;
  REAL(out)[3] = (double) mk_ptrset_size(c->m.seen);
  UNPROTECT(1);
  return out;
}

static SEXP names_to_syms(SEXP names) {
  R_xlen_t n = XLENGTH(names);
  SEXP syms = PROTECT(Rf_allocVector(VECSXP, n));
  for (R_xlen_t i = 0; i < n; i++) {
    SET_VECTOR_ELT(syms, i, Rf_installTrChar(STRING_ELT(names, i)));
  }
  UNPROTECT(1);
  return syms;
}

static void check_envir(SEXP envir) {
  if (TYPEOF(envir) != ENVSXP) MK_INTERNAL_ERROR("envir must be an environment");
  if (envir == R_BaseEnv || envir == R_BaseNamespace || envir == R_EmptyEnv) {
    mk_error("argument", "`envir` can't be the base or empty environment: "
             "their bindings can't be removed.");
  }
}

/* c(ncells, vcells, bytes, marked nodes) that removing `names` from envir
 * and a full collection would free. */
SEXP ffi_retained_size(SEXP envir, SEXP names, SEXP roots) {
  check_envir(envir);
  if (TYPEOF(names) != STRSXP) MK_INTERNAL_ERROR("names must be a character vector");
  int nprot = 0;
  SEXP syms = PROTECT(names_to_syms(names)); nprot++;
  retained_call c;
  memset(&c, 0, sizeof c);
  c.envir = envir;
  c.syms = syms;
  c.roots = roots;
  SEXP cont = PROTECT(R_MakeUnwindCont()); nprot++;
  SEXP out = R_UnwindProtect(retained_body, &c, retained_cleanup, &c, cont);
  UNPROTECT(nprot);
  return out;
}

/* ---- mem_ls(): every binding's retained size in one pass ----------------
 *
 * Mark from the roots with none of envir's bindings; what stays unmarked is
 * reachable only from the bindings. Walk from each binding in turn,
 * recording for every unmarked node the set of bindings that reach it. A
 * node reached by exactly one binding is retained by it; a node reached by
 * several is shared by them. The sets are interned as a trie (a set is its
 * largest member plus the set of the others), so a node stores one int.
 * Walks run in binding order, so a node already visited by the current walk
 * is one whose set's largest member is the current binding. */

typedef struct { SEXP key; int val; } map_slot;

typedef struct {
  map_slot *slots;
  size_t cap, n;
} ptrmap;

static inline size_t map_slot_of(SEXP x, size_t cap) {
  uint64_t h = ((uint64_t) (uintptr_t) x >> 3) * UINT64_C(0x9E3779B97F4A7C15);
  return (size_t) (h >> 32) & (cap - 1);   /* cap is a power of two */
}

static int map_init(ptrmap *m, size_t cap) {
  m->slots = calloc(cap, sizeof(map_slot));
  if (m->slots == NULL) return -1;
  m->cap = cap;
  m->n = 0;
  return 0;
}

/* The slot for x: its value if present, else an empty slot to fill. */
static map_slot *map_find(ptrmap *m, SEXP x) {
  size_t i = map_slot_of(x, m->cap);
  while (m->slots[i].key != NULL && m->slots[i].key != x) i = (i + 1) & (m->cap - 1);
  return &m->slots[i];
}

static int map_grow(ptrmap *m) {
  ptrmap bigger;
  if (map_init(&bigger, m->cap * 2) != 0) return -1;
  for (size_t i = 0; i < m->cap; i++) {
    if (m->slots[i].key == NULL) continue;
    *map_find(&bigger, m->slots[i].key) = m->slots[i];
  }
  bigger.n = m->n;
  free(m->slots);
  *m = bigger;
  return 0;
}

typedef struct {
  int *parent, *last;        /* set = parent set + {last}; set 0 is empty */
  int *trans_walk, *trans_to;/* this walk's transition from a set */
  int n, cap;
} setpool;

static int pool_add(setpool *p, int parent, int last) {
  if (p->n == p->cap) {
    int cap = p->cap ? 2 * p->cap : 256;
    int *a = realloc(p->parent, (size_t) cap * sizeof(int));
    if (a == NULL) return -1;
    p->parent = a;
    a = realloc(p->last, (size_t) cap * sizeof(int));
    if (a == NULL) return -1;
    p->last = a;
    a = realloc(p->trans_walk, (size_t) cap * sizeof(int));
    if (a == NULL) return -1;
    p->trans_walk = a;
    a = realloc(p->trans_to, (size_t) cap * sizeof(int));
    if (a == NULL) return -1;
    p->trans_to = a;
    p->cap = cap;
  }
  p->parent[p->n] = parent;
  p->last[p->n] = last;
  p->trans_walk[p->n] = -1;
  p->trans_to[p->n] = 0;
  return p->n++;
}

/* The set s + {walk}. */
static int pool_extend(setpool *p, int s, int walk) {
  if (p->trans_walk[s] == walk) return p->trans_to[s];
  int t = pool_add(p, s, walk);
  if (t < 0) return -1;
  p->trans_walk[s] = walk;
  p->trans_to[s] = t;
  return t;
}

typedef struct {
  SEXP envir, roots;
  marker m;
  mk_walker *w;          /* owns the marked set */
  mk_walker *sw;         /* the per-binding size walks */
  ptrmap map;
  setpool pool;
  SEXP *cells;
  int ncells, capcells;
  SEXP *stack;
  size_t sn, scap;
  int walk;
  int *used;
} ls_call;

static void ls_cleanup(void *data, Rboolean jump) {
  (void) jump;
  ls_call *c = data;
  marker_free(&c->m);
  mk_walker_free(c->w);
  mk_walker_free(c->sw);
  c->w = c->sw = NULL;
  free(c->map.slots);
  free(c->pool.parent);
  free(c->pool.last);
  free(c->pool.trans_walk);
  free(c->pool.trans_to);
  free(c->cells);
  free(c->stack);
  free(c->used);
  c->used = NULL;
  memset(&c->map, 0, sizeof c->map);
  memset(&c->pool, 0, sizeof c->pool);
  c->cells = NULL;
  c->stack = NULL;
}

static void collect_cell(SEXP cell, void *data) {
  ls_call *c = data;
  if (c->ncells == c->capcells) {
    int cap = c->capcells ? 2 * c->capcells : 64;
    SEXP *a = realloc(c->cells, (size_t) cap * sizeof(SEXP));
    if (a == NULL) oom();
    c->cells = a;
    c->capcells = cap;
  }
  c->cells[c->ncells++] = cell;
}

static void ls_push(ls_call *c, SEXP x) {
  if (c->sn == c->scap) {
    SEXP *st = mk_grow(c->stack, &c->scap, sizeof *st, 1024);
    if (st == NULL) oom();
    c->stack = st;
  }
  c->stack[c->sn++] = x;
}

/* Visit a node in the current walk: record that this binding reaches it and
 * push it if the walk has not been here yet. */
static void ls_visit(SEXP x, void *data) {
  ls_call *c = data;
  if (x == NULL || mk_ptrset_has(c->m.seen, x) || mk_is_global(x)) return;
  if ((c->map.n + 1) * 4 > c->map.cap * 3 && map_grow(&c->map) != 0) oom();
  map_slot *s = map_find(&c->map, x);
  int set;
  if (s->key == NULL) {
    set = pool_extend(&c->pool, 0, c->walk);
    if (set < 0) oom();
    s->key = x;
    s->val = set;
    c->map.n++;
  } else {
    if (c->pool.last[s->val] == c->walk) return;
    set = pool_extend(&c->pool, s->val, c->walk);
    if (set < 0) oom();
    s->val = set;
  }
  ls_push(c, x);
}

static void ls_walk(ls_call *c, SEXP root) {
  ls_visit(root, c);
  double count = 0;
  while (c->sn > 0) {
    SEXP x = c->stack[--c->sn];
    if ((uint64_t) (count += 1) % (1u << 20) == 0) R_CheckUserInterrupt();
    mk_node_children(x, ls_visit, c);
  }
}

static SEXP ls_body(void *data) {
  ls_call *c = data;
  int nprot = 0;
  c->w = mk_walker_new(1u << 19);
  if (c->w == NULL) oom();
  c->m.seen = mk_walker_seen(c->w);
  c->m.envir = c->envir;
  c->m.skip_syms = NULL;        /* none of envir's bindings is a root */
  mark_roots(&c->m, c->roots);
  double marked = (double) mk_ptrset_size(c->m.seen);

  for_each_cell(c->envir, collect_cell, c);
  int n = c->ncells;
  if (map_init(&c->map, 1u << 12) != 0 || pool_add(&c->pool, 0, -1) < 0) oom();

  SEXP names = PROTECT(Rf_allocVector(STRSXP, n)); nprot++;
  SEXP kind = PROTECT(Rf_allocVector(STRSXP, n)); nprot++;
  SEXP size = PROTECT(Rf_allocVector(REALSXP, n)); nprot++;
  SEXP ret = PROTECT(Rf_allocMatrix(REALSXP, n, 3)); nprot++;
  double *r = REAL(ret);
  memset(r, 0, sizeof(double) * 3 * (size_t) n);
  mk_cost total_size = {0, 0, 0};
  mk_cost total_ret = {0, 0, 0};

  c->sw = mk_walker_new(0);
  if (c->sw == NULL) oom();
  for (int i = 0; i < n; i++) {
    SEXP cell = c->cells[i];
    SEXP sym = TAG(cell);
    SEXP v = cell_value(cell);
    SET_STRING_ELT(names, i, PRINTNAME(sym));
    const char *k = binding_kind(cell, c->envir);
    SET_STRING_ELT(kind, i, Rf_mkChar(k));
    /* The binding cell is this binding's alone. */
    mk_cost cc;
    mk_node_cost(cell, &cc);
    r[i] += cc.ncells;
    r[i + n] += cc.vcells;
    r[i + 2 * n] += cc.bytes;
    total_ret.ncells += cc.ncells;
    total_ret.vcells += cc.vcells;
    total_ret.bytes += cc.bytes;
    if (v == NULL) {
      REAL(size)[i] = 0;
      continue;
    }
    /* Its own size, as mem_size() gives it. */
    mk_cost sc = {0, 0, 0};
    mk_walker_free(c->sw);
    c->sw = mk_walker_new(0);
    if (c->sw == NULL || mk_walker_add(c->sw, v, &sc) != 0) oom();
    REAL(size)[i] = sc.bytes;
    c->walk = i;
    ls_walk(c, v);
  }
  /* The combined size of all bindings, shared memory once. */
  mk_walker_free(c->sw);
  c->sw = mk_walker_new(0);
  if (c->sw == NULL) oom();
  for (int i = 0; i < n; i++) {
    SEXP v = cell_value(c->cells[i]);
    if (v != NULL && mk_walker_add(c->sw, v, &total_size) != 0) oom();
  }

  /* Sum retained costs; note which shared sets occur. */
  c->used = calloc((size_t) c->pool.n, sizeof(int));
  if (c->used == NULL) oom();
  for (size_t j = 0; j < c->map.cap; j++) {
    map_slot *s = &c->map.slots[j];
    if (s->key == NULL) continue;
    mk_cost cc;
    mk_node_cost(s->key, &cc);
    total_ret.ncells += cc.ncells;
    total_ret.vcells += cc.vcells;
    total_ret.bytes += cc.bytes;
    if (c->pool.parent[s->val] == 0) {
      int i = c->pool.last[s->val];
      r[i] += cc.ncells;
      r[i + n] += cc.vcells;
      r[i + 2 * n] += cc.bytes;
    } else {
      c->used[s->val] = 1;
    }
  }
  int nshared = 0;
  for (int s = 0; s < c->pool.n; s++) nshared += c->used[s];
  SEXP shared = PROTECT(Rf_allocVector(VECSXP, nshared)); nprot++;
  for (int s = 0, j = 0; s < c->pool.n; s++) {
    if (!c->used[s]) continue;
    int len = 0;
    for (int t = s; t != 0; t = c->pool.parent[t]) len++;
    SEXP members = Rf_allocVector(INTSXP, len);
    SET_VECTOR_ELT(shared, j++, members);
    int *mm = INTEGER(members);
    for (int t = s; t != 0; t = c->pool.parent[t]) mm[--len] = c->pool.last[t] + 1;
  }

  SEXP totals = PROTECT(Rf_allocVector(REALSXP, 7)); nprot++;
  REAL(totals)[0] = total_size.bytes;
  REAL(totals)[1] = total_ret.ncells;
  REAL(totals)[2] = total_ret.vcells;
  REAL(totals)[3] = total_ret.bytes;
  REAL(totals)[4] = marked;
  REAL(totals)[5] = (double) c->map.n;
  REAL(totals)[6] = (double) (mk_ptrset_bytes(c->m.seen) + c->m.cap * sizeof(SEXP) +
                              c->map.cap * sizeof(map_slot) +
                              (size_t) c->pool.cap * 4 * sizeof(int) + c->scap * sizeof(SEXP));

  SEXP out = PROTECT(Rf_allocVector(VECSXP, 6)); nprot++;
  SET_VECTOR_ELT(out, 0, names);
  SET_VECTOR_ELT(out, 1, kind);
  SET_VECTOR_ELT(out, 2, size);
  SET_VECTOR_ELT(out, 3, ret);
  SET_VECTOR_ELT(out, 4, shared);
  SET_VECTOR_ELT(out, 5, totals);
  UNPROTECT(nprot);
  return out;
}

/* list(names, kind, size, retained (n x 3: ncells, vcells, bytes),
 *      shared sets (binding numbers), totals) for every binding of envir. */
SEXP ffi_retained_ls(SEXP envir, SEXP roots) {
  check_envir(envir);
  int nprot = 0;
  ls_call c;
  memset(&c, 0, sizeof c);
  c.envir = envir;
  c.roots = roots;
  SEXP cont = PROTECT(R_MakeUnwindCont()); nprot++;
  SEXP out = R_UnwindProtect(ls_body, &c, ls_cleanup, &c, cont);
  UNPROTECT(nprot);
  return out;
}

/* ---- the kind of each binding (mem_dupes() walks environments) ----------- */

typedef struct { SEXP names, kind; R_xlen_t i; SEXP envir; } kinds_call;

static void count_cell(SEXP cell, void *data) { (void) cell; ((kinds_call *) data)->i++; }

static void kind_cell(SEXP cell, void *data) {
  kinds_call *c = data;
  const char *k = binding_kind(cell, c->envir);
  SET_STRING_ELT(c->names, c->i, PRINTNAME(TAG(cell)));
  SET_STRING_ELT(c->kind, c->i, Rf_mkChar(k));
  c->i++;
}

/* list(names, kind), kind as binding_kind() says. The base environment has
 * no cells to read: empty result. */
SEXP ffi_session_bindings(SEXP envir) {
  if (TYPEOF(envir) != ENVSXP) MK_INTERNAL_ERROR("envir must be an environment");
  int nprot = 0;
  kinds_call c = {R_NilValue, R_NilValue, 0, envir};
  if (envir != R_BaseEnv && envir != R_BaseNamespace) for_each_cell(envir, count_cell, &c);
  R_xlen_t n = c.i;
  c.names = PROTECT(Rf_allocVector(STRSXP, n)); nprot++;
  c.kind = PROTECT(Rf_allocVector(STRSXP, n)); nprot++;
  c.i = 0;
  if (n > 0) for_each_cell(envir, kind_cell, &c);
  SEXP out = PROTECT(Rf_allocVector(VECSXP, 2)); nprot++;
  SET_VECTOR_ELT(out, 0, c.names);
  SET_VECTOR_ELT(out, 1, c.kind);
  UNPROTECT(nprot);
  return out;
}

/* ---- mem_dupes(): group vectors by content --------------------------------
 *
 * 64-bit FNV-1a over the type, length and data of each vector (for a
 * character vector, the string pointers: R caches strings, so equal strings
 * in the same encoding are the same CHARSXP). Vectors are sorted by hash and
 * each run of equal hashes is split by memcmp(), so a collision never joins
 * two different vectors. ALTREP vectors are not read (that could expand
 * them) and get no group. */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= UINT64_C(0x100000001B3);
  }
  return h;
}

static size_t data_bytes(SEXP x) {
  R_xlen_t n = XLENGTH(x);
  switch (TYPEOF(x)) {
  case LGLSXP: case INTSXP: return (size_t) n * sizeof(int);
  case REALSXP: return (size_t) n * sizeof(double);
  case CPLXSXP: return (size_t) n * sizeof(Rcomplex);
  case RAWSXP: return (size_t) n;
  case STRSXP: return (size_t) n * sizeof(SEXP);
  default: return 0;
  }
}

static int hashable(SEXP x) {
  switch (TYPEOF(x)) {
  case LGLSXP: case INTSXP: case REALSXP: case CPLXSXP: case RAWSXP: case STRSXP:
    return !ALTREP(x);
  default:
    return 0;
  }
}

typedef struct { uint64_t h; uintptr_t p; int i; } hashed;

/* By hash, then by address (the same vector listed twice is adjacent),
 * then by position. */
static int cmp_hashed(const void *a, const void *b) {
  const hashed *x = a, *y = b;
  if (x->h != y->h) return x->h < y->h ? -1 : 1;
  if (x->p != y->p) return x->p < y->p ? -1 : 1;
  return (x->i > y->i) - (x->i < y->i);
}

static int same_data(SEXP a, SEXP b) {
  if (TYPEOF(a) != TYPEOF(b) || XLENGTH(a) != XLENGTH(b)) return 0;
  size_t n = data_bytes(a);
  return n == 0 || memcmp(DATAPTR_RO(a), DATAPTR_RO(b), n) == 0;
}

/* list(group, bytes, object) for a list of vectors: group is the same
 * positive number for vectors with identical type, length and data, NA for
 * vectors not hashed; bytes is each vector's footprint; object is the
 * position of the first element that is the very same vector (so copies
 * stored separately have different numbers). */
SEXP ffi_retained_hash(SEXP vecs) {
  if (TYPEOF(vecs) != VECSXP) MK_INTERNAL_ERROR("vecs must be a list");
  int nprot = 0;
  R_xlen_t n = XLENGTH(vecs);
  SEXP group = PROTECT(Rf_allocVector(INTSXP, n)); nprot++;
  SEXP bytes = PROTECT(Rf_allocVector(REALSXP, n)); nprot++;
  SEXP object = PROTECT(Rf_allocVector(INTSXP, n)); nprot++;
  SEXP out = PROTECT(Rf_allocVector(VECSXP, 3)); nprot++;
  SET_VECTOR_ELT(out, 0, group);
  SET_VECTOR_ELT(out, 1, bytes);
  SET_VECTOR_ELT(out, 2, object);
  int *g = INTEGER(group);
  int *obj = INTEGER(object);
  /* Nothing below allocates on R's heap or can longjmp, so the buffer is
   * freed on every path. */
  hashed *hs = malloc((size_t) (n > 0 ? n : 1) * sizeof(hashed));
  if (hs == NULL) mk_error("memory", "not enough memory to hash %.0f vectors", (double) n);
  R_xlen_t m = 0;
  for (R_xlen_t i = 0; i < n; i++) {
    SEXP x = VECTOR_ELT(vecs, i);
    mk_cost cc;
    mk_node_cost(x, &cc);
    REAL(bytes)[i] = cc.bytes;
    g[i] = NA_INTEGER;
    obj[i] = (int) i + 1;
    if (!hashable(x)) continue;
    uint64_t h = UINT64_C(0xCBF29CE484222325);
    int t = TYPEOF(x);
    R_xlen_t len = XLENGTH(x);
    h = fnv1a(h, &t, sizeof t);
    h = fnv1a(h, &len, sizeof len);
    h = fnv1a(h, DATAPTR_RO(x), data_bytes(x));
    hs[m].h = h;
    hs[m].p = (uintptr_t) x;
    hs[m].i = (int) i;
    m++;
  }
  qsort(hs, (size_t) m, sizeof(hashed), cmp_hashed);
  int next = 1;
  for (R_xlen_t a = 0; a < m;) {
    R_xlen_t b = a;
    while (b < m && hs[b].h == hs[a].h) {
      if (b > a && hs[b].p == hs[b - 1].p) obj[hs[b].i] = obj[hs[b - 1].i];
      b++;
    }
    /* Split the run [a, b) by content: each unassigned member starts a
     * group and takes every later member with the same data. */
    for (R_xlen_t i = a; i < b; i++) {
      if (g[hs[i].i] != NA_INTEGER) continue;
      SEXP xi = VECTOR_ELT(vecs, hs[i].i);
      g[hs[i].i] = next;
      for (R_xlen_t j = i + 1; j < b; j++) {
        if (g[hs[j].i] != NA_INTEGER) continue;
        if (hs[j].p == hs[i].p || same_data(xi, VECTOR_ELT(vecs, hs[j].i))) {
          g[hs[j].i] = next;
        }
      }
      next++;
    }
    a = b;
  }
  free(hs);
  UNPROTECT(nprot);
  return out;
}

