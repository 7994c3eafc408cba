/*
 * retained.c: what removing bindings would free (mem_retained(), mem_ls(),
 * mem_rm()), duplicated vectors (mem_dupes()): visitors of the one walker.
 *
 * Retained size is a question about the whole session: a node is freed by
 * the next full collection when no root reaches it. So we first mark every
 * node reachable from the roots without passing through the chosen bindings
 * (the marking goes INTO the global environment, namespaces and the search
 * path, which sizes treat as opaque), then walk from the chosen bindings'
 * values, skipping what is marked. The bindings' own cells are freed too:
 * each is one 56-byte node.
 *
 * Roots come from R, which hands over what R code can see: the call stack's
 * frames, calls and functions, on.exit expressions, the search path and the
 * loaded namespaces; C adds the global, base and empty environments.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "memkit.h"
#include "errors.h"
#include "walk.h"
#include "reach.h"
#include "utils.h"

/* ---- marking ------------------------------------------------------------ */

static int skip_all(SEXP sym, void *data) {
  (void) sym;
  (void) data;
  return 1;
}

static int skip_named(SEXP sym, void *data) {
  return mk_ptrset_has((const mk_ptrset *) data, sym);
}

/* Mark, in w's set, everything the roots reach, global nodes included,
 * except through the bindings of envir that skip() names. */
static void mark_roots(mk_walker *w, SEXP envir, mk_skip_fn skip, void *skip_data, SEXP roots) {
  mk_walk_opts o;
  memset(&o, 0, sizeof o);
  o.follow_globals = 1;
  o.edges.skip_env = envir;
  o.edges.skip = skip;
  o.edges.skip_data = skip_data;
  mk_walker_set(w, &o);
  SEXP fixed[] = {R_GlobalEnv, R_BaseEnv, R_BaseNamespace, R_EmptyEnv, roots};
  mk_cost c = {0, 0, 0};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
    if (mk_walker_add(w, fixed[i], &c) != 0) mk_walk_oom();
  }
  mk_walker_set(w, NULL);
}

/* ---- the bindings of an environment ------------------------------------ */

typedef struct {
  mk_binding *v;
  size_t n, cap;
  int oom;
} bindings;

static void collect_binding(const mk_binding *b, void *data) {
  bindings *bs = data;
  if (bs->oom) return;
  if (bs->n == bs->cap) {
    mk_binding *v = mk_grow(bs->v, &bs->cap, sizeof *v, 64);
    if (v == NULL) {
      bs->oom = 1;
      return;
    }
    bs->v = v;
  }
  bs->v[bs->n++] = *b;
}

/* "value" (a forced promise reads as one: reading it evaluates nothing),
 * "promise" (not yet forced), "active" or "missing". */
static const char *kind_name(int kind) {
  switch (kind) {
  case MK_BIND_DELAYED: return "promise";
  case MK_BIND_ACTIVE: return "active";
  case MK_BIND_MISSING: return "missing";
  default: return "value";
  }
}

/* A promise the API hides is the binding's own node. */
static int hidden_promise(const mk_binding *b) {
  return b->promise == NULL && (b->kind == MK_BIND_DELAYED || b->kind == MK_BIND_FORCED);
}

/* Where a walk from binding b starts (mk_walker_add_binding()'s nodes):
 * its value or promise, or a hidden promise's code, environment and value. */
static size_t binding_starts(const mk_binding *b, SEXP st[3]) {
  if (hidden_promise(b)) {
    st[0] = b->expr;
    st[1] = b->env;
    st[2] = b->value;
    return 3;
  }
  st[0] = b->promise != NULL ? b->promise : b->value;
  return 1;
}

static void check_envir(SEXP envir) {
  if (TYPEOF(envir) != ENVSXP) MK_INTERNAL_ERROR("envir must be an environment");
  if (envir == R_BaseEnv || envir == R_BaseNamespace || envir == R_EmptyEnv) {
    mk_error("argument", "`envir` can't be the base or empty environment: "
             "their bindings can't be removed.");
  }
}

/* ---- mem_retained() ------------------------------------------------------ */

typedef struct {
  SEXP envir, syms, roots;
  mk_ptrset *syms_set;
  mk_walker *w;
  bindings bs;
} retained_call;

