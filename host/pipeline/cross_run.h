/* cross_run.h — the decoder→encoder maps of an encoder-decoder model in a run
 * (docs/generation.md, "Encoder-decoder models"): the options that rebuild their tensors
 * (cross_layout.c) and a chunk's views, results and writing (cross_chunk.c). */
#ifndef AM_PIPELINE_CROSS_RUN_H
#define AM_PIPELINE_CROSS_RUN_H

#include <jansson.h>

#include "ops/cross_example.h"
#include "pipeline/chunk.h"

/* provenance.options.cross of summary.json: maps, max_source_tokens, source_ids. */
json_t *am_cross_options_json(const am_layout_t *lay);
/* Reads it back into lay (cross_want, Tenc, cross_ids); absent: no cross maps. */
am_status am_cross_options_read(am_ctx_t *ctx, const json_t *cross, const char *where,
                                am_layout_t *lay);

typedef struct am_chunk_cross {
  int S, Tenc;            /* steps and source length the buffers hold */
  am_cross_example_t *ex; /* [cap] */
  const void **ptrs;      /* [cap * 3L]: cross, cross_grad, step_cross_grad layer blocks */
  int32_t *enc_idx;       /* [cap, Tenc] valid source positions */
  int *n_enc;             /* [cap] */
  int32_t *single;        /* [cap] the one step of a single-target run */
  float *maps;            /* [AM_CROSS_OUTPUT_COUNT, cap, S * Tenc] valid-token order */
  am_cross_output_t *out; /* [cap] */
  float *pad;             /* [cap, S, Tenc] one tensor's rows for writing */
} am_chunk_cross_t;

/* Buffers for lay->cross_want (nothing when 0); am_chunk_alloc and am_chunk_free call them.
 */
am_status am_cross_chunk_alloc(am_ctx_t *ctx, am_chunk_t *c);
void am_cross_chunk_free(am_chunk_t *c);
/* Example e's source positions and cross tensors (am_chunk_load calls it after the
 * decoder's view and steps); a step beyond the per-step gradients is bad input. */
am_status am_cross_chunk_load(am_ctx_t *ctx, am_chunk_t *c, int e);
/* The cross op on the chunk: the backend's, else the CPU reference beside it; a fault
 * comes back as one line naming file, tensor, example, layer, head and positions. */
am_status am_cross_chunk_compute(am_ctx_t *ctx, am_chunk_t *c);
/* source_mask, source_lengths, source_ids and cross.<name>.steps of the chunk. */
am_status am_cross_chunk_write(am_ctx_t *ctx, am_chunk_t *c, am_st_writer_t *w);

#endif
