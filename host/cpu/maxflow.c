/* maxflow.c — push-relabel maximum flow on the layered attention graph (maxflow.h),
 * one source, a sequence of sinks, each solve warm-started from the preflow the last one
 * left. Goldberg & Tarjan's push-relabel with the heuristics of Cherkassky & Goldberg's
 * hi_pr: highest-label selection, exact global relabelling (a backward breadth-first
 * search from the sink) at the start of each solve and after a fixed amount of relabel
 * work, and the gap heuristic. Only the first phase runs: the value of a maximum flow is
 * the sink's excess once no node with excess reaches the sink, so excess that cannot
 * reach the sink is left where it is (and may reach a later sink).
 *
 * Why warm starts are exact: a preflow of the last problem is a preflow of the next one
 * (the old sink is an ordinary node that holds excess), the global relabelling makes the
 * labels valid for the new sink, and push-relabel from any preflow with valid labels ends
 * with the sink's excess equal to the minimum cut (am_maxflow_cut_capacity checks it).
 *
 * The graph is dense between adjacent layers, so arcs are implicit: node (l,i) has n
 * down arcs (row i of boundary l-1: cap - flow) and n up arcs (row i of boundary l in the
 * transposed flow: cancelling flow that came from layer l+1). Arcs into the source are
 * left out: a node would need label N+2 to use one, and labels of N+1 and more are never
 * processed. flowt is an exact copy of flow transposed, so every residual is computed
 * from the same two numbers whichever side reads it and the labels stay consistent.
 * Memory: 2·L·n² doubles + O(L·n); work per solve is measured in bench/bench_flow.c. */
#include <string.h>

#include "cpu/maxflow.h"

/* Global relabelling after relabels have scanned GR_ALPHA times the arcs of the graph
 * (hi_pr uses about 6·nodes + arcs of work; this graph has 2·n arcs per node). */
#define GR_ALPHA 1.0

size_t am_maxflow_bytes(int L, int n) {
  if (L < 1 || n < 1)
    return 0;
  size_t nn = (size_t)n * (size_t)n, N = (size_t)L * (size_t)n;
  if (nn / (size_t)n != (size_t)n || N > (size_t)INT32_MAX / 8 ||
      nn > (SIZE_MAX / 32) / (size_t)L)
    return 0;
  size_t doubles = 2 * (size_t)L * nn + N;
  size_t ints = 4 * N + 2 * (N + 2);
  return doubles * sizeof(double) + ints * sizeof(int);
}

void am_maxflow_init(am_maxflow_t *g, int L, int n, const float *cap, const float *capt,
                     void *mem) {
  size_t nn = (size_t)n * n, N = (size_t)L * n;
  memset(g, 0, sizeof *g);
  g->L = L;
  g->n = n;
  g->N = (int)N;
  g->cap = cap;
  g->capt = capt;
  g->source = g->sink = -1;
  double *d = mem;
  g->flow = d;
  g->flowt = d + (size_t)L * nn;
  g->excess = d + 2 * (size_t)L * nn;
  int *p = (int *)(void *)(g->excess + N);
  g->label = p;
  g->cur = p + N;
  g->bnext = p + 2 * N;
  g->queue = p + 3 * N;
  g->count = p + 4 * N;
  g->bhead = p + 5 * N + 2;
}

void am_maxflow_start(am_maxflow_t *g, int s) {
  int L = g->L, n = g->n;
  size_t nn = (size_t)n * n;
  g->source = s;
  g->sink = -1;
  memset(g->flow, 0, 2 * (size_t)L * nn * sizeof *g->flow);
  memset(g->excess, 0, (size_t)g->N * sizeof *g->excess);
  size_t top = (size_t)(L - 1) * nn;
  for (int j = 0; j < n; j++) { /* saturate the source's edges */
    double c = g->cap[top + (size_t)s * n + j];
    g->flow[top + (size_t)s * n + j] = c;
    g->flowt[top + (size_t)j * n + s] = c;
    g->excess[(size_t)(L - 1) * n + j] = c;
  }
  for (int l = L - 1; l >= 1; l--) { /* rollout's flow: inflow split by capacity */
    size_t b = (size_t)(l - 1) * nn;
    for (int i = 0; i < n; i++) {
      double e = g->excess[(size_t)l * n + i];
      if (!(e > 0))
        continue;
      const float *c = g->cap + b + (size_t)i * n;
      double rs = 0.0, sent = 0.0;
      for (int j = 0; j < n; j++)
        rs += c[j];
      double q = e < rs ? e / rs : 1.0;
      for (int j = 0; j < n; j++) {
        double x = q * c[j];
        if (x > c[j])
          x = c[j];
        g->flow[b + (size_t)i * n + j] = x;
        g->flowt[b + (size_t)j * n + i] = x;
        g->excess[(size_t)(l - 1) * n + j] += x;
        sent += x;
      }
      /* rounding can make `sent` exceed e by an ulp: a node never holds a deficit */
      g->excess[(size_t)l * n + i] = e > sent ? e - sent : 0.0;
    }
  }
}

