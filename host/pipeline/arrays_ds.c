/* arrays_ds.c — see arrays_ds.h: the checks of arrays in memory and their views. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/half.h"
#include "ops/backend.h"
#include "pipeline/arrays_ds.h"

#define AM_ARRAYS_MAX_DIM (1 << 24)

static int is_float(am_dtype t) {
  return t == AM_DTYPE_F32 || t == AM_DTYPE_F16 || t == AM_DTYPE_BF16 || t == AM_DTYPE_F64;
}

static int is_int(am_dtype t) {
  return t == AM_DTYPE_BOOL || (t >= AM_DTYPE_I8 && t <= AM_DTYPE_U64);
}

am_tensor_t am_arrays_view(am_dtype dtype, const void *data, int ndim, int64_t d0, int64_t d1,
                           int64_t d2, int64_t d3) {
  am_tensor_t t = {.dtype = dtype, .ndim = ndim, .data = data};
  int64_t dims[4] = {d0, d1, d2, d3};
  size_t n = 1;
  for (int i = 0; i < ndim; i++) {
    t.shape[i] = dims[i];
    n *= (size_t)dims[i];
  }
  t.nbytes = n * am_dtype_size(dtype);
  return t;
}

/* Sizes small enough that B*H*T*T*8 and B*T*D*8 cannot overflow size_t. */
static am_status check_shape(am_ctx_t *ctx, const am_arrays_t *in, const char *lb) {
  if (in->layers < 1 || in->heads < 1 || in->tokens < 1 || in->batch < 0 ||
      in->layers > 4096 || in->heads > 4096 || in->tokens > 65536 ||
      in->batch > AM_ARRAYS_MAX_DIM || in->embed_dim < 0 || in->embed_dim > 1 << 20)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: shape L=%d, B=%d, H=%d, T=%d, D=%d is out of range", lb, in->layers,
                   in->batch, in->heads, in->tokens, in->embed_dim);
  double bytes = (double)in->batch * in->heads * in->tokens * (double)in->tokens * 8.0;
  double ebytes = (double)in->batch * in->tokens * (double)in->embed_dim * 8.0;
  if (ebytes > (double)(SIZE_MAX / 4) || (!in->queries && bytes > (double)(SIZE_MAX / 4)))
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "%s: too large", lb);
  if (in->queries)
    return am_arrays_long_check(ctx, in, lb);
  if (!is_float(in->dtype))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: attentions: dtype %s, expected F32, F16, BF16 or F64", lb,
                   am_dtype_name(in->dtype) ? am_dtype_name(in->dtype) : "unknown");
  if (!in->attentions)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "%s: attentions missing", lb);
  for (int l = 0; l < in->layers; l++)
    if (!in->attentions[l] || (in->attention_grads && !in->attention_grads[l]))
      return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "%s: %s of layer %d missing", lb,
                     in->attentions[l] ? "attention_grads" : "attentions", l);
  return AM_STATUS_OK;
}

/* A [B,T] 0/1 mask: an integer type holding only 0 and 1, as a dataset's masks must. */
static am_status check_mask(am_ctx_t *ctx, const am_arrays_t *in, const void *data,
                            am_dtype dtype, const char *name, const char *lb) {
  if (!data)
    return AM_STATUS_OK;
  if (!is_int(dtype))
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: %s: dtype %s, expected an integer", lb,
                   name, am_dtype_name(dtype) ? am_dtype_name(dtype) : "unknown");
  int64_t n = (int64_t)in->batch * in->tokens;
  for (int64_t i = 0; i < n; i++) {
    int64_t v = am_load_int(data, dtype, i);
    if (v != 0 && v != 1)
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: %s: example %lld, position %lld: value %lld is not 0 or 1", lb,
                     name, (long long)(i / in->tokens), (long long)(i % in->tokens),
                     (long long)v);
  }
  return AM_STATUS_OK;
}

