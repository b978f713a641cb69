/* flow_sync.h — the per-node steps of attention flow's device algorithm, written once for
 * the CUDA kernels (cuda/flow.cu, where AM_FS_FN is __device__) and for the host
 * emulation that checks them without a GPU (tests/test_flow_sync.c, plain C). C and CUDA
 * C++ common subset: no designated initialisers, no VLAs, no C++ features.
 *
 * The algorithm is the CPU reference's (host/cpu/maxflow.c: rollout's preflow, warm
 * starts from sink to sink, push-relabel, global relabelling) made synchronous so that
 * every thread of a block can work on its own nodes, with the same bits whatever the
 * thread count and timing (no float atomics):
 *   round: push (each active node pushes along its admissible arcs, writing the flow of
 *          those edges and the amount in `delta`; an edge is admissible from one side at
 *          most, so each edge has one writer) | update (each touched node adds up the
 *          deltas of its arcs in a fixed order into its excess) | clear + relabel
 *          (pushers zero their deltas; nodes that kept excess compute 1 + the smallest
 *          label over their residual arcs) | commit the new labels.
 * Simultaneous relabels keep the labels valid (each new label is at most 1 + the old
 * label of a residual neighbour, and labels only grow), so the first phase of push-relabel
 * ends, as on the CPU, with the sink's excess equal to the minimum cut.
 * Global relabelling: a breadth-first search from the sink by frontiers; labels are
 * claimed with an integer compare-and-swap, so the labels do not depend on timing either.
 *
 * The capacities (Â of every layer) are built by flow_caps.h. */
#ifndef AM_CUDA_FLOW_SYNC_H
#define AM_CUDA_FLOW_SYNC_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "attnmap.h"

/* The drivers at the end run on every thread of a block: AM_FS_FOR spreads an index range
 * over the threads, AM_FS_SYNC is the block barrier, AM_FS_ANY a barrier that also says
 * whether any thread's value was nonzero, AM_FS_TID the thread's index. On the host they
 * are one thread's loop. */
#if defined(__CUDACC__) ||                                                                 \
    defined(AM_CUDA_EMU) /* a GPU's block, or the emulator's fibers */
#define AM_FS_FN __device__ static inline
#define AM_FS_HD __host__ __device__ static inline
#define AM_FS_CAS(p, o, v) atomicCAS((p), (o), (v))
#define AM_FS_ADD(p, v) atomicAdd((p), (v))
#define AM_FS_FOR(var, count)                                                              \
  for (int var = (int)threadIdx.x; var < (int)(count); var += (int)blockDim.x)
#define AM_FS_SYNC() __syncthreads()
#define AM_FS_ANY(x) __syncthreads_or(x)
#define AM_FS_TID ((int)threadIdx.x)
#else
#define AM_FS_FN static inline
#define AM_FS_HD static inline
#define AM_FS_FOR(var, count) for (int var = 0; var < (int)(count); var++)
#define AM_FS_SYNC() ((void)0)
#define AM_FS_ANY(x) (x)
#define AM_FS_TID 0
static inline int am_fs_cas_(int *p, int o, int v) {
  int old = *p;
  if (old == o)
    *p = v;
  return old;
}
static inline int am_fs_add_(int *p, int v) {
  int old = *p;
  *p += v;
  return old;
}
#define AM_FS_CAS(p, o, v) am_fs_cas_((p), (o), (v))
#define AM_FS_ADD(p, v) am_fs_add_((p), (v))
#endif

#define AM_FS_EPS 1e-14 /* as AM_MAXFLOW_EPS: excess at or below it is not processed */

enum { AM_FS_PUSHED = 1, AM_FS_RELABEL = 2 };

