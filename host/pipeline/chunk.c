/* chunk.c — loads a chunk of examples (views into the mapped shard, no copies) and runs
 * every requested analysis on it: the backend's fused pass, saliency and agreement. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/half.h"
#include "ops/backend.h"
#include "pipeline/chunk.h"
#include "pipeline/cross_run.h"
#include "pipeline/steps.h"

#define MAX3(a, b, c) ((a) > (b) ? ((a) > (c) ? (a) : (c)) : ((b) > (c) ? (b) : (c)))

am_status am_chunk_alloc(am_ctx_t *ctx, am_chunk_t *c, const am_layout_t *lay, int cap,
                         int Tcap) {
  memset(c, 0, sizeof *c);
  c->lay = lay;
  c->cap = cap;
  c->Tcap = Tcap;
  size_t C = (size_t)cap, T = (size_t)Tcap, L = (size_t)lay->L, LH = L * (size_t)lay->H;
  size_t P = (size_t)lay->npairs, Tout = (size_t)lay->T;
  int rows = (lay->pass.want & (AM_PASS_ROLLOUT_ROWS | AM_PASS_GRAD_ROLLOUT_ROWS)) != 0;
  c->ex = calloc(C, sizeof *c->ex);
  c->att_ptrs = calloc(C * L, sizeof *c->att_ptrs);
  c->grad_ptrs = calloc(C * L, sizeof *c->grad_ptrs);
  c->lcex = calloc(C, sizeof *c->lcex);
  c->lc_ptrs = calloc(C * 4 * L, sizeof *c->lc_ptrs);
  c->idx = calloc(C * T, sizeof *c->idx);
  c->n = calloc(C, sizeof *c->n);
  c->out = calloc(C, sizeof *c->out);
  c->maps = calloc((size_t)(lay->nmaps ? lay->nmaps : 1) * C * T, sizeof *c->maps);
  c->rows_rollout = rows ? calloc(C * T * T, sizeof(float)) : NULL;
  c->rows_grad = rows ? calloc(C * T * T, sizeof(float)) : NULL;
  c->stats = calloc(C * AM_STAT_COUNT * LH, sizeof *c->stats);
  c->importance = calloc(C * LH, sizeof *c->importance);
  c->agree = calloc(C * (P ? P : 1) * AM_METRIC_COUNT, sizeof *c->agree);
  c->agree_x = calloc(C * (P ? P : 1) * T, sizeof *c->agree_x);
  c->agree_y = calloc(C * (P ? P : 1) * T, sizeof *c->agree_y);
  c->agree_m = calloc(C * (P ? P : 1), sizeof *c->agree_m);
  c->labels = calloc(C, sizeof *c->labels);
  c->ids = calloc(C * T, sizeof *c->ids);
  c->special = calloc(C * T, sizeof *c->special);
  c->predictions = calloc(C, sizeof *c->predictions);
  c->mask_out = calloc(C * Tout, 1);
  c->padded = calloc(C * MAX3(Tout, LH, P + 1), sizeof *c->padded);
  c->padded_rows = rows ? calloc(C * Tout * Tout, sizeof(float)) : NULL;
  if (!c->ex || !c->att_ptrs || !c->grad_ptrs || !c->lcex || !c->lc_ptrs || !c->idx ||
      !c->n || !c->out || !c->maps ||
      (rows && (!c->rows_rollout || !c->rows_grad || !c->padded_rows)) || !c->stats ||
      !c->importance || !c->agree || !c->agree_x || !c->agree_y || !c->agree_m ||
      !c->labels || !c->predictions || !c->ids || !c->special || !c->mask_out ||
      !c->padded) {
    am_chunk_free(c);
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY,
                   "out of memory for a chunk of %d examples of %d tokens (try --chunk)",
                   cap, Tcap);
  }
  am_status st = am_steps_alloc(ctx, c);
  if (st == AM_STATUS_OK)
    st = am_cross_chunk_alloc(ctx, c);
  if (st != AM_STATUS_OK)
    am_chunk_free(c);
  return st;
}

void am_chunk_free(am_chunk_t *c) {
  am_steps_free(c);
  am_cross_chunk_free(c);
  free(c->ex);
  free(c->att_ptrs);
  free(c->grad_ptrs);
  free(c->lcex);
  free(c->lc_ptrs);
  free(c->idx);
  free(c->n);
  free(c->out);
  free(c->maps);
  free(c->rows_rollout);
  free(c->rows_grad);
  free(c->stats);
  free(c->importance);
  free(c->agree);
  free(c->agree_x);
  free(c->agree_y);
  free(c->agree_m);
  free(c->labels);
  free(c->ids);
  free(c->special);
  free(c->predictions);
  free(c->mask_out);
  free(c->padded);
  free(c->padded_rows);
  memset(c, 0, sizeof *c);
}

static int map_index(const am_layout_t *lay, am_map_kind kind, int sub) {
  for (int m = 0; m < lay->nmaps; m++)
    if (lay->maps[m].kind == kind && lay->maps[m].sub == sub)
      return m;
  return -1;
}

static void bind_outputs(am_chunk_t *c, int e) {
  const am_layout_t *lay = c->lay;
  am_pass_output_t *o = &c->out[e];
  size_t T = (size_t)c->Tcap, LH = (size_t)lay->L * (size_t)lay->H;
  memset(o, 0, sizeof *o);
  for (int m = 0; m < lay->nmaps; m++)
    if (lay->maps[m].def->pass)
      *am_pass_output_slot(o, lay->maps[m].def->pass) = am_chunk_map(c, m, e);
  if (c->rows_rollout)
    o->rollout_rows = c->rows_rollout + (size_t)e * T * T;
  if (c->rows_grad)
    o->grad_rollout_rows = c->rows_grad + (size_t)e * T * T;
  o->head_stats = c->stats + (size_t)e * AM_STAT_COUNT * LH;
  o->head_importance = c->importance + (size_t)e * LH;
}

/* Input ids and special flags of example e in valid-token order. */
static am_status load_tokens(am_ctx_t *ctx, am_chunk_t *c, int e) {
  const am_shard_t *sh = c->sh;
  int64_t b = c->row0 + e;
  const int32_t *idx = c->idx + (size_t)e * (size_t)c->Tcap;
  int32_t *ids = c->ids + (size_t)e * (size_t)c->Tcap;
  uint8_t *special = c->special + (size_t)e * (size_t)c->Tcap;
  for (int i = 0; i < c->n[e]; i++) {
    special[i] = (uint8_t)am_shard_is_special(sh, b, idx[i]);
    if (!sh->ids)
      continue;
    int64_t id = am_load_int(sh->ids->data, sh->ids->dtype, b * sh->T + idx[i]);
    if (id < INT32_MIN || id > INT32_MAX)
      return am_fail(
          ctx, AM_STATUS_BAD_INPUT,
          "%s: tensor input_ids: example %lld, position %d: id %lld does not fit "
          "in 32 bits",
          sh->path, (long long)b, idx[i], (long long)id);
    ids[i] = (int32_t)id;
  }
  return AM_STATUS_OK;
}

