/* long_kernels.c — the plain C set of the long-context form's per-tile loops
 * (long_kernels.h), the reference: expf per probability, sums key by key in double; and
 * the choice of set that goes with a context's matrix-form kernels. */
#include <math.h>

#include "cpu/long_head.h"
#include "cpu/long_kernels.h"

static int plain_row_max(const float *row, int nj, float *max) {
  float mt = -INFINITY;
  for (int c = 0; c < nj; c++) {
    if (isnan(row[c]) || row[c] == INFINITY)
      return 1;
    mt = row[c] > mt ? row[c] : mt;
  }
  *max = mt;
  return 0;
}

static double plain_exp_sum(const float *row, int nj, float m) {
  double sum = 0.0;
  for (int c = 0; c < nj; c++)
    sum += expf(row[c] - m);
  return sum;
}

static void plain_probs(float *row, int nj, double lse, int dist_i, double *ent,
                        double *dist) {
  double e = 0.0, ds = 0.0;
  for (int c = 0; c < nj; c++) {
    float sv = row[c];
    float a = expf((float)((double)sv - lse)); /* masked: exp(-inf) = 0 */
    if (a > 0.0f) {
      e += (double)a * (lse - (double)sv);
      if (dist_i != AM_LC_NO_DIST)
        ds += (double)a * fabs((double)dist_i - (double)c);
    }
    row[c] = a;
  }
  *ent += e;
  *dist += ds;
}

static void plain_col_product(const double *w, double *u, const float *x, int mi, int nj) {
  for (int k = 0; k < mi; k++) {
    double wi = w[k];
    if (wi == 0.0)
      continue;
    const float *row = x + (size_t)k * AM_LC_BK;
    for (int c = 0; c < nj; c++)
      u[c] += wi * (double)row[c];
  }
}

static void plain_grad_product(const double *w, double *u, const float *a, const float *g,
                               int mi, int nj) {
  for (int k = 0; k < mi; k++) {
    double wi = w[k];
    if (wi == 0.0)
      continue;
    const float *ar = a + (size_t)k * AM_LC_BK, *gr = g + (size_t)k * AM_LC_BK;
    for (int c = 0; c < nj; c++) {
      double t = (double)gr[c] * (double)ar[c];
      u[c] += wi * (t > 0.0 ? t : 0.0);
    }
  }
}

static const am_lc_kernels_t plain = {"portable",  plain_row_max,     plain_exp_sum,
                                      plain_probs, plain_col_product, plain_grad_product};

const am_lc_kernels_t *am_lc_kernels_plain(void) { return &plain; }

const am_lc_kernels_t *am_lc_kernels_for(const am_cpu_kernels_t *k) {
  if (!k)
    k = am_cpu_kernels_for_this_cpu();
  /* the matrix form's AVX2 set is the one with sweeps; the plain set has none */
  const am_lc_kernels_t *simd = k->row ? am_lc_kernels_avx2() : NULL;
  return simd ? simd : &plain;
}
