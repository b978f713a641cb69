/* long_head.h — one layer and query head of the long-context form (docs/long-context.md),
 * tile by tile, never forming the n x n attention: the analyses' per-head terms from the
 * widened valid rows of Q, K, V and dO. Internal to the CPU backend (long_pass.c drives
 * it; the tests call it for the identities). */
#ifndef AM_CPU_LONG_HEAD_H
#define AM_CPU_LONG_HEAD_H

#include <stddef.h>
#include <stdint.h>

#include "ops/grid.h"
#include "ops/lists.h"
#include "ops/long_example.h"

/* Tile shape: query rows x keys. 64 x 128 floats = 32 KiB per tile buffer (three of them:
 * scores/probabilities, gradients, and the query rows' outputs), about L1 + L2 sized. */
#define AM_LC_BQ 64
#define AM_LC_BK 128

typedef struct am_lc_head_job {
  /* inputs, borrowed */
  const float *q, *k, *v; /* [n,d] valid rows, widened; k and v of this head's KV head */
  const float *dout;      /* [n,d] or NULL (no gradients) */
  int n, d;
  const int32_t *pos; /* [n] padded positions (causal order, sliding window) */
  const am_attention_spec_t *attn;
  /* column products of the probabilities, each u[j] = sum_i w[i] x_ij over valid i, in
   * increasing i (a pointer pair is used when its weights are given) */
  const double *w_att, *w_last;    /* x = a (rollout's v A, attention_last's rows) */
  const double *w_grad;            /* x = max(0, g a), g_ij = dO_i . v_j (needs dout) */
  double *u_att, *u_last, *u_grad; /* [n] overwritten */
  int stats;                       /* 1: acc below */
  const am_grid_geom_t *geo;       /* for the distance statistic (stats) */
  int importance;                  /* 1: importance below (needs dout) */
  double *row_lse, *row_dot;       /* [n] per row: log-sum-exp, dO_i . O_i; or NULL */
  float *work;                     /* am_lc_head_work_floats(n, d) floats */
  const struct am_lc_kernels *kern; /* long_kernels.h; NULL: the plain set */
  /* results */
  double acc[AM_STAT_COUNT]; /* sums over the rows of head_stats.c's row terms */
  double importance_sum;     /* sum_i |dO_i . O_i|, O = A V */
  int bad_row;               /* -1, or the first row with a score not finite */
} am_lc_head_job_t;

/* Floats of job->work for n rows of dimension d. */
size_t am_lc_head_work_floats(int n, int d);

/* Runs the job: two sweeps over the visible key tiles of each query tile (the first finds
 * each row's log-sum-exp, the second recomputes a_ij = exp(s_ij - lse_i) and feeds every
 * output). Results depend only on the inputs and the tile shape: bit-identical whatever
 * thread runs it. */
void am_lc_head_run(am_lc_head_job_t *job);

/* s [mi, AM_LC_BK] (row stride AM_LC_BK) <- the scores of query rows i0.. against keys
 * j0..: scale q k^T, soft-capped, -INFINITY where masked (long_tile.c). */
void am_lc_scores(const am_lc_head_job_t *job, int i0, int mi, int j0, int nj, float *s);
/* 1 when no key of [j0, j0+nj) is visible to any query of [i0, i0+mi). */
int am_lc_tile_hidden(const am_lc_head_job_t *job, int i0, int mi, int j0, int nj);

#endif
