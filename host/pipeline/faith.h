/* faith.h — faithfulness by perturbation (docs/faithfulness.md, design.md §3b): the target
 * probabilities a model gave on perturbed inputs (PROBS.safetensors, written by
 * attnmap-faithfulness) become per-example scores in RUN/faithfulness.safetensors and a
 * `faithfulness` section in summary.json. One struct holds a validated set of rows in
 * memory, whether it came from PROBS (faith_probs.c) or a run's file (faith_file.c). */
#ifndef AM_PIPELINE_FAITH_H
#define AM_PIPELINE_FAITH_H

#include <jansson.h>
#include <stdint.h>

#include "attnmap.h"

#define AM_FAITH_FILE "faithfulness.safetensors"
#define AM_FAITH_META "attnmap.faithfulness"
#define AM_FAITH_MAX_MAPS 64
#define AM_FAITH_MAX_BINS 100
#define AM_FAITH_STEPS 11 /* curve points 0%, 10%, ..., 100% */

typedef struct am_faith {
  int64_t N;
  int M, K, S;
  json_t *meta; /* the common metadata (version, maps, bins, steps, mode, seed, target,
                   k_rounding, model), owned; the same object for runs that merge */
  const char *maps[AM_FAITH_MAX_MAPS]; /* borrowed from meta */
  double bins[AM_FAITH_MAX_BINS];      /* percent, strictly increasing in (0, 100] */
  /* Rows, owned (aligned copies of the files' data): */
  float *p_full;              /* [N] */
  int32_t *target;            /* [N] the class c */
  int32_t *tokens;            /* [N] rankable tokens; 0: every score is NaN */
  float *comp, *suff;         /* [N,M,K] comprehensiveness, sufficiency */
  float *aopc_c, *aopc_s;     /* [N,M] their means over the bins */
  float *del, *ins;           /* [N,M,S] deletion and insertion curves */
  float *del_area, *ins_area; /* [N,M] trapezoid areas, x in [0,1] */
} am_faith_t;

/* Allocates the rows of f for f->N, M, K, S (zeroed). */
am_status am_faith_alloc(am_ctx_t *ctx, am_faith_t *f);
void am_faith_free(am_faith_t *f);

/* Checks the metadata object `meta` (file names the file in messages) and fills f's maps,
 * bins, M, K, S; run_maps (NULL: not checked) lists the map names the run holds, every
 * name but "random" (which must be last) must be one. f->meta takes a reference. */
am_status am_faith_meta_read(am_ctx_t *ctx, const char *file, json_t *meta,
                             const char *const *run_maps, int nrun_maps, am_faith_t *f);

/* Reads and validates PROBS.safetensors against the run folder it was made from (its
 * summary and examples file: N, lengths, the examples file's size and CRC-32C) and
 * computes every score (faith_scores.c). provenance gets a new object naming the file. */
struct am_run;
am_status am_faith_probs_read(am_ctx_t *ctx, const char *path, const struct am_run *run,
                              am_faith_t *f, json_t **provenance);
/* The same checks on an open file (the fuzzer's entry: check_run_file 0 skips the
 * metadata's record of the run's examples file, which mutations would never match). */
am_status am_faith_probs_check(am_ctx_t *ctx, const am_file_t *pf, const struct am_run *run,
                               int check_run_file, am_faith_t *f, json_t **provenance);
/* Scores of example i from its probabilities: p_removed/p_kept [M,K], del/ins [M,S]
 * already in f->del/f->ins. */
void am_faith_score_row(am_faith_t *f, int64_t i, const float *p_removed,
                        const float *p_kept);

/* dir/faithfulness.safetensors: written from f, or read back and checked against
 * summary's provenance.files record and faithfulness section (N rows). */
am_status am_faith_file_write(am_ctx_t *ctx, const char *dir, const am_faith_t *f);
am_status am_faith_file_read(am_ctx_t *ctx, const char *dir, const json_t *summary,
                             int64_t N, am_faith_t *f);
/* Records the file's bytes and CRC-32C under summary's provenance.files. */
am_status am_faith_file_record(am_ctx_t *ctx, const char *dir, json_t *summary);

/* The summary's `faithfulness` section (aggregates, ranking, listed examples) from the
 * rows; summary is the run's (its agreement section names the most agreed-upon map). */
json_t *am_faith_section(const am_faith_t *f, const json_t *summary);

/* Merge (merge.c): when the runs hold faithfulness files, every one must (same metadata);
 * their rows are concatenated into out_dir's file and doc gets the section and the file's
 * record; none holding one does nothing. */
am_status am_faith_merge(am_ctx_t *ctx, const char *const *runs, const json_t *const *sums,
                         const int64_t *Ns, int nruns, const char *out_dir, json_t *doc);

#endif
