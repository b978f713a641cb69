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

/* uf[s] += (float)v[s,i] max(0, a g) for the S step rows (v, uf: [S,n]): the fused
 * multiply-add of step8, per row vector, so each equals the sweep of that vector alone. */
INLINE void steps_update(const float *a, const float *g, int n, const double *v, int i,
                         int S, float *uf) {
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 t = _mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(g + j)),
                             _mm256_setzero_ps());
    for (int s = 0; s < S; s++) {
      float *u = uf + (size_t)s * n + j;
      _mm256_storeu_ps(u, _mm256_fmadd_ps(_mm256_set1_ps((float)v[(size_t)s * n + i]), t,
                                          _mm256_loadu_ps(u)));
    }
  }
  for (; j < n; j++) {
    float t = a[j] * g[j];
    t = t > 0.0f ? t : 0.0f;
    for (int s = 0; s < S; s++)
      uf[(size_t)s * n + j] = fmaf((float)v[(size_t)s * n + i], t, uf[(size_t)s * n + j]);
  }
}

AVX2 void am_steps_update_avx2(const float *a, const float *g, int n, const double *v,
                               int i, int S, float *uf) {
  steps_update(a, g, n, v, i, S, uf);
}

/* Row i's terms, as am_head_stats_row_from_sums and example_pass.c's use_sums add them:
 * a the widened row, acc and importance its head's sums. */
INLINE void add_row(const float *a, int n, int i, const am_row_sums_t *s, double *acc,
                    double *importance, double *last, int last_row) {
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
  *importance += fabs(s->imp);
  if (last && (last_row == AM_ROW_MEAN || last_row == i))
    for (int j = 0; j < n; j++)
      last[j] += a[j];
}

/* Does row sums s stop a sweep (the caller checks the row exactly)? */
INLINE int stops(const am_row_sums_t *s, double tol, int has_g) {
  return !(s->amin >= 0.0f) || !(fabs(s->sum - 1.0) <= tol) || (has_g && !isfinite(s->imp));
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
                       .grow = has_g && hj->nsv ? hj->grow : NULL,
                       .u = has_u ? hj->uf : NULL,
                       .vi = has_u ? (float)hj->v[i] : 0.0f,
                       .dist = hj->dist_mid - i};
    am_row_sums_t s;
    sweep_core(&jb, &s, dt, has_g, has_u, opts, 1);
    add_row(hj->arow, n, i, &s, hj->acc, &hj->importance, hj->last, hj->last_row);
    if (has_u && ((i & 15) == 15 || i == n - 1))
      flush_u(hj->uf, hj->ug, n);
    if (has_g && hj->nsv) {
      steps_update(hj->arow, hj->grow, n, hj->sv, i, hj->nsv, hj->suf);
      for (int k = 0; ((i & 15) == 15 || i == n - 1) && k < hj->nsv; k++)
        flush_u(hj->suf + (size_t)k * n, hj->sug + (size_t)k * n, n);
    }
    if (stops(&s, hj->tol, has_g)) {
      hj->stop = s;
      return i;
    }
  }
  return n;
}

/* uf += v t over n keys (float). */
INLINE void add_scaled(float *uf, const float *t, float v, int n) {
  __m256 vv = _mm256_set1_ps(v);
  int j = 0;
  for (; j + 8 <= n; j += 8)
    _mm256_storeu_ps(uf + j,
                     _mm256_fmadd_ps(vv, _mm256_loadu_ps(t + j), _mm256_loadu_ps(uf + j)));
  for (; j < n; j++)
    uf[j] = fmaf(v, t[j], uf[j]);
}

/* Blocks of rows (am_layer_block_rows); within a block head by head, and within a head row
 * by row: the block's fused rows and row sums of max(0, a g) stay in L1 over the heads,
 * while each head is still read a block of consecutive rows at a time. trow collects
 * sum_h max(0, a g) of each row of the block through the sweep's u update with v = 1 (an
 * exact add); the block's rows then go into uf with their v_i, and uf into ug. */
