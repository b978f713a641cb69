/* steps.h — several targets in a chunk (docs/generation.md): each example's steps, the
 * step rows of the maps ([nsteps, n] in valid-token order, as the pass writes them), the
 * per-step agreement, and the writing of [N,S,W] tensors (steps_chunk.c, steps_write.c).
 * The machinery is meant for any per-step map (encoder-decoder maps reuse the writer). */
#ifndef AM_PIPELINE_STEPS_H
#define AM_PIPELINE_STEPS_H

#include "pipeline/chunk.h"

typedef struct am_chunk_steps {
  int S;                       /* lay->S */
  int *nsteps;                 /* [cap] */
  int32_t *steps;              /* [cap, S] valid-token indices, increasing */
  const void **step_grad_ptrs; /* [cap * L]: example e's step_attention_grads blocks */
  float *rows;                 /* [nstep_maps, cap, S * Tcap] */
  float *agree;                /* [cap, S, P, METRIC]: NaN where undefined or absent */
  float *pad;                  /* [cap, S, max(Tout, P)] one tensor's rows for writing */
  /* the fallback (one single-target pass per step) */
  am_example_t *sub_ex;
  am_lc_example_t *sub_lc;
  am_pass_output_t *sub_out;
  int *sub_map;          /* sub-batch slot -> chunk example */
  const void **sub_grad; /* [cap * L] */
  /* the per-step agreement of one step of one example */
  float *x, *y;           /* [P, Tcap] */
  int *m;                 /* [P] */
  const float **xp, **yp; /* [P] */
  double *res;            /* [P, METRIC] */
} am_chunk_steps_t;

am_status am_steps_alloc(am_ctx_t *ctx, am_chunk_t *c);
void am_steps_free(am_chunk_t *c);

/* Example e's rows of map m: [nsteps, n] (row stride n). */
static inline float *am_steps_rows(const am_chunk_t *c, int m, int e) {
  const am_chunk_steps_t *st = c->steps;
  size_t slot = (size_t)c->lay->step_slot[m];
  return st->rows + (slot * (size_t)c->cap + (size_t)e) * (size_t)st->S * (size_t)c->Tcap;
}

/* Example e's steps (from its loaded valid positions), its view's nsteps/steps/step_grad
 * and its step outputs bound (am_chunk_load calls it). */
void am_steps_load(am_chunk_t *c, int e);

/* The backend's pass for a chunk with several targets: the *_STEPS outputs asked for;
 * where the backend answers AM_STATUS_UNSUPPORTED (or for the long-context form), one
 * single-target pass per step, asking only the target-dependent outputs — the
 * definition of a step row, so equal bit for bit. fault/bad as example_pass's, bad a
 * chunk index. */
am_status am_steps_pass(am_ctx_t *ctx, am_chunk_t *c, const am_dataset_t *ds,
                        am_fault_t *fault, int *bad);
/* After the pass: per-step saliency copied, every map with step rows set to the mean of
 * its rows (0 with no steps). */
am_status am_steps_means(am_ctx_t *ctx, am_chunk_t *c);
/* agreement.steps: each pair with step rows on both sides, step by step, over the valid
 * (non-special) tokens at or before the step's position, the step's own token left out
 * unless plan.include_target. */
am_status am_steps_agreement(am_ctx_t *ctx, am_chunk_t *c);

/* Writes the chunk's rows of an [N,S,W] tensor (spec) from rows [nex, S, W] of elem bytes
 * per value (steps_write.c). */
am_status am_steps_put(am_chunk_t *c, am_st_writer_t *w, int spec, const void *rows,
                       size_t W, size_t elem);
/* steps, step_positions, <map>.steps and agreement.steps.* of the chunk. */
am_status am_steps_write(am_ctx_t *ctx, am_chunk_t *c, am_st_writer_t *w);

#endif
