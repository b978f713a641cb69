/* example_sweep.c — the x86 fast path of the CPU pass (example_pass.c drives it): rows,
 * whole heads and whole layers handed to the AVX2 sweeps of row_sweep.h, the rows whose
 * sums come near a limit checked exactly by the plain check (pass_plain.c), and the float
 * sums of the gradient-rollout update added into double every 16 rows. Used when the
 * context's kernels (am_cpu_scratch_t) have sweeps; the plain loops of pass_plain.c are the
 * reference it is tested against (tests/test_cpu_kernels.c). */
#include <math.h>
#include <string.h>

#include "cpu/head_stats.h"
#include "cpu/pass_state.h"
#include "cpu/rollout.h"

/* The row's terms of the statistics and importance, and the row's other uses. */
static void use_sums(pass_t *p, const am_row_job_t *job, const am_row_sums_t *s, int l,
                     int h, int i, double acc[AM_STAT_COUNT], double *importance) {
  const am_example_t *ex = p->ex;
  int n = p->n;
  const float *a = p->arow;
  if (p->want & AM_PASS_HEAD_STATS) {
    float pos[5] = {a[0], a[n - 1], a[i], i > 0 ? a[i - 1] : 0.0f,
                    i < n - 1 ? a[i + 1] : 0.0f};
    am_head_stats_row_from_sums(a, pos, n, i, &p->geo, s->ent, s->amax, s->dist, acc);
  }
  *importance += fabs(s->imp);
  if (p->last && l == ex->L - 1 && (ex->target == AM_ROW_MEAN || ex->target == i))
    for (int j = 0; j < n; j++)
      p->last[j] += a[j];
  if (p->fused && !job->fuse)
    am_rollout_fuse_row(p->fused + (size_t)i * n, a, n, h, p->opt->fusion);
  if (p->abar)
    am_grad_rollout_row(a, p->grow, n, 0.0, NULL, p->abar + (size_t)i * n);
}

/* The tuned path of one row: one sweep (row_sweep.h) straight over the stored row when
 * the valid keys are contiguous (else over the widened copy) does the check sums, the
 * statistics, importance, head-mean fusion and the gradient-rollout update; the exact
 * check_row runs only when the sweep's sums come near a limit, and decides. */
pass_rc am_pass_sweep_row(pass_t *p, int l, int h, int i, const void *att, const void *grad,
                          double acc[AM_STAT_COUNT], double *importance) {
  const am_example_t *ex = p->ex;
  int n = p->n, direct = p->contiguous && ex->dtype != AM_DTYPE_F64;
  am_row_job_t job = {.dtype = AM_DTYPE_F32, .n = n, .i = i};
  if (direct) {
    size_t es = am_dtype_size(ex->dtype);
    int64_t first = ((int64_t)h * ex->T + ex->idx[i]) * ex->T + ex->idx[0];
    job.dtype = ex->dtype;
    job.a = (const unsigned char *)att + (size_t)first * es;
    job.g = grad ? (const unsigned char *)grad + (size_t)first * es : NULL;
    job.arow = p->arow; /* a store per 8 keys: cheaper than reading single weights */
    job.grow = p->abar || p->svg ? p->grow : NULL;
  } else {
    am_pass_load_row(p, att, h, i, p->arow);
    if (grad)
      am_pass_load_row(p, grad, h, i, p->grow);
    job.a = p->arow, job.g = grad ? p->grow : NULL, job.arow = p->arow;
  }
  int mean = p->opt->fusion != AM_FUSION_MAX && p->opt->fusion != AM_FUSION_MIN;
  job.fuse = p->fused && mean ? p->fused + (size_t)i * n : NULL;
  job.u = p->vg ? p->uf : NULL;
  job.vi = p->vg ? (float)p->vg[i] : 0.0f;
  am_row_sums_t s;
  p->sweep(&job, &s);
  /* the sweep's sum is within 5e-7 of the exact one (float partial sums of 8 terms) */
  if (!(s.amin >= 0.0f) || !(fabs(s.sum - 1.0) <= p->tol - 1e-6) ||
      (grad && !isfinite(s.imp))) {
    if (direct && grad)
      am_pass_load_row(p, grad, h, i, p->grow);
    pass_rc rc = am_pass_check_row(p, l, h, i, grad != NULL);
    if (rc != PASS_OK)
      return rc;
    if (grad && !isfinite(s.imp))
      return PASS_REDO_PLAIN;
  }
  use_sums(p, &job, &s, l, h, i, acc, importance);
  if (grad)
    am_pass_steps_sweep_row(p, i);
  return PASS_OK;
}

