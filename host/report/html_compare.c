/* html_compare.c — the comparison with a baseline run on the page: the drift count and
 * threshold, what differs between the runs, a layer x head map of z per statistic
 * (diverging colormap, drifted heads beyond the threshold) and sortable tables of the
 * head statistics and agreement metrics, drifted entries first (compare.c's order). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "report/png.h"
#include "report/report.h"
#include "report/svg.h"

#define MAX_ROWS 200

static void cell(am_html_t *h, double v) {
  am_html_printf(h, "<td class=\"num\" data-v=\"%.9g\">", v);
  am_html_num(h, v);
  am_html_raw(h, "</td>");
}

/* z of an entry, with an infinite z (zero spread) as +-inf. */
static double entry_z(json_t *e) {
  double z = am_jnum(json_object_get(e, "z"));
  json_t *inf = json_object_get(e, "z_infinite");
  return json_is_integer(inf) ? (json_integer_value(inf) > 0 ? INFINITY : -INFINITY) : z;
}

/* heads: 1 head statistics, 0 agreement pairs, 2 faithfulness (map and quantity). */
static void rows(am_html_t *h, json_t *list, int heads) {
  am_html_printf(
      h,
      "<table class=\"sortable\"><thead><tr>%s<th>run</th><th>baseline</th>"
      "<th>delta</th><th>pooled sd</th><th>z</th><th>drift</th></tr></thead><tbody>",
      heads == 1   ? "<th>statistic</th><th>layer</th><th>head</th>"
      : heads == 2 ? "<th>map</th><th>quantity</th>"
                   : "<th>pair</th><th>metric</th>");
  size_t i;
  json_t *e;
  json_array_foreach(list, i, e) {
    if (i >= MAX_ROWS)
      break;
    int drift = json_is_true(json_object_get(e, "drift"));
    am_html_printf(h, "<tr%s><td>", drift ? " class=\"drift\"" : "");
    am_html_text(h, am_jstr(json_object_get(e, heads == 1   ? "statistic"
                                               : heads == 2 ? "map"
                                                            : "pair")));
    am_html_raw(h, "</td>");
    if (heads == 1) {
      am_html_printf(h, "<td class=\"num\">%.0f</td><td class=\"num\">%.0f</td>",
                     am_jnum(json_object_get(e, "layer")),
                     am_jnum(json_object_get(e, "head")));
    } else {
      am_html_raw(h, "<td>");
      am_html_text(h, am_jstr(json_object_get(e, heads == 2 ? "quantity" : "metric")));
      am_html_raw(h, "</td>");
    }
    static const char *const keys[] = {"run", "baseline", "delta", "sd"};
    for (int k = 0; k < 4; k++)
      cell(h, am_jnum(json_object_get(e, keys[k])));
    double z = entry_z(e);
    am_html_printf(h, "<td class=\"num\" data-v=\"%.9g\">%s",
                   isinf(z) ? copysign(1e300, z) : z,
                   isinf(z) ? (z > 0 ? "+inf" : "-inf") : "");
    if (!isinf(z))
      am_html_num(h, z);
    am_html_printf(h, "</td><td>%s</td></tr>", drift ? "yes" : "");
  }
  am_html_raw(h, "</tbody></table>");
  if (json_array_size(list) > MAX_ROWS)
    am_html_printf(h, "<p>%zu more in comparison.json.</p>",
                   json_array_size(list) - MAX_ROWS);
}