static void bucket_add(am_maxflow_t *g, int v) {
  int d = g->label[v];
  g->bnext[v] = g->bhead[d];
  g->bhead[d] = v;
  if (d > g->top)
    g->top = d;
}

/* Exact distances to the sink in the residual graph (backward breadth-first search);
 * nodes that do not reach it get N+1. Rebuilds the label counts and the active buckets. */
static void global_relabel(am_maxflow_t *g) {
  int L = g->L, n = g->n, N = g->N, inf = N + 1;
  size_t nn = (size_t)n * n;
  for (int v = 0; v < N; v++) {
    g->label[v] = inf;
    g->cur[v] = 0;
  }
  memset(g->count, 0, (size_t)(N + 2) * sizeof *g->count);
  for (int d = 0; d < N + 2; d++)
    g->bhead[d] = -1;
  int qh = 0, qt = 0;
  g->label[g->sink] = 0;
  g->count[0] = 1;
  g->queue[qt++] = g->sink;
  while (qh < qt) {
    int v = g->queue[qh++], l = v / n, i = v % n, d = g->label[v] + 1;
    if (l + 1 <= L - 1) { /* (l+1,k) -> (l,i) down arcs with residual cap - flow */
      const float *ct = g->capt + (size_t)l * nn + (size_t)i * n;
      const double *ft = g->flowt + (size_t)l * nn + (size_t)i * n;
      int base = (l + 1) * n;
      for (int k = 0; k < n; k++)
        if (g->label[base + k] == inf && (double)ct[k] - ft[k] > 0) {
          g->label[base + k] = d;
          g->count[d]++;
          g->queue[qt++] = base + k;
        }
    }
    if (l >= 1) { /* (l-1,j) -> (l,i) up arcs: the flow on (l,i) -> (l-1,j) */
      const double *f = g->flow + (size_t)(l - 1) * nn + (size_t)i * n;
      int base = (l - 1) * n;
      for (int j = 0; j < n; j++)
        if (g->label[base + j] == inf && f[j] > 0) {
          g->label[base + j] = d;
          g->count[d]++;
          g->queue[qt++] = base + j;
        }
    }
  }
  g->top = 0;
  for (int v = 0; v < N; v++)
    if (v != g->sink && g->label[v] < inf && g->excess[v] > AM_MAXFLOW_EPS)
      bucket_add(g, v);
  g->work = 0;
  g->global++;
}

static void add_excess(am_maxflow_t *g, int w, double delta) {
  double old = g->excess[w];
  g->excess[w] = old + delta;
  if (w != g->sink && old <= AM_MAXFLOW_EPS && g->excess[w] > AM_MAXFLOW_EPS)
    bucket_add(g, w);
}

/* Pushes from node v = (l,i) with label d along admissible arcs from arc *a on, until
 * its excess *e is spent (returns 1) or the arcs run out (returns 0). */
static int push_arcs(am_maxflow_t *g, int l, int i, int d, int *a, double *e) {
  int L = g->L, n = g->n;
  size_t nn = (size_t)n * n;
  if (l >= 1 && *a < n) {
    size_t row = (size_t)(l - 1) * nn + (size_t)i * n;
    const float *c = g->cap + row;
    double *f = g->flow + row, *ft = g->flowt + (size_t)(l - 1) * nn + i;
    int base = (l - 1) * n;
    for (int j = *a; j < n; j++) {
      if (g->label[base + j] != d - 1)
        continue;
      double r = (double)c[j] - f[j];
      if (!(r > 0))
        continue;
      double delta = *e < r ? *e : r;
      f[j] = *e < r ? f[j] + delta : (double)c[j]; /* a saturated edge is exactly full */
      ft[(size_t)j * n] = f[j];
      *e -= delta;
      add_excess(g, base + j, delta);
      g->pushes++;
      if (*e <= AM_MAXFLOW_EPS) {
        *a = j;
        return 1;
      }
    }
  }
  if (*a < n)
    *a = n;
  if (l <= L - 2) {
    size_t row = (size_t)l * nn + (size_t)i * n;
    double *ft = g->flowt + row, *f = g->flow + (size_t)l * nn + i;
    int base = (l + 1) * n;
    for (int k = *a - n; k < n; k++) {
      if (g->label[base + k] != d - 1)
        continue;
      double r = ft[k];
      if (!(r > 0))
        continue;
      double delta = *e < r ? *e : r;
      ft[k] = *e < r ? ft[k] - delta : 0.0; /* cancelled to exactly 0 */
      f[(size_t)k * n] = ft[k];
      *e -= delta;
      add_excess(g, base + k, delta);
      g->pushes++;
      if (*e <= AM_MAXFLOW_EPS) {
        *a = n + k;
        return 1;
      }
    }
  }
  *a = 2 * n;
  return 0;
}

