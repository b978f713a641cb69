/* html_examples.c — the examples part of the page: the table of examples where attention
 * and gradients disagree most, the table of misclassified examples, and for each a block
 * (opened from the tables) with per-map strips and the token-level view that colours the
 * real tokens by every map side by side; attention views where the dataset is at hand. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "report/colormap.h"
#include "report/png.h"
#include "report/report.h"
#include "report/svg.h"

/* The value of the disagreement pair and metric for example i (NaN when absent). */
static double disagreement_value(const am_report_t *r, int64_t i) {
  const char *pair = am_jstr(am_jget(r->run.summary, "disagreement", "pair", NULL));
  const char *metric = am_jstr(am_jget(r->run.summary, "disagreement", "metric", NULL));
  for (int p = 0; pair && metric && p < r->run.npairs; p++)
    if (strcmp(r->run.pairs[p], pair) == 0)
      for (int m = 0; m < r->run.nmetrics; m++)
        if (strcmp(r->run.metric_names[m], metric) == 0)
          return am_rr_f32(r->run.metrics[m], i * r->run.npairs + p);
  return NAN;
}

static void label_cells(am_html_t *h, const am_report_t *r, int64_t i) {
  if (r->run.labels)
    am_html_printf(h, "<td class=\"num\">%lld</td>",
                   (long long)am_rr_int(r->run.labels, i));
  if (r->run.predictions)
    am_html_printf(h, "<td class=\"num\">%lld</td>",
                   (long long)am_rr_int(r->run.predictions, i));
}

static void table(am_report_t *r, unsigned why, const char *title) {
  am_html_t *h = &r->html;
  const char *pair = am_jstr(am_jget(r->run.summary, "disagreement", "pair", NULL));
  const char *metric = am_jstr(am_jget(r->run.summary, "disagreement", "metric", NULL));
  am_html_printf(h,
                 "<h3>%s</h3><table class=\"sortable\"><thead><tr>%s<th>example</th><th>",
                 title, why == AM_SHOWN_DISAGREE ? "<th>rank</th>" : "");
  am_html_text(h, metric ? metric : "score");
  am_html_raw(h, " of ");
  am_html_text(h, pair ? pair : "?");
  am_html_printf(h, "</th>%s%s<th>tokens</th><th>views</th></tr></thead><tbody>",
                 r->run.labels ? "<th>label</th>" : "",
                 r->run.predictions ? "<th>predicted</th>" : "");
  for (int k = 0; k < r->nshown; k++) {
    const am_shown_t *s = &r->shown[k];
    if (!(s->why & why))
      continue;
    am_html_raw(h, "<tr>");
    if (why == AM_SHOWN_DISAGREE)
      am_html_printf(h, "<td class=\"num\">%d</td>", s->rank);
    am_html_printf(h,
                   "<td class=\"num\" data-v=\"%lld\"><a href=\"#ex-%lld\">%lld</a></td>"
                   "<td class=\"num\" data-v=\"%.9g\">",
                   (long long)s->index, (long long)s->index, (long long)s->index, s->score);
    am_html_num(h, s->score);
    am_html_raw(h, "</td>");
    label_cells(h, r, s->index);
    am_html_printf(h, "<td class=\"num\">%lld</td><td>%s</td></tr>",
                   (long long)am_rr_int(r->run.lengths, s->index),
                   s->views ? "model, head" : "");
  }
  am_html_raw(h, "</tbody></table>");
}

/* The valid-token index of the run's single target token when the run left it out of its
 * rankings (options target and include_target of summary.json), else -1. */
static int excluded_target(const am_report_t *r, int n) {
  const json_t *opt = am_jget(r->run.summary, "provenance", "options", NULL);
  const json_t *t = json_object_get(opt, "target");
  if (n <= 0 || json_is_true(json_object_get(opt, "include_target")) ||
      !json_object_get(opt, "include_target")) /* runs made before the option: all shown */
    return -1;
  const char *name = json_string_value(t);
  if (json_is_integer(t)) {
    json_int_t k = json_integer_value(t), at = k < 0 ? n + k : k;
    return at >= 0 && at < n ? (int)at : -1;
  }
  return !name || !strcmp(name, "cls") ? 0 : !strcmp(name, "last") ? n - 1 : -1;
}

