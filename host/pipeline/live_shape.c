/* live_shape.c — see live_shape.h. */
#include "pipeline/live_shape.h"

#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"

void am_live_shape_free(am_live_shape_t *s) {
  for (int i = 0; s->saliency && i < s->nsaliency; i++)
    free(s->saliency[i]);
  free(s->saliency);
  memset(s, 0, sizeof *s);
}

static int copy_names(am_live_shape_t *s, const char *const *names, int n) {
  s->saliency = calloc((size_t)n + 1, sizeof *s->saliency);
  for (int i = 0; s->saliency && i < n; i++)
    if (!(s->saliency[i] = strdup(names[i])))
      return -1;
  s->nsaliency = n;
  return s->saliency ? 0 : -1;
}

am_status am_live_shape_of(am_ctx_t *ctx, const am_arrays_ds_t *a, am_live_shape_t *s) {
  memset(s, 0, sizeof *s);
  *s = (am_live_shape_t){.L = a->ds.L,
                         .H = a->ds.H,
                         .dtype = a->ds.dtype,
                         .roles = a->ds.roles,
                         .embed_dim = a->ds.embed_dim,
                         .long_form = a->ds.long_form};
  if (s->long_form) {
    s->Hkv = a->sh.lc.Hkv;
    s->d = a->sh.lc.d;
    s->attn = a->sh.lc.attn;
  }
  if (copy_names(s, (const char *const *)a->ds.saliency_names, a->ds.nsaliency) != 0) {
    am_live_shape_free(s);
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  }
  return AM_STATUS_OK;
}

/* The long-context form's own fields: the form, Hkv, d and the attention's settings. */
static am_status check_form(am_ctx_t *ctx, const am_live_shape_t *run,
                            const am_live_shape_t *b, const char *lb) {
  const am_attention_spec_t *a = &b->attn, *r = &run->attn;
  if (b->long_form != run->long_form)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: this batch holds the %s form but the run's first batch "
                   "the %s form",
                   lb, b->long_form ? "queries" : "attentions",
                   b->long_form ? "long-context" : "matrix",
                   run->long_form ? "long-context" : "matrix");
  if (b->long_form && (b->Hkv != run->Hkv || b->d != run->d))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor keys.0: %d key/value heads of dimension %d, but the run's "
                   "first batch has %d of %d",
                   lb, b->Hkv, b->d, run->Hkv, run->d);
  if (b->long_form && (a->scale != r->scale || a->causal != r->causal ||
                       a->sliding_window != r->sliding_window || a->softcap != r->softcap))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: attnmap.attention: differs from the run's first batch's (scale %g, "
                   "causal %d, sliding_window %d, softcap %g here; %g, %d, %d, %g there)",
                   lb, a->scale, a->causal, a->sliding_window, a->softcap, r->scale,
                   r->causal, r->sliding_window, r->softcap);
  return AM_STATUS_OK;
}

am_status am_live_shape_check(am_ctx_t *ctx, const am_live_shape_t *run,
                              const am_live_shape_t *b, const char *lb) {
  const char *att = b->long_form ? "queries" : "attentions";
  am_status st = check_form(ctx, run, b, lb);
  if (st != AM_STATUS_OK)
    return st;
  if (b->L != run->L || b->H != run->H)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: %d layers x %d heads, but the run's first batch "
                   "has %d x %d",
                   lb, att, b->L, b->H, run->L, run->H);
  if (b->dtype != run->dtype)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: dtype %s, but the run's first batch is %s", lb, att,
                   am_dtype_name(b->dtype), am_dtype_name(run->dtype));
  unsigned diff = b->roles ^ run->roles;
  if (diff) {
    unsigned bit = diff & -diff;
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: %s here but %s in the run's first batch", lb,
                   am_role_name(bit), (b->roles & bit) ? "present" : "missing",
                   (b->roles & bit) ? "missing" : "present");
  }
  for (int i = 0; i < run->nsaliency || i < b->nsaliency; i++)
    if (i >= run->nsaliency || i >= b->nsaliency ||
        strcmp(run->saliency[i], b->saliency[i]))
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor saliency.%s: the saliency maps of a batch must be the "
                     "run's first batch's, named alike in the same order",
                     lb, i < b->nsaliency ? b->saliency[i] : run->saliency[i]);
  if (b->embed_dim != run->embed_dim)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor inputs_embeds: D=%d differs from the run's first batch's %d",
                   lb, b->embed_dim, run->embed_dim);
  return AM_STATUS_OK;
}