/* One max-flow problem's state; every array in device (or host) memory. */
typedef struct am_fs {
  int L, n, N, source, sink;
  const float *cap, *capt;      /* [L,n,n] capacities and their transposes */
  double *flow, *flowt, *delta; /* [L,n,n]; delta is 0 between rounds */
  double *excess;               /* [N] */
  int *label, *next;            /* [N] labels; relabel results */
  int *queue;                   /* [2N] two BFS frontiers */
  unsigned char *flag;          /* [N] AM_FS_PUSHED | AM_FS_RELABEL, written by the owner */
  unsigned char *touched;       /* [N] 1: an arc's delta changed (any thread stores 1) */
} am_fs_t;

/* Bytes of one problem's workspace (doubles first, then ints, then flags). */
AM_FS_HD size_t am_fs_bytes(int L, int n) {
  size_t nn = (size_t)n * n, N = (size_t)L * n;
  return (3 * (size_t)L * nn + N) * sizeof(double) + 4 * N * sizeof(int) + 2 * N;
}

AM_FS_FN void am_fs_layout(am_fs_t *s, int L, int n, const float *cap, const float *capt,
                           void *mem) {
  size_t nn = (size_t)n * n, N = (size_t)L * n;
  double *d = (double *)mem;
  s->L = L;
  s->n = n;
  s->N = (int)N;
  s->source = s->sink = -1;
  s->cap = cap;
  s->capt = capt;
  s->flow = d;
  s->flowt = d + (size_t)L * nn;
  s->delta = d + 2 * (size_t)L * nn;
  s->excess = d + 3 * (size_t)L * nn;
  int *p = (int *)(void *)(s->excess + N);
  s->label = p;
  s->next = p + N;
  s->queue = p + 2 * N;
  s->flag = (unsigned char *)(void *)(p + 4 * N);
  s->touched = s->flag + N;
}

/* ---- rollout's preflow -------------------------------------------------------------- */

/* Step 1, element k < L·n²: zero flow, flowt and delta. */
AM_FS_FN void am_fs_start_clear(am_fs_t *s, size_t k) {
  s->flow[k] = 0.0;
  s->flowt[k] = 0.0;
  s->delta[k] = 0.0;
}

/* Step 2, token j: saturate the source's edge to (L-1, j). */
AM_FS_FN void am_fs_start_source(am_fs_t *s, int j) {
  size_t nn = (size_t)s->n * s->n, top = (size_t)(s->L - 1) * nn;
  double c = s->cap[top + (size_t)s->source * s->n + j];
  s->flow[top + (size_t)s->source * s->n + j] = c;
  s->flowt[top + (size_t)j * s->n + s->source] = c;
}

/* Step 3, node (l, j): its excess is its inflow, summed over the upper nodes in order
 * (the order in which the CPU adds the sends up). */
AM_FS_FN void am_fs_start_inflow(am_fs_t *s, int l, int j) {
  int n = s->n;
  const double *ft = s->flowt + (size_t)l * n * n + (size_t)j * n;
  double e = 0.0;
  for (int i = 0; i < n; i++)
    e += ft[i];
  s->excess[(size_t)l * n + j] = e;
  s->flag[(size_t)l * n + j] = 0;
  s->touched[(size_t)l * n + j] = 0;
}

/* Step 4, node (l, i), l >= 1: send its inflow down in proportion to its capacities, as
 * am_maxflow_start; the leftover (float rounding) stays. */
AM_FS_FN void am_fs_start_send(am_fs_t *s, int l, int i) {
  int n = s->n;
  size_t nn = (size_t)n * n, b = (size_t)(l - 1) * nn;
  double e = s->excess[(size_t)l * n + i];
  if (!(e > 0))
    return;
  const float *c = s->cap + b + (size_t)i * n;
  double rs = 0.0, sent = 0.0;
  for (int j = 0; j < n; j++)
    rs += c[j];
  double q = e < rs ? e / rs : 1.0;
  for (int j = 0; j < n; j++) {
    double x = q * c[j];
    if (x > c[j])
      x = c[j];
    s->flow[b + (size_t)i * n + j] = x;
    s->flowt[b + (size_t)j * n + i] = x;
    sent += x;
  }
  s->excess[(size_t)l * n + i] = e > sent ? e - sent : 0.0;
}

