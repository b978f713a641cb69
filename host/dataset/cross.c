/* cross.c — the inputs of an encoder-decoder model (docs/generation.md, "Encoder-decoder
 * models"): per decoder layer cross_attentions.{l} [B,H,T,Tenc] (the decoder→encoder
 * attention; B, H, T as the decoder's attentions, one per decoder layer, any Tenc per
 * shard) and cross_attention_grads.{l} alike; encoder_attention_mask (0/1) and
 * encoder_input_ids [B,Tenc]; __metadata__ attnmap.source_tokens. Shapes, dtypes, masks and
 * token lists are checked here, the values as the cross op reads them (its faults are put
 * in words by am_cross_report_fault). Every failure names the file, tensor and problem. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/half.h"
#include "dataset/dataset.h"
#include "dataset/shard.h"
#include "io/file.h"

/* Every layer of ls: [B,H,T,Tenc] of one float dtype, per layer (never stacked); the
 * first layer of att fixes Tenc and the dtype (*Tenc < 0, *dtype < 0 on entry). */
static am_status check_set(am_ctx_t *ctx, const am_shard_t *sh, const am_layers_t *ls,
                           int L, int H, int64_t *Tenc, am_dtype *dtype) {
  char found[128];
  for (int l = 0; l < L; l++) {
    const am_tensor_t *t = ls->layer[l];
    const am_source_t *src = &ls->source[l];
    am_shape_text(t, found, sizeof found);
    if (ls->stacked)
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor %s: one stacked tensor; store one [B,H,Tdec,Tenc] tensor "
                     "per decoder layer (%s.0, %s.1, ...)",
                     src->path, src->name, src->name, src->name);
    if (!am_ops_float_dtype(t->dtype))
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor %s: dtype %s is not a float type (F32, F16, BF16, F64)",
                     src->path, src->name, am_dtype_name(t->dtype));
    if ((int)*dtype < 0)
      *dtype = t->dtype;
    if (t->ndim == 4 && *Tenc < 0)
      *Tenc = t->shape[3];
    if (t->ndim != 4 || t->shape[0] != sh->B || t->shape[1] != H || t->shape[2] != sh->T ||
        t->shape[3] != *Tenc || t->shape[3] < 1 || t->shape[3] > (1 << 20) ||
        t->dtype != *dtype)
      return am_fail(
          ctx, AM_STATUS_BAD_INPUT,
          "%s: tensor %s: expected [B,H,Tdec,Tenc] = [%lld,%d,%d,%s] %s (B, H and "
          "Tdec as the decoder's attentions, Tenc from 1 to %d and alike in "
          "every layer), found %s %s",
          src->path, src->name, (long long)sh->B, H, sh->T, *Tenc >= 1 ? "Tenc" : "Tenc>=1",
          am_dtype_name(*dtype), 1 << 20, found, am_dtype_name(t->dtype));
  }
  return AM_STATUS_OK;
}

/* encoder_attention_mask / encoder_input_ids: [B,Tenc] of an integer or bool type; the
 * mask holds only 0 and 1. */
static am_status find_aux(am_ctx_t *ctx, am_shard_t *sh, const char *name, int binary,
                          const am_tensor_t **out, am_source_t *src) {
  const am_tensor_t *t = am_shard_tensor(sh, name, src);
  *out = t;
  if (!t)
    return AM_STATUS_OK;
  char found[128];
  am_shape_text(t, found, sizeof found);
  if (!sh->cross.att.layer)
    return am_fail(
        ctx, AM_STATUS_BAD_INPUT,
        "%s: tensor %s: found without cross_attentions.0 ... (an encoder-decoder "
        "dataset needs the decoder's cross-attention of every layer)",
        src->path, name);
  if (t->ndim != 2 || t->shape[0] != sh->B || t->shape[1] != sh->cross.Tenc)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: expected shape [B,Tenc]=[%lld,%d] as cross_attentions, "
                   "found %s",
                   src->path, name, (long long)sh->B, sh->cross.Tenc, found);
  if (t->dtype == AM_DTYPE_F16 || t->dtype == AM_DTYPE_BF16 || t->dtype == AM_DTYPE_F32 ||
      t->dtype == AM_DTYPE_F64)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: dtype %s is not an integer or bool type", src->path,
                   name, am_dtype_name(t->dtype));
  for (int64_t i = 0; binary && i < sh->B * sh->cross.Tenc; i++) {
    int64_t v = am_load_int(t->data, t->dtype, i);
    if (v != 0 && v != 1)
      return am_fail(
          ctx, AM_STATUS_BAD_INPUT,
          "%s: tensor %s: value %lld at example %lld, position %lld is not 0 or 1",
          src->path, name, (long long)v, (long long)(i / sh->cross.Tenc),
          (long long)(i % sh->cross.Tenc));
  }
  return AM_STATUS_OK;
}

