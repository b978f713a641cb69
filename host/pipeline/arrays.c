/* arrays.c — am_analyze_arrays: the analyses of a run on arrays the caller holds in
 * memory (python/attnmap). The arrays are dressed as a one-shard dataset of borrowed
 * views, checked as a shard is checked, and go through the same layout, chunk and backend
 * code as am_run_analyze, so that both give the same numbers for the same tensors. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/half.h"
#include "ops/backend.h"
#include "pipeline/chunk.h"

#define AM_ARRAYS_PATH "<arrays>"
#define AM_ARRAYS_MAX_DIM (1 << 24)
#define AM_ARRAYS_CHUNK_BYTES (256ull << 20)

/* The arrays seen as a dataset of one shard; every tensor is a borrowed view. */
typedef struct arrays_ds {
  am_dataset_t ds;
  am_shard_t sh;
  char path[16];
  am_tensor_t *views;         /* [2L]: attention then gradient layers */
  const am_tensor_t **layers; /* [2L] */
  am_source_t *sources;       /* [2L + saliency_count] */
  char (*names)[40];          /* [2L + saliency_count] */
  am_tensor_t mask, special, embeds, embeds_grads;
  am_tensor_t *saliency;             /* [saliency_count] */
  const am_tensor_t **saliency_ptrs; /* [saliency_count] */
  char grid[64];
} arrays_ds_t;

struct am_arrays_desc {
  am_layout_t lay;
  char metrics[AM_METRIC_COUNT][48];
};

static int is_float(am_dtype t) {
  return t == AM_DTYPE_F32 || t == AM_DTYPE_F16 || t == AM_DTYPE_BF16 || t == AM_DTYPE_F64;
}

static int is_int(am_dtype t) {
  return t == AM_DTYPE_BOOL || (t >= AM_DTYPE_I8 && t <= AM_DTYPE_U64);
}

static am_tensor_t view(am_dtype dtype, const void *data, int ndim, int64_t d0, int64_t d1,
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
static am_status check_shape(am_ctx_t *ctx, const am_arrays_t *in) {
  if (in->layers < 1 || in->heads < 1 || in->tokens < 1 || in->batch < 0 ||
      in->layers > 4096 || in->heads > 4096 || in->tokens > 65536 ||
      in->batch > AM_ARRAYS_MAX_DIM || in->embed_dim < 0 || in->embed_dim > 1 << 20)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "arrays: shape L=%d, B=%d, H=%d, T=%d, D=%d is out of range", in->layers,
                   in->batch, in->heads, in->tokens, in->embed_dim);
  double bytes = (double)in->batch * in->heads * in->tokens * (double)in->tokens * 8.0;
  double ebytes = (double)in->batch * in->tokens * (double)in->embed_dim * 8.0;
  if (bytes > (double)(SIZE_MAX / 4) || ebytes > (double)(SIZE_MAX / 4))
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "arrays: too large");
  if (!is_float(in->dtype))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "arrays: attentions: dtype %s, expected F32, F16, BF16 or F64",
                   am_dtype_name(in->dtype) ? am_dtype_name(in->dtype) : "unknown");
  if (!in->attentions)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "arrays: attentions missing");
  for (int l = 0; l < in->layers; l++)
    if (!in->attentions[l] || (in->attention_grads && !in->attention_grads[l]))
      return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "arrays: %s of layer %d missing",
                     in->attentions[l] ? "attention_grads" : "attentions", l);
  return AM_STATUS_OK;
}

/* A [B,T] 0/1 mask: an integer type holding only 0 and 1, as a dataset's masks must. */
static am_status check_mask(am_ctx_t *ctx, const am_arrays_t *in, const void *data,
                            am_dtype dtype, const char *name) {
  if (!data)
    return AM_STATUS_OK;
  if (!is_int(dtype))
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "arrays: %s: dtype %s, expected an integer",
                   name, am_dtype_name(dtype) ? am_dtype_name(dtype) : "unknown");
  int64_t n = (int64_t)in->batch * in->tokens;
  for (int64_t i = 0; i < n; i++) {
    int64_t v = am_load_int(data, dtype, i);
    if (v != 0 && v != 1)
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "arrays: %s: example %lld, position %lld: value %lld is not 0 or 1",
                     name, (long long)(i / in->tokens), (long long)(i % in->tokens),
                     (long long)v);
  }
  return AM_STATUS_OK;
}