/* Limits and colormap of one map over an example's valid tokens but the excluded target:
 * min..max for non-negative maps (the min-max scaling of Chefer et al.'s notebooks, so that
 * the 1/n the identity adds to every token under --target mean does not flatten the
 * strip), symmetric for signed ones. The target's own cell is drawn, clipped to the scale.
 */
static am_colormap limits(const char *map, const float *v, int n, int excluded, double *lo,
                          double *hi) {
  am_colormap c = am_rr_map_signed(map) ? AM_COLORMAP_RDBU_R : AM_COLORMAP_VIRIDIS;
  double a = INFINITY, b = -INFINITY;
  for (int i = 0; i < n; i++)
    if (i != excluded && isfinite(v[i])) {
      a = v[i] < a ? v[i] : a;
      b = v[i] > b ? v[i] : b;
    }
  if (!isfinite(a)) { /* nothing but the target: its own scale */
    am_colormap_auto_limits(c, v, (size_t)n, lo, hi);
    return c;
  }
  if (c == AM_COLORMAP_RDBU_R) {
    double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    a = -m;
    b = m;
  }
  *lo = a;
  *hi = b > a ? b : a + (a != 0 ? fabs(a) * 1e-6 : 1.0);
  return c;
}

/* One strip per map: PNG of the valid tokens, label and limits. */
static am_status strips(am_report_t *r, int64_t ex, const float *vals, int n) {
  am_html_t *h = &r->html;
  int scale = n ? 640 / n : 1;
  scale = scale < 1 ? 1 : scale > 32 ? 32 : scale;
  am_html_raw(h, "<h4>Maps</h4>");
  int excluded = excluded_target(r, n);
  if (excluded >= 0)
    am_html_printf(h,
                   "<p class=\"note\">Colour scales: min..max over the tokens but the "
                   "target (position %d), whose own mass (the residual identity) would "
                   "take the whole scale; it is drawn clipped (analyze "
                   "--include-target keeps it in).</p>",
                   excluded);
  am_html_raw(h, "<table><tbody>");
  for (int m = 0; m < r->run.nmaps; m++) {
    const float *v = vals + (size_t)m * n;
    am_png_options_t o;
    am_png_options_init(&o);
    o.colormap = limits(r->run.map_names[m], v, n, excluded_target(r, n), &o.vmin, &o.vmax);
    o.scale = scale;
    o.quantity = r->run.map_names[m];
    char file[96], path[4200];
    snprintf(file, sizeof file, "ex%lld-%d.png", (long long)ex, m);
    am_status st = am_png_write_map(r->ctx, am_report_img_path(r, path, sizeof path, file),
                                    v, 1, n, &o);
    if (st != AM_STATUS_OK)
      return st;
    am_html_raw(h, "<tr><th>");
    am_html_text(h, r->run.map_names[m]);
    am_html_printf(h, "</th><td><img class=\"strip\" src=\"img/%s\" width=\"%d\" alt=\"",
                   file, n * scale);
    am_html_text(h, r->run.map_names[m]);
    am_html_printf(h, "\"></td><td class=\"num\">%s %.3g .. %.3g</td></tr>",
                   am_colormap_name(o.colormap), o.vmin, o.vmax);
  }
  am_html_raw(h, "</tbody></table>");
  return AM_STATUS_OK;
}

