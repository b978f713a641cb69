/* aggregate_json.c — the aggregates in summary.json: the raw mergeable state (n, mean, m2,
 * sums, histogram counts) beside what a reader wants (std, scores, quantiles, top tokens),
 * and reading that raw state back for `attnmap merge`. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/json_guard.h"
#include "pipeline/aggregate.h"

#define TOP_TOKENS 20
#define TOP_TOKENS_MIN_COUNT 2

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *grid(const am_aggregates_t *a, const double *v, size_t stride) {
  json_t *rows = json_array();
  for (int l = 0; l < a->L; l++) {
    json_t *row = json_array();
    for (int h = 0; h < a->H; h++)
      json_array_append_new(row, num(v[((size_t)l * (size_t)a->H + (size_t)h) * stride]));
    json_array_append_new(rows, row);
  }
  return rows;
}

static double welford_std(const am_welford_t *w) {
  return w->n > 1 ? sqrt(w->m2 / (w->n - 1)) : (w->n == 1 ? 0.0 : NAN);
}

static json_t *welford_grid(const am_aggregates_t *a, const am_welford_t *w) {
  size_t LH = (size_t)a->L * (size_t)a->H;
  double *tmp = malloc(4 * LH * sizeof *tmp);
  if (!tmp) {
    am_json_note_failure();
    return NULL;
  }
  for (size_t i = 0; i < LH; i++) {
    tmp[i] = w[i].n;
    tmp[LH + i] = w[i].n ? w[i].mean : NAN;
    tmp[2 * LH + i] = w[i].m2;
    tmp[3 * LH + i] = welford_std(&w[i]);
  }
  json_t *o =
      json_pack("{s:o,s:o,s:o,s:o}", "n", grid(a, tmp, 1), "mean", grid(a, tmp + LH, 1),
                "m2", grid(a, tmp + 2 * LH, 1), "std", grid(a, tmp + 3 * LH, 1));
  free(tmp);
  return o;
}

static json_t *head_json(const am_aggregates_t *a, const am_layout_t *lay) {
  json_t *o = json_object();
  size_t LH = (size_t)a->L * (size_t)a->H;
  for (int s = 0; lay->head_stats && s < AM_STAT_COUNT; s++)
    json_object_set_new(o, am_stat_name((am_stat)s), welford_grid(a, a->head + s * LH));
  if (lay->head_importance)
    json_object_set_new(o, "importance", welford_grid(a, a->head + AM_STAT_COUNT * LH));
  return o;
}

/* Michel et al.: the sum over examples divided by the valid tokens, L2-normalised per
 * layer (their code adds 1e-20 to the norm; we do the same). */
static json_t *importance_json(const am_aggregates_t *a) {
  size_t LH = (size_t)a->L * (size_t)a->H;
  double *score = malloc(LH * sizeof *score);
  if (!score) {
    am_json_note_failure();
    return NULL;
  }
  for (int l = 0; l < a->L; l++) {
    double norm = 0;
    for (int h = 0; h < a->H; h++) {
      double v = a->tokens ? a->importance_sum[l * a->H + h] / (double)a->tokens : 0.0;
      score[l * a->H + h] = v;
      norm += v * v;
    }
    for (int h = 0; h < a->H; h++)
      score[l * a->H + h] /= sqrt(norm) + 1e-20;
  }
  json_t *o = json_pack("{s:o,s:o,s:I}", "sum", grid(a, a->importance_sum, 1), "score",
                        grid(a, score, 1), "tokens", (json_int_t)a->tokens);
  free(score);
  return o;
}

static json_t *positions_json(const am_aggregates_t *a, const am_layout_t *lay) {
  json_t *count = json_array(), *sum = json_object(), *mean = json_object();
  for (int i = 0; i < a->T; i++)
    json_array_append_new(count, json_integer(a->pos_count[i]));
  for (int m = 0; m < a->nmaps; m++) {
    json_t *s = json_array(), *mu = json_array();
    for (int i = 0; i < a->T; i++) {
      double v = a->pos_sum[(size_t)m * (size_t)a->T + (size_t)i];
      json_array_append_new(s, num(v));
      json_array_append_new(mu, a->pos_count[i] ? num(v / (double)a->pos_count[i])
                                                : json_null());
    }
    json_object_set_new(sum, lay->maps[m].name, s);
    json_object_set_new(mean, lay->maps[m].name, mu);
  }
  return json_pack("{s:o,s:o,s:o}", "count", count, "sum", sum, "mean", mean);
}

