/* head_stats.c — per-head statistics of one attention row, averaged over the valid query
 * rows of a head (docs/design.md §3), and the row term of head importance.
 *
 * entropy -sum_j a_ij ln a_ij (nats, 0 ln 0 = 0) and entropy / ln n; confidence
 * max_j a_ij (Voita et al. 2019, "Analyzing Multi-Head Self-Attention"); attention to the
 * first, last, own, previous and next valid token (0 where the neighbour does not exist);
 * distance sum_j a_ij |i-j| in positions of the valid-token order. With a patch grid
 * (prefix tokens, then rows x cols patches row-major) the distance is the "mean attention
 * distance" of the ViT paper (Dosovitskiy et al. 2021, fig. 7) as its common code computes
 * it: Euclidean distance in patch units, summed over key patches, averaged over query
 * patches, prefix rows and columns left out and the weights not renormalised.
 * Head importance (Michel, Levy, Neubig 2019, "Are Sixteen Heads Really Better than
 * One?"), written with attention gradients: sum_i |sum_j a_ij g_ij|. */
#include <math.h>

#include "cpu/head_stats.h"

/* sum_j a_j |i-j| */
static double linear_distance(const float *a, int n, int i) {
  double d = 0.0;
  for (int j = 0; j < n; j++)
    d += (double)a[j] * (double)(i > j ? i - j : j - i);
  return d;
}

/* sum over key patches of a_j * |patch(i) - patch(j)|; i is a patch row. */
static double grid_distance(const float *a, int i, const am_grid_geom_t *g) {
  int p = i - g->prefix, ri = p / g->cols, ci = p % g->cols;
  double d = 0.0;
  for (int r = 0; r < g->rows; r++) {
    const float *ar = a + g->prefix + (size_t)r * g->cols;
    const double *dist = g->dist + (size_t)(r > ri ? r - ri : ri - r) * g->cols;
    for (int c = 0; c < g->cols; c++)
      d += (double)ar[c] * dist[c > ci ? c - ci : ci - c];
  }
  return d;
}

/* The terms that read single weights, and the grid distance. */
static void row_positions(const float *a, int n, int i, const am_grid_geom_t *geo,
                          double acc[AM_STAT_COUNT]) {
  acc[AM_STAT_TO_FIRST] += a[0];
  acc[AM_STAT_TO_LAST] += a[n - 1];
  acc[AM_STAT_TO_SELF] += a[i];
  if (i > 0)
    acc[AM_STAT_TO_PREV] += a[i - 1];
  if (i < n - 1)
    acc[AM_STAT_TO_NEXT] += a[i + 1];
  if (geo->active && i >= geo->prefix)
    acc[AM_STAT_DISTANCE] += grid_distance(a, i, geo);
}

void am_head_stats_row(const float *a, int n, int i, const am_grid_geom_t *geo,
                       double acc[AM_STAT_COUNT]) {
  double ent = 0.0;
  float conf = 0.0f;
  for (int j = 0; j < n; j++) {
    float x = a[j];
    if (x > 0.0f) /* 0 ln 0 = 0; logf: a float's log is exact to an ulp of the float */
      ent -= (double)x * logf(x);
    conf = x > conf ? x : conf;
  }
  acc[AM_STAT_ENTROPY] += ent;
  acc[AM_STAT_CONFIDENCE] += conf;
  if (!geo->active)
    acc[AM_STAT_DISTANCE] += linear_distance(a, n, i);
  row_positions(a, n, i, geo, acc);
}

void am_head_stats_row_from_sums(const float *a, const float pos[5], int n, int i,
                                 const am_grid_geom_t *geo, double ent, float conf,
                                 double dist, double acc[AM_STAT_COUNT]) {
  acc[AM_STAT_ENTROPY] -= ent;
  acc[AM_STAT_CONFIDENCE] += conf;
  acc[AM_STAT_TO_FIRST] += pos[0];
  acc[AM_STAT_TO_LAST] += pos[1];
  acc[AM_STAT_TO_SELF] += pos[2];
  if (i > 0)
    acc[AM_STAT_TO_PREV] += pos[3];
  if (i < n - 1)
    acc[AM_STAT_TO_NEXT] += pos[4];
  if (!geo->active)
    acc[AM_STAT_DISTANCE] += dist;
  else if (i >= geo->prefix)
    acc[AM_STAT_DISTANCE] += grid_distance(a, i, geo);
}

void am_head_stats_store(const double acc[AM_STAT_COUNT], int n, const am_grid_geom_t *geo,
                         float *stats, int L, int H, int l, int h) {
  size_t plane = (size_t)L * H, at = (size_t)l * H + h;
  for (int s = 0; s < AM_STAT_COUNT; s++)
    stats[s * plane + at] = (float)(acc[s] / n);
  /* entropy / ln n: a single token has no uncertainty to normalise, 0 by convention. */
  stats[AM_STAT_ENTROPY_NORM * plane + at] =
      n > 1 ? (float)(acc[AM_STAT_ENTROPY] / n / log((double)n)) : 0.0f;
  if (geo->active)
    stats[AM_STAT_DISTANCE * plane + at] =
        (float)(acc[AM_STAT_DISTANCE] / ((double)geo->rows * geo->cols));
}

double am_head_importance_row(const float *a, const float *g, int n) {
  double s = 0.0;
  for (int j = 0; j < n; j++)
    s += (double)a[j] * (double)g[j];
  return fabs(s);
}
