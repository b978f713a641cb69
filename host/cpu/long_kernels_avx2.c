/* long_kernels_avx2.c — the AVX2 + FMA set of the long-context form's per-tile loops
 * (long_kernels.h). Measured effect: bench/bench_long (docs/long-context.md).
 *
 * exp (exp8 below): Cephes' expf, x = n ln 2 + r with n = round(x log2 e), r reduced in
 * two FMA steps (ln 2 = 0.693359375 - 2.12194440e-4), exp r by a degree-7 polynomial
 * (|r| <= ln 2 / 2), times 2^n put into the exponent bits. Within 2 float ulp of expf over
 * [-87, 88.37] (tests/test_long_context.c samples it); x < -87 (and -inf, the masked
 * keys) gives 0 where expf gives at most 1.65e-38 — nothing a row that sums to 1 can see.
 *
 * Sums: float lanes over blocks of 64 keys, added into double lanes, lanes combined in a
 * fixed order; column products in double lanes (u += w x by FMA), rows in order. The
 * probabilities' exponent s - lse is formed in double, as the plain set does. */
#include <math.h>

#include "cpu/long_head.h"
#include "cpu/long_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define INLINE AVX2 static inline __attribute__((always_inline))

INLINE __m256 exp8(__m256 x) {
  __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_GE_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)),
                    _mm256_set1_ps(88.3762626647949f));
  __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500E-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507E-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073E-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894E-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459E-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201E-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), r);
  y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
  __m256i n = _mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127));
  __m256 p2 = _mm256_castsi256_ps(_mm256_slli_epi32(n, 23));
  return _mm256_and_ps(_mm256_mul_ps(y, p2), keep);
}

INLINE double hsum_pd(__m256d x0, __m256d x1) {
  __m256d x = _mm256_add_pd(x0, x1);
  __m128d lo = _mm256_castpd256_pd128(x), hi = _mm256_extractf128_pd(x, 1);
  __m128d a = _mm_add_sd(lo, _mm_unpackhi_pd(lo, lo));
  __m128d b = _mm_add_sd(hi, _mm_unpackhi_pd(hi, hi));
  return _mm_cvtsd_f64(_mm_add_sd(a, b));
}

INLINE void flush(__m256 *f, __m256d *d0, __m256d *d1) {
  *d0 = _mm256_add_pd(*d0, _mm256_cvtps_pd(_mm256_castps256_ps128(*f)));
  *d1 = _mm256_add_pd(*d1, _mm256_cvtps_pd(_mm256_extractf128_ps(*f, 1)));
  *f = _mm256_setzero_ps();
}

/* 8 keys from c on, the lanes past nj as masked keys (-inf), in *buf when short. */
INLINE __m256 load_keys(const float *row, int c, int nj, float *buf) {
  if (c + 8 <= nj)
    return _mm256_loadu_ps(row + c);
  for (int t = 0; t < 8; t++)
    buf[t] = c + t < nj ? row[c + t] : -INFINITY;
  return _mm256_loadu_ps(buf);
}

AVX2 static int avx2_row_max(const float *row, int nj, float *max) {
  __m256 mx = _mm256_set1_ps(-INFINITY), bad = _mm256_setzero_ps();
  float buf[8];
  for (int c = 0; c < nj; c += 8) {
    __m256 s = load_keys(row, c, nj, buf);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(s, s, _CMP_UNORD_Q));
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(s, _mm256_set1_ps(INFINITY), _CMP_EQ_OQ));
    mx = _mm256_max_ps(mx, s);
  }
  if (_mm256_movemask_ps(bad))
    return 1;
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  *max = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
  return 0;
}

AVX2 static double avx2_exp_sum(const float *row, int nj, float m) {
  __m256 f = _mm256_setzero_ps(), mv = _mm256_set1_ps(m);
  __m256d d0 = _mm256_setzero_pd(), d1 = _mm256_setzero_pd();
  float buf[8];
  for (int c = 0; c < nj; c += 8) {
    f = _mm256_add_ps(f, exp8(_mm256_sub_ps(load_keys(row, c, nj, buf), mv)));
    if ((c & 63) == 56)
      flush(&f, &d0, &d1);
  }
  flush(&f, &d0, &d1);
  return hsum_pd(d0, d1);
}