/* Example e (shard row b) in the long-context form, from c->ex[e]'s valid positions and
 * target. */
static void long_view(am_chunk_t *c, const am_dataset_t *ds, int e, int64_t b) {
  const am_shard_t *sh = c->sh;
  const am_long_layers_t *lc = &sh->lc;
  int L = c->lay->L, H = c->lay->H;
  const void **p = c->lc_ptrs + (size_t)e * 4 * (size_t)L;
  for (int l = 0; l < L; l++) {
    p[l] = am_long_example(&lc->q, sh, H, lc->d, l, b);
    p[L + l] = am_long_example(&lc->k, sh, lc->Hkv, lc->d, l, b);
    p[2 * L + l] = am_long_example(&lc->v, sh, lc->Hkv, lc->d, l, b);
    p[3 * L + l] = am_long_example(&lc->dout, sh, H, lc->d, l, b);
  }
  c->lcex[e] = (am_lc_example_t){.L = L,
                                 .H = H,
                                 .Hkv = lc->Hkv,
                                 .T = sh->T,
                                 .d = lc->d,
                                 .n = c->ex[e].n,
                                 .dtype = ds->dtype,
                                 .q = p,
                                 .k = p + L,
                                 .v = p + 2 * L,
                                 .dout = lc->dout.layer ? p + 3 * L : NULL,
                                 .idx = c->ex[e].idx,
                                 .target = c->ex[e].target,
                                 .attn = lc->attn};
  c->ex[e].att = NULL; /* nothing reads the matrix form of this chunk */
  c->ex[e].grad = NULL;
}

