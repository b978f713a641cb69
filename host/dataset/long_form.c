/* long_form.c — the long-context form of a shard (docs/design.md §2, docs/long-context.md):
 * queries.{l} [B,H,T,d], keys.{l} and values.{l} [B,Hkv,T,d] with H a multiple of Hkv,
 * optionally attention_output_grads.{l} [B,H,T,d], all F32, F16 or BF16 alike, and the
 * attention's settings in __metadata__ attnmap.attention. Shapes and settings are checked
 * here; the values (finite) as the pass reads them. Every failure names file, tensor and
 * problem. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/ctx.h"
#include "dataset/dataset.h"
#include "dataset/shard.h"
#include "io/file.h"

/* Checks every layer of ls against [B, heads, T, d] and dtype (heads, B, T, d < 0: taken
 * from the first layer seen); what: the expected shape in words. */
static am_status check_set(am_ctx_t *ctx, const am_layers_t *ls, int L, const char *what,
                           int64_t want[4], am_dtype *dtype) {
  char found[128];
  for (int l = 0; l < L; l++) {
    const am_tensor_t *t = ls->layer[l];
    const am_source_t *src = &ls->source[l];
    am_shape_text(t, found, sizeof found);
    if (ls->stacked || t->ndim != 4)
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor %s: expected %s per layer, found %s", src->path, src->name,
                     what, found);
    if (t->dtype != AM_DTYPE_F32 && t->dtype != AM_DTYPE_F16 && t->dtype != AM_DTYPE_BF16)
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor %s: dtype %s is not F32, F16 or BF16", src->path,
                     src->name, am_dtype_name(t->dtype));
    if ((int)*dtype < 0)
      *dtype = t->dtype;
    for (int k = 0; k < 4; k++)
      if (want[k] < 0)
        want[k] = t->shape[k];
    if (t->dtype != *dtype || t->shape[0] != want[0] || t->shape[1] != want[1] ||
        t->shape[2] != want[2] || t->shape[3] != want[3])
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor %s: %s %s does not match the queries' %s [%lld,%lld,%lld,"
                     "%lld] (expected %s)",
                     src->path, src->name, found, am_dtype_name(t->dtype),
                     am_dtype_name(*dtype), (long long)want[0], (long long)want[1],
                     (long long)want[2], (long long)want[3], what);
  }
  return AM_STATUS_OK;
}

/* One role: collected, then checked; *present = 0 when the shard has none of it. */
static am_status find_set(am_ctx_t *ctx, am_shard_t *sh, const char *role, am_layers_t *ls,
                          int Lq, const char *what, int64_t want[4], am_dtype *dtype,
                          int required) {
  int L = 0;
  am_status st = am_shard_collect_layers(ctx, sh, role, ls, &L);
  if (st != AM_STATUS_OK)
    return st;
  if (L == 0 && !required)
    return AM_STATUS_OK;
  if (L != Lq)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s.N: %d layers, but queries has %d (the long-context form "
                   "needs queries, keys and values of every layer)",
                   sh->path, role, L, Lq);
  return check_set(ctx, ls, L, what, want, dtype);
}

static am_status bad_attention(am_ctx_t *ctx, const char *path, const char *why) {
  return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: __metadata__ attnmap.attention: %s", path,
                 why);
}

/* {"scale": s, "causal": b, "sliding_window": w|null, "softcap": c|null}; every key
 * optional, no other key. */
static am_status parse_attention(am_ctx_t *ctx, const char *path, const char *text,
                                 am_attention_spec_t *a) {
  json_error_t err;
  json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &err), *v;
  const char *key;
  am_status st = AM_STATUS_OK;
  if (!json_is_object(root)) {
    json_decref(root);
    return bad_attention(ctx, path, "not a JSON object");
  }
  json_object_foreach(root, key, v) {
    int is_null = json_is_null(v);
    if (!strcmp(key, "scale") && json_is_number(v) && isfinite(json_number_value(v)) &&
        json_number_value(v) > 0)
      a->scale = json_number_value(v);
    else if (!strcmp(key, "causal") && json_is_boolean(v))
      a->causal = json_is_true(v);
    else if (!strcmp(key, "sliding_window") &&
             (is_null || (json_is_integer(v) && json_integer_value(v) >= 1 &&
                          json_integer_value(v) <= (1 << 30))))
      a->sliding_window = is_null ? 0 : (int)json_integer_value(v);
    else if (!strcmp(key, "softcap") &&
             (is_null || (json_is_number(v) && isfinite(json_number_value(v)) &&
                          json_number_value(v) > 0)))
      a->softcap = is_null ? 0.0 : json_number_value(v);
    else {
      char why[256];
      snprintf(
          why, sizeof why,
          "key '%.64s' is not one of scale (> 0), causal (true/false), sliding_window "
          "(integer >= 1 or null), softcap (> 0 or null), or its value is out of range",
          key);
      st = bad_attention(ctx, path, why);
      break;
    }
  }
  json_decref(root);
  return st;
}