static void retained_cleanup(void *data) {
  retained_call *c = data;
  mk_walker_free(c->w);
  c->w = NULL;
  mk_ptrset_free(c->syms_set);
  c->syms_set = NULL;
  free(c->bs.v);
  c->bs.v = NULL;
}

static SEXP retained_body(void *data) {
  retained_call *c = data;
  R_xlen_t n = XLENGTH(c->syms);
  c->syms_set = mk_ptrset_new((size_t) n);
  c->w = mk_walker_new(1u << 19);
  if (c->syms_set == NULL || c->w == NULL) mk_walk_oom();
  for (R_xlen_t i = 0; i < n; i++) {
    if (mk_ptrset_add(c->syms_set, VECTOR_ELT(c->syms, i)) < 0) mk_walk_oom();
  }
  mark_roots(c->w, c->envir, skip_named, c->syms_set, c->roots);
  double marked = (double) mk_ptrset_size(mk_walker_seen(c->w));
  mk_robj_bindings(c->envir, collect_binding, &c->bs);
  if (c->bs.oom) mk_walk_oom();
  mk_cost cost = {0, 0, 0};
  for (size_t i = 0; i < c->bs.n; i++) {
    const mk_binding *b = &c->bs.v[i];
    if (!mk_ptrset_has(c->syms_set, b->sym)) continue;
    /* The binding cell goes with the binding. */
    cost.ncells += mk_cell_cost.ncells;
    cost.bytes += mk_cell_cost.bytes;
    if (mk_walker_add_binding(c->w, b, &cost) != 0) mk_walk_oom();
  }
  SEXP out = PROTECT(Rf_allocVector(REALSXP, 4));
  REAL(out)[0] = cost.ncells;
  REAL(out)[1] = cost.vcells;
  REAL(out)[2] = cost.bytes;
  REAL(out)[3] = marked;
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

/* c(ncells, vcells, bytes, marked nodes) that removing `names` from envir
 * and a full collection would free. */
SEXP ffi_retained_size(SEXP envir, SEXP names, SEXP roots) {
  check_envir(envir);
  if (TYPEOF(names) != STRSXP) MK_INTERNAL_ERROR("names must be a character vector");
  mk_robj_reset();
  int nprot = 0;
  SEXP syms = PROTECT(names_to_syms(names)); nprot++;
  retained_call c;
  memset(&c, 0, sizeof c);
  c.envir = envir;
  c.syms = syms;
  c.roots = roots;
  /* The cleanup runs on every exit, a long jump included. */
  SEXP out = R_ExecWithCleanup(retained_body, &c, retained_cleanup, &c);
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

/* A node, its set of bindings, and the nodes it owns (walk.h): ocells
 * 56-byte cells and a hash table of tvcells Vcells. */
typedef struct { SEXP key; int val, ocells, tvcells; } map_slot;

typedef struct {
  map_slot *slots;
  size_t cap, n;
} ptrmap;

static inline size_t map_slot_of(SEXP x, size_t cap) {
  return (size_t) (mk_ptr_hash(x) >> 32) & (cap - 1);   /* cap is a power of two */
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
  if (m->cap > SIZE_MAX / 2 / sizeof(map_slot)) return -1;
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

/* Set s = parent set + {last}; set 0 is empty. trans_*: this walk's
 * transition from s. */
typedef struct { int parent, last, trans_walk, trans_to; } setnode;

typedef struct {
  setnode *v;
  size_t n, cap;
} setpool;

static int pool_add(setpool *p, int parent, int last) {
  if (p->n >= INT32_MAX) return -1;
  if (p->n == p->cap) {
    setnode *v = mk_grow(p->v, &p->cap, sizeof *v, 256);
    if (v == NULL) return -1;
    p->v = v;
  }
  p->v[p->n] = (setnode) {parent, last, -1, 0};
  return (int) p->n++;
}

/* The set s + {walk}. */
static int pool_extend(setpool *p, int s, int walk) {
  if (p->v[s].trans_walk == walk) return p->v[s].trans_to;
  int t = pool_add(p, s, walk);
  if (t < 0) return -1;
  p->v[s].trans_walk = walk;
  p->v[s].trans_to = t;
  return t;
}

typedef struct {
  SEXP envir, roots;
  mk_walker *w;          /* the marked set */
  mk_walker *lw;         /* the per-binding sharing walks */
  mk_reach *reach;       /* every binding's own size */
  const mk_ptrset *marked;
  ptrmap map;
  setpool pool;
  bindings bs;
  int walk, oom;
  int *used;
  double *set_bytes;     /* the bytes of the nodes each set shares */
} ls_call;

static void ls_cleanup(void *data) {
  ls_call *c = data;
  mk_walker_free(c->w);
  mk_walker_free(c->lw);
  mk_reach_free(c->reach);
  c->reach = NULL;
  c->w = c->lw = NULL;
  free(c->map.slots);
  free(c->pool.v);
  free(c->bs.v);
  free(c->used);
  free(c->set_bytes);
  memset(&c->map, 0, sizeof c->map);
  memset(&c->pool, 0, sizeof c->pool);
  c->bs.v = NULL;
  c->used = NULL;
  c->set_bytes = NULL;
}

/* Enter x in the current binding's walk if it is unmarked and this walk
 * has not been here yet; record that this binding reaches it. A node
 * already in the map is not marked: the marked set is asked only about a
 * node met for the first time. */
static int ls_enter(SEXP x, void *data) {
  ls_call *c = data;
  if ((c->map.n + 1) * 4 > c->map.cap * 3 && map_grow(&c->map) != 0) return -1;
  map_slot *s = map_find(&c->map, x);
  int set;
  if (s->key == NULL) {
    if (mk_ptrset_has(c->marked, x)) return 0;
    set = pool_extend(&c->pool, 0, c->walk);
    if (set < 0) return -1;
    s->key = x;
    s->val = set;
    s->ocells = s->tvcells = 0;
    c->map.n++;
  } else {
    if (c->pool.v[s->val].last == c->walk) return 0;
    set = pool_extend(&c->pool, s->val, c->walk);
    if (set < 0) return -1;
    s->val = set;
  }
  return 1;
}

static void ls_prefetch(SEXP x, void *data) {
  ls_call *c = data;
  MK_PREFETCH(&c->map.slots[map_slot_of(x, c->map.cap)]);
  mk_ptrset_prefetch(c->marked, x);
}

static void ls_owned(void *data, SEXP owner, const mk_cost *c) {
  ls_call *cl = data;
  map_slot *s = map_find(&cl->map, owner);
  if (s->key != owner) return;   /* not entered by this walk: cannot happen */
  /* A hash table is the one owned node with Vcells. */
  s->ocells = (int) (c->vcells > 0 ? c->ncells - 1 : c->ncells);
  s->tvcells = (int) c->vcells;
}

static SEXP ls_body(void *data) {
  ls_call *c = data;
  int nprot = 0;
  c->w = mk_walker_new(1u << 19);
  c->lw = mk_walker_new(0);
  if (c->w == NULL || c->lw == NULL) mk_walk_oom();
  mark_roots(c->w, c->envir, skip_all, NULL, c->roots);
  c->marked = mk_walker_seen(c->w);
  double marked = (double) mk_ptrset_size(c->marked);

  mk_robj_bindings(c->envir, collect_binding, &c->bs);
  if (c->bs.oom) mk_walk_oom();
  if (c->bs.n > INT32_MAX / 3) mk_walk_oom();
  int n = (int) c->bs.n;
  if (map_init(&c->map, 1u << 12) != 0 || pool_add(&c->pool, 0, -1) < 0) mk_walk_oom();
  mk_walk_opts o;
  memset(&o, 0, sizeof o);
  o.enter = ls_enter;
  o.enter_data = c;
  o.enter_prefetch = ls_prefetch;
  o.owned = ls_owned;
  o.owned_data = c;
  mk_walker_set(c->lw, &o);

  SEXP names = PROTECT(Rf_allocVector(STRSXP, n)); nprot++;
  SEXP kind = PROTECT(Rf_allocVector(STRSXP, n)); nprot++;
  SEXP size = PROTECT(Rf_allocVector(REALSXP, n)); nprot++;
  SEXP ret = PROTECT(Rf_allocMatrix(REALSXP, n, 3)); nprot++;
  double *r = REAL(ret);
  memset(r, 0, sizeof(double) * 3 * (size_t) n);
  mk_cost total_size = {0, 0, 0};
  mk_cost total_ret = {0, 0, 0};

  /* Every binding's own size (as mem_size() gives it) from one graph of
   * what they reach: walking each binding alone would walk an environment
   * that all of them reach once per binding. */
  c->reach = mk_reach_new();
  if (c->reach == NULL) mk_walk_oom();
  for (int i = 0; i < n; i++) {
    SEXP st[3];
    size_t ns = binding_starts(&c->bs.v[i], st);
    for (size_t j = 0; j < ns; j++) {
      if (mk_reach_start(c->reach, st[j]) != 0) mk_walk_oom();
    }
  }
  if (mk_reach_build(c->reach) != 0) mk_walk_oom();
  double hidden_cells = 0;

  for (int i = 0; i < n; i++) {
    const mk_binding *b = &c->bs.v[i];
    SET_STRING_ELT(names, i, PRINTNAME(b->sym));
    SET_STRING_ELT(kind, i, Rf_mkChar(kind_name(b->kind)));
    /* The binding cell, and a promise the API hides, are this binding's alone. */
    mk_cost own = mk_cell_cost;
    if (hidden_promise(b)) {
      own.ncells += mk_cell_cost.ncells;
      own.bytes += mk_cell_cost.bytes;
    }
    r[i] += own.ncells;
    r[i + n] += own.vcells;
    r[i + 2 * n] += own.bytes;
    total_ret.ncells += own.ncells;
    total_ret.vcells += own.vcells;
    total_ret.bytes += own.bytes;
    /* Its own size, as mem_size() gives it. */
    mk_cost sc = {0, 0, 0};
    SEXP st[3];
    size_t ns = binding_starts(b, st);
    if (mk_reach_query(c->reach, st, ns, &sc, NULL) != 0) mk_walk_oom();
    if (hidden_promise(b)) {
      sc.bytes += mk_cell_cost.bytes;
      hidden_cells++;
    }
    REAL(size)[i] = sc.bytes;
    c->walk = i;
    mk_cost ignored = {0, 0, 0};
    if (mk_walker_add_binding(c->lw, b, &ignored) != 0) mk_walk_oom();
  }
  /* The combined size of all bindings, shared memory once: the whole graph. */
  total_size.bytes = mk_reach_graph_bytes(c->reach) + hidden_cells * mk_cell_cost.bytes;

  /* Sum retained costs; note which shared sets occur. */
  c->used = calloc(c->pool.n ? c->pool.n : 1, sizeof(int));
  c->set_bytes = calloc(c->pool.n ? c->pool.n : 1, sizeof(double));
  if (c->used == NULL || c->set_bytes == NULL) mk_walk_oom();
  for (size_t j = 0; j < c->map.cap; j++) {
    map_slot *s = &c->map.slots[j];
    if (s->key == NULL) continue;
    mk_cost cc;
    mk_node_cost(s->key, &cc);
    cc.ncells += s->ocells;
    cc.bytes += 56.0 * s->ocells;
    if (s->tvcells > 0) {
      cc.ncells += 1;
      cc.vcells += s->tvcells;
      cc.bytes += 48 + 8.0 * s->tvcells;
    }
    total_ret.ncells += cc.ncells;
    total_ret.vcells += cc.vcells;
    total_ret.bytes += cc.bytes;
    if (c->pool.v[s->val].parent == 0) {
      int i = c->pool.v[s->val].last;
      r[i] += cc.ncells;
      r[i + n] += cc.vcells;
      r[i + 2 * n] += cc.bytes;
    } else {
      c->used[s->val] = 1;
      c->set_bytes[s->val] += cc.bytes;
    }
  }
  int nshared = 0;
  for (size_t s = 0; s < c->pool.n; s++) nshared += c->used[s];
  SEXP shared = PROTECT(Rf_allocVector(VECSXP, nshared)); nprot++;
  SEXP shared_bytes = PROTECT(Rf_allocVector(REALSXP, nshared)); nprot++;
  for (size_t s = 0, j = 0; s < c->pool.n; s++) {
    if (!c->used[s]) continue;
    REAL(shared_bytes)[j] = c->set_bytes[s];
    int len = 0;
    for (int t = (int) s; t != 0; t = c->pool.v[t].parent) len++;
    SEXP members = Rf_allocVector(INTSXP, len);
    SET_VECTOR_ELT(shared, (R_xlen_t) j++, members);
    int *mm = INTEGER(members);
    for (int t = (int) s; t != 0; t = c->pool.v[t].parent) mm[--len] = c->pool.v[t].last + 1;
  }

  SEXP totals = PROTECT(Rf_allocVector(REALSXP, 9)); nprot++;
  REAL(totals)[0] = total_size.bytes;
  REAL(totals)[1] = total_ret.ncells;
  REAL(totals)[2] = total_ret.vcells;
  REAL(totals)[3] = total_ret.bytes;
  REAL(totals)[4] = marked;
  REAL(totals)[5] = (double) c->map.n;
  REAL(totals)[6] = (double) (mk_walker_bytes(c->w) + mk_walker_bytes(c->lw) +
                              c->map.cap * sizeof(map_slot) + c->pool.cap * sizeof(setnode)) +
    mk_reach_bytes(c->reach);
  REAL(totals)[7] = mk_reach_nodes(c->reach);
  REAL(totals)[8] = mk_reach_steps(c->reach);

  SEXP out = PROTECT(Rf_allocVector(VECSXP, 7)); nprot++;
  SET_VECTOR_ELT(out, 0, names);
  SET_VECTOR_ELT(out, 1, kind);
  SET_VECTOR_ELT(out, 2, size);
  SET_VECTOR_ELT(out, 3, ret);
  SET_VECTOR_ELT(out, 4, shared);
  SET_VECTOR_ELT(out, 5, totals);
  SET_VECTOR_ELT(out, 6, shared_bytes);
  UNPROTECT(nprot);
  return out;
}

/* list(names, kind, size, retained (n x 3: ncells, vcells, bytes),
 *      shared sets (binding numbers), totals, the bytes each shared set holds)
 * for every binding of envir. */
SEXP ffi_retained_ls(SEXP envir, SEXP roots) {
  check_envir(envir);
  mk_robj_reset();
  ls_call c;
  memset(&c, 0, sizeof c);
  c.envir = envir;
  c.roots = roots;
  /* The cleanup runs on every exit, a long jump included. */
  return R_ExecWithCleanup(ls_body, &c, ls_cleanup, &c);
}

/* ---- mem_dupes(): the vectors inside an object, with their paths ---------- */

typedef struct {
  SEXP x;
  double min_bytes;
  mk_walker *w;
  SEXP *vecs;
  int *vpath;
  size_t n, cap;
  int oom;
  bindings bs;
} dupes_call;

static int dupable(SEXP x) {
  switch (TYPEOF(x)) {
  case LGLSXP: case INTSXP: case REALSXP: case CPLXSXP: case RAWSXP: case STRSXP:
    return !ALTREP(x);
  default:
    return 0;
  }
}

static void dupes_add(dupes_call *c, SEXP x, int path) {
  if (c->oom || !dupable(x)) return;
  mk_cost cc;
  mk_node_cost(x, &cc);
  if (cc.bytes < c->min_bytes) return;
  if (c->n == c->cap) {
    size_t cap = c->cap;
    SEXP *v = mk_grow(c->vecs, &cap, sizeof *v, 64);
    if (v == NULL) {
      c->oom = 1;
      return;
    }
    c->vecs = v;
    cap = c->cap;
    int *p = mk_grow(c->vpath, &cap, sizeof *p, 64);
    if (p == NULL) {
      c->oom = 1;
      return;
    }
    c->vpath = p;
    c->cap = cap;
  }
  c->vecs[c->n] = x;
  c->vpath[c->n++] = path;
}

static void dupes_hook(void *data, SEXP x, int type, const mk_cost *cost) {
  dupes_call *c = data;
  (void) type;
  (void) cost;
  if (x != NULL) dupes_add(c, x, mk_walker_path(c->w));
}

/* The same vector reached again is listed again: its other paths. */
static void dupes_again(void *data, SEXP x, int path) {
  dupes_add(data, x, path);
}

static void dupes_cleanup(void *data) {
  dupes_call *c = data;
  mk_walker_free(c->w);
  free(c->vecs);
  free(c->vpath);
  free(c->bs.v);
  c->w = NULL;
  c->vecs = NULL;
  c->vpath = NULL;
  c->bs.v = NULL;
}

static SEXP dupes_body(void *data) {
  dupes_call *c = data;
  int nprot = 0;
  c->w = mk_walker_new(0);
  if (c->w == NULL) mk_walk_oom();
  mk_walk_opts o;
  memset(&o, 0, sizeof o);
  o.hook = dupes_hook;
  o.hook_data = c;
  o.again = dupes_again;
  o.again_data = c;
  o.paths = 1;
  /* What is inside x: not what its environments' parents hold. */
  o.skip_parents = 1;
  mk_walker_set(c->w, &o);
  mk_cost cost = {0, 0, 0};
  if (TYPEOF(c->x) == ENVSXP && mk_is_global(c->x)) {
    /* The global environment itself, say: its bindings, not the session. */
    mk_robj_bindings(c->x, collect_binding, &c->bs);
    if (c->bs.oom) mk_walk_oom();
    for (size_t i = 0; i < c->bs.n; i++) {
      o.root_kind = MK_EDGE_BINDING;
      o.root_name = PRINTNAME(c->bs.v[i].sym);
      mk_walker_set(c->w, &o);
      if (mk_walker_add_binding(c->w, &c->bs.v[i], &cost) != 0) mk_walk_oom();
    }
  } else if (mk_walker_add(c->w, c->x, &cost) != 0) {
    mk_walk_oom();
  }
  if (c->oom) mk_walk_oom();
  size_t np;
  const mk_path *p = mk_walker_paths(c->w, &np);
  SEXP vecs = PROTECT(Rf_allocVector(VECSXP, (R_xlen_t) c->n)); nprot++;
  SEXP vpath = PROTECT(Rf_allocVector(INTSXP, (R_xlen_t) c->n)); nprot++;
  for (size_t i = 0; i < c->n; i++) {
    SET_VECTOR_ELT(vecs, (R_xlen_t) i, c->vecs[i]);
    INTEGER(vpath)[i] = c->vpath[i] + 1;
  }
  SEXP parent = PROTECT(Rf_allocVector(INTSXP, (R_xlen_t) np)); nprot++;
  SEXP kind = PROTECT(Rf_allocVector(INTSXP, (R_xlen_t) np)); nprot++;
  SEXP name = PROTECT(Rf_allocVector(STRSXP, (R_xlen_t) np)); nprot++;
  SEXP index = PROTECT(Rf_allocVector(REALSXP, (R_xlen_t) np)); nprot++;
  for (size_t i = 0; i < np; i++) {
    INTEGER(parent)[i] = p[i].parent < 0 ? NA_INTEGER : p[i].parent + 1;
    INTEGER(kind)[i] = p[i].kind;
    SET_STRING_ELT(name, (R_xlen_t) i, p[i].name ? p[i].name : NA_STRING);
    REAL(index)[i] = p[i].index;
  }
  const char *nms[] = {"vecs", "path", "parent", "kind", "name", "index", ""};
  SEXP out = PROTECT(Rf_mkNamed(VECSXP, nms)); nprot++;
  SET_VECTOR_ELT(out, 0, vecs);
  SET_VECTOR_ELT(out, 1, vpath);
  SET_VECTOR_ELT(out, 2, parent);
  SET_VECTOR_ELT(out, 3, kind);
  SET_VECTOR_ELT(out, 4, name);
  SET_VECTOR_ELT(out, 5, index);
  UNPROTECT(nprot);
  return out;
}

/* The vectors of at least min_bytes inside x (each time it is reached),
 * with the walk's path records, for mem_dupes(). */
SEXP ffi_retained_vectors(SEXP x, SEXP min_bytes) {
  mk_robj_reset();
  dupes_call c;
  memset(&c, 0, sizeof c);
  c.x = x;
  c.min_bytes = Rf_asReal(min_bytes);
  return R_ExecWithCleanup(dupes_body, &c, dupes_cleanup, &c);
}

/* ---- mem_dupes(): group vectors by content --------------------------------
 *
 * 64-bit FNV-1a over the type, length and data of each vector (for a
 * character vector, the string pointers: R caches strings, so equal strings
 * in the same encoding are the same CHARSXP). Vectors are sorted by hash and
 * each run of equal hashes is split by memcmp(), so a collision never joins
 * two different vectors. ALTREP vectors are not read (that could expand
 * them) and get no group. */

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
    uint64_t h = MK_FNV_SEED;
    int t = TYPEOF(x);
    R_xlen_t len = XLENGTH(x);
    h = mk_fnv1a(h, &t, sizeof t);
    h = mk_fnv1a(h, &len, sizeof len);
    h = mk_fnv1a(h, DATAPTR_RO(x), data_bytes(x));
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

