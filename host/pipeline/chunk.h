/* chunk.h — a chunk of consecutive examples of one shard: the views the backend reads,
 * and every per-example result, first compact (valid-token order) then padded to the
 * run's T for writing. Buffers are sized once for the largest chunk and reused. */
#ifndef AM_PIPELINE_CHUNK_H
#define AM_PIPELINE_CHUNK_H

#include "pipeline/layout.h"

typedef struct am_chunk {
  const am_layout_t *lay;
  int cap;  /* examples the buffers hold */
  int Tcap; /* padded length the buffers hold */
  const am_shard_t *sh;
  int64_t row0;    /* first shard row */
  int64_t global0; /* first global example index */
  int nex;
  am_example_t *ex;      /* [cap] */
  const void **att_ptrs; /* [cap*L] */
  const void **grad_ptrs;
  am_lc_example_t *lcex; /* [cap] the long-context form's views (ds->long_form) */
  const void **lc_ptrs;  /* [cap*4*L]: q, k, v, dO layer blocks */
  int32_t *idx;          /* [cap*Tcap] valid positions */
  int *n;                /* [cap] valid tokens */
  /* compact results */
  am_pass_output_t *out;           /* [cap] */
  float *maps;                     /* [nmaps, cap, Tcap] valid-token order */
  float *rows_rollout, *rows_grad; /* [cap, Tcap, Tcap] */
  float *stats;                    /* [cap, STAT, L, H] */
  float *importance;               /* [cap, L, H] */
  double *agree;                   /* [cap, npairs, METRIC] */
  float *agree_x, *agree_y;        /* [cap*npairs, Tcap] gathered compared tokens */
  int *agree_m;                    /* [cap*npairs] */
  int32_t *labels, *predictions;   /* [cap] */
  int32_t *ids;     /* [cap, Tcap] input ids in valid-token order (when present) */
  uint8_t *special; /* [cap, Tcap] special-token flags in valid-token order */
  /* padded results for writing, [*, Tout] */
  uint8_t *mask_out;
  float *padded;                /* [cap, Tout] scratch for one map at a time */
  float *padded_rows;           /* [cap, Tout, Tout] when all_rows */
  struct am_chunk_steps *steps; /* several targets (steps.h), else NULL */
  struct am_chunk_cross *cross; /* encoder-decoder maps (cross_run.h), else NULL */
} am_chunk_t;

am_status am_chunk_alloc(am_ctx_t *ctx, am_chunk_t *c, const am_layout_t *lay, int cap,
                         int Tcap);
void am_chunk_free(am_chunk_t *c);

/* Loads the views of rows [row0, row0+nex) of shard sh and checks targets. */
am_status am_chunk_load(am_ctx_t *ctx, am_chunk_t *c, const am_dataset_t *ds, int shard,
                        int64_t row0, int nex);

/* Runs the backend pass, saliency and agreement on the loaded chunk. Bad input comes
 * back as AM_STATUS_BAD_INPUT naming file, tensor, example, layer, head and row. */
am_status am_chunk_compute(am_ctx_t *ctx, am_chunk_t *c, const am_dataset_t *ds);

/* am_chunk_compute in two halves for backends with pass_submit/pass_wait: submit starts
 * the backend's pass and returns; finish waits for the oldest submitted chunk and does
 * the rest (fault report, flow, saliency, agreement). c stays untouched in between. */
am_status am_chunk_submit(am_ctx_t *ctx, am_chunk_t *c);
am_status am_chunk_finish(am_ctx_t *ctx, am_chunk_t *c, const am_dataset_t *ds);

/* The backend's fault at example e of the chunk as a one-line bad-input message
 * (chunk_check.c). */
am_status am_chunk_report_fault(am_ctx_t *ctx, const am_chunk_t *c, const am_fault_t *f,
                                int e);
/* Refuses maps or head importance that are not finite after the pass (chunk_check.c). */
am_status am_chunk_check_finite(am_ctx_t *ctx, const am_chunk_t *c);

/* Map m of example e in valid-token order. */
static inline float *am_chunk_map(const am_chunk_t *c, int m, int e) {
  return c->maps + ((size_t)m * (size_t)c->cap + (size_t)e) * (size_t)c->Tcap;
}

/* Examples per chunk: --chunk, else the backend's choice, else what fits a 256 MiB budget
 * of input bytes but at least one example per thread (run.c). */
int am_run_chunk_examples(const am_ctx_t *ctx, const am_dataset_t *ds,
                          const am_layout_t *lay);

/* Opens dir/examples.safetensors for lay's tensors with the run's metadata (attnmap.pairs,
 * attnmap.version, model when not NULL); resume: reopens the file an interrupted run left.
 */
am_status am_examples_writer_open(am_ctx_t *ctx, const char *dir, const am_layout_t *lay,
                                  const char *model, int resume, am_st_writer_t **out);

/* Writes the chunk's rows into examples.safetensors. */
am_status am_chunk_write(am_ctx_t *ctx, am_chunk_t *c, am_st_writer_t *w);

#endif