am_status am_chunk_load(am_ctx_t *ctx, am_chunk_t *c, const am_dataset_t *ds, int shard,
                        int64_t row0, int nex) {
  const am_layout_t *lay = c->lay;
  const am_shard_t *sh = &ds->shards[shard];
  /* a file cut short since it was opened would raise SIGBUS when its pages are read */
  am_status changed = am_shard_check_unchanged(ctx, ds, shard);
  if (changed != AM_STATUS_OK)
    return changed;
  c->sh = sh;
  c->row0 = row0;
  c->global0 = sh->first + row0;
  c->nex = nex;
  int L = lay->L;
  for (int e = 0; e < nex; e++) {
    int64_t b = row0 + e;
    int32_t *idx = c->idx + (size_t)e * (size_t)c->Tcap;
    int n = am_shard_valid_positions(sh, b, idx);
    c->n[e] = n;
    for (int l = 0; l < L; l++) {
      c->att_ptrs[(size_t)e * L + l] = am_layers_example(&sh->att, sh, lay->H, l, b);
      c->grad_ptrs[(size_t)e * L + l] = am_layers_example(&sh->grad, sh, lay->H, l, b);
    }
    int target = n > 0 ? am_layout_target(lay, n) : 0;
    if (target == -2)
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor attention_mask: example %lld has %d valid tokens, so "
                     "--target %d is out of range",
                     sh->path, (long long)(c->row0 + e), n, lay->plan.target_index);
    c->ex[e] = (am_example_t){.L = L,
                              .H = lay->H,
                              .T = sh->T,
                              .n = n,
                              .dtype = ds->dtype,
                              .att = c->att_ptrs + (size_t)e * L,
                              .grad = sh->grad.layer ? c->grad_ptrs + (size_t)e * L : NULL,
                              .idx = idx,
                              .target = target};
    if (ds->long_form)
      long_view(c, ds, e, b);
    c->labels[e] =
        sh->labels ? (int32_t)am_load_int(sh->labels->data, sh->labels->dtype, b) : 0;
    c->predictions[e] = sh->predictions ? (int32_t)am_load_int(sh->predictions->data,
                                                               sh->predictions->dtype, b)
                                        : 0;
    am_status st = load_tokens(ctx, c, e);
    if (st != AM_STATUS_OK)
      return st;
    bind_outputs(c, e);
    if (c->steps)
      am_steps_load(c, e);
    if (c->cross && (st = am_cross_chunk_load(ctx, c, e)) != AM_STATUS_OK)
      return st;
  }
  return AM_STATUS_OK;
}

