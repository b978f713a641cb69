/* aggregate_chunk.c — feeds a computed chunk to the aggregates one example at a time, in
 * input order, with every value as it is stored in examples.safetensors. */
#include <stdlib.h>

#include "core/ctx.h"
#include "pipeline/aggregate.h"

am_status am_agg_add_chunk(am_ctx_t *ctx, am_aggregates_t *a, const am_chunk_t *c) {
  const am_layout_t *lay = c->lay;
  size_t LH = (size_t)a->L * (size_t)a->H, PM = (size_t)a->npairs * AM_METRIC_COUNT;
  const float *maps[AM_MAX_MAPS];
  float *agree = malloc((PM + 1) * sizeof *agree);
  if (!agree)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  am_status st = AM_STATUS_OK;
  for (int e = 0; e < c->nex && st == AM_STATUS_OK; e++) {
    size_t T = (size_t)c->Tcap;
    for (int m = 0; m < lay->nmaps; m++)
      maps[m] = am_chunk_map(c, m, e);
    for (size_t i = 0; i < PM; i++)
      agree[i] = (float)c->agree[(size_t)e * PM + i];
    am_agg_row_t row = {.index = c->global0 + e,
                        .n = c->n[e],
                        .maps = maps,
                        .stats = c->stats + (size_t)e * AM_STAT_COUNT * LH,
                        .importance = c->importance + (size_t)e * LH,
                        .agree = agree,
                        .label = c->labels[e],
                        .prediction = c->predictions[e],
                        .ids = c->sh->ids ? c->ids + (size_t)e * T : NULL,
                        .special = c->special + (size_t)e * T};
    st = am_agg_add_row(ctx, a, lay, &row);
    const int32_t *idx = c->idx + (size_t)e * T;
    for (int i = 0; st == AM_STATUS_OK && row.ids && i < row.n; i++)
      st = am_agg_set_text(ctx, a, row.ids[i],
                           am_shard_token(c->sh, c->row0 + e, idx[i], i, row.n));
  }
  free(agree);
  return st;
}
