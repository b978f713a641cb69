/* row_sweep_avx2.c — the AVX2 + FMA + F16C row sweep, one row per call (row_sweep.h):
 * the variants by dtype and by what the row feeds, the ln of the tests and the entropy
 * loop of the benchmarks' compute floor. The arithmetic is in row_sweep_avx2.h. */
#include "cpu/row_sweep.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include "cpu/row_sweep_avx2.h"

AVX2 void am_fast_log_avx2(const float *x, float *out, int n) {
  int j = 0;
  __m256 ti = _mm256_loadu_ps(log_invc), tl = _mm256_loadu_ps(log_lnc);
  for (; j + 8 <= n; j += 8)
    _mm256_storeu_ps(out + j, log8(_mm256_loadu_ps(x + j), ti, tl));
  if (j < n) {
    float in[8] = {1, 1, 1, 1, 1, 1, 1, 1}, res[8];
    memcpy(in, x + j, (size_t)(n - j) * sizeof *x);
    _mm256_storeu_ps(res, log8(_mm256_loadu_ps(in), ti, tl));
    memcpy(out + j, res, (size_t)(n - j) * sizeof *out);
  }
}

#define SWEEP_VARIANT(name, DT, G, U, F)                                                   \
  AVX2 static void name(const am_row_job_t *jb, am_row_sums_t *out) {                      \
    sweep_core(jb, out, DT, G, U, (F) | OPT_STATS, 0);                                     \
  }
#define SWEEP_DTYPE(tag, DT)                                                               \
  SWEEP_VARIANT(tag##_a, DT, 0, 0, 0)                                                      \
  SWEEP_VARIANT(tag##_af, DT, 0, 0, 1)                                                     \
  SWEEP_VARIANT(tag##_ag, DT, 1, 0, 0)                                                     \
  SWEEP_VARIANT(tag##_agf, DT, 1, 0, 1)                                                    \
  SWEEP_VARIANT(tag##_agu, DT, 1, 1, 0)                                                    \
  SWEEP_VARIANT(tag##_aguf, DT, 1, 1, 1)
SWEEP_DTYPE(f32, AM_DTYPE_F32)
SWEEP_DTYPE(f16, AM_DTYPE_F16)
SWEEP_DTYPE(bf16, AM_DTYPE_BF16)

typedef void (*variant_fn)(const am_row_job_t *, am_row_sums_t *);
#define SWEEP_ROW(tag)                                                                     \
  { tag##_a, tag##_af, tag##_ag, tag##_agf, tag##_agu, tag##_aguf }
static const variant_fn variants[3][6] = {SWEEP_ROW(f32), SWEEP_ROW(f16), SWEEP_ROW(bf16)};

void am_row_sweep_avx2(const am_row_job_t *jb, am_row_sums_t *out) {
  int d = jb->dtype == AM_DTYPE_F16 ? 1 : (jb->dtype == AM_DTYPE_BF16 ? 2 : 0);
  int g = jb->g != NULL, u = g && jb->u && jb->vi != 0.0f, f = jb->fuse != NULL;
  variants[d][(g ? 2 + 2 * u : 0) + f](jb, out);
}

/* sum_j a_j ln a_j of one contiguous row alone, for the benchmarks' compute floor: the
 * entropy's share of the sweep as a tight loop (widen, ln, multiply-add). */
INLINE double entropy_core(const unsigned char *p, int n, const am_dtype dt) {
  const size_t es = dt == AM_DTYPE_F32 ? 4 : 2;
  __m256 ti = _mm256_loadu_ps(log_invc), tl = _mm256_loadu_ps(log_lnc);
  __m256d d0 = _mm256_setzero_pd(), d1 = _mm256_setzero_pd();
  __m256 f = _mm256_setzero_ps();
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 a = load8(p + (size_t)j * es, dt);
    f = _mm256_fmadd_ps(a, log8(a, ti, tl), f);
    if ((j & 63) == 56) {
      d0 = _mm256_add_pd(d0, lo4(f));
      d1 = _mm256_add_pd(d1, hi4(f));
      f = _mm256_setzero_ps();
    }
  }
  if (j < n) {
    __m256 a;
    if (n >= 8) { /* the 8 keys ending at n, the lanes before j masked off */
      __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      __m256i keep = _mm256_cmpgt_epi32(lane, _mm256_set1_epi32(7 - (n - j)));
      a = _mm256_and_ps(load8(p + (size_t)(n - 8) * es, dt), _mm256_castsi256_ps(keep));
    } else {
      unsigned char t[32] = {0};
      memcpy(t, p, (size_t)n * es);
      a = load8(t, dt);
    }
    f = _mm256_fmadd_ps(a, log8(a, ti, tl), f);
  }
  d0 = _mm256_add_pd(d0, lo4(f));
  d1 = _mm256_add_pd(d1, hi4(f));
  return hsum(d0, d1);
}

AVX2 static double entropy_f32(const void *a, int n) {
  return entropy_core(a, n, AM_DTYPE_F32);
}
AVX2 static double entropy_f16(const void *a, int n) {
  return entropy_core(a, n, AM_DTYPE_F16);
}
AVX2 static double entropy_bf16(const void *a, int n) {
  return entropy_core(a, n, AM_DTYPE_BF16);
}

double am_row_entropy_avx2(const void *a, am_dtype dtype, int n) {
  return dtype == AM_DTYPE_F16    ? entropy_f16(a, n)
         : dtype == AM_DTYPE_BF16 ? entropy_bf16(a, n)
                                  : entropy_f32(a, n);
}

#else /* not x86-64: never selected (am_cpu_row_sweep returns NULL) */
void am_row_sweep_avx2(const am_row_job_t *jb, am_row_sums_t *out) {
  (void)jb;
  (void)out;
}
double am_row_entropy_avx2(const void *a, am_dtype dtype, int n) {
  (void)a;
  (void)dtype;
  (void)n;
  return 0.0;
}
void am_fast_log_avx2(const float *x, float *out, int n) {
  (void)x;
  (void)out;
  (void)n;
}
#endif
