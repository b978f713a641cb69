/* aggregate_merge.c — adds the raw aggregate state of one run's summary.json (written by
 * aggregate_json.c) into an accumulating am_aggregates_t, for `attnmap merge`. Welford
 * moments combine with Chan's formula; counts, sums and histograms add. */
#include <math.h>
#include <string.h>

#include "core/ctx.h"
#include "pipeline/aggregate.h"

static double num(const json_t *j) {
  return json_is_number(j) ? json_number_value(j) : NAN;
}
static double num0(const json_t *j) {
  return json_is_number(j) ? json_number_value(j) : 0.0;
}
static const json_t *at2(const json_t *a, int i, int j) {
  return json_array_get(json_array_get(a, (size_t)i), (size_t)j);
}

static void merge_grid(am_aggregates_t *a, am_welford_t *w, const json_t *o) {
  const json_t *n = json_object_get(o, "n"), *mean = json_object_get(o, "mean"),
               *m2 = json_object_get(o, "m2");
  for (int l = 0; l < a->L; l++)
    for (int h = 0; h < a->H; h++) {
      am_welford_t part = {num0(at2(n, l, h)), num0(at2(mean, l, h)), num0(at2(m2, l, h))};
      am_welford_merge(&w[l * a->H + h], &part);
    }
}

static void merge_heads(am_aggregates_t *a, const am_layout_t *lay, const json_t *j) {
  const json_t *hs = json_object_get(j, "head_stats");
  size_t LH = (size_t)a->L * (size_t)a->H;
  for (int s = 0; lay->head_stats && s < AM_STAT_COUNT; s++)
    merge_grid(a, a->head + s * LH, json_object_get(hs, am_stat_name((am_stat)s)));
  if (!lay->head_importance)
    return;
  merge_grid(a, a->head + AM_STAT_COUNT * LH, json_object_get(hs, "importance"));
  const json_t *sum = json_object_get(json_object_get(j, "head_importance"), "sum");
  for (int l = 0; l < a->L; l++)
    for (int h = 0; h < a->H; h++)
      a->importance_sum[l * a->H + h] += num0(at2(sum, l, h));
}

static void merge_positions(am_aggregates_t *a, const am_layout_t *lay, const json_t *j) {
  const json_t *pos = json_object_get(j, "positions");
  const json_t *count = json_object_get(pos, "count"), *sum = json_object_get(pos, "sum");
  size_t n = json_array_size(count);
  for (size_t i = 0; i < n && i < (size_t)a->T; i++) {
    a->pos_count[i] += (int64_t)num0(json_array_get(count, i));
    for (int m = 0; m < a->nmaps; m++)
      a->pos_sum[(size_t)m * (size_t)a->T + i] +=
          num0(json_array_get(json_object_get(sum, lay->maps[m].name), i));
  }
}

static am_status merge_tokens(am_ctx_t *ctx, am_aggregates_t *a, const am_layout_t *lay,
                              const json_t *j) {
  const json_t *t = json_object_get(j, "tokens_table");
  const json_t *ids = json_object_get(t, "id"), *count = json_object_get(t, "count"),
               *text = json_object_get(t, "text"), *sum = json_object_get(t, "sum");
  for (size_t i = 0; i < json_array_size(ids); i++) {
    am_token_agg_t *tok = am_agg_token(a, (int64_t)num0(json_array_get(ids, i)));
    if (!tok)
      return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
    tok->count += (int64_t)num0(json_array_get(count, i));
    for (int m = 0; m < a->nmaps; m++)
      tok->sum[m] += num0(json_array_get(json_object_get(sum, lay->maps[m].name), i));
    const char *s = json_string_value(json_array_get(text, i));
    if (s && !tok->text && !(tok->text = strdup(s)))
      return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  }
  return AM_STATUS_OK;
}

