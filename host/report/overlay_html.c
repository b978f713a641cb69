/* overlay_html.c — maps over the images of a vision dataset (tensor images, a patch grid
 * in summary.json): per shown example the picture and each map drawn over it, and one
 * contact sheet of the examples where the disagreement pair agrees least, the picture and
 * the pair's two maps side by side (docs/report.md, "Overlays"). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "dataset/dataset.h"
#include "dataset/shard.h"
#include "report/colormap.h"
#include "report/overlay.h"
#include "report/png.h"
#include "report/report.h"

#define SHOWN_MAX 224 /* per-example overlays are displayed at most this wide */

const uint8_t *am_report_image(const am_report_t *r, int64_t ex, int *height, int *width) {
  for (int s = 0; r->ds && s < r->ds->nshards; s++) {
    const am_shard_t *sh = &r->ds->shards[s];
    if (ex >= sh->first && ex < sh->first + sh->B)
      return am_shard_image(sh, ex - sh->first, height, width);
  }
  return NULL;
}

int am_report_patches(const am_report_t *r, const am_grid_t *g, int64_t ex, int m,
                      int32_t *idx, float *v) {
  int n = am_rr_valid_positions(&r->run, ex, idx);
  if (n != g->prefix + g->rows * g->cols || g->rows < 1 || g->cols < 1)
    return 0;
  for (int i = 0; i < g->rows * g->cols; i++)
    v[i] = am_rr_f32(r->run.maps[m], ex * r->run.T + idx[g->prefix + i]);
  return 1;
}

am_status am_report_overlay_draw(am_report_t *r, const am_grid_t *g, const float *v,
                                 const char *map, const uint8_t *img, int H, int W,
                                 uint8_t *out, const char *path) {
  am_colormap c = r->opts.overlay_colormap;
  double lo, hi;
  am_overlay_limits(v, g->rows * g->cols, am_rr_map_signed(map), &c, &lo, &hi);
  am_overlay_render(v, g->rows, g->cols, img, H, W, c, lo, hi, r->opts.overlay_alpha, out);
  if (!path)
    return AM_STATUS_OK;
  char q[600], slo[32], shi[32], sa[32], soft[32];
  snprintf(q, sizeof q, "%.500s over the image (bilinear from the %dx%d patch grid)", map,
           g->rows, g->cols);
  snprintf(slo, sizeof slo, "%.9g", lo);
  snprintf(shi, sizeof shi, "%.9g", hi);
  snprintf(sa, sizeof sa, "%.9g", r->opts.overlay_alpha);
  snprintf(soft, sizeof soft, "attnmap %s", am_version());
  am_png_text_t texts[] = {
      {"attnmap.quantity", q}, {"attnmap.colormap", am_colormap_name(c)},
      {"attnmap.vmin", slo},   {"attnmap.vmax", shi},
      {"attnmap.alpha", sa},   {"Software", soft}};
  return am_png_write_rgb(r->ctx, path, out, W, H, texts, 6);
}

static void card(am_html_t *h, const char *file, const char *label, int W, int H) {
  int w = W > SHOWN_MAX ? SHOWN_MAX : W, hh = (int)((int64_t)H * w / W);
  am_html_raw(h, "<div class=\"card\"><div>");
  am_html_text(h, label);
  am_html_printf(h, "</div><img src=\"img/%s\" width=\"%d\" height=\"%d\" alt=\"", file, w,
                 hh > 0 ? hh : 1);
  am_html_text(h, label);
  am_html_raw(h, "\"></div>");
}

am_status am_report_overlays_example(am_report_t *r, int64_t ex, int32_t *idx) {
  am_grid_t g;
  int H, W;
  const uint8_t *img = am_report_grid(r, &g) ? am_report_image(r, ex, &H, &W) : NULL;
  if (!img)
    return AM_STATUS_OK;
  float *v = malloc((size_t)g.rows * g.cols * sizeof *v);
  uint8_t *out = malloc((size_t)H * W * 3);
  am_status st =
      v && out ? AM_STATUS_OK : am_fail(r->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  char file[96], path[4200];
  am_html_t *h = &r->html;
  if (st == AM_STATUS_OK && r->run.nmaps && am_report_patches(r, &g, ex, 0, idx, v)) {
    snprintf(file, sizeof file, "ex%lld-image.png", (long long)ex);
    st = am_png_write_rgb(r->ctx, am_report_img_path(r, path, sizeof path, file), img, W, H,
                          NULL, 0);
    am_html_printf(h,
                   "<h4>Over the image</h4><p class=\"note\">Each map's %dx%d patch values "
                   "(prefix left out) upsampled bilinearly to the %dx%d image, %s from its "
                   "min to its max (signed maps: RdBu_r, symmetric), blended at alpha "
                   "%.2g.</p><div class=\"grid\">",
                   g.rows, g.cols, W, H, am_colormap_name(r->opts.overlay_colormap),
                   r->opts.overlay_alpha);
    card(h, file, "image", W, H);
    for (int m = 0; m < r->run.nmaps && st == AM_STATUS_OK; m++) {
      am_report_patches(r, &g, ex, m, idx, v);
      snprintf(file, sizeof file, "ex%lld-ov-%d.png", (long long)ex, m);
      st = am_report_overlay_draw(r, &g, v, r->run.map_names[m], img, H, W, out,
                                  am_report_img_path(r, path, sizeof path, file));
      card(h, file, r->run.map_names[m], W, H);
    }
    am_html_raw(h, "</div>");
  }
  free(v);
  free(out);
  return st;
}