/* ---- global relabelling ---------------------------------------------------------------
 */

AM_FS_FN void am_fs_bfs_init(am_fs_t *s, int v) {
  s->label[v] = v == s->sink ? 0 : s->N + 1;
}

/* Frontier node v (label d) gives its unlabelled predecessors d + 1 and appends them to
 * out (*nout entries): (l+1,k) over down arcs with cap - flow > 0, (l-1,j) over up arcs
 * (the flow on (l,i) -> (l-1,j) > 0). The compare-and-swap makes one thread the labeller;
 * the label is the same whichever. */
AM_FS_FN void am_fs_bfs_visit(am_fs_t *s, int v, int *out, int *nout) {
  int n = s->n, L = s->L, inf = s->N + 1, l = v / n, i = v % n, d = s->label[v] + 1;
  size_t nn = (size_t)n * n;
  if (l + 1 <= L - 1) {
    const float *ct = s->capt + (size_t)l * nn + (size_t)i * n;
    const double *ft = s->flowt + (size_t)l * nn + (size_t)i * n;
    for (int k = 0; k < n; k++) {
      int u = (l + 1) * n + k;
      if (s->label[u] == inf && (double)ct[k] - ft[k] > 0 &&
          AM_FS_CAS(&s->label[u], inf, d) == inf)
        out[AM_FS_ADD(nout, 1)] = u;
    }
  }
  if (l >= 1) {
    const double *f = s->flow + (size_t)(l - 1) * nn + (size_t)i * n;
    for (int j = 0; j < n; j++) {
      int u = (l - 1) * n + j;
      if (s->label[u] == inf && f[j] > 0 && AM_FS_CAS(&s->label[u], inf, d) == inf)
        out[AM_FS_ADD(nout, 1)] = u;
    }
  }
}

/* ---- one synchronous round --------------------------------------------------------------
 */

AM_FS_FN int am_fs_active(const am_fs_t *s, int v) {
  return v != s->sink && s->label[v] <= s->N && s->excess[v] > AM_FS_EPS;
}

/* Push step of node v: along its admissible arcs (label one less, residual > 0) in arc
 * order, down arcs first, until its excess is spent. Writes the edges' flows and deltas
 * (each edge has this one writer in this round), marks the receivers; v's own excess is
 * settled by the update step. Returns 1 when v was active. */
AM_FS_FN int am_fs_push(am_fs_t *s, int v) {
  if (!am_fs_active(s, v))
    return 0;
  int n = s->n, L = s->L, l = v / n, i = v % n, d = s->label[v], pushed = 0;
  size_t nn = (size_t)n * n;
  double e = s->excess[v];
  if (l >= 1) {
    size_t row = (size_t)(l - 1) * nn + (size_t)i * n;
    const float *c = s->cap + row;
    double *f = s->flow + row, *dl = s->delta + row;
    double *ft = s->flowt + (size_t)(l - 1) * nn + i;
    const int *lab = s->label + (l - 1) * n;
    for (int j = 0; j < n && e > AM_FS_EPS; j++) {
      if (lab[j] != d - 1)
        continue;
      double r = (double)c[j] - f[j];
      if (!(r > 0))
        continue;
      double x = e < r ? e : r;
      f[j] = e < r ? f[j] + x : (double)c[j];
      ft[(size_t)j * n] = f[j];
      dl[j] = x;
      s->touched[(l - 1) * n + j] = 1;
      e -= x;
      pushed = 1;
    }
  }
  if (l <= L - 2) {
    double *ft = s->flowt + (size_t)l * nn + (size_t)i * n;
    double *f = s->flow + (size_t)l * nn + i, *dl = s->delta + (size_t)l * nn + i;
    const int *lab = s->label + (l + 1) * n;
    for (int k = 0; k < n && e > AM_FS_EPS; k++) {
      if (lab[k] != d - 1)
        continue;
      double r = ft[k];
      if (!(r > 0))
        continue;
      double x = e < r ? e : r;
      ft[k] = e < r ? ft[k] - x : 0.0;
      f[(size_t)k * n] = ft[k];
      dl[(size_t)k * n] = -x;
      s->touched[(l + 1) * n + k] = 1;
      e -= x;
      pushed = 1;
    }
  }
  s->flag[v] =
      (unsigned char)((pushed ? AM_FS_PUSHED : 0) | (e > AM_FS_EPS ? AM_FS_RELABEL : 0));
  if (pushed)
    s->touched[v] = 1;
  return 1;
}

