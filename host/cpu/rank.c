/* rank.c — ranking helpers behind the agreement metrics: a stable merge sort that also
 * counts inversions, average ranks with ties (scipy.stats.rankdata method='average') and
 * Kendall's tau-b computed as scipy.stats.kendalltau does (variant 'b'): sort the pairs by
 * (x, y), count discordant pairs as the strict inversions of the y sequence with a merge
 * sort (Knight's O(m log m) algorithm), then
 *   tau_b = (tot - xtie - ytie + ntie - 2 dis) / sqrt(tot - xtie) / sqrt(tot - ytie)
 * with tot = m(m-1)/2, xtie / ytie the pairs tied in x / y, ntie the pairs tied in both,
 * clipped to [-1, 1], NaN when every pair is tied in x or in y. */
#include "cpu/rank.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Below this length insertion sort is faster than merging. */
#define AM_RANK_SMALL 16

/* Stable; returns the number of pairs i < j with key[i] > key[j] (one per shift). */
static int64_t insertion_sort(double *key, double *idx, int m) {
  int64_t inv = 0;
  for (int i = 1; i < m; i++) {
    double k = key[i], v = idx[i];
    int j = i;
    while (j > 0 && k < key[j - 1]) {
      key[j] = key[j - 1];
      idx[j] = idx[j - 1];
      j--;
    }
    inv += i - j;
    key[j] = k;
    idx[j] = v;
  }
  return inv;
}

/* Merges the sorted runs [0,h) and [h,m) through tk/ti; equal keys take the left run first,
 * so only strict inversions are counted. */
static int64_t merge_runs(double *key, double *idx, int h, int m, double *tk, double *ti) {
  int64_t inv = 0;
  int i = 0, j = h, o = 0;
  while (i < h && j < m) {
    if (key[j] < key[i]) {
      inv += h - i;
      tk[o] = key[j];
      ti[o++] = idx[j++];
    } else {
      tk[o] = key[i];
      ti[o++] = idx[i++];
    }
  }
  while (i < h) {
    tk[o] = key[i];
    ti[o++] = idx[i++];
  }
  while (j < m) {
    tk[o] = key[j];
    ti[o++] = idx[j++];
  }
  memcpy(key, tk, (size_t)m * sizeof *key);
  memcpy(idx, ti, (size_t)m * sizeof *idx);
  return inv;
}

static int64_t sort_count(double *key, double *idx, int m, double *tk, double *ti) {
  if (m <= AM_RANK_SMALL)
    return insertion_sort(key, idx, m);
  int h = m / 2;
  int64_t inv = sort_count(key, idx, h, tk, ti);
  inv += sort_count(key + h, idx + h, m - h, tk, ti);
  if (!(key[h] < key[h - 1]))
    return inv; /* runs already in order */
  return inv + merge_runs(key, idx, h, m, tk, ti);
}

void am_rank_sort(double *key, double *idx, int m, double *tmp) {
  if (m > 1)
    (void)sort_count(key, idx, m, tmp, tmp + m);
}

void am_rank_sort_values(const float *v, int m, double *key, double *idx, double *tmp) {
  for (int i = 0; i < m; i++) {
    key[i] = v[i];
    idx[i] = i;
  }
  am_rank_sort(key, idx, m, tmp);
}

void am_rank_average_sorted(const double *key, const double *idx, int m, double *rank) {
  for (int i = 0; i < m;) {
    int j = i + 1;
    while (j < m && key[j] == key[i])
      j++;
    /* positions i..j-1 hold 1-based ranks i+1..j; their mean is exact in double */
    double r = 0.5 * ((double)i + 1.0 + (double)j);
    for (int t = i; t < j; t++)
      rank[(size_t)idx[t]] = r;
    i = j;
  }
}

/* Pairs tied within the runs of equal a[i] (and, when b is not NULL, equal b[i]). */
static int64_t tied_pairs(const double *a, const double *b, int m) {
  int64_t ties = 0;
  for (int i = 0; i < m;) {
    int j = i + 1;
    while (j < m && a[j] == a[i] && (!b || b[j] == b[i]))
      j++;
    int64_t c = j - i;
    ties += c * (c - 1) / 2;
    i = j;
  }
  return ties;
}

double am_rank_kendall_tau_b_sorted(const float *y, int m, const double *kx,
                                    const double *ix, const double *ky, const double *iy,
                                    double *work) {
  if (m < 2)
    return NAN;
  /* work: dx [m], start [m], xo [m], ys [m], tmp [2m] */
  double *dx = work, *start = work + m, *xo = work + 2 * (size_t)m;
  double *ys = work + 3 * (size_t)m, *tmp = work + 4 * (size_t)m;
  /* the pairs in (x, y) order: the y order, stably by x's dense rank (a counting sort
   * whose buckets start where each run of equal x starts in the x order) */
  int groups = 0;
  for (int i = 0; i < m; i++) {
    if (i > 0 && kx[i] != kx[i - 1])
      groups++;
    if (i == 0 || kx[i] != kx[i - 1])
      start[groups] = i;
    dx[(size_t)ix[i]] = groups;
  }
  for (int p = 0; p < m; p++) {
    size_t e = (size_t)iy[p], g = (size_t)dx[e], at = (size_t)start[g];
    start[g] = (double)(at + 1);
    xo[at] = (double)g;
    ys[at] = y[e];
  }

  const int64_t tot = (int64_t)m * (m - 1) / 2;
  const int64_t xtie = tied_pairs(kx, NULL, m);
  const int64_t ytie = tied_pairs(ky, NULL, m);
  const int64_t ntie = tied_pairs(xo, ys, m);
  /* y is ascending inside each run of equal x, so every strict inversion left in ys is a
   * discordant pair; xo carries along */
  const int64_t dis = sort_count(ys, xo, m, tmp, tmp + m);
  if (xtie == tot || ytie == tot)
    return NAN;
  const int64_t con_minus_dis = tot - xtie - ytie + ntie - 2 * dis;
  double tau =
      (double)con_minus_dis / sqrt((double)(tot - xtie)) / sqrt((double)(tot - ytie));
  return isnan(tau) ? tau : fmin(1.0, fmax(-1.0, tau)); /* NaN stays NaN */
}

int am_rank_order_desc_sorted(const double *key, const double *idx, int m, double *order) {
  if (m > 0 && key[0] < 0.0)
    return -1; /* a negative value: |v| does not follow v */
  int o = 0;
  for (int j = m; j > 0;) { /* runs of equal values from the largest, in position order */
    int i = j - 1;
    while (i > 0 && key[i - 1] == key[j - 1])
      i--;
    for (int t = i; t < j; t++)
      order[o++] = idx[t];
    j = i;
  }
  return 0;
}

void am_rank_order_abs_desc(const float *v, int m, double *idx, double *work) {
  /* work: key [m], tmp [2m]; ascending -|v| with a stable sort puts equal |v| in
   * position order */
  double *key = work, *tmp = work + m;
  for (int i = 0; i < m; i++) {
    key[i] = -fabs((double)v[i]);
    idx[i] = i;
  }
  am_rank_sort(key, idx, m, tmp);
}
