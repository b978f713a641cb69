/* steps_chunk.c — several targets in a chunk (steps.h, docs/generation.md): each example's
 * steps, the backend's step rows or, where it does not compute them, one single-target
 * pass per step, the [n] maps as the mean of their step rows, and the per-step saliency. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/half.h"
#include "ops/backend.h"
#include "pipeline/steps.h"

am_status am_steps_alloc(am_ctx_t *ctx, am_chunk_t *c) {
  const am_layout_t *lay = c->lay;
  c->steps = NULL;
  if (!lay->several)
    return AM_STATUS_OK;
  am_chunk_steps_t *st = calloc(1, sizeof *st);
  if (!st)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  c->steps = st;
  size_t C = (size_t)c->cap, S = (size_t)lay->S, T = (size_t)c->Tcap;
  size_t L = (size_t)lay->L, P = (size_t)(lay->npairs ? lay->npairs : 1);
  size_t Tout = (size_t)lay->T, W = Tout > P ? Tout : P;
  size_t M = (size_t)(lay->nstep_maps ? lay->nstep_maps : 1);
  st->S = lay->S;
  st->nsteps = calloc(C, sizeof *st->nsteps);
  st->steps = calloc(C * S, sizeof *st->steps);
  st->step_grad_ptrs = calloc(C * L, sizeof *st->step_grad_ptrs);
  st->rows = calloc(M * C * S * T, sizeof *st->rows);
  st->agree = calloc(C * S * P * AM_METRIC_COUNT, sizeof *st->agree);
  st->pad = calloc(C * S * W, sizeof *st->pad);
  st->sub_ex = calloc(C, sizeof *st->sub_ex);
  st->sub_lc = calloc(C, sizeof *st->sub_lc);
  st->sub_out = calloc(C, sizeof *st->sub_out);
  st->sub_map = calloc(C, sizeof *st->sub_map);
  st->sub_grad = calloc(C * L, sizeof *st->sub_grad);
  st->x = calloc(P * T, sizeof *st->x);
  st->y = calloc(P * T, sizeof *st->y);
  st->m = calloc(P, sizeof *st->m);
  st->xp = calloc(P, sizeof *st->xp);
  st->yp = calloc(P, sizeof *st->yp);
  st->res = calloc(P * AM_METRIC_COUNT, sizeof *st->res);
  if (!st->nsteps || !st->steps || !st->step_grad_ptrs || !st->rows || !st->agree ||
      !st->pad || !st->sub_ex || !st->sub_lc || !st->sub_out || !st->sub_map ||
      !st->sub_grad || !st->x || !st->y || !st->m || !st->xp || !st->yp || !st->res)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY,
                   "out of memory for the step rows of %d examples of %d steps (try "
                   "--chunk)",
                   c->cap, lay->S);
  return AM_STATUS_OK;
}

void am_steps_free(am_chunk_t *c) {
  am_chunk_steps_t *st = c->steps;
  if (!st)
    return;
  free(st->nsteps);
  free(st->steps);
  free(st->step_grad_ptrs);
  free(st->rows);
  free(st->agree);
  free(st->pad);
  free(st->sub_ex);
  free(st->sub_lc);
  free(st->sub_out);
  free(st->sub_map);
  free(st->sub_grad);
  free(st->x);
  free(st->y);
  free(st->m);
  free(st->xp);
  free(st->yp);
  free(st->res);
  free(st);
  c->steps = NULL;
}

void am_steps_load(am_chunk_t *c, int e) {
  const am_layout_t *lay = c->lay;
  am_chunk_steps_t *st = c->steps;
  const am_shard_t *sh = c->sh;
  int64_t b = c->row0 + e;
  int32_t *steps = st->steps + (size_t)e * (size_t)st->S;
  int k = am_shard_steps(sh, b, &lay->plan, c->ex[e].idx, c->n[e], steps);
  st->nsteps[e] = k;
  am_example_t *ex = &c->ex[e];
  ex->nsteps = k;
  ex->steps = steps;
  ex->step_grad = NULL;
  if (lay->step_grads) {
    const void **p = st->step_grad_ptrs + (size_t)e * (size_t)lay->L;
    size_t per = (size_t)sh->step_grad_S * (size_t)lay->H * (size_t)sh->T * (size_t)sh->T *
                 am_dtype_size(sh->step_grad.layer[0]->dtype);
    for (int l = 0; l < lay->L; l++)
      p[l] = (const unsigned char *)sh->step_grad.layer[l]->data + (size_t)b * per;
    ex->step_grad = p;
  }
  for (int m = 0; m < lay->nmaps; m++)
    if (lay->map_steps[m] && lay->maps[m].def->steps)
      *am_pass_output_slot(&c->out[e], lay->maps[m].def->steps) = am_steps_rows(c, m, e);
}

/* The backend's pass (or long-context pass) over nex examples. */
static am_status backend_pass(am_ctx_t *ctx, const am_dataset_t *ds, const am_example_t *ex,
                              const am_lc_example_t *lc, int nex,
                              const am_pass_options_t *o, am_pass_output_t *out,
                              am_fault_t *fault, int *bad) {
  am_clear_error(ctx);
  return ds->long_form
             ? ctx->backend->long_pass(ctx->backend_state, lc, nex, o, out, fault, bad)
             : ctx->backend->example_pass(ctx->backend_state, ex, nex, o, out, fault, bad);
}

