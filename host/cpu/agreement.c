/* agreement.c — agreement between two token-importance vectors of one example
 * (docs/design.md §3
 * "Agreement"), the CPU reference. Everything is computed in double from the float inputs.
 *   spearman  Pearson correlation of average ranks (scipy.stats.spearmanr)
 *   kendall   tau-b, O(m log m), as scipy.stats.kendalltau (rank.c)
 * Each vector is sorted once per pair; the ranks, tau-b and the top-k orders follow
 * from that order (rank.h's *_sorted forms).
 *   pearson   scipy.stats.pearsonr's statistic; cosine x.y / (|x||y|); both clipped to
 * [-1,1] jaccard@k, feature_agreement@k, rank_agreement@k  (Krishna et al. 2022, "The
 * Disagreement Problem in Explainable Machine Learning"): top-k by |value| descending,
 * equal |value| to the lower position, k clipped to m jsd       Jensen-Shannon divergence
 * in nats of p = |x|/sum|x|, q = |y|/sum|y|, 0 ln 0 = 0
 *             (scipy.spatial.distance.jensenshannon(p, q) ** 2: scipy returns the root)
 *   tvd       0.5 sum |p - q|
 * Undefined values are NaN, never 0: m <= 0, a NaN anywhere in x or y (all metrics); m < 2
 * or a constant vector (the correlations); a zero norm (cosine); sum|.| == 0 (jsd, tvd);
 * k < 1 (the top-k metrics). */
#include "cpu/agreement.h"

#include <math.h>
#include <stddef.h>

#include "cpu/rank.h"

/* fmin/fmax drop a NaN operand: an undefined value must stay NaN, never become -1 or 0 */
static double clip_unit(double r) { return isnan(r) ? r : fmin(1.0, fmax(-1.0, r)); }

/* NaN or infinity: an overflowed map would read as cosine -1 or JSD 0 (inf/inf, clamped) */
static int has_nonfinite(const float *v, int m) {
  for (int i = 0; i < m; i++)
    if (!isfinite(v[i]))
      return 1;
  return 0;
}

/* Exact equality, as scipy's constant-input check; -0 equals +0. */
static int is_constant(const float *v, int m) {
  for (int i = 1; i < m; i++)
    if (v[i] != v[0])
      return 0;
  return 1;
}

/* Pearson correlation with two-pass means; the caller has ruled out constant inputs. */
static double pearson(const double *a, const double *b, int m) {
  double ma = 0.0, mb = 0.0;
  for (int i = 0; i < m; i++) {
    ma += a[i];
    mb += b[i];
  }
  ma /= m;
  mb /= m;
  double saa = 0.0, sbb = 0.0, sab = 0.0;
  for (int i = 0; i < m; i++) {
    double da = a[i] - ma, db = b[i] - mb;
    saa += da * da;
    sbb += db * db;
    sab += da * db;
  }
  double den = sqrt(saa * sbb); /* one root: identical inputs give exactly 1 */
  return den > 0.0 ? clip_unit(sab / den) : NAN;
}

static double cosine(const float *x, const float *y, int m) {
  double xx = 0.0, yy = 0.0, xy = 0.0;
  for (int i = 0; i < m; i++) {
    double a = x[i], b = y[i];
    xx += a * a;
    yy += b * b;
    xy += a * b;
  }
  if (xx == 0.0 || yy == 0.0)
    return NAN;
  return clip_unit(xy / sqrt(xx * yy));
}

/* x and y sorted once (am_rank_sort_values), for the rank correlations and the top-k
 * orders: two sorts per pair where each metric sorting on its own took seven. */
typedef struct sorted_pair {
  const double *kx, *ix, *ky, *iy;
} sorted_pair_t;

/* spearman, kendall, pearson; work: 6m doubles. */
static void correlations(const float *x, const float *y, int m, const sorted_pair_t *sp,
                         double *work, double out[AM_METRIC_COUNT]) {
  if (m < 2 || is_constant(x, m) || is_constant(y, m))
    return; /* stay NaN */
  double *a = work, *b = work + m;
  am_rank_average_sorted(sp->kx, sp->ix, m, a);
  am_rank_average_sorted(sp->ky, sp->iy, m, b);
  out[AM_METRIC_SPEARMAN] = pearson(a, b, m);
  out[AM_METRIC_KENDALL] =
      am_rank_kendall_tau_b_sorted(y, m, sp->kx, sp->ix, sp->ky, sp->iy, work);
  for (int i = 0; i < m; i++) {
    a[i] = x[i];
    b[i] = y[i];
  }
  out[AM_METRIC_PEARSON] = pearson(a, b, m);
}

