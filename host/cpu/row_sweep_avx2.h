/* row_sweep_avx2.h — the inline pieces of the AVX2 + FMA + F16C row sweep, shared by
 * row_sweep_avx2.c (one row per call) and head_sweep_avx2.c (every row of a head per
 * call). Include only from files built for x86-64 with GCC or Clang; every function here
 * carries the target attribute itself.
 *
 * What a step computes, from 8 keys in registers: sum and min (the check), max
 * (confidence), sum a ln a (entropy), sum a |i-j| (distance), sum a g (importance),
 * fused += a (head mean), u += vi max(0, a g) (gradient rollout, float; added into
 * double every 16 rows by the caller).
 *
 * ln (log8 below): an 8-entry table and a degree-5 polynomial. Measured over every
 * normal float in [2^-126, 2): |error| <= 8.8e-8 where |ln x| <= 1 and <= 1.24e-7
 * relative (one float ulp) elsewhere (tests/test_cpu_kernels.c samples it). An entropy
 * term a ln a is so within ~1.3e-7 relative, a row's entropy within ~1e-7 of the double
 * reference.
 *
 * Sums: float lanes over blocks of 64 keys (8 adds per lane), then added into double
 * lanes; lanes are combined in a fixed order, so the result depends on n and the values
 * only (not on alignment, thread or padding). a g is exact in float for F16 and BF16
 * (11- and 8-bit significands); the importance sum of a block may lose ~1e-7 of
 * sum |a g| to cancellation. A row's last n % 8 keys are the 8 keys ending at n with the
 * lanes already done masked off (no copies); rows shorter than 8 go through zero-filled
 * copies. Cost per 8 keys with gradients: about 45 instructions, 2 x 16 bytes (F16)
 * read; the entropy's ln is about 20 of them. */
#ifndef AM_CPU_ROW_SWEEP_AVX2_H
#define AM_CPU_ROW_SWEEP_AVX2_H

#include "cpu/row_sweep.h"

#include <float.h>
#include <immintrin.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define INLINE AVX2 static inline __attribute__((always_inline))

/* 8 elements of dtype at p (unaligned) as floats. */
INLINE __m256 load8(const unsigned char *p, am_dtype dt) {
  if (dt == AM_DTYPE_F16)
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i_u *)p));
  if (dt == AM_DTYPE_BF16) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i_u *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  return _mm256_loadu_ps((const float *)(const void *)p);
}

/* ln x: x = 2^k z with z in [0.699, 1.398) (the offset 0x3f330000, as in glibc's logf),
 * z's top 3 bits past the offset pick c from an 8-entry table (vpermps), r = z/c - 1 is
 * found exactly with one FMA (|r| < 0.0576), ln x = k ln 2 + ln c + log1p(r) with
 * log1p(r) = r + r^2 (c2 + c3 r + c4 r^2 + c5 r^3) fitted to |error| < 2.5e-10. The entry
 * holding 1 has c = 1, ln c = 0, so ln x keeps its relative accuracy near x = 1.
 * Any bit pattern gives a finite result (0 and subnormals too, as if normal), so
 * x ln x needs no mask: 0 gives 0, and a subnormal x contributes below 1e-36 either way. */
static const float log_invc[8] = {1.3689839839935303f,
                                  1.261083722114563f,
                                  1.1689497232437134f,
                                  1.0893616676330566f,
                                  1.0f,
                                  0.9208633303642273f,
                                  0.8258064389228821f,
                                  0.7485380172729492f};
static const float log_lnc[8] = {-0.31406885385513306f,
                                 -0.23197144269943237f,
                                 -0.1561056673526764f,
                                 -0.08559189736843109f,
                                 0.0f,
                                 0.08244364708662033f,
                                 0.1913948655128479f,
                                 0.28963327407836914f};

