/* html_faith.c — the report's faithfulness section (docs/faithfulness.md, "Report"), drawn
 * from summary.json's `faithfulness` section alone: the ranking of the maps with 95%
 * intervals, comprehensiveness and sufficiency per bin with intervals, the mean deletion
 * and insertion curves of every map with the random ranking as the dashed reference line,
 * the AOPC per class, and the examples where the most agreed-upon map is least faithful.
 * Every string from the run (map names, model, mode) is escaped. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/ctx.h"
#include "report/report.h"

#define CURVE_W 360
#define CURVE_H 220

static const char *const palette[] = {"#3949ab", "#e53935", "#43a047", "#fb8c00",
                                      "#8e24aa", "#00897b", "#6d4c41", "#c0ca33"};

/* "mean [lo, hi]" of a {mean, ci95} entry, sortable by the mean. */
static void stat_cell(am_html_t *h, json_t *s) {
  double m = am_jnum(json_object_get(s, "mean"));
  json_t *ci = json_object_get(s, "ci95");
  am_html_printf(h, "<td class=\"num\" data-v=\"%.9g\">", isnan(m) ? -1e300 : m);
  am_html_num(h, m);
  double lo = am_jnum(json_array_get(ci, 0)), hi = am_jnum(json_array_get(ci, 1));
  if (!isnan(lo) && !isnan(hi))
    am_html_printf(h, " [%.4g, %.4g]", lo, hi);
  am_html_raw(h, "</td>");
}

static void name_cell(am_html_t *h, const char *name) {
  am_html_raw(h, "<td>");
  am_html_text(h, name);
  am_html_raw(h, "</td>");
}

static void ranking_table(am_html_t *h, json_t *sec) {
  am_html_raw(h, "<h3>Ranking</h3><table class=\"sortable\"><thead><tr><th>rank</th>"
                 "<th>map</th><th>AOPC comprehensiveness (higher: more faithful)</th>"
                 "<th>AOPC sufficiency (lower: more faithful)</th><th>deletion area</th>"
                 "<th>insertion area</th><th>minus random</th></tr></thead><tbody>");
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(sec, "ranking"), i, e) {
    const char *map = am_jstr(json_object_get(e, "map"));
    json_t *m = am_jget(sec, "maps", map, NULL);
    am_html_printf(h, "<tr><td class=\"num\">%.0f</td>",
                   am_jnum(json_object_get(e, "rank")));
    name_cell(h, map);
    stat_cell(h, am_jget(m, "comprehensiveness", "aopc", NULL));
    stat_cell(h, am_jget(m, "sufficiency", "aopc", NULL));
    stat_cell(h, am_jget(m, "deletion", "area", NULL));
    stat_cell(h, am_jget(m, "insertion", "area", NULL));
    double d = am_jnum(json_object_get(e, "minus_random"));
    am_html_printf(h, "<td class=\"num\" data-v=\"%.9g\">", isnan(d) ? -1e300 : d);
    am_html_num(h, d);
    am_html_raw(h, "</td></tr>");
  }
  am_html_raw(h, "</tbody></table>");
}

static void bins_table(am_html_t *h, json_t *sec, const char *what) {
  json_t *bins = am_jget(sec, "metadata", "bins", NULL), *b;
  am_html_printf(h,
                 "<h3>%c%s by bin (top k%% of tokens)</h3><div style=\"overflow-x:auto\">"
                 "<table class=\"sortable\">"
                 "<thead><tr><th>map</th>",
                 what[0] - 32, what + 1);
  size_t k;
  json_array_foreach(bins, k, b) am_html_printf(h, "<th>%.4g%%</th>", am_jnum(b));
  am_html_raw(h, "<th>AOPC</th></tr></thead><tbody>");
  size_t j;
  json_t *name;
  json_array_foreach(am_jget(sec, "metadata", "maps", NULL), j, name) {
    const char *map = am_jstr(name);
    json_t *m = am_jget(sec, "maps", map, NULL);
    am_html_raw(h, "<tr>");
    name_cell(h, map);
    json_array_foreach(am_jget(m, what, "bins", NULL), k, b) stat_cell(h, b);
    stat_cell(h, am_jget(m, what, "aopc", NULL));
    am_html_raw(h, "</tr>");
  }
  am_html_raw(h, "</tbody></table></div>");
}

/* Every map's mean curve (probability against % of tokens removed or kept), random dashed.
 */