/* The token view: one row per map, one cell per real token, coloured by the map. */
static void token_view(am_report_t *r, int64_t ex, const int32_t *idx, const float *vals,
                       int n) {
  am_html_t *h = &r->html;
  char buf[64], text[512];
  am_html_raw(h, "<h4>Tokens</h4><div class=\"tv\"><table><thead><tr><th>position</th>");
  for (int i = 0; i < n; i++)
    am_html_printf(h, "<th class=\"num\">%d</th>", i);
  am_html_raw(h, "</tr></thead><tbody>");
  for (int m = 0; m < r->run.nmaps; m++) {
    const float *v = vals + (size_t)m * n;
    double lo, hi;
    am_colormap c = limits(r->run.map_names[m], v, n, excluded_target(r, n), &lo, &hi);
    am_html_raw(h, "<tr><th>");
    am_html_text(h, r->run.map_names[m]);
    am_html_raw(h, "</th>");
    for (int i = 0; i < n; i++) {
      uint8_t rgb[3];
      am_colormap_rgb(c, v[i], lo, hi, rgb);
      const char *raw = am_report_token(r, ex, idx[i], i, n, buf, sizeof buf);
      const char *shown = am_token_display(raw, text, sizeof text);
      am_html_printf(h,
                     "<td%s style=\"background:#%02x%02x%02x;white-space:pre\" "
                     "title=\"%.4g",
                     am_colormap_is_light(rgb) ? "" : " class=\"d\"", rgb[0], rgb[1],
                     rgb[2], v[i]);
      if (shown != raw) { /* the raw token on hover, escaped like all data */
        am_html_raw(h, " &#183; token ");
        am_html_text(h, raw);
      }
      am_html_raw(h, "\">");
      am_html_text(h, shown);
      am_html_raw(h, "</td>");
    }
    am_html_raw(h, "</tr>");
  }
  am_html_raw(h, "</tbody></table></div>");
}

static am_status block(am_report_t *r, const am_shown_t *s, int32_t *idx, float *vals) {
  am_html_t *h = &r->html;
  int64_t ex = s->index;
  int n = am_rr_valid_positions(&r->run, ex, idx);
  for (int m = 0; m < r->run.nmaps; m++)
    for (int i = 0; i < n; i++)
      vals[(size_t)m * n + i] = am_rr_f32(r->run.maps[m], ex * r->run.T + idx[i]);
  am_html_printf(h, "<div class=\"example\" id=\"ex-%lld\"><h3>Example %lld</h3><p>",
                 (long long)ex, (long long)ex);
  if (r->run.labels)
    am_html_printf(h, "label %lld · ", (long long)am_rr_int(r->run.labels, ex));
  if (r->run.predictions)
    am_html_printf(h, "predicted %lld · ", (long long)am_rr_int(r->run.predictions, ex));
  am_html_printf(h, "%d tokens", n);
  if (s->rank)
    am_html_printf(h, " · disagreement rank %d (%.4g)", s->rank, s->score);
  am_html_raw(h, "</p>");
  if (r->ds && !am_report_source_matches(r, ex, idx, n))
    am_html_raw(h,
                "<p class=\"note\">The dataset's valid tokens for this example differ from "
                "the run's: token strings are not shown.</p>");
  if (n == 0) { /* a fully masked example is valid input: there is nothing to draw */
    am_html_raw(h, "<p class=\"note\">No valid token (every position is padding): no map "
                   "to show.</p></div>");
    return AM_STATUS_OK;
  }
  am_status st = strips(r, ex, vals, n);
  if (st == AM_STATUS_OK)
    token_view(r, ex, idx, vals, n);
  if (st == AM_STATUS_OK)
    st = am_report_generation_example(r, ex, idx, n);
  if (st == AM_STATUS_OK)
    st = am_report_grid_example(r, ex, idx, n);
  if (st == AM_STATUS_OK && r->ds && am_report_source_matches(r, ex, idx, n))
    st = am_report_overlays_example(r, ex, idx);
  if (st == AM_STATUS_OK && s->views && r->ds && am_report_source_matches(r, ex, idx, n))
    st = am_report_views(r, ex);
  am_html_raw(h, "</div>");
  return st;
}