/* Precomputed saliency copied in valid-token order; NaN or infinity is bad input. */
static am_status copy_given_saliency(am_ctx_t *ctx, am_chunk_t *c, int m) {
  const am_shard_t *sh = c->sh;
  const am_tensor_t *t = sh->saliency[c->lay->maps[m].sub];
  const am_source_t *src = &sh->saliency_src[c->lay->maps[m].sub];
  for (int e = 0; e < c->nex; e++) {
    const int32_t *idx = c->idx + (size_t)e * (size_t)c->Tcap;
    float *dst = am_chunk_map(c, m, e);
    for (int i = 0; i < c->n[e]; i++) {
      int64_t at = (c->row0 + e) * sh->T + idx[i];
      dst[i] = am_load_float(t->data, t->dtype, at);
      double wide = am_load_double(t->data, t->dtype, at);
      if (!isfinite(dst[i]))
        return am_fail(ctx, AM_STATUS_BAD_INPUT,
                       "%s: tensor %s: example %lld, position %d: %s (value %g)", src->path,
                       src->name, (long long)(c->row0 + e), idx[i],
                       isfinite(wide) ? "F64 value does not fit in F32, in which attnmap "
                                        "computes"
                                      : "value is not finite",
                       wide);
    }
  }
  return AM_STATUS_OK;
}

/* Derived saliency of the chunk through the backend's saliency op (ops/backend.h). */
static am_status backend_saliency(am_ctx_t *ctx, am_chunk_t *c, int m0, int D, size_t es,
                                  size_t gs) {
  const am_shard_t *sh = c->sh;
  size_t nex = (size_t)c->nex;
  const void **emb = malloc(nex * sizeof *emb), **grad = malloc(nex * sizeof *grad);
  const int32_t **idx = malloc(nex * sizeof *idx);
  float **out = malloc(3 * nex * sizeof *out);
  am_status st = AM_STATUS_OK;
  if (!emb || !grad || !idx || !out) {
    st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
    goto done;
  }
  for (size_t e = 0; e < nex; e++) {
    size_t off = (size_t)(c->row0 + (int64_t)e) * (size_t)sh->T * (size_t)D;
    emb[e] = (const unsigned char *)sh->embeds->data + off * es;
    grad[e] = (const unsigned char *)sh->embeds_grads->data + off * gs;
    idx[e] = c->idx + e * (size_t)c->Tcap;
    for (int k = 0; k < 3; k++)
      out[3 * e + (size_t)k] = am_chunk_map(c, m0 + k, (int)e);
  }
  am_clear_error(ctx);
  st = ctx->backend->saliency(ctx->backend_state, c->nex, D, emb, sh->embeds->dtype, grad,
                              sh->embeds_grads->dtype, idx, c->n, out);
  if (st != AM_STATUS_OK) {
    char why[512];
    snprintf(why, sizeof why, "%s", am_last_error(ctx));
    st = am_fail(ctx, st, "%s: saliency failed: %s", sh->path,
                 *why ? why : am_status_str(st));
  }
done:
  free(emb);
  free(grad);
  free(idx);
  free(out);
  return st;
}

static am_status compute_saliency(am_ctx_t *ctx, am_chunk_t *c, const am_dataset_t *ds) {
  const am_layout_t *lay = c->lay;
  const am_shard_t *sh = c->sh;
  for (int m = 0; m < lay->nmaps; m++) {
    am_status st = lay->maps[m].kind == AM_MAP_SALIENCY_GIVEN && !lay->map_steps[m]
                       ? copy_given_saliency(ctx, c, m)
                       : AM_STATUS_OK;
    if (st != AM_STATUS_OK)
      return st;
  }
  if (!lay->derived_saliency)
    return AM_STATUS_OK;
  int m0 = map_index(lay, AM_MAP_SALIENCY_DERIVED, 0);
  size_t D = (size_t)ds->embed_dim;
  size_t es = am_dtype_size(sh->embeds->dtype), gs = am_dtype_size(sh->embeds_grads->dtype);
  am_status st = backend_saliency(ctx, c, m0, (int)D, es, gs); /* the whole chunk at once */
  if (st != AM_STATUS_OK)
    return st;
  for (int e = 0; e < c->nex; e++) {
    const float *l2 = am_chunk_map(c, m0, e);
    for (int i = 0; i < c->n[e]; i++)
      if (!isfinite(l2[i]) || !isfinite(am_chunk_map(c, m0 + 1, e)[i]))
        return am_fail(
            ctx, AM_STATUS_BAD_INPUT,
            "%s: tensor inputs_embeds/inputs_embeds_grads: example %lld, position "
            "%d: a value is not finite",
            sh->embeds_src.path, (long long)(c->row0 + e),
            c->idx[(size_t)e * (size_t)c->Tcap + i]);
  }
  return AM_STATUS_OK;
}

