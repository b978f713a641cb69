/* arrays_ds.h — arrays the caller holds in memory (am_arrays_t) dressed as a dataset of one
 * shard of borrowed views, checked as a shard is checked, so that am_analyze_arrays and the
 * live run writer go through the same layout, chunk and backend code as am_run_analyze. */
#ifndef AM_PIPELINE_ARRAYS_DS_H
#define AM_PIPELINE_ARRAYS_DS_H

#include "pipeline/layout.h"

/* The arrays seen as a dataset of one shard; every tensor is a borrowed view. */
typedef struct am_arrays_ds {
  am_dataset_t ds;
  am_shard_t sh;
  char path[96];
  int nviews;                 /* 2L (matrix form) or 4L (long-context form) */
  am_tensor_t *views;         /* [nviews]: attention then gradient layers (long: Q, K, V, dO) */
  const am_tensor_t **layers; /* [nviews] */
  am_source_t *sources;       /* [nviews + saliency_count] */
  char (*names)[40];          /* [nviews + saliency_count] */
  am_tensor_t mask, special, embeds, embeds_grads;
  am_tensor_t ids, labels, predictions; /* a live run's batch extras (batch.c) */
  am_tensor_t *saliency;                /* [saliency_count] */
  const am_tensor_t **saliency_ptrs;    /* [saliency_count] */
  char grid[64];
} am_arrays_ds_t;

/* Checks in and dresses it as a dataset whose one shard is called path; messages start
 * with lb ("arrays", "batch 3"). */
am_status am_arrays_ds_make(am_ctx_t *ctx, const am_arrays_t *in, const char *lb,
                            const char *path, am_arrays_ds_t **out);
/* Binds a live run's per-batch extras (run_writer.c) to a's shard: input_ids, labels and
 * predictions as views, the tokens parsed as a shard's attnmap.tokens; each checked as a
 * shard's are, messages starting with lb. x may be NULL. */
am_status am_arrays_ds_bind_extras(am_ctx_t *ctx, am_arrays_ds_t *a,
                                   const am_batch_extras_t *x, const char *lb);
/* The long-context form of in (in->queries set; arrays_long.c): its checks, and its views
 * bound as a's shard's lc (views [4L]: queries, keys, values, attention_output_grads). */
am_status am_arrays_long_check(am_ctx_t *ctx, const am_arrays_t *in, const char *lb);
void am_arrays_long_bind(am_arrays_ds_t *a, const am_arrays_t *in);
/* A borrowed C-contiguous view of data with up to 4 dimensions. */
am_tensor_t am_arrays_view(am_dtype dtype, const void *data, int ndim, int64_t d0, int64_t d1,
                           int64_t d2, int64_t d3);
/* Frees a and what it owns (its shard's tokens among them); NULL does nothing. */
void am_arrays_ds_free(am_arrays_ds_t *a);

#endif
