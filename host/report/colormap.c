/* colormap.c — value to colour as matplotlib does it: Normalize to [0,1], entry
 * floor(256 t) of the table, values beyond the limits clipped to the end colours (the
 * default under/over colours), NaN drawn in a grey that no table holds. */
#include "report/colormap.h"

#include <math.h>
#include <stdio.h>

const char *am_colormap_name(am_colormap cmap) {
  switch (cmap) {
  case AM_COLORMAP_VIRIDIS:
    return "viridis";
  case AM_COLORMAP_MAGMA:
    return "magma";
  case AM_COLORMAP_RDBU_R:
    return "RdBu_r";
  case AM_COLORMAP_JET:
    return "jet";
  }
  return NULL;
}

const unsigned char (*am_colormap_table(am_colormap cmap))[3] {
  switch (cmap) {
  case AM_COLORMAP_MAGMA:
    return am_cmap_magma;
  case AM_COLORMAP_RDBU_R:
    return am_cmap_rdbu_r;
  case AM_COLORMAP_JET:
    return am_cmap_jet;
  default:
    return am_cmap_viridis;
  }
}

int am_colormap_index(double v, double vmin, double vmax) {
  if (isnan(v))
    return -1;
  if (!(vmax > vmin)) /* matplotlib maps everything to 0 when vmin == vmax */
    return 0;
  double t = (v - vmin) / (vmax - vmin) * 256.0;
  if (!(t >= 0.0)) /* also -inf */
    return 0;
  if (t >= 255.0)
    return 255;
  return (int)t;
}

void am_colormap_rgb(am_colormap cmap, double v, double vmin, double vmax, uint8_t rgb[3]) {
  int i = am_colormap_index(v, vmin, vmax);
  if (i < 0) {
    rgb[0] = AM_NAN_R;
    rgb[1] = AM_NAN_G;
    rgb[2] = AM_NAN_B;
    return;
  }
  const unsigned char(*tab)[3] = am_colormap_table(cmap);
  rgb[0] = tab[i][0];
  rgb[1] = tab[i][1];
  rgb[2] = tab[i][2];
}

void am_colormap_auto_limits(am_colormap cmap, const float *v, size_t n, double *vmin,
                             double *vmax) {
  double lo = INFINITY, hi = -INFINITY;
  for (size_t i = 0; i < n; i++)
    if (isfinite(v[i])) {
      lo = v[i] < lo ? v[i] : lo;
      hi = v[i] > hi ? v[i] : hi;
    }
  if (!isfinite(lo)) /* no finite value */
    lo = hi = 0.0;
  if (cmap == AM_COLORMAP_RDBU_R) {
    double m = fabs(lo) > fabs(hi) ? fabs(lo) : fabs(hi);
    lo = -m;
    hi = m;
  } else if (lo > 0.0) {
    lo = 0.0;
  }
  if (!(hi > lo))
    hi = lo + 1.0;
  *vmin = lo;
  *vmax = hi;
}

void am_colormap_hex(am_colormap cmap, double v, double vmin, double vmax, char out[8]) {
  uint8_t rgb[3];
  am_colormap_rgb(cmap, v, vmin, vmax, rgb);
  snprintf(out, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

int am_colormap_is_light(const uint8_t rgb[3]) {
  double c[3];
  for (int k = 0; k < 3; k++) {
    double s = rgb[k] / 255.0;
    c[k] = s <= 0.04045 ? s / 12.92 : pow((s + 0.055) / 1.055, 2.4);
  }
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2] > 0.179;
}