/* The smallest label + 1 over v's residual arcs (N+1 when there is none). */
static int min_label(am_maxflow_t *g, int l, int i) {
  int L = g->L, n = g->n, best = g->N + 1;
  size_t nn = (size_t)n * n;
  if (l >= 1) {
    size_t row = (size_t)(l - 1) * nn + (size_t)i * n;
    const float *c = g->cap + row;
    const double *f = g->flow + row;
    const int *lab = g->label + (l - 1) * n;
    for (int j = 0; j < n; j++)
      if (lab[j] + 1 < best && (double)c[j] - f[j] > 0)
        best = lab[j] + 1;
  }
  if (l <= L - 2) {
    const double *ft = g->flowt + (size_t)l * nn + (size_t)i * n;
    const int *lab = g->label + (l + 1) * n;
    for (int k = 0; k < n; k++)
      if (lab[k] + 1 < best && ft[k] > 0)
        best = lab[k] + 1;
  }
  g->work += 2 * n;
  g->relabels++;
  return best;
}

/* Every node above an emptied label can no longer reach the sink. */
static void gap(am_maxflow_t *g, int d) {
  int inf = g->N + 1;
  for (int u = 0; u < g->N; u++)
    if (g->label[u] > d && g->label[u] < inf) {
      g->count[g->label[u]]--;
      g->label[u] = inf;
    }
}

/* Pushes and relabels v until its excess is spent or it cannot reach the sink. Nodes in
 * the buckets have labels no higher than v's, so a gap above v's old label only strands
 * inactive nodes. */
static void discharge(am_maxflow_t *g, int v) {
  int n = g->n, inf = g->N + 1, l = v / n, i = v % n;
  double e = g->excess[v];
  int a = g->cur[v];
  while (!push_arcs(g, l, i, g->label[v], &a, &e)) {
    int old = g->label[v], nd = min_label(g, l, i);
    a = 0;
    if (--g->count[old] == 0) {
      gap(g, old);
      g->label[v] = inf;
      break;
    }
    if (nd >= inf) {
      g->label[v] = inf;
      break;
    }
    g->label[v] = nd;
    g->count[nd]++;
  }
  g->cur[v] = a;
  g->excess[v] = e;
}

static void run(am_maxflow_t *g) {
  double limit = GR_ALPHA * 2.0 * g->n * (double)g->N;
  for (;;) {
    while (g->top >= 0 && g->bhead[g->top] < 0)
      g->top--;
    if (g->top < 0)
      return;
    int v = g->bhead[g->top];
    g->bhead[g->top] = g->bnext[v];
    discharge(g, v);
    if ((double)g->work > limit)
      global_relabel(g);
  }
}

double am_maxflow_solve(am_maxflow_t *g, int j) {
  g->sink = j;
  global_relabel(g);
  run(g);
  return g->excess[j];
}

double am_maxflow_cut_capacity(am_maxflow_t *g) {
  int L = g->L, n = g->n, inf = g->N + 1;
  size_t nn = (size_t)n * n;
  global_relabel(g); /* label < N+1: the node reaches the sink */
  double cut = 0.0;
  const float *src = g->cap + (size_t)(L - 1) * nn + (size_t)g->source * n;
  for (int j = 0; j < n; j++)
    if (g->label[(L - 1) * n + j] < inf)
      cut += src[j];
  for (int l = 1; l < L; l++)
    for (int i = 0; i < n; i++) {
      if (g->label[l * n + i] < inf)
        continue;
      const float *c = g->cap + (size_t)(l - 1) * nn + (size_t)i * n;
      for (int j = 0; j < n; j++)
        if (g->label[(l - 1) * n + j] < inf)
          cut += c[j];
    }
  return cut;
}
