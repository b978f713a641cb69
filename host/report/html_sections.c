/* html_sections.c — the dataset-level parts of the page: provenance, the layer x head
 * grids of every head statistic and of head importance (PNG + axes, top heads named),
 * mean importance by position (line charts) and the top tokens of each map. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "report/colormap.h"
#include "report/png.h"
#include "dataset/dataset.h"
#include "report/report.h"
#include "report/svg.h"

static void row_json(am_html_t *h, const char *key, json_t *v) {
  am_html_raw(h, "<tr><th>");
  am_html_text(h, key);
  am_html_raw(h, "</th><td>");
  char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
  am_html_text(h, text ? text : am_jstr(v));
  free(text);
  am_html_raw(h, "</td></tr>");
}

am_status am_report_provenance(am_report_t *r) {
  am_html_t *h = &r->html;
  json_t *prov = am_jget(r->run.summary, "provenance", NULL);
  am_html_raw(h, "<section id=\"provenance\"><h2>Provenance</h2><div class=\"grid\"><div>"
                 "<h3>Run</h3><table>");
  const char *key;
  json_t *v;
  json_object_foreach(prov, key, v) if (!json_is_object(v) && !json_is_array(v))
      row_json(h, key, v);
  json_object_foreach(am_jget(prov, "timings", NULL), key, v) row_json(h, key, v);
  am_html_raw(h, "</table><h3>Dataset</h3><table>");
  json_object_foreach(am_jget(r->run.summary, "dataset", NULL), key, v) row_json(h, key, v);
  am_html_raw(h, "</table></div><div><h3>Options</h3><table>");
  json_object_foreach(am_jget(prov, "options", NULL), key,
                      v) if (!json_is_array(v) || json_array_size(v) < 8)
      row_json(h, key, v);
  am_html_raw(h,
              "</table></div><div><h3>Input files</h3><table class=\"sortable\"><thead><tr>"
              "<th>path</th><th>bytes</th><th>crc32c</th></tr></thead><tbody>");
  size_t i;
  json_array_foreach(am_jget(prov, "inputs", NULL), i, v) {
    am_html_raw(h, "<tr><td>");
    am_html_text(h, am_jstr(json_object_get(v, "path")));
    am_html_printf(h, "</td><td class=\"num\">%.0f</td><td>",
                   am_jnum(json_object_get(v, "bytes")));
    am_html_text(h, am_jstr(json_object_get(v, "crc32c")));
    am_html_raw(h, "</td></tr>");
  }
  am_html_raw(h, "</tbody></table></div></div>");
  if (r->note[0] && r->live) {
    am_html_raw(h, "<p class=\"note\" id=\"dataset-note\"><b>Missing from this report:</b> "
                   "the model view and the head view of each example, which draw the "
                   "attention matrices. Why: ");
    am_html_text(h, r->note);
    am_html_raw(h, ". To see them, write the batches as shards (<code>examples/export_hf.py"
                   "</code>) and pass them with <code>attnmap report RUN --dataset PATH"
                   "</code>.</p>");
  } else if (r->note[0]) {
    am_html_raw(h,
                "<p class=\"note\" id=\"dataset-note\"><b>Missing from this report:</b> "
                "the model view and the head view of each example, which draw the "
                "attention matrices (the run folder keeps maps and statistics, not the "
                "matrices: they stay in the dataset), and the dataset's token strings "
                "where summary.json does not hold them. Why: ");
    am_html_text(h, r->note);
    am_html_raw(
        h, " (a run folder copied or moved without its dataset reads it from the recorded "
           "path). Pass the dataset with <code>attnmap report RUN --dataset PATH</code>."
           "</p>");
  }
  am_html_raw(h, "</section>\n");
  return AM_STATUS_OK;
}

/* The k largest finite cells of v [n], as indices, into top. Returns how many. */
static int top_cells(const double *v, int n, int k, int *top) {
  int m = 0;
  for (int i = 0; i < n && k > 0; i++) {
    int at;
    if (!isfinite(v[i]))
      continue;
    if (m < k)
      at = m++;
    else if (v[i] > v[top[k - 1]])
      at = k - 1;
    else
      continue;
    while (at > 0 && v[top[at - 1]] < v[i]) { /* ties keep the lower index first */
      top[at] = top[at - 1];
      at--;
    }
    top[at] = i;
  }
  return m;
}

