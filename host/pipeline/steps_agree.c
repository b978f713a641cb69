/* steps_agree.c — agreement.steps (docs/generation.md): for each pair whose two maps have
 * step rows, step by step, over the valid (non-special unless --include-special) tokens at
 * or before the step's position, the step's own token left out unless --include-target (as
 * a single-target run leaves its target out). Other columns and rows past the example's
 * steps are NaN. Values rounded to F32 as stored. */
#include <math.h>
#include <string.h>

#include "core/ctx.h"
#include "ops/backend.h"
#include "pipeline/steps.h"

/* Gathers step s of example e for every pair with step rows on both sides into the
 * agreement buffers; pair_of[k] is the k-th vector pair's column. Returns the count. */
static int gather_step(am_chunk_t *c, int e, int s, int *pair_of) {
  const am_layout_t *lay = c->lay;
  am_chunk_steps_t *st = c->steps;
  size_t T = (size_t)c->Tcap;
  const int32_t *idx = c->idx + (size_t)e * T;
  int n = c->n[e], t = st->steps[(size_t)e * (size_t)st->S + (size_t)s], k = 0;
  for (int p = 0; p < lay->npairs; p++) {
    int a = lay->pair_a[p], b = lay->pair_b[p];
    if (!lay->map_steps[a] || !lay->map_steps[b])
      continue;
    const float *x = am_steps_rows(c, a, e) + (size_t)s * (size_t)n;
    const float *y = am_steps_rows(c, b, e) + (size_t)s * (size_t)n;
    float *dx = st->x + (size_t)k * T, *dy = st->y + (size_t)k * T;
    int m = 0;
    for (int i = 0; i <= t && i < n; i++) {
      if ((i == t && !lay->plan.include_target) ||
          (!lay->plan.include_special && am_shard_is_special(c->sh, c->row0 + e, idx[i])))
        continue;
      dx[m] = x[i];
      dy[m] = y[i];
      m++;
    }
    st->m[k] = m;
    st->xp[k] = dx;
    st->yp[k] = dy;
    pair_of[k++] = p;
  }
  return k;
}

am_status am_steps_agreement(am_ctx_t *ctx, am_chunk_t *c) {
  const am_layout_t *lay = c->lay;
  am_chunk_steps_t *st = c->steps;
  if (!lay->step_pairs)
    return AM_STATUS_OK;
  size_t S = (size_t)st->S, PM = (size_t)lay->npairs * AM_METRIC_COUNT;
  int pair_of[AM_MAX_PAIRS];
  for (int e = 0; e < c->nex; e++) {
    float *out = st->agree + (size_t)e * S * PM;
    for (size_t i = 0; i < S * PM; i++)
      out[i] = NAN;
    for (int s = 0; s < st->nsteps[e]; s++) { /* one call per step */
      int k = gather_step(c, e, s, pair_of);
      am_status r = ctx->backend->agreement(ctx->backend_state, st->xp, st->yp, st->m, k,
                                            lay->plan.topk, st->res);
      if (r != AM_STATUS_OK)
        return am_fail(ctx, r, "agreement per step: %s", am_status_str(r));
      for (int j = 0; j < k; j++)
        for (int q = 0; q < AM_METRIC_COUNT; q++)
          out[(size_t)s * PM + (size_t)pair_of[j] * AM_METRIC_COUNT + (size_t)q] =
              (float)st->res[(size_t)j * AM_METRIC_COUNT + (size_t)q];
    }
  }
  return AM_STATUS_OK;
}
