/* live_shape.h — what every batch of a live run must share (run_writer.c): layers, heads,
 * dtype, the inputs present, the saliency names and the embedding width. The first batch
 * fixes it (in the long-context form also Hkv, d and attnmap.attention); it is recorded in the partial folder's checkpoint so that a resumed run
 * rebuilds the same layout before its first batch arrives. */
#ifndef AM_PIPELINE_LIVE_SHAPE_H
#define AM_PIPELINE_LIVE_SHAPE_H

#include <jansson.h>

#include "pipeline/arrays_ds.h"

typedef struct am_live_shape {
  int L, H;
  am_dtype dtype;
  unsigned roles; /* AM_ROLE_* bits */
  int embed_dim;
  int nsaliency;
  char **saliency; /* [nsaliency] names, owned */
  int long_form;   /* the long-context form: then Hkv, d and the attention's settings */
  int Hkv, d;
  am_attention_spec_t attn;
} am_live_shape_t;

/* The shape of a batch (names copied). */
am_status am_live_shape_of(am_ctx_t *ctx, const am_arrays_ds_t *a, am_live_shape_t *s);
/* Refuses a batch whose shape is not the run's, naming the batch (lb), the tensor and the
 * difference. */
am_status am_live_shape_check(am_ctx_t *ctx, const am_live_shape_t *run,
                              const am_live_shape_t *batch, const char *lb);
json_t *am_live_shape_json(const am_live_shape_t *s);
/* 0 on success, -1 when j is not a shape am_live_shape_json wrote. */
int am_live_shape_parse(const json_t *j, am_live_shape_t *s);
void am_live_shape_free(am_live_shape_t *s);

#endif