/* Gathers the compared tokens (valid, non-special unless asked, the target token left out
 * unless asked) of every pair. */
static void gather_pairs(am_chunk_t *c) {
  const am_layout_t *lay = c->lay;
  size_t P = (size_t)lay->npairs, T = (size_t)c->Tcap;
  for (int e = 0; e < c->nex; e++) {
    const int32_t *idx = c->idx + (size_t)e * T;
    int excluded = am_layout_excluded(lay, c->n[e]);
    for (size_t p = 0; p < P; p++) {
      size_t slot = (size_t)e * P + p;
      const float *a = am_chunk_map(c, lay->pair_a[p], e);
      const float *b = am_chunk_map(c, lay->pair_b[p], e);
      int m = 0;
      for (int i = 0; i < c->n[e]; i++) {
        if (i == excluded ||
            (!lay->plan.include_special && am_shard_is_special(c->sh, c->row0 + e, idx[i])))
          continue;
        c->agree_x[slot * T + (size_t)m] = a[i];
        c->agree_y[slot * T + (size_t)m] = b[i];
        m++;
      }
      c->agree_m[slot] = m;
    }
  }
}

static am_status compute_agreement(am_ctx_t *ctx, am_chunk_t *c) {
  size_t P = (size_t)c->lay->npairs, T = (size_t)c->Tcap, npairs = (size_t)c->nex * P;
  if (npairs == 0)
    return AM_STATUS_OK;
  gather_pairs(c);
  const float **x = malloc(npairs * sizeof *x);
  const float **y = malloc(npairs * sizeof *y);
  am_status st = AM_STATUS_OK;
  if (!x || !y) {
    st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
    goto done;
  }
  for (size_t s = 0; s < npairs; s++) {
    x[s] = c->agree_x + s * T;
    y[s] = c->agree_y + s * T;
  }
  st = ctx->backend->agreement(ctx->backend_state, x, y, c->agree_m, (int)npairs,
                               c->lay->plan.topk, c->agree);
  if (st != AM_STATUS_OK)
    st = am_fail(ctx, st, "agreement: %s", am_status_str(st));
  /* Values are stored as F32: aggregate exactly what is stored, so merges re-reading the
   * rows reproduce every aggregate bit for bit. */
  for (size_t i = 0; st == AM_STATUS_OK && i < npairs * AM_METRIC_COUNT; i++)
    c->agree[i] = (double)(float)c->agree[i];
done:
  free(x);
  free(y);
  return st;
}

static void clear_maps(am_chunk_t *c) {
  size_t T = (size_t)c->Tcap;
  for (int m = 0; m < c->lay->nmaps; m++)
    for (int e = 0; e < c->nex; e++)
      memset(am_chunk_map(c, m, e), 0, T * sizeof(float));
}

/* What follows the backend's pass: its fault or failure in words (with the backend's own
 * message), then flow, saliency and agreement. */
