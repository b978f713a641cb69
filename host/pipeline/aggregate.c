/* aggregate.c — accumulating the dataset aggregates example by example (aggregate.h). */
#include "pipeline/aggregate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/half.h"

void am_welford_add(am_welford_t *w, double x) {
  if (isnan(x))
    return;
  w->n += 1.0;
  double d = x - w->mean;
  w->mean += d / w->n;
  w->m2 += d * (x - w->mean);
}

/* Chan et al.'s pairwise combination. */
void am_welford_merge(am_welford_t *into, const am_welford_t *o) {
  if (o->n == 0)
    return;
  if (into->n == 0) {
    *into = *o;
    return;
  }
  double n = into->n + o->n, d = o->mean - into->mean;
  into->mean += d * o->n / n;
  into->m2 += o->m2 + d * d * into->n * o->n / n;
  into->n = n;
}

void am_metric_range(int metric, double *lo, double *hi) {
  switch (metric) {
  case AM_METRIC_SPEARMAN:
  case AM_METRIC_KENDALL:
  case AM_METRIC_PEARSON:
  case AM_METRIC_COSINE:
    *lo = -1.0;
    *hi = 1.0;
    break;
  case AM_METRIC_JSD:
    *lo = 0.0;
    *hi = log(2.0);
    break;
  default:
    *lo = 0.0;
    *hi = 1.0;
  }
}

am_status am_agg_init(am_ctx_t *ctx, am_aggregates_t *a, const am_layout_t *lay) {
  memset(a, 0, sizeof *a);
  a->L = lay->L;
  a->H = lay->H;
  a->T = lay->T;
  a->nmaps = lay->nmaps;
  a->npairs = lay->npairs;
  a->bins = lay->plan.histogram_bins;
  a->worst_cap = lay->plan.worst;
  size_t LH = (size_t)a->L * (size_t)a->H, PM = (size_t)a->npairs * AM_METRIC_COUNT + 1;
  a->head = calloc((AM_STAT_COUNT + 1) * LH, sizeof *a->head);
  a->importance_sum = calloc(LH, sizeof *a->importance_sum);
  a->pos_count = calloc((size_t)a->T + 1, sizeof *a->pos_count);
  a->pos_sum = calloc(((size_t)a->nmaps + 1) * ((size_t)a->T + 1), sizeof *a->pos_sum);
  a->agree = calloc(PM, sizeof *a->agree);
  a->hist = calloc(PM * (size_t)a->bins, sizeof *a->hist);
  a->nan_count = calloc(PM, sizeof *a->nan_count);
  a->agree_min = malloc(PM * sizeof *a->agree_min);
  a->agree_max = malloc(PM * sizeof *a->agree_max);
  a->worst = calloc((size_t)a->worst_cap + 1, sizeof *a->worst);
  a->mis_index = calloc(AM_MISCLASSIFIED_KEEP, sizeof *a->mis_index);
  if (!a->head || !a->importance_sum || !a->pos_count || !a->pos_sum || !a->agree ||
      !a->hist || !a->nan_count || !a->agree_min || !a->agree_max || !a->worst ||
      !a->mis_index) {
    am_agg_free(a);
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  }
  for (size_t i = 0; i < PM; i++) {
    a->agree_min[i] = INFINITY;
    a->agree_max[i] = -INFINITY;
  }
  return AM_STATUS_OK;
}

static void free_classes(am_class_agg_t *c, int n) {
  for (int i = 0; i < n; i++)
    free(c[i].agree);
  free(c);
}

void am_agg_free(am_aggregates_t *a) {
  free(a->head);
  free(a->importance_sum);
  free(a->pos_count);
  free(a->pos_sum);
  free(a->agree);
  free(a->hist);
  free(a->nan_count);
  free(a->agree_min);
  free(a->agree_max);
  free_classes(a->labels, a->nlabels);
  free_classes(a->preds, a->npreds);
  for (int64_t i = 0; i < a->tokens_cap; i++) {
    free(a->tokens_tab[i].sum);
    free(a->tokens_tab[i].text);
  }
  free(a->tokens_tab);
  free(a->worst);
  free(a->mis_index);
  memset(a, 0, sizeof *a);
}