/* Positions by |v| descending: from v's ascending order when no value is negative (maps
 * of attention and saliency norms), else by a sort of its own; work: 3m doubles. */
static void order_abs_desc(const float *v, int m, const double *key, const double *idx,
                           double *order, double *work) {
  if (am_rank_order_desc_sorted(key, idx, m, order) != 0)
    am_rank_order_abs_desc(v, m, order, work);
}

/* jaccard@k, feature_agreement@k, rank_agreement@k; work: 5m doubles. */
static void top_k(const float *x, const float *y, int m, int k, const sorted_pair_t *sp,
                  double *work, double out[AM_METRIC_COUNT]) {
  if (k > m)
    k = m;
  if (k < 1)
    return; /* stay NaN */
  /* work: ox [m], oy [m], scratch [3m], reused as mark [m] once both orders exist */
  double *ox = work, *oy = work + m, *scratch = work + 2 * (size_t)m;
  order_abs_desc(x, m, sp->kx, sp->ix, ox, scratch);
  order_abs_desc(y, m, sp->ky, sp->iy, oy, scratch);
  double *mark = scratch;
  for (int i = 0; i < m; i++)
    mark[i] = 0.0;
  for (int r = 0; r < k; r++)
    mark[(size_t)ox[r]] = 1.0;
  int common = 0, same_rank = 0;
  for (int r = 0; r < k; r++) {
    common += mark[(size_t)oy[r]] != 0.0;
    same_rank += ox[r] == oy[r];
  }
  out[AM_METRIC_JACCARD] = (double)common / (double)(2 * k - common);
  out[AM_METRIC_FEATURE_AGREEMENT] = (double)common / k;
  out[AM_METRIC_RANK_AGREEMENT] = (double)same_rank / k;
}

/* jsd and tvd of the L1-normalised absolute values. */
static void divergences(const float *x, const float *y, int m,
                        double out[AM_METRIC_COUNT]) {
  double sx = 0.0, sy = 0.0;
  for (int i = 0; i < m; i++) {
    sx += fabs((double)x[i]);
    sy += fabs((double)y[i]);
  }
  if (!(sx > 0.0) || !(sy > 0.0))
    return; /* stay NaN */
  double left = 0.0, right = 0.0, l1 = 0.0;
  for (int i = 0; i < m; i++) {
    double p = fabs((double)x[i]) / sx, q = fabs((double)y[i]) / sy;
    double mid = (p + q) / 2.0;
    if (p > 0.0)
      left += p * log(p / mid);
    if (q > 0.0)
      right += q * log(q / mid);
    l1 += fabs(p - q);
  }
  /* the divergence is >= 0; rounding can leave a few ulps below it */
  const double jsd = (left + right) / 2.0;
  out[AM_METRIC_JSD] = isnan(jsd) ? jsd : fmax(0.0, jsd);
  out[AM_METRIC_TVD] = 0.5 * l1;
}

void am_cpu_agreement(const float *x, const float *y, int m, int k, double *work,
                      double out[AM_METRIC_COUNT]) {
  for (int i = 0; i < AM_METRIC_COUNT; i++)
    out[i] = NAN;
  if (m <= 0 || has_nonfinite(x, m) || has_nonfinite(y, m))
    return;
  /* work: kx, ix, ky, iy [m each], then 6m for the metrics (the sorts' tmp first) */
  double *kx = work, *ix = work + m, *ky = work + 2 * (size_t)m, *iy = work + 3 * (size_t)m;
  double *rest = work + 4 * (size_t)m;
  am_rank_sort_values(x, m, kx, ix, rest);
  am_rank_sort_values(y, m, ky, iy, rest);
  const sorted_pair_t sp = {kx, ix, ky, iy};
  correlations(x, y, m, &sp, rest, out);
  out[AM_METRIC_COSINE] = cosine(x, y, m);
  top_k(x, y, m, k, &sp, rest, out);
  divergences(x, y, m, out);
}
