/* STUB — replaced by the dataset and pipeline work. */
#include "core/ctx.h"
am_status am_dataset_open(am_ctx_t *ctx, const char *const *paths, int npaths, am_dataset_t **out) { (void)paths; (void)npaths; *out = NULL; return am_fail(ctx, AM_STATUS_UNSUPPORTED, "not yet"); }
void am_dataset_close(am_dataset_t *ds) { (void)ds; }
void am_plan_init(am_plan_t *plan) { (void)plan; }
void am_run_options_init(am_run_options_t *o) { (void)o; }