INLINE __m256 log8(__m256 x, __m256 invc_tab, __m256 lnc_tab) {
  __m256i ix = _mm256_castps_si256(x);
  __m256i tmp = _mm256_sub_epi32(ix, _mm256_set1_epi32(0x3f330000));
  __m256i idx = _mm256_srli_epi32(tmp, 20); /* vpermps reads the low 3 bits */
  __m256 k = _mm256_cvtepi32_ps(_mm256_srai_epi32(tmp, 23));
  __m256 z = _mm256_castsi256_ps(
      _mm256_sub_epi32(ix, _mm256_and_si256(tmp, _mm256_set1_epi32((int)0xff800000u))));
  __m256 invc = _mm256_permutevar8x32_ps(invc_tab, idx);
  __m256 lnc = _mm256_permutevar8x32_ps(lnc_tab, idx);
  __m256 r = _mm256_fmsub_ps(z, invc, _mm256_set1_ps(1.0f));
  __m256 hi = _mm256_fmadd_ps(k, _mm256_set1_ps(0.693147180559945f), lnc);
  __m256 r2 = _mm256_mul_ps(r, r);
  __m256 q = _mm256_fmadd_ps(_mm256_set1_ps(0.20082283f), r, _mm256_set1_ps(-0.25076833f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(0.33333218f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(-0.49999923f));
  return _mm256_add_ps(hi, _mm256_fmadd_ps(q, r2, r));
}

/* What a sweep feeds besides the check sums (its `opts`). */
#define OPT_FUSE 1  /* fused row += a */
#define OPT_STATS 2 /* max, sum a ln a, sum a |i-j| (else left 0) */

/* Running state of one sweep. */
typedef struct lanes {
  __m256 fsum, fent, fdist, fimp, mn, mx, jv, tinv, tlnc, vi; /* jv: j - i per lane */
  __m256d dsum0, dsum1, dent0, dent1, ddist0, ddist1, dimp0, dimp1;
} lanes_t;

INLINE __m256d lo4(__m256 v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
INLINE __m256d hi4(__m256 v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }

/* One step of 8 keys: a, g at pa, pg; outputs at the given pointers (8 each). keep:
 * the lanes that count (all ones, or the last keys of an overlapping final step). */
INLINE void step8(lanes_t *s, const unsigned char *pa, const unsigned char *pg,
                  const am_dtype dt, const int has_g, const int has_u, const int opts,
                  float *arow, float *grow, float *fuse, float *u, const float *dist,
                  const int masked, __m256 keep) {
  __m256 a = load8(pa, dt);
  if (arow)
    _mm256_storeu_ps(arow, a);
  if (masked)
    a = _mm256_and_ps(a, keep);
  s->fsum = _mm256_add_ps(s->fsum, a);
  /* lanes masked off count as FLT_MAX for the min (and as 0 everywhere else) */
  s->mn =
      _mm256_min_ps(s->mn, masked ? _mm256_blendv_ps(_mm256_set1_ps(FLT_MAX), a, keep) : a);
  if (opts & OPT_STATS) {
    s->mx = _mm256_max_ps(s->mx, a);
    s->fent = _mm256_fmadd_ps(a, log8(a, s->tinv, s->tlnc), s->fent);
    /* |i - j|: a load from the table where there is one (two vector operations fewer) */
    __m256 d =
        dist ? _mm256_loadu_ps(dist) : _mm256_andnot_ps(_mm256_set1_ps(-0.0f), s->jv);
    s->fdist = _mm256_fmadd_ps(a, d, s->fdist);
    if (!dist)
      s->jv = _mm256_add_ps(s->jv, _mm256_set1_ps(8.0f));
  }
  if (opts & OPT_FUSE)
    _mm256_storeu_ps(fuse, _mm256_add_ps(_mm256_loadu_ps(fuse), a));
  if (!has_g)
    return;
  __m256 g = load8(pg, dt);
  if (grow)
    _mm256_storeu_ps(grow, g);
  if (masked)
    g = _mm256_and_ps(g, keep);
  __m256 p = _mm256_mul_ps(a, g);
  s->fimp = _mm256_add_ps(s->fimp, p);
  if (has_u)
    _mm256_storeu_ps(u, _mm256_fmadd_ps(s->vi, _mm256_max_ps(p, _mm256_setzero_ps()),
                                        _mm256_loadu_ps(u)));
}

/* A row of c < 8 keys through zero-filled copies, the lanes past c masked off. */
INLINE void tail8(lanes_t *s, const am_row_job_t *jb, int j, int c, const am_dtype dt,
                  const int has_g, const int has_u, const int opts) {
  size_t es = dt == AM_DTYPE_F32 ? 4 : 2;
  unsigned char ta[32] = {0}, tg[32] = {0};
  float ra[8], rg[8], rf[8] = {0};
  float ru[8] = {0};
  memcpy(ta, (const unsigned char *)jb->a + (size_t)j * es, (size_t)c * es);
  if (has_g)
    memcpy(tg, (const unsigned char *)jb->g + (size_t)j * es, (size_t)c * es);
  if (opts & OPT_FUSE)
    memcpy(rf, jb->fuse + j, (size_t)c * sizeof *rf);
  if (has_u)
    memcpy(ru, jb->u + j, (size_t)c * sizeof *ru);
  __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(c), lane));
  step8(s, ta, tg, dt, has_g, has_u, opts, ra, rg, rf, ru, NULL, 1, keep);
  if (jb->arow)
    memcpy(jb->arow + j, ra, (size_t)c * sizeof *ra);
  if (has_g && jb->grow)
    memcpy(jb->grow + j, rg, (size_t)c * sizeof *rg);
  if (opts & OPT_FUSE)
    memcpy(jb->fuse + j, rf, (size_t)c * sizeof *rf);
  if (has_u)
    memcpy(jb->u + j, ru, (size_t)c * sizeof *ru);
}

/* (x0 + x1) lane-wise, then ((l0 + l1) + (l2 + l3)): a fixed order. */
INLINE double hsum(__m256d x0, __m256d x1) {
  __m256d x = _mm256_add_pd(x0, x1);
  __m128d lo = _mm256_castpd256_pd128(x), hi = _mm256_extractf128_pd(x, 1);
  __m128d a = _mm_add_sd(lo, _mm_unpackhi_pd(lo, lo)); /* l0 + l1 */
  __m128d b = _mm_add_sd(hi, _mm_unpackhi_pd(hi, hi)); /* l2 + l3 */
  return _mm_cvtsd_f64(_mm_add_sd(a, b));
}

INLINE void flush(lanes_t *s) {
  s->dsum0 = _mm256_add_pd(s->dsum0, lo4(s->fsum));
  s->dsum1 = _mm256_add_pd(s->dsum1, hi4(s->fsum));
  s->dent0 = _mm256_add_pd(s->dent0, lo4(s->fent));
  s->dent1 = _mm256_add_pd(s->dent1, hi4(s->fent));
  s->ddist0 = _mm256_add_pd(s->ddist0, lo4(s->fdist));
  s->ddist1 = _mm256_add_pd(s->ddist1, hi4(s->fdist));
  s->dimp0 = _mm256_add_pd(s->dimp0, lo4(s->fimp));
  s->dimp1 = _mm256_add_pd(s->dimp1, hi4(s->fimp));
  s->fsum = s->fent = s->fdist = s->fimp = _mm256_setzero_ps();
}

/* Horizontal min and max of 8 lanes, by shuffles (the order of min/max does not matter). */
INLINE float hmin(__m256 x) {
  __m128 m = _mm_min_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  m = _mm_min_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_min_ss(m, _mm_movehdup_ps(m)));
}
INLINE float hmax(__m256 x) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

