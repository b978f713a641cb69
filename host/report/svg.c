/* svg.c — inline SVG around the report's PNGs: tick values, axis labels, colour bars
 * built from the same 256-entry tables as the PNGs (17 gradient stops), histograms and
 * line charts. All coordinates are integers or %.1f; numbers are formatted with %.3g. */
#include "report/svg.h"

#include <math.h>
#include <stdio.h>

#include "report/colormap.h"

static void stops(am_html_t *h, am_colormap c) {
  const unsigned char(*t)[3] = am_colormap_table(c);
  for (int k = 0; k <= 16; k++) {
    int i = k * 255 / 16;
    am_html_printf(h, "<stop offset=\"%.4f\" stop-color=\"#%02x%02x%02x\"/>", k / 16.0,
                   t[i][0], t[i][1], t[i][2]);
  }
}

void am_svg_gradients(am_html_t *h) {
  am_html_raw(h, "<svg width=\"0\" height=\"0\" style=\"position:absolute\" "
                 "aria-hidden=\"true\"><defs>");
  for (int c = AM_COLORMAP_VIRIDIS; c <= AM_COLORMAP_JET; c++) {
    const char *n = am_colormap_name((am_colormap)c);
    am_html_printf(h, "<linearGradient id=\"g-%s-h\" x1=\"0\" y1=\"0\" x2=\"1\" y2=\"0\">",
                   n);
    stops(h, (am_colormap)c);
    am_html_printf(h,
                   "</linearGradient><linearGradient id=\"g-%s-v\" x1=\"0\" y1=\"1\" "
                   "x2=\"0\" y2=\"0\">",
                   n);
    stops(h, (am_colormap)c);
    am_html_raw(h, "</linearGradient>");
  }
  am_html_raw(h, "</defs></svg>\n");
}

/* Tick step so that at most ~max ticks show for n cells. */
static int tick_step(int n, int max) {
  static const int steps[] = {1,  2,  4,  5,  8,   10,  16,  20,
                              25, 32, 50, 64, 100, 128, 256, 512};
  for (size_t i = 0; i < sizeof steps / sizeof *steps; i++)
    if ((n + steps[i] - 1) / steps[i] <= max)
      return steps[i];
  return (n + max - 1) / max;
}

