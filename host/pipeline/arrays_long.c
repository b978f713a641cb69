/* arrays_long.c — arrays in memory in the long-context form (am_arrays_t.queries;
 * docs/long-context.md): the checks a shard's long form gets in long_form.c (every layer
 * present, H a multiple of Hkv, one float dtype, the attention's settings in range), each
 * failure one line naming the batch and the tensor, and the views that make the batch a
 * shard whose lc the chunk code reads. Values are checked finite by the pass, as for a
 * shard. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/ctx.h"
#include "dataset/shard.h"
#include "pipeline/arrays_ds.h"

static const char *const ROLES[4] = {"queries", "keys", "values", "attention_output_grads"};

static const void *const *role_ptrs(const am_arrays_t *in, int r) {
  const void *const *p[4] = {in->queries, in->keys, in->values, in->attention_output_grads};
  return p[r];
}

static am_status check_settings(am_ctx_t *ctx, const am_arrays_t *in, const char *lb) {
  if (!isfinite(in->attn_scale) || in->attn_scale < 0 || (in->attn_causal & ~1) ||
      in->attn_sliding_window < 0 || in->attn_sliding_window > (1 << 30) ||
      !isfinite(in->attn_softcap) || in->attn_softcap < 0)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: attnmap.attention: scale %g (> 0, or 0 for 1/sqrt(d)), causal %d (0 "
                   "or 1), sliding_window %d (>= 0), softcap %g (>= 0): out of range",
                   lb, in->attn_scale, in->attn_causal, in->attn_sliding_window,
                   in->attn_softcap);
  return AM_STATUS_OK;
}

am_status am_arrays_long_check(am_ctx_t *ctx, const am_arrays_t *in, const char *lb) {
  if (in->attentions || in->attention_grads)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: both attentions and queries given: a batch holds the matrix form or "
                   "the long-context form, not both",
                   lb);
  if (in->dtype != AM_DTYPE_F32 && in->dtype != AM_DTYPE_F16 && in->dtype != AM_DTYPE_BF16)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: queries: dtype %s, expected F32, F16 or BF16", lb,
                   am_dtype_name(in->dtype) ? am_dtype_name(in->dtype) : "unknown");
  if (in->head_dim < 1 || in->head_dim > 65536 || in->kv_heads < 1 ||
      (int64_t)in->layers * in->heads > AM_MAX_LAYER_HEADS)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: queries: L=%d, H=%d, Hkv=%d, d=%d: needs Hkv >= 1, 1 <= d <= 65536 "
                   "and at most %d heads in all",
                   lb, in->layers, in->heads, in->kv_heads, in->head_dim, AM_MAX_LAYER_HEADS);
  if (in->heads % in->kv_heads)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: keys: %d key/value heads do not divide the queries' %d heads "
                   "(grouped-query attention needs H a multiple of Hkv)",
                   lb, in->kv_heads, in->heads);
  double bytes = (double)in->batch * in->heads * in->tokens * (double)in->head_dim * 8.0;
  if (bytes > (double)(SIZE_MAX / 4))
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "%s: too large", lb);
  for (int r = 0; r < 4; r++) {
    const void *const *p = role_ptrs(in, r);
    if (!p && r < 3)
      return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                     "%s: %s missing (the long-context form needs queries, keys and values "
                     "of every layer)",
                     lb, ROLES[r]);
    for (int l = 0; p && l < in->layers; l++)
      if (!p[l])
        return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "%s: %s of layer %d missing", lb,
                       ROLES[r], l);
  }
  return check_settings(ctx, in, lb);
}

void am_arrays_long_bind(am_arrays_ds_t *a, const am_arrays_t *in) {
  int L = in->layers, B = in->batch, T = in->tokens, d = in->head_dim;
  am_long_layers_t *lc = &a->sh.lc;
  am_layers_t *sets[4] = {&lc->q, &lc->k, &lc->v, &lc->dout};
  for (int r = 0; r < 4; r++) {
    const void *const *src = role_ptrs(in, r);
    if (!src)
      continue;
    int heads = r == 1 || r == 2 ? in->kv_heads : in->heads;
    for (int l = 0; l < L; l++) {
      int k = r * L + l;
      a->views[k] = am_arrays_view(in->dtype, src[l], 4, B, heads, T, d);
      a->layers[k] = &a->views[k];
      snprintf(a->names[k], sizeof a->names[k], "%s.%d", ROLES[r], l);
      a->sources[k] = (am_source_t){a->path, a->names[k]};
    }
    sets[r]->layer = a->layers + (size_t)r * (size_t)L;
    sets[r]->source = a->sources + (size_t)r * (size_t)L;
    sets[r]->stacked = 0;
  }
  lc->Hkv = in->kv_heads;
  lc->d = d;
  lc->attn = (am_attention_spec_t){
      .scale = in->attn_scale > 0 ? in->attn_scale : 1.0 / sqrt((double)d),
      .causal = in->attn_causal,
      .sliding_window = in->attn_sliding_window,
      .softcap = in->attn_softcap};
  a->sh.long_form = 1;
  a->ds.long_form = 1;
  a->ds.roles = AM_ROLE_ATTENTIONS | (in->attention_output_grads ? AM_ROLE_ATTENTION_GRADS : 0);
}