am_status am_shard_find_long(am_ctx_t *ctx, am_shard_t *sh, int Lq, int *L, int *H) {
  int64_t q[4] = {-1, -1, -1, -1};
  am_dtype dtype = (am_dtype)-1;
  am_long_layers_t *lc = &sh->lc;
  am_status st = check_set(ctx, &lc->q, Lq, "[B,H,T,d]", q, &dtype);
  if (st != AM_STATUS_OK)
    return st;
  const am_source_t *src = &lc->q.source[0];
  if (q[1] < 1 || q[3] < 1 || q[3] > 65536 || q[2] > (1 << 24) || (q[0] > 0 && q[2] < 1) ||
      (int64_t)Lq * q[1] > AM_MAX_LAYER_HEADS)
    return am_fail(
        ctx, AM_STATUS_BAD_INPUT,
        "%s: tensor %s: %d layers of [%lld,%lld,%lld,%lld]: needs H >= 1, T >= 1, "
        "1 <= d <= 65536, T <= 2^24 and at most %d heads in all",
        src->path, src->name, Lq, (long long)q[0], (long long)q[1], (long long)q[2],
        (long long)q[3], AM_MAX_LAYER_HEADS);
  int64_t kv[4] = {q[0], -1, q[2], q[3]}, qo[4] = {q[0], q[1], q[2], q[3]};
  if ((st = find_set(ctx, sh, "keys", &lc->k, Lq, "[B,Hkv,T,d]", kv, &dtype, 1)) ||
      (st = find_set(ctx, sh, "values", &lc->v, Lq, "[B,Hkv,T,d]", kv, &dtype, 1)) ||
      (st = find_set(ctx, sh, "attention_output_grads", &lc->dout, Lq, "[B,H,T,d]", qo,
                     &dtype, 0)))
    return st;
  if (kv[1] < 1 || q[1] % kv[1])
    return am_fail(
        ctx, AM_STATUS_BAD_INPUT,
        "%s: tensor %s: %lld key/value heads do not divide the queries' %lld heads "
        "(grouped-query attention needs H a multiple of Hkv)",
        lc->k.source[0].path, lc->k.source[0].name, (long long)kv[1], (long long)q[1]);
  lc->Hkv = (int)kv[1];
  lc->d = (int)q[3];
  lc->attn = (am_attention_spec_t){.scale = 1.0 / sqrt((double)q[3])};
  for (int f = 0; f < sh->nfiles; f++) {
    const char *text = am_file_metadata(sh->files[f], "attnmap.attention");
    if (text && (st = parse_attention(ctx, am_file_path(sh->files[f]), text, &lc->attn)))
      return st;
  }
  sh->long_form = 1;
  sh->B = q[0];
  sh->T = (int)q[2];
  *L = Lq;
  *H = (int)q[1];
  return AM_STATUS_OK;
}

am_status am_long_same_as_first(am_ctx_t *ctx, const am_dataset_t *ds,
                                const am_shard_t *sh) {
  const am_shard_t *s0 = &ds->shards[0];
  const am_attention_spec_t *a = &sh->lc.attn, *a0 = &s0->lc.attn;
  if (sh->long_form != s0->long_form)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: this shard holds the %s form but %s holds the %s form",
                   sh->path, sh->long_form ? "queries" : "attentions",
                   sh->long_form ? "long-context" : "matrix", s0->path,
                   s0->long_form ? "long-context" : "matrix");
  if (!sh->long_form)
    return AM_STATUS_OK;
  if (sh->lc.Hkv != s0->lc.Hkv || sh->lc.d != s0->lc.d)
    return am_fail(
        ctx, AM_STATUS_BAD_INPUT,
        "%s: tensor keys.0: %d key/value heads of dimension %d, but %s has %d of %d",
        sh->path, sh->lc.Hkv, sh->lc.d, s0->path, s0->lc.Hkv, s0->lc.d);
  if (a->scale != a0->scale || a->causal != a0->causal ||
      a->sliding_window != a0->sliding_window || a->softcap != a0->softcap)
    return am_fail(
        ctx, AM_STATUS_BAD_INPUT,
        "%s: __metadata__ attnmap.attention: differs from %s's (scale %g, causal "
        "%d, sliding_window %d, softcap %g here; %g, %d, %d, %g there)",
        sh->path, s0->path, a->scale, a->causal, a->sliding_window, a->softcap, a0->scale,
        a0->causal, a0->sliding_window, a0->softcap);
  return AM_STATUS_OK;
}

int am_dataset_long_form(const am_dataset_t *ds, am_long_form_info_t *info) {
  if (!ds || !ds->long_form || ds->nshards < 1)
    return 0;
  const am_long_layers_t *lc = &ds->shards[0].lc; /* the same in every shard (checked) */
  if (info)
    *info = (am_long_form_info_t){.heads = ds->H,
                                  .kv_heads = lc->Hkv,
                                  .head_dim = lc->d,
                                  .scale = lc->attn.scale,
                                  .causal = lc->attn.causal,
                                  .sliding_window = lc->attn.sliding_window,
                                  .softcap = lc->attn.softcap,
                                  .output_grads = lc->dout.layer != NULL};
  return 1;
}