static void merge_agreement(am_aggregates_t *a, const am_layout_t *lay, const json_t *j) {
  const json_t *agree = json_object_get(j, "agreement");
  for (int p = 0; p < a->npairs; p++)
    for (int k = 0; k < AM_METRIC_COUNT; k++) {
      char name[48];
      am_layout_metric_name(lay, k, name, sizeof name);
      const json_t *m = json_object_get(json_object_get(agree, lay->pair_names[p]), name);
      size_t pm = (size_t)p * AM_METRIC_COUNT + (size_t)k;
      am_welford_t part = {num0(json_object_get(m, "n")), num0(json_object_get(m, "mean")),
                           num0(json_object_get(m, "m2"))};
      am_welford_merge(&a->agree[pm], &part);
      a->nan_count[pm] += (int64_t)num0(json_object_get(m, "nan"));
      double lo = num(json_object_get(m, "min")), hi = num(json_object_get(m, "max"));
      if (lo < a->agree_min[pm])
        a->agree_min[pm] = lo;
      if (hi > a->agree_max[pm])
        a->agree_max[pm] = hi;
      const json_t *counts = json_object_get(json_object_get(m, "histogram"), "counts");
      for (int b = 0; b < a->bins; b++)
        a->hist[pm * (size_t)a->bins + (size_t)b] +=
            (int64_t)num0(json_array_get(counts, (size_t)b));
    }
}

static am_status merge_classes(am_ctx_t *ctx, am_aggregates_t *a, const am_layout_t *lay,
                               const json_t *arr, am_class_agg_t **tab, int *n) {
  for (size_t c = 0; c < json_array_size(arr); c++) {
    const json_t *o = json_array_get(arr, c);
    am_class_agg_t *k = am_agg_class(a, tab, n, (int64_t)num0(json_object_get(o, "class")));
    if (!k)
      return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
    k->count += (int64_t)num0(json_object_get(o, "count"));
    k->correct += (int64_t)num0(json_object_get(o, "correct"));
    const json_t *agree = json_object_get(o, "agreement");
    for (int p = 0; p < a->npairs; p++)
      for (int m = 0; m < AM_METRIC_COUNT; m++) {
        char name[48];
        am_layout_metric_name(lay, m, name, sizeof name);
        const json_t *w = json_object_get(json_object_get(agree, lay->pair_names[p]), name);
        am_welford_t part = {num0(json_object_get(w, "n")),
                             num0(json_object_get(w, "mean")),
                             num0(json_object_get(w, "m2"))};
        am_welford_merge(&k->agree[p * AM_METRIC_COUNT + m], &part);
      }
  }
  return AM_STATUS_OK;
}

am_status am_agg_merge_json(am_ctx_t *ctx, am_aggregates_t *a, const am_layout_t *lay,
                            const json_t *j, int64_t offset, const char *path) {
  if (!json_is_object(j) || !json_is_integer(json_object_get(j, "examples")))
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: not an attnmap summary.json", path);
  a->examples += (int64_t)num0(json_object_get(j, "examples"));
  a->tokens += (int64_t)num0(json_object_get(j, "tokens"));
  merge_heads(a, lay, j);
  merge_positions(a, lay, j);
  merge_agreement(a, lay, j);
  const json_t *classes = json_object_get(j, "classes");
  am_status st = merge_tokens(ctx, a, lay, j);
  if (st == AM_STATUS_OK)
    st = merge_classes(ctx, a, lay, json_object_get(classes, "labels"), &a->labels,
                       &a->nlabels);
  if (st == AM_STATUS_OK)
    st = merge_classes(ctx, a, lay, json_object_get(classes, "predictions"), &a->preds,
                       &a->npreds);
  const json_t *worst = json_object_get(json_object_get(j, "disagreement"), "examples");
  for (size_t i = 0; i < json_array_size(worst); i++) {
    const json_t *w = json_array_get(worst, i);
    am_agg_offer_worst(a, (int64_t)num0(json_object_get(w, "index")) + offset,
                       num(json_object_get(w, "score")));
  }
  const json_t *mis = json_object_get(j, "misclassified");
  a->misclassified += (int64_t)num0(json_object_get(mis, "count"));
  const json_t *idx = json_object_get(mis, "indices");
  for (size_t i = 0; i < json_array_size(idx) && a->nmis < AM_MISCLASSIFIED_KEEP; i++)
    a->mis_index[a->nmis++] = (int64_t)num0(json_array_get(idx, i)) + offset;
  return st;
}