/* attnmap.source_tokens: B arrays of strings, one per source position or per valid one. */
static am_status read_source_tokens(am_ctx_t *ctx, am_shard_t *sh) {
  const char *text = NULL, *path = NULL;
  for (int f = 0; f < sh->nfiles && !text; f++)
    if ((text = am_file_metadata(sh->files[f], "attnmap.source_tokens")))
      path = am_file_path(sh->files[f]);
  if (!text)
    return AM_STATUS_OK;
  if (!sh->cross.att.layer)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: __metadata__ attnmap.source_tokens: found without "
                   "cross_attentions.0 ...",
                   path);
  json_error_t err;
  json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, &err);
  sh->cross.tokens = v;
  if (!v || !json_is_array(v) || (int64_t)json_array_size(v) != sh->B)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: __metadata__ attnmap.source_tokens: expected a JSON array of %lld "
                   "entries (%s)",
                   path, (long long)sh->B, v ? "wrong length or type" : err.text);
  int32_t *idx = malloc((size_t)sh->cross.Tenc * sizeof *idx);
  if (!idx)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  am_status st = AM_STATUS_OK;
  for (size_t b = 0; b < json_array_size(v) && st == AM_STATUS_OK; b++) {
    json_t *row = json_array_get(v, b);
    int n = am_shard_source_positions(sh, (int64_t)b, idx);
    size_t len = json_array_size(row);
    if (!json_is_array(row) || (len != (size_t)sh->cross.Tenc && len != (size_t)n))
      st = am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: __metadata__ attnmap.source_tokens: entry %zu is not an array of "
                   "Tenc=%d strings (one per position) or of %d (one per valid source "
                   "token)",
                   path, b, sh->cross.Tenc, n);
    for (size_t i = 0; st == AM_STATUS_OK && i < len; i++)
      if (!json_is_string(json_array_get(row, i)))
        st =
            am_fail(ctx, AM_STATUS_BAD_INPUT,
                    "%s: __metadata__ attnmap.source_tokens: entry %zu, token %zu is not a "
                    "string",
                    path, b, i);
  }
  free(idx);
  return st;
}

/* step_cross_attention_grads.{l} [B,S_in,H,T,Tenc] (docs/generation.md, "Gradients per
 * step"): every layer, per layer, S_in >= 1 alike, the cross-attention's Tenc and dtype. */
static am_status find_step_grads(am_ctx_t *ctx, am_shard_t *sh, int L, int H) {
  am_cross_set_t *c = &sh->cross;
  int Ls = 0;
  am_status st =
      am_shard_collect_layers(ctx, sh, "step_cross_attention_grads", &c->step_grad, &Ls);
  if (st != AM_STATUS_OK || Ls == 0)
    return st;
  const am_source_t *src0 = &c->step_grad.source[0];
  if (!c->att.layer)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: found without cross_attentions.0 ...", src0->path,
                   src0->name);
  if (Ls != L || c->step_grad.stacked)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: expected one [B,S,H,Tdec,Tenc] tensor per decoder layer "
                   "(%d layers), found %d%s",
                   src0->path, src0->name, L, Ls, c->step_grad.stacked ? " stacked" : "");
  for (int l = 0; l < L; l++) {
    const am_tensor_t *t = c->step_grad.layer[l];
    const am_source_t *src = &c->step_grad.source[l];
    char found[128];
    am_shape_text(t, found, sizeof found);
    if (l == 0 && t->ndim == 5)
      c->S_in = (int)(t->shape[1] < (1 << 20) ? t->shape[1] : 0);
    if (t->ndim != 5 || t->shape[0] != sh->B || t->shape[1] != c->S_in || c->S_in < 1 ||
        t->shape[2] != H || t->shape[3] != sh->T || t->shape[4] != c->Tenc ||
        t->dtype != c->dtype)
      return am_fail(
          ctx, AM_STATUS_BAD_INPUT,
          "%s: tensor %s: expected [B,S,H,Tdec,Tenc] = [%lld,S,%d,%d,%d] %s (S >= 1 "
          "alike in every layer; the rest as cross_attentions), found %s %s",
          src->path, src->name, (long long)sh->B, H, sh->T, c->Tenc,
          am_dtype_name(c->dtype), found, am_dtype_name(t->dtype));
  }
  return AM_STATUS_OK;
}