static void curves(am_html_t *h, json_t *sec, const char *what, const char *xlabel) {
  int left = 44, bottom = 30, pw = CURVE_W - left - 18, ph = CURVE_H - bottom - 8;
  am_html_printf(h,
                 "<div class=\"card\"><div>%s</div><svg width=\"%d\" height=\"%d\" "
                 "role=\"img\"><path class=\"axis\" d=\"M%d 8V%dH%d\"/>",
                 what, CURVE_W, CURVE_H, left, 8 + ph, left + pw);
  for (int t = 0; t <= 4; t++) {
    double y = 8 + ph - ph * t / 4.0;
    am_html_printf(h,
                   "<text x=\"%d\" y=\"%.1f\" class=\"tk\" text-anchor=\"end\">%.2g"
                   "</text><text x=\"%.1f\" y=\"%d\" class=\"tk\" "
                   "text-anchor=\"middle\">%d%%</text>",
                   left - 3, y + 3, t / 4.0, left + pw * t / 4.0, 8 + ph + 13, 25 * t);
  }
  size_t j;
  json_t *name;
  int c = 0;
  json_array_foreach(am_jget(sec, "metadata", "maps", NULL), j, name) {
    const char *map = am_jstr(name);
    int random = strcmp(map, "random") == 0;
    json_t *curve = am_jget(sec, "maps", map, what, "curve", NULL);
    size_t n = json_array_size(curve), s;
    json_t *p;
    am_html_printf(h, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"%s\"%s d=\"",
                   random ? "#757575" : palette[c % 8], random ? "2" : "1.5",
                   random ? " stroke-dasharray=\"5 3\"" : "");
    int pen = 0;
    json_array_foreach(curve, s, p) {
      double v = am_jnum(json_object_get(p, "mean"));
      if (isnan(v) || n < 2) {
        pen = 0;
        continue;
      }
      v = v < 0 ? 0 : v > 1 ? 1 : v;
      am_html_printf(h, "%c%.1f %.1f", pen ? 'L' : 'M', left + (double)pw * s / (n - 1),
                     8 + ph - ph * v);
      pen = 1;
    }
    am_html_raw(h, "\"><title>");
    am_html_text(h, map);
    am_html_raw(h, "</title></path>");
    c += !random;
  }
  am_html_printf(h,
                 "<text x=\"%d\" y=\"%d\" class=\"ax\" text-anchor=\"middle\">%s</text>"
                 "</svg></div>",
                 left + pw / 2, CURVE_H - 2, xlabel);
}

static void legend(am_html_t *h, json_t *sec) {
  size_t j;
  json_t *name;
  int c = 0;
  am_html_raw(h, "<p>");
  json_array_foreach(am_jget(sec, "metadata", "maps", NULL), j, name) {
    const char *map = am_jstr(name);
    int random = strcmp(map, "random") == 0;
    am_html_printf(h, "<span style=\"color:%s\">&#9644; ",
                   random ? "#757575" : palette[c % 8]);
    am_html_text(h, map);
    am_html_raw(h, random ? " (reference, dashed)</span> " : "</span> ");
    c += !random;
  }
  am_html_raw(h, "</p>");
}

static void classes_table(am_html_t *h, json_t *sec) {
  json_t *classes = json_object_get(sec, "by_class"), *e;
  if (!json_array_size(classes))
    return;
  am_html_raw(h, "<h3>AOPC comprehensiveness by target class</h3><table class=\"sortable\">"
                 "<thead><tr><th>class</th><th>examples</th>");
  json_t *maps = am_jget(sec, "metadata", "maps", NULL), *name;
  size_t j;
  json_array_foreach(maps, j, name) {
    am_html_raw(h, "<th>");
    am_html_text(h, am_jstr(name));
    am_html_raw(h, "</th>");
  }
  am_html_raw(h, "</tr></thead><tbody>");
  size_t i;
  json_array_foreach(classes, i, e) {
    am_html_printf(h, "<tr><td class=\"num\">%.0f</td><td class=\"num\">%.0f</td>",
                   am_jnum(json_object_get(e, "class")),
                   am_jnum(json_object_get(e, "count")));
    json_array_foreach(maps, j, name)
        stat_cell(h, am_jget(e, "maps", am_jstr(name), "aopc_comprehensiveness", NULL));
    am_html_raw(h, "</tr>");
  }
  am_html_raw(h, "</tbody></table>");
}

