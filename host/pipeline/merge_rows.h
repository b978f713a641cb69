/* merge_rows.h — recomputing a merge's aggregates from the runs' rows (merge_rows.c). */
#ifndef AM_PIPELINE_MERGE_ROWS_H
#define AM_PIPELINE_MERGE_ROWS_H

#include "pipeline/aggregate.h"

typedef struct am_merge_part {
  const am_file_t *examples; /* the run's examples.safetensors, checked against lay */
  const json_t *summary;     /* its summary.json (token texts) */
  int64_t N;
  int T;
  /* Optional: called after each row is added (row: index within the part), e.g. to give
   * the token texts in the order a run gives them. */
  am_status (*after_row)(void *user, am_ctx_t *ctx, am_aggregates_t *a, int64_t row,
                         const am_agg_row_t *r);
  void *user;
} am_merge_part_t;

/* Adds every row of every part, in order, to a (initialised for lay). */
am_status am_merge_aggregate(am_ctx_t *ctx, am_aggregates_t *a, const am_layout_t *lay,
                             const am_merge_part_t *parts, int nparts);

#endif
