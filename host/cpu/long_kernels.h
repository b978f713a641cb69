/* long_kernels.h — the per-tile loops of the long-context form (long_head.c) that run on
 * every probability: the row maximum and sum of exponentials (sweep 1), the probabilities
 * with their entropy and distance terms (sweep 2), and the column products of rollout,
 * attention_last and gradient rollout. Two sets: plain C (expf, double sums key by key),
 * and AVX2 + FMA (long_kernels_avx2.c: a polynomial exp of 8 floats, float lanes summed
 * into double per tile). Chosen with the matrix form's kernels (am_cpu_kernels_t of the
 * context: its AVX2 sweeps bring these, the plain loops bring the plain set), so every
 * thread of a pass uses the same set and results do not depend on the thread count.
 *
 * Each function is a fixed sequence of operations on its arguments (no dependence on
 * alignment or on which thread runs it): the same inputs give the same bits. */
#ifndef AM_CPU_LONG_KERNELS_H
#define AM_CPU_LONG_KERNELS_H

#include "cpu/row_sweep.h"

/* No distance term (a patch grid is active: long_head.c adds it itself). */
#define AM_LC_NO_DIST (-2147483647 - 1)

typedef struct am_lc_kernels {
  const char *name;
  /* The largest of row[0..nj) into *max (-INFINITY when every key is masked); returns 1
   * when a value is NaN or +inf (the score overflowed), else 0. */
  int (*row_max)(const float *row, int nj, float *max);
  /* sum_c exp(row[c] - m), m finite, masked keys (-inf) adding 0. */
  double (*exp_sum)(const float *row, int nj, float m);
  /* row[c] <- a = exp(row[c] - lse) (0 where masked); *ent += sum_c a (lse - s_c) over
   * a > 0; unless dist_i is AM_LC_NO_DIST, *dist += sum_c a |dist_i - c| (dist_i = the
   * query's index minus the tile's first key). */
  void (*probs)(float *row, int nj, double lse, int dist_i, double *ent, double *dist);
  /* u[c] += w[k] x[k][c] for k < mi in order, c < nj; rows with w[k] == 0 skipped; x has
   * row stride AM_LC_BK. */
  void (*col_product)(const double *w, double *u, const float *x, int mi, int nj);
  /* u[c] += w[k] max(0, g[k][c] a[k][c]), as col_product. */
  void (*grad_product)(const double *w, double *u, const float *a, const float *g, int mi,
                       int nj);
} am_lc_kernels_t;

/* The set that goes with the context's matrix-form kernels (NULL: this CPU's fastest). */
const am_lc_kernels_t *am_lc_kernels_for(const am_cpu_kernels_t *k);
/* The plain C set, the reference. */
const am_lc_kernels_t *am_lc_kernels_plain(void);
/* The AVX2 + FMA set; call only where am_cpu_simd_supported() is 1 (NULL off x86-64). */
const am_lc_kernels_t *am_lc_kernels_avx2(void);
/* exp of n floats by the AVX2 set's polynomial (tests); where am_cpu_simd_supported(). */
void am_lc_exp_avx2(const float *x, float *out, int n);

#endif