static am_status check_extras(am_ctx_t *ctx, const am_arrays_t *in) {
  am_status st =
      check_mask(ctx, in, in->attention_mask, in->attention_mask_dtype, "attention_mask");
  if (st == AM_STATUS_OK)
    st = check_mask(ctx, in, in->special_tokens_mask, in->special_tokens_mask_dtype,
                    "special_tokens_mask");
  if (st != AM_STATUS_OK)
    return st;
  if (in->saliency_count < 0 || in->saliency_count > AM_MAX_MAPS - 8 ||
      (in->saliency_count > 0 &&
       (!in->saliency || !in->saliency_names || !is_float(in->saliency_dtype))))
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "arrays: saliency: expected up to %d float [B,T] arrays with names",
                   AM_MAX_MAPS - 8);
  for (int i = 0; i < in->saliency_count; i++) {
    const char *nm = in->saliency_names[i];
    if (!in->saliency[i] || !nm || !*nm || strlen(nm) > 60 || strpbrk(nm, "~,"))
      return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                     "arrays: saliency %d: missing, or its name is empty, longer than 60 "
                     "bytes or holds '~' or ','",
                     i);
    for (int j = 0; j < i; j++)
      if (strcmp(nm, in->saliency_names[j]) == 0)
        return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                       "arrays: saliency name '%s' given twice", nm);
  }
  if (in->embed_dim > 0 &&
      (!in->inputs_embeds || !in->inputs_embeds_grads || !is_float(in->embeds_dtype)))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "arrays: inputs_embeds and inputs_embeds_grads: both needed, of a float "
                   "dtype, with embed_dim > 0");
  return AM_STATUS_OK;
}

static am_status check_device(am_ctx_t *ctx, const am_arrays_t *in) {
  if (!in->device_pointers)
    return AM_STATUS_OK;
  if (!ctx->backend || strcmp(ctx->backend->name, "cuda") != 0)
    return am_fail(ctx, AM_STATUS_UNSUPPORTED,
                   "arrays: device pointers need the cuda backend (this context uses %s); "
                   "attnmap does not copy device memory to the host behind your back",
                   ctx->backend ? ctx->backend->name : "no backend");
  return AM_STATUS_OK;
}

static void arrays_ds_free(arrays_ds_t *a) {
  if (!a)
    return;
  free(a->views);
  free(a->layers);
  free(a->sources);
  free(a->names);
  free(a->saliency);
  free(a->saliency_ptrs);
  free(a->ds.saliency_names);
  free(a);
}

static void bind_layers(arrays_ds_t *a, const am_arrays_t *in, int grads) {
  int L = in->layers, B = in->batch, H = in->heads, T = in->tokens;
  const void *const *src = grads ? in->attention_grads : in->attentions;
  am_layers_t *ls = grads ? &a->sh.grad : &a->sh.att;
  for (int l = 0; l < L; l++) {
    int k = grads * L + l;
    a->views[k] = view(in->dtype, src[l], 4, B, H, T, T);
    a->layers[k] = &a->views[k];
    snprintf(a->names[k], sizeof a->names[k], "%s.%d",
             grads ? "attention_grads" : "attentions", l);
    a->sources[k] = (am_source_t){a->path, a->names[k]};
  }
  ls->layer = a->layers + (size_t)grads * (size_t)L;
  ls->source = a->sources + (size_t)grads * (size_t)L;
  ls->stacked = 0;
}