/* The class entry for cls in a sorted table, inserted when new; NULL when out of memory. */
am_class_agg_t *am_agg_class(am_aggregates_t *a, am_class_agg_t **tab, int *n,
                             int64_t cls) {
  int lo = 0, hi = *n;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if ((*tab)[mid].cls < cls)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < *n && (*tab)[lo].cls == cls)
    return &(*tab)[lo];
  am_class_agg_t *grown = realloc(*tab, (size_t)(*n + 1) * sizeof *grown);
  if (!grown)
    return NULL;
  *tab = grown;
  am_welford_t *agree = calloc((size_t)a->npairs * AM_METRIC_COUNT + 1, sizeof *agree);
  if (!agree)
    return NULL;
  memmove(&grown[lo + 1], &grown[lo], (size_t)(*n - lo) * sizeof *grown);
  grown[lo] = (am_class_agg_t){.cls = cls, .agree = agree};
  (*n)++;
  return &grown[lo];
}

static uint64_t hash_id(int64_t id) {
  uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ull;
  return x ^ (x >> 29);
}

/* The token entry for id, inserted when new; NULL when out of memory. */
am_token_agg_t *am_agg_token(am_aggregates_t *a, int64_t id) {
  if ((a->tokens_used + 1) * 2 > a->tokens_cap) {
    int64_t cap = a->tokens_cap ? a->tokens_cap * 2 : 1024;
    am_token_agg_t *tab = calloc((size_t)cap, sizeof *tab);
    if (!tab)
      return NULL;
    for (int64_t i = 0; i < a->tokens_cap; i++) {
      if (!a->tokens_tab[i].sum)
        continue;
      uint64_t h = hash_id(a->tokens_tab[i].id) & (uint64_t)(cap - 1);
      while (tab[h].sum)
        h = (h + 1) & (uint64_t)(cap - 1);
      tab[h] = a->tokens_tab[i];
    }
    free(a->tokens_tab);
    a->tokens_tab = tab;
    a->tokens_cap = cap;
  }
  uint64_t h = hash_id(id) & (uint64_t)(a->tokens_cap - 1);
  while (a->tokens_tab[h].sum && a->tokens_tab[h].id != id)
    h = (h + 1) & (uint64_t)(a->tokens_cap - 1);
  am_token_agg_t *t = &a->tokens_tab[h];
  if (!t->sum) {
    if (!(t->sum = calloc((size_t)a->nmaps + 1, sizeof *t->sum)))
      return NULL;
    t->id = id;
    a->tokens_used++;
  }
  return t;
}

static int worst_before(const am_worst_t *x, const am_worst_t *y) {
  return x->score < y->score || (x->score == y->score && x->index < y->index);
}

void am_agg_offer_worst(am_aggregates_t *a, int64_t index, double score) {
  if (isnan(score) || a->worst_cap == 0)
    return;
  am_worst_t w = {index, score};
  if (a->nworst == a->worst_cap && !worst_before(&w, &a->worst[a->nworst - 1]))
    return;
  int i = a->nworst < a->worst_cap ? a->nworst++ : a->nworst - 1;
  while (i > 0 && worst_before(&w, &a->worst[i - 1])) {
    a->worst[i] = a->worst[i - 1];
    i--;
  }
  a->worst[i] = w;
}

void am_agg_add_metric(am_aggregates_t *a, size_t pm, double v) {
  if (isnan(v)) {
    a->nan_count[pm]++;
    return;
  }
  am_welford_add(&a->agree[pm], v);
  if (v < a->agree_min[pm])
    a->agree_min[pm] = v;
  if (v > a->agree_max[pm])
    a->agree_max[pm] = v;
  double lo, hi;
  am_metric_range((int)(pm % AM_METRIC_COUNT), &lo, &hi);
  /* clamp in double first: a value far out of range must not overflow the int */
  double x = floor((v - lo) / (hi - lo) * a->bins);
  int bin = x < 0 ? 0 : (x >= a->bins ? a->bins - 1 : (int)x);
  a->hist[pm * (size_t)a->bins + (size_t)bin]++;
}