static am_status check_extras(am_ctx_t *ctx, const am_arrays_t *in, const char *lb) {
  am_status st = check_mask(ctx, in, in->attention_mask, in->attention_mask_dtype,
                            "attention_mask", lb);
  if (st == AM_STATUS_OK)
    st = check_mask(ctx, in, in->special_tokens_mask, in->special_tokens_mask_dtype,
                    "special_tokens_mask", lb);
  if (st != AM_STATUS_OK)
    return st;
  if (in->saliency_count < 0 || in->saliency_count > AM_MAX_MAPS - 8 ||
      (in->saliency_count > 0 &&
       (!in->saliency || !in->saliency_names || !is_float(in->saliency_dtype))))
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: saliency: expected up to %d float [B,T] arrays with names", lb,
                   AM_MAX_MAPS - 8);
  for (int i = 0; i < in->saliency_count; i++) {
    const char *nm = in->saliency_names[i];
    if (!in->saliency[i] || !nm || !*nm || strlen(nm) > 60 || strpbrk(nm, "~,"))
      return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                     "%s: saliency %d: missing, or its name is empty, longer than 60 "
                     "bytes or holds '~' or ','",
                     lb, i);
    for (int j = 0; j < i; j++)
      if (strcmp(nm, in->saliency_names[j]) == 0)
        return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                       "%s: saliency name '%s' given twice", lb, nm);
  }
  if (in->embed_dim > 0 &&
      (!in->inputs_embeds || !in->inputs_embeds_grads || !is_float(in->embeds_dtype)))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: inputs_embeds and inputs_embeds_grads: both needed, of a float "
                   "dtype, with embed_dim > 0",
                   lb);
  return AM_STATUS_OK;
}

static am_status check_device(am_ctx_t *ctx, const am_arrays_t *in, const char *lb) {
  if (!in->device_pointers)
    return AM_STATUS_OK;
  if (!ctx->backend || strcmp(ctx->backend->name, "cuda") != 0)
    return am_fail(ctx, AM_STATUS_UNSUPPORTED,
                   "%s: device pointers need the cuda backend (this context uses %s); "
                   "attnmap does not copy device memory to the host behind your back",
                   lb, ctx->backend ? ctx->backend->name : "no backend");
  return AM_STATUS_OK;
}

void am_arrays_ds_free(am_arrays_ds_t *a) {
  if (!a)
    return;
  free(a->views);
  free(a->layers);
  free(a->sources);
  free(a->names);
  free(a->saliency);
  free(a->saliency_ptrs);
  free(a->ds.saliency_names);
  json_decref(a->sh.tokens);
  free(a);
}

static void bind_layers(am_arrays_ds_t *a, const am_arrays_t *in, int grads) {
  int L = in->layers, B = in->batch, H = in->heads, T = in->tokens;
  const void *const *src = grads ? in->attention_grads : in->attentions;
  am_layers_t *ls = grads ? &a->sh.grad : &a->sh.att;
  for (int l = 0; l < L; l++) {
    int k = grads * L + l;
    a->views[k] = am_arrays_view(in->dtype, src[l], 4, B, H, T, T);
    a->layers[k] = &a->views[k];
    snprintf(a->names[k], sizeof a->names[k], "%s.%d",
             grads ? "attention_grads" : "attentions", l);
    a->sources[k] = (am_source_t){a->path, a->names[k]};
  }
  ls->layer = a->layers + (size_t)grads * (size_t)L;
  ls->source = a->sources + (size_t)grads * (size_t)L;
  ls->stacked = 0;
}