/* Update step of node v: excess += inflow change - outflow change, over its arcs in a
 * fixed order (edges from layer l+1, then edges to layer l-1). */
AM_FS_FN void am_fs_update(am_fs_t *s, int v) {
  if (!s->touched[v])
    return;
  int n = s->n, L = s->L, l = v / n, i = v % n;
  size_t nn = (size_t)n * n;
  double in = 0.0, out = 0.0;
  if (l <= L - 2)
    for (int k = 0; k < n; k++)
      in += s->delta[(size_t)l * nn + (size_t)k * n + i];
  if (l >= 1)
    for (int j = 0; j < n; j++)
      out += s->delta[(size_t)(l - 1) * nn + (size_t)i * n + j];
  s->excess[v] += in - out;
}

/* The smallest label + 1 over v's residual arcs, at most N + 1. */
AM_FS_FN int am_fs_min_label(const am_fs_t *s, int v) {
  int n = s->n, L = s->L, l = v / n, i = v % n, best = s->N + 1;
  size_t nn = (size_t)n * n;
  if (l >= 1) {
    size_t row = (size_t)(l - 1) * nn + (size_t)i * n;
    for (int j = 0; j < n; j++)
      if (s->label[(l - 1) * n + j] + 1 < best &&
          (double)s->cap[row + j] - s->flow[row + j] > 0)
        best = s->label[(l - 1) * n + j] + 1;
  }
  if (l <= L - 2) {
    const double *ft = s->flowt + (size_t)l * nn + (size_t)i * n;
    for (int k = 0; k < n; k++)
      if (s->label[(l + 1) * n + k] + 1 < best && ft[k] > 0)
        best = s->label[(l + 1) * n + k] + 1;
  }
  return best;
}

/* Clear-and-relabel step of node v: a pusher zeroes the deltas of its arcs; a node that
 * kept excess computes its new label (committed by am_fs_commit). Returns 1 on a
 * relabel. */
AM_FS_FN int am_fs_clear_relabel(am_fs_t *s, int v) {
  int n = s->n, L = s->L, l = v / n, i = v % n;
  size_t nn = (size_t)n * n;
  s->touched[v] = 0;
  if (s->flag[v] & AM_FS_PUSHED) {
    if (l >= 1)
      for (int j = 0; j < n; j++)
        s->delta[(size_t)(l - 1) * nn + (size_t)i * n + j] = 0.0;
    if (l <= L - 2)
      for (int k = 0; k < n; k++)
        s->delta[(size_t)l * nn + (size_t)k * n + i] = 0.0;
  }
  if (!(s->flag[v] & AM_FS_RELABEL))
    return 0;
  s->next[v] = am_fs_min_label(s, v);
  return 1;
}

AM_FS_FN void am_fs_commit(am_fs_t *s, int v) {
  if (s->flag[v] & AM_FS_RELABEL)
    s->label[v] = s->next[v];
  s->flag[v] = 0;
}

/* ---- drivers: every thread of a block runs them
 * ------------------------------------------ */

