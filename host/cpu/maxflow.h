/* maxflow.h — exact maximum flow on the layered attention graph of attention flow
 * (Abnar & Zuidema 2020, docs/design.md §3), for one source and a sequence of sinks:
 * push-relabel
 * (highest label, global relabelling, gap heuristic) started from rollout's flow and kept
 * warm from one sink to the next. Internal to the CPU reference (flow.c) and its tests.
 *
 * The graph: node layers 0..L, n nodes each; the source is node (L, s); boundary b
 * (0 <= b < L) joins node layer b+1 to node layer b with capacity cap[b][i][j] on the
 * edge (b+1, i) -> (b, j). Sinks are input nodes (0, j). Capacities are the rows of
 * rollout's Â_b, so every row sums to 1 (within float rounding) and so does the source's.
 *
 * Tolerance: flows and excesses are doubles; a node whose excess is at most
 * AM_MAXFLOW_EPS is not processed, so a value can fall short of the exact maximum flow
 * of the float capacities by at most L·n·AM_MAXFLOW_EPS, plus double rounding. */
#ifndef AM_CPU_MAXFLOW_H
#define AM_CPU_MAXFLOW_H

#include <stddef.h>
#include <stdint.h>

#define AM_MAXFLOW_EPS 1e-14

typedef struct am_maxflow {
  int L, n, N;            /* N = L·n nodes of layers 0..L-1 (the source is apart) */
  int source, sink;       /* source: index in node layer L; sink: index in layer 0 */
  const float *cap;       /* [L,n,n] borrowed, cap[b][i][j]: (b+1,i) -> (b,j) */
  const float *capt;      /* [L,n,n] borrowed, capt[b][j][i] == cap[b][i][j] */
  double *flow, *flowt;   /* [L,n,n] flow on each edge, and the same transposed */
  double *excess;         /* [N] node (l,i) is l·n + i */
  int *label, *cur;       /* [N] distance labels (>= N+1: cannot reach the sink), arcs */
  int *count;             /* [N+2] nodes per label below N+1 */
  int *bhead, *bnext;     /* [N+2], [N] active nodes by label (highest label first) */
  int *queue;             /* [N] */
  int top;                /* no active node has a label above top */
  int64_t work, relabels; /* arc scans since the last global relabelling; relabel count */
  int64_t pushes, global; /* statistics: pushes, global relabellings */
} am_maxflow_t;

/* Bytes of working memory for L layers of n tokens; 0 on overflow. */
size_t am_maxflow_bytes(int L, int n);

/* Lays g out in mem (am_maxflow_bytes(L, n) bytes, aligned for double). cap and capt are
 * borrowed and must outlive g. */
void am_maxflow_init(am_maxflow_t *g, int L, int n, const float *cap, const float *capt,
                     void *mem);

/* Starts a new source (L, s): the preflow is rollout's flow, the source's edges
 * saturated and every node's inflow sent down in proportion to its capacities, so that
 * the whole unit sits on the input nodes (and float rounding leftovers on the others). */
void am_maxflow_start(am_maxflow_t *g, int s);

/* The maximum flow from the current source to (0, j). The preflow left by the previous
 * call is the start of this one (the old sink becomes an ordinary node holding excess). */
double am_maxflow_solve(am_maxflow_t *g, int j);

/* Capacity of the cut between the nodes that reach the sink in the residual graph and
 * the rest: equal to the last solve's value when that value is a maximum flow (the
 * max-flow min-cut certificate the tests check). */
double am_maxflow_cut_capacity(am_maxflow_t *g);

#endif