/* The single-target output bit of each *_STEPS bit in want (AM_PASS_ROLLOUT_STEPS ->
 * AM_PASS_ROLLOUT). */
static unsigned single_bits(const am_layout_t *lay, unsigned want) {
  unsigned bits = 0;
  for (int m = 0; m < lay->nmaps; m++)
    if (lay->maps[m].def->steps & want)
      bits |= lay->maps[m].def->pass;
  return bits;
}

/* Step s of every example with more than s steps as one single-target sub-batch. */
static int step_batch(am_chunk_t *c, const am_dataset_t *ds, int s, unsigned want) {
  const am_layout_t *lay = c->lay;
  am_chunk_steps_t *st = c->steps;
  int k = 0;
  size_t L = (size_t)lay->L;
  for (int e = 0; e < c->nex; e++) {
    if (st->nsteps[e] <= s)
      continue;
    int t = st->steps[(size_t)e * (size_t)st->S + (size_t)s], n = c->n[e];
    am_example_t *x = &st->sub_ex[k];
    *x = c->ex[e];
    x->target = t;
    x->nsteps = 0;
    x->steps = NULL;
    x->step_grad = NULL;
    if (lay->step_grads) { /* step s's own gradient: row s of the example's block */
      size_t per = (size_t)lay->H * (size_t)c->sh->T * (size_t)c->sh->T *
                   am_dtype_size(c->sh->step_grad.layer[0]->dtype);
      for (size_t l = 0; l < L; l++)
        st->sub_grad[(size_t)k * L + l] =
            (const unsigned char *)c->ex[e].step_grad[l] + (size_t)s * per;
      x->grad = st->sub_grad + (size_t)k * L;
    }
    if (ds->long_form) {
      st->sub_lc[k] = c->lcex[e];
      st->sub_lc[k].target = t;
    }
    memset(&st->sub_out[k], 0, sizeof st->sub_out[k]);
    for (int m = 0; m < lay->nmaps; m++)
      if (lay->maps[m].def->steps & want)
        *am_pass_output_slot(&st->sub_out[k], lay->maps[m].def->pass) =
            am_steps_rows(c, m, e) + (size_t)s * (size_t)n;
    st->sub_map[k++] = e;
  }
  return k;
}

/* The definition of the step rows: one single-target pass per step. */
static am_status per_step_passes(am_ctx_t *ctx, am_chunk_t *c, const am_dataset_t *ds,
                                 unsigned want, am_fault_t *fault, int *bad) {
  am_chunk_steps_t *st = c->steps;
  am_pass_options_t o = c->lay->pass;
  o.want = single_bits(c->lay, want);
  for (int s = 0; s < st->S; s++) {
    int k = step_batch(c, ds, s, want), sbad = -1;
    if (k == 0)
      break;
    am_status r =
        backend_pass(ctx, ds, st->sub_ex, st->sub_lc, k, &o, st->sub_out, fault, &sbad);
    if (r != AM_STATUS_OK) {
      *bad = sbad >= 0 && sbad < k ? st->sub_map[sbad] : -1;
      return r;
    }
  }
  return AM_STATUS_OK;
}

