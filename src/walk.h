/*
 * walk.h: the one walker over R's object graph. Sizes, trees, by-type
 * tables, retained-size marking, mem_ls() and mem_dupes() are its visitors.
 *
 * It asks every question of a node through robj.h, visits each node once
 * (a pointer set), keeps an explicit stack (any depth is safe), never forces
 * a promise, calls an active binding or materialises an ALTREP vector.
 *
 *   mk_walker *w = mk_walker_new(0);
 *   if (w == NULL) ...out of memory...
 *   mk_cost c = {0, 0, 0};
 *   int rc = mk_walker_add(w, x, &c);  // 0, or -1 when out of memory
 *   mk_walker_free(w);
 *
 * mk_walker_add() checks for interrupts and may allocate on R's heap (robj.h),
 * so it may longjmp: run it under R_ExecWithCleanup() or R_UnwindProtect()
 * with a cleanup that frees the walker.
 */
#ifndef MEMKIT_WALK_H
#define MEMKIT_WALK_H

#include <stddef.h>
#include <stdint.h>
#include "robj.h"
#include "errors.h"

/* Self cost of one node, exactly as gc() counts it: one Ncell per node
 * (vector headers included) and the Vcells of its data (small vectors take
 * their size class: 1, 2, 4, 8 or 16 cells; large ones their exact length in
 * 8-byte units). `bytes` is the real footprint: 56 per non-vector node or
 * zero-length vector, 48 + 8 * vcells per vector. An ALTREP object is a plain
 * 56-byte node (its data live in data1/data2, walked as children). */
typedef struct { double ncells, vcells, bytes; } mk_cost;
void mk_node_cost(SEXP x, mk_cost *out);
/* The cost of a pairlist cell (binding cells, attribute cells, promises the
 * API hides: all 56-byte nodes). */
extern const mk_cost mk_cell_cost;

/* 1 for nodes that sizes never count or follow, because gc() never frees
 * them: R_NilValue, symbols, NA_STRING, R_BlankString, primitives, the shared
 * TRUE/FALSE/NA logical scalars, the global, base and empty environments,
 * namespaces, and environments on the search path or of packages. */
int mk_is_global(SEXP x);

/* ---- edges: what a node references ---- */

enum {
  MK_EDGE_ELEMENT = 1,  /* list or pairlist element: name, index */
  MK_EDGE_ATTR,         /* attribute: name */
  MK_EDGE_SLOT,         /* S4 slot: name */
  MK_EDGE_BINDING,      /* an environment's binding: name, note = MK_BIND_* */
  MK_EDGE_FORMALS,
  MK_EDGE_BODY,
  MK_EDGE_ENV,          /* a closure's or a promise's environment */
  MK_EDGE_PARENT,       /* an environment's parent */
  MK_EDGE_CODE,         /* a promise's code: name of its binding, if any */
  MK_EDGE_VALUE,        /* a forced promise's value: name of its binding, if any */
  MK_EDGE_NEXT,         /* a pairlist's CDR */
  MK_EDGE_OTHER,        /* tags, byte code, ALTREP data, external pointers, symbols' names */
  MK_EDGE_WEAK          /* a weak reference's key, value or finalizer */
};

typedef struct {
  SEXP child;
  int kind;
  SEXP name;     /* a CHARSXP, a symbol (whose name it is), or NULL: read
                    it with mk_edge_name(), which only then fetches a
                    binding's symbol from memory */
  double index;  /* 1-based element index, or 0 */
  int note;      /* MK_EDGE_BINDING: the binding's kind */
} mk_edge;
typedef void (*mk_edge_fn)(const mk_edge *e, void *data);

/* The edge's name, a CHARSXP, or NULL. */
static inline SEXP mk_edge_name(const mk_edge *e) {
  SEXP nm = e->name;
  if (nm == NULL) return NULL;
  switch (TYPEOF(nm)) {
  case SYMSXP: return PRINTNAME(nm);
  case CHARSXP: return nm;
  default: return NULL;
  }
}

/* Calls fn for each node x references, and adds to *owned (if not NULL) the
 * nodes that belong to x alone and that no pointer reaches: an environment's
 * binding cells and hash table, attribute cells, promises the API hides.
 * `elements`: 0 leaves out the elements of lists and character vectors (the
 * walker reads those itself); names of list elements are given only when
 * they are unique, non-empty and not NA; 2 gives elements without names. `skip`, if given, drops bindings of
 * environment `skip_env` for which skip(sym, data) is 1 (their cells too). */
typedef int (*mk_skip_fn)(SEXP sym, void *data);
typedef struct {
  int elements;
  SEXP skip_env;
  mk_skip_fn skip;
  void *skip_data;
} mk_edge_opts;
void mk_node_edges(SEXP x, const mk_edge_opts *opts, mk_edge_fn fn, void *data, mk_cost *owned);

