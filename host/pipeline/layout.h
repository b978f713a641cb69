/* layout.h — a plan resolved against a dataset: which maps, statistics and agreement
 * pairs a run produces, and the tensors of examples.safetensors that hold them. */
#ifndef AM_PIPELINE_LAYOUT_H
#define AM_PIPELINE_LAYOUT_H

#include "attnmap.h"
#include "dataset/dataset.h"
#include "io/file.h"
#include "ops/example.h"
#include "pipeline/maps.h"

#define AM_MAX_MAPS 32
#define AM_MAX_PAIRS (AM_MAX_MAPS * (AM_MAX_MAPS - 1) / 2)

typedef struct am_map {
  const am_map_def_t *def; /* its entry in the list of maps (maps.h) */
  am_map_kind kind;        /* def's, copied */
  int sub;                 /* def's, or the saliency tensor's index (given saliency) */
  int is_attention;        /* def's: attention-side map (for "attention vs gradients") */
  char name[80];           /* "rollout", "saliency.ig" */
} am_map_t;

typedef struct am_layout {
  int64_t N;
  int L, H, T; /* T: the largest padded length (outputs' T) */
  am_plan_t plan;
  am_pass_options_t pass;
  int target; /* AM_ROW_MEAN or a fixed valid-token index (resolved per example) */
  int target_from_exporter; /* 1: plan.target is the dataset's recorded one */
  int nmaps;
  am_map_t maps[AM_MAX_MAPS];
  int npairs;
  int pair_a[AM_MAX_PAIRS], pair_b[AM_MAX_PAIRS];
  char pair_names[AM_MAX_PAIRS][164];
  int head_stats, head_importance, derived_saliency, has_labels, has_predictions;
  int worst_pair; /* pair ranked for "attention and gradients disagree most", or -1 */
  /* several targets (--target A:B or gen; docs/generation.md, steps_layout.c) */
  int several;                /* 1: plan.target is AM_TARGET_RANGE or AM_TARGET_GEN */
  int S;                      /* the largest number of steps of an example, at least 1 */
  int step_grads;             /* 1: grad_rollout.steps reads step_attention_grads */
  int map_steps[AM_MAX_MAPS]; /* 1: map m has step rows ("<name>.steps" [N,S,T]) */
  int step_slot[AM_MAX_MAPS]; /* map m's place among the maps with step rows, or -1 */
  int nstep_maps;
  int step_pairs; /* 1: some pair has step rows on both sides (agreement.steps.*) */
  int spec_steps, spec_step_positions, spec_step_metric0;
  int spec_step_map[AM_MAX_MAPS]; /* "<name>.steps" of map m, or -1 */
  /* examples.safetensors */
  int nspecs;
  am_tensor_spec_t specs[32 + 2 * AM_MAX_MAPS + AM_STAT_COUNT + 2 * AM_METRIC_COUNT];
  char spec_names[32 + 2 * AM_MAX_MAPS + AM_STAT_COUNT + 2 * AM_METRIC_COUNT][96];
  int spec_mask, spec_lengths, spec_map0, spec_rows_rollout, spec_rows_grad;
  int spec_stat0, spec_importance, spec_metric0, spec_labels, spec_predictions;
  int spec_ids, spec_special;
  int has_ids, has_special;
  /* encoder-decoder maps (cross_layout.c; docs/generation.md): the AM_CROSS_* maps written
   * as cross.<name>.steps [N,S,Tenc] (S: lay->S with several targets, else 1) */
  unsigned cross_want;
  int Tenc;      /* the largest padded source length */
  int cross_ids; /* 1: source_ids written (the dataset has encoder_input_ids) */
  int spec_source_mask, spec_source_lengths, spec_source_ids;
  int spec_cross[AM_CROSS_OUTPUT_COUNT]; /* cross.<name>.steps of each AM_CROSS_* place */
} am_layout_t;

/* Resolves plan against ds. Errors: a method asked for explicitly whose inputs are
 * missing, a pair naming an unknown map, bad option values. */
am_status am_layout_build(am_ctx_t *ctx, const am_dataset_t *ds, const am_plan_t *plan,
                          am_layout_t *lay);

/* The metric's output name with k filled in ("jaccard@5"). */
void am_layout_metric_name(const am_layout_t *lay, int metric, char *buf, size_t len);

/* Valid-token index of the target for an example with n valid tokens; AM_ROW_MEAN;
 * or -2 when a fixed index is out of range. */
int am_layout_target(const am_layout_t *lay, int n);
/* The valid-token index left out of agreement and per-token rankings for an example with n
 * valid tokens (the single target token unless plan.include_target), or -1 for none. */
int am_layout_excluded(const am_layout_t *lay, int n);

/* Fills lay->specs: the tensors of examples.safetensors (examples_file.c). */
am_status am_layout_specs(am_ctx_t *ctx, am_layout_t *lay);
/* Appends a tensor to lay->specs (shape d0[,d1[,d2]]); returns its index. */
int am_layout_add_spec(am_layout_t *lay, const char *name, am_dtype dtype, int ndim,
                       int64_t d0, int64_t d1, int64_t d2);

/* Encoder-decoder maps (cross_layout.c): which ones the plan and dataset give (the plan's
 * attention_last, rollout and grad_rollout methods; not with --target mean). */
am_status am_layout_cross(am_ctx_t *ctx, const am_dataset_t *ds, am_layout_t *lay);
/* Their specs: source_mask, source_lengths, source_ids, cross.<name>.steps. */
void am_layout_cross_specs(am_layout_t *lay);
/* "cross.<name>.steps" of AM_CROSS_* place k. */
const char *am_cross_map_name(int k);
/* Steps per example of the cross tensors: lay->S with several targets, else 1. */
int am_layout_cross_S(const am_layout_t *lay);

/* Several targets (steps_layout.c): which maps and pairs have step rows and, from the
 * dataset's masks and generation_start (read once), S; the per-step inputs checked to hold
 * every example's steps. Called by am_layout_build when plan.target has several. */
am_status am_layout_steps(am_ctx_t *ctx, const am_dataset_t *ds, am_layout_t *lay);
/* Marks map_steps/step_slot/step_pairs from the maps (map_steps of given saliency set). */
void am_layout_step_maps(am_layout_t *lay);
/* The step tensors' specs: steps, step_positions, <map>.steps, agreement.steps.<metric>. */
void am_layout_step_specs(am_layout_t *lay);
#endif