static void bind_extras(arrays_ds_t *a, const am_arrays_t *in) {
  am_shard_t *sh = &a->sh;
  am_dataset_t *ds = &a->ds;
  int B = in->batch, T = in->tokens, L = in->layers;
  if (in->attention_mask) {
    a->mask = view(in->attention_mask_dtype, in->attention_mask, 2, B, T, 0, 0);
    sh->mask = &a->mask;
    sh->mask_src = (am_source_t){a->path, "attention_mask"};
    ds->roles |= AM_ROLE_ATTENTION_MASK;
  }
  if (in->special_tokens_mask) {
    a->special =
        view(in->special_tokens_mask_dtype, in->special_tokens_mask, 2, B, T, 0, 0);
    sh->special = &a->special;
    sh->special_src = (am_source_t){a->path, "special_tokens_mask"};
    ds->roles |= AM_ROLE_SPECIAL_TOKENS_MASK;
  }
  for (int i = 0; i < in->saliency_count; i++) {
    int k = 2 * L + i;
    a->saliency[i] = view(in->saliency_dtype, in->saliency[i], 2, B, T, 0, 0);
    a->saliency_ptrs[i] = &a->saliency[i];
    snprintf(a->names[k], sizeof a->names[k], "saliency.%s", in->saliency_names[i]);
    a->sources[k] = (am_source_t){a->path, a->names[k]};
    ds->saliency_names[i] = (char *)in->saliency_names[i]; /* borrowed, never freed */
  }
  sh->saliency = a->saliency_ptrs;
  sh->saliency_src = a->sources + 2 * (size_t)L;
  ds->nsaliency = in->saliency_count;
  ds->roles |= in->saliency_count > 0 ? AM_ROLE_SALIENCY : 0;
  if (in->embed_dim > 0) {
    a->embeds = view(in->embeds_dtype, in->inputs_embeds, 3, B, T, in->embed_dim, 0);
    a->embeds_grads =
        view(in->embeds_dtype, in->inputs_embeds_grads, 3, B, T, in->embed_dim, 0);
    sh->embeds = &a->embeds;
    sh->embeds_grads = &a->embeds_grads;
    sh->embeds_src = (am_source_t){a->path, "inputs_embeds"};
    ds->embed_dim = in->embed_dim;
    ds->roles |= AM_ROLE_EMBEDS;
  }
}

/* Checks in and dresses it as a dataset. */
static am_status arrays_ds_make(am_ctx_t *ctx, const am_arrays_t *in, arrays_ds_t **out) {
  *out = NULL;
  if (!in)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "arrays: NULL");
  am_status st = check_shape(ctx, in);
  if (st == AM_STATUS_OK)
    st = check_extras(ctx, in);
  if (st == AM_STATUS_OK)
    st = check_device(ctx, in);
  if (st != AM_STATUS_OK)
    return st;
  size_t L = (size_t)in->layers, S = (size_t)in->saliency_count;
  arrays_ds_t *a = calloc(1, sizeof *a);
  if (a) {
    a->views = calloc(2 * L, sizeof *a->views);
    a->layers = calloc(2 * L, sizeof *a->layers);
    a->sources = calloc(2 * L + S, sizeof *a->sources);
    a->names = calloc(2 * L + S, sizeof *a->names);
    a->saliency = calloc(S + 1, sizeof *a->saliency);
    a->saliency_ptrs = calloc(S + 1, sizeof *a->saliency_ptrs);
    a->ds.saliency_names = calloc(S + 1, sizeof *a->ds.saliency_names);
  }
  if (!a || !a->views || !a->layers || !a->sources || !a->names || !a->saliency ||
      !a->saliency_ptrs || !a->ds.saliency_names) {
    arrays_ds_free(a);
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  }
  snprintf(a->path, sizeof a->path, "%s", AM_ARRAYS_PATH);
  am_dataset_t *ds = &a->ds;
  am_shard_t *sh = &a->sh;
  *sh = (am_shard_t){.path = a->path, .B = in->batch, .T = in->tokens};
  bind_layers(a, in, 0);
  ds->roles = AM_ROLE_ATTENTIONS;
  if (in->attention_grads) {
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
      arrays_ds_free(a);
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "arrays: grid '%.63s': expected ROWSxCOLS or ROWSxCOLS+PREFIX",
                     in->grid);
    }
    ds->grid = a->grid;
  }
  *out = a;
  return AM_STATUS_OK;
}