INLINE int layer_core(am_layer_job_t *lj, const am_dtype dt, const int has_g,
                      const int has_u, const int opts) {
  const size_t es = dt == AM_DTYPE_F32 ? 4 : 2;
  const int n = lj->n, H = lj->H;
  const int block = am_layer_block_rows(n);
  for (int i0 = 0; i0 < n; i0 += block) {
    const int i1 = n - i0 < block ? n : i0 + block;
    if (has_u)
      memset(lj->trow, 0, (size_t)(i1 - i0) * (size_t)n * sizeof *lj->trow);
    for (int h = 0; h < H; h++)
      for (int i = i0; i < i1; i++) {
        size_t off =
            ((size_t)h * (size_t)lj->head_stride + (size_t)i * (size_t)lj->stride) * es;
        am_row_job_t jb = {.a = (const unsigned char *)lj->a + off,
                           .g = has_g ? (const unsigned char *)lj->g + off : NULL,
                           .dtype = dt,
                           .n = n,
                           .i = i,
                           .arow = lj->arow,
                           .fuse = opts & OPT_FUSE ? lj->fuse + (size_t)i * n : NULL,
                           .u = has_u ? lj->trow + (size_t)(i - i0) * n : NULL,
                           .vi = 1.0f,
                           .dist = lj->dist_mid - i};
        am_row_sums_t s;
        sweep_core(&jb, &s, dt, has_g, has_u, opts, 1);
        add_row(lj->arow, n, i, &s, lj->acc + (size_t)h * AM_STAT_COUNT, &lj->importance[h],
                lj->last, lj->last_row);
        if (stops(&s, lj->tol, has_g))
          return 0;
      }
    for (int k = -1; has_u && k < lj->nsv; k++) { /* k = -1: v; then the step rows */
      if (k < 0 && !lj->v)
        continue;
      const double *v = k < 0 ? lj->v : lj->sv + (size_t)k * n;
      float *uf = k < 0 ? lj->uf : lj->suf + (size_t)k * n;
      for (int i = i0; i < i1; i++)
        add_scaled(uf, lj->trow + (size_t)(i - i0) * n, (float)v[i], n);
      flush_u(uf, k < 0 ? lj->ug : lj->sug + (size_t)k * n, n);
    }
  }
  return 1;
}

#define HEAD_VARIANT(name, DT, G, U, OPTS)                                                 \
  AVX2 static int name(am_head_job_t *hj) { return head_core(hj, DT, G, U, OPTS); }        \
  AVX2 static int layer_##name(am_layer_job_t *lj) {                                       \
    return layer_core(lj, DT, G, U, OPTS);                                                 \
  }
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

typedef int (*layer_fn)(am_layer_job_t *);
#define LAYER_ROW(tag)                                                                     \
  {                                                                                        \
    {layer_##tag##_a,   layer_##tag##_f_nostats,  layer_##tag##_ag,                        \
     layer_##tag##_agf, layer_##tag##_gu_nostats, layer_##tag##_guf_nostats},              \
    {                                                                                      \
      layer_##tag##_a, layer_##tag##_af, layer_##tag##_ag, layer_##tag##_agf,              \
          layer_##tag##_agu, layer_##tag##_aguf                                            \
    }                                                                                      \
  }
static const layer_fn layers[3][2][6] = {LAYER_ROW(head_f32), LAYER_ROW(head_f16),
                                         LAYER_ROW(head_bf16)};

int am_layer_sweep_avx2(am_layer_job_t *lj) {
  int d = lj->dtype == AM_DTYPE_F16 ? 1 : (lj->dtype == AM_DTYPE_BF16 ? 2 : 0);
  int g = lj->g != NULL, u = g && ((lj->v && lj->uf && lj->ug) || lj->nsv > 0);
  int f = lj->fuse != NULL;
  return layers[d][lj->stats != 0][(g ? 2 + 2 * u : 0) + f](lj);
}

int am_head_sweep_avx2(am_head_job_t *hj) {
  int d = hj->dtype == AM_DTYPE_F16 ? 1 : (hj->dtype == AM_DTYPE_BF16 ? 2 : 0);
  int g = hj->g != NULL, u = g && hj->v && hj->uf && hj->ug, f = hj->fuse != NULL;
  return heads[d][hj->stats != 0][(g ? 2 + 2 * u : 0) + f](hj);
}

#else /* not x86-64: never selected (am_cpu_head_sweep returns NULL) */
int am_head_sweep_avx2(am_head_job_t *hj) { return hj ? hj->n : 0; }
int am_layer_sweep_avx2(am_layer_job_t *lj) { return lj ? 0 : 0; }
void am_steps_update_avx2(const float *a, const float *g, int n, const double *v, int i,
                          int S, float *uf) {
  (void)a, (void)g, (void)n, (void)v, (void)i, (void)S, (void)uf;
}
#endif