/* The examples with at least one step as a sub-batch asked for the step outputs only. */
static am_status steps_only(am_ctx_t *ctx, am_chunk_t *c, const am_dataset_t *ds,
                            unsigned want, am_fault_t *fault, int *bad) {
  am_chunk_steps_t *st = c->steps;
  int k = 0, sbad = -1;
  for (int e = 0; e < c->nex; e++)
    if (st->nsteps[e] > 0) {
      st->sub_ex[k] = c->ex[e];
      st->sub_out[k] = c->out[e];
      st->sub_map[k++] = e;
    }
  if (k == 0)
    return AM_STATUS_OK;
  am_pass_options_t o = c->lay->pass;
  o.want = want;
  am_status r = backend_pass(ctx, ds, st->sub_ex, NULL, k, &o, st->sub_out, fault, &sbad);
  if (r != AM_STATUS_OK && r != AM_STATUS_UNSUPPORTED)
    *bad = sbad >= 0 && sbad < k ? st->sub_map[sbad] : -1;
  return r;
}

am_status am_steps_pass(am_ctx_t *ctx, am_chunk_t *c, const am_dataset_t *ds,
                        am_fault_t *fault, int *bad) {
  const am_layout_t *lay = c->lay;
  am_chunk_steps_t *st = c->steps;
  unsigned want = lay->pass.want & am_pass_needing(AM_NEEDS_STEPS);
  unsigned base = lay->pass.want & ~want;
  int all = 1;
  for (int e = 0; e < c->nex; e++)
    all &= st->nsteps[e] > 0;
  *bad = -1;
  am_status r = AM_STATUS_UNSUPPORTED;
  /* one pass for everything where the backend computes the step rows */
  if (want && all && !ds->long_form) {
    r = backend_pass(ctx, ds, c->ex, c->lcex, c->nex, &lay->pass, c->out, fault, bad);
    if (r != AM_STATUS_UNSUPPORTED)
      return r;
  }
  if (base) {
    am_pass_options_t o = lay->pass;
    o.want = base;
    r = backend_pass(ctx, ds, c->ex, c->lcex, c->nex, &o, c->out, fault, bad);
    if (r != AM_STATUS_OK)
      return r;
  }
  if (!want)
    return AM_STATUS_OK;
  r = ds->long_form ? AM_STATUS_UNSUPPORTED : steps_only(ctx, c, ds, want, fault, bad);
  if (r != AM_STATUS_UNSUPPORTED)
    return r;
  return per_step_passes(ctx, c, ds, want, fault, bad);
}

/* Per-step saliency rows [nsteps, n] of map m from its [B,S_in,T] tensor. */
static am_status copy_step_saliency(am_ctx_t *ctx, am_chunk_t *c, int m) {
  const am_shard_t *sh = c->sh;
  int sub = c->lay->maps[m].sub;
  const am_tensor_t *t = sh->saliency[sub];
  const am_source_t *src = &sh->saliency_src[sub];
  int64_t S_in = sh->saliency_S[sub];
  for (int e = 0; e < c->nex; e++) {
    const int32_t *idx = c->idx + (size_t)e * (size_t)c->Tcap;
    float *rows = am_steps_rows(c, m, e);
    int n = c->n[e];
    for (int s = 0; s < c->steps->nsteps[e]; s++)
      for (int i = 0; i < n; i++) {
        int64_t at = ((c->row0 + e) * S_in + s) * sh->T + idx[i];
        float v = am_load_float(t->data, t->dtype, at);
        if (!isfinite(v))
          return am_fail(ctx, AM_STATUS_BAD_INPUT,
                         "%s: tensor %s: example %lld, step %d, position %d: value is not "
                         "finite in F32 (%g)",
                         src->path, src->name, (long long)(c->row0 + e), s, idx[i],
                         am_load_double(t->data, t->dtype, at));
        rows[(size_t)s * (size_t)n + (size_t)i] = v;
      }
  }
  return AM_STATUS_OK;
}

am_status am_steps_means(am_ctx_t *ctx, am_chunk_t *c) {
  const am_layout_t *lay = c->lay;
  for (int m = 0; m < lay->nmaps; m++) {
    if (!lay->map_steps[m])
      continue;
    if (lay->maps[m].kind == AM_MAP_SALIENCY_GIVEN) {
      am_status r = copy_step_saliency(ctx, c, m);
      if (r != AM_STATUS_OK)
        return r;
    }
    for (int e = 0; e < c->nex; e++) {
      int n = c->n[e], k = c->steps->nsteps[e];
      const float *rows = am_steps_rows(c, m, e);
      float *mean = am_chunk_map(c, m, e);
      for (int i = 0; i < n; i++) {
        double sum = 0.0; /* in step order, in double, then rounded once */
        for (int s = 0; s < k; s++)
          sum += rows[(size_t)s * (size_t)n + (size_t)i];
        mean[i] = k > 0 ? (float)(sum / k) : 0.0f;
      }
    }
  }
  return AM_STATUS_OK;
}