/* Nodes kept alive while a walk runs: what only a weak reference holds
 * could be freed by a collection during the walk (robj.h may allocate). */
typedef struct { SEXP *v; size_t n, cap; } mk_pins;
int mk_pins_add(mk_pins *p, SEXP x);    /* 0, or -1 when out of memory */
void mk_pins_release(mk_pins *p);       /* releases them all, frees p's buffer */

/* ---- the walker ---- */

/* The hash of a node's address, for pointer sets and maps: nodes are
 * 8-byte aligned, so the low bits carry nothing. */
static inline uint64_t mk_ptr_hash(SEXP x) {
  return ((uint64_t) (uintptr_t) x >> 3) * UINT64_C(0x9E3779B97F4A7C15);
}

/* The error for a walk that ran out of memory (the walker's own buffers). */
void mk_walk_oom(void) MK_NORETURN;
/* Frees the tables walks keep for the next walk (at most 64 MiB). */
void mk_walk_release(void);

typedef struct mk_ptrset mk_ptrset;
mk_ptrset *mk_ptrset_new(size_t hint);     /* NULL on allocation failure */
int mk_ptrset_add(mk_ptrset *s, SEXP x);   /* 1 if newly added, 0 if present, -1 on allocation failure */
int mk_ptrset_has(const mk_ptrset *s, SEXP x);
void mk_ptrset_prefetch(const mk_ptrset *s, SEXP x);   /* fetch ahead where x's entry is */
size_t mk_ptrset_size(const mk_ptrset *s);
size_t mk_ptrset_bytes(const mk_ptrset *s);
void mk_ptrset_free(mk_ptrset *s);

typedef struct mk_walker mk_walker;

/* Called for every node counted (x), and for costs owned by a node (x is
 * NULL, type the owned node's type). */
typedef void (*mk_node_hook)(void *data, SEXP x, int type, const mk_cost *c);
/* Replaces the pointer set's test: 1 to count and enter x, 0 to skip it,
 * -1 when out of memory. */
typedef int (*mk_enter_fn)(SEXP x, void *data);
/* Called for every node reached again (already counted), with its path id. */
typedef void (*mk_again_fn)(void *data, SEXP x, int path);

typedef struct {
  mk_node_hook hook; void *hook_data;
  mk_enter_fn enter; void *enter_data;
  /* With enter: called some elements ahead of entering a list's or
   * character vector's element, to fetch what enter() will read. */
  void (*enter_prefetch)(SEXP x, void *data);
  int follow_globals;         /* enter global nodes too (retained marking) */
  int skip_parents;           /* do not follow environments' parents */
  mk_edge_opts edges;         /* bindings to skip */
  int paths;                  /* record a path for every edge (mem_dupes) */
  mk_again_fn again; void *again_data;
  int root_kind; SEXP root_name;  /* the root's path record (paths) */
  /* Called with the nodes a node owns (binding and attribute cells, hash
   * table, hidden promises) when it is expanded, before the hook sees them. */
  void (*owned)(void *data, SEXP owner, const mk_cost *c); void *owned_data;
} mk_walk_opts;

mk_walker *mk_walker_new(size_t hint);     /* NULL on allocation failure */
/* Options stay in force for later walks; NULL resets them. */
void mk_walker_set(mk_walker *w, const mk_walk_opts *opts);
/* The set of nodes seen. Adding nodes before a walk excludes them (and what
 * is reachable only through them). */
mk_ptrset *mk_walker_seen(mk_walker *w);
/* Forgets every node seen (a fresh set sized for `hint` nodes), keeping
 * options and buffers: many small walks without a new walker each. 0, or
 * -1 when out of memory. */
int mk_walker_clear(mk_walker *w, size_t hint);
/* Walks from x, adding to *out the cost of every node not yet seen (and not
 * global, unless follow_globals), and marks them seen. 0, or -1 when out of
 * memory. */
int mk_walker_add(mk_walker *w, SEXP x, mk_cost *out);
/* The same from a binding: its promise (counted as a hidden cell where the
 * API hides it), code, environment and value; not the binding cell. */
int mk_walker_add_binding(mk_walker *w, const mk_binding *b, mk_cost *out);
/* Walk statistics: nodes counted, bytes the walker holds, deepest stack. */
double mk_walker_nodes(const mk_walker *w);
size_t mk_walker_bytes(const mk_walker *w);
size_t mk_walker_peak(const mk_walker *w);
void mk_walker_free(mk_walker *w);

/* Paths (opts.paths): every edge walked gets a record; a node's path is the
 * chain of records to the root (parent -1). */
typedef struct { int parent, kind; SEXP name; double index; } mk_path;
/* The path id of the node just counted (valid inside a hook), or -1. */
int mk_walker_path(const mk_walker *w);
const mk_path *mk_walker_paths(const mk_walker *w, size_t *n);

#endif