json_t *am_live_shape_json(const am_live_shape_t *s) {
  json_t *names = json_array();
  for (int i = 0; i < s->nsaliency; i++)
    json_array_append_new(names, json_string(s->saliency[i]));
  json_t *j = json_pack("{s:i,s:i,s:s,s:I,s:i,s:o}", "layers", s->L, "heads", s->H, "dtype",
                        am_dtype_name(s->dtype), "roles", (json_int_t)s->roles, "embed_dim",
                        s->embed_dim, "saliency", names);
  if (j && s->long_form) /* the matrix form's record is as it always was */
    json_object_set_new(
        j, "long",
        json_pack("{s:i,s:i,s:f,s:b,s:i,s:f}", "kv_heads", s->Hkv, "head_dim", s->d,
                  "scale", s->attn.scale, "causal", s->attn.causal, "sliding_window",
                  s->attn.sliding_window, "softcap", s->attn.softcap));
  return j;
}

/* The "long" record of am_live_shape_json; 0 when absent (matrix form) or sound. */
static int parse_long(const json_t *j, am_live_shape_t *s) {
  if (!j)
    return 0;
  json_int_t Hkv = 0, d = 0, w = -1;
  double scale = 0, cap = -1;
  int causal = 0;
  if (json_unpack((json_t *)j, "{s:I,s:I,s:F,s:b,s:I,s:F}", "kv_heads", &Hkv, "head_dim",
                  &d, "scale", &scale, "causal", &causal, "sliding_window", &w, "softcap",
                  &cap) != 0 ||
      Hkv < 1 || Hkv > 4096 || d < 1 || d > 65536 || !(scale > 0) || w < 0 ||
      w > (1 << 30) || !(cap >= 0))
    return -1;
  s->long_form = 1;
  s->Hkv = (int)Hkv;
  s->d = (int)d;
  s->attn = (am_attention_spec_t){scale, causal, (int)w, cap};
  return 0;
}

int am_live_shape_parse(const json_t *j, am_live_shape_t *s) {
  memset(s, 0, sizeof *s);
  json_int_t L = 0, H = 0, roles = 0, D = 0;
  const char *dtype = NULL;
  json_t *names = NULL;
  if (json_unpack((json_t *)j, "{s:I,s:I,s:s,s:I,s:I,s:o}", "layers", &L, "heads", &H,
                  "dtype", &dtype, "roles", &roles, "embed_dim", &D, "saliency",
                  &names) != 0 ||
      L < 1 || L > 4096 || H < 1 || H > 4096 || D < 0 || D > (1 << 20) || roles < 0 ||
      roles > 0xFFFF || !json_is_array(names) || json_array_size(names) > 64)
    return -1;
  s->L = (int)L;
  s->H = (int)H;
  s->roles = (unsigned)roles;
  s->embed_dim = (int)D;
  s->dtype = AM_DTYPE_COUNT;
  for (int t = 0; t < AM_DTYPE_COUNT; t++)
    if (strcmp(am_dtype_name((am_dtype)t), dtype) == 0)
      s->dtype = (am_dtype)t;
  const char *list[64];
  size_t n = json_array_size(names);
  for (size_t i = 0; i < n; i++)
    if (!(list[i] = json_string_value(json_array_get(names, i))))
      return -1;
  if (s->dtype == AM_DTYPE_COUNT || parse_long(json_object_get(j, "long"), s) != 0 ||
      copy_names(s, list, (int)n) != 0) {
    am_live_shape_free(s);
    return -1;
  }
  return 0;
}
