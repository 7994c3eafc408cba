/*
 * reach.c: sizes of what many starts reach, in one pass (reach.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reach.h"
#include "utils.h"

struct mk_reach {
  /* Starts, as given. */
  SEXP *starts;
  size_t nstarts, capstarts;

  /* Nodes: the SEXP, its own cost (owned cells included), how often it is
   * reached (0, 1, 2 = more), its edges off[v] .. off[v + 1] - 1. */
  SEXP *key;
  double *bytes, *ncells;
  uint8_t *times;
  int32_t *mark;              /* the last node that reached it (edge dedup) */
  size_t *off;
  size_t nv, capv;
  int32_t *edges;
  size_t ne, cape;

  /* SEXP -> node + 1, open addressing (0 is empty). */
  int32_t *map;
  size_t mapcap;

  /* Nodes reached only through weak references, kept alive meanwhile. */
  mk_pins pins;

  /* Components: each node's, their costs and DAG edges; the dominator
   * tree (idom: parent, root = nc), depth, closed flag, subtree cost. */
  int32_t *comp;
  size_t nc;
  double *cbytes, *cncells, *sbytes, *sncells;
  uint8_t *cdup, *sdup, *closed;
  size_t *coff;
  int32_t *cedges;
  size_t nce;
  int32_t *idom, *depth, *low, *stamp;
  int32_t query;
  double steps;
  int32_t *stack;             /* the query's */
  size_t capstack;
  struct str_entry *scache;   /* string_edges()'s cache */
};

mk_reach *mk_reach_new(void) {
  return calloc(1, sizeof(mk_reach));
}

void mk_reach_free(mk_reach *r) {
  if (r == NULL) return;
  mk_pins_release(&r->pins);
  void *bufs[] = {r->starts, r->key, r->bytes, r->ncells, r->times, r->mark, r->off,
                  r->edges, r->map, r->comp, r->cbytes, r->cncells, r->sbytes,
                  r->sncells, r->cdup, r->sdup, r->closed, r->coff, r->cedges, r->idom,
                  r->depth, r->low, r->stamp, r->stack, r->scache};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
  free(r);
}

int mk_reach_start(mk_reach *r, SEXP x) {
  if (x == NULL || x == R_NilValue || mk_is_global(x)) return 0;
  if (r->nstarts == r->capstarts) {
    SEXP *v = mk_grow(r->starts, &r->capstarts, sizeof *v, 16);
    if (v == NULL) return -1;
    r->starts = v;
  }
  r->starts[r->nstarts++] = x;
  return 0;
}

/* ---- the node graph ----------------------------------------------------- */

static inline size_t map_pos(SEXP x, size_t cap) {
  return (size_t) (mk_ptr_hash(x) >> 32) & (cap - 1);
}

static int map_grow(mk_reach *r) {
  size_t cap = r->mapcap ? r->mapcap * 2 : 1024;
  if (cap > SIZE_MAX / sizeof(int32_t)) return -1;
  int32_t *m = calloc(cap, sizeof(int32_t));
  if (m == NULL) return -1;
  for (size_t v = 0; v < r->nv; v++) {
    size_t i = map_pos(r->key[v], cap);
    while (m[i] != 0) i = (i + 1) & (cap - 1);
    m[i] = (int32_t) v + 1;
  }
  free(r->map);
  r->map = m;
  r->mapcap = cap;
  return 0;
}

/* The node of x, or -1. */
static int32_t node_of(const mk_reach *r, SEXP x) {
  if (r->mapcap == 0) return -1;
  size_t i = map_pos(x, r->mapcap);
  for (;;) {
    int32_t id = r->map[i];
    if (id == 0) return -1;
    if (r->key[id - 1] == x) return id - 1;
    i = (i + 1) & (r->mapcap - 1);
  }
}

static int grow_nodes(mk_reach *r) {
  size_t cap = r->capv ? r->capv * 2 : 1024;
  if (cap >= INT32_MAX || cap > SIZE_MAX / 2 / sizeof(double)) return -1;
#define GROW(field) do { \
    void *p = realloc(r->field, cap * sizeof *r->field); \
    if (p == NULL) return -1; \
    r->field = p; \
  } while (0)
  GROW(key); GROW(bytes); GROW(ncells); GROW(times); GROW(mark);
