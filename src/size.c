/*
 * size.c: the sizes entry points (mem_size(), mem_sizes(), mem_cells(),
 * mem_tree(), mem_by_type()), visitors of the one walker (walk.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "memkit.h"
#include "errors.h"
#include "walk.h"
#include "reach.h"
#include "utils.h"

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

static SEXP sizes_body(void *data) {
  sizes_call *c = data;
  R_xlen_t n = XLENGTH(c->objs);
  c->w = mk_walker_new(0);
  if (c->w == NULL) mk_walk_oom();
  if (c->each) {
    SEXP out = PROTECT(Rf_allocVector(REALSXP, n));
    for (R_xlen_t i = 0; i < n; i++) {
      mk_cost cost = {0, 0, 0};
      if (i > 0 && mk_walker_clear(c->w, 0) != 0) mk_walk_oom();
      if (mk_walker_add(c->w, VECTOR_ELT(c->objs, i), &cost) != 0) mk_walk_oom();
      REAL(out)[i] = cost.bytes;
    }
    UNPROTECT(1);
    return out;
  }
  mk_cost cost = {0, 0, 0};
  for (R_xlen_t i = 0; i < n; i++) {
    if (mk_walker_add(c->w, VECTOR_ELT(c->objs, i), &cost) != 0) mk_walk_oom();
  }
  SEXP out = PROTECT(Rf_allocVector(REALSXP, 4));
  REAL(out)[0] = cost.ncells;
  REAL(out)[1] = cost.vcells;
  REAL(out)[2] = cost.bytes;
  REAL(out)[3] = (double) mk_ptrset_size(mk_walker_seen(c->w));
  UNPROTECT(1);
  return out;
}

static SEXP run_sizes(SEXP objs, int each) {
  if (TYPEOF(objs) != VECSXP) MK_INTERNAL_ERROR("objs must be a list");
  mk_robj_reset();
  sizes_call c = {objs, each, NULL};
  return R_ExecWithCleanup(sizes_body, &c, sizes_cleanup, &c);
}

/* c(ncells, vcells, bytes, nodes) of all objects together, shared nodes once. */
SEXP ffi_size_cells(SEXP objs) { return run_sizes(objs, 0); }

/* Bytes of each object on its own. */
SEXP ffi_size_each(SEXP objs) { return run_sizes(objs, 1); }

/* What a walk of the objects costs the walker itself: c(nodes counted, bytes of
 * the walker at the end (set, stack, struct), deepest stack in frames). */
static SEXP stats_body(void *data) {
  sizes_call *c = data;
  c->w = mk_walker_new(0);
  if (c->w == NULL) mk_walk_oom();
  mk_cost cost = {0, 0, 0};
  for (R_xlen_t i = 0; i < XLENGTH(c->objs); i++) {
    if (mk_walker_add(c->w, VECTOR_ELT(c->objs, i), &cost) != 0) mk_walk_oom();
  }
  SEXP out = PROTECT(Rf_allocVector(REALSXP, 3));
  REAL(out)[0] = mk_walker_nodes(c->w);
  REAL(out)[1] = (double) mk_walker_bytes(c->w);
  REAL(out)[2] = (double) mk_walker_peak(c->w);
  UNPROTECT(1);
  return out;
}

SEXP ffi_size_stats(SEXP objs) {
  if (TYPEOF(objs) != VECSXP) MK_INTERNAL_ERROR("objs must be a list");
  mk_robj_reset();
  sizes_call c = {objs, 0, NULL};
  return R_ExecWithCleanup(stats_body, &c, sizes_cleanup, &c);
}

/* ---- mem_tree() ------------------------------------------------------- */

/* How a component is reached from its parent; R builds the path from it. */
enum { K_ROOT, K_ELEMENT, K_ATTR, K_SLOT, K_BINDING, K_FORMALS, K_BODY, K_ENV, K_PARENT };
/* Notes on a component. */
enum { N_NONE, N_ALTREP, N_EXTPTR, N_ACTIVE, N_PROMISE, N_FORCED };

typedef struct {
  SEXP node, name;            /* name: a CHARSXP or NULL */
  int parent, depth, kind, note;
  double index, self, total, ncells;
  int shared;
  size_t first, nkids;        /* children: rows first .. first + nkids - 1 */
} trow;

typedef struct {
  SEXP node, name;
  int kind, note;
  double index;
} tchild;

typedef struct {
  tchild *v;
  size_t n, cap;
  int oom;
} tchildren;

