/* aggregate.h — dataset aggregates (docs/design.md §4) kept in mergeable form: counts,
 * sums, Welford moments and fixed-bin histograms. Examples are added one at a time in input
 * order, so the numbers do not depend on the chunk size or the thread count. */
#ifndef AM_PIPELINE_AGGREGATE_H
#define AM_PIPELINE_AGGREGATE_H

#include <jansson.h>

#include "pipeline/chunk.h"

typedef struct am_welford {
  double n, mean, m2;
} am_welford_t;

void am_welford_add(am_welford_t *w, double x); /* NaN is not counted */
void am_welford_merge(am_welford_t *into, const am_welford_t *other);

typedef struct am_class_agg {
  int64_t cls;
  int64_t count, correct;
  am_welford_t *agree; /* [npairs, METRIC] */
} am_class_agg_t;

typedef struct am_token_agg {
  int64_t id;
  int64_t count;
  double *sum; /* [nmaps] */
  char *text;  /* token string or NULL */
} am_token_agg_t;

typedef struct am_worst {
  int64_t index;
  double score;
} am_worst_t;

typedef struct am_aggregates {
  int L, H, T, nmaps, npairs, bins, worst_cap;
  int64_t examples, tokens;
  am_welford_t *head;             /* [(STAT+1), L, H]: statistics, then importance */
  double *importance_sum;         /* [L, H] */
  int64_t *pos_count;             /* [T] by valid-token position */
  double *pos_sum;                /* [nmaps, T] */
  am_welford_t *agree;            /* [npairs, METRIC] */
  int64_t *hist;                  /* [npairs, METRIC, bins] */
  int64_t *nan_count;             /* [npairs, METRIC] */
  double *agree_min, *agree_max;  /* [npairs, METRIC] */
  am_class_agg_t *labels, *preds; /* sorted by class */
  int nlabels, npreds;
  am_token_agg_t *tokens_tab; /* open addressing, cap a power of 2 */
  int64_t tokens_cap, tokens_used;
  am_worst_t *worst; /* sorted: lowest score first, then lower index */
  int nworst;
  int64_t misclassified;
  int64_t *mis_index; /* first AM_MISCLASSIFIED_KEEP */
  int nmis;
} am_aggregates_t;

#define AM_MISCLASSIFIED_KEEP 200

/* One example as aggregated: every value exactly as written to examples.safetensors
 * (floats), so that a merge that re-reads the rows gives the same bits. */
typedef struct am_agg_row {
  int64_t index;            /* global example index */
  int n;                    /* valid tokens */
  const float *const *maps; /* [nmaps] of [n] in valid-token order */
  const float *stats;       /* [STAT, L, H] when head statistics are on */
  const float *importance;  /* [L, H] when head importance is on */
  const float *agree;       /* [npairs, METRIC] */
  int32_t label, prediction;
  const int32_t *ids;     /* [n] input ids, or NULL */
  const uint8_t *special; /* [n] special-token flags, or NULL */
} am_agg_row_t;

am_status am_agg_add_row(am_ctx_t *ctx, am_aggregates_t *a, const am_layout_t *lay,
                         const am_agg_row_t *r);
/* Records the text of a counted token id the first time one is known. */
am_status am_agg_set_text(am_ctx_t *ctx, am_aggregates_t *a, int64_t id, const char *text);

am_status am_agg_init(am_ctx_t *ctx, am_aggregates_t *a, const am_layout_t *lay);
void am_agg_free(am_aggregates_t *a);

/* Adds the chunk's examples in order (aggregate_chunk.c). */
am_status am_agg_add_chunk(am_ctx_t *ctx, am_aggregates_t *a, const am_chunk_t *c);

/* Histogram range of a metric. */
void am_metric_range(int metric, double *lo, double *hi);

/* The aggregates as JSON (raw mergeable state plus derived means, std, quantiles). */
json_t *am_agg_to_json(const am_aggregates_t *a, const am_layout_t *lay);

/* Pieces shared with the JSON reader (aggregate.c). */
am_class_agg_t *am_agg_class(am_aggregates_t *a, am_class_agg_t **tab, int *n, int64_t cls);
am_token_agg_t *am_agg_token(am_aggregates_t *a, int64_t id);
void am_agg_offer_worst(am_aggregates_t *a, int64_t index, double score);
void am_agg_add_metric(am_aggregates_t *a, size_t pm, double v);

#endif