#undef GROW
  size_t *off = realloc(r->off, (cap + 1) * sizeof *off);
  if (off == NULL) return -1;
  r->off = off;
  r->capv = cap;
  return 0;
}

/* The node of x, added (with its own cost) if new; -1 when out of memory. */
static int32_t add_node(mk_reach *r, SEXP x, int *added) {
  *added = 0;
  if ((r->nv + 1) * 2 > r->mapcap && map_grow(r) != 0) return -1;
  size_t i = map_pos(x, r->mapcap);
  for (;;) {
    int32_t id = r->map[i];
    if (id == 0) break;
    if (r->key[id - 1] == x) return id - 1;
    i = (i + 1) & (r->mapcap - 1);
  }
  if (r->nv == r->capv && grow_nodes(r) != 0) return -1;
  size_t v = r->nv++;
  r->map[i] = (int32_t) v + 1;
  r->key[v] = x;
  mk_cost c;
  mk_node_cost(x, &c);
  r->bytes[v] = c.bytes;
  r->ncells[v] = c.ncells;
  r->times[v] = 0;
  r->mark[v] = -1;
  *added = 1;
  return (int32_t) v;
}

typedef struct { mk_reach *r; int32_t from; int oom; } edge_ctx;

static void graph_edge(const mk_edge *e, void *data) {
  edge_ctx *c = data;
  mk_reach *r = c->r;
  if (c->oom) return;
  SEXP x = e->child;
  if (x == R_NilValue || mk_is_global(x)) return;
  int added;
  int32_t id = add_node(r, x, &added);
  if (id < 0) {
    c->oom = 1;
    return;
  }
  if (added && e->kind == MK_EDGE_WEAK) {
    /* A collection while the graph is built (robj.h may allocate) could
     * free what only a weak reference holds. */
    if (mk_pins_add(&r->pins, x) != 0) {
      c->oom = 1;
      return;
    }
  }
  /* Strings are shared through R's string cache everywhere (names,
   * levels); sharing one is not what `shared` tells. */
  int str = TYPEOF(x) == CHARSXP;
  if (r->mark[id] == c->from) {
    /* The same child again: reached twice, one edge. */
    if (!str && r->times[id] < 2) r->times[id]++;
    return;
  }
  r->mark[id] = c->from;
  if (!str && r->times[id] < 2) r->times[id]++;
  if (r->ne == r->cape) {
    int32_t *p = mk_grow(r->edges, &r->cape, sizeof *p, 4096);
    if (p == NULL) {
      c->oom = 1;
      return;
    }
    r->edges = p;
  }
  r->edges[r->ne++] = id;
}

/* A character vector's strings: a column of 1e7 rows repeats its distinct
 * strings (1e5 of them, say) many times, so a direct-mapped cache (string
 * -> the vector whose edge to it was last added) stands before the map:
 * one read, in 2 MiB, where the map takes two in memory the size of the
 * graph. Made with the first long vector, kept with the graph. */
#define STR_BITS 17
#define STR_CACHE ((size_t) 1 << STR_BITS)
struct str_entry { SEXP s; int32_t from; };

static inline size_t str_slot(SEXP s) { return (size_t) (mk_ptr_hash(s) >> (64 - STR_BITS)); }

static int string_edges(mk_reach *r, SEXP x, edge_ctx *c) {
  R_xlen_t n = XLENGTH(x);
  const SEXP *p = (const SEXP *) DATAPTR_RO(x);
  if (r->scache == NULL) {
    r->scache = calloc(STR_CACHE, sizeof *r->scache);
    if (r->scache == NULL) return -1;
  }
  struct str_entry *cache = r->scache;
  int32_t from = c->from;
  SEXP prev = NULL;
  for (R_xlen_t i = 0; i < n; i++) {
    if (i + 32 < n && p[i + 32] != NULL) MK_PREFETCH(&cache[str_slot(p[i + 32])]);
    if (i + 16 < n && p[i + 16] != NULL) {
      const struct str_entry *e = &cache[str_slot(p[i + 16])];
      if ((e->s != p[i + 16] || e->from != from) && r->mapcap > 0) {
        MK_PREFETCH(p[i + 16]);
        MK_PREFETCH(&r->map[map_pos(p[i + 16], r->mapcap)]);
      }
    }
    SEXP s = p[i];
    /* NULL in a deferred string's cache: not expanded yet. */
    if (s == NULL || s == prev) continue;
    prev = s;
    struct str_entry *e = &cache[str_slot(s)];
    if (e->s == s && e->from == from) continue;
    mk_edge ed = {s, MK_EDGE_ELEMENT, NULL, (double) i + 1, 0};
    graph_edge(&ed, c);
    if (c->oom) return -1;
    e->s = s;
    e->from = from;
  }
  return 0;
}

