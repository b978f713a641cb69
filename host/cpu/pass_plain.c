/* pass_plain.c — the plain reference of one attention row, the oracle the tuned sweeps
 * (example_sweep.c) are tested against: widen the valid keys, check every value in key
 * order, then hand the row to each analysis in plain C loops with double sums. The sweeps
 * also use its exact check for the rows their sums put near a limit. */
#include <math.h>

#include "core/half.h"
#include "cpu/head_stats.h"
#include "cpu/pass_state.h"
#include "cpu/rollout.h"

/* Widens valid row i (padded position idx[i]) of head h of a [H,T,T] block, keeping the
 * valid keys: dst[j] = block[h, idx[i], idx[j]]. */
void am_pass_load_row(const pass_t *p, const void *block, int h, int i, float *dst) {
  const am_example_t *ex = p->ex;
  int64_t row = ((int64_t)h * ex->T + ex->idx[i]) * ex->T;
  if (p->contiguous) {
    am_widen(dst, block, ex->dtype, row + ex->idx[0], p->n);
    return;
  }
  for (int j = 0; j < p->n; j++)
    dst[j] = am_load_float(block, ex->dtype, row + ex->idx[j]);
}

static pass_rc fail(pass_t *p, am_fault_kind kind, int l, int h, int i, double value) {
  p->fault->kind = kind;
  p->fault->layer = l;
  p->fault->head = h;
  p->fault->row = i;
  p->fault->value = value;
  return PASS_BAD_INPUT;
}

/* Checks the row just loaded: weights finite and >= 0, then their sum within tolerance
 * of 1; gradients finite. The first bad value in key order is reported. */
pass_rc am_pass_check_row(pass_t *p, int l, int h, int i, int with_grad) {
  double sum = 0.0;
  for (int j = 0; j < p->n; j++) {
    float x = p->arow[j];
    if (!isfinite(x))
      return fail(p, AM_FAULT_ATT_NOT_FINITE, l, h, i, x);
    if (x < 0.0f)
      return fail(p, AM_FAULT_ATT_NEGATIVE, l, h, i, x);
    sum += x;
  }
  if (fabs(sum - 1.0) > p->tol)
    return fail(p, AM_FAULT_ATT_ROW_SUM, l, h, i, sum);
  if (with_grad)
    for (int j = 0; j < p->n; j++)
      if (!isfinite(p->grow[j]))
        return fail(p, AM_FAULT_GRAD_NOT_FINITE, l, h, i, p->grow[j]);
  return PASS_OK;
}

/* Hands valid row i of head h of layer l to every analysis that wants it. */
static void use_row(pass_t *p, int l, int h, int i, double acc[AM_STAT_COUNT],
                    double *importance) {
  const float *a = p->arow, *g = p->grow;
  int n = p->n;
  if (p->want & AM_PASS_HEAD_STATS)
    am_head_stats_row(a, n, i, &p->geo, acc);
  if (p->want & AM_PASS_HEAD_IMPORTANCE)
    *importance += am_head_importance_row(a, g, n);
  if (p->last && l == p->ex->L - 1 && (p->ex->target == AM_ROW_MEAN || p->ex->target == i))
    for (int j = 0; j < n; j++)
      p->last[j] += a[j];
  if (p->fused)
    am_rollout_fuse_row(p->fused + (size_t)i * n, a, n, h, p->opt->fusion);
  if (p->vg || p->abar)
    am_grad_rollout_row(a, g, n, p->vg ? p->vg[i] : 0.0, p->ug,
                        p->abar ? p->abar + (size_t)i * n : NULL);
  am_pass_steps_plain_row(p, i);
}

/* The plain path of one row: widen, check, then hand it to every analysis. */
pass_rc am_pass_plain_row(pass_t *p, int l, int h, int i, const void *att, const void *grad,
                          double acc[AM_STAT_COUNT], double *importance) {
  am_pass_load_row(p, att, h, i, p->arow);
  if (grad)
    am_pass_load_row(p, grad, h, i, p->grow);
  pass_rc rc = am_pass_check_row(p, l, h, i, grad != NULL);
  if (rc == PASS_OK)
    use_row(p, l, h, i, acc, importance);
  return rc;
}
