/*
 * walk.h: the object-graph walker every size function uses (src/size.c).
 *
 * A node's cost is counted the way gc() counts it (see mk_node_cost); a walk
 * visits each node once, using a pointer set, and an explicit stack, so any
 * depth is safe. Nothing here forces a promise, calls an active binding,
 * materialises an ALTREP vector or allocates on R's heap.
 *
 * Typical use (the whole walk in one call):
 *
 *   mk_walker *w = mk_walker_new(0);
 *   if (w == NULL) mk_error("size", "out of memory");
 *   mk_cost c = {0, 0, 0};
 *   int rc = mk_walker_add(w, x, &c);  // 0, or -1 when out of memory
 *   mk_walker_free(w);
 *
 * mk_walker_add() checks for user interrupts on large walks, so it may
 * longjmp: run it under R_ExecWithCleanup() or R_UnwindProtect() with a
 * cleanup that frees the walker. Everything else here never longjmps.
 */
#ifndef MEMKIT_WALK_H
#define MEMKIT_WALK_H

#include <stddef.h>
#define R_NO_REMAP
#include <Rinternals.h>

/* Self cost of one node, exactly as gc() counts it: one Ncell per node
 * (vector headers included) and the Vcells of its data (small vectors take
 * their size class: 1, 2, 4, 8 or 16 cells; large ones their exact length in
 * 8-byte units). `bytes` is the real footprint: 56 per non-vector node or
 * zero-length vector, 48 + 8 * vcells per vector. An ALTREP object is a plain
 * 56-byte node (its data live in data1/data2, walked as children). Never
 * materialises anything. */
typedef struct { double ncells, vcells, bytes; } mk_cost;
void mk_node_cost(SEXP x, mk_cost *out);

/* Calls visit(child, data) for every node x references: attributes (the
 * attribute pairlist itself), list/pairlist/language elements, closure
 * formals/body/environment, promise value/code/environment, environment
 * frame (binding cells), parent and hash table, external-pointer protected
 * value and tag, bytecode code and constants, weak-reference key, value and
 * finalizer, ALTREP data1/data2. Global nodes are included (the caller decides
 * what to skip with mk_is_global()). Never visits: the attributes of a CHARSXP
 * (R uses that field for its string cache), an ALTREP class object, a weak
 * reference's link to the next weak reference, a binding cell's immediate
 * (unboxed) value, which is not a node. Never forces, calls or materialises
 * anything. */
typedef void (*mk_visit_fn)(SEXP child, void *data);
void mk_node_children(SEXP x, mk_visit_fn visit, void *data);

/* 1 for nodes that sizes never count or follow, because gc() never frees
 * them: R_NilValue, symbols, NA_STRING, R_BlankString, primitives, the shared
 * TRUE/FALSE/NA logical scalars, the global, base and empty environments,
 * namespaces, and environments on the search path. ALTREP class objects are
 * never reached (mk_node_children does not visit them). */
int mk_is_global(SEXP x);

/* A fast open-addressing set of node pointers. */
typedef struct mk_ptrset mk_ptrset;
mk_ptrset *mk_ptrset_new(size_t hint);     /* NULL on allocation failure */
int mk_ptrset_add(mk_ptrset *s, SEXP x);   /* 1 if newly added, 0 if present, -1 on allocation failure */
int mk_ptrset_has(const mk_ptrset *s, SEXP x);
size_t mk_ptrset_size(const mk_ptrset *s); /* number of members */
size_t mk_ptrset_bytes(const mk_ptrset *s);/* memory the set holds */
void mk_ptrset_free(mk_ptrset *s);

/* A whole-graph walk: a pointer set plus an explicit stack. */
typedef struct mk_walker mk_walker;
mk_walker *mk_walker_new(size_t hint);     /* NULL on allocation failure */
/* The walker's set of nodes already seen. Adding nodes to it before a walk
 * excludes them (and whatever is reachable only through them). */
mk_ptrset *mk_walker_seen(mk_walker *w);
/* Walks from x, adding to *out the cost of every node not yet seen and not
 * global, and marks them seen. Returns 0, or -1 when out of memory. May
 * longjmp on a user interrupt (see above). An environment's binding cells and
 * hash table belong to it alone (nothing else can point to them): they are
 * counted with the environment and never enter the set, so seeding the set
 * with one of them has no effect. */
int mk_walker_add(mk_walker *w, SEXP x, mk_cost *out);
void mk_walker_free(mk_walker *w);

#endif