static int build_graph(mk_reach *r) {
  if (r->capv == 0 && grow_nodes(r) != 0) return -1;
  for (size_t i = 0; i < r->nstarts; i++) {
    int added;
    int32_t id = add_node(r, r->starts[i], &added);
    if (id < 0) return -1;
    if (r->times[id] < 2) r->times[id]++;
  }
  mk_edge_opts eo = {2, NULL, NULL, NULL};
  for (size_t v = 0; v < r->nv; v++) {
    if ((v & 0xFFFF) == 0xFFFF) mk_robj_check_interrupt();
    r->off[v] = r->ne;
    SEXP x = r->key[v];
    edge_ctx c = {r, (int32_t) v, 0};
    mk_cost owned = {0, 0, 0};
    if (TYPEOF(x) == STRSXP && !ALTREP(x) && XLENGTH(x) > 256 && !mk_robj_has_attrs_t(x)) {
      if (string_edges(r, x, &c) != 0) return -1;
      continue;
    }
    mk_node_edges(x, &eo, graph_edge, &c, &owned);
    if (c.oom) return -1;
    r->bytes[v] += owned.bytes;
    r->ncells[v] += owned.ncells;
  }
  r->off[r->nv] = r->ne;
  return 0;
}

/* ---- components (Tarjan's algorithm, with explicit stacks) ------------- */

static int components(mk_reach *r) {
  size_t nv = r->nv;
  int32_t *num = malloc((nv ? nv : 1) * sizeof *num);
  int32_t *low = malloc((nv ? nv : 1) * sizeof *low);
  int32_t *st = malloc((nv ? nv : 1) * sizeof *st);       /* Tarjan's stack */
  int32_t *cv = malloc((nv ? nv : 1) * sizeof *cv);       /* the DFS path */
  size_t *ce = malloc((nv ? nv : 1) * sizeof *ce);        /* its next edges */
  r->comp = malloc((nv ? nv : 1) * sizeof *r->comp);
  if (!num || !low || !st || !cv || !ce || !r->comp) {
    free(num); free(low); free(st); free(cv); free(ce);
    return -1;
  }
  for (size_t v = 0; v < nv; v++) {
    num[v] = -1;
    r->comp[v] = -1;
  }
  int32_t counter = 0, nc = 0;
  size_t sp = 0;
  for (size_t s = 0; s < nv; s++) {
    if (num[s] >= 0) continue;
    size_t dp = 0;
    num[s] = low[s] = counter++;
    st[sp++] = (int32_t) s;
    cv[dp] = (int32_t) s;
    ce[dp++] = r->off[s];
    while (dp > 0) {
      int32_t v = cv[dp - 1];
      if (ce[dp - 1] < r->off[v + 1]) {
        int32_t w = r->edges[ce[dp - 1]++];
        if (num[w] < 0) {
          num[w] = low[w] = counter++;
          st[sp++] = w;
          cv[dp] = w;
          ce[dp++] = r->off[w];
        } else if (r->comp[w] < 0 && num[w] < low[v]) {
          low[v] = num[w];
        }
        continue;
      }
      dp--;
      if (low[v] == num[v]) {
        int32_t w;
        do {
          w = st[--sp];
          r->comp[w] = nc;
        } while (w != v);
        nc++;
      }
      if (dp > 0) {
        int32_t u = cv[dp - 1];
        if (low[v] < low[u]) low[u] = low[v];
      }
    }
  }
  free(num); free(low); free(st); free(cv); free(ce);
  r->nc = (size_t) nc;
  return 0;
}

/* The component DAG: costs, deduplicated edges. Components are numbered
 * in the order Tarjan's algorithm finishes them, so every edge goes from a
 * higher number to a lower one. */