/* The tuned path of a whole head (row_sweep.h, am_head_job_t) where every row feeds
 * sums and running vectors only: the rows that stop the sweep are checked exactly here,
 * and the sweep goes on after them when they pass. */
pass_rc am_pass_sweep_head(pass_t *p, int l, int h, const void *att, const void *grad,
                           double acc[AM_STAT_COUNT], double *importance) {
  const am_example_t *ex = p->ex;
  size_t es = am_dtype_size(ex->dtype);
  int64_t first = ((int64_t)h * ex->T + ex->idx[0]) * ex->T + ex->idx[0];
  am_head_job_t job = {.a = (const unsigned char *)att + (size_t)first * es,
                       .g = grad ? (const unsigned char *)grad + (size_t)first * es : NULL,
                       .dtype = ex->dtype,
                       .stride = ex->T,
                       .n = p->n,
                       .stats = (p->want & AM_PASS_HEAD_STATS) != 0,
                       .arow = p->arow,
                       .fuse = p->fused,
                       .v = p->vg,
                       .uf = p->uf,
                       .ug = p->ug,
                       .last = l == ex->L - 1 ? p->last : NULL,
                       .last_row = ex->target,
                       .dist_mid = p->dist_mid,
                       .tol = p->tol - 1e-6,
                       .nsv = p->svg ? p->S : 0,
                       .sv = p->svg,
                       .suf = p->suf,
                       .grow = p->grow,
                       .sug = p->sug};
  while (job.first < p->n) {
    int k = p->head_sweep(&job);
    if (k >= p->n)
      break;
    am_pass_load_row(p, att, h, k, p->arow);
    if (grad)
      am_pass_load_row(p, grad, h, k, p->grow);
    pass_rc rc = am_pass_check_row(p, l, h, k, grad != NULL);
    if (rc != PASS_OK)
      return rc;
    if (grad && !isfinite(job.stop.imp))
      return PASS_REDO_PLAIN;
    job.first = k + 1;
  }
  memcpy(acc, job.acc, sizeof job.acc);
  *importance = job.importance;
  return PASS_OK;
}

pass_rc am_pass_sweep_layer(pass_t *p, int l, const void *att, const void *grad) {
  const am_example_t *ex = p->ex;
  size_t es = am_dtype_size(ex->dtype);
  int64_t first = (int64_t)ex->idx[0] * ex->T + ex->idx[0];
  memset(p->hacc, 0, (size_t)ex->H * (AM_STAT_COUNT + 1) * sizeof *p->hacc);
  am_layer_job_t job = {.a = (const unsigned char *)att + (size_t)first * es,
                        .g = grad ? (const unsigned char *)grad + (size_t)first * es : NULL,
                        .dtype = ex->dtype,
                        .stride = ex->T,
                        .head_stride = (int64_t)ex->T * ex->T,
                        .n = p->n,
                        .H = ex->H,
                        .stats = (p->want & AM_PASS_HEAD_STATS) != 0,
                        .arow = p->arow,
                        .trow = p->trow,
                        .fuse = p->fused,
                        .v = p->vg,
                        .uf = p->uf,
                        .ug = p->ug,
                        .last = l == ex->L - 1 ? p->last : NULL,
                        .last_row = ex->target,
                        .dist_mid = p->dist_mid,
                        .tol = p->tol - 1e-6,
                        .acc = p->hacc,
                        .importance = p->hacc + (size_t)ex->H * AM_STAT_COUNT,
                        .nsv = p->svg ? p->S : 0,
                        .sv = p->svg,
                        .suf = p->suf,
                        .sug = p->sug};
  return p->layer_sweep(&job) ? PASS_OK : PASS_REDO_HEADS;
}

/* Can the whole-head sweep do every head of this example? */
int am_pass_head_mode(const pass_t *p) {
  int mean = p->opt->fusion != AM_FUSION_MAX && p->opt->fusion != AM_FUSION_MIN;
  return !p->no_whole && p->head_sweep && p->contiguous && p->ex->dtype != AM_DTYPE_F64 &&
         !p->geo.active && !p->abar && (mean || !p->fused);
}

/* ug += uf, uf = 0: the sweep's float sums of at most 16 rows go into double. */
void am_pass_flush_uf(pass_t *p) {
  for (int j = 0; p->ug && j < p->n; j++) {
    p->ug[j] += p->uf[j];
    p->uf[j] = 0.0f;
  }
  for (size_t k = 0; p->sug && k < (size_t)p->S * p->n; k++) {
    p->sug[k] += p->suf[k];
    p->suf[k] = 0.0f;
  }
}
