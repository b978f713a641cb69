/* shard.h — finding and checking the tensors of one shard (shard.c). */
#ifndef AM_DATASET_SHARD_H
#define AM_DATASET_SHARD_H

#include "dataset/dataset.h"

/* Fills the role pointers of sh from its files and checks shapes; L, H from attentions. */
am_status am_shard_find_roles(am_ctx_t *ctx, am_shard_t *sh, int *L, int *H);
am_status am_shard_find_embeds(am_ctx_t *ctx, am_shard_t *sh);
/* Binds the saliency tensors named like the first shard's (names[i]: "given" or NAME). */
am_status am_shard_find_saliency(am_ctx_t *ctx, am_shard_t *sh, char **names, int n);
/* The saliency names a shard holds, newly allocated. */
am_status am_shard_saliency_names(am_ctx_t *ctx, const am_shard_t *sh, char ***names,
                                  int *n);
/* Reads attnmap.tokens / attnmap.ids metadata of the shard, checked against B and T. */
am_status am_shard_read_metadata(am_ctx_t *ctx, am_shard_t *sh);

#endif