static int condense(mk_reach *r) {
  size_t nv = r->nv, nc = r->nc, n1 = nc ? nc : 1;
  r->cbytes = calloc(n1, sizeof(double));
  r->cncells = calloc(n1, sizeof(double));
  r->cdup = calloc(n1, 1);
  r->coff = calloc(nc + 1, sizeof(size_t));
  r->stamp = malloc(n1 * sizeof(int32_t));
  size_t *count = calloc(nc + 1, sizeof(size_t));
  int32_t *members = malloc((nv ? nv : 1) * sizeof(int32_t));
  if (!r->cbytes || !r->cncells || !r->cdup || !r->coff || !r->stamp || !count || !members) {
    free(count); free(members);
    return -1;
  }
  for (size_t v = 0; v < nv; v++) {
    int32_t c = r->comp[v];
    r->cbytes[c] += r->bytes[v];
    r->cncells[c] += r->ncells[v];
    if (r->times[v] >= 2) r->cdup[c] = 1;
    count[c + 1]++;
  }
  for (size_t c = 0; c < nc; c++) count[c + 1] += count[c];
  for (size_t v = 0; v < nv; v++) members[count[r->comp[v]]++] = (int32_t) v;
  /* count[c] is now the end of c's members; c's start is count[c - 1]. */
  for (size_t c = 0; c < nc; c++) r->stamp[c] = -1;
  r->nce = 0;
  size_t cap = 0;
  size_t begin = 0;
  for (size_t c = 0; c < nc; c++) {
    r->coff[c] = r->nce;
    for (size_t m = begin; m < count[c]; m++) {
      int32_t v = members[m];
      for (size_t e = r->off[v]; e < r->off[v + 1]; e++) {
        int32_t d = r->comp[r->edges[e]];
        if ((size_t) d == c || r->stamp[d] == (int32_t) c) continue;
        r->stamp[d] = (int32_t) c;
        if (r->nce == cap) {
          int32_t *p = mk_grow(r->cedges, &cap, sizeof *p, 1024);
          if (p == NULL) {
            free(count); free(members);
            return -1;
          }
          r->cedges = p;
        }
        r->cedges[r->nce++] = d;
      }
    }
    begin = count[c];
  }
  r->coff[nc] = r->nce;
  free(count);
  free(members);
  /* The node graph's edges are not needed any more. */
  free(r->edges);
  r->edges = NULL;
  r->cape = 0;
  return 0;
}

/* ---- dominators and closed components ---------------------------------- */

/* Components in topological order are nc - 1 down to 0; the root (nc), which
 * points at every start, comes first. A smaller rank comes earlier. */
static inline int32_t rank_of(int32_t c, int32_t nc) { return c == nc ? -1 : nc - 1 - c; }

static int32_t intersect(const int32_t *idom, int32_t a, int32_t b, int32_t nc) {
  while (a != b) {
    while (rank_of(a, nc) > rank_of(b, nc)) a = idom[a];
    while (rank_of(b, nc) > rank_of(a, nc)) b = idom[b];
  }
  return a;
}

static int dominators(mk_reach *r) {
  int32_t nc = (int32_t) r->nc;
  size_t n1 = (size_t) nc + 1;
  r->idom = malloc(n1 * sizeof(int32_t));
  r->depth = malloc(n1 * sizeof(int32_t));
  r->low = malloc(n1 * sizeof(int32_t));
  r->sbytes = malloc(n1 * sizeof(double));
  r->sncells = malloc(n1 * sizeof(double));
  r->sdup = malloc(n1);
  r->closed = malloc(n1);
  if (!r->idom || !r->depth || !r->low || !r->sbytes || !r->sncells || !r->sdup || !r->closed)
    return -1;
  for (int32_t c = 0; c <= nc; c++) r->idom[c] = -1;
  r->idom[nc] = nc;
  r->depth[nc] = 0;
  for (size_t i = 0; i < r->nstarts; i++) {
    int32_t v = node_of(r, r->starts[i]);
    if (v >= 0) r->idom[r->comp[v]] = nc;
  }
  /* In topological order, each component's dominator is the meeting point
   * of its predecessors' (Cooper, Harvey and Kennedy's intersection; one
   * pass suffices on a DAG). */
  for (int32_t c = nc - 1; c >= 0; c--) {
    if (r->idom[c] < 0) r->idom[c] = nc;    /* cannot happen: all are reached */
    r->depth[c] = r->depth[r->idom[c]] + 1;
    for (size_t e = r->coff[c]; e < r->coff[c + 1]; e++) {
      int32_t d = r->cedges[e];
      r->idom[d] = r->idom[d] < 0 ? c : intersect(r->idom, r->idom[d], c, nc);
    }
  }
  /* low[c]: the shallowest dominator of a target of an edge leaving c's
   * subtree; c is closed when no edge leaves it: low[c] >= depth[c]. */
  for (int32_t c = 0; c < nc; c++) {
    int32_t lo = INT32_MAX;
    for (size_t e = r->coff[c]; e < r->coff[c + 1]; e++) {
      int32_t dd = r->depth[r->idom[r->cedges[e]]];
      if (dd < lo) lo = dd;
    }
    r->low[c] = lo;
    r->sbytes[c] = r->cbytes[c];
    r->sncells[c] = r->cncells[c];
    r->sdup[c] = r->cdup[c];
  }
  /* Bottom up: a component's dominator children have lower numbers. */
  for (int32_t c = 0; c < nc; c++) {
    r->closed[c] = r->low[c] >= r->depth[c];
    int32_t p = r->idom[c];
    if (p == nc) continue;
    if (r->low[c] < r->low[p]) r->low[p] = r->low[c];
    r->sbytes[p] += r->sbytes[c];
    r->sncells[p] += r->sncells[c];
    r->sdup[p] |= r->sdup[c];
  }
  return 0;
}