static void listed(am_html_t *h, json_t *sec) {
  json_t *ma = json_object_get(sec, "most_agreed"), *e;
  const char *map = json_string_value(json_object_get(ma, "map"));
  am_html_raw(h, "<h3>Where the most agreed-upon map is least faithful</h3><p>");
  if (!map) {
    am_html_raw(h, "The run has no agreement pairs naming a scored map.</p>");
    return;
  }
  am_html_raw(h, "The most agreed-upon map, <strong>");
  am_html_text(h, map);
  am_html_printf(h,
                 "</strong>, has the highest mean Spearman correlation with the other "
                 "maps (%.4g, averaged over its pairs). Its examples with the lowest "
                 "AOPC comprehensiveness:</p><table class=\"sortable\"><thead><tr>"
                 "<th>example</th><th>AOPC comprehensiveness</th><th>its rank among the "
                 "maps there</th></tr></thead><tbody>",
                 am_jnum(json_object_get(ma, "agreement")));
  size_t i;
  json_array_foreach(json_object_get(ma, "examples"), i, e) {
    am_html_printf(h, "<tr><td class=\"num\">%.0f</td><td class=\"num\">",
                   am_jnum(json_object_get(e, "index")));
    am_html_num(h, am_jnum(json_object_get(e, "aopc_comprehensiveness")));
    am_html_printf(h, "</td><td class=\"num\">%.0f of %.0f</td></tr>",
                   am_jnum(json_object_get(e, "rank")), am_jnum(json_object_get(e, "of")));
  }
  am_html_raw(h, "</tbody></table>");
}

am_status am_report_faithfulness(am_report_t *r) {
  json_t *sec = json_object_get(r->run.summary, "faithfulness");
  if (!json_is_object(sec))
    return AM_STATUS_OK;
  am_html_t *h = &r->html;
  json_t *meta = json_object_get(sec, "metadata");
  am_html_raw(h, "<section id=\"faithfulness\"><h2>Faithfulness</h2><p>The model's "
                 "target-class probability as each map's top tokens are removed "
                 "(comprehensiveness: higher is more faithful) or kept alone (sufficiency: "
                 "lower is more faithful); mode <code>");
  am_html_text(h, am_jstr(json_object_get(meta, "mode")));
  am_html_raw(h, "</code>, target <code>");
  am_html_text(h, am_jstr(json_object_get(meta, "target")));
  am_html_raw(h, "</code>, model <code>");
  am_html_text(h, am_jstr(json_object_get(meta, "model")));
  am_html_printf(h,
                 "</code>; %.0f of %.0f examples scored. Intervals: normal 95%%, "
                 "mean &plusmn; 1.96&middot;sd/&radic;n over the examples.</p>",
                 am_jnum(json_object_get(sec, "scored")),
                 am_jnum(json_object_get(sec, "examples")));
  ranking_table(h, sec);
  bins_table(h, sec, "comprehensiveness");
  bins_table(h, sec, "sufficiency");
  am_html_raw(h, "<h3>Deletion and insertion curves (mean probability)</h3>");
  legend(h, sec);
  am_html_raw(h, "<div class=\"grid\">");
  curves(h, sec, "deletion", "top tokens removed");
  curves(h, sec, "insertion", "top tokens kept");
  am_html_raw(h, "</div>");
  classes_table(h, sec);
  listed(h, sec);
  am_html_raw(h, "</section>\n");
  return h->oom ? am_fail(r->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory") : AM_STATUS_OK;
}

void am_report_faith_rankings(am_html_t *h, json_t *faith) {
  static const char *const sides[] = {"run", "baseline"};
  am_html_raw(h, "<table><thead><tr><th>rank</th><th>run</th><th>baseline</th></tr></thead>"
                 "<tbody>");
  json_t *a = am_jget(faith, "ranking", sides[0], NULL);
  json_t *b = am_jget(faith, "ranking", sides[1], NULL);
  size_t n =
      json_array_size(a) > json_array_size(b) ? json_array_size(a) : json_array_size(b);
  for (size_t i = 0; i < n; i++) {
    am_html_printf(h, "<tr><td class=\"num\">%zu</td>", i + 1);
    name_cell(h, am_jstr(json_array_get(a, i)));
    name_cell(h, am_jstr(json_array_get(b, i)));
    am_html_raw(h, "</tr>");
  }
  am_html_raw(h, "</tbody></table>");
}
