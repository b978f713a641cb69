/* grid_maps.c — patch-grid maps for ViT-style inputs (__metadata__ attnmap.grid =
 * "RxC+P"): the P prefix tokens are left out and the R*C patch values are drawn as an
 * image, bilinearly upsampled, for the dataset mean (positions.mean) and per example. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/ctx.h"
#include "dataset/dataset.h"
#include "report/colormap.h"
#include "report/png.h"
#include "report/report.h"
#include "report/svg.h"

int am_report_grid(const am_report_t *r, am_grid_t *g) {
  const char *text = am_jstr(am_jget(r->run.summary, "dataset", "grid", NULL));
  return text && am_grid_parse(text, g) == 0;
}

/* One map's R x C image and its figure. v holds P + R*C values in token order. */
static am_status one(am_report_t *r, const am_grid_t *g, const char *file, const char *map,
                     const float *v) {
  int R = g->rows, C = g->cols, big = R > C ? R : C;
  int scale = big ? 192 / big : 1;
  scale = scale < 1 ? 1 : scale > 32 ? 32 : scale;
  am_png_options_t o;
  am_png_options_init(&o);
  o.colormap = am_rr_map_signed(map) ? AM_COLORMAP_RDBU_R : AM_COLORMAP_VIRIDIS;
  o.scale = scale;
  o.upsample = AM_UPSAMPLE_BILINEAR;
  o.quantity = map;
  am_colormap_auto_limits(o.colormap, v + g->prefix, (size_t)R * C, &o.vmin, &o.vmax);
  char path[4200];
  am_status st = am_png_write_map(r->ctx, am_report_img_path(r, path, sizeof path, file),
                                  v + g->prefix, R, C, &o);
  if (st != AM_STATUS_OK)
    return st;
  am_html_t *h = &r->html;
  am_html_raw(h, "<div class=\"card\"><div>");
  am_html_text(h, map);
  am_html_printf(h, "</div><img src=\"img/%s\" width=\"%d\" height=\"%d\" alt=\"", file,
                 C * scale, R * scale);
  am_html_text(h, map);
  am_html_raw(h, "\">");
  am_svg_colorbar_h(h, o.colormap, o.vmin, o.vmax, C * scale > 120 ? C * scale - 20 : 100);
  am_html_raw(h, "</div>");
  return AM_STATUS_OK;
}

am_status am_report_grid_mean(am_report_t *r) {
  am_grid_t g;
  if (!am_report_grid(r, &g))
    return AM_STATUS_OK;
  size_t need = (size_t)g.prefix + (size_t)g.rows * g.cols;
  float *v = malloc(need * sizeof *v);
  if (!v)
    return am_fail(r->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  am_html_t *h = &r->html;
  am_html_printf(h,
                 "<h2 id=\"patches\">Patch grid (%dx%d+%d), dataset mean</h2><p>Mean of "
                 "each map at each patch over the examples that reach it; the %d prefix "
                 "token(s) are left out.</p><div class=\"grid\">",
                 g.rows, g.cols, g.prefix, g.prefix);
  am_status st = AM_STATUS_OK;
  const char *map;
  json_t *vals;
  int k = 0;
  json_object_foreach(am_jget(r->run.summary, "positions", "mean", NULL), map, vals) {
    k++;
    if (st != AM_STATUS_OK || json_array_size(vals) < need)
      continue;
    for (size_t i = 0; i < need; i++)
      v[i] = (float)am_jnum(json_array_get(vals, i));
    char file[64];
    snprintf(file, sizeof file, "grid-mean-%d.png", k);
    st = one(r, &g, file, map, v);
  }
  am_html_raw(h, "</div>");
  free(v);
  return st;
}

am_status am_report_grid_example(am_report_t *r, int64_t ex, const int32_t *idx, int n) {
  am_grid_t g;
  if (!am_report_grid(r, &g) || n != g.prefix + g.rows * g.cols)
    return AM_STATUS_OK;
  float *v = malloc((size_t)n * sizeof *v);
  if (!v)
    return am_fail(r->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  am_html_raw(&r->html, "<h4>Patch grid</h4><div class=\"grid\">");
  am_status st = AM_STATUS_OK;
  for (int m = 0; m < r->run.nmaps && st == AM_STATUS_OK; m++) {
    for (int i = 0; i < n; i++)
      v[i] = am_rr_f32(r->run.maps[m], ex * r->run.T + idx[i]);
    char file[96];
    snprintf(file, sizeof file, "ex%lld-grid-%d.png", (long long)ex, m);
    st = one(r, &g, file, r->run.map_names[m], v);
  }
  am_html_raw(&r->html, "</div>");
  free(v);
  return st;
}