INLINE void finish(lanes_t *s, am_row_sums_t *out) {
  out->amin = hmin(s->mn);
  out->amax = hmax(s->mx);
  out->sum = hsum(s->dsum0, s->dsum1);
  out->ent = hsum(s->dent0, s->dent1);
  out->dist = hsum(s->ddist0, s->ddist1);
  out->imp = hsum(s->dimp0, s->dimp1);
}

/* tab: 1 when jb->dist holds |i - j| (the head and layer sweeps), 0 to compute it. */
INLINE void sweep_core(const am_row_job_t *jb, am_row_sums_t *out, const am_dtype dt,
                       const int has_g, const int has_u, const int opts, const int tab) {
  const size_t es = dt == AM_DTYPE_F32 ? 4 : 2;
  const unsigned char *pa = jb->a, *pg = jb->g;
  float *arow = jb->arow, *grow = jb->grow, *fuse = jb->fuse;
  float *u = jb->u;
  const int n = jb->n;
  lanes_t s;
  s.vi = _mm256_set1_ps(jb->vi);
  s.tinv = _mm256_loadu_ps(log_invc);
  s.tlnc = _mm256_loadu_ps(log_lnc);
  s.fsum = s.fent = s.fdist = s.fimp = s.mx = _mm256_setzero_ps();
  s.mn = _mm256_set1_ps(FLT_MAX);
  s.jv =
      _mm256_sub_ps(_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_ps((float)jb->i));
  s.dsum0 = s.dsum1 = s.dent0 = s.dent1 = s.ddist0 = s.ddist1 = s.dimp0 = s.dimp1 =
      _mm256_setzero_pd();
  const __m256 keep0 = _mm256_setzero_ps(); /* unused when not masked */
  if (n < 8) {
    tail8(&s, jb, 0, n, dt, has_g, has_u, opts);
    flush(&s);
    finish(&s, out);
    return;
  }
  int j = 0;
  while (j + 8 <= n) {
    int end = n - j > 64 ? j + 64 : n;
    for (; j + 8 <= end; j += 8)
      step8(&s, pa + (size_t)j * es, has_g ? pg + (size_t)j * es : NULL, dt, has_g, has_u,
            opts, arow ? arow + j : NULL, has_g && grow ? grow + j : NULL,
            opts & OPT_FUSE ? fuse + j : NULL, has_u ? u + j : NULL,
            tab ? jb->dist + j : NULL, 0, keep0);
    if (j + 8 > n)
      break;
    flush(&s);
  }
  if (j < n) { /* the last n - j keys: the 8 keys ending at n, earlier lanes masked off */
    int b = n - 8, c = n - j;
    __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(lane, _mm256_set1_epi32(7 - c)));
    s.jv = _mm256_cvtepi32_ps(_mm256_add_epi32(lane, _mm256_set1_epi32(b - jb->i)));
    step8(&s, pa + (size_t)b * es, has_g ? pg + (size_t)b * es : NULL, dt, has_g, has_u,
          opts, arow ? arow + b : NULL, has_g && grow ? grow + b : NULL,
          opts & OPT_FUSE ? fuse + b : NULL, has_u ? u + b : NULL,
          tab ? jb->dist + b : NULL, 1, keep);
  }
  flush(&s);
  finish(&s, out);
}

#endif
