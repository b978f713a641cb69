/* cross_chunk.c — the decoder→encoder maps of a chunk (docs/generation.md,
 * "Encoder-decoder models"): each example's source positions and cross-attention views
 * beside its decoder view, the backend's cross op (a device backend leaves it to the CPU
 * reference, ctx->reference, as attention flow), and the [N,S,Tenc] tensors written at
 * the padded source positions (0 elsewhere and past an example's steps). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/half.h"
#include "ops/backend.h"
#include "pipeline/cross_run.h"

am_status am_cross_chunk_alloc(am_ctx_t *ctx, am_chunk_t *c) {
  const am_layout_t *lay = c->lay;
  c->cross = NULL;
  if (!lay->cross_want)
    return AM_STATUS_OK;
  am_chunk_cross_t *x = calloc(1, sizeof *x);
  size_t C = (size_t)c->cap, L = (size_t)lay->L;
  if (x) {
    c->cross = x;
    x->S = am_layout_cross_S(lay);
    x->Tenc = lay->Tenc;
    size_t row = (size_t)x->S * (size_t)x->Tenc;
    x->ex = calloc(C, sizeof *x->ex);
    x->ptrs = calloc(C * 3 * L, sizeof *x->ptrs);
    x->enc_idx = calloc(C * (size_t)x->Tenc, sizeof *x->enc_idx);
    x->n_enc = calloc(C, sizeof *x->n_enc);
    x->single = calloc(C, sizeof *x->single);
    x->maps = calloc(AM_CROSS_OUTPUT_COUNT * C * row, sizeof *x->maps);
    x->out = calloc(C, sizeof *x->out);
    x->pad = calloc(C * row, sizeof *x->pad);
  }
  if (!x || !x->ex || !x->ptrs || !x->enc_idx || !x->n_enc || !x->single || !x->maps ||
      !x->out || !x->pad) {
    if (!x)
      return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
    return am_fail(
        ctx, AM_STATUS_OUT_OF_MEMORY,
        "out of memory for the cross-attention maps of %d examples (try --chunk)", c->cap);
  }
  return AM_STATUS_OK;
}

void am_cross_chunk_free(am_chunk_t *c) {
  am_chunk_cross_t *x = c->cross;
  if (!x)
    return;
  free(x->ex);
  free(x->ptrs);
  free(x->enc_idx);
  free(x->n_enc);
  free(x->single);
  free(x->maps);
  free(x->out);
  free(x->pad);
  free(x);
  c->cross = NULL;
}

/* Output k of example e: [S, Tenc] (row stride n_enc as the op writes it). */
static float *cross_map(const am_chunk_t *c, int k, int e) {
  const am_chunk_cross_t *x = c->cross;
  size_t row = (size_t)x->S * (size_t)x->Tenc;
  return x->maps + ((size_t)k * (size_t)c->cap + (size_t)e) * row;
}

