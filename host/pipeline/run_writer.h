/* run_writer.h — the insides of am_run_writer_t (docs/live-runs.md): a run folder written
 * batch by batch. run_writer.c feeds batches through the chunk code of am_run_analyze;
 * run_writer_dir.c owns the partial folder (begin, resume, checkpoints, publishing). */
#ifndef AM_PIPELINE_RUN_WRITER_H
#define AM_PIPELINE_RUN_WRITER_H

#include "pipeline/aggregate.h"
#include "pipeline/arrays_ds.h"
#include "pipeline/live_shape.h"
#include "pipeline/resume.h"
#include "pipeline/run_tokens.h"

/* A batch handed in and not yet stored whole. */
typedef struct live_batch {
  am_arrays_ds_t *a; /* the batch as a one-shard dataset of borrowed views */
  int index;         /* over the run's life, from 0 */
  int64_t first, B;  /* its first example in the run; its examples */
  int chunks_left;   /* chunks not yet stored */
} live_batch_t;

typedef struct live_pending {
  am_chunk_t *c;
  live_batch_t *b;
} live_pending_t;

#define LIVE_OPEN_MAX 3

struct am_run_writer {
  am_ctx_t *ctx;
  char run_dir[4096];
  am_plan_t plan;
  char *pairs; /* plan.pairs, owned */
  am_run_options_t opts;
  int64_t N;
  int T;
  char *model, *grid, *target;
  char target_from[32];
  am_dataset_t ds;   /* the run as a dataset (layout, summary): N, L, H, T, roles, ... */
  am_shard_t shard0; /* ds's one shard: path "batch 0", B the largest batch so far */
  char shard0_path[16];
  am_live_shape_t shape;
  int have_shape;
  int device_pointers; /* of this process's batches; -1 before the first */
  int async;           /* batches are submitted and finished later (pass_submit) */
  am_layout_t lay;
  am_aggregates_t agg;
  am_partial_t partial;
  int began; /* the partial folder is ours (locked) */
  am_st_writer_t *st;
  am_tokens_out_t tokens;
  am_chunk_t chunk[2];
  int cap, next;
  live_pending_t pend[2];
  int npend;
  live_batch_t *open[LIVE_OPEN_MAX];
  int nopen;
  int64_t added, stored, boundary; /* examples handed in, written, of whole batches */
  int batches, batches_done;
  uint64_t tokens_boundary; /* tokens.jsonl bytes at the boundary */
  double t0, last_checkpoint, busy_s;
  am_status failed;
  char why[1024];
  int complete; /* resume found the run finished with these options: nothing to do */
};

/* Resolves the layout from w->shape and w's info (run_writer_dir.c). */
am_status am_live_layout(am_run_writer_t *w);
/* Starts a fresh partial folder for the run's layout: examples file, tokens, aggregates. */
am_status am_live_begin(am_run_writer_t *w);
/* With opts.resume: continues a matching partial folder; *from = examples kept (0: none,
 * the folder is begun afresh by the first batch). */
am_status am_live_resume(am_run_writer_t *w, int64_t *from);
/* With resume: 1 when run_dir is a finished live run of this plan, size and metadata
 * (what analyze --resume leaves as it is); w->shape and w->lay are then its. */
int am_live_finished(am_run_writer_t *w);
/* Records the whole batches stored so far (w->boundary) as the checkpoint. */
am_status am_live_checkpoint(am_run_writer_t *w);
/* Writes summary.json and renames the partial folder to the run folder. */
am_status am_live_publish(am_run_writer_t *w);

#endif