typedef struct {
  SEXP x;
  int max_depth;
  double min_bytes;
  mk_walker *w;
  mk_reach *reach;            /* components' totals */
  trow *rows;
  size_t nrows, cap;
  tchildren kids, rowkids;
  size_t *order;
} tree_call;

static void add_kid(tchildren *k, SEXP node, SEXP name, int kind, double index, int note) {
  if (node == NULL || node == R_NilValue || mk_is_global(node)) return;
  if (k->n == k->cap) {
    tchild *v = mk_grow(k->v, &k->cap, sizeof *v, 16);
    if (v == NULL) {
      k->oom = 1;
      return;
    }
    k->v = v;
  }
  k->v[k->n++] = (tchild) {node, name, kind, note, index};
}

/* First element of the class attribute (a CHARSXP) or NULL. */
static SEXP first_class(SEXP x) {
  if (TYPEOF(x) == CHARSXP) return NULL;
  SEXP cl = mk_robj_attr(x, R_ClassSymbol);
  if (TYPEOF(cl) != STRSXP || ALTREP(cl) || XLENGTH(cl) < 1) return NULL;
  return STRING_ELT(cl, 0);
}

static int node_note(SEXP x) {
  if (ALTREP(x)) return N_ALTREP;
  if (TYPEOF(x) == EXTPTRSXP) return N_EXTPTR;
  if (TYPEOF(x) == PROMSXP) {
    /* An unevaluated promise's value is R_UnboundValue. */
    SEXP expr, value, env;
    mk_robj_promise(x, &expr, &value, &env);
    return value == NULL ? N_PROMISE : N_FORCED;
  }
  return N_NONE;
}

/* The parts of x that mem_tree() shows as components of their own: the
 * walker's labelled edges, a pairlist's elements along its whole chain. */
static int bind_note(int kind) {
  switch (kind) {
  case MK_BIND_ACTIVE: return N_ACTIVE;
  case MK_BIND_DELAYED: return N_PROMISE;
  case MK_BIND_FORCED: return N_FORCED;
  default: return N_NONE;
  }
}

static void component_edge(const mk_edge *e, void *data) {
  tchildren *k = data;
  switch (e->kind) {
  case MK_EDGE_ATTR:
    add_kid(k, e->child, mk_edge_name(e), K_ATTR, 0, node_note(e->child));
    break;
  case MK_EDGE_SLOT:
    add_kid(k, e->child, mk_edge_name(e), K_SLOT, 0, node_note(e->child));
    break;
  case MK_EDGE_ELEMENT:
    add_kid(k, e->child, mk_edge_name(e), K_ELEMENT, e->index, node_note(e->child));
    break;
  case MK_EDGE_BINDING: {
    int note = bind_note(e->note);
    add_kid(k, e->child, mk_edge_name(e), K_BINDING, 0, note != N_NONE ? note : node_note(e->child));
    break;
  }
  case MK_EDGE_FORMALS: add_kid(k, e->child, NULL, K_FORMALS, 0, N_NONE); break;
  case MK_EDGE_BODY: add_kid(k, e->child, NULL, K_BODY, 0, N_NONE); break;
  case MK_EDGE_PARENT: add_kid(k, e->child, NULL, K_PARENT, 0, N_NONE); break;
  case MK_EDGE_ENV: add_kid(k, e->child, NULL, K_ENV, 0, N_NONE); break;
  default: break;
  }
}

/* Only a pairlist's attributes: its elements come from the chain. */
static void attr_only_edge(const mk_edge *e, void *data) {
  if (e->kind == MK_EDGE_ATTR || e->kind == MK_EDGE_SLOT) component_edge(e, data);
}

static void component_children(SEXP x, tchildren *k) {
  k->n = 0;
  int t = TYPEOF(x);
  if (t == CHARSXP) return;
  if (t == STRSXP) {          /* its strings are not components */
    mk_node_edges(x, NULL, attr_only_edge, k, NULL);
    return;
  }
  if (t == LISTSXP || t == LANGSXP || t == DOTSXP) {
    mk_node_edges(x, NULL, attr_only_edge, k, NULL);
    double i = 1;
    for (SEXP c = x; TYPEOF(c) == LISTSXP || TYPEOF(c) == LANGSXP || TYPEOF(c) == DOTSXP;
         c = CDR(c), i++) {
      SEXP tag = TAG(c);
      add_kid(k, CAR(c), TYPEOF(tag) == SYMSXP ? PRINTNAME(tag) : NULL, K_ELEMENT, i,
              node_note(CAR(c)));
    }
    return;
  }
  /* Elements with all their names: mem_tree() indexes duplicated ones. */
  mk_edge_opts eo = {1, NULL, NULL, NULL};
  mk_node_edges(x, &eo, component_edge, k, NULL);
  if (t == VECSXP || t == EXPRSXP) {
    SEXP names = mk_robj_attr(x, R_NamesSymbol);
    if (TYPEOF(names) == STRSXP && !ALTREP(names) && XLENGTH(names) == XLENGTH(x)) {
      for (size_t j = 0; j < k->n; j++) {
        if (k->v[j].kind == K_ELEMENT && k->v[j].index >= 1)
          k->v[j].name = STRING_ELT(names, (R_xlen_t) k->v[j].index - 1);
      }
    }
  }
}