/* z maps: one L x H PNG per statistic. */
static am_status z_maps(am_report_t *r, json_t *list, double thr) {
  int L = r->run.L, H = r->run.H, big = L > H ? L : H;
  if (!L || !H)
    return AM_STATUS_OK;
  int cell_px = 240 / big;
  cell_px = cell_px < 4 ? 4 : cell_px > 24 ? 24 : cell_px;
  double lim = thr * 2 > 3 ? thr * 2 : 3;
  float *z = malloc((size_t)L * H * sizeof *z);
  if (!z)
    return am_fail(r->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  am_status st = AM_STATUS_OK;
  int k = 0;
  const char *stat;
  json_t *s;
  am_html_raw(&r->html, "<div class=\"grid\">");
  json_object_foreach(am_jget(r->run.summary, "head_stats", NULL), stat, s) {
    k++;
    for (int i = 0; i < L * H; i++)
      z[i] = NAN;
    size_t i;
    json_t *e;
    int any = 0;
    json_array_foreach(list, i, e) {
      const char *es = am_jstr(json_object_get(e, "statistic"));
      double l = am_jnum(json_object_get(e, "layer")),
             hd = am_jnum(json_object_get(e, "head"));
      if (!es || strcmp(es, stat) != 0 || !(l >= 0 && l < L && hd >= 0 && hd < H))
        continue;
      double v = entry_z(e);
      z[(int)l * H + (int)hd] = (float)(isinf(v) ? copysign(lim, v) : v);
      any = 1;
    }
    if (!any || st != AM_STATUS_OK)
      continue;
    am_png_options_t o;
    am_png_options_init(&o);
    o.colormap = AM_COLORMAP_RDBU_R;
    o.vmin = -lim;
    o.vmax = lim;
    o.scale = cell_px;
    char file[64], path[4200], src[80], what[160];
    snprintf(file, sizeof file, "cmp-%d.png", k);
    snprintf(src, sizeof src, "img/%s", file);
    snprintf(what, sizeof what, "z of head_stats.%s against the baseline", stat);
    o.quantity = what;
    st = am_png_write_map(r->ctx, am_report_img_path(r, path, sizeof path, file), z, L, H,
                          &o);
    if (st != AM_STATUS_OK)
      break;
    am_html_raw(&r->html, "<div class=\"card\"><h3>");
    am_html_text(&r->html, stat);
    am_html_raw(&r->html, "</h3>");
    am_svg_heatmap_t m = {
        src, "layer", "head", what, NULL, L, H, cell_px, AM_COLORMAP_RDBU_R, -lim, lim};
    am_svg_heatmap(&r->html, &m);
    am_html_raw(&r->html, "</div>");
  }
  am_html_raw(&r->html, "</div>");
  free(z);
  return st;
}

am_status am_report_comparison(am_report_t *r) {
  json_t *c = r->comparison;
  if (!c)
    return AM_STATUS_OK;
  am_html_t *h = &r->html;
  double thr = am_jnum(json_object_get(c, "threshold"));
  am_html_raw(
      h, "<section id=\"comparison\"><h2>Comparison with the baseline</h2><p>Baseline: "
         "<code>");
  am_html_text(h, am_jstr(json_object_get(c, "baseline")));
  am_html_printf(h,
                 "</code>. Change of each mean in pooled standard deviations over examples "
                 "(z); threshold %.3g. <strong id=\"drift-count\">%lld beyond the "
                 "threshold</strong>.</p>",
                 thr, (long long)r->drifted);
  size_t i;
  json_t *e;
  json_t *notes = json_object_get(c, "notes");
  if (json_array_size(notes)) {
    am_html_raw(h, "<ul class=\"note\">");
    json_array_foreach(notes, i, e) {
      am_html_raw(h, "<li>");
      am_html_text(h, am_jstr(e));
      am_html_raw(h, "</li>");
    }
    am_html_raw(h, "</ul>");
  }
  static const char *const sides[] = {"run", "baseline"};
  for (int s = 0; s < 2; s++) {
    json_t *only = am_jget(c, "only_in", sides[s], NULL);
    if (!json_array_size(only))
      continue;
    am_html_printf(h, "<details><summary>%zu entries only in the %s</summary><p>",
                   json_array_size(only), sides[s]);
    json_array_foreach(only, i, e) {
      am_html_raw(h, " <code>");
      am_html_text(h, am_jstr(e));
      am_html_raw(h, "</code>");
    }
    am_html_raw(h, "</p></details>");
  }
  am_status st = AM_STATUS_OK;
  if (json_is_true(json_object_get(c, "heads_compared"))) {
    am_html_raw(h, "<h3>Head statistics</h3>");
    st = z_maps(r, json_object_get(c, "head_stats"), thr);
    rows(h, json_object_get(c, "head_stats"), 1);
  } else {
    am_html_raw(h, "<p class=\"note\">The runs have different layers or heads: head "
                   "statistics are not compared.</p>");
  }
  am_html_raw(h, "<h3>Agreement</h3>");
  rows(h, json_object_get(c, "agreement"), 0);
  json_t *faith = json_object_get(c, "faithfulness");
  if (json_is_object(faith)) {
    am_html_raw(h, "<h3>Faithfulness</h3>");
    json_array_foreach(json_object_get(faith, "notes"), i, e) {
      am_html_raw(h, "<p class=\"note\">");
      am_html_text(h, am_jstr(e));
      am_html_raw(h, "</p>");
    }
    rows(h, json_object_get(faith, "entries"), 2);
    am_report_faith_rankings(h, faith);
  }
  am_html_raw(h, "</section>\n");
  return st;
}
