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

/* Bytes per element of each vector type (CHARSXP: plus its trailing NUL). */
static const unsigned char elt_bytes[32] = {
  [LGLSXP] = sizeof(int), [INTSXP] = sizeof(int), [REALSXP] = sizeof(double),
  [CPLXSXP] = sizeof(Rcomplex), [STRSXP] = sizeof(SEXP), [VECSXP] = sizeof(SEXP),
  [EXPRSXP] = sizeof(SEXP), [RAWSXP] = 1, [CHARSXP] = 1
};

static double vecrecs(int t, R_xlen_t n) {
  if (t == CHARSXP) n++;
  return (double) (((uint64_t) n * elt_bytes[t & 31] + 7) / 8);
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

/* VECRECs 0 to 16 rounded up to their small size class. */
static const unsigned char small_class[17] = {0, 1, 2, 4, 4, 8, 8, 8, 8, 16, 16, 16, 16, 16, 16, 16, 16};

static inline void vector_cost(double v, mk_cost *out) {
  out->ncells = 1;
  if (v <= 0) {               /* class-0 node */
    out->vcells = 0;
    out->bytes = 56;
    return;
  }
  if (v <= 16) v = small_class[(int) v];   /* small size classes: 1, 2, 4, 8, 16 */
  out->vcells = v;
  out->bytes = 48 + 8 * v;
}

/* The cost of x, of type t, ALTREP or not: each asked of R once per node.
 * *len gets a vector's length (0 for other nodes). */
static inline void node_cost_len(SEXP x, int t, int alt, mk_cost *out, R_xlen_t *len) {
  *len = 0;
  if (alt || !is_vector_type(t)) {
    *out = mk_cell_cost;
    return;
  }
  if (t == WEAKREFSXP) {      /* allocated as a list of 4 (R_MakeWeakRef) */
    vector_cost(4, out);
    return;
  }
  R_xlen_t n = XLENGTH(x);
  *len = n;
  if (t != CHARSXP) n = mk_robj_capacity_len(x, n);
  vector_cost(vecrecs(t, n), out);
}

static inline void node_cost(SEXP x, int t, int alt, mk_cost *out) {
  R_xlen_t len;
  node_cost_len(x, t, alt, out, &len);
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

/* elt_bytes of the vector types walk_plain() counts in its own loop: never
 * global (global_kind 0: not CHARSXP, not LGLSXP); 0 for the others. */
static const unsigned char plain_bytes[32] = {
  [INTSXP] = sizeof(int), [REALSXP] = sizeof(double), [CPLXSXP] = sizeof(Rcomplex),
  [STRSXP] = sizeof(SEXP), [VECSXP] = sizeof(SEXP), [EXPRSXP] = sizeof(SEXP), [RAWSXP] = 1
};
/* Vectors whose elements are walked. */
static const unsigned char has_elements[32] = {[STRSXP] = 1, [VECSXP] = 1, [EXPRSXP] = 1};

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
  int kind = (a->s4 && tag != R_ClassSymbol) ? MK_EDGE_SLOT : MK_EDGE_ATTR;
  edge(a->fn, a->data, value, kind, tag, 0, 0);
}

typedef struct {
  mk_edge_fn fn; void *data;
  mk_cost *owned;
  const mk_edge_opts *opts;
  SEXP env;
} bind_ctx;

static void binding_edges(const mk_binding *b, mk_edge_fn fn, void *data, mk_cost *owned) {
  SEXP nm = b->sym;            /* its name is read only if wanted */
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
    edge(fn, data, CAR(x), MK_EDGE_ELEMENT, tag, 0, 0);
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
    SEXP names = (t == STRSXP || opts->elements == 2) ? R_NilValue : mk_robj_attr(x, R_NamesSymbol);
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

/* R allocates nodes and small vectors from pages of one size class each, so
 * the nodes of a graph lie close together. The set is keyed by 2048-byte
 * chunk of the address space: one entry (the chunk's address and a 64-bit
 * map of its 32-byte positions) stands for all the members in the chunk, so
 * the nodes of a list allocated in a row share a few cache lines of the set
 * instead of taking a cache miss each. No two nodes share a position: every
 * node R allocates takes at least 48 bytes (a vector's header). Open
 * addressing with linear probing; the table grows by half when 3/4 full,
 * and any capacity works because a slot is picked by multiplying a 32-bit
 * hash by the capacity (Lemire's range reduction). Entries cost 16 bytes:
 * well under a byte per member where R's pages are dense, at most 32 where
 * every member sits in a chunk of its own (large vectors far apart). */
#define CHUNK_SHIFT 11
#define POSITION_SHIFT 5

typedef struct { uintptr_t key; uint64_t bits; } chunk_entry;

struct mk_ptrset {
  chunk_entry *slots;
  int k;                      /* capacity class */
  size_t cap, used, limit;    /* slots, entries in use, the grow threshold */
  size_t n;                   /* members */
  uintptr_t last_key;         /* the chunk of the last member added, */
  chunk_entry *last;          /* and its entry: neighbours share chunks */
};

#define PTRSET_MAX_CAP ((size_t) 0xFFFFFFFFu)

static inline uintptr_t chunk_key(SEXP x) { return (uintptr_t) x >> CHUNK_SHIFT; }
static inline uint64_t chunk_bit(SEXP x) {
  return UINT64_C(1) << (((uintptr_t) x >> POSITION_SHIFT) & 63);
}
static inline size_t chunk_slot(uintptr_t key, size_t cap) {
  uint64_t h = (uint64_t) key * UINT64_C(0x9E3779B97F4A7C15);
  return (size_t) (((h >> 32) * (uint64_t) cap) >> 32);
}

void mk_walk_oom(void) {
  mk_error("memory", "not enough memory to walk the object graph");
}

/* Capacities follow one sequence (64, then half as much again each step),
 * so a table freed by one walk fits the next walk's request exactly. Freed
 * tables are kept, one per capacity and at most CACHE_MAX bytes in all, and
 * handed out again cleared: a fresh table from the system costs a page
 * fault per 4 KiB touched, which on a graph of a million nodes takes longer
 * than the walk. mk_walk_release() gives them back (the package's unload). */
#define CAP_CLASSES 48
#define CACHE_MAX ((size_t) 64 << 20)
static chunk_entry *table_cache[CAP_CLASSES];
static size_t table_cached_bytes;

static size_t class_cap(int k) {
  size_t cap = 64;
  for (int i = 0; i < k; i++) cap += cap / 2;
  return cap;
}

static int ptrset_alloc(mk_ptrset *s, int k) {
  if (k >= CAP_CLASSES) return -1;
  size_t cap = class_cap(k);
  if (cap > PTRSET_MAX_CAP) return -1;
  chunk_entry *slots = table_cache[k];
  if (slots != NULL) {
    table_cache[k] = NULL;
    table_cached_bytes -= cap * sizeof(chunk_entry);
    memset(slots, 0, cap * sizeof(chunk_entry));
  } else {
    slots = calloc(cap, sizeof(chunk_entry));
    if (slots == NULL) return -1;
  }
  s->slots = slots;
  s->last_key = 0;
  s->last = NULL;
  s->k = k;
  s->cap = cap;
  s->limit = cap / 4 * 3;
  return 0;
}

static void table_free(chunk_entry *slots, int k) {
  if (slots == NULL) return;
  size_t bytes = class_cap(k) * sizeof(chunk_entry);
  if (table_cache[k] == NULL && table_cached_bytes + bytes <= CACHE_MAX) {
    table_cache[k] = slots;
    table_cached_bytes += bytes;
    return;
  }
  free(slots);
}

static void spare_release(void);

void mk_walk_release(void) {
  spare_release();
  for (int k = 0; k < CAP_CLASSES; k++) {
    free(table_cache[k]);
    table_cache[k] = NULL;
  }
  table_cached_bytes = 0;
}

mk_ptrset *mk_ptrset_new(size_t hint) {
  mk_ptrset *s = malloc(sizeof(mk_ptrset));
  if (s == NULL) return NULL;
  /* A hint counts members; dense ones share entries, so start at a quarter
   * of what one entry per member would take and grow as needed. */
  int k = 0;
  while (class_cap(k) / 4 * 3 < hint / 4 && k + 1 < CAP_CLASSES) k++;
  s->n = s->used = 0;
  if (ptrset_alloc(s, k) != 0) {
    free(s);
    return NULL;
  }
  return s;
}

/* Grows the table by `steps` capacity classes. */
static int ptrset_grow(mk_ptrset *s, int steps) {
  chunk_entry *old = s->slots;
  size_t oldcap = s->cap;
  int oldk = s->k;
  if (ptrset_alloc(s, oldk + steps) != 0) return -1;
  size_t cap = s->cap;
  for (size_t i = 0; i < oldcap; i++) {
    if (old[i].key == 0) continue;
    size_t j = chunk_slot(old[i].key, cap);
    while (s->slots[j].key != 0) if (++j == cap) j = 0;
    s->slots[j] = old[i];
  }
  table_free(old, oldk);
  return 0;
}

/* The entry of x's chunk, or NULL when there is none. */
static inline chunk_entry *chunk_find(const mk_ptrset *s, uintptr_t key) {
  size_t cap = s->cap, i = chunk_slot(key, cap);
  for (;;) {
    chunk_entry *e = &s->slots[i];
    if (e->key == key) return e;
    if (e->key == 0) return NULL;
    if (++i == cap) i = 0;
  }
}

static inline int ptrset_add(mk_ptrset *s, SEXP x) {
  uintptr_t key = chunk_key(x);
  uint64_t bit = chunk_bit(x);
  if (key == s->last_key) {
    chunk_entry *e = s->last;
    if (e->bits & bit) return 0;
    e->bits |= bit;
    s->n++;
    return 1;
  }
  size_t cap = s->cap, i = chunk_slot(key, cap);
  chunk_entry *slots = s->slots;
  for (;;) {
    chunk_entry *e = &slots[i];
    if (e->key == key) {
      s->last_key = key;
      s->last = e;
      if (e->bits & bit) return 0;
      e->bits |= bit;
      s->n++;
      return 1;
    }
    if (e->key == 0) break;
    if (++i == cap) i = 0;
  }
  if (s->used >= s->limit) {
    if (ptrset_grow(s, 1) != 0) return -1;
    cap = s->cap;
    i = chunk_slot(key, cap);
    while (s->slots[i].key != 0) if (++i == cap) i = 0;
  }
  s->slots[i].key = key;
  s->slots[i].bits = bit;
  s->last_key = key;
  s->last = &s->slots[i];
  s->used++;
  s->n++;
  return 1;
}

/* Room for `extra` more chunks in one step (a long list is about to be
 * walked) instead of growing by half many times over. */
static int ptrset_reserve(mk_ptrset *s, size_t extra) {
  int steps = 0;
  size_t want = s->used + extra;
  for (int k = s->k; k + 1 < CAP_CLASSES && class_cap(k) / 4 * 3 < want; k++) steps++;
  return steps > 0 ? ptrset_grow(s, steps) : 0;
}

int mk_ptrset_add(mk_ptrset *s, SEXP x) { return ptrset_add(s, x); }

int mk_ptrset_has(const mk_ptrset *s, SEXP x) {
  const chunk_entry *e = chunk_find(s, chunk_key(x));
  return e != NULL && (e->bits & chunk_bit(x)) != 0;
}

/* Where x's entry would be: for prefetching. */
static inline const void *ptrset_slot_addr(const mk_ptrset *s, SEXP x) {
  return &s->slots[chunk_slot(chunk_key(x), s->cap)];
}

void mk_ptrset_prefetch(const mk_ptrset *s, SEXP x) { MK_PREFETCH(ptrset_slot_addr(s, x)); }

size_t mk_ptrset_size(const mk_ptrset *s) { return s->n; }
size_t mk_ptrset_bytes(const mk_ptrset *s) { return s->cap * sizeof(chunk_entry) + sizeof(mk_ptrset); }

void mk_ptrset_free(mk_ptrset *s) {
  if (s == NULL) return;
  table_free(s->slots, s->k);
  free(s);
}

/* ---- the walker -------------------------------------------------------- */

/* A frame is a node whose children are still to be visited: i < 0 for a
 * node to expand, i >= 0 for the next element of a list or character
 * vector. The stack grows with the depth of the graph and with the nodes
 * met but not yet expanded. */
typedef struct { SEXP x; R_xlen_t i; int path; } frame;

#define RECENT_SIZE 1024
#define BIG_BITS 17
#define BIG_SIZE ((size_t) 1 << BIG_BITS)
#define BIG_MIN 65536
static inline size_t big_slot(SEXP s) { return (size_t) (mk_ptr_hash(s) >> (64 - BIG_BITS)); }

struct mk_walker {
  mk_ptrset *seen;
  /* Strings seen lately, direct-mapped: a character column repeats a few
   * strings millions of times, and this check is cheaper than the set's. */
  SEXP recent[RECENT_SIZE];
  uint32_t recent_walk[RECENT_SIZE];   /* with a custom enter(): whose entry */
  uint32_t walks;                      /* walks started, numbered from 1 */
  int recent_used;
  /* With a custom enter(): a larger table of the same kind, made when a
   * long character vector is first met (its strings repeat across a
   * column: a factor-like column of 1e5 distinct strings in 1e7 rows). */
  struct recent_entry { SEXP s; uint32_t walk; } *big;
  frame *stack;
  size_t cap, depth, peak;
  uint64_t nodes;
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
  mk_pins pins;
  mk_path *paths;
  size_t npaths, cappaths;
};

/* One freed walker is kept, with its stack and child buffers, and handed
 * out again cleared: a walk then asks malloc() for nothing of its own size
 * class. (A request of 1 KiB or more makes glibc first sort out every small
 * block other code freed since, which after a large C++ container is freed
 * takes as long as a walk of a million nodes.) Buffers that grew past
 * SPARE_MAX bytes are not kept. */
#define SPARE_MAX ((size_t) 1 << 20)
static mk_walker *spare_walker;

mk_walker *mk_walker_new(size_t hint) {
  mk_walker *w = spare_walker;
  frame *stack = NULL, *kids = NULL;
  size_t cap = 0, capkids = 0;
  if (w != NULL) {
    spare_walker = NULL;
    stack = w->stack;
    cap = w->cap;
    kids = w->kids;
    capkids = w->capkids;
    memset(w, 0, sizeof *w);
  } else {
    w = calloc(1, sizeof(mk_walker));
    if (w == NULL) return NULL;
  }
  w->seen = mk_ptrset_new(hint);
  if (stack == NULL) {
    cap = 64;
    stack = malloc(cap * sizeof(frame));
  }
  w->stack = stack;
  w->cap = cap;
  w->kids = kids;
  w->capkids = capkids;
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

int mk_walker_clear(mk_walker *w, size_t hint) {
  mk_ptrset *s = mk_ptrset_new(hint);
  if (s == NULL) return -1;
  mk_ptrset_free(w->seen);
  w->seen = s;
  if (w->recent_used) {
    memset(w->recent, 0, sizeof w->recent);
    memset(w->recent_walk, 0, sizeof w->recent_walk);
    w->recent_used = 0;
  }
  w->nodes = 0;
  w->depth = 0;
  return 0;
}
double mk_walker_nodes(const mk_walker *w) { return (double) w->nodes; }
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
  free(w->big);
  w->big = NULL;
  mk_pins_release(&w->pins);
  mk_ptrset_free(w->seen);
  w->seen = NULL;
  free(w->paths);
  w->paths = NULL;
  if (w->cap * sizeof(frame) > SPARE_MAX) {
    free(w->stack);
    w->stack = NULL;
  }
  if (w->capkids * sizeof(frame) > SPARE_MAX) {
    free(w->kids);
    w->kids = NULL;
    w->capkids = 0;
  }
  if (spare_walker == NULL && w->stack != NULL) {
    spare_walker = w;
    return;
  }
  free(w->stack);
  free(w->kids);
  free(w);
}

static void spare_release(void) {
  mk_walker *w = spare_walker;
  spare_walker = NULL;
  if (w == NULL) return;
  free(w->stack);
  free(w->kids);
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

/* Does x (of type t, length len if a vector) have children worth a stack
 * frame? */
static inline int has_children_t(const mk_walker *w, SEXP x, int t, int alt, R_xlen_t len) {
  if (t == CHARSXP || t == NILSXP || t == SPECIALSXP || t == BUILTINSXP) return 0;
  if (t == SYMSXP) return w->o.follow_globals;
  if (alt) return 1;
  switch (t) {
  case LGLSXP: case INTSXP: case REALSXP: case CPLXSXP: case RAWSXP: case S4SXP:
    return mk_robj_has_attrs_t(x);
  case STRSXP: case VECSXP: case EXPRSXP:
    return len > 0 || mk_robj_has_attrs_t(x);
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
    rc = ptrset_add(w->seen, x);
  }
  if (rc <= 0) {
    if (rc == 0 && w->o.again) w->o.again(w->o.again_data, x, w->cur_path);
    return rc;
  }
  int alt = ALTREP(x);
  mk_cost c;
  R_xlen_t len;
  node_cost_len(x, t, alt, &c, &len);
  count(w, x, t, &c);
  if ((++w->nodes & 0xFFFFF) == 0) mk_robj_check_interrupt();
  return 1 + has_children_t(w, x, t, alt, len);
}

int mk_pins_add(mk_pins *p, SEXP x) {
  if (p->n == p->cap) {
    SEXP *v = mk_grow(p->v, &p->cap, sizeof *v, 16);
    if (v == NULL) return -1;
    p->v = v;
  }
  R_PreserveObject(x);
  p->v[p->n++] = x;
  return 0;
}

void mk_pins_release(mk_pins *p) {
  for (size_t i = 0; i < p->n; i++) R_ReleaseObject(p->v[i]);
  free(p->v);
  p->v = NULL;
  p->n = p->cap = 0;
}

static void kid_edge(const mk_edge *e, void *data) {
  mk_walker *w = data;
  if (w->oom) return;
  if (w->o.skip_parents && e->kind == MK_EDGE_PARENT) return;
  int path = -1;
  if (w->o.paths) {
    path = add_path(w, e->kind, mk_edge_name(e), e->index);
    if (path < 0) {
      w->oom = 1;
      return;
    }
  }
  w->cur_path = path;
  int rc = visit(w, e->child);
  if (rc < 0) w->oom = 1;
  if (rc <= 0) return;
  if (e->kind == MK_EDGE_WEAK && mk_pins_add(&w->pins, e->child) != 0) w->oom = 1;
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

/* A list's element i + 32 fetched ahead, and its set entry as well where a
 * new chunk begins (within a chunk, the entry is the one just used). */
static inline void fetch_ahead(const mk_ptrset *seen, const SEXP *p, R_xlen_t i, R_xlen_t n) {
  if (i + 32 < n) {
    MK_PREFETCH(p[i + 32]);
    if (chunk_key(p[i + 32]) != chunk_key(p[i + 31])) MK_PREFETCH(ptrset_slot_addr(seen, p[i + 32]));
  }
}

/* A list's loop stopped at element i: its frame popped when it is done,
 * else left to resume there, and `next` (an element with children of its
 * own) pushed above it. */
static int elements_stop(mk_walker *w, frame *f, R_xlen_t i, R_xlen_t n, SEXP next) {
  if (i >= n) w->depth--;
  else f->i = i;
  if (next != NULL && push(w, next, -1, -1) != 0) return -1;
  return 0;
}

/* A list's elements from element i on, for plain sizes: the common
 * element, a new vector without attributes, is counted right here, its cost
 * summed locally; anything else goes through visit(). The set's entry of
 * the chunk last used (R allocates neighbours together) and the count of
 * members it gained are kept in registers: they go back to the set before
 * anything else touches it. Stops at an element with children of its own,
 * which it pushes. */
static int walk_plain(mk_walker *w, frame *f, const SEXP *p, R_xlen_t n, R_xlen_t i) {
  mk_ptrset *seen = w->seen;
  uintptr_t lk = seen->last_key;
  chunk_entry *le = seen->last;
  uint64_t nvec = 0, nzero = 0, vcells = 0, gained = 0;
  SEXP next = NULL;
  int rc = 0;
  for (; i < n; i++) {
    fetch_ahead(seen, p, i, n);
    SEXP s = p[i];
    if (s == NULL) continue;
    int t = TYPEOF(s);
    unsigned eb = plain_bytes[t & 31];
    if (eb == 0 || ALTREP(s)) {
      seen->n += gained;
      gained = 0;
      rc = visit(w, s);
      lk = seen->last_key;
      le = seen->last;
      if (rc < 0) break;
      if (rc == 2) {
        next = s;
        i++;
        break;
      }
      continue;
    }
    uintptr_t key = chunk_key(s);
    uint64_t bit = chunk_bit(s);
    if (key == lk) {
      if (le->bits & bit) continue;
      le->bits |= bit;
      gained++;
    } else {
      seen->n += gained;
      gained = 0;
      rc = ptrset_add(seen, s);
      lk = seen->last_key;
      le = seen->last;
      if (rc < 0) break;
      if (rc == 0) continue;
    }
    R_xlen_t len = XLENGTH(s);
    uint64_t v = ((uint64_t) mk_robj_capacity_len(s, len) * eb + 7) / 8;
    if (v <= 16) v = small_class[v];
    nzero += v == 0;
    vcells += v;
    if ((++nvec & 0xFFFFF) == 0) {
      seen->n += gained;
      gained = 0;
      mk_robj_check_interrupt();
    }
    if ((len > 0 && has_elements[t]) || mk_robj_has_attrs_t(s)) {
      next = s;
      i++;
      break;
    }
  }
  seen->n += gained;
  if (nvec > 0) {
    w->nodes += nvec;
    /* Zero-length vectors are class-0 nodes: 56 bytes, no Vcells; the
     * others 48 bytes of header and their Vcells. */
    w->out->ncells += (double) nvec;
    w->out->vcells += (double) vcells;
    w->out->bytes += 48.0 * (double) nvec + 8.0 * (double) (vcells + nzero);
  }
  if (rc < 0) return -1;
  return elements_stop(w, f, i, n, next);
}

/* The elements of a list or character vector from element f->i on, in a
 * tight loop that prefetches ahead; stops at an element with children of
 * its own, which it pushes. Runs of the same string skip the set. */
static int walk_elements(mk_walker *w, frame *f) {
  SEXP x = f->x;
  const SEXP *p = (const SEXP *) DATAPTR_RO(x);
  R_xlen_t n = XLENGTH(x), i = f->i;
  void (*pre)(SEXP, void *) = w->o.enter ? w->o.enter_prefetch : NULL;
  if (TYPEOF(x) == STRSXP && w->o.enter && n - i > BIG_MIN && w->big == NULL)
    w->big = calloc(BIG_SIZE, sizeof *w->big);     /* NULL: the small cache does */
  if (TYPEOF(x) == STRSXP && w->o.enter && w->big != NULL) {
    /* Each string once per walk: its entry fetched 32 ahead, and where it
     * is not this walk's, what enter() reads fetched 16 ahead. */
    struct recent_entry *big = w->big;
    uint32_t walk_id = w->walks;
    SEXP prev = NULL;
    for (; i < n; i++) {
      if (i + 32 < n && p[i + 32] != NULL) MK_PREFETCH(&big[big_slot(p[i + 32])]);
      if (i + 16 < n && p[i + 16] != NULL) {
        const struct recent_entry *e = &big[big_slot(p[i + 16])];
        if (e->s != p[i + 16] || e->walk != walk_id) {
          MK_PREFETCH(p[i + 16]);
          if (pre) pre(p[i + 16], w->o.enter_data);
        }
      }
      SEXP s = p[i];
      if (s == NULL || s == prev) continue;
      prev = s;
      struct recent_entry *e = &big[big_slot(s)];
      if (e->s == s && e->walk == walk_id) continue;
      e->s = s;
      e->walk = walk_id;
      if (visit(w, s) < 0) return -1;
    }
    w->depth--;
    return 0;
  }
  if (TYPEOF(x) == STRSXP) {
    SEXP prev = NULL;
    for (; i < n; i++) {
      if (i + 8 < n && p[i + 8] != NULL) MK_PREFETCH(p[i + 8]);
      if (pre && i + 16 < n && p[i + 16] != NULL && p[i + 16] != p[i + 15])
        pre(p[i + 16], w->o.enter_data);
      SEXP s = p[i];
      if (s == NULL || s == prev) continue;
      prev = s;
      /* The cache stands for the set. A custom enter() may let a string
       * in again on a later walk, so there it holds for this walk only:
       * its entries carry the walk's number. */
      size_t slot = ((uintptr_t) s >> 4) & (RECENT_SIZE - 1);
      SEXP *r = &w->recent[slot];
      w->recent_used = 1;
      if (!w->o.enter) {
        if (*r == s) continue;
        *r = s;
      } else {
        if (*r == s && w->recent_walk[slot] == w->walks) continue;
        *r = s;
        w->recent_walk[slot] = w->walks;
      }
      if (visit(w, s) < 0) return -1;
    }
    w->depth--;
    return 0;
  }
  mk_ptrset *seen = w->seen;
  /* A long list's elements are mostly new: make room for them at once
   * (R's pages put some 16 to 40 in a chunk). */
  if (f->i == 0 && !w->o.enter && n > 4096 && ptrset_reserve(seen, (size_t) n / 16) != 0) return -1;
  /* Plain sizes (no hook, no custom set, no re-visit callback). */
  if (!w->o.enter && !w->o.hook && !w->o.again && !w->o.follow_globals) return walk_plain(w, f, p, n, i);
  SEXP next = NULL;
  for (; i < n; i++) {
    fetch_ahead(seen, p, i, n);
    SEXP s = p[i];
    if (s == NULL) continue;
    if (pre && i + 16 < n && p[i + 16] != NULL) pre(p[i + 16], w->o.enter_data);
    int rc = visit(w, s);
    if (rc < 0) return -1;
    if (rc == 2) {
      next = s;
      i++;
      break;
    }
  }
  return elements_stop(w, f, i, n, next);
}

static int walk(mk_walker *w, SEXP root, mk_cost *out) {
  if (++w->walks == 0) {
    /* Numbers wrapped around: no entry may look current. */
    memset(w->recent_walk, 0, sizeof w->recent_walk);
    if (w->big != NULL) memset(w->big, 0, BIG_SIZE * sizeof *w->big);
    w->walks = 1;
  }
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