static am_status describe(am_ctx_t *ctx, const am_arrays_t *in, const am_plan_t *plan,
                          arrays_ds_t **ads, am_arrays_desc_t **out) {
  *out = NULL;
  am_arrays_desc_t *d = NULL;
  am_status st = plan ? arrays_ds_make(ctx, in, ads)
                      : am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "arrays: plan is NULL");
  if (st == AM_STATUS_OK && !(d = calloc(1, sizeof *d)))
    st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  if (st == AM_STATUS_OK)
    st = am_layout_build(ctx, &(*ads)->ds, plan, &d->lay);
  if (st != AM_STATUS_OK) {
    free(d);
    return st;
  }
  d->lay.pass.device_pointers = in->device_pointers ? 1 : 0;
  for (int k = 0; k < AM_METRIC_COUNT; k++)
    am_layout_metric_name(&d->lay, k, d->metrics[k], sizeof d->metrics[k]);
  *out = d;
  return AM_STATUS_OK;
}

am_status am_arrays_describe(am_ctx_t *ctx, const am_arrays_t *in, const am_plan_t *plan,
                             am_arrays_desc_t **out) {
  if (!out)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "arrays: out is NULL");
  am_clear_error(ctx);
  arrays_ds_t *ads = NULL;
  am_status st = describe(ctx, in, plan, &ads, out);
  arrays_ds_free(ads);
  return st;
}

void am_arrays_desc_destroy(am_arrays_desc_t *desc) { free(desc); }

int am_arrays_desc_count(const am_arrays_desc_t *d, am_arrays_part part) {
  if (!d)
    return 0;
  switch (part) {
  case AM_ARRAYS_MAPS:
    return d->lay.nmaps;
  case AM_ARRAYS_PAIRS:
    return d->lay.npairs;
  case AM_ARRAYS_METRICS:
    return d->lay.npairs > 0 ? AM_METRIC_COUNT : 0;
  case AM_ARRAYS_STATS:
    return d->lay.head_stats ? AM_STAT_COUNT : 0;
  }
  return 0;
}

const char *am_arrays_desc_name(const am_arrays_desc_t *d, am_arrays_part part, int i) {
  if (!d || i < 0 || i >= am_arrays_desc_count(d, part))
    return NULL;
  switch (part) {
  case AM_ARRAYS_MAPS:
    return d->lay.maps[i].name;
  case AM_ARRAYS_PAIRS:
    return d->lay.pair_names[i];
  case AM_ARRAYS_METRICS:
    return d->metrics[i];
  case AM_ARRAYS_STATS:
    return am_stat_name((am_stat)i);
  }
  return NULL;
}

unsigned am_arrays_desc_flags(const am_arrays_desc_t *d) {
  if (!d)
    return 0;
  return (d->lay.head_importance ? AM_ARRAYS_HAS_HEAD_IMPORTANCE : 0u) |
         ((d->lay.pass.want & AM_PASS_ROLLOUT_ROWS) ? AM_ARRAYS_HAS_ROLLOUT_ROWS : 0u) |
         ((d->lay.pass.want & AM_PASS_GRAD_ROLLOUT_ROWS) ? AM_ARRAYS_HAS_GRAD_ROLLOUT_ROWS
                                                         : 0u);
}

static void scatter_rows(const am_chunk_t *c, const float *rows, float *dst_all, int e) {
  size_t T = (size_t)c->lay->T, Tc = (size_t)c->Tcap;
  const int32_t *idx = c->idx + (size_t)e * Tc;
  const float *src = rows + (size_t)e * Tc * Tc;
  float *dst = dst_all + (size_t)(c->row0 + e) * T * T;
  int n = c->n[e];
  memset(dst, 0, T * T * sizeof *dst);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++)
      dst[(size_t)idx[i] * T + (size_t)idx[j]] = src[(size_t)i * (size_t)n + (size_t)j];
}

