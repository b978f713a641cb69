/* summary.h — composing RUN/summary.json: provenance, dataset, layout, aggregates. */
#ifndef AM_PIPELINE_SUMMARY_H
#define AM_PIPELINE_SUMMARY_H

#include <jansson.h>

#include "pipeline/aggregate.h"

typedef struct am_timings {
  double checksum_s, analyze_s, total_s;
} am_timings_t;

/* The plan as JSON (every option that changes a number). */
json_t *am_plan_to_json(const am_layout_t *lay);

/* provenance.options.steps of a run with several targets (steps_summary.c): max_steps
 * (S), gradients ("per_step" or "shared"), maps (the maps with step rows). */
json_t *am_steps_options_json(const am_layout_t *lay);
/* Reads provenance.options.steps back into lay (S, map_steps; run_folder.c). */
am_status am_steps_options_read(am_ctx_t *ctx, const json_t *steps, const char *where,
                                am_layout_t *lay);
/* steps and step_positions of a run's examples file hold what they say: 0..S steps, each
 * a valid position after the previous one, -1 past the steps (run_folder.c). */
am_status am_steps_check_file(am_ctx_t *ctx, const am_file_t *f, const am_layout_t *lay);
/* summary.json's "steps" section from dir/examples.safetensors as written (the same
 * function for analyze, merge and live runs): added to doc when the run has steps. */
am_status am_steps_summary_add(am_ctx_t *ctx, json_t *doc, const char *dir,
                               const am_layout_t *lay);

/* inputs: array of {path, bytes, crc32} (borrowed reference stolen by the result). */
json_t *am_summary_build(am_ctx_t *ctx, const am_dataset_t *ds, const am_layout_t *lay,
                         const am_aggregates_t *agg, json_t *inputs, const am_timings_t *t);

/* {path, bytes, crc32c} for every file of every shard, in dataset order; crc32c from
 * crcs[k] (pipeline/checksum.h), none when crcs is NULL. */
am_status am_inputs_json(am_ctx_t *ctx, const am_dataset_t *ds, const uint32_t *crcs,
                         json_t **out);

double am_now_seconds(void);

/* CRC-32C of a whole file, read in pieces on the context's threads. */
am_status am_file_crc32c(am_ctx_t *ctx, const char *path, uint32_t *crc);

/* Records {"bytes", "crc32c"} of dir/examples.safetensors as provenance.files in doc, so
 * that a reader can tell the summary belongs to that file (run_folder.c checks it). */
am_status am_summary_add_files(am_ctx_t *ctx, json_t *doc, const char *dir);
/* {"bytes", "crc32c"} of the file at path (a new object in *out). */
am_status am_summary_file_record(am_ctx_t *ctx, const char *path, json_t **out);

#endif