static void tree_cleanup(void *data) {
  tree_call *c = data;
  mk_walker_free(c->w);
  mk_reach_free(c->reach);
  free(c->rows);
  free(c->kids.v);
  free(c->rowkids.v);
  free(c->order);
  c->w = NULL;
  c->reach = NULL;
  c->rows = NULL;
  c->kids.v = NULL;
  c->rowkids.v = NULL;
  c->order = NULL;
}

/* Total of x alone (what mem_size(x) gives), and whether any of it is
 * reached more than once in the whole object: one query of the graph of
 * the whole object, not a walk of x's. */
static void component_total(tree_call *c, SEXP x, mk_cost *tot, int *shared) {
  *tot = (mk_cost) {0, 0, 0};
  if (mk_reach_query(c->reach, &x, 1, tot, shared) != 0) mk_walk_oom();
}

/* Self: x and what only x holds, its component children excluded. */
static double component_self(tree_call *c, SEXP x) {
  component_children(x, &c->kids);
  if (c->kids.oom) mk_walk_oom();
  if (c->w == NULL) c->w = mk_walker_new(c->kids.n);
  else if (mk_walker_clear(c->w, c->kids.n) != 0) mk_walk_oom();
  if (c->w == NULL) mk_walk_oom();
  for (size_t i = 0; i < c->kids.n; i++) {
    if (c->kids.v[i].node != x && mk_ptrset_add(mk_walker_seen(c->w), c->kids.v[i].node) < 0) mk_walk_oom();
  }
  mk_cost self = {0, 0, 0};
  if (mk_walker_add(c->w, x, &self) != 0) mk_walk_oom();
  return self.bytes;
}

static void add_row(tree_call *c, trow r) {
  if (c->nrows == c->cap) {
    trow *v = mk_grow(c->rows, &c->cap, sizeof *v, 64);
    if (v == NULL) mk_walk_oom();
    c->rows = v;
  }
  c->rows[c->nrows++] = r;
}

static int is_ancestor(const tree_call *c, size_t row, SEXP node) {
  for (long r = (long) row; r >= 0; r = c->rows[r].parent) {
    if (c->rows[r].node == node) return 1;
  }
  return 0;
}

static const trow *sort_rows;
static int by_total(const void *a, const void *b) {
  double ta = sort_rows[*(const size_t *) a].total, tb = sort_rows[*(const size_t *) b].total;
  if (ta != tb) return ta < tb ? 1 : -1;
  size_t ia = *(const size_t *) a, ib = *(const size_t *) b;
  return ia < ib ? -1 : ia > ib;
}

