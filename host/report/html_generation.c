/* html_generation.c — the generation view of a run with several targets
 * (docs/generation.md): per shown example, one heatmap per per-step map, generated tokens
 * (the steps) down and the tokens they are explained over across, as inseq draws it; and
 * the dataset's aggregates per step position (summary.json steps.per_step). Token strings
 * come from the dataset or the run like every other view, and are escaped like all data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "dataset/dataset.h"
#include "report/colormap.h"
#include "report/report.h"
#include "report/svg.h"

#define GEN_MAX_ROWS 64  /* steps drawn per map; a note says when there are more */
#define GEN_MAX_COLS 256 /* tokens drawn across */

/* An encoder-decoder run's maps over the source tokens, each non-negative by construction
 * (docs/generation.md); a run's other per-step maps are "<map>.steps" of its [N,T] maps. */
static const char *const source_maps[] = {
    "cross.rollout.steps",
    "cross.grad_rollout.steps",
    "cross.attention_last.steps",
    "cross.grad_x_attention.steps",
};

/* A tensor of dtype and shape [N, S, W], or NULL. */
static const am_tensor_t *shaped(const am_report_t *r, const char *name, am_dtype dtype,
                                 int ndim, int64_t S, int64_t W) {
  const am_tensor_t *t = am_file_find(r->run.file, name);
  if (!t || t->dtype != dtype || t->ndim != ndim || t->shape[0] != r->run.N)
    return NULL;
  if (ndim >= 2 && S >= 0 && t->shape[1] != S)
    return NULL;
  if (ndim >= 3 && W >= 0 && t->shape[2] != W)
    return NULL;
  return t;
}

/* steps [N] and step_positions [N,S] when the run has several targets; S, or 0. */
static int run_steps(const am_report_t *r, const am_tensor_t **steps,
                     const am_tensor_t **pos) {
  *pos = shaped(r, "step_positions", AM_DTYPE_I32, 2, -1, -1);
  *steps = shaped(r, "steps", AM_DTYPE_I32, 1, -1, -1);
  if (!*pos || !*steps || (*pos)->shape[1] < 1 || (*pos)->shape[1] > 1 << 20)
    return 0;
  return (int)(*pos)->shape[1];
}

/* The source token string of position p (valid rank among n) from the dataset's
 * attnmap.source_tokens, or NULL. */
static const char *dataset_source_token(const am_report_t *r, int64_t ex, int p, int rank,
                                        int n) {
  for (int s = 0; r->ds && s < r->ds->nshards; s++) {
    const am_shard_t *sh = &r->ds->shards[s];
    if (ex < sh->first || ex >= sh->first + sh->B)
      continue;
    return p < sh->cross.Tenc ? am_shard_source_token(sh, ex - sh->first, p, rank, n)
                              : NULL;
  }
  return NULL;
}

/* The column label of a source-side map: the dataset's source token string, else the
 * source token id when the run has them, else the source position. */
static void source_label(am_report_t *r, int64_t ex, int p, int rank, int n,
                         const am_tensor_t *ids, int64_t W) {
  char buf[64], text[512];
  const char *raw = dataset_source_token(r, ex, p, rank, n);
  if (!raw && ids)
    snprintf(buf, sizeof buf, "[%lld]", (long long)am_rr_int(ids, ex * W + p));
  else if (!raw)
    snprintf(buf, sizeof buf, "%d", p);
  am_html_text(&r->html, raw ? am_token_display(raw, text, sizeof text) : buf);
}

static void token_cell_text(am_report_t *r, int64_t ex, int pos, int rank, int n) {
  char buf[64], text[512];
  const char *raw = am_report_token(r, ex, pos, rank, n, buf, sizeof buf);
  am_html_text(&r->html, am_token_display(raw, text, sizeof text));
}

/* Row k of the map at column position p (0 beyond the tensor). */
static float cell(const am_tensor_t *t, int64_t ex, int S, int64_t W, int k, int p) {
  return am_rr_f32(t, ((ex * S) + k) * W + p);
}

/* One map's heatmap for example ex: rows are its steps, columns the decoder's valid tokens
 * up to the last step (or the source's valid tokens). */