static am_status after_pass(am_ctx_t *ctx, am_chunk_t *c, const am_dataset_t *ds,
                            am_status st, const am_fault_t *fault, int bad) {
  if (st == AM_STATUS_BAD_INPUT && bad >= 0)
    return am_chunk_report_fault(ctx, c, fault, bad);
  if (st != AM_STATUS_OK) {
    char why[512];
    snprintf(why, sizeof why, "%s", am_last_error(ctx));
    return am_fail(ctx, st, "%s: analysis failed: %s%s%s", c->sh->path, am_status_str(st),
                   *why ? ": " : "", why);
  }
  int flow = map_index(c->lay, AM_MAP_FLOW, 0);
  if (flow >= 0) {
    float **out = malloc((size_t)c->nex * sizeof *out);
    if (!out)
      return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
    for (int e = 0; e < c->nex; e++)
      out[e] = am_chunk_map(c, flow, e);
    st = ctx->backend->flow(ctx->backend_state, c->ex, c->nex, &c->lay->pass, out);
    if (st == AM_STATUS_UNSUPPORTED && ctx->reference && !c->lay->pass.device_pointers) {
      am_clear_error(ctx); /* the device leaves flow to the CPU reference (docs/cuda.md) */
      st = ctx->reference->flow(ctx->reference_state, c->ex, c->nex, &c->lay->pass, out);
    }
    free(out);
    if (st != AM_STATUS_OK) {
      char why[512];
      snprintf(why, sizeof why, "%s", am_last_error(ctx));
      return am_fail(ctx, st == AM_STATUS_UNSUPPORTED ? AM_STATUS_INVALID_ARGUMENT : st,
                     "%s: attention flow failed: %s", c->sh->path,
                     *why ? why : am_status_str(st));
    }
  }
  st = compute_saliency(ctx, c, ds);
  if (st == AM_STATUS_OK && c->steps)
    st = am_steps_means(ctx, c);
  if (st == AM_STATUS_OK)
    st = am_chunk_check_finite(ctx, c);
  if (st == AM_STATUS_OK)
    st = am_cross_chunk_compute(ctx, c);
  if (st == AM_STATUS_OK)
    st = compute_agreement(ctx, c);
  return st != AM_STATUS_OK || !c->steps ? st : am_steps_agreement(ctx, c);
}

/* The long-context form on a backend that does not compute it yet. */
static am_status no_long_pass(am_ctx_t *ctx, const am_chunk_t *c) {
  return am_fail(
      ctx, AM_STATUS_INVALID_ARGUMENT,
      "%s: tensor queries.0: the %s backend does not compute the long-context form "
      "(queries/keys/values) yet; use --backend cpu",
      c->sh->path, ctx->backend->name);
}

am_status am_chunk_compute(am_ctx_t *ctx, am_chunk_t *c, const am_dataset_t *ds) {
  am_fault_t fault = {0};
  int bad = -1;
  clear_maps(c);
  am_clear_error(ctx);
  if (ds->long_form && !ctx->backend->long_pass)
    return no_long_pass(ctx, c);
  am_status st = c->steps ? am_steps_pass(ctx, c, ds, &fault, &bad)
                 : ds->long_form
                     ? ctx->backend->long_pass(ctx->backend_state, c->lcex, c->nex,
                                               &c->lay->pass, c->out, &fault, &bad)
                     : ctx->backend->example_pass(ctx->backend_state, c->ex, c->nex,
                                                  &c->lay->pass, c->out, &fault, &bad);
  return after_pass(ctx, c, ds, st, &fault, bad);
}

am_status am_chunk_submit(am_ctx_t *ctx, am_chunk_t *c) {
  if (c->sh->long_form) /* no backend submits the long-context form in halves yet */
    return no_long_pass(ctx, c);
  clear_maps(c);
  am_clear_error(ctx);
  am_status st =
      ctx->backend->pass_submit(ctx->backend_state, c->ex, c->nex, &c->lay->pass, c->out);
  if (st != AM_STATUS_OK) {
    char why[512];
    snprintf(why, sizeof why, "%s", am_last_error(ctx));
    return am_fail(ctx, st, "%s: analysis failed: %s%s%s", c->sh->path, am_status_str(st),
                   *why ? ": " : "", why);
  }
  return AM_STATUS_OK;
}

am_status am_chunk_finish(am_ctx_t *ctx, am_chunk_t *c, const am_dataset_t *ds) {
  am_fault_t fault = {0};
  int bad = -1;
  am_clear_error(ctx);
  am_status st = ctx->backend->pass_wait(ctx->backend_state, &fault, &bad);
  return after_pass(ctx, c, ds, st, &fault, bad);
}