/* Position-wise sums take every valid token; the per-token table (the top tokens) leaves
 * out special tokens and the target token unless the plan asks for them. */
static am_status add_tokens(am_ctx_t *ctx, am_aggregates_t *a, const am_agg_row_t *r,
                            const am_layout_t *lay) {
  int excluded = am_layout_excluded(lay, r->n);
  for (int i = 0; i < r->n; i++) {
    a->pos_count[i]++;
    for (int m = 0; m < a->nmaps; m++)
      a->pos_sum[(size_t)m * (size_t)a->T + (size_t)i] += r->maps[m][i];
    if (!r->ids || i == excluded ||
        (!lay->plan.include_special && r->special && r->special[i]))
      continue;
    am_token_agg_t *t = am_agg_token(a, r->ids[i]);
    if (!t)
      return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
    t->count++;
    for (int m = 0; m < a->nmaps; m++)
      t->sum[m] += r->maps[m][i];
  }
  return AM_STATUS_OK;
}

static am_status add_classes(am_ctx_t *ctx, am_aggregates_t *a, const am_layout_t *lay,
                             const am_agg_row_t *r) {
  size_t PM = (size_t)a->npairs * AM_METRIC_COUNT;
  int correct = lay->has_labels && lay->has_predictions && r->label == r->prediction;
  for (int which = 0; which < 2; which++) {
    if (!(which ? lay->has_predictions : lay->has_labels))
      continue;
    am_class_agg_t *k = which ? am_agg_class(a, &a->preds, &a->npreds, r->prediction)
                              : am_agg_class(a, &a->labels, &a->nlabels, r->label);
    if (!k)
      return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
    k->count++;
    k->correct += correct;
    for (size_t i = 0; i < PM; i++)
      am_welford_add(&k->agree[i], r->agree[i]);
  }
  if (lay->has_labels && lay->has_predictions && !correct) {
    if (a->nmis < AM_MISCLASSIFIED_KEEP)
      a->mis_index[a->nmis++] = r->index;
    a->misclassified++;
  }
  return AM_STATUS_OK;
}

am_status am_agg_add_row(am_ctx_t *ctx, am_aggregates_t *a, const am_layout_t *lay,
                         const am_agg_row_t *r) {
  size_t LH = (size_t)a->L * (size_t)a->H, PM = (size_t)a->npairs * AM_METRIC_COUNT;
  a->examples++;
  a->tokens += r->n;
  for (size_t s = 0; lay->head_stats && s < AM_STAT_COUNT * LH; s++)
    am_welford_add(&a->head[s], r->stats[s]);
  for (size_t s = 0; lay->head_importance && s < LH; s++) {
    am_welford_add(&a->head[AM_STAT_COUNT * LH + s], r->importance[s]);
    a->importance_sum[s] += r->importance[s];
  }
  for (size_t i = 0; i < PM; i++)
    am_agg_add_metric(a, i, r->agree[i]);
  if (lay->worst_pair >= 0)
    am_agg_offer_worst(
        a, r->index,
        r->agree[(size_t)lay->worst_pair * AM_METRIC_COUNT + AM_METRIC_SPEARMAN]);
  am_status st = add_tokens(ctx, a, r, lay);
  return st != AM_STATUS_OK ? st : add_classes(ctx, a, lay, r);
}

am_status am_agg_set_text(am_ctx_t *ctx, am_aggregates_t *a, int64_t id, const char *text) {
  if (!text || a->tokens_cap == 0)
    return AM_STATUS_OK;
  uint64_t h = hash_id(id) & (uint64_t)(a->tokens_cap - 1);
  while (a->tokens_tab[h].sum && a->tokens_tab[h].id != id)
    h = (h + 1) & (uint64_t)(a->tokens_cap - 1);
  am_token_agg_t *t = &a->tokens_tab[h];
  if (!t->sum || t->text) /* only tokens counted, first text seen */
    return AM_STATUS_OK;
  if (!(t->text = strdup(text)))
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  return AM_STATUS_OK;
}