void am_svg_colorbar(am_html_t *h, am_colormap cmap, double vmin, double vmax, int x, int y,
                     int w, int ht) {
  am_html_printf(h,
                 "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"url(#g-%s-v)\" "
                 "stroke=\"#888\" stroke-width=\"0.5\"/>",
                 x, y, w, ht, am_colormap_name(cmap));
  for (int k = 0; k <= 4; k++) {
    double v = vmin + (vmax - vmin) * k / 4.0;
    int ty = y + ht - ht * k / 4;
    am_html_printf(h,
                   "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#444\"/>"
                   "<text x=\"%d\" y=\"%d\" class=\"tk\">%.3g</text>",
                   x + w, ty, x + w + 3, ty, x + w + 5, ty + 4, v);
  }
}

void am_svg_colorbar_h(am_html_t *h, am_colormap cmap, double vmin, double vmax, int w) {
  am_html_printf(
      h,
      "<svg class=\"cbar\" width=\"%d\" height=\"30\" role=\"img\">"
      "<rect x=\"10\" y=\"2\" width=\"%d\" height=\"10\" fill=\"url(#g-%s-h)\"/>",
      w + 20, w, am_colormap_name(cmap));
  for (int k = 0; k <= 4; k++)
    am_html_printf(
        h, "<text x=\"%d\" y=\"26\" class=\"tk\" text-anchor=\"middle\">%.3g</text>",
        10 + w * k / 4, vmin + (vmax - vmin) * k / 4.0);
  am_html_raw(h, "</svg>");
}

void am_svg_heatmap(am_html_t *h, const am_svg_heatmap_t *m) {
  int left = 54, top = 8, W = m->cols * m->cell, H = m->rows * m->cell;
  int width = left + W + 90, height = top + H + 40;
  am_html_printf(h,
                 "<svg class=\"fig\" width=\"%d\" height=\"%d\" role=\"img\" aria-label=\"",
                 width, height);
  am_html_text(h, m->alt);
  am_html_printf(h,
                 "\"><image href=\"%s\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                 "preserveAspectRatio=\"none\" style=\"image-rendering:pixelated\" %s/>",
                 m->src, left, top, W, H, m->image_attrs ? m->image_attrs : "");
  int rs = tick_step(m->rows, 16), cs = tick_step(m->cols, 16);
  for (int r = 0; r < m->rows; r += rs)
    am_html_printf(h, "<text x=\"%d\" y=\"%d\" class=\"tk\" text-anchor=\"end\">%d</text>",
                   left - 4, top + r * m->cell + m->cell / 2 + 4, r);
  for (int c = 0; c < m->cols; c += cs)
    am_html_printf(h,
                   "<text x=\"%d\" y=\"%d\" class=\"tk\" text-anchor=\"middle\">%d</text>",
                   left + c * m->cell + m->cell / 2, top + H + 14, c);
  am_html_printf(h,
                 "<text x=\"12\" y=\"%d\" class=\"ax\" transform=\"rotate(-90 12 %d)\" "
                 "text-anchor=\"middle\">%s</text>",
                 top + H / 2, top + H / 2, m->row_label);
  am_html_printf(h, "<text x=\"%d\" y=\"%d\" class=\"ax\" text-anchor=\"middle\">%s</text>",
                 left + W / 2, top + H + 32, m->col_label);
  am_svg_colorbar(h, m->cmap, m->vmin, m->vmax, left + W + 12, top, 12, H < 60 ? 60 : H);
  am_html_raw(h, "</svg>");
}

void am_svg_histogram(am_html_t *h, const double *counts, int nbins, double lo, double hi,
                      int w, int ht, int axes) {
  double mx = 0;
  for (int i = 0; i < nbins; i++)
    mx = counts[i] > mx ? counts[i] : mx;
  int left = axes ? 36 : 0, bottom = axes ? 16 : 0, pw = w - left, ph = ht - bottom;
  am_html_printf(h, "<svg class=\"%s\" width=\"%d\" height=\"%d\" role=\"img\">",
                 axes ? "fig" : "spark", w, ht);
  am_html_printf(h, "<path class=\"bars\" d=\"M%d %d", left, ph);
  for (int i = 0; i < nbins && mx > 0; i++) {
    double x0 = left + (double)pw * i / nbins, x1 = left + (double)pw * (i + 1) / nbins;
    double y = ph - (ph - 1) * counts[i] / mx;
    am_html_printf(h, "L%.1f %.1fL%.1f %.1f", x0, y, x1, y);
  }
  am_html_printf(h, "L%d %dZ\"/>", left + pw, ph);
  if (axes) {
    am_html_printf(h,
                   "<text x=\"%d\" y=\"%d\" class=\"tk\">%.3g</text>"
                   "<text x=\"%d\" y=\"%d\" class=\"tk\" text-anchor=\"middle\">%.3g</text>"
                   "<text x=\"%d\" y=\"%d\" class=\"tk\" text-anchor=\"end\">%.3g</text>"
                   "<text x=\"%d\" y=\"10\" class=\"tk\" text-anchor=\"end\">%.0f</text>",
                   left, ht - 3, lo, left + pw / 2, ht - 3, (lo + hi) / 2, w, ht - 3, hi,
                   left - 3, mx);
  }
  am_html_raw(h, "</svg>");
}

void am_svg_lines(am_html_t *h, const double *values, int n, int w, int ht,
                  const char *xlabel) {
  double lo = INFINITY, hi = -INFINITY;
  for (int i = 0; i < n; i++)
    if (isfinite(values[i])) {
      lo = values[i] < lo ? values[i] : lo;
      hi = values[i] > hi ? values[i] : hi;
    }
  if (!isfinite(lo))
    lo = hi = 0;
  if (!(hi > lo))
    hi = lo + 1;
  int left = 48, bottom = 30, pw = w - left - 8, ph = ht - bottom - 6;
  am_html_printf(h, "<svg class=\"fig\" width=\"%d\" height=\"%d\" role=\"img\">", w, ht);
  am_html_printf(h, "<path class=\"axis\" d=\"M%d 6V%dH%d\"/><path class=\"line\" d=\"",
                 left, 6 + ph, left + pw);
  int pen = 0;
  for (int i = 0; i < n; i++) {
    if (!isfinite(values[i])) {
      pen = 0;
      continue;
    }
    double x = left + (n > 1 ? (double)pw * i / (n - 1) : pw / 2.0);
    double y = 6 + ph - ph * (values[i] - lo) / (hi - lo);
    am_html_printf(h, "%c%.1f %.1f", pen ? 'L' : 'M', x, y);
    pen = 1;
  }
  am_html_raw(h, "\"/>");
  am_html_printf(h,
                 "<text x=\"%d\" y=\"%d\" class=\"tk\" text-anchor=\"end\">%.3g</text>"
                 "<text x=\"%d\" y=\"14\" class=\"tk\" text-anchor=\"end\">%.3g</text>",
                 left - 3, 6 + ph, lo, left - 3, hi);
  int step = tick_step(n, 8);
  for (int i = 0; i < n; i += step)
    am_html_printf(
        h, "<text x=\"%.1f\" y=\"%d\" class=\"tk\" text-anchor=\"middle\">%d</text>",
        left + (n > 1 ? (double)pw * i / (n - 1) : pw / 2.0), 6 + ph + 13, i);
  am_html_printf(
      h, "<text x=\"%d\" y=\"%d\" class=\"ax\" text-anchor=\"middle\">%s</text></svg>",
      left + pw / 2, ht - 2, xlabel);
}

void am_svg_box(am_html_t *h, const double q[5], double lo, double hi, int w) {
  am_html_printf(h, "<svg class=\"box\" width=\"%d\" height=\"14\" role=\"img\">", w);
  if (!isnan(q[2]) && hi > lo) {
    double x[5];
    for (int k = 0; k < 5; k++)
      x[k] = 1 + (w - 2) * ((q[k] < lo ? lo : q[k] > hi ? hi : q[k]) - lo) / (hi - lo);
    am_html_printf(h,
                   "<path class=\"wh\" d=\"M%.1f 7H%.1fM%.1f 7H%.1f\"/>"
                   "<rect x=\"%.1f\" y=\"2\" width=\"%.1f\" height=\"10\" class=\"bx\"/>"
                   "<path class=\"md\" d=\"M%.1f 1V13\"/>",
                   x[0], x[1], x[3], x[4], x[1], x[3] - x[1] > 1 ? x[3] - x[1] : 1, x[2]);
  }
  am_html_raw(h, "</svg>");
}
