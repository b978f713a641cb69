/* html_agreement.c — agreement distributions: for each metric (a selector switches), one
 * row per pair with the dataset histogram from summary.json, its quantiles, and per
 * predicted class (the most frequent ones) a box glyph of the distribution, computed in
 * one pass over the agreement tensors with the summary's own bins. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "report/report.h"
#include "report/svg.h"

#define MAX_CLASSES 6

static const char *const canonical[] = {"spearman",        "kendall",  "pearson",
                                        "cosine",          "jaccard@", "feature_agreement@",
                                        "rank_agreement@", "jsd",      "tvd"};

static int metric_order(const char *m) {
  for (size_t i = 0; i < sizeof canonical / sizeof *canonical; i++)
    if (strncmp(m, canonical[i], strlen(canonical[i])) == 0)
      return (int)i;
  return 99;
}

static int by_metric(const void *a, const void *b) {
  const char *x = *(const char *const *)a, *y = *(const char *const *)b;
  int d = metric_order(x) - metric_order(y);
  return d ? d : strcmp(x, y);
}

typedef struct classes {
  int n;
  int64_t id[MAX_CLASSES], count[MAX_CLASSES];
  double *hist; /* [n][metrics][pairs][bins] */
  int bins;
} classes_t;

/* The most frequent predicted classes of summary.json (ties: lower id first). */
static void pick_classes(am_report_t *r, classes_t *c) {
  size_t i;
  json_t *e;
  json_array_foreach(am_jget(r->run.summary, "classes", "predictions", NULL), i, e) {
    double id = am_jnum(json_object_get(e, "class")),
           n = am_jnum(json_object_get(e, "count"));
    if (!isfinite(id) || !(n > 0))
      continue;
    int at;
    if (c->n < MAX_CLASSES)
      at = c->n++;
    else if ((int64_t)n > c->count[MAX_CLASSES - 1])
      at = MAX_CLASSES - 1;
    else
      continue;
    while (at > 0 && c->count[at - 1] < (int64_t)n) {
      c->id[at] = c->id[at - 1];
      c->count[at] = c->count[at - 1];
      at--;
    }
    c->id[at] = (int64_t)id;
    c->count[at] = (int64_t)n;
  }
}

/* Bins of pair p and metric m from summary.json: lo, hi, count. 0 when absent. */
static int bins_of(am_report_t *r, const char *pair, const char *metric, double *lo,
                   double *hi) {
  json_t *hg = am_jget(r->run.summary, "agreement", pair, metric, "histogram", NULL);
  *lo = am_jnum(json_object_get(hg, "lo"));
  *hi = am_jnum(json_object_get(hg, "hi"));
  size_t nb = json_array_size(json_object_get(hg, "counts"));
  return isfinite(*lo) && isfinite(*hi) && *hi > *lo && nb <= 4096 ? (int)nb : 0;
}

/* One pass over predictions and every agreement tensor, each read in order. */
static int class_pass(am_report_t *r, const char **metrics, int nm, classes_t *c) {
  const am_report_run_t *run = &r->run;
  int P = run->npairs;
  if (!run->predictions || !c->n || !P || !nm)
    return 0;
  double *lo = malloc((size_t)P * sizeof *lo), *hi = malloc((size_t)P * sizeof *hi);
  int *nb = malloc((size_t)P * sizeof *nb);
  signed char *slot = malloc((size_t)(run->N ? run->N : 1));
  int rc = lo && hi && nb && slot ? 0 : -1;
  c->bins = 0;
  for (int m = 0; rc == 0 && m < nm; m++)
    for (int p = 0; p < P; p++) {
      int k = bins_of(r, run->pairs[p], metrics[m], &lo[p], &hi[p]);
      c->bins = k > c->bins ? k : c->bins;
    }
  if (rc == 0 && c->bins &&
      !(c->hist = calloc((size_t)c->n * nm * P * c->bins, sizeof *c->hist)))
    rc = -1;
  for (int64_t i = 0; rc == 0 && c->hist && i < run->N; i++) {
    int64_t pred = am_rr_int(run->predictions, i);
    int k = 0;
    while (k < c->n && c->id[k] != pred)
      k++;
    slot[i] = (signed char)(k < c->n ? k : -1);
  }
  for (int m = 0; rc == 0 && c->hist && m < nm; m++) {
    const am_tensor_t *t = NULL;
    for (int k = 0; k < run->nmetrics; k++)
      if (strcmp(run->metric_names[k], metrics[m]) == 0)
        t = run->metrics[k];
    for (int p = 0; p < P; p++)
      nb[p] = bins_of(r, run->pairs[p], metrics[m], &lo[p], &hi[p]);
    for (int64_t i = 0; t && i < run->N; i++) {
      if (slot[i] < 0)
        continue;
      double *hist = c->hist + ((size_t)slot[i] * nm + m) * P * c->bins;
      for (int p = 0; p < P; p++) {
        float v = am_rr_f32(t, i * P + p);
        if (!nb[p] || !isfinite(v))
          continue;
        /* clamped in double: a summary edited to a tiny range gives huge quotients */
        double x = floor(((double)v - lo[p]) / (hi[p] - lo[p]) * nb[p]);
        int b = !(x >= 0) ? 0 : x >= nb[p] ? nb[p] - 1 : (int)x;
        hist[(size_t)p * c->bins + b] += 1;
      }
    }
  }
  free(lo);
  free(hi);
  free(nb);
  free(slot);
  return rc;
}