am_status am_report_examples(am_report_t *r) {
  am_html_t *h = &r->html;
  am_html_raw(h, "<section id=\"examples\"><h2>Examples</h2>");
  if (!r->nshown) {
    am_html_raw(h, "<p>No example to show: no disagreement ranking and no misclassified "
                   "example in this run.</p></section>\n");
    return AM_STATUS_OK;
  }
  am_html_raw(h, "<div class=\"extables\">");
  if (r->shown[0].why == AM_SHOWN_FIRST)
    table(r, AM_SHOWN_FIRST,
          "The first examples (this run ranks no disagreement and has no "
          "misclassified example)");
  else
    table(r, AM_SHOWN_DISAGREE, "Where attention and gradients disagree most");
  if (r->run.labels && r->run.predictions)
    table(r, AM_SHOWN_MISCLASSIFIED, "Misclassified");
  am_html_raw(h, "<p>Example: <select id=\"exsel\">");
  for (int k = 0; k < r->nshown; k++)
    am_html_printf(h, "<option value=\"ex-%lld\">%lld</option>",
                   (long long)r->shown[k].index, (long long)r->shown[k].index);
  am_html_raw(h, "</select> (or click an example in the tables)</p></div>");
  am_status sheet = am_report_overlay_sheet(r);
  if (sheet != AM_STATUS_OK)
    return sheet;
  int32_t *idx = malloc((size_t)(r->run.T ? r->run.T : 1) * sizeof *idx);
  float *vals = malloc((size_t)(r->run.T ? r->run.T : 1) *
                       (r->run.nmaps ? r->run.nmaps : 1) * sizeof *vals);
  am_status st = idx && vals ? AM_STATUS_OK
                             : am_fail(r->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  for (int k = 0; k < r->nshown && st == AM_STATUS_OK; k++)
    st = block(r, &r->shown[k], idx, vals);
  free(idx);
  free(vals);
  am_html_raw(h, "</section>\n");
  return st;
}

/* The disagreement list first (ranked), then misclassified examples not in it; views go
 * to the first ceil(V/2) of one and the first floor(V/2) of the other, the rest to
 * whichever list is longer. */
am_status am_report_pick_examples(am_report_t *r) {
  int K = r->opts.examples < 0 ? 0 : r->opts.examples;
  json_t *dis = am_jget(r->run.summary, "disagreement", "examples", NULL);
  json_t *mis = am_jget(r->run.summary, "misclassified", "indices", NULL);
  size_t cap = (size_t)K * 2 + 1;
  r->shown = calloc(cap, sizeof *r->shown);
  if (!r->shown)
    return am_fail(r->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  for (size_t i = 0; i < json_array_size(dis) && r->nshown < K; i++) {
    double ix = am_jnum(json_object_get(json_array_get(dis, i), "index"));
    if (!(ix >= 0 && ix < (double)r->run.N))
      continue;
    r->shown[r->nshown++] = (am_shown_t){(int64_t)ix, disagreement_value(r, (int64_t)ix),
                                         (int)i + 1, AM_SHOWN_DISAGREE, 0};
  }
  int nd = r->nshown, added = 0;
  for (size_t i = 0; i < json_array_size(mis) && added < K; i++) {
    double ix = am_jnum(json_array_get(mis, i));
    if (!(ix >= 0 && ix < (double)r->run.N))
      continue;
    int k = 0;
    while (k < nd && r->shown[k].index != (int64_t)ix)
      k++;
    added++;
    if (k < nd) {
      r->shown[k].why |= AM_SHOWN_MISCLASSIFIED;
      continue;
    }
    r->shown[r->nshown++] = (am_shown_t){(int64_t)ix, disagreement_value(r, (int64_t)ix), 0,
                                         AM_SHOWN_MISCLASSIFIED, 0};
  }
  if (r->nshown == 0) /* nothing ranked: the first examples */
    for (int64_t i = 0; i < r->run.N && i < K; i++)
      r->shown[r->nshown++] =
          (am_shown_t){i, disagreement_value(r, i), 0, AM_SHOWN_FIRST, 0};
  if (nd == 0 && r->nshown && r->shown[0].why == AM_SHOWN_FIRST)
    nd = r->nshown; /* views go to the first of them */
  int V = r->opts.views, nm = r->nshown - nd;
  int vd = (V + 1) / 2, vm = V / 2;
  if (vd > nd) {
    vm += vd - nd;
    vd = nd;
  }
  if (vm > nm) {
    vd = vd + (vm - nm) < nd ? vd + (vm - nm) : nd;
    vm = nm;
  }
  for (int k = 0; k < vd; k++)
    r->shown[k].views = 1;
  for (int k = 0; k < vm; k++)
    r->shown[nd + k].views = 1;
  return AM_STATUS_OK;
}
