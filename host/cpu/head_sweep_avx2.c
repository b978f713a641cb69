/* head_sweep_avx2.c — the AVX2 + FMA + F16C sweep of every row of one head in one call
 * (row_sweep.h, am_head_job_t): the row sweep of row_sweep_avx2.h applied to rows
 * first..n-1, each row's statistics terms added in row order (the same additions, in the
 * same order, as example_pass.c's row-by-row path), the gradient-rollout float sums
 * added into double after every 16th row. One call per head instead of one per row
 * keeps the constants in registers and saves ~25 ns of calls and bookkeeping per row
 * (a BERT-base row of 128 keys takes ~75 ns). */
#include "cpu/row_sweep.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <math.h>

#include "cpu/row_sweep_avx2.h"

/* ug += uf; uf = 0 (each float widened to double, then added: as example_pass.c). */
INLINE void flush_u(float *uf, double *ug, int n) {
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 f = _mm256_loadu_ps(uf + j);
    _mm256_storeu_pd(ug + j, _mm256_add_pd(_mm256_loadu_pd(ug + j), lo4(f)));
    _mm256_storeu_pd(ug + j + 4, _mm256_add_pd(_mm256_loadu_pd(ug + j + 4), hi4(f)));
    _mm256_storeu_ps(uf + j, _mm256_setzero_ps());
  }
  for (; j < n; j++) {
    ug[j] += uf[j];
    uf[j] = 0.0f;
  }
}

/* Row i's terms, as am_head_stats_row_from_sums and example_pass.c's use_sums add them. */
INLINE void add_row(am_head_job_t *hj, const am_row_sums_t *s, int i) {
  const float *a = hj->arow;
  double *acc = hj->acc;
  int n = hj->n;
  acc[AM_STAT_ENTROPY] -= s->ent;
  acc[AM_STAT_CONFIDENCE] += s->amax;
  acc[AM_STAT_TO_FIRST] += a[0];
  acc[AM_STAT_TO_LAST] += a[n - 1];
  acc[AM_STAT_TO_SELF] += a[i];
  if (i > 0)
    acc[AM_STAT_TO_PREV] += a[i - 1];
  if (i < n - 1)
    acc[AM_STAT_TO_NEXT] += a[i + 1];
  acc[AM_STAT_DISTANCE] += s->dist;
  hj->importance += fabs(s->imp);
  if (hj->last && (hj->last_row == AM_ROW_MEAN || hj->last_row == i))
    for (int j = 0; j < n; j++)
      hj->last[j] += a[j];
}

INLINE int head_core(am_head_job_t *hj, const am_dtype dt, const int has_g, const int has_u,
                     const int opts) {
  const size_t es = dt == AM_DTYPE_F32 ? 4 : 2;
  const int n = hj->n;
  for (int i = hj->first; i < n; i++) {
    size_t off = (size_t)i * (size_t)hj->stride * es;
    am_row_job_t jb = {.a = (const unsigned char *)hj->a + off,
                       .g = has_g ? (const unsigned char *)hj->g + off : NULL,
                       .dtype = dt,
                       .n = n,
                       .i = i,
                       .arow = hj->arow,
                       .fuse = opts & OPT_FUSE ? hj->fuse + (size_t)i * n : NULL,
                       .u = has_u ? hj->uf : NULL,
                       .vi = has_u ? (float)hj->v[i] : 0.0f};
    am_row_sums_t s;
    sweep_core(&jb, &s, dt, has_g, has_u, opts);
    add_row(hj, &s, i);
    if (has_u && ((i & 15) == 15 || i == n - 1))
      flush_u(hj->uf, hj->ug, n);
    if (!(s.amin >= 0.0f) || !(fabs(s.sum - 1.0) <= hj->tol) ||
        (has_g && !isfinite(s.imp))) {
      hj->stop = s;
      return i;
    }
  }
  return n;
}

#define HEAD_VARIANT(name, DT, G, U, OPTS)                                                 \
  AVX2 static int name(am_head_job_t *hj) { return head_core(hj, DT, G, U, OPTS); }
#define S OPT_STATS
#define F OPT_FUSE
#define HEAD_DTYPE(tag, DT)                                                                \
  HEAD_VARIANT(tag##_a, DT, 0, 0, S)                                                       \
  HEAD_VARIANT(tag##_af, DT, 0, 0, S | F)                                                  \
  HEAD_VARIANT(tag##_ag, DT, 1, 0, S)                                                      \
  HEAD_VARIANT(tag##_agf, DT, 1, 0, S | F)                                                 \
  HEAD_VARIANT(tag##_agu, DT, 1, 1, S)                                                     \
  HEAD_VARIANT(tag##_aguf, DT, 1, 1, S | F)                                                \
  HEAD_VARIANT(tag##_f_nostats, DT, 0, 0, F)                                               \
  HEAD_VARIANT(tag##_gu_nostats, DT, 1, 1, 0)                                              \
  HEAD_VARIANT(tag##_guf_nostats, DT, 1, 1, F)
HEAD_DTYPE(head_f32, AM_DTYPE_F32)
HEAD_DTYPE(head_f16, AM_DTYPE_F16)
HEAD_DTYPE(head_bf16, AM_DTYPE_BF16)
#undef S
#undef F

/* [dtype][statistics][(g ? 2 + 2u : 0) + fuse]; without statistics (rollout or gradient
 * rollout alone) only the layouts that feed something have their own code. */
typedef int (*head_fn)(am_head_job_t *);
#define HEAD_ROW(tag)                                                                      \
  {                                                                                        \
    {tag##_a, tag##_f_nostats, tag##_ag, tag##_agf, tag##_gu_nostats, tag##_guf_nostats},  \
    {                                                                                      \
      tag##_a, tag##_af, tag##_ag, tag##_agf, tag##_agu, tag##_aguf                        \
    }                                                                                      \
  }
static const head_fn heads[3][2][6] = {HEAD_ROW(head_f32), HEAD_ROW(head_f16),
                                       HEAD_ROW(head_bf16)};

int am_head_sweep_avx2(am_head_job_t *hj) {
  int d = hj->dtype == AM_DTYPE_F16 ? 1 : (hj->dtype == AM_DTYPE_BF16 ? 2 : 0);
  int g = hj->g != NULL, u = g && hj->v && hj->uf && hj->ug, f = hj->fuse != NULL;
  return heads[d][hj->stats != 0][(g ? 2 + 2 * u : 0) + f](hj);
}

#else /* not x86-64: never selected (am_cpu_head_sweep returns NULL) */
int am_head_sweep_avx2(am_head_job_t *hj) { return hj ? hj->n : 0; }
#endif