AVX2 static void avx2_probs(float *row, int nj, double lse, int dist_i, double *ent,
                            double *dist) {
  __m256 fe = _mm256_setzero_ps(), fd = _mm256_setzero_ps();
  __m256d e0 = _mm256_setzero_pd(), e1 = _mm256_setzero_pd();
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  __m256d lv = _mm256_set1_pd(lse);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const int want_dist = dist_i != AM_LC_NO_DIST;
  float buf[8];
  for (int c = 0; c < nj; c += 8) {
    __m256 s = load_keys(row, c, nj, buf);
    __m128 xl =
        _mm256_cvtpd_ps(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(s)), lv));
    __m128 xh =
        _mm256_cvtpd_ps(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(s, 1)), lv));
    __m256 x = _mm256_set_m128(xh, xl); /* s - lse, rounded once */
    __m256 a = exp8(x);
    __m256 live = _mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_GT_OQ);
    /* a (lse - s); 0 where a is 0 (a masked key's lse - s is +inf) */
    fe = _mm256_add_ps(
        fe, _mm256_and_ps(_mm256_mul_ps(a, _mm256_sub_ps(_mm256_setzero_ps(), x)), live));
    if (want_dist) {
      __m256 dv = _mm256_cvtepi32_ps(
          _mm256_sub_epi32(_mm256_set1_epi32(dist_i - c), lane)); /* exact integers */
      dv = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), dv);
      fd = _mm256_fmadd_ps(a, dv, fd);
    }
    if (c + 8 <= nj) {
      _mm256_storeu_ps(row + c, a);
    } else {
      _mm256_storeu_ps(buf, a);
      for (int t = 0; c + t < nj; t++)
        row[c + t] = buf[t];
    }
    if ((c & 63) == 56 || c + 8 >= nj) {
      flush(&fe, &e0, &e1);
      flush(&fd, &s0, &s1);
    }
  }
  *ent += hsum_pd(e0, e1);
  *dist += hsum_pd(s0, s1);
}

INLINE __m256d pos_prod(__m128 a, __m128 g) {
  __m256d t = _mm256_mul_pd(_mm256_cvtps_pd(a), _mm256_cvtps_pd(g)); /* exact */
  return _mm256_max_pd(t, _mm256_setzero_pd());
}

/* u[c] += w[k] x where x = a[k][c] (g NULL) or max(0, g[k][c] a[k][c]); 8 columns at a
 * time held in registers over the rows, the last nj % 8 one by one (the same FMA). */
INLINE void products(const double *w, double *u, const float *a, const float *g, int mi,
                     int nj) {
  int c = 0;
  for (; c + 8 <= nj; c += 8) {
    __m256d u0 = _mm256_loadu_pd(u + c), u1 = _mm256_loadu_pd(u + c + 4);
    for (int k = 0; k < mi; k++) {
      if (w[k] == 0.0)
        continue;
      __m256d wv = _mm256_set1_pd(w[k]), x0, x1;
      __m256 av = _mm256_loadu_ps(a + (size_t)k * AM_LC_BK + c);
      if (g) {
        __m256 gv = _mm256_loadu_ps(g + (size_t)k * AM_LC_BK + c);
        x0 = pos_prod(_mm256_castps256_ps128(av), _mm256_castps256_ps128(gv));
        x1 = pos_prod(_mm256_extractf128_ps(av, 1), _mm256_extractf128_ps(gv, 1));
      } else {
        x0 = _mm256_cvtps_pd(_mm256_castps256_ps128(av));
        x1 = _mm256_cvtps_pd(_mm256_extractf128_ps(av, 1));
      }
      u0 = _mm256_fmadd_pd(wv, x0, u0);
      u1 = _mm256_fmadd_pd(wv, x1, u1);
    }
    _mm256_storeu_pd(u + c, u0);
    _mm256_storeu_pd(u + c + 4, u1);
  }
  for (; c < nj; c++)
    for (int k = 0; k < mi; k++) {
      if (w[k] == 0.0)
        continue;
      size_t at = (size_t)k * AM_LC_BK + c;
      double x = a[at];
      if (g)
        x = (double)g[at] * x > 0.0 ? (double)g[at] * x : 0.0;
      u[c] = fma(w[k], x, u[c]);
    }
}

AVX2 static void avx2_col_product(const double *w, double *u, const float *x, int mi,
                                  int nj) {
  products(w, u, x, NULL, mi, nj);
}

AVX2 static void avx2_grad_product(const double *w, double *u, const float *a,
                                   const float *g, int mi, int nj) {
  products(w, u, a, g, mi, nj);
}

AVX2 void am_lc_exp_avx2(const float *x, float *out, int n) {
  float buf[8];
  for (int j = 0; j < n; j += 8) {
    __m256 e = exp8(load_keys(x, j, n, buf));
    _mm256_storeu_ps(buf, e);
    for (int t = 0; t < 8 && j + t < n; t++)
      out[j + t] = buf[t];
  }
}

static const am_lc_kernels_t avx2 = {"avx2+fma", avx2_row_max,     avx2_exp_sum,
                                     avx2_probs, avx2_col_product, avx2_grad_product};

const am_lc_kernels_t *am_lc_kernels_avx2(void) { return &avx2; }
#else
const am_lc_kernels_t *am_lc_kernels_avx2(void) { return NULL; }
void am_lc_exp_avx2(const float *x, float *out, int n) {
  for (int j = 0; j < n; j++)
    out[j] = expf(x[j]);
}
#endif