static void heatmap(am_report_t *r, int64_t ex, const char *name, int source,
                    const am_tensor_t *t, int S, int nsteps, const am_tensor_t *pos,
                    const int32_t *idx, int n, int open) {
  am_html_t *h = &r->html;
  int64_t W = t->shape[2];
  /* columns: padded positions */
  int32_t cols[GEN_MAX_COLS];
  int ncols = 0, more_cols = 0, nsource = 0;
  const am_tensor_t *smask =
      source ? shaped(r, "source_mask", AM_DTYPE_U8, 2, W, -1) : NULL;
  const am_tensor_t *ids = source ? shaped(r, "source_ids", AM_DTYPE_I32, 2, W, -1) : NULL;
  int last = -1;
  for (int k = 0; k < nsteps; k++) {
    int p = (int)am_rr_int(pos, ex * S + k);
    last = p > last ? p : last;
  }
  if (source) {
    for (int j = 0; j < W; j++)
      if (!smask || am_rr_int(smask, ex * W + j)) {
        nsource++;
        if (ncols < GEN_MAX_COLS)
          cols[ncols++] = j;
        else
          more_cols = 1;
      }
  } else {
    for (int i = 0; i < n && idx[i] <= last; i++) {
      if (ncols < GEN_MAX_COLS)
        cols[ncols++] = idx[i];
      else
        more_cols = 1;
    }
  }
  int rows = nsteps < GEN_MAX_ROWS ? nsteps : GEN_MAX_ROWS;
  /* one scale for the drawn cells: min..max (symmetric for signed maps) */
  char base[128];
  snprintf(base, sizeof base, "%.*s", (int)(strlen(name) - 6), name);
  am_colormap c =
      !source && am_rr_map_signed(base) ? AM_COLORMAP_RDBU_R : AM_COLORMAP_VIRIDIS;
  double lo = INFINITY, hi = -INFINITY;
  for (int k = 0; k < rows; k++) {
    int p = (int)am_rr_int(pos, ex * S + k);
    for (int j = 0; j < ncols; j++) {
      float v = cell(t, ex, S, W, k, cols[j]);
      if ((source || cols[j] <= p) && isfinite(v)) {
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
      }
    }
  }
  if (!isfinite(lo))
    lo = hi = 0;
  if (c == AM_COLORMAP_RDBU_R) {
    double m = fabs(lo) > fabs(hi) ? fabs(lo) : fabs(hi);
    lo = -m;
    hi = m;
  }
  if (!(hi > lo))
    hi = lo + 1.0;
  am_html_printf(h, "<details class=\"gen\"%s><summary>", open ? " open" : "");
  am_html_text(h, base);
  am_html_printf(h, " · %d step%s × %d %s token%s · scale %.4g .. %.4g</summary>", nsteps,
                 nsteps == 1 ? "" : "s", ncols, source ? "source" : "prefix",
                 ncols == 1 ? "" : "s", lo, hi);
  if (rows < nsteps || more_cols)
    am_html_printf(h, "<p class=\"note\">The first %d steps and %d tokens are drawn.</p>",
                   rows, ncols);
  am_html_raw(h, "<div class=\"tv\"><table><thead><tr><th>step</th><th>token</th>");
  for (int j = 0; j < ncols; j++) {
    am_html_raw(h, "<th class=\"vt\">");
    if (source) {
      source_label(r, ex, cols[j], j, nsource, ids, W);
    } else {
      int rank = 0;
      while (rank < n && idx[rank] != cols[j])
        rank++;
      token_cell_text(r, ex, cols[j], rank, n);
    }
    am_html_raw(h, "</th>");
  }
  am_html_raw(h, "</tr></thead><tbody>");
  for (int k = 0; k < rows; k++) {
    int p = (int)am_rr_int(pos, ex * S + k), rank = 0;
    while (rank < n && idx[rank] != p)
      rank++;
    am_html_printf(h, "<tr><th class=\"num\">%d</th><th>", k);
    token_cell_text(r, ex, p, rank, n);
    am_html_raw(h, "</th>");
    for (int j = 0; j < ncols; j++) {
      if (!source && cols[j] > p) { /* after the step: not part of its prefix */
        am_html_raw(h, "<td></td>");
        continue;
      }
      float v = cell(t, ex, S, W, k, cols[j]);
      uint8_t rgb[3];
      am_colormap_rgb(c, v, lo, hi, rgb);
      am_html_printf(h, "<td%s style=\"background:#%02x%02x%02x\" title=\"%.4g\"></td>",
                     am_colormap_is_light(rgb) ? "" : " class=\"d\"", rgb[0], rgb[1],
                     rgb[2], v);
    }
    am_html_raw(h, "</tr>");
  }
  am_html_raw(h, "</tbody></table></div></details>");
}

