/* shard.h — finding and checking the tensors of one shard (shard.c). */
#ifndef AM_DATASET_SHARD_H
#define AM_DATASET_SHARD_H

#include "dataset/dataset.h"

/* Layers times heads, at most: 126 x 128 in the largest models of 2025. A bound is
 * needed because a tensor with B = 0 or T = 0 holds no bytes whatever L and H it claims,
 * and the pipeline sizes per-example buffers by L x H. */
#define AM_MAX_LAYER_HEADS 65536

/* "[2,12,128,128]" into buf (shard.c). */
void am_shape_text(const am_tensor_t *t, char *buf, size_t len);
/* Fills the role pointers of sh from its files and checks shapes; L, H from attentions. */
am_status am_shard_find_roles(am_ctx_t *ctx, am_shard_t *sh, int *L, int *H);
/* Collects role.{l} (or a stacked role) into out; *L = 0 when there is none (shard.c). */
am_status am_shard_collect_layers(am_ctx_t *ctx, am_shard_t *sh, const char *role,
                                  am_layers_t *out, int *L);
/* The long-context form of a shard whose queries.{l} were collected as Lq layers: the
 * other tensors, every shape and dtype, attnmap.attention (long_form.c). */
am_status am_shard_find_long(am_ctx_t *ctx, am_shard_t *sh, int Lq, int *L, int *H);
/* Shard sh holds the same form as the dataset's first shard, and in the long-context form
 * the same Hkv, d and attnmap.attention (long_form.c). */
am_status am_long_same_as_first(am_ctx_t *ctx, const am_dataset_t *ds,
                                const am_shard_t *sh);
am_status am_shard_find_embeds(am_ctx_t *ctx, am_shard_t *sh);
/* A tensor of the shard by exact name (src: where it came from; may be NULL), or NULL. */
const am_tensor_t *am_shard_tensor(const am_shard_t *sh, const char *name,
                                   am_source_t *src);
/* The optional input images: U8 [B,Hpx,Wpx,3], 1..16384 pixels a side (images.c). */
am_status am_shard_find_images(am_ctx_t *ctx, am_shard_t *sh);
/* Example b's image [Hpx,Wpx,3] of shard sh, or NULL when the shard has none. */
const uint8_t *am_shard_image(const am_shard_t *sh, int64_t b, int *height, int *width);
/* Binds the saliency tensors named like the first shard's (names[i]: "given" or NAME). */
am_status am_shard_find_saliency(am_ctx_t *ctx, am_shard_t *sh, char **names, int n);
/* The saliency names a shard holds, newly allocated. */
am_status am_shard_saliency_names(am_ctx_t *ctx, const am_shard_t *sh, char ***names,
                                  int *n);
/* generation_start and step_attention_grads.{l} of a shard whose attentions gave L and H
 * (steps.c). */
am_status am_shard_find_steps(am_ctx_t *ctx, am_shard_t *sh, int L, int H);
/* A 3-D saliency tensor t: per step [B,S_in,T] in a float dtype; *S_in (steps.c). */
am_status am_shard_check_step_saliency(am_ctx_t *ctx, const am_shard_t *sh,
                                       const am_tensor_t *t, const am_source_t *src,
                                       int *S_in);
/* Reads attnmap.tokens / attnmap.ids metadata of the shard, checked against B and T. */
am_status am_shard_read_metadata(am_ctx_t *ctx, am_shard_t *sh);

#endif
