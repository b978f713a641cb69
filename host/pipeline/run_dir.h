/* run_dir.h — building a run folder under a temporary name and publishing it whole. */
#ifndef AM_PIPELINE_RUN_DIR_H
#define AM_PIPELINE_RUN_DIR_H

#include <stddef.h>

#include "attnmap.h"

/* Fails unless run_dir is absent, or force is set. */
am_status am_run_dir_check(am_ctx_t *ctx, const char *run_dir, int force);
/* Makes "<run_dir>.tmp-<pid>" (removing a stale one) and writes its path to tmp. */
am_status am_run_dir_begin(am_ctx_t *ctx, const char *run_dir, char *tmp, size_t len);
/* Makes an empty folder tmp (removing what was there) and its missing parents. */
am_status am_run_dir_make(am_ctx_t *ctx, char *tmp);
/* Renames tmp to run_dir, replacing an old run_dir when force is set. */
am_status am_run_dir_publish(am_ctx_t *ctx, const char *tmp, const char *run_dir,
                             int force);
/* Removes a directory tree (best effort). */
void am_rmtree(const char *path);
/* Writes a JSON document to path with fsync. */
struct json_t;
am_status am_write_json(am_ctx_t *ctx, const char *path, struct json_t *doc);

#endif
