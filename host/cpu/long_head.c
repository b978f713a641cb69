/* long_head.c — one layer and query head of the long-context form, FlashAttention's
 * backward pass as the model (Dao et al. 2022, 2023: the probabilities are recomputed tile
 * by tile from each row's log-sum-exp and never stored). Per query tile of AM_LC_BQ rows:
 *
 *  sweep 1: the scores by sgemm, kept for sweep 2 (AM_LC_BQ x n floats: one query tile's
 *           row block, never n x n); the row maxima m_i and l_i = sum_j exp(s_ij - m_i),
 *           rescaled whenever a key tile raises the maximum (the online softmax);
 *           lse_i = m_i + ln l_i;
 *  sweep 2: a_ij = exp(s_ij - lse_i) per key tile from the kept scores, then
 *           - the row terms of the head statistics: entropy sum_j a_ij (lse_i - s_ij)
 *             (= lse_i - sum_j a_ij s_ij, as sum_j a_ij = 1), confidence exp(m_i - lse_i),
 *             the weights at the first/last/own/previous/next key, the distance;
 *           - the column products u_j += w_i a_ij (rollout's v A with w = v / 2, and
 *             attention_last's rows): FlashAttention's dV = P^T dO with w in place of dO;
 *           - g_ij = dO_i . v_j (dP = dO V^T, sgemm) and u_j += w_i max(0, g_ij a_ij)
 *             (gradient rollout);
 *           - O_i = sum_j a_ij v_j (P V, sgemm), then head importance sum_i |dO_i . O_i|,
 *             which equals sum_i |sum_j a_ij g_ij|.
 *
 * Memory beyond the widened rows: the kept row block and two tiles. Work per head: 2 n^2 d
 * flops for the scores, plus 2 n^2 d each for dO V^T and P V when asked (halved by causal
 * masking, less with a sliding window); n^2 exp per sweep. The per-probability loops are
 * long_kernels.h's (AVX2 or plain, the context's choice). Sums over keys run in a fixed
 * order per row (key order, or fixed float lanes) and over rows in row order, into
 * double: the same inputs give the same bits on any thread. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "cpu/head_stats.h"
#include "cpu/long_head.h"
#include "cpu/long_kernels.h"

/* Key tiles of n keys. */
static size_t key_tiles(int n) { return ((size_t)n + AM_LC_BK - 1) / AM_LC_BK; }

size_t am_lc_head_work_floats(int n, int d) {
  /* the score tiles of one query tile (kept from sweep 1 for sweep 2), a gradient tile and
   * the query rows' outputs; the row state of a query tile lives on the stack */
  return (key_tiles(n) + 1) * AM_LC_BQ * AM_LC_BK + (size_t)AM_LC_BQ * (size_t)d;
}

/* Where sweep 1 leaves the scores of key tile j0 (tile by tile, row stride AM_LC_BK). */
static float *tile_at(float *scores, int j0) {
  return scores + (size_t)(j0 / AM_LC_BK) * AM_LC_BQ * AM_LC_BK;
}

typedef struct tile_rows {
  float m[AM_LC_BQ];
  double lse[AM_LC_BQ], ent[AM_LC_BQ], dist[AM_LC_BQ];
  float pick[AM_LC_BQ][5]; /* a_i0, a_i,n-1, a_ii, a_i,i-1, a_i,i+1 (head_stats.h) */
} tile_rows_t;

static int min_int(int a, int b) { return a < b ? a : b; }

/* Sweep 1 over the key tiles of query rows [i0, i0+mi): r->m and r->lse. Returns the first
 * row (absolute) with a score not finite, or -1. */
static int find_lse(am_lc_head_job_t *job, int i0, int mi, float *s, tile_rows_t *r) {
  const am_lc_kernels_t *kern = job->kern;
  double l[AM_LC_BQ];
  for (int k = 0; k < mi; k++) {
    r->m[k] = -INFINITY;
    l[k] = 0.0;
  }
  for (int j0 = 0; j0 < job->n; j0 += AM_LC_BK) {
    int nj = min_int(AM_LC_BK, job->n - j0);
    if (am_lc_tile_hidden(job, i0, mi, j0, nj))
      continue;
    float *t = tile_at(s, j0);
    am_lc_scores(job, i0, mi, j0, nj, t);
    for (int k = 0; k < mi; k++) {
      const float *row = t + (size_t)k * AM_LC_BK;
      float mt = -INFINITY;
      if (kern->row_max(row, nj, &mt))
        return i0 + k;
      if (mt == -INFINITY)
        continue; /* every key of this tile is masked for the row */
      if (mt > r->m[k]) {
        if (l[k] > 0.0)
          l[k] *= exp((double)r->m[k] - (double)mt);
        r->m[k] = mt;
      }
      l[k] += kern->exp_sum(row, nj, r->m[k]);
    }
  }
  for (int k = 0; k < mi; k++)
    r->lse[k] = (double)r->m[k] + log(l[k]);
  return -1;
}

/* The distance of query i to key j as the statistic measures it: |i - j| in valid-token
 * order, or with an active grid the Euclidean patch distance (prefix tokens: 0). */
static double key_distance(const am_grid_geom_t *geo, int i, int j) {
  if (!geo || !geo->active)
    return (double)(i > j ? i - j : j - i);
  if (i < geo->prefix || j < geo->prefix)
    return 0.0;
  int pi = i - geo->prefix, pj = j - geo->prefix, cols = geo->cols;
  int dr = pi / cols - pj / cols, dc = pi % cols - pj % cols;
  return geo->dist[(size_t)(dr < 0 ? -dr : dr) * cols + (size_t)(dc < 0 ? -dc : dc)];
}

