/* overlay_png.c — am_run_write_overlay: one example's map over its image as a PNG file,
 * drawn as the report draws its overlays, for a user who wants a picture for a slide or
 * a paper (the CLI's `attnmap overlay`). Reads the run folder and the dataset it came
 * from (or opts->dataset) as the report does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/options.h"
#include "dataset/dataset.h"
#include "report/report.h"

/* Everything but the drawing: the map, the grid, the dataset and its image. */
static am_status find(am_report_t *r, int64_t ex, const char *map, am_grid_t *g, int *m) {
  const char *dir = r->run_dir;
  for (*m = 0; *m < r->run.nmaps && strcmp(r->run.map_names[*m], map); ++*m)
    ;
  if (*m == r->run.nmaps)
    return am_fail(r->ctx, AM_STATUS_BAD_INPUT, "%s: map %s: not in the run's maps", dir,
                   map);
  if (ex < 0 || ex >= r->run.N)
    return am_fail(r->ctx, AM_STATUS_BAD_INPUT,
                   "%s: example %lld: the run holds examples 0..%lld", dir, (long long)ex,
                   (long long)r->run.N - 1);
  if (!am_report_grid(r, g))
    return am_fail(r->ctx, AM_STATUS_BAD_INPUT,
                   "%s/summary.json: dataset.grid: the run has no patch grid "
                   "(__metadata__ attnmap.grid), nothing to draw over an image",
                   dir);
  am_report_source_open(r);
  if (!r->ds)
    return am_fail(r->ctx, AM_STATUS_BAD_INPUT, "%s: no dataset for the image: %s", dir,
                   r->note);
  return AM_STATUS_OK;
}

static const char *shard_path(const am_dataset_t *ds, int64_t ex) {
  for (int s = 0; s < ds->nshards; s++)
    if (ex >= ds->shards[s].first && ex < ds->shards[s].first + ds->shards[s].B)
      return ds->shards[s].path;
  return ds->nshards ? ds->shards[0].path : "dataset";
}

am_status am_run_write_overlay(am_ctx_t *ctx, const char *run_dir, int64_t example,
                               const char *map, const char *path,
                               const am_report_options_t *opts) {
  if (!run_dir || !map || !path)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "am_run_write_overlay: run_dir, map and path are needed");
  am_report_t r = {0};
  if (opts)
    r.opts = *opts;
  else
    am_report_options_init(&r.opts);
  am_status st = am_options_check(ctx, AM_SCOPE_REPORT, &r.opts, NULL, 0);
  if (st != AM_STATUS_OK)
    return st;
  r.ctx = ctx;
  r.run_dir = run_dir;
  am_grid_t g;
  int m, H, W;
  int32_t *idx = NULL;
  float *v = NULL;
  uint8_t *out = NULL;
  const uint8_t *img;
  if ((st = am_report_run_open(ctx, run_dir, 1, &r.run)) != AM_STATUS_OK ||
      (st = find(&r, example, map, &g, &m)) != AM_STATUS_OK)
    goto done;
  idx = malloc((size_t)(r.run.T ? r.run.T : 1) * sizeof *idx);
  v = malloc((size_t)g.rows * g.cols * sizeof *v);
  if (!idx || !v) {
    st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
    goto done;
  }
  if (!am_report_patches(&r, &g, example, m, idx, v)) {
    st = am_fail(ctx, AM_STATUS_BAD_INPUT,
                 "%s: example %lld: its valid tokens are not the %dx%d+%d grid's", run_dir,
                 (long long)example, g.rows, g.cols, g.prefix);
    goto done;
  }
  int n = g.prefix + g.rows * g.cols;
  if (!am_report_source_matches(&r, example, idx, n) ||
      !(img = am_report_image(&r, example, &H, &W))) {
    st = am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor images: %s for example %lld",
                 shard_path(r.ds, example),
                 am_report_source_matches(&r, example, idx, n)
                     ? "not found"
                     : "the dataset's valid tokens differ from the run's",
                 (long long)example);
    goto done;
  }
  if (!(out = malloc((size_t)H * W * 3)))
    st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  else
    st = am_report_overlay_draw(&r, &g, v, map, img, H, W, out, path);
done:
  free(idx);
  free(v);
  free(out);
  am_dataset_close(r.ds);
  json_decref(r.tokens);
  free(r.vocab);
  am_report_run_close(&r.run);
  return st;
}