/* One grid: PNG under img/, the figure, the top heads named. */
static am_status head_grid(am_report_t *r, const char *name, const char *file,
                           const double *v, am_colormap cmap, const char *what) {
  int L = r->run.L, H = r->run.H, n = L * H, k = r->opts.topk_heads;
  int big = L > H ? L : H, cell = big ? 480 / big : 1;
  cell = cell < 6 ? 6 : cell > 32 ? 32 : cell;
  float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
  int *top = malloc((size_t)(k > 0 ? k : 1) * sizeof *top);
  if (!f || !top) {
    free(f);
    free(top);
    return am_fail(r->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  }
  for (int i = 0; i < n; i++)
    f[i] = (float)v[i];
  am_png_options_t o;
  am_png_options_init(&o);
  o.colormap = cmap;
  o.scale = cell;
  o.quantity = name;
  double lo, hi;
  am_colormap_auto_limits(cmap, f, (size_t)n, &lo, &hi);
  o.vmin = lo;
  o.vmax = hi;
  char path[4200], src[128];
  snprintf(src, sizeof src, "img/%s", file);
  am_status st =
      am_png_write_map(r->ctx, am_report_img_path(r, path, sizeof path, file), f, L, H, &o);
  if (st == AM_STATUS_OK) {
    am_html_t *h = &r->html;
    am_html_raw(h, "<div class=\"card\"><h3>");
    am_html_text(h, name);
    am_html_printf(h, "</h3><div style=\"font-size:12px;color:#555\">%s</div>", what);
    am_svg_heatmap_t m = {src, "layer", "head", name, NULL, L, H, cell, cmap, lo, hi};
    am_svg_heatmap(h, &m);
    int nt = top_cells(v, n, k, top);
    am_html_printf(h, "<div style=\"font-size:12px\">top %d heads:</div><ol class=\"top\">",
                   nt);
    for (int i = 0; i < nt; i++)
      am_html_printf(h, "<li>layer %d, head %d: %.4g</li>", top[i] / H, top[i] % H,
                     v[top[i]]);
    am_html_raw(h, "</ol></div>");
  }
  free(f);
  free(top);
  return st;
}

am_status am_report_heads(am_report_t *r) {
  am_html_t *h = &r->html;
  int L = r->run.L, H = r->run.H;
  am_html_raw(h,
              "<section id=\"heads\"><h2>Heads</h2><p>Per layer (rows) and head (columns): "
              "the dataset mean of each head statistic over examples, and head importance "
              "(Michel et al. 2019, L2-normalised within each layer). Grey: undefined.</p>"
              "<div class=\"grid\">");
  double *v = malloc((size_t)(L * H > 0 ? L * H : 1) * sizeof *v);
  if (!v)
    return am_fail(r->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  am_status st = AM_STATUS_OK;
  json_t *score = am_jget(r->run.summary, "head_importance", "score", NULL);
  if (L * H > 0 && json_is_array(score)) {
    am_jgrid(score, L, H, v);
    st = head_grid(r, "importance", "heads-importance.png", v, AM_COLORMAP_MAGMA,
                   "head importance score");
  }
  const char *stat;
  json_t *s;
  int k = 0;
  json_object_foreach(am_jget(r->run.summary, "head_stats", NULL), stat, s) {
    k++;
    if (st != AM_STATUS_OK || L * H == 0 || strcmp(stat, "importance") == 0)
      continue;
    char file[64];
    snprintf(file, sizeof file, "heads-%d.png", k);
    am_jgrid(json_object_get(s, "mean"), L, H, v);
    st = head_grid(r, stat, file, v, AM_COLORMAP_VIRIDIS, "mean over examples");
  }
  free(v);
  am_html_raw(h, "</div></section>\n");
  return st;
}

static void top_tokens(am_html_t *h, const char *map, json_t *list) {
  double mx = 0;
  size_t i;
  json_t *t;
  json_array_foreach(list, i, t) {
    double m = fabs(am_jnum(json_object_get(t, "mean")));
    mx = m > mx ? m : mx;
  }
  am_html_raw(h, "<div class=\"card\"><h3>");
  am_html_text(h, map);
  am_html_raw(
      h, "</h3><table class=\"sortable\"><thead><tr><th>#</th><th>token</th><th>id</th>"
         "<th>count</th><th>mean</th></tr></thead><tbody>");
  json_array_foreach(list, i, t) {
    double m = am_jnum(json_object_get(t, "mean"));
    am_html_printf(h, "<tr><td class=\"num\">%zu</td><td class=\"tok\">", i + 1);
    const char *text = am_jstr(json_object_get(t, "text"));
    char shown[512];
    const char *d = text ? am_token_display(text, shown, sizeof shown) : NULL;
    if (d && d != text) { /* decoded byte-level BPE; the raw token on hover */
      am_html_raw(h, "<span style=\"white-space:pre\" title=\"token ");
      am_html_text(h, text);
      am_html_raw(h, "\">");
      am_html_text(h, d);
      am_html_raw(h, "</span>");
    } else if (text)
      am_html_text(h, text);
    else
      am_html_printf(h, "[%.0f]", am_jnum(json_object_get(t, "id")));
    am_html_printf(h,
                   "</td><td class=\"num\">%.0f</td><td class=\"num\">%.0f</td>"
                   "<td class=\"num\" data-v=\"%.9g\"><span style=\"display:inline-block;"
                   "width:%.0fpx;height:8px;background:#5c6bc0;margin-right:4px\"></span>",
                   am_jnum(json_object_get(t, "id")), am_jnum(json_object_get(t, "count")),
                   m, mx > 0 && isfinite(m) ? 60 * fabs(m) / mx : 0.0);
    am_html_num(h, m);
    am_html_raw(h, "</td></tr>");
  }
  am_html_raw(h, "</tbody></table></div>");
}

/* Without token ids (ViT: patches) the per-token table is empty: the positions of highest
 * mean importance instead, named by patch row and column under a grid. */
static void top_positions(am_report_t *r, const char *map, json_t *vals) {
  am_html_t *h = &r->html;
  am_grid_t g;
  int grid = am_report_grid(r, &g);
  size_t n = json_array_size(vals);
  int idx[20], k = 0;
  for (; k < 20; k++) { /* the 20 largest, ties to the lower position */
    int best = -1;
    double bv = -INFINITY;
    for (size_t i = grid ? (size_t)g.prefix : 0; i < n; i++) {
      double v = am_jnum(json_array_get(vals, i));
      int taken = 0;
      for (int j = 0; j < k && !taken; j++)
        taken = idx[j] == (int)i;
      if (!taken && isfinite(v) && v > bv) {
        bv = v;
        best = (int)i;
      }
    }
    if (best < 0)
      break;
    idx[k] = best;
  }
  am_html_raw(h, "<div class=\"card\"><h3>");
  am_html_text(h, map);
  am_html_printf(h, "</h3><table class=\"sortable\"><thead><tr><th>#</th><th>%s</th>"
                    "<th>mean</th></tr></thead><tbody>",
                 grid ? "patch (row, column)" : "position");
  for (int j = 0; j < k; j++) {
    if (grid)
      am_html_printf(h, "<tr><td class=\"num\">%d</td><td>(%d, %d)</td>", j + 1,
                     (idx[j] - g.prefix) / g.cols, (idx[j] - g.prefix) % g.cols);
    else
      am_html_printf(h, "<tr><td class=\"num\">%d</td><td class=\"num\">%d</td>", j + 1,
                     idx[j]);
    am_html_raw(h, "<td class=\"num\">");
    am_html_num(h, am_jnum(json_array_get(vals, (size_t)idx[j])));
    am_html_raw(h, "</td></tr>");
  }
  am_html_raw(h, "</tbody></table></div>");
}

am_status am_report_positions(am_report_t *r) {
  am_html_t *h = &r->html;
  json_t *pos = am_jget(r->run.summary, "positions", "mean", NULL);
  am_html_raw(h, "<section id=\"positions\"><h2>Importance by position</h2><p>Mean of each "
                 "map at each valid-token position (0 = the first real token), over the "
                 "examples that reach it.</p><div class=\"grid\">");
  const char *map;
  json_t *vals;
  json_object_foreach(pos, map, vals) {
    size_t n = json_array_size(vals);
    double *v = malloc((n ? n : 1) * sizeof *v);
    if (!v)
      return am_fail(r->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
    for (size_t i = 0; i < n; i++)
      v[i] = am_jnum(json_array_get(vals, i));
    am_html_raw(h, "<div class=\"card\"><h3>");
    am_html_text(h, map);
    am_html_raw(h, "</h3>");
    am_svg_lines(h, v, (int)n, 360, 170, "position");
    am_html_raw(h, "</div>");
    free(v);
  }
  am_html_raw(h, "</div>");
  am_status st = am_report_grid_mean(r);
  if (st != AM_STATUS_OK)
    return st;
  json_t *top = am_jget(r->run.summary, "tokens_table", "top", NULL);
  int any = 0;
  json_object_foreach(top, map, vals) any |= json_array_size(vals) > 0;
  if (any) {
    am_html_raw(h, "<h2 id=\"tokens\">Top tokens</h2><p>Tokens of highest mean importance "
                   "per map (tokens seen at least twice when there are more than 20).</p>"
                   "<div class=\"grid\">");
    json_object_foreach(top, map, vals) top_tokens(h, map, vals);
  } else {
    am_html_raw(h, "<h2 id=\"tokens\">Top positions</h2><p>The inputs hold no token ids "
                   "(image patches, or no input_ids), so the positions of highest mean "
                   "importance per map, prefix tokens (CLS) left out.</p><div "
                   "class=\"grid\">");
    json_object_foreach(pos, map, vals) top_positions(r, map, vals);
  }
  am_html_raw(h, "</div></section>\n");
  return AM_STATUS_OK;
}
