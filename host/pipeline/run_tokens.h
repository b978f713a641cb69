/* run_tokens.h — RUN/tokens.jsonl, the token strings of a live run (docs/live-runs.md): a
 * run made from shards reads them from the shards' attnmap.tokens, a live run has no
 * shards, so it keeps them beside examples.safetensors, one line per example in input
 * order, each a JSON array of the example's valid tokens in position order. Appended row
 * by row (bounded memory), synced at each checkpoint, cut back to the checkpoint on resume;
 * recorded in summary.json's provenance.files with its size and CRC-32C, and checked by
 * am_run_open against the run's lengths. */
#ifndef AM_PIPELINE_RUN_TOKENS_H
#define AM_PIPELINE_RUN_TOKENS_H

#include <stdio.h>

#include "pipeline/aggregate.h"
#include "pipeline/run_folder.h"

#define AM_TOKENS_FILE "tokens.jsonl"

typedef struct am_tokens_out {
  FILE *f;
  char path[4200];
  uint64_t bytes; /* written so far */
} am_tokens_out_t;

/* Creates dir/tokens.jsonl, or with keep_lines > 0 reopens it cut to keep_bytes, which
 * must hold exactly keep_lines lines (AM_STATUS_BAD_INPUT otherwise: not resumable). */
am_status am_tokens_open(am_ctx_t *ctx, am_tokens_out_t *t, const char *dir,
                         uint64_t keep_bytes, int64_t keep_lines);
/* Appends the lines of the chunk's examples (their valid tokens, from the shard's
 * attnmap.tokens as am_shard_token reads them). */
am_status am_tokens_write_chunk(am_ctx_t *ctx, am_tokens_out_t *t, const am_chunk_t *c);
/* Makes the lines durable (a checkpoint counts them). */
am_status am_tokens_sync(am_ctx_t *ctx, am_tokens_out_t *t);
/* Closes; with sync, makes the file durable first. */
am_status am_tokens_close(am_ctx_t *ctx, am_tokens_out_t *t, int sync);

/* Replays the token texts of rows as a run gives them (am_merge_part_t.after_row): user
 * is a FILE* on tokens.jsonl positioned at the part's first row. */
am_status am_tokens_replay_row(void *user, am_ctx_t *ctx, am_aggregates_t *a, int64_t row,
                               const am_agg_row_t *r);

/* A run folder's tokens.jsonl, when it has one: recorded in summary.json's
 * provenance.files with this size and CRC-32C, N lines, line i an array of lengths[i]
 * strings. A recorded file that is missing is an error too. */
am_status am_run_tokens_check(am_ctx_t *ctx, const am_run_t *rf);
/* The lines of dir/tokens.jsonl as a JSON array of arrays; *out NULL when there is none. */
am_status am_run_tokens_load(am_ctx_t *ctx, const char *dir, json_t **out);

#endif