/* Starts source `src`: rollout's preflow (am_maxflow_start's, with the same bits). */
AM_FS_FN void am_fs_start(am_fs_t *s, int src) {
  int n = s->n, L = s->L;
  s->source = src;
  s->sink = -1;
  AM_FS_FOR(k, (size_t)L * n * n) am_fs_start_clear(s, (size_t)k);
  AM_FS_SYNC();
  AM_FS_FOR(j, n) am_fs_start_source(s, j);
  AM_FS_SYNC();
  for (int l = L - 1; l >= 0; l--) {
    AM_FS_FOR(j, n) am_fs_start_inflow(s, l, j);
    AM_FS_SYNC();
    if (l >= 1) {
      AM_FS_FOR(i, n) am_fs_start_send(s, l, i);
      AM_FS_SYNC();
    }
  }
}

/* Exact labels for the current sink; cnt: 2 ints shared by the block. */
AM_FS_FN void am_fs_bfs(am_fs_t *s, int *cnt) {
  AM_FS_FOR(v, s->N) am_fs_bfs_init(s, v);
  if (AM_FS_TID == 0) {
    s->queue[0] = s->sink;
    cnt[0] = 1;
    cnt[1] = 0;
  }
  AM_FS_SYNC();
  int which = 0;
  int *a = s->queue, *b = s->queue + s->N;
  while (cnt[which] > 0) {
    int na = cnt[which];
    AM_FS_FOR(q, na) am_fs_bfs_visit(s, a[q], b, &cnt[1 - which]);
    AM_FS_SYNC();
    if (AM_FS_TID == 0)
      cnt[which] = 0;
    int *t = a;
    a = b;
    b = t;
    which = 1 - which;
    AM_FS_SYNC();
  }
}

/* Global relabelling after the rounds have relabelled as many nodes as the graph has
 * (hi_pr's rule of thumb: about as much relabel work as one search costs). */
#define AM_FS_BFS_AFTER(s) ((s)->N)

/* The maximum flow to sink j, warm from the preflow the block holds. cnt: 3 shared ints.
 * *rounds (thread 0's) counts the synchronous rounds, for the benchmark. */
AM_FS_FN double am_fs_solve(am_fs_t *s, int j, int *cnt, long *rounds) {
  s->sink = j;
  am_fs_bfs(s, cnt);
  if (AM_FS_TID == 0)
    cnt[2] = 0;
  int since = 0;
  for (;;) {
    int local = 0;
    AM_FS_FOR(v, s->N) local |= am_fs_push(s, v);
    if (!AM_FS_ANY(local))
      break;
    AM_FS_FOR(v, s->N) am_fs_update(s, v);
    AM_FS_SYNC();
    int rel = 0;
    AM_FS_FOR(v, s->N) rel += am_fs_clear_relabel(s, v);
    if (rel)
      AM_FS_ADD(&cnt[2], rel);
    AM_FS_SYNC();
    AM_FS_FOR(v, s->N) am_fs_commit(s, v);
    since += cnt[2]; /* the same total on every thread */
    if (rounds && AM_FS_TID == 0)
      (*rounds)++;
    AM_FS_SYNC();
    if (AM_FS_TID == 0)
      cnt[2] = 0;
    if (since >= AM_FS_BFS_AFTER(s)) {
      am_fs_bfs(s, cnt); /* its first barrier orders thread 0's reset before any add */
      since = 0;
    }
  }
  return s->excess[j];
}

/* One task: source src, sinks j0..j1-1 warm one after another, into raw[j]. */
AM_FS_FN void am_fs_task(am_fs_t *s, int src, int j0, int j1, double *raw, int *cnt,
                         long *rounds) {
  am_fs_start(s, src);
  for (int j = j0; j < j1; j++) {
    double v = am_fs_solve(s, j, cnt, rounds);
    if (AM_FS_TID == 0)
      raw[j] = v;
    AM_FS_SYNC();
  }
}

#endif
