/* run_folder.h — a run folder read back and validated once (run_folder.c): every reader of
 * RUN/ (report, merge, the Python module through am_run_open, the fuzzers) goes through
 * am_run_open, so the checks are the same everywhere. */
#ifndef AM_PIPELINE_RUN_FOLDER_H
#define AM_PIPELINE_RUN_FOLDER_H

#include <jansson.h>

#include "pipeline/layout.h"

struct am_run {
  char dir[4096];
  json_t *summary;    /* summary.json, checked against the examples file */
  char *summary_text; /* its bytes, NUL-terminated */
  am_file_t *examples;
  /* The layout the run was made with, rebuilt from summary.json and checked tensor by
   * tensor against examples.safetensors: N, T, L, H, maps (summary order), pairs (the
   * examples file's attnmap.pairs, equal to summary.json's), specs. */
  am_layout_t lay;
};

/* dir/summary.json alone, parsed (an object with "dataset" and "provenance" objects): for
 * readers of the aggregates only (am_run_compare), which do not need the examples file. */
am_status am_run_read_summary(am_ctx_t *ctx, const char *dir, json_t **out);
/* Opens dir as am_run_open does; with_checksum 0 skips the CRC-32C of the examples file
 * against summary.json (fuzzers only: every mutation would stop there). */
am_status am_run_open_checked(am_ctx_t *ctx, const char *dir, int with_checksum,
                              am_run_t **out);

#endif
