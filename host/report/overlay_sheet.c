/* overlay_sheet.c — the contact sheet of a vision run: one PNG whose rows are the examples
 * where the disagreement pair agrees least (summary.json disagreement, in rank order), its
 * columns the picture and the pair's two maps drawn over it, each tile shrunk to at most
 * SHEET_TILE pixels a side, so that a reader sees at a glance where the maps part. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "dataset/dataset.h"
#include "report/overlay.h"
#include "report/png.h"
#include "report/report.h"

#define SHEET_TILE 112
#define SHEET_GAP 4

typedef struct sheet_row {
  int64_t ex;
  const uint8_t *img;
  int H, W, k; /* image size and shrink factor */
} sheet_row_t;

/* The run's map index named by side s (0 or 1) of pair "a~b", or -1. */
static int pair_map(const am_report_t *r, const char *pair, int s) {
  const char *tilde = pair ? strchr(pair, '~') : NULL;
  if (!tilde)
    return -1;
  const char *name = s ? tilde + 1 : pair;
  size_t len = s ? strlen(name) : (size_t)(tilde - pair);
  for (int m = 0; m < r->run.nmaps; m++)
    if (strlen(r->run.map_names[m]) == len && !strncmp(r->run.map_names[m], name, len))
      return m;
  return -1;
}

/* Examples of the disagreement list that have an image and the grid's token count. */
static int pick(am_report_t *r, const am_grid_t *g, int32_t *idx, sheet_row_t *rows,
                int cap, int *tile) {
  json_t *dis = am_jget(r->run.summary, "disagreement", "examples", NULL);
  int n = 0;
  *tile = 1;
  for (size_t i = 0; i < json_array_size(dis) && n < cap; i++) {
    double ix = am_jnum(json_object_get(json_array_get(dis, i), "index"));
    if (!(ix >= 0 && ix < (double)r->run.N))
      continue;
    sheet_row_t s = {(int64_t)ix, NULL, 0, 0, 1};
    int cnt = am_rr_valid_positions(&r->run, s.ex, idx);
    if (cnt != g->prefix + g->rows * g->cols ||
        !am_report_source_matches(r, s.ex, idx, cnt) ||
        !(s.img = am_report_image(r, s.ex, &s.H, &s.W)))
      continue;
    int big = s.H > s.W ? s.H : s.W;
    s.k = (big + SHEET_TILE - 1) / SHEET_TILE;
    *tile = s.H / s.k > *tile ? s.H / s.k : *tile;
    *tile = s.W / s.k > *tile ? s.W / s.k : *tile;
    rows[n++] = s;
  }
  return n;
}

/* Draws row i (image, map a, map b) into the sheet rgb of width SW. */
static am_status draw_row(am_report_t *r, const am_grid_t *g, const sheet_row_t *s,
                          const int *maps, int32_t *idx, float *v, uint8_t *rgb, int SW,
                          int y0, int tile) {
  int h = s->H / s->k, w = s->W / s->k;
  uint8_t *small = malloc((size_t)h * w * 3), *ov = malloc((size_t)h * w * 3);
  if (!small || !ov) {
    free(small);
    free(ov);
    return am_fail(r->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  }
  am_image_shrink(s->img, s->H, s->W, s->k, small);
  for (int col = 0; col < 3; col++) {
    const uint8_t *src = small;
    if (col > 0) {
      am_report_patches(r, g, s->ex, maps[col - 1], idx, v);
      am_report_overlay_draw(r, g, v, r->run.map_names[maps[col - 1]], small, h, w, ov,
                             NULL);
      src = ov;
    }
    int x0 = SHEET_GAP + col * (tile + SHEET_GAP);
    for (int y = 0; y < h; y++)
      memcpy(rgb + ((size_t)(y0 + y) * SW + x0) * 3, src + (size_t)y * w * 3,
             (size_t)w * 3);
  }
  free(small);
  free(ov);
  return AM_STATUS_OK;
}

am_status am_report_overlay_sheet(am_report_t *r) {
  am_grid_t g;
  const char *pair = am_jstr(am_jget(r->run.summary, "disagreement", "pair", NULL));
  int maps[2] = {pair_map(r, pair, 0), pair_map(r, pair, 1)}, K = r->opts.overlay_sheet;
  if (!r->ds || K < 1 || !am_report_grid(r, &g) || maps[0] < 0 || maps[1] < 0)
    return AM_STATUS_OK;
  sheet_row_t *rows = calloc((size_t)K, sizeof *rows);
  int32_t *idx = malloc((size_t)(r->run.T ? r->run.T : 1) * sizeof *idx);
  float *v = malloc((size_t)g.rows * g.cols * sizeof *v);
  uint8_t *rgb = NULL;
  am_status st = rows && idx && v
                     ? AM_STATUS_OK
                     : am_fail(r->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  int tile = 1, n = st == AM_STATUS_OK ? pick(r, &g, idx, rows, K, &tile) : 0;
  int SW = SHEET_GAP + 3 * (tile + SHEET_GAP), SH = SHEET_GAP + n * (tile + SHEET_GAP);
  if (n > 0 && !(rgb = malloc((size_t)SW * SH * 3)))
    st = am_fail(r->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  if (rgb)
    memset(rgb, 255, (size_t)SW * SH * 3);
  for (int i = 0; i < n && st == AM_STATUS_OK; i++)
    st = draw_row(r, &g, &rows[i], maps, idx, v, rgb, SW,
                  SHEET_GAP + i * (tile + SHEET_GAP), tile);
  char path[4200];
  if (n > 0 && st == AM_STATUS_OK)
    st = am_png_write_rgb(r->ctx, am_report_img_path(r, path, sizeof path, "sheet.png"),
                          rgb, SW, SH, NULL, 0);
  if (n > 0 && st == AM_STATUS_OK) {
    am_html_t *h = &r->html;
    am_html_printf(h,
                   "<h3 id=\"sheet\">Least agreement, over the images</h3><p>Rows: the "
                   "%d examples where ",
                   n);
    am_html_text(h, pair);
    am_html_raw(h, " agrees least, in rank order (");
    for (int i = 0; i < n; i++)
      am_html_printf(h, "%s<a href=\"#ex-%lld\">%lld</a>", i ? ", " : "",
                     (long long)rows[i].ex, (long long)rows[i].ex);
    am_html_raw(h, "); columns: the image, ");
    am_html_text(h, r->run.map_names[maps[0]]);
    am_html_raw(h, ", ");
    am_html_text(h, r->run.map_names[maps[1]]);
    am_html_raw(h, " (each as in the examples' overlays).</p><div class=\"sheet\">");
    for (int c = 0; c < 3; c++) { /* column heads over the tiles */
      const char *name = c ? r->run.map_names[maps[c - 1]] : "image";
      am_html_printf(h,
                     "<span style=\"display:inline-block;width:%dpx;padding-left:%dpx;"
                     "overflow:hidden;text-overflow:ellipsis;white-space:nowrap\" title=\"",
                     tile, SHEET_GAP);
      am_html_text(h, name);
      am_html_raw(h, "\">");
      am_html_text(h, name);
      am_html_raw(h, "</span>");
    }
    am_html_printf(h,
                   "<br><img id=\"sheet-img\" src=\"img/sheet.png\" width=\"%d\" "
                   "height=\"%d\" alt=\"contact sheet\"></div>",
                   SW, SH);
  }
  free(rows);
  free(idx);
  free(v);
  free(rgb);
  return st;
}