/* Copies the chunk's compact results to their padded places in out. */
static void scatter(const am_chunk_t *c, const am_arrays_result_t *out) {
  const am_layout_t *lay = c->lay;
  size_t T = (size_t)lay->T, LH = (size_t)lay->L * (size_t)lay->H;
  size_t P = (size_t)lay->npairs, Tc = (size_t)c->Tcap;
  for (int e = 0; e < c->nex; e++) {
    size_t g = (size_t)(c->row0 + e);
    const int32_t *idx = c->idx + (size_t)e * Tc;
    if (out->lengths)
      out->lengths[g] = c->n[e];
    for (int m = 0; out->maps && m < lay->nmaps; m++) {
      if (!out->maps[m])
        continue;
      float *dst = out->maps[m] + g * T;
      const float *v = am_chunk_map(c, m, e);
      memset(dst, 0, T * sizeof *dst);
      for (int i = 0; i < c->n[e]; i++)
        dst[idx[i]] = v[i];
    }
    for (int s = 0; out->head_stats && lay->head_stats && s < AM_STAT_COUNT; s++)
      if (out->head_stats[s])
        memcpy(out->head_stats[s] + g * LH,
               c->stats + ((size_t)e * AM_STAT_COUNT + (size_t)s) * LH, LH * sizeof(float));
    if (out->head_importance && lay->head_importance)
      memcpy(out->head_importance + g * LH, c->importance + (size_t)e * LH,
             LH * sizeof(float));
    for (int k = 0; out->agreement && P && k < AM_METRIC_COUNT; k++)
      for (size_t p = 0; out->agreement[k] && p < P; p++)
        out->agreement[k][g * P + p] =
            (float)c->agree[((size_t)e * P + p) * AM_METRIC_COUNT + (size_t)k];
    if (out->rollout_rows && c->rows_rollout)
      scatter_rows(c, c->rows_rollout, out->rollout_rows, e);
    if (out->grad_rollout_rows && c->rows_grad)
      scatter_rows(c, c->rows_grad, out->grad_rollout_rows, e);
  }
}

static int chunk_cap(const am_arrays_t *in, const am_plan_t *plan) {
  uint64_t T = (uint64_t)in->tokens;
  uint64_t per = 64 * T + (plan->all_rows ? 16 * T * T : 0);
  uint64_t cap = AM_ARRAYS_CHUNK_BYTES / (per ? per : 1);
  if (cap > 256)
    cap = 256;
  if (cap > (uint64_t)in->batch)
    cap = (uint64_t)in->batch;
  return cap < 1 ? 1 : (int)cap;
}

am_status am_analyze_arrays(am_ctx_t *ctx, const am_arrays_t *in, const am_plan_t *plan,
                            const am_arrays_result_t *out) {
  if (!out)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "arrays: out is NULL");
  am_clear_error(ctx);
  arrays_ds_t *ads = NULL;
  am_arrays_desc_t *d = NULL;
  am_chunk_t chunk;
  memset(&chunk, 0, sizeof chunk);
  am_status st = describe(ctx, in, plan, &ads, &d);
  if (st != AM_STATUS_OK)
    goto done;
  if (!ctx->backend)
    st = am_fail(ctx, AM_STATUS_INTERNAL, "arrays: the context has no backend");
  int cap = st == AM_STATUS_OK ? chunk_cap(in, plan) : 1;
  if (st == AM_STATUS_OK)
    st = am_chunk_alloc(ctx, &chunk, &d->lay, cap, in->tokens);
  for (int64_t row = 0; st == AM_STATUS_OK && row < in->batch; row += cap) {
    int nex = (int)(in->batch - row < cap ? in->batch - row : cap);
    st = am_chunk_load(ctx, &chunk, &ads->ds, 0, row, nex);
    if (st == AM_STATUS_OK)
      st = am_chunk_compute(ctx, &chunk, &ads->ds);
    if (st == AM_STATUS_OK)
      scatter(&chunk, out);
  }
done:
  am_chunk_free(&chunk);
  free(d);
  arrays_ds_free(ads);
  return st;
}