am_status am_cross_chunk_load(am_ctx_t *ctx, am_chunk_t *c, int e) {
  am_chunk_cross_t *x = c->cross;
  if (!x)
    return AM_STATUS_OK;
  const am_layout_t *lay = c->lay;
  const am_shard_t *sh = c->sh;
  int64_t b = c->row0 + e;
  int L = lay->L;
  int32_t *idx = x->enc_idx + (size_t)e * (size_t)x->Tenc;
  x->n_enc[e] = am_shard_source_positions(sh, b, idx);
  const void **p = x->ptrs + (size_t)e * 3 * (size_t)L;
  for (int l = 0; l < L; l++) {
    p[l] = am_cross_layer_example(&sh->cross.att, sh, lay->H, l, b);
    p[L + l] = am_cross_layer_example(&sh->cross.grad, sh, lay->H, l, b);
    p[2 * L + l] = am_cross_step_grad_example(sh, lay->H, l, b);
  }
  /* per-step gradients serve several targets only; with one target the shared ones */
  int per_step = lay->several && sh->cross.step_grad.layer;
  if (per_step && c->ex[e].nsteps > sh->cross.S_in)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: example %lld has %d steps, more than its %d rows",
                   sh->cross.step_grad.source[0].path, sh->cross.step_grad.source[0].name,
                   (long long)b, c->ex[e].nsteps, sh->cross.S_in);
  x->ex[e] = (am_cross_example_t){.dec = c->ex[e],
                                  .Tenc = sh->cross.Tenc,
                                  .n_enc = x->n_enc[e],
                                  .enc_idx = idx,
                                  .dtype = sh->cross.dtype,
                                  .cross = p,
                                  .cross_grad = sh->cross.grad.layer ? p + L : NULL,
                                  .step_cross_grad = per_step ? p + 2 * L : NULL};
  am_example_t *d = &x->ex[e].dec;
  if (!lay->several) { /* one step: the target row (am_layout_cross leaves out mean) */
    x->single[e] = d->target;
    d->nsteps = d->n > 0 && d->target >= 0 ? 1 : 0;
    d->steps = &x->single[e];
    d->step_grad = NULL;
  }
  am_cross_output_t *o = &x->out[e];
  memset(o, 0, sizeof *o);
  for (int k = 0; k < AM_CROSS_OUTPUT_COUNT; k++)
    if (lay->cross_want & (1u << k))
      *am_cross_output_slot(o, 1u << k) = cross_map(c, k, e);
  return AM_STATUS_OK;
}

/* Finite inputs whose products overflow F32 would go on as infinities: refused here. */
static am_status check_finite(am_ctx_t *ctx, const am_chunk_t *c) {
  const am_chunk_cross_t *x = c->cross;
  for (int e = 0; e < c->nex; e++)
    for (int k = 0; k < AM_CROSS_OUTPUT_COUNT; k++) {
      if (!(c->lay->cross_want & (1u << k)))
        continue;
      const float *v = cross_map(c, k, e);
      size_t count = (size_t)x->ex[e].dec.nsteps * (size_t)x->n_enc[e];
      for (size_t i = 0; i < count; i++)
        if (!isfinite(v[i]))
          return am_fail(ctx, AM_STATUS_BAD_INPUT,
                         "%s: example %lld: %s is not finite (%g): the inputs' products "
                         "overflow F32; rescale the gradients",
                         c->sh->path, (long long)(c->row0 + e), am_cross_map_name(k),
                         (double)v[i]);
    }
  return AM_STATUS_OK;
}

am_status am_cross_chunk_compute(am_ctx_t *ctx, am_chunk_t *c) {
  am_chunk_cross_t *x = c->cross;
  if (!x || c->nex == 0)
    return AM_STATUS_OK;
  const am_layout_t *lay = c->lay;
  am_cross_fault_t fault = {0};
  int bad = -1;
  am_clear_error(ctx);
  am_status st = AM_STATUS_UNSUPPORTED;
  if (ctx->backend->cross)
    st = ctx->backend->cross(ctx->backend_state, x->ex, c->nex, lay->cross_want, &lay->pass,
                             x->out, &fault, &bad);
  if (st == AM_STATUS_UNSUPPORTED && ctx->reference && ctx->reference->cross &&
      !lay->pass.device_pointers) {
    am_clear_error(ctx); /* the device leaves these maps to the CPU reference (cuda.md) */
    st = ctx->reference->cross(ctx->reference_state, x->ex, c->nex, lay->cross_want,
                               &lay->pass, x->out, &fault, &bad);
  }
  if (st == AM_STATUS_BAD_INPUT && bad >= 0 && bad < c->nex)
    return am_cross_report_fault(ctx, c->sh, lay->L, c->row0 + bad, x->ex[bad].dec.idx,
                                 x->ex[bad].dec.n, x->enc_idx + (size_t)bad * x->Tenc,
                                 x->n_enc[bad], &fault);
  if (st != AM_STATUS_OK) {
    char why[512];
    snprintf(why, sizeof why, "%s", am_last_error(ctx));
    return am_fail(ctx, st == AM_STATUS_UNSUPPORTED ? AM_STATUS_INVALID_ARGUMENT : st,
                   "%s: cross-attention maps failed: %s", c->sh->path,
                   *why ? why : am_status_str(st));
  }
  return check_finite(ctx, c);
}

