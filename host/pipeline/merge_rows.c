/* merge_rows.c — the aggregates of a merge, recomputed from the merged runs' rows in order.
 * Every aggregated value is stored in examples.safetensors exactly as the analysis
 * aggregated it, so this gives the same bits as one run over all the inputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "pipeline/merge_rows.h"

typedef struct row_buffers {
  float *maps, *stats, *importance, *agree;
  int32_t *idx, *ids;
  uint8_t *special;
} row_buffers_t;

static float f32_at(const am_tensor_t *t, int64_t i) {
  float v;
  memcpy(&v, (const unsigned char *)t->data + 4 * i, 4);
  return v;
}

static int32_t i32_at(const am_tensor_t *t, int64_t i) {
  int32_t v;
  memcpy(&v, (const unsigned char *)t->data + 4 * i, 4);
  return v;
}

static const am_tensor_t *need(am_ctx_t *ctx, const am_file_t *f, const char *name,
                               am_status *st) {
  const am_tensor_t *t = am_file_find(f, name);
  if (!t && *st == AM_STATUS_OK)
    *st =
        am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: missing", am_file_path(f), name);
  return t;
}

/* Fills row from example i of file f (padded length T). */
static am_status read_row(am_ctx_t *ctx, const am_layout_t *lay, const am_file_t *f, int T,
                          int64_t i, row_buffers_t *b, am_agg_row_t *row) {
  am_status st = AM_STATUS_OK;
  const am_tensor_t *mask = need(ctx, f, "mask", &st);
  if (st != AM_STATUS_OK)
    return st;
  const unsigned char *m = (const unsigned char *)mask->data + (size_t)i * (size_t)T;
  int n = 0;
  for (int p = 0; p < T; p++)
    if (m[p])
      b->idx[n++] = p;
  size_t LH = (size_t)lay->L * (size_t)lay->H, P = (size_t)lay->npairs;
  for (int k = 0; k < lay->nmaps; k++) {
    const am_tensor_t *t = need(ctx, f, lay->maps[k].name, &st);
    for (int j = 0; t && j < n; j++)
      b->maps[(size_t)k * ((size_t)lay->T + 1) + (size_t)j] = f32_at(t, i * T + b->idx[j]);
  }
  for (int s = 0; lay->head_stats && s < AM_STAT_COUNT; s++) {
    char name[64];
    snprintf(name, sizeof name, "head.%s", am_stat_name((am_stat)s));
    const am_tensor_t *t = need(ctx, f, name, &st);
    for (size_t q = 0; t && q < LH; q++)
      b->stats[(size_t)s * LH + q] = f32_at(t, i * (int64_t)LH + (int64_t)q);
  }
  const am_tensor_t *imp =
      lay->head_importance ? need(ctx, f, "head.importance", &st) : NULL;
  for (size_t q = 0; imp && q < LH; q++)
    b->importance[q] = f32_at(imp, i * (int64_t)LH + (int64_t)q);
  for (int k = 0; P && k < AM_METRIC_COUNT; k++) {
    char metric[48], name[64];
    am_layout_metric_name(lay, k, metric, sizeof metric);
    snprintf(name, sizeof name, "agreement.%s", metric);
    const am_tensor_t *t = need(ctx, f, name, &st);
    for (size_t p = 0; t && p < P; p++)
      b->agree[p * AM_METRIC_COUNT + (size_t)k] = f32_at(t, i * (int64_t)P + (int64_t)p);
  }
  const am_tensor_t *ids = am_file_find(f, "input_ids"),
                    *sp = am_file_find(f, "special_tokens_mask");
  for (int j = 0; j < n; j++) {
    b->ids[j] = ids ? i32_at(ids, i * T + b->idx[j]) : 0;
    b->special[j] = sp ? ((const unsigned char *)sp->data)[i * T + b->idx[j]] : 0;
  }
  const am_tensor_t *lab = lay->has_labels ? need(ctx, f, "labels", &st) : NULL;
  const am_tensor_t *pred = lay->has_predictions ? need(ctx, f, "predictions", &st) : NULL;
  row->n = n;
  row->label = lab ? i32_at(lab, i) : 0;
  row->prediction = pred ? i32_at(pred, i) : 0;
  row->ids = ids ? b->ids : NULL;
  row->special = sp ? b->special : NULL;
  return st;
}

static am_status add_texts(am_ctx_t *ctx, am_aggregates_t *a, const json_t *summary) {
  const json_t *t = json_object_get(summary, "tokens_table");
  const json_t *ids = json_object_get(t, "id"), *text = json_object_get(t, "text");
  am_status st = AM_STATUS_OK;
  for (size_t i = 0; st == AM_STATUS_OK && i < json_array_size(ids); i++)
    st = am_agg_set_text(ctx, a, json_integer_value(json_array_get(ids, i)),
                         json_string_value(json_array_get(text, i)));
  return st;
}

am_status am_merge_aggregate(am_ctx_t *ctx, am_aggregates_t *a, const am_layout_t *lay,
                             const am_merge_part_t *parts, int nparts) {
  size_t T = (size_t)lay->T + 1, LH = (size_t)lay->L * (size_t)lay->H;
  row_buffers_t b = {
      .maps = malloc(((size_t)lay->nmaps + 1) * T * sizeof(float)),
      .stats = malloc((AM_STAT_COUNT * LH + 1) * sizeof(float)),
      .importance = malloc((LH + 1) * sizeof(float)),
      .agree = malloc(((size_t)lay->npairs * AM_METRIC_COUNT + 1) * sizeof(float)),
      .idx = malloc(T * sizeof(int32_t)),
      .ids = malloc(T * sizeof(int32_t)),
      .special = malloc(T)};
  const float *maps[AM_MAX_MAPS];
  am_status st =
      (b.maps && b.stats && b.importance && b.agree && b.idx && b.ids && b.special)
          ? AM_STATUS_OK
          : am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  for (int m = 0; m < lay->nmaps; m++)
    maps[m] = b.maps + (size_t)m * T;
  int64_t index = 0;
  for (int r = 0; r < nparts && st == AM_STATUS_OK; r++)
    for (int64_t i = 0; i < parts[r].N && st == AM_STATUS_OK; i++, index++) {
      am_agg_row_t row = {.index = index,
                          .maps = maps,
                          .stats = b.stats,
                          .importance = b.importance,
                          .agree = b.agree};
      st = read_row(ctx, lay, parts[r].examples, parts[r].T, i, &b, &row);
      if (st == AM_STATUS_OK)
        st = am_agg_add_row(ctx, a, lay, &row);
      if (st == AM_STATUS_OK && parts[r].after_row)
        st = parts[r].after_row(parts[r].user, ctx, a, i, &row);
    }
  for (int r = 0; r < nparts && st == AM_STATUS_OK; r++)
    st = add_texts(ctx, a, parts[r].summary);
  free(b.maps), free(b.stats), free(b.importance), free(b.agree);
  free(b.idx), free(b.ids), free(b.special);
  return st;
}
