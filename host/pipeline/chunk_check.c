/* chunk_check.c — what the pipeline says about a chunk's bad values: the backend's fault
 * in words (with the F64 value that F32 could not hold, where that was the cause), and
 * results that came out of the pass not finite. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/ctx.h"
#include "core/half.h"
#include "pipeline/chunk.h"

/* For a value found not finite in F32: the largest finite F64 value of that row that F32
 * cannot hold (1e300 reads as inf in F32), or 0 when the row holds none. */
static double f64_overflow(const am_shard_t *sh, const am_layers_t *ls, int l, int64_t b,
                           int h, int row, int H) {
  const am_tensor_t *t = ls->layer[l];
  if (t->dtype != AM_DTYPE_F64 || row < 0 || row >= sh->T)
    return 0.0;
  int64_t T = sh->T, off = ((b * H + h) * T + row) * T;
  if (ls->stacked)
    off += (int64_t)l * sh->B * H * T * T;
  for (int64_t j = 0; j < T; j++) {
    double v = am_load_double(t->data, AM_DTYPE_F64, off + j);
    if (isfinite(v) && fabs(v) > FLT_MAX)
      return v;
  }
  return 0.0;
}

/* A fault of the long-context form (ops/long_example.h kinds): the tensor it names. */
static am_status report_long_fault(am_ctx_t *ctx, const am_chunk_t *c, const am_fault_t *f,
                                   int e) {
  const am_long_layers_t *lc = &c->sh->lc;
  int kind = (int)f->kind;
  const am_layers_t *ls = kind == AM_FAULT_K_NOT_FINITE      ? &lc->k
                          : kind == AM_FAULT_V_NOT_FINITE    ? &lc->v
                          : kind == AM_FAULT_DOUT_NOT_FINITE ? &lc->dout
                                                             : &lc->q;
  int l = f->layer >= 0 && f->layer < c->lay->L ? f->layer : 0;
  int row = f->row >= 0 && f->row < c->n[e] ? c->idx[(size_t)e * (size_t)c->Tcap + f->row]
                                            : f->row;
  if (kind == AM_FAULT_SCORE_NOT_FINITE)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: example %lld, layer %d, head %d, query position %d: a "
                   "score scale * q . k is not finite in F32 (values too large for %s)",
                   ls->source[l].path, ls->source[l].name, (long long)(c->row0 + e),
                   f->layer, f->head, row, lc->k.source[l].name);
  return am_fail(
      ctx, AM_STATUS_BAD_INPUT,
      "%s: tensor %s: example %lld, layer %d, head %d, position %d: value is not "
      "finite (%g)",
      ls->source[l].path, ls->source[l].name, (long long)(c->row0 + e), f->layer, f->head,
      row, f->value);
}

am_status am_chunk_report_fault(am_ctx_t *ctx, const am_chunk_t *c, const am_fault_t *f,
                                int e) {
  const am_shard_t *sh = c->sh;
  if (sh->long_form)
    return report_long_fault(ctx, c, f, e);
  const am_layers_t *ls = f->kind == AM_FAULT_GRAD_NOT_FINITE ? &sh->grad : &sh->att;
  int l = f->layer >= 0 && f->layer < c->lay->L ? f->layer : 0;
  int row = f->row >= 0 && f->row < c->n[e] ? c->idx[(size_t)e * (size_t)c->Tcap + f->row]
                                            : f->row;
  int notfin = f->kind == AM_FAULT_GRAD_NOT_FINITE || f->kind == AM_FAULT_ATT_NOT_FINITE;
  double big = notfin && f->head >= 0 && f->head < c->lay->H
                   ? f64_overflow(sh, ls, l, c->row0 + e, f->head, row, c->lay->H)
                   : 0.0;
  if (big != 0.0)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: example %lld, layer %d, head %d, query position %d: F64 "
                   "value %g does not fit in F32, in which attnmap computes",
                   ls->source[l].path, ls->source[l].name, (long long)(c->row0 + e),
                   f->layer, f->head, row, big);
  return am_fail(ctx, AM_STATUS_BAD_INPUT,
                 "%s: tensor %s: example %lld, layer %d, head %d, query position %d: %s "
                 "(value %g)",
                 ls->source[l].path, ls->source[l].name, (long long)(c->row0 + e), f->layer,
                 f->head, row, am_fault_text(f->kind), f->value);
}

/* A map or head importance that overflowed (finite inputs whose products exceed F32, e.g.
 * gradients of 1e30) would go on as cosine -1 or JSD 0: refused here, with the example,
 * before any metric or aggregate sees it. */
am_status am_chunk_check_finite(am_ctx_t *ctx, const am_chunk_t *c) {
  const am_layout_t *lay = c->lay;
  size_t LH = (size_t)lay->L * (size_t)lay->H;
  for (int e = 0; e < c->nex; e++) {
    long long ex = (long long)(c->row0 + e);
    for (int m = 0; m < lay->nmaps; m++) {
      const float *v = am_chunk_map(c, m, e);
      for (int i = 0; i < c->n[e]; i++)
        if (!isfinite(v[i]))
          return am_fail(ctx, AM_STATUS_BAD_INPUT,
                         "%s: example %lld: %s is not finite at valid token %d (%g): the "
                         "inputs' products overflow F32; rescale the gradients",
                         c->sh->path, ex, lay->maps[m].name, i, (double)v[i]);
    }
    const float *imp = c->importance + (size_t)e * LH;
    for (size_t k = 0; lay->head_importance && k < LH; k++)
      if (!isfinite(imp[k]))
        return am_fail(ctx, AM_STATUS_BAD_INPUT,
                       "%s: example %lld: head importance of layer %zu, head %zu is not "
                       "finite (%g): the inputs' products overflow F32; rescale the "
                       "gradients",
                       c->sh->path, ex, k / (size_t)lay->H, k % (size_t)lay->H,
                       (double)imp[k]);
  }
  return AM_STATUS_OK;
}