am_status am_report_generation_example(am_report_t *r, int64_t ex, const int32_t *idx,
                                       int n) {
  const am_tensor_t *steps, *pos;
  int S = run_steps(r, &steps, &pos);
  if (!S)
    return AM_STATUS_OK;
  am_html_t *h = &r->html;
  int nsteps = (int)am_rr_int(steps, ex);
  am_html_raw(h, "<h4>Generation</h4>");
  if (nsteps <= 0 || nsteps > S) {
    am_html_raw(h, "<p class=\"note\">No step (target) in this example.</p>");
    return AM_STATUS_OK;
  }
  for (int k = 0; k < nsteps; k++) { /* every step a valid position of the example */
    int p = (int)am_rr_int(pos, ex * S + k), i = 0;
    while (i < n && idx[i] != p)
      i++;
    if (i == n)
      return am_fail(r->ctx, AM_STATUS_BAD_INPUT,
                     "%s/examples.safetensors: step_positions: example %lld step %d is "
                     "position %d, not one of its valid tokens",
                     r->run.dir, (long long)ex, k, p);
  }
  am_html_raw(h, "<p>Each row is a step: its target row's token (left) explained over the "
                 "tokens up to it (across; for an encoder-decoder map, the source tokens). "
                 "attnmap-export's generation mode scores each row by the token generated "
                 "after it (docs/exporter.md). Hover a cell for its value.</p>");
  int drawn = 0;
  for (int m = 0; m < r->run.nmaps; m++) { /* the run's order: attention maps first */
    char name[160];
    snprintf(name, sizeof name, "%s.steps", r->run.map_names[m]);
    const am_tensor_t *t = shaped(r, name, AM_DTYPE_F32, 3, S, r->run.T);
    if (t)
      heatmap(r, ex, name, 0, t, S, nsteps, pos, idx, n, drawn++ == 0);
  }
  for (size_t m = 0; m < sizeof source_maps / sizeof *source_maps; m++) {
    const am_tensor_t *t = shaped(r, source_maps[m], AM_DTYPE_F32, 3, S, -1);
    if (t)
      heatmap(r, ex, source_maps[m], 1, t, S, nsteps, pos, idx, n, drawn++ == 0);
  }
  return AM_STATUS_OK;
}

/* Aggregates per step position: examples per step, each map's prefix share and each
 * pair's mean agreement, as lines over the step position. */
am_status am_report_generation_summary(am_report_t *r) {
  json_t *st = am_jget(r->run.summary, "steps", NULL);
  json_t *per = json_object_get(st, "per_step");
  size_t K = json_array_size(per);
  if (!json_is_object(st) || K == 0)
    return AM_STATUS_OK;
  am_html_t *h = &r->html;
  double *v = malloc(K * sizeof *v);
  if (!v)
    return am_fail(r->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  am_html_raw(h, "<section id=\"generation\"><h2>Generation: per step position</h2><p>");
  const char *target = am_jstr(json_object_get(st, "target"));
  am_html_raw(h, "Targets ");
  am_html_text(h, target ? target : "?");
  am_html_printf(h, ": %.0f examples with steps, up to %.0f steps; gradients ",
                 am_jnum(json_object_get(st, "examples")),
                 am_jnum(json_object_get(st, "max_steps")));
  const char *grads = am_jstr(json_object_get(st, "gradients"));
  am_html_text(h, grads ? grads : "none");
  am_html_raw(h, ".</p>");
  for (size_t k = 0; k < K; k++)
    v[k] = am_jnum(json_object_get(json_array_get(per, k), "count"));
  am_html_raw(h, "<h3>Examples per step position</h3>");
  am_svg_lines(h, v, (int)K, 480, 120, "step");
  /* prefix share per map, from the first entry's keys */
  json_t *share0 = json_object_get(json_array_get(per, 0), "prefix_share");
  const char *map;
  json_t *unused;
  json_object_foreach(share0, map, unused) {
    for (size_t k = 0; k < K; k++)
      v[k] = am_jnum(am_jget(json_array_get(per, k), "prefix_share", map, NULL));
    am_html_raw(h, "<h3>Share of ");
    am_html_text(h, map);
    am_html_raw(h, " on the tokens before the first step</h3>");
    am_svg_lines(h, v, (int)K, 480, 120, "step");
  }
  json_t *agr0 = json_object_get(json_array_get(per, 0), "agreement");
  const char *pair;
  json_object_foreach(agr0, pair, unused) {
    for (size_t k = 0; k < K; k++)
      v[k] = am_jnum(
          am_jget(json_array_get(per, k), "agreement", pair, "spearman", "mean", NULL));
    am_html_raw(h, "<h3>Mean Spearman of ");
    am_html_text(h, pair);
    am_html_raw(h, " per step</h3>");
    am_svg_lines(h, v, (int)K, 480, 120, "step");
  }
  am_html_raw(h, "</section>\n");
  free(v);
  return AM_STATUS_OK;
}
