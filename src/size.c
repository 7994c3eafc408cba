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
#include "utils.h"

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
    if (x == R_GlobalEnv || x == R_BaseEnv || x == R_EmptyEnv ||
        x == R_BaseNamespace)
      return 1;
    /* The search path first: it also holds user databases (attach()ed
     * object tables), whose lookups would run R code. */
    if (on_search_path(x) || R_IsPackageEnv(x)) return 1;
    /* R_IsNamespaceEnv() looks up `.__NAMESPACE__.`; never let it call an
     * active binding of that name. */
    return R_existsVarInFrame(x, R_NamespaceEnvSymbol) &&
      !R_BindingIsActive(R_NamespaceEnvSymbol, x) && R_IsNamespaceEnv(x);
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

/* ---- children ---------------------------------------------------------- */

/* Children are numbered: 0 is the attribute pairlist, then the type's own
 * references (for pairlists the CDR comes last, so the walker can follow a
 * long list in one stack frame). child_at() returns NULL for a slot that
 * holds no node. */
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

static inline int is_pairlist_type(int t) {
  return t == LISTSXP || t == LANGSXP || t == DOTSXP;
}

static SEXP child_at(SEXP x, R_xlen_t i) {
  if (i == 0) return mk_attrib(x);
  if (ALTREP(x)) return i == 1 ? R_altrep_data1(x) : R_altrep_data2(x);
  switch (TYPEOF(x)) {
  case LISTSXP: case LANGSXP: case DOTSXP:
    /* A binding cell may hold an immediate value (a raw double or int) in
     * its CAR: not a node. */
    if (i == 1) return mk_field3(x);                       /* TAG */
    if (i == 2) return mk_cell_immediate(x) ? NULL : mk_field1(x);
    return mk_field2(x);                                   /* CDR */
  case BCODESXP: case PROMSXP:
    /* From R 4.5 an evaluated promise may hold an immediate value too. */
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
  case STRSXP:   /* NULL in a deferred string's cache: not expanded yet */
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

/* One stack frame per node whose children are being visited; the stack
 * grows with the depth of the graph, never with its breadth. */
typedef struct { SEXP x; R_xlen_t i, n; } frame;

#define RECENT_SIZE 1024

struct mk_walker {
  mk_ptrset *seen;
  /* Strings seen lately, direct-mapped: a character column repeats a few
   * strings millions of times, and this check is cheaper than the set's. */
  SEXP recent[RECENT_SIZE];
  frame *stack;
  size_t cap, peak;
  double nodes;               /* nodes counted, for interrupt checks */
  mk_ptrset *dups;            /* if set: nodes reached more than once (strings aside) */
};

mk_walker *mk_walker_new(size_t hint) {
  mk_walker *w = malloc(sizeof(mk_walker));
  if (w == NULL) return NULL;
  w->seen = mk_ptrset_new(hint);
  memset(w->recent, 0, sizeof(w->recent));
  w->cap = 64;
  w->stack = malloc(w->cap * sizeof(frame));
  w->peak = 0;
  w->nodes = 0;
  w->dups = NULL;
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

#if defined(__GNUC__) || defined(__clang__)
# define PREFETCH(p) __builtin_prefetch(p)
#else
# define PREFETCH(p) ((void) 0)
#endif

static int push(mk_walker *w, size_t *depth, SEXP x) {
  if (*depth == w->cap) {
    frame *st = mk_grow(w->stack, &w->cap, sizeof *st, 0);
    if (st == NULL) return -1;
    w->stack = st;
  }
  w->stack[(*depth)++] = (frame) {x, 0, nchildren(x)};
  if (*depth > w->peak) w->peak = *depth;
  return 0;
}

/* Count x if it is new. Returns 1 if counted, 0 if global or seen, -1 when
 * out of memory. */
static inline int visit(mk_walker *w, SEXP x, mk_cost *out, node_hook hook, void *hdata) {
  if (x == R_NilValue || is_global(x)) return 0;
  int rc = mk_ptrset_add(w->seen, x);
  if (rc == 0 && w->dups != NULL && mk_ptrset_add(w->dups, x) < 0) return -1;
  if (rc <= 0) return rc;
  mk_cost c;
  mk_node_cost(x, &c);
  add_cost(out, &c);
  if (hook) hook(hdata, x, &c);
  if ((uint64_t) (w->nodes += 1) % (1u << 20) == 0) R_CheckUserInterrupt();
  return 1;
}

/* Count x without the set: for an environment's binding cells and hash
 * table, which belong to that environment alone (nothing else can point to
 * them), so they are met once, with it. */
static inline void count_node(mk_walker *w, SEXP x, mk_cost *out, node_hook hook, void *hdata) {
  mk_cost c;
  mk_node_cost(x, &c);
  add_cost(out, &c);
  if (hook) hook(hdata, x, &c);
  if ((uint64_t) (w->nodes += 1) % (1u << 20) == 0) R_CheckUserInterrupt();
}

/* Frames with a negative n walk an environment's bindings: a chain of
 * binding cells (x is the next cell), or a hash table (x) from bucket i. */
#define FRAME_CHAIN (-1)
#define FRAME_TABLE (-2)

static int push_special(mk_walker *w, size_t *depth, SEXP x, R_xlen_t kind) {
  if (push(w, depth, x) != 0) return -1;
  w->stack[*depth - 1].n = kind;
  return 0;
}

/* Visit x and give it a frame if it has children. */
static inline int visit_push(mk_walker *w, size_t *depth, SEXP x, mk_cost *out,
                             node_hook hook, void *hdata) {
  int rc = visit(w, x, out, hook, hdata);
  if (rc <= 0) return rc;
  if (has_children(x) && push(w, depth, x) != 0) return -1;
  return 0;
}

/* The walk. `hook`, when given, sees every counted node. */
static int walk(mk_walker *w, SEXP root, mk_cost *out, node_hook hook, void *hdata) {
  int rc = visit(w, root, out, hook, hdata);
  if (rc <= 0) return rc;
  if (!has_children(root)) return 0;
  size_t depth = 0;
  if (push(w, &depth, root) != 0) return -1;

  while (depth > 0) {
    frame *f = &w->stack[depth - 1];
    if (f->n == FRAME_CHAIN) {
      SEXP cell = f->x;
      if (TYPEOF(cell) != LISTSXP) {
        depth--;
        continue;
      }
      f->x = CDR(cell);
      count_node(w, cell, out, hook, hdata);
      /* The TAG is the binding's symbol: global. */
      if (mk_attrib(cell) != R_NilValue &&
          visit_push(w, &depth, mk_attrib(cell), out, hook, hdata) < 0) return -1;
      if (!mk_cell_immediate(cell) &&
          visit_push(w, &depth, mk_field1(cell), out, hook, hdata) < 0) return -1;
      continue;
    }
    if (f->n == FRAME_TABLE) {
      SEXP tab = f->x;
      const SEXP *p = (const SEXP *) DATAPTR_RO(tab);
      R_xlen_t n = XLENGTH(tab), i = f->i;
      mk_ptrset *seen = w->seen;
      for (; i < n; i++) {
        /* Bound by memory latency: fetch bucket cells 16 ahead, and their
         * values and the values' set slots 8 ahead. */
        if (i + 16 < n) PREFETCH(p[i + 16]);
        if (i + 8 < n) {
          SEXP q = p[i + 8];
          if (q != R_NilValue && !mk_cell_immediate(q)) {
            SEXP v = mk_field1(q);
            PREFETCH(v);
            PREFETCH(&seen->slots[ptr_slot(v, seen->cap)]);
          }
        }
        if (p[i] != R_NilValue) break;
      }
      if (i >= n) {
        depth--;
        continue;
      }
      f->i = i + 1;
      if (push_special(w, &depth, p[i], FRAME_CHAIN) != 0) return -1;
      continue;
    }
    if (f->i >= f->n) {
      depth--;
      continue;
    }
    SEXP x = f->x;
    int t = TYPEOF(x);
    if (f->i > 0 && (t == VECSXP || t == EXPRSXP || t == STRSXP) && !ALTREP(x)) {
      /* Elements in a tight loop, prefetching ahead; only elements with
       * children of their own take a stack frame. Runs of the same element
       * (repeated strings in a character column) skip the set. */
      const SEXP *p = (const SEXP *) DATAPTR_RO(x);
      R_xlen_t n = f->n - 1, i = f->i - 1;
      SEXP next = NULL;
      if (t == STRSXP) {
        SEXP prev = NULL;
        for (; i < n; i++) {
          if (i + 8 < n && p[i + 8] != NULL) PREFETCH(p[i + 8]);
          SEXP s = p[i];
          if (s == NULL || s == prev) continue;
          prev = s;
          SEXP *r = &w->recent[((uintptr_t) s >> 4) & (RECENT_SIZE - 1)];
          if (*r == s) continue;
          *r = s;
          if (visit(w, s, out, hook, hdata) < 0) return -1;
        }
      } else {
        if (i == 0 && ptrset_reserve(w->seen, (size_t) n) != 0) return -1;
        mk_ptrset *seen = w->seen;
        for (; i < n; i++) {
          /* Fetch nodes 32 ahead and their set slots 16 ahead. */
          if (i + 32 < n) PREFETCH(p[i + 32]);
          if (i + 16 < n) PREFETCH(&seen->slots[ptr_slot(p[i + 16], seen->cap)]);
          SEXP s = p[i];
          if (s == NULL) continue;
          rc = visit(w, s, out, hook, hdata);
          if (rc < 0) return -1;
          if (rc > 0 && has_children(s)) {
            next = s;
            i++;
            break;
          }
        }
      }
      f->i = i + 1;
      if (next != NULL && push(w, &depth, next) != 0) return -1;
      continue;
    }
    R_xlen_t i = f->i++;
    SEXP child = child_at(x, i);
    if (child == NULL) continue;
    if (t == ENVSXP && i != 2) {
      /* The frame (a chain of binding cells) or the hash table. */
      if (i == 1) {
        if (child != R_NilValue && push_special(w, &depth, child, FRAME_CHAIN) != 0) return -1;
        continue;
      }
      if (i == 3 && TYPEOF(child) == VECSXP) {
        count_node(w, child, out, hook, hdata);
        /* About one value per bucket. */
        if (ptrset_reserve(w->seen, (size_t) XLENGTH(child)) != 0) return -1;
        if (push_special(w, &depth, child, FRAME_TABLE) != 0) return -1;
        continue;
      }
    }
    rc = visit(w, child, out, hook, hdata);
    if (rc < 0) return -1;
    if (rc == 0 || !has_children(child)) continue;
    if (i == 3 && is_pairlist_type(t) && is_pairlist_type(TYPEOF(child))) {
      /* The CDR of a pairlist: continue along the list in this frame. */
      f->x = child;
      f->i = 0;
      f->n = nchildren(child);
      continue;
    }
    if (push(w, &depth, child) != 0) return -1;
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
  mk_error("memory", "not enough memory to walk the object graph");
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

/* What a walk of the objects costs the walker itself: c(nodes counted, bytes of
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
  REAL(out)[0] = c->w->nodes;
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
  mk_walker *w, *whole;
  mk_ptrset *dups;
  trow *rows;
  size_t nrows, cap;
  tchildren kids, rowkids;
  size_t *order;
} tree_call;

static void add_kid(tchildren *k, SEXP node, SEXP name, int kind, double index, int note) {
  if (node == NULL || node == R_NilValue || is_global(node)) return;
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

static SEXP attr_value(SEXP x, SEXP sym) {
  for (SEXP a = mk_attrib(x); a != R_NilValue; a = CDR(a)) {
    if (TAG(a) == sym) return CAR(a);
  }
  return R_NilValue;
}

/* First element of the class attribute (a CHARSXP) or NULL. */
static SEXP first_class(SEXP x) {
  if (TYPEOF(x) == CHARSXP) return NULL;
  SEXP cl = attr_value(x, R_ClassSymbol);
  if (TYPEOF(cl) != STRSXP || ALTREP(cl) || XLENGTH(cl) < 1) return NULL;
  return STRING_ELT(cl, 0);
}

static int node_note(SEXP x) {
  if (ALTREP(x)) return N_ALTREP;
  if (TYPEOF(x) == EXTPTRSXP) return N_EXTPTR;
  if (TYPEOF(x) == PROMSXP) {
    /* An unevaluated promise's value is R_UnboundValue. */
    return (!mk_cell_immediate(x) && mk_field1(x) == R_UnboundValue) ? N_PROMISE : N_FORCED;
  }
  return N_NONE;
}

/* The parts of x that mem_tree() shows as components of their own. */
static void component_children(SEXP x, tchildren *k) {
  k->n = 0;
  int t = TYPEOF(x);
  if (t == CHARSXP) return;
  int s4 = Rf_isS4(x);
  for (SEXP a = mk_attrib(x); a != R_NilValue; a = CDR(a)) {
    SEXP tag = TAG(a);
    SEXP nm = TYPEOF(tag) == SYMSXP ? PRINTNAME(tag) : NULL;
    int kind = (s4 && tag != R_ClassSymbol) ? K_SLOT : K_ATTR;
    add_kid(k, CAR(a), nm, kind, 0, node_note(CAR(a)));
  }
  if (ALTREP(x)) return;
  switch (t) {
  case VECSXP:
  case EXPRSXP: {
    SEXP names = attr_value(x, R_NamesSymbol);
    /* A deferred string's elements would be created by reading them. */
    int use_names = TYPEOF(names) == STRSXP && !ALTREP(names) && XLENGTH(names) == XLENGTH(x);
    R_xlen_t n = XLENGTH(x);
    const SEXP *p = (const SEXP *) DATAPTR_RO(x);
    for (R_xlen_t i = 0; i < n; i++) {
      SEXP nm = use_names ? STRING_ELT(names, i) : NULL;
      add_kid(k, p[i], nm, K_ELEMENT, (double) i + 1, node_note(p[i]));
    }
    break;
  }
  case LISTSXP:
  case LANGSXP:
  case DOTSXP: {
    double i = 1;
    for (SEXP c = x; is_pairlist_type(TYPEOF(c)); c = CDR(c), i++) {
      if (mk_cell_immediate(c)) continue;
      SEXP tag = TAG(c);
      SEXP v = mk_field1(c);
      add_kid(k, v, TYPEOF(tag) == SYMSXP ? PRINTNAME(tag) : NULL, K_ELEMENT, i, node_note(v));
    }
    break;
  }
  case CLOSXP:
    add_kid(k, mk_closure_formals(x), NULL, K_FORMALS, 0, N_NONE);
    add_kid(k, mk_closure_body(x), NULL, K_BODY, 0, N_NONE);
    add_kid(k, mk_closure_env(x), NULL, K_ENV, 0, N_NONE);
    break;
  case ENVSXP: {
    SEXP chains[2] = {mk_env_frame(x), mk_env_hashtab(x)};
    for (int c = 0; c < 2; c++) {
      SEXP h = chains[c];
      R_xlen_t nb = c == 0 ? 1 : (TYPEOF(h) == VECSXP ? XLENGTH(h) : 0);
      for (R_xlen_t b = 0; b < nb; b++) {
        SEXP cell = c == 0 ? h : VECTOR_ELT(h, b);
        for (; TYPEOF(cell) == LISTSXP; cell = CDR(cell)) {
          if (mk_cell_immediate(cell)) continue;
          SEXP tag = TAG(cell);
          SEXP v = mk_field1(cell);
          int note = R_BindingIsActive(tag, x) ? N_ACTIVE : node_note(v);
          add_kid(k, v, PRINTNAME(tag), K_BINDING, 0, note);
        }
      }
    }
    add_kid(k, mk_env_parent(x), NULL, K_PARENT, 0, N_NONE);
    break;
  }
  default:
    break;
  }
}

static void tree_cleanup(void *data) {
  tree_call *c = data;
  mk_walker_free(c->w);
  mk_walker_free(c->whole);
  mk_ptrset_free(c->dups);
  free(c->rows);
  free(c->kids.v);
  free(c->rowkids.v);
  free(c->order);
  c->w = c->whole = NULL;
  c->dups = NULL;
  c->rows = NULL;
  c->kids.v = NULL;
  c->rowkids.v = NULL;
  c->order = NULL;
}

typedef struct { mk_ptrset *dups; int shared; } shared_hook_data;

static void shared_hook(void *data, SEXP x, const mk_cost *cost) {
  shared_hook_data *d = data;
  (void) cost;
  if (!d->shared && mk_ptrset_has(d->dups, x)) d->shared = 1;
}

/* Total of x alone, and whether any of it is reached more than once in the
 * whole object. */
static void component_total(tree_call *c, SEXP x, mk_cost *tot, int *shared) {
  mk_walker_free(c->w);
  c->w = mk_walker_new(0);
  if (c->w == NULL) oom();
  shared_hook_data d = {c->dups, 0};
  *tot = (mk_cost) {0, 0, 0};
  if (walk(c->w, x, tot, shared_hook, &d) != 0) oom();
  *shared = d.shared;
}

/* Self: x and what only x holds, its component children excluded. */
static double component_self(tree_call *c, SEXP x) {
  component_children(x, &c->kids);
  if (c->kids.oom) oom();
  mk_walker_free(c->w);
  c->w = mk_walker_new(c->kids.n);
  if (c->w == NULL) oom();
  for (size_t i = 0; i < c->kids.n; i++) {
    if (c->kids.v[i].node != x && mk_ptrset_add(c->w->seen, c->kids.v[i].node) < 0) oom();
  }
  mk_cost self = {0, 0, 0};
  if (walk(c->w, x, &self, NULL, NULL) != 0) oom();
  return self.bytes;
}

static void add_row(tree_call *c, trow r) {
  if (c->nrows == c->cap) {
    trow *v = mk_grow(c->rows, &c->cap, sizeof *v, 64);
    if (v == NULL) oom();
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
  c->dups = mk_ptrset_new(0);
  c->whole = mk_walker_new(0);
  if (c->dups == NULL || c->whole == NULL) oom();
  c->whole->dups = c->dups;
  mk_cost whole = {0, 0, 0};
  if (walk(c->whole, c->x, &whole, NULL, NULL) != 0) oom();
  mk_walker_free(c->whole);
  c->whole = NULL;

  if (!is_global(c->x)) {
    int shared;
    mk_cost tot;
    component_total(c, c->x, &tot, &shared);
    add_row(c, (trow) {c->x, NULL, -1, 0, K_ROOT, node_note(c->x), 0, 0, tot.bytes, tot.ncells, shared, 0, 0});
  }
  /* Breadth first: rows are appended as their parents are expanded. */
  for (size_t r = 0; r < c->nrows; r++) {
    if (r % 1024 == 1023) R_CheckUserInterrupt();
    SEXP x = c->rows[r].node;
    c->rows[r].self = component_self(c, x);
    if (c->rows[r].depth >= c->max_depth) continue;
    component_children(x, &c->rowkids);
    if (c->rowkids.oom) oom();
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
  if (c->order == NULL) oom();
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
  check_layout();
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

static void bytype_hook(void *data, SEXP x, const mk_cost *cost) {
  bytype_call *c = data;
  int t = TYPEOF(x);
  SEXP cl = first_class(x);
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
  c->t[i].count += 1;
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
  if (c->t == NULL || c->w == NULL) oom();
  for (int i = 0; i < 32; i++) c->t[i].type = i;
  c->n = 32;
  mk_cost cost = {0, 0, 0};
  if (walk(c->w, c->x, &cost, bytype_hook, c) != 0 || c->oom) oom();
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
  check_layout();
  bytype_call c = {0};
  c.x = x;
  return R_ExecWithCleanup(bytype_body, &c, bytype_cleanup, &c);
}
