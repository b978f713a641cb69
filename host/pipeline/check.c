/* check.c — am_dataset_check: every attention row of the dataset read and checked by the
 * backend's pass with nothing else wanted (used by `attnmap inspect`). */
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "pipeline/chunk.h"

am_status am_dataset_check(am_ctx_t *ctx, const am_dataset_t *ds) {
  am_clear_error(ctx);
  am_plan_t plan;
  am_plan_init(&plan);
  plan.methods = 0;
  am_layout_t *lay = calloc(1, sizeof *lay);
  if (!lay)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  am_status st = am_layout_build(ctx, ds, &plan, lay);
  am_chunk_t c;
  memset(&c, 0, sizeof c);
  int cap = st == AM_STATUS_OK ? am_run_chunk_examples(ctx, ds, lay) : 1;
  if (st == AM_STATUS_OK)
    st = am_chunk_alloc(ctx, &c, lay, cap, ds->Tmax);
  for (int s = 0; s < ds->nshards && st == AM_STATUS_OK; s++)
    for (int64_t row = 0; row < ds->shards[s].B && st == AM_STATUS_OK; row += cap) {
      int nex = (int)(ds->shards[s].B - row < cap ? ds->shards[s].B - row : cap);
      st = am_chunk_load(ctx, &c, ds, s, row, nex);
      if (st == AM_STATUS_OK)
        st = am_chunk_compute(ctx, &c, ds);
      am_shard_release_rows(ds, s, row, nex); /* bounded resident memory, as analyze */
    }
  am_chunk_free(&c);
  free(lay);
  return st;
}
