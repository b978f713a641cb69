/* images.c — the optional input images of a vision dataset (docs/formats.md): tensor
 * `images` U8 [B,Hpx,Wpx,3], RGB, row-major, the picture the model saw (or any picture the
 * patch grid covers). Only the report reads them, to draw maps over them; a shard without
 * them is fine. */
#include <stdio.h>

#include "core/ctx.h"
#include "dataset/shard.h"

#define AM_IMAGE_MAX_SIDE 16384 /* the PNG writer's bound */

am_status am_shard_find_images(am_ctx_t *ctx, am_shard_t *sh) {
  am_source_t src = {0};
  const am_tensor_t *t = am_shard_tensor(sh, "images", &src);
  sh->images = NULL;
  if (!t)
    return AM_STATUS_OK;
  char found[128];
  am_shape_text(t, found, sizeof found);
  if (t->dtype != AM_DTYPE_U8)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor images: dtype %s is not U8 (RGB bytes [B,Hpx,Wpx,3])",
                   src.path, am_dtype_name(t->dtype));
  if (t->ndim != 4 || t->shape[0] != sh->B || t->shape[3] != 3 || t->shape[1] < 1 ||
      t->shape[2] < 1 || t->shape[1] > AM_IMAGE_MAX_SIDE || t->shape[2] > AM_IMAGE_MAX_SIDE)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor images: expected shape [B,Hpx,Wpx,3] with B=%lld and "
                   "1..%d pixels a side, found %s",
                   src.path, (long long)sh->B, AM_IMAGE_MAX_SIDE, found);
  sh->images = t;
  sh->images_src = src;
  return AM_STATUS_OK;
}

const uint8_t *am_shard_image(const am_shard_t *sh, int64_t b, int *height, int *width) {
  const am_tensor_t *t = sh->images;
  if (!t || b < 0 || b >= sh->B)
    return NULL;
  *height = (int)t->shape[1];
  *width = (int)t->shape[2];
  return (const uint8_t *)t->data + (size_t)b * (size_t)t->shape[1] * t->shape[2] * 3;
}