/* Turns row k of the score tile into probabilities in place, adding its row terms. */
static void tile_row_probs(const am_lc_head_job_t *job, int i, int j0, int nj, float *row,
                           tile_rows_t *r, int k) {
  int grid = job->geo && job->geo->active;
  int dist_i = job->stats && !grid ? i - j0 : AM_LC_NO_DIST;
  job->kern->probs(row, nj, r->lse[k], dist_i, &r->ent[k], &r->dist[k]);
  if (job->stats && grid) { /* the patch distance: a table look-up per key */
    double dist = 0.0;
    for (int c = 0; c < nj; c++)
      if (row[c] > 0.0f)
        dist += (double)row[c] * key_distance(job->geo, i, j0 + c);
    r->dist[k] += dist;
  }
  const int want[5] = {0, job->n - 1, i, i - 1, i + 1};
  for (int p = 0; p < 5; p++)
    if (want[p] >= j0 && want[p] < j0 + nj)
      r->pick[k][p] = row[want[p] - j0];
}

/* Sweep 2 over the key tiles of query rows [i0, i0+mi), on the scores sweep 1 left. */
static void sweep_tile(am_lc_head_job_t *job, int i0, int mi, float *scores, float *g,
                       float *o, tile_rows_t *r) {
  int d = job->d, grads = job->w_grad != NULL, outputs = job->importance;
  const am_lc_kernels_t *kern = job->kern;
  memset(r->ent, 0, sizeof r->ent);
  memset(r->dist, 0, sizeof r->dist);
  memset(r->pick, 0, sizeof r->pick);
  if (outputs)
    memset(o, 0, (size_t)mi * d * sizeof *o);
  for (int j0 = 0; j0 < job->n; j0 += AM_LC_BK) {
    int nj = min_int(AM_LC_BK, job->n - j0);
    if (am_lc_tile_hidden(job, i0, mi, j0, nj))
      continue;
    float *s = tile_at(scores, j0);
    for (int k = 0; k < mi; k++)
      tile_row_probs(job, i0 + k, j0, nj, s + (size_t)k * AM_LC_BK, r, k);
    if (job->w_att)
      kern->col_product(job->w_att + i0, job->u_att + j0, s, mi, nj);
    if (job->w_last)
      kern->col_product(job->w_last + i0, job->u_last + j0, s, mi, nj);
    if (grads) {
      /* g[mi,nj] = dO[i0:, :] V[j0:, :]^T */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mi, nj, d, 1.0f,
                  job->dout + (size_t)i0 * d, d, job->v + (size_t)j0 * d, d, 0.0f, g,
                  AM_LC_BK);
      kern->grad_product(job->w_grad + i0, job->u_grad + j0, s, g, mi, nj);
    }
    if (outputs) /* o[mi,d] += a[mi,nj] V[j0:j0+nj, :] */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, mi, d, nj, 1.0f, s, AM_LC_BK,
                  job->v + (size_t)j0 * d, d, 1.0f, o, d);
  }
}

/* Adds the finished rows of a query tile to the head's sums. */
static void finish_tile(am_lc_head_job_t *job, int i0, int mi, const float *o,
                        const tile_rows_t *r) {
  am_grid_geom_t flat = {0}; /* the distance is already summed per row */
  for (int k = 0; k < mi; k++) {
    int i = i0 + k;
    if (job->row_lse)
      job->row_lse[i] = r->lse[k];
    if (job->stats) {
      float conf = (float)exp((double)r->m[k] - r->lse[k]);
      am_head_stats_row_from_sums(NULL, r->pick[k], job->n, i, &flat, -r->ent[k], conf,
                                  r->dist[k], job->acc);
    }
    if (job->importance) {
      const float *dout = job->dout + (size_t)i * job->d, *oi = o + (size_t)k * job->d;
      double dot = 0.0;
      for (int c = 0; c < job->d; c++)
        dot += (double)dout[c] * (double)oi[c];
      if (job->row_dot)
        job->row_dot[i] = dot;
      job->importance_sum += fabs(dot);
    }
  }
}

void am_lc_head_run(am_lc_head_job_t *job) {
  int n = job->n;
  float *s = job->work;
  float *g = s + key_tiles(n) * AM_LC_BQ * AM_LC_BK;
  float *o = g + (size_t)AM_LC_BQ * AM_LC_BK;
  if (!job->kern)
    job->kern = am_lc_kernels_plain();
  memset(job->acc, 0, sizeof job->acc);
  job->importance_sum = 0.0;
  job->bad_row = -1;
  double *us[3] = {job->w_att ? job->u_att : NULL, job->w_last ? job->u_last : NULL,
                   job->w_grad ? job->u_grad : NULL};
  for (int k = 0; k < 3; k++)
    if (us[k])
      memset(us[k], 0, (size_t)n * sizeof *us[k]);
  tile_rows_t rows;
  for (int i0 = 0; i0 < n; i0 += AM_LC_BQ) {
    int mi = min_int(AM_LC_BQ, n - i0);
    int bad = find_lse(job, i0, mi, s, &rows);
    if (bad >= 0) {
      job->bad_row = bad;
      return;
    }
    sweep_tile(job, i0, mi, s, g, o, &rows);
    finish_tile(job, i0, mi, o, &rows);
  }
}
