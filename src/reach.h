/*
 * reach.h: the size of what each of many nodes reaches, in one pass.
 *
 * mem_ls() wants every binding's own size and mem_tree() every component's
 * total: each is the cost of the nodes one start reaches, shared nodes once,
 * and starts reach the same nodes over and over (closures that capture the
 * environment holding them all reach all of it). Walking from each start is
 * quadratic; this is linear for such graphs:
 *
 *   1. the graph of every node the starts reach (global nodes left out, as
 *      sizes do), built once through walk.h's edges;
 *   2. its strongly connected components (every node of one reaches the
 *      same nodes), the component graph a DAG;
 *   3. the DAG's dominator tree from a root that points at every start;
 *   4. a component is "closed" when no edge leaves its dominator subtree:
 *      then what it reaches is exactly that subtree, whose cost is summed
 *      once, bottom up.
 *
 * A query walks the component DAG from its starts and stops at every closed
 * component, adding its subtree's cost; nothing below a closed component is
 * reachable any other way, so nothing is counted twice. For the graphs R
 * sessions hold (environments full of closures, shared columns, source
 * references) almost every component reached is closed, so each query costs
 * a few steps. The answer is always exact; only its cost depends on the
 * graph.
 *
 * Memory: about 60 bytes per node and 8 per edge while the graph exists.
 */
#ifndef MEMKIT_REACH_H
#define MEMKIT_REACH_H

#include "walk.h"

typedef struct mk_reach mk_reach;

mk_reach *mk_reach_new(void);            /* NULL on allocation failure */
void mk_reach_free(mk_reach *r);

/* Adds x as a start (nothing for R_NilValue and global nodes). Call for
 * every start before mk_reach_build(). 0, or -1 when out of memory. */
int mk_reach_start(mk_reach *r, SEXP x);
/* Builds the graph from the starts, then its components and dominators. May
 * allocate on R's heap and check for interrupts (walk.h): run it under
 * R_ExecWithCleanup() with a cleanup that frees r. 0, or -1 when out of
 * memory. */
int mk_reach_build(mk_reach *r);

/* Cost of the nodes reachable from any of xs[0..n-1] (started or reached
 * by the build; others count nothing), each once. *shared, if given, is set
 * to 1 when one of them is reached more than once in the whole graph (by
 * two parents, or twice by one; strings, which R's string cache shares
 * everywhere, never count). 0, or -1 when out of memory. */
int mk_reach_query(mk_reach *r, const SEXP *xs, size_t n, mk_cost *out, int *shared);
/* (Queries add to out's bytes and ncells; vcells are not kept.) */

/* The cost of the whole graph: of everything the starts reach. */
double mk_reach_graph_bytes(const mk_reach *r);
/* Nodes in the graph, and bytes held. */
double mk_reach_nodes(const mk_reach *r);
double mk_reach_bytes(const mk_reach *r);
/* Component steps taken by queries so far (the work, for tests). */
double mk_reach_steps(const mk_reach *r);

#endif