static void bind_extras(am_arrays_ds_t *a, const am_arrays_t *in) {
  am_shard_t *sh = &a->sh;
  am_dataset_t *ds = &a->ds;
  int B = in->batch, T = in->tokens;
  if (in->attention_mask) {
    a->mask = am_arrays_view(in->attention_mask_dtype, in->attention_mask, 2, B, T, 0, 0);
    sh->mask = &a->mask;
    sh->mask_src = (am_source_t){a->path, "attention_mask"};
    ds->roles |= AM_ROLE_ATTENTION_MASK;
  }
  if (in->special_tokens_mask) {
    a->special =
        am_arrays_view(in->special_tokens_mask_dtype, in->special_tokens_mask, 2, B, T, 0, 0);
    sh->special = &a->special;
    sh->special_src = (am_source_t){a->path, "special_tokens_mask"};
    ds->roles |= AM_ROLE_SPECIAL_TOKENS_MASK;
  }
  for (int i = 0; i < in->saliency_count; i++) {
    int k = a->nviews + i;
    a->saliency[i] = am_arrays_view(in->saliency_dtype, in->saliency[i], 2, B, T, 0, 0);
    a->saliency_ptrs[i] = &a->saliency[i];
    snprintf(a->names[k], sizeof a->names[k], "saliency.%s", in->saliency_names[i]);
    a->sources[k] = (am_source_t){a->path, a->names[k]};
    ds->saliency_names[i] = (char *)in->saliency_names[i]; /* borrowed, never freed */
  }
  sh->saliency = a->saliency_ptrs;
  sh->saliency_src = a->sources + (size_t)a->nviews;
  ds->nsaliency = in->saliency_count;
  ds->roles |= in->saliency_count > 0 ? AM_ROLE_SALIENCY : 0;
  if (in->embed_dim > 0) {
    a->embeds = am_arrays_view(in->embeds_dtype, in->inputs_embeds, 3, B, T, in->embed_dim, 0);
    a->embeds_grads =
        am_arrays_view(in->embeds_dtype, in->inputs_embeds_grads, 3, B, T, in->embed_dim, 0);
    sh->embeds = &a->embeds;
    sh->embeds_grads = &a->embeds_grads;
    sh->embeds_src = (am_source_t){a->path, "inputs_embeds"};
    ds->embed_dim = in->embed_dim;
    ds->roles |= AM_ROLE_EMBEDS;
  }
}

am_status am_arrays_ds_make(am_ctx_t *ctx, const am_arrays_t *in, const char *lb,
                            const char *path, am_arrays_ds_t **out) {
  *out = NULL;
  if (!in)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "%s: NULL", lb);
  am_status st = check_shape(ctx, in, lb);
  if (st == AM_STATUS_OK)
    st = check_extras(ctx, in, lb);
  if (st == AM_STATUS_OK)
    st = check_device(ctx, in, lb);
  if (st != AM_STATUS_OK)
    return st;
  size_t S = (size_t)in->saliency_count;
  size_t V = (size_t)in->layers * (in->queries ? 4 : 2); /* the layers' views */
  am_arrays_ds_t *a = calloc(1, sizeof *a);
  if (a) {
    a->nviews = (int)V;
    a->views = calloc(V, sizeof *a->views);
    a->layers = calloc(V, sizeof *a->layers);
    a->sources = calloc(V + S, sizeof *a->sources);
    a->names = calloc(V + S, sizeof *a->names);
    a->saliency = calloc(S + 1, sizeof *a->saliency);
    a->saliency_ptrs = calloc(S + 1, sizeof *a->saliency_ptrs);
    a->ds.saliency_names = calloc(S + 1, sizeof *a->ds.saliency_names);
  }
  if (!a || !a->views || !a->layers || !a->sources || !a->names || !a->saliency ||
      !a->saliency_ptrs || !a->ds.saliency_names) {
    am_arrays_ds_free(a);
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  }
  snprintf(a->path, sizeof a->path, "%s", path);
  am_dataset_t *ds = &a->ds;
  am_shard_t *sh = &a->sh;
  *sh = (am_shard_t){.path = a->path, .B = in->batch, .T = in->tokens};
  if (in->queries) {
    am_arrays_long_bind(a, in);
  } else {
    bind_layers(a, in, 0);
    ds->roles = AM_ROLE_ATTENTIONS;
  }
  if (!in->queries && in->attention_grads) {
    bind_layers(a, in, 1);
    ds->roles |= AM_ROLE_ATTENTION_GRADS;
  }
  bind_extras(a, in);
  ds->shards = sh;
  ds->nshards = 1;
  ds->N = in->batch;
  ds->L = in->layers;
  ds->H = in->heads;
  ds->Tmax = in->tokens;
  ds->dtype = in->dtype;
  if (in->grid) {
    snprintf(a->grid, sizeof a->grid, "%s", in->grid);
    if (strlen(in->grid) >= sizeof a->grid || am_grid_parse(a->grid, &ds->grid_parsed)) {
      am_arrays_ds_free(a);
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: grid '%.63s': expected ROWSxCOLS or ROWSxCOLS+PREFIX", lb,
                     in->grid);
    }
    ds->grid = a->grid;
  }
  *out = a;
  return AM_STATUS_OK;
}
