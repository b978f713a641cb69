/* svg.h — the figure parts that the page draws around the PNGs: axes with tick values,
 * colour bars, histograms, line charts and box glyphs, as inline SVG (no fonts in PNGs). */
#ifndef AM_REPORT_SVG_H
#define AM_REPORT_SVG_H

#include <stdint.h>

#include "attnmap.h"
#include "report/html.h"

/* <defs> with a horizontal and a vertical gradient per colormap (ids g-<name>-h/-v), once
 * per page in a hidden <svg>. */
void am_svg_gradients(am_html_t *h);

/* A PNG heat map of rows x cols cells of cell px each, with the row axis (label, ticks
 * 0..rows-1) on the left, the column axis at the bottom and a colour bar on the right.
 * src is a relative path; the caller chose it (trusted). */
typedef struct am_svg_heatmap {
  const char *src, *row_label, *col_label, *alt;
  const char *image_attrs; /* extra attributes of the <image> (trusted), or NULL */
  int rows, cols, cell;
  am_colormap cmap;
  double vmin, vmax;
} am_svg_heatmap_t;
void am_svg_heatmap(am_html_t *h, const am_svg_heatmap_t *m);

/* A colour bar of width w x height ht at (x, y) inside an open <svg>, vertical, with
 * five tick values to its right. */
void am_svg_colorbar(am_html_t *h, am_colormap cmap, double vmin, double vmax, int x, int y,
                     int w, int ht);
/* A horizontal colour bar as its own small <svg> (legends of strips and token views). */
void am_svg_colorbar_h(am_html_t *h, am_colormap cmap, double vmin, double vmax, int w);

/* Histogram of fixed bins over [lo, hi]: a sparkline (axes 0) or a chart with tick values
 * and counts (axes 1). */
void am_svg_histogram(am_html_t *h, const double *counts, int nbins, double lo, double hi,
                      int w, int ht, int axes);

/* A line chart of values[0..n-1] against their index, with tick values on both axes. */
void am_svg_lines(am_html_t *h, const double *values, int n, int w, int ht,
                  const char *xlabel);

/* A box glyph on [lo, hi]: whiskers p05..p95, box p25..p75, a line at the median. */
void am_svg_box(am_html_t *h, const double q[5], double lo, double hi, int w);

#endif