/* Writes nex rows of per bytes each into tensor spec. */
static am_status put(am_chunk_t *c, am_st_writer_t *w, int spec, const void *buf,
                     size_t per) {
  return am_st_writer_put(w, spec, (uint64_t)c->global0 * per, buf, (size_t)c->nex * per);
}

/* source_mask, source_lengths and source_ids (padding 0). */
static am_status write_source(am_ctx_t *ctx, am_chunk_t *c, am_st_writer_t *w) {
  const am_layout_t *lay = c->lay;
  am_chunk_cross_t *x = c->cross;
  size_t Te = (size_t)x->Tenc;
  uint8_t *mask = (uint8_t *)(void *)x->pad;
  memset(mask, 0, (size_t)c->nex * Te);
  for (int e = 0; e < c->nex; e++)
    for (int j = 0; j < x->n_enc[e]; j++)
      mask[(size_t)e * Te + (size_t)x->enc_idx[(size_t)e * Te + (size_t)j]] = 1;
  am_status st = put(c, w, lay->spec_source_mask, mask, Te);
  int32_t *v = (int32_t *)(void *)x->pad;
  for (int e = 0; e < c->nex; e++)
    v[e] = x->n_enc[e];
  if (st == AM_STATUS_OK)
    st = put(c, w, lay->spec_source_lengths, v, sizeof *v);
  if (st != AM_STATUS_OK || lay->spec_source_ids < 0)
    return st;
  const am_shard_t *sh = c->sh;
  memset(v, 0, (size_t)c->nex * Te * sizeof *v);
  for (int e = 0; e < c->nex; e++)
    for (int j = 0; j < x->n_enc[e]; j++) {
      int p = x->enc_idx[(size_t)e * Te + (size_t)j];
      int64_t id = am_load_int(sh->cross.ids->data, sh->cross.ids->dtype,
                               (c->row0 + e) * sh->cross.Tenc + p);
      if (id < INT32_MIN || id > INT32_MAX)
        return am_fail(ctx, AM_STATUS_BAD_INPUT,
                       "%s: tensor encoder_input_ids: example %lld, position %d: id %lld "
                       "does not fit in 32 bits",
                       sh->cross.ids_src.path, (long long)(c->row0 + e), p, (long long)id);
      v[(size_t)e * Te + (size_t)p] = (int32_t)id;
    }
  return put(c, w, lay->spec_source_ids, v, Te * sizeof *v);
}

am_status am_cross_chunk_write(am_ctx_t *ctx, am_chunk_t *c, am_st_writer_t *w) {
  am_chunk_cross_t *x = c->cross;
  if (!x)
    return AM_STATUS_OK;
  const am_layout_t *lay = c->lay;
  size_t S = (size_t)x->S, Te = (size_t)x->Tenc;
  am_status st = write_source(ctx, c, w);
  for (int k = 0; k < AM_CROSS_OUTPUT_COUNT && st == AM_STATUS_OK; k++) {
    if (lay->spec_cross[k] < 0)
      continue;
    memset(x->pad, 0, (size_t)c->nex * S * Te * sizeof *x->pad);
    for (int e = 0; e < c->nex; e++) {
      const float *rows = cross_map(c, k, e);
      const int32_t *idx = x->enc_idx + (size_t)e * Te;
      size_t m = (size_t)x->n_enc[e];
      for (int s = 0; s < x->ex[e].dec.nsteps; s++)
        for (size_t j = 0; j < m; j++)
          x->pad[((size_t)e * S + (size_t)s) * Te + (size_t)idx[j]] =
              rows[(size_t)s * m + j];
    }
    st = put(c, w, lay->spec_cross[k], x->pad, S * Te * sizeof(float));
  }
  return st;
}
