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
#include "pipeline/arrays_ds.h"
#include "pipeline/chunk.h"

#define AM_ARRAYS_PATH "<arrays>"
#define AM_ARRAYS_CHUNK_BYTES (256ull << 20)

struct am_arrays_desc {
  am_layout_t lay;
  char metrics[AM_METRIC_COUNT][48];
};

static am_status describe(am_ctx_t *ctx, const am_arrays_t *in, const am_plan_t *plan,
                          am_arrays_ds_t **ads, am_arrays_desc_t **out) {
  *out = NULL;
  am_arrays_desc_t *d = NULL;
  am_status st = plan ? am_arrays_ds_make(ctx, in, "arrays", AM_ARRAYS_PATH, ads)
                      : am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "arrays: plan is NULL");
  if (st == AM_STATUS_OK && !(d = calloc(1, sizeof *d)))
    st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  if (st == AM_STATUS_OK)
    st = am_layout_build(ctx, &(*ads)->ds, plan, &d->lay);
  if (st == AM_STATUS_OK && d->lay.several)
    st = am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                 "arrays: several targets (a slice A:B or gen) are written to run folders "
                 "only: use attnmap analyze or am_run_analyze (docs/generation.md)");
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
  am_arrays_ds_t *ads = NULL;
  am_status st = describe(ctx, in, plan, &ads, out);
  am_arrays_ds_free(ads);
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
  am_arrays_ds_t *ads = NULL;
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
  am_arrays_ds_free(ads);
  return st;
}