static int cmp_token_id(const void *x, const void *y) {
  const am_token_agg_t *a = *(am_token_agg_t *const *)x, *b = *(am_token_agg_t *const *)y;
  return (a->id > b->id) - (a->id < b->id);
}

static int g_top_map; /* qsort has no user pointer; only used under a single caller */
static int cmp_token_mean(const void *x, const void *y) {
  const am_token_agg_t *a = *(am_token_agg_t *const *)x, *b = *(am_token_agg_t *const *)y;
  double ma = a->sum[g_top_map] / (double)a->count,
         mb = b->sum[g_top_map] / (double)b->count;
  if (ma != mb)
    return ma < mb ? 1 : -1;
  return (a->id > b->id) - (a->id < b->id);
}

static json_t *tokens_json(const am_aggregates_t *a, const am_layout_t *lay) {
  am_token_agg_t **list = malloc(((size_t)a->tokens_used + 1) * sizeof *list);
  if (!list) {
    am_json_note_failure();
    return NULL;
  }
  int64_t n = 0;
  for (int64_t i = 0; i < a->tokens_cap; i++)
    if (a->tokens_tab[i].sum)
      list[n++] = &a->tokens_tab[i];
  qsort(list, (size_t)n, sizeof *list, cmp_token_id);
  json_t *ids = json_array(), *count = json_array(), *text = json_array(),
         *sum = json_object();
  json_t *top = json_object();
  for (int64_t i = 0; i < n; i++) {
    json_array_append_new(ids, json_integer(list[i]->id));
    json_array_append_new(count, json_integer(list[i]->count));
    json_array_append_new(text, list[i]->text ? json_string(list[i]->text) : json_null());
  }
  for (int m = 0; m < a->nmaps; m++) {
    json_t *s = json_array();
    for (int64_t i = 0; i < n; i++)
      json_array_append_new(s, num(list[i]->sum[m]));
    json_object_set_new(sum, lay->maps[m].name, s);
    g_top_map = m;
    qsort(list, (size_t)n, sizeof *list, cmp_token_mean);
    json_t *t = json_array();
    for (int64_t i = 0; i < n && json_array_size(t) < TOP_TOKENS; i++) {
      if (list[i]->count < TOP_TOKENS_MIN_COUNT && n > TOP_TOKENS)
        continue;
      json_array_append_new(
          t, json_pack("{s:I,s:o,s:I,s:o}", "id", (json_int_t)list[i]->id, "text",
                       list[i]->text ? json_string(list[i]->text) : json_null(), "count",
                       (json_int_t)list[i]->count, "mean",
                       num(list[i]->sum[m] / (double)list[i]->count)));
    }
    json_object_set_new(top, lay->maps[m].name, t);
    qsort(list, (size_t)n, sizeof *list, cmp_token_id);
  }
  free(list);
  return json_pack("{s:o,s:o,s:o,s:o,s:o}", "id", ids, "count", count, "text", text, "sum",
                   sum, "top", top);
}

/* Quantile q from a fixed-bin histogram, linear inside the bin. */
static double hist_quantile(const int64_t *h, int bins, double lo, double hi, double q) {
  int64_t total = 0;
  for (int b = 0; b < bins; b++)
    total += h[b];
  if (total == 0)
    return NAN;
  double target = q * (double)total, seen = 0, width = (hi - lo) / bins;
  for (int b = 0; b < bins; b++) {
    if (h[b] && seen + (double)h[b] >= target)
      return lo + width * (b + (target - seen) / (double)h[b]);
    seen += (double)h[b];
  }
  return hi;
}