static SEXP tree_body(void *data) {
  tree_call *c = data;
  int nprot = 0;
  /* One graph of the whole object answers every component's total. */
  c->reach = mk_reach_new();
  if (c->reach == NULL || mk_reach_start(c->reach, c->x) != 0 || mk_reach_build(c->reach) != 0)
    mk_walk_oom();

  if (!mk_is_global(c->x)) {
    int shared;
    mk_cost tot;
    component_total(c, c->x, &tot, &shared);
    add_row(c, (trow) {c->x, NULL, -1, 0, K_ROOT, node_note(c->x), 0, 0, tot.bytes, tot.ncells, shared, 0, 0});
  }
  /* Breadth first: rows are appended as their parents are expanded. */
  for (size_t r = 0; r < c->nrows; r++) {
    if (r % 1024 == 1023) mk_robj_check_interrupt();
    SEXP x = c->rows[r].node;
    c->rows[r].self = component_self(c, x);
    if (c->rows[r].depth >= c->max_depth) continue;
    component_children(x, &c->rowkids);
    if (c->rowkids.oom) mk_walk_oom();
    c->rows[r].first = c->nrows;
    for (size_t i = 0; i < c->rowkids.n; i++) {
      const tchild *k = &c->rowkids.v[i];
      if (is_ancestor(c, r, k->node)) continue;
      int shared;
      mk_cost tot;
      component_total(c, k->node, &tot, &shared);
      if (tot.bytes < c->min_bytes) continue;
      add_row(c, (trow) {k->node, k->name, (int) r, c->rows[r].depth + 1,
                         k->kind, k->note, k->index, 0, tot.bytes, tot.ncells, shared, 0, 0});
      c->rows[r].nkids++;
    }
  }

  /* Depth-first order, largest first among siblings. */
  size_t n = c->nrows;
  c->order = malloc((n ? n : 1) * 2 * sizeof(size_t));
  if (c->order == NULL) mk_walk_oom();
  size_t *out = c->order, *stack = c->order + n, nout = 0, top = 0;
  if (n > 0) stack[top++] = 0;
  sort_rows = c->rows;
  while (top > 0) {
    size_t r = stack[--top];
    out[nout++] = r;
    size_t first = c->rows[r].first, cnt = c->rows[r].nkids;
    if (cnt == 0) continue;
    size_t *kidx = stack + top;
    for (size_t j = 0; j < cnt; j++) kidx[j] = first + j;
    qsort(kidx, cnt, sizeof(size_t), by_total);
    /* Push in reverse so the largest is popped first. */
    for (size_t j = 0; j < cnt / 2; j++) {
      size_t tmp = kidx[j];
      kidx[j] = kidx[cnt - 1 - j];
      kidx[cnt - 1 - j] = tmp;
    }
    top += cnt;
  }

  const char *names[] = {"parent", "depth", "kind", "name", "index", "type", "class",
                         "self", "total", "shared", "note", ""};
  SEXP res = PROTECT(Rf_mkNamed(VECSXP, names)); nprot++;
  SEXP parent = Rf_allocVector(INTSXP, n); SET_VECTOR_ELT(res, 0, parent);
  SEXP depth = Rf_allocVector(INTSXP, n); SET_VECTOR_ELT(res, 1, depth);
  SEXP kind = Rf_allocVector(INTSXP, n); SET_VECTOR_ELT(res, 2, kind);
  SEXP name = Rf_allocVector(STRSXP, n); SET_VECTOR_ELT(res, 3, name);
  SEXP index = Rf_allocVector(REALSXP, n); SET_VECTOR_ELT(res, 4, index);
  SEXP type = Rf_allocVector(STRSXP, n); SET_VECTOR_ELT(res, 5, type);
  SEXP klass = Rf_allocVector(STRSXP, n); SET_VECTOR_ELT(res, 6, klass);
  SEXP self = Rf_allocVector(REALSXP, n); SET_VECTOR_ELT(res, 7, self);
  SEXP total = Rf_allocVector(REALSXP, n); SET_VECTOR_ELT(res, 8, total);
  SEXP shared = Rf_allocVector(LGLSXP, n); SET_VECTOR_ELT(res, 9, shared);
  SEXP note = Rf_allocVector(INTSXP, n); SET_VECTOR_ELT(res, 10, note);
  /* Row positions in output order, to map parents. */
  int *pos = (int *) R_alloc(n ? n : 1, sizeof(int));
  for (size_t i = 0; i < n; i++) pos[out[i]] = (int) i;
  for (size_t i = 0; i < n; i++) {
    const trow *r = &c->rows[out[i]];
    INTEGER(parent)[i] = r->parent < 0 ? NA_INTEGER : pos[r->parent] + 1;
    INTEGER(depth)[i] = r->depth;
    INTEGER(kind)[i] = r->kind;
    SET_STRING_ELT(name, i, r->name ? r->name : NA_STRING);
    REAL(index)[i] = r->index;
    SET_STRING_ELT(type, i, Rf_mkChar(Rf_type2char(TYPEOF(r->node))));
    SEXP cl = first_class(r->node);
    SET_STRING_ELT(klass, i, cl ? cl : NA_STRING);
    REAL(self)[i] = r->self;
    REAL(total)[i] = r->total;
    LOGICAL(shared)[i] = r->shared;
    INTEGER(note)[i] = r->note;
  }
  UNPROTECT(nprot);
  return res;
}

