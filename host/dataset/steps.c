/* steps.c — the dataset's tensors for several targets (docs/generation.md):
 * `generation_start` [B] (integer, 0..T: the padded position of the first generated
 * token), `step_attention_grads.{l}` [B,S_in,H,T,T] (step s's own gradient in row s) and a
 * per-step saliency `saliency.<name>` [B,S_in,T]. Every failure names file, tensor and
 * problem. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/half.h"
#include "dataset/shard.h"
#include "ops/example.h"

static int int_dtype(am_dtype d) {
  return d == AM_DTYPE_I8 || d == AM_DTYPE_I16 || d == AM_DTYPE_I32 || d == AM_DTYPE_I64 ||
         d == AM_DTYPE_U8 || d == AM_DTYPE_U16 || d == AM_DTYPE_U32 || d == AM_DTYPE_U64;
}

static am_status find_generation_start(am_ctx_t *ctx, am_shard_t *sh) {
  am_source_t src = {0};
  const am_tensor_t *t = am_shard_tensor(sh, "generation_start", &src);
  sh->gen_start = NULL;
  if (!t)
    return AM_STATUS_OK;
  char found[128];
  am_shape_text(t, found, sizeof found);
  if (t->ndim != 1 || t->shape[0] != sh->B)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor generation_start: expected shape [B]=[%lld], found %s",
                   src.path, (long long)sh->B, found);
  if (!int_dtype(t->dtype))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor generation_start: dtype %s is not an integer type", src.path,
                   am_dtype_name(t->dtype));
  for (int64_t b = 0; b < sh->B; b++) {
    int64_t v = am_load_int(t->data, t->dtype, b);
    if (v < 0 || v > sh->T)
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor generation_start: example %lld: value %lld is outside "
                     "[0,%d] (T, the padded length)",
                     src.path, (long long)b, (long long)v, sh->T);
  }
  sh->gen_start = t;
  sh->gen_start_src = src;
  return AM_STATUS_OK;
}

/* step_attention_grads.{l}: L layers of [B,S_in,H,T,T] in the attentions' dtype, beside
 * attention_grads (which head importance and the shared-gradient readers use). */
static am_status find_step_grads(am_ctx_t *ctx, am_shard_t *sh, int L, int H) {
  int Ls = 0;
  am_status st =
      am_shard_collect_layers(ctx, sh, "step_attention_grads", &sh->step_grad, &Ls);
  if (st != AM_STATUS_OK || Ls == 0)
    return st;
  const am_source_t *s0 = &sh->step_grad.source[0];
  if (sh->step_grad.stacked)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor step_attention_grads: store one tensor per layer "
                   "(step_attention_grads.{l} [B,S,H,T,T])",
                   s0->path);
  if (sh->long_form)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: per-step gradients are read in the matrix form only "
                   "(the dataset holds queries/keys/values)",
                   s0->path, s0->name);
  if (!sh->grad.layer)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: found without attention_grads (head importance reads "
                   "it; store both)",
                   s0->path, s0->name);
  if (Ls != L)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor step_attention_grads.N: %d layers, but attentions has %d",
                   s0->path, Ls, L);
  for (int l = 0; l < L; l++) {
    const am_tensor_t *t = sh->step_grad.layer[l];
    const am_source_t *src = &sh->step_grad.source[l];
    char found[128];
    am_shape_text(t, found, sizeof found);
    int64_t S = t->ndim == 5 ? t->shape[1] : -1;
    if (t->ndim != 5 || t->shape[0] != sh->B || S < 1 || S > (1 << 20) ||
        t->shape[2] != H || t->shape[3] != sh->T || t->shape[4] != sh->T ||
        (l > 0 && S != sh->step_grad_S))
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor %s: expected shape [B,S,H,T,T] with B=%lld, S >= 1 as in "
                     "layer 0, H=%d, T=%d, found %s",
                     src->path, src->name, (long long)sh->B, H, sh->T, found);
    if (t->dtype != sh->att.layer[0]->dtype)
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor %s: dtype %s differs from the attentions' %s", src->path,
                     src->name, am_dtype_name(t->dtype),
                     am_dtype_name(sh->att.layer[0]->dtype));
    sh->step_grad_S = (int)S;
  }
  return AM_STATUS_OK;
}

am_status am_shard_find_steps(am_ctx_t *ctx, am_shard_t *sh, int L, int H) {
  am_status st = find_generation_start(ctx, sh);
  return st != AM_STATUS_OK ? st : find_step_grads(ctx, sh, L, H);
}

am_status am_shard_check_step_saliency(am_ctx_t *ctx, const am_shard_t *sh,
                                       const am_tensor_t *t, const am_source_t *src,
                                       int *S_in) {
  char found[128];
  am_shape_text(t, found, sizeof found);
  if (t->ndim != 3 || t->shape[0] != sh->B || t->shape[1] < 1 || t->shape[1] > (1 << 20) ||
      t->shape[2] != sh->T)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: expected shape [B,T]=[%lld,%d] or per step [B,S,T] with "
                   "S >= 1, found %s",
                   src->path, src->name, (long long)sh->B, sh->T, found);
  if (!am_ops_float_dtype(t->dtype))
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: dtype %s is not a float type",
                   src->path, src->name, am_dtype_name(t->dtype));
  *S_in = (int)t->shape[1];
  return AM_STATUS_OK;
}

int am_shard_steps(const am_shard_t *sh, int64_t b, const am_plan_t *plan,
                   const int32_t *idx, int n, int32_t *steps) {
  int lo = 0, hi = 0;
  if (plan->target == AM_TARGET_GEN) {
    int64_t g = sh->gen_start ? am_load_int(sh->gen_start->data, sh->gen_start->dtype, b)
                              : (int64_t)sh->T;
    lo = 0;
    while (lo < n && idx[lo] < g)
      lo++;
    hi = n;
  } else { /* a slice of the n valid tokens, as Python's slice(A, B).indices(n) */
    int64_t a = (plan->target_slice & 1) ? plan->target_index : 0;
    int64_t z = (plan->target_slice & 2) ? plan->target_stop : n;
    a = a < 0 ? a + n : a;
    z = z < 0 ? z + n : z;
    lo = (int)(a < 0 ? 0 : (a > n ? n : a));
    hi = (int)(z < 0 ? 0 : (z > n ? n : z));
  }
  int k = 0;
  for (int i = lo; i < hi; i++)
    steps[k++] = i;
  return k;
}