static json_t *metric_json(const am_aggregates_t *a, size_t pm) {
  double lo, hi;
  am_metric_range((int)(pm % AM_METRIC_COUNT), &lo, &hi);
  const int64_t *h = a->hist + pm * (size_t)a->bins;
  json_t *counts = json_array();
  for (int b = 0; b < a->bins; b++)
    json_array_append_new(counts, json_integer(h[b]));
  const am_welford_t *w = &a->agree[pm];
  json_t *q = json_object();
  static const double qs[] = {0.05, 0.25, 0.5, 0.75, 0.95};
  static const char *qn[] = {"p05", "p25", "p50", "p75", "p95"};
  for (int i = 0; i < 5; i++)
    json_object_set_new(q, qn[i], num(hist_quantile(h, a->bins, lo, hi, qs[i])));
  return json_pack("{s:f,s:o,s:f,s:o,s:I,s:o,s:o,s:{s:o,s:o,s:o},s:o}", "n", w->n, "mean",
                   num(w->n ? w->mean : NAN), "m2", w->m2, "std", num(welford_std(w)),
                   "nan", (json_int_t)a->nan_count[pm], "min", num(a->agree_min[pm]), "max",
                   num(a->agree_max[pm]), "histogram", "lo", json_real(lo), "hi",
                   json_real(hi), "counts", counts, "quantiles", q);
}

static json_t *agreement_json(const am_aggregates_t *a, const am_layout_t *lay) {
  json_t *o = json_object();
  for (int p = 0; p < a->npairs; p++) {
    json_t *pj = json_object();
    for (int k = 0; k < AM_METRIC_COUNT; k++) {
      char name[48];
      am_layout_metric_name(lay, k, name, sizeof name);
      json_object_set_new(pj, name,
                          metric_json(a, (size_t)p * AM_METRIC_COUNT + (size_t)k));
    }
    json_object_set_new(o, lay->pair_names[p], pj);
  }
  return o;
}

static json_t *classes_json(const am_aggregates_t *a, const am_layout_t *lay,
                            const am_class_agg_t *tab, int n) {
  json_t *arr = json_array();
  for (int c = 0; c < n; c++) {
    json_t *agree = json_object();
    for (int p = 0; p < a->npairs; p++) {
      json_t *pj = json_object();
      for (int k = 0; k < AM_METRIC_COUNT; k++) {
        char name[48];
        am_layout_metric_name(lay, k, name, sizeof name);
        const am_welford_t *w = &tab[c].agree[p * AM_METRIC_COUNT + k];
        json_object_set_new(pj, name,
                            json_pack("{s:f,s:o,s:f,s:o}", "n", w->n, "mean",
                                      num(w->n ? w->mean : NAN), "m2", w->m2, "std",
                                      num(welford_std(w))));
      }
      json_object_set_new(agree, lay->pair_names[p], pj);
    }
    json_array_append_new(arr,
                          json_pack("{s:I,s:I,s:I,s:o}", "class", (json_int_t)tab[c].cls,
                                    "count", (json_int_t)tab[c].count, "correct",
                                    (json_int_t)tab[c].correct, "agreement", agree));
  }
  return arr;
}

json_t *am_agg_to_json(const am_aggregates_t *a, const am_layout_t *lay) {
  json_t *worst = json_array(), *mis = json_array();
  for (int i = 0; i < a->nworst; i++)
    json_array_append_new(worst,
                          json_pack("{s:I,s:f}", "index", (json_int_t)a->worst[i].index,
                                    "score", a->worst[i].score));
  for (int i = 0; i < a->nmis; i++)
    json_array_append_new(mis, json_integer(a->mis_index[i]));
  json_t *o = json_object();
  json_object_set_new(o, "examples", json_integer(a->examples));
  json_object_set_new(o, "tokens", json_integer(a->tokens));
  json_object_set_new(o, "head_stats", head_json(a, lay));
  if (lay->head_importance)
    json_object_set_new(o, "head_importance", importance_json(a));
  json_object_set_new(o, "positions", positions_json(a, lay));
  json_object_set_new(o, "tokens_table", tokens_json(a, lay));
  json_object_set_new(o, "agreement", agreement_json(a, lay));
  json_object_set_new(o, "classes",
                      json_pack("{s:o,s:o}", "labels",
                                classes_json(a, lay, a->labels, a->nlabels), "predictions",
                                classes_json(a, lay, a->preds, a->npreds)));
  json_object_set_new(o, "disagreement",
                      json_pack("{s:o,s:s,s:o}", "pair",
                                lay->worst_pair >= 0
                                    ? json_string(lay->pair_names[lay->worst_pair])
                                    : json_null(),
                                "metric", "spearman", "examples", worst));
  json_object_set_new(
      o, "misclassified",
      json_pack("{s:I,s:o}", "count", (json_int_t)a->misclassified, "indices", mis));
  return o;
}