am_status am_shard_find_cross(am_ctx_t *ctx, am_shard_t *sh, int L, int H) {
  am_cross_set_t *c = &sh->cross;
  int Lc = 0, Lg = 0;
  int64_t Tenc = -1;
  c->dtype = (am_dtype)-1;
  am_status st = am_shard_collect_layers(ctx, sh, "cross_attentions", &c->att, &Lc);
  if (st == AM_STATUS_OK)
    st = am_shard_collect_layers(ctx, sh, "cross_attention_grads", &c->grad, &Lg);
  if (st != AM_STATUS_OK)
    return st;
  if (Lg && !Lc)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: found without cross_attentions.0 ...",
                   c->grad.source[0].path, c->grad.source[0].name);
  if (Lc && sh->long_form)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: cross-attention with the long-context form (queries, "
                   "keys, values) is not supported; store the decoder's attentions",
                   c->att.source[0].path, c->att.source[0].name);
  if (Lc && Lc != L)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor cross_attentions.N: %d layers, but attentions has %d (one "
                   "per decoder layer)",
                   sh->path, Lc, L);
  if (Lg && Lg != L)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor cross_attention_grads.N: %d layers, but attentions has %d "
                   "(one per decoder layer)",
                   sh->path, Lg, L);
  if (Lc && (st = check_set(ctx, sh, &c->att, L, H, &Tenc, &c->dtype)) != AM_STATUS_OK)
    return st;
  if (Lg && (st = check_set(ctx, sh, &c->grad, L, H, &Tenc, &c->dtype)) != AM_STATUS_OK)
    return st;
  c->Tenc = Lc ? (int)Tenc : 0;
  if ((st = find_step_grads(ctx, sh, L, H)) != AM_STATUS_OK)
    return st;
  if ((st = find_aux(ctx, sh, "encoder_attention_mask", 1, &c->mask, &c->mask_src)) ||
      (st = find_aux(ctx, sh, "encoder_input_ids", 0, &c->ids, &c->ids_src)))
    return st;
  return read_source_tokens(ctx, sh);
}

am_status am_cross_same_as_first(am_ctx_t *ctx, am_dataset_t *ds, int s) {
  const am_cross_set_t *c = &ds->shards[s].cross, *c0 = &ds->shards[0].cross;
  if (s == 0) {
    ds->cross = c->att.layer != NULL;
    ds->cross_grads = c->grad.layer != NULL;
    ds->cross_dtype = ds->cross ? c->dtype : AM_DTYPE_F32;
  }
  const char *names[5] = {"cross_attentions.N", "cross_attention_grads.N",
                          "encoder_attention_mask", "encoder_input_ids",
                          "step_cross_attention_grads.N"};
  int here[5] = {c->att.layer != NULL, c->grad.layer != NULL, c->mask != NULL,
                 c->ids != NULL, c->step_grad.layer != NULL};
  int first[5] = {c0->att.layer != NULL, c0->grad.layer != NULL, c0->mask != NULL,
                  c0->ids != NULL, c0->step_grad.layer != NULL};
  if (s == 0)
    ds->cross_step_grads = here[4];
  for (int k = 0; k < 5; k++)
    if (here[k] != first[k])
      return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: %s here but %s in %s",
                     ds->shards[s].path, names[k], here[k] ? "present" : "missing",
                     here[k] ? "missing" : "present", ds->shards[0].path);
  if (ds->cross && c->dtype != ds->cross_dtype)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: dtype %s differs from the first shard's %s",
                   c->att.source[0].path, c->att.source[0].name, am_dtype_name(c->dtype),
                   am_dtype_name(ds->cross_dtype));
  if (ds->cross && ds->shards[s].B > 0 && c->Tenc > ds->Tenc_max)
    ds->Tenc_max = c->Tenc;
  return AM_STATUS_OK;
}

void am_shard_cross_free(am_shard_t *sh) {
  free(sh->cross.att.layer);
  free(sh->cross.att.source);
  free(sh->cross.grad.layer);
  free(sh->cross.grad.source);
  free(sh->cross.step_grad.layer);
  free(sh->cross.step_grad.source);
  json_decref(sh->cross.tokens);
  memset(&sh->cross, 0, sizeof sh->cross);
}

