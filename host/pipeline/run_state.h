/* run_state.h — the state of one `attnmap analyze` in progress, shared by the
 * single-process run (run.c) and the distributed job (job.c, job_rows.c): which examples it
 * computes, where it writes them, and how it finishes the run folder. */
#ifndef AM_PIPELINE_RUN_STATE_H
#define AM_PIPELINE_RUN_STATE_H

#include "pipeline/aggregate.h"
#include "pipeline/checksum.h"
#include "pipeline/resume.h"
#include "pipeline/run_dir.h"
#include "pipeline/summary.h"

typedef struct am_run_state {
  am_layout_t lay;
  am_aggregates_t agg;
  am_chunk_t chunk, chunk2; /* chunk2: the second buffer of analyze_all_async */
  am_st_writer_t *writer;
  am_partial_t partial;
  am_out_inputs_t inputs; /* what the run folder must never replace */
  am_checksums_t sums;    /* the inputs' CRC-32C, from the pages the chunks read */
  int checksums;
  int64_t from, to;    /* the examples this process computes: [from, to) */
  int record;          /* 1: a part of a job; checkpoints go to rows-<from>.json */
  am_job_poll_fn poll; /* a part of a job: after each stored chunk; nonzero stops */
  void *poll_user;
  json_t *provenance; /* added to summary.json's provenance (owned), or NULL */
} am_run_state_t;

/* Checks the options and run_dir, locks and opens "<run_dir>.partial" (resumed with
 * opts->resume) and its examples file; *finished = 1 (and nothing else done) when
 * opts->resume finds run_dir finished with these inputs and options (run.c). */
am_status am_run_state_begin(am_ctx_t *ctx, am_run_state_t *r, am_dataset_t *ds,
                             const am_plan_t *plan, const char *run_dir,
                             const am_run_options_t *opts, int *finished);
/* Frees what begin made; after a failure st, removes the partial folder unless it is
 * worth resuming (am_run_partial_worth_keeping). Leaves r itself. */
void am_run_state_free(am_run_state_t *r, am_status st);
/* Computes, writes and aggregates examples [r->from, r->to), chunk by chunk (run.c). */
am_status am_run_state_analyze(am_ctx_t *ctx, am_run_state_t *r, am_dataset_t *ds,
                               const am_run_options_t *opts);
/* Closes the writer, writes summary.json from r->agg and publishes run_dir (run.c). */
am_status am_run_state_finish(am_ctx_t *ctx, am_run_state_t *r, am_dataset_t *ds,
                              const char *run_dir, const am_run_options_t *opts, double t0,
                              am_timings_t *times);
/* 1 when a failure leaves a partial folder worth resuming (an I/O or device failure, a
 * killed process), 0 after bad input or options. */
int am_run_partial_worth_keeping(am_status st);
/* Fails unless every shard is as it was opened (run.c). */
am_status am_run_inputs_unchanged(am_ctx_t *ctx, const am_dataset_t *ds);

/* A part's checkpoint: rows [r->from, done) synced, their CRC-32C in
 * "<RUN>.partial/rows-<from>.json" (job_rows.c). */
am_status am_job_record(am_ctx_t *ctx, am_run_state_t *r, int64_t done);

#endif
