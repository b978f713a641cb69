/* resume.h — the partial run folder "<RUN>.partial": a lock, a checkpoint after every
 * chunk, and `--resume` picking up where an interrupted run stopped (resume.c). */
#ifndef AM_PIPELINE_RESUME_H
#define AM_PIPELINE_RESUME_H

#include "pipeline/aggregate.h"

typedef struct am_partial {
  char dir[4096]; /* "<RUN>.partial" */
  int lock_fd;    /* flock held while the run writes the folder */
  int64_t done;   /* examples already complete in dir (0 for a fresh run) */
  int kept;       /* 1: a resumed folder (its examples file is reopened, not remade) */
  json_t *inputs; /* identity of the inputs: path, bytes, mtime */
  uint32_t *crc;  /* [nspecs] CRC-32C of each tensor's rows [0, crc_rows) */
  int64_t crc_rows;
  json_t *live; /* a live run (run_writer.c): its batches' shape, compared on resume */
  json_t *live_state; /* and its state at the checkpoint (batches, tokens bytes): not */
} am_partial_t;

/* 1 when run_dir is a finished run whose summary.json names these options and these
 * inputs with the sizes and modification times they have now (what --resume leaves as
 * it is), 0 when it is another run or unreadable, -1 when nothing is there. */
int am_run_matches(const am_layout_t *lay, const am_dataset_t *ds, const char *run_dir);

/* "<run_dir>.partial" (without run_dir's trailing slashes) into buf. */
void am_partial_dir(char *buf, size_t len, const char *run_dir);

/* Locks "<run_dir>.partial". With resume and a checkpoint that matches these options and
 * inputs and whose rows still have the CRC-32C it recorded (an edited progress.json or
 * partial file is never trusted), keeps it and sets p->done; otherwise starts it empty. */
am_status am_partial_begin(am_ctx_t *ctx, const char *run_dir, const am_layout_t *lay,
                           const am_dataset_t *ds, int resume, am_partial_t *p);
/* am_partial_begin for a live run: live (borrowed, referenced) is recorded in every
 * checkpoint and must be the recorded one for a resume. */
am_status am_partial_begin_live(am_ctx_t *ctx, const char *run_dir, const am_layout_t *lay,
                                const am_dataset_t *ds, int resume, json_t *live,
                                am_partial_t *p);
/* Makes the rows written so far durable and records that `done` examples are complete. */
am_status am_partial_checkpoint(am_ctx_t *ctx, am_partial_t *p, const am_layout_t *lay,
                                am_st_writer_t *w, int64_t done);
/* Aggregates the p->done completed rows again from the partial examples file, in order,
 * with the token texts of the dataset, exactly as the interrupted run did. */
am_status am_partial_replay(am_ctx_t *ctx, const am_partial_t *p, const am_layout_t *lay,
                            const am_dataset_t *ds, am_aggregates_t *agg);
/* Extends p->crc (the CRC-32C of each tensor's rows [first, p->crc_rows) of the partial
 * examples file) to rows [first, to). */
am_status am_partial_extend_crc(am_ctx_t *ctx, am_partial_t *p, const am_layout_t *lay,
                                int64_t to);
/* The checkpoint document: format, version, options, inputs, done, rows' CRC-32C. */
json_t *am_partial_checkpoint_json(const am_partial_t *p, const am_layout_t *lay,
                                   int64_t done);
/* Removes the parts' checkpoints "rows-<first>.json" of a job from dir (job_rows.c). */
void am_job_drop_records(const char *dir);
/* 1 when name is a part's checkpoint (or a temporary of one) a job writes (job_rows.c). */
int am_job_record_name(const char *name);

/* Drops the lock; complete: also the bookkeeping files, before the folder is published.
 * Without complete, the checkpoint stays for a later --resume. */
void am_partial_end(am_partial_t *p, int complete);

#endif