int mk_reach_build(mk_reach *r) {
  if (build_graph(r) != 0) return -1;
  if (components(r) != 0) return -1;
  if (condense(r) != 0) return -1;
  if (dominators(r) != 0) return -1;
  r->query = 0;
  for (size_t c = 0; c < r->nc; c++) r->stamp[c] = -1;
  return 0;
}

/* ---- queries ------------------------------------------------------------ */

static int push_comp(mk_reach *r, size_t *sp, int32_t c) {
  if (r->stamp[c] == r->query) return 0;
  r->stamp[c] = r->query;
  if (*sp == r->capstack) {
    int32_t *p = mk_grow(r->stack, &r->capstack, sizeof *p, 256);
    if (p == NULL) return -1;
    r->stack = p;
  }
  r->stack[(*sp)++] = c;
  return 0;
}

int mk_reach_query(mk_reach *r, const SEXP *xs, size_t n, mk_cost *out, int *shared) {
  if (r->query == INT32_MAX) {
    for (size_t c = 0; c < r->nc; c++) r->stamp[c] = -1;
    r->query = 0;
  }
  r->query++;
  size_t sp = 0;
  for (size_t i = 0; i < n; i++) {
    if (xs[i] == NULL) continue;
    int32_t v = node_of(r, xs[i]);
    if (v >= 0 && push_comp(r, &sp, r->comp[v]) != 0) return -1;
  }
  double bytes = 0, ncells = 0;
  int dup = 0;
  while (sp > 0) {
    int32_t c = r->stack[--sp];
    r->steps++;
    if (r->closed[c]) {
      bytes += r->sbytes[c];
      ncells += r->sncells[c];
      dup |= r->sdup[c];
      continue;
    }
    bytes += r->cbytes[c];
    ncells += r->cncells[c];
    dup |= r->cdup[c];
    for (size_t e = r->coff[c]; e < r->coff[c + 1]; e++) {
      if (push_comp(r, &sp, r->cedges[e]) != 0) return -1;
    }
  }
  out->bytes += bytes;
  out->ncells += ncells;
  if (shared) *shared = dup;
  return 0;
}

double mk_reach_nodes(const mk_reach *r) { return (double) r->nv; }

double mk_reach_graph_bytes(const mk_reach *r) {
  double b = 0;
  for (size_t v = 0; v < r->nv; v++) b += r->bytes[v];
  return b;
}
double mk_reach_steps(const mk_reach *r) { return r->steps; }

double mk_reach_bytes(const mk_reach *r) {
  double v = (double) r->capv, c = (double) r->nc;
  return v * (sizeof(SEXP) + 2 * sizeof(double) + 1 + sizeof(int32_t) + sizeof(size_t) +
              sizeof(int32_t)) +
    (double) r->mapcap * sizeof(int32_t) + (double) r->cape * sizeof(int32_t) +
    c * (4 * sizeof(double) + 3 + sizeof(size_t) + 5 * sizeof(int32_t)) +
    (double) r->nce * sizeof(int32_t) + sizeof(mk_reach);
}