const void *am_cross_layer_example(const am_layers_t *ls, const am_shard_t *sh, int H,
                                   int l, int64_t b) {
  if (!ls->layer)
    return NULL;
  const am_tensor_t *t = ls->layer[l];
  size_t per_ex =
      (size_t)H * (size_t)sh->T * (size_t)sh->cross.Tenc * am_dtype_size(t->dtype);
  return (const unsigned char *)t->data + (size_t)b * per_ex;
}

const void *am_cross_step_grad_example(const am_shard_t *sh, int H, int l, int64_t b) {
  const am_cross_set_t *c = &sh->cross;
  if (!c->step_grad.layer)
    return NULL;
  const am_tensor_t *t = c->step_grad.layer[l];
  size_t per_ex =
      (size_t)c->S_in * H * (size_t)sh->T * (size_t)c->Tenc * am_dtype_size(t->dtype);
  return (const unsigned char *)t->data + (size_t)b * per_ex;
}

int am_shard_source_positions(const am_shard_t *sh, int64_t b, int32_t *idx) {
  const am_tensor_t *m = sh->cross.mask;
  int n = 0;
  for (int p = 0; p < sh->cross.Tenc; p++)
    if (!m || am_load_int(m->data, m->dtype, b * sh->cross.Tenc + p))
      idx[n++] = p;
  return n;
}

const char *am_shard_source_token(const am_shard_t *sh, int64_t b, int p, int valid_rank,
                                  int n) {
  json_t *row = sh->cross.tokens ? json_array_get(sh->cross.tokens, (size_t)b) : NULL;
  size_t len = json_array_size(row);
  size_t at = len == (size_t)sh->cross.Tenc ? (size_t)p
              : len == (size_t)n            ? (size_t)valid_rank
                                            : len;
  return at < len ? json_string_value(json_array_get(row, at)) : NULL;
}

am_status am_cross_report_fault(am_ctx_t *ctx, const am_shard_t *sh, int L, int64_t example,
                                const int32_t *dec_idx, int n_dec, const int32_t *enc_idx,
                                int n_enc, const am_cross_fault_t *f) {
  const am_layers_t *sets[4] = {&sh->att, &sh->grad, &sh->cross.att, &sh->cross.grad};
  int in =
      f->input >= AM_CROSS_IN_ATTENTIONS && f->input <= AM_CROSS_IN_CROSS_ATTENTION_GRADS
          ? (int)f->input
          : 0;
  const am_layers_t *ls = sets[in];
  int l = f->f.layer >= 0 && f->f.layer < L ? f->f.layer : 0;
  const am_source_t *src = ls->layer ? &ls->source[l] : NULL;
  char name[64] = "?", step[32] = "";
  int stepped = f->step >= 0 && (in == AM_CROSS_IN_ATTENTION_GRADS ||
                                 in == AM_CROSS_IN_CROSS_ATTENTION_GRADS);
  if (stepped && in == AM_CROSS_IN_CROSS_ATTENTION_GRADS && sh->cross.step_grad.layer)
    src = &sh->cross.step_grad.source[l];
  else if (stepped) { /* the decoder's own per-step gradients: named by the role */
    snprintf(name, sizeof name, "step_attention_grads.%d", l);
    src = NULL;
  }
  if (stepped)
    snprintf(step, sizeof step, ", step %d", f->step);
  int row = f->f.row >= 0 && f->f.row < n_dec ? dec_idx[f->f.row] : f->f.row;
  int cross = in >= AM_CROSS_IN_CROSS_ATTENTIONS;
  char key[64] = "";
  if (f->key >= 0 && f->key < (cross ? n_enc : n_dec))
    snprintf(key, sizeof key, ", %s position %d", cross ? "source" : "key",
             cross ? enc_idx[f->key] : dec_idx[f->key]);
  return am_fail(
      ctx, AM_STATUS_BAD_INPUT,
      "%s: tensor %s: example %lld%s, layer %d, head %d, decoder position %d%s: %s "
      "(value %g)",
      src ? src->path : sh->path, src ? src->name : name, (long long)example, step,
      f->f.layer, f->f.head, row, key,
      f->f.kind == AM_FAULT_ATT_ROW_SUM && cross
          ? "cross-attention row does not sum to 1 over the valid source tokens"
          : am_fault_text(f->f.kind),
      f->f.value);
}
