/* run_dir.h — building a run folder under a temporary name and publishing it whole. */
#ifndef AM_PIPELINE_RUN_DIR_H
#define AM_PIPELINE_RUN_DIR_H

#include <stddef.h>

#include "attnmap.h"
#include "pipeline/replace.h"

/* Fails unless run_dir is absent, or force is set and run_dir is a folder of this kind
 * that attnmap wrote, and never when it is or holds one of the inputs (replace.h). */
am_status am_run_dir_check(am_ctx_t *ctx, const char *run_dir, am_out_kind kind, int force,
                           const am_out_inputs_t *inputs);
/* Makes a new "<run_dir>.tmp-XXXXXX" (mkdtemp) and its missing parents, and writes its path
 * to tmp ("" on failure). */
am_status am_run_dir_begin(am_ctx_t *ctx, const char *run_dir, char *tmp, size_t len);
/* Makes the missing parent folders of path (path itself excepted). */
am_status am_run_dir_make_parents(am_ctx_t *ctx, char *path);
/* Makes the folder dir, which must not exist, and its missing parents. */
am_status am_run_dir_make(am_ctx_t *ctx, char *dir);
/* Renames tmp to run_dir, replacing an old run_dir when am_run_dir_check allows it. */
am_status am_run_dir_publish(am_ctx_t *ctx, const char *tmp, const char *run_dir,
                             am_out_kind kind, int force, const am_out_inputs_t *inputs);
/* Removes a directory tree (best effort). */
void am_rmtree(const char *path);
/* Writes a JSON document to path with fsync. */
struct json_t;
am_status am_write_json(am_ctx_t *ctx, const char *path, struct json_t *doc);

#endif