/* p05, p25, p50, p75, p95 of a histogram, linear inside the bin. */
static void quantiles(const double *counts, int nb, double lo, double hi, double q[5]) {
  static const double at[5] = {0.05, 0.25, 0.5, 0.75, 0.95};
  double total = 0;
  for (int b = 0; b < nb; b++)
    total += counts[b];
  for (int k = 0; k < 5; k++) {
    q[k] = NAN;
    double want = at[k] * total, cum = 0;
    for (int b = 0; b < nb && total > 0; b++) {
      if (counts[b] > 0 && cum + counts[b] >= want) {
        q[k] = lo + (hi - lo) * (b + (want - cum) / counts[b]) / nb;
        break;
      }
      cum += counts[b];
    }
  }
}

static void pair_row(am_report_t *r, const char *metric, int m, int p, int nm,
                     const classes_t *c) {
  am_html_t *h = &r->html;
  const char *pair = r->run.pairs[p];
  json_t *a = am_jget(r->run.summary, "agreement", pair, metric, NULL);
  double lo, hi, counts[4096];
  int nb = bins_of(r, pair, metric, &lo, &hi);
  for (int b = 0; b < nb; b++)
    counts[b] = am_jnum(json_array_get(am_jget(a, "histogram", "counts", NULL), (size_t)b));
  am_html_raw(h, "<tr><td>");
  am_html_text(h, pair);
  am_html_printf(h, "</td><td class=\"num\">%.0f</td><td class=\"num\">%.0f</td>",
                 am_jnum(json_object_get(a, "n")), am_jnum(json_object_get(a, "nan")));
  static const char *const keys[] = {"mean", "std"};
  for (int k = 0; k < 2; k++) {
    double v = am_jnum(json_object_get(a, keys[k]));
    am_html_printf(h, "<td class=\"num\" data-v=\"%.9g\">", v);
    am_html_num(h, v);
    am_html_raw(h, "</td>");
  }
  static const char *const qk[] = {"p05", "p50", "p95"};
  for (int k = 0; k < 3; k++) {
    double v = am_jnum(am_jget(a, "quantiles", qk[k], NULL));
    am_html_printf(h, "<td class=\"num\" data-v=\"%.9g\">", v);
    am_html_num(h, v);
    am_html_raw(h, "</td>");
  }
  am_html_raw(h, "<td>");
  if (nb)
    am_svg_histogram(h, counts, nb, lo, hi, 160, 48, 1);
  am_html_raw(h, "</td>");
  for (int k = 0; k < c->n; k++) {
    double mean = am_jnum(NULL);
    size_t i;
    json_t *e;
    json_array_foreach(am_jget(r->run.summary, "classes", "predictions", NULL), i,
                       e) if (am_jnum(json_object_get(e, "class")) == (double)c->id[k])
        mean = am_jnum(am_jget(e, "agreement", pair, metric, "mean", NULL));
    double q[5] = {NAN, NAN, NAN, NAN, NAN};
    if (c->hist && nb)
      quantiles(c->hist + (((size_t)k * nm + m) * r->run.npairs + p) * c->bins, nb, lo, hi,
                q);
    am_html_printf(h, "<td class=\"num\" data-v=\"%.9g\">", mean);
    if (nb)
      am_svg_box(h, q, lo, hi, 64);
    am_html_raw(h, " ");
    am_html_num(h, mean);
    am_html_raw(h, "</td>");
  }
  am_html_raw(h, "</tr>");
}

am_status am_report_agreement(am_report_t *r) {
  am_html_t *h = &r->html;
  am_html_raw(h, "<section id=\"agreement\"><h2>Agreement</h2>");
  const char *metrics[AM_RR_MAX_METRICS];
  int nm = r->run.nmetrics;
  memcpy(metrics, r->run.metric_names, (size_t)nm * sizeof *metrics);
  if (!nm || !r->run.npairs) {
    am_html_raw(h, "<p>No agreement: the run has fewer than two maps.</p></section>\n");
    return AM_STATUS_OK;
  }
  qsort(metrics, (size_t)nm, sizeof *metrics, by_metric);
  classes_t c = {0};
  pick_classes(r, &c);
  if (class_pass(r, metrics, nm, &c) != 0)
    return am_fail(r->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  am_html_raw(h, "<p>Per pair of maps, the distribution of each metric over examples "
                 "(valid, non-special tokens); per predicted class, a box of p25..p75 with "
                 "whiskers p05..p95 and the median in red, then the class mean. "
                 "Metric: <select id=\"metric\">");
  for (int m = 0; m < nm; m++) {
    am_html_raw(h, "<option value=\"");
    am_html_text(h, metrics[m]);
    am_html_raw(h, "\">");
    am_html_text(h, metrics[m]);
    am_html_raw(h, "</option>");
  }
  am_html_raw(h, "</select></p>");
  for (int m = 0; m < nm; m++) {
    am_html_raw(h, "<div class=\"metric-block\" data-metric=\"");
    am_html_text(h, metrics[m]);
    am_html_raw(h, "\"><h3>");
    am_html_text(h, metrics[m]);
    am_html_raw(h,
                "</h3><table class=\"sortable\"><thead><tr><th>pair</th><th>n</th>"
                "<th>NaN</th><th>mean</th><th>std</th><th>p05</th><th>p50</th><th>p95</th>"
                "<th>histogram</th>");
    for (int k = 0; k < c.n; k++)
      am_html_printf(h, "<th>predicted %lld (%lld)</th>", (long long)c.id[k],
                     (long long)c.count[k]);
    am_html_raw(h, "</tr></thead><tbody>");
    for (int p = 0; p < r->run.npairs; p++)
      pair_row(r, metrics[m], m, p, nm, &c);
    am_html_raw(h, "</tbody></table></div>");
  }
  free(c.hist);
  am_html_raw(h, "</section>\n");
  return AM_STATUS_OK;
}
