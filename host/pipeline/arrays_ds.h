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
  am_tensor_t *views;         /* [2L]: attention then gradient layers */
  const am_tensor_t **layers; /* [2L] */
  am_source_t *sources;       /* [2L + saliency_count] */
  char (*names)[40];          /* [2L + saliency_count] */
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
/* Frees a and what it owns (its shard's tokens among them); NULL does nothing. */
void am_arrays_ds_free(am_arrays_ds_t *a);

#endif