SEXP ffi_size_tree(SEXP x, SEXP max_depth, SEXP min_bytes) {
  mk_robj_reset();
  tree_call c = {0};
  c.x = x;
  c.max_depth = Rf_asInteger(max_depth);
  c.min_bytes = Rf_asReal(min_bytes);
  if (c.max_depth == NA_INTEGER || c.max_depth < 0) MK_INTERNAL_ERROR("bad max_depth");
  return R_ExecWithCleanup(tree_body, &c, tree_cleanup, &c);
}

/* ---- mem_by_type() ------------------------------------------------------ */

typedef struct {
  int type;
  SEXP klass;                 /* CHARSXP or NULL */
  double count, bytes, ncells, vcells;
} tally;

typedef struct {
  SEXP x;
  mk_walker *w;
  tally *t;
  size_t n, cap;
  int oom;
} bytype_call;

static void bytype_hook(void *data, SEXP x, int t, const mk_cost *cost) {
  bytype_call *c = data;
  SEXP cl = x == NULL ? NULL : first_class(x);
  /* Rows 0..31 are the unclassed types; classed ones follow. */
  size_t i;
  if (cl == NULL) {
    i = (size_t) (t & 31);
  } else {
    for (i = 32; i < c->n; i++) {
      if (c->t[i].type == t && c->t[i].klass == cl) break;
    }
    if (i == c->n) {
      if (c->n == c->cap) {
        tally *v = mk_grow(c->t, &c->cap, sizeof *v, 0);
        if (v == NULL) {
          c->oom = 1;
          return;
        }
        c->t = v;
      }
      c->t[c->n++] = (tally) {t, cl, 0, 0, 0, 0};
    }
  }
  c->t[i].count += cost->ncells;   /* owned cells come several to a call */
  c->t[i].bytes += cost->bytes;
  c->t[i].ncells += cost->ncells;
  c->t[i].vcells += cost->vcells;
}

static void bytype_cleanup(void *data) {
  bytype_call *c = data;
  mk_walker_free(c->w);
  free(c->t);
  c->w = NULL;
  c->t = NULL;
}

static SEXP bytype_body(void *data) {
  bytype_call *c = data;
  int nprot = 0;
  c->cap = 64;
  c->t = calloc(c->cap, sizeof(tally));
  c->w = mk_walker_new(0);
  if (c->t == NULL || c->w == NULL) mk_walk_oom();
  for (int i = 0; i < 32; i++) c->t[i].type = i;
  c->n = 32;
  mk_cost cost = {0, 0, 0};
  mk_walk_opts o = {0};
  o.hook = bytype_hook;
  o.hook_data = c;
  mk_walker_set(c->w, &o);
  if (mk_walker_add(c->w, c->x, &cost) != 0 || c->oom) mk_walk_oom();
  size_t m = 0;
  for (size_t i = 0; i < c->n; i++) if (c->t[i].count > 0) m++;
  const char *names[] = {"type", "class", "count", "bytes", "ncells", "vcells", ""};
  SEXP res = PROTECT(Rf_mkNamed(VECSXP, names)); nprot++;
  SEXP type = Rf_allocVector(STRSXP, m); SET_VECTOR_ELT(res, 0, type);
  SEXP klass = Rf_allocVector(STRSXP, m); SET_VECTOR_ELT(res, 1, klass);
  SEXP count = Rf_allocVector(REALSXP, m); SET_VECTOR_ELT(res, 2, count);
  SEXP bytes = Rf_allocVector(REALSXP, m); SET_VECTOR_ELT(res, 3, bytes);
  SEXP nc = Rf_allocVector(REALSXP, m); SET_VECTOR_ELT(res, 4, nc);
  SEXP vc = Rf_allocVector(REALSXP, m); SET_VECTOR_ELT(res, 5, vc);
  size_t j = 0;
  for (size_t i = 0; i < c->n; i++) {
    const tally *t = &c->t[i];
    if (t->count == 0) continue;
    SET_STRING_ELT(type, j, Rf_mkChar(Rf_type2char((SEXPTYPE) t->type)));
    SET_STRING_ELT(klass, j, t->klass ? t->klass : NA_STRING);
    REAL(count)[j] = t->count;
    REAL(bytes)[j] = t->bytes;
    REAL(nc)[j] = t->ncells;
    REAL(vc)[j] = t->vcells;
    j++;
  }
  UNPROTECT(nprot);
  return res;
}

SEXP ffi_size_by_type(SEXP x) {
  mk_robj_reset();
  bytype_call c = {0};
  c.x = x;
  return R_ExecWithCleanup(bytype_body, &c, bytype_cleanup, &c);
}
