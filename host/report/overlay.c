/* overlay.c — maps drawn over images: bilinear upsampling of the patch grid at pixel
 * centres, the colormap, alpha blending in double and one rounding at the end. The
 * pixel-level reference is tests/fixtures/make_overlay_reference.py (numpy). */
#include "report/overlay.h"

#include <math.h>

#include "report/colormap.h"

/* Source coordinate of output index i on an axis of n cells drawn over m pixels. */
static double source(int i, int n, int m) {
  double s = (i + 0.5) * n / m - 0.5;
  return s < 0 ? 0 : s > n - 1 ? n - 1 : s;
}

double am_overlay_sample(const float *v, int rows, int cols, int height, int width, int y,
                         int x) {
  double sy = source(y, rows, height), sx = source(x, cols, width);
  int y0 = (int)sy, x0 = (int)sx;
  int y1 = y0 + 1 < rows ? y0 + 1 : y0, x1 = x0 + 1 < cols ? x0 + 1 : x0;
  double fy = sy - y0, fx = sx - x0;
  double a = v[(size_t)y0 * cols + x0], b = v[(size_t)y0 * cols + x1];
  double c = v[(size_t)y1 * cols + x0], d = v[(size_t)y1 * cols + x1];
  if (isnan(a) || isnan(b) || isnan(c) || isnan(d)) {
    int ny = (int)((int64_t)y * rows / height), nx = (int)((int64_t)x * cols / width);
    return v[(size_t)ny * cols + nx];
  }
  return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy;
}

void am_overlay_limits(const float *v, int n, int is_signed, am_colormap *cmap,
                       double *vmin, double *vmax) {
  double lo = INFINITY, hi = -INFINITY;
  for (int i = 0; i < n; i++)
    if (isfinite(v[i])) {
      lo = v[i] < lo ? v[i] : lo;
      hi = v[i] > hi ? v[i] : hi;
    }
  if (!isfinite(lo))
    lo = hi = 0;
  if (is_signed) {
    double m = fabs(lo) > fabs(hi) ? fabs(lo) : fabs(hi);
    lo = -m;
    hi = m;
    *cmap = AM_COLORMAP_RDBU_R;
  }
  *vmin = lo;
  *vmax = hi > lo ? hi : lo + 1.0;
}

void am_overlay_render(const float *v, int rows, int cols, const uint8_t *img, int height,
                       int width, am_colormap cmap, double vmin, double vmax, double alpha,
                       uint8_t *out) {
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++) {
      uint8_t c[3];
      size_t at = ((size_t)y * width + x) * 3;
      am_colormap_rgb(cmap, am_overlay_sample(v, rows, cols, height, width, y, x), vmin,
                      vmax, c);
      for (int k = 0; k < 3; k++)
        out[at + k] = (uint8_t)floor((1.0 - alpha) * img[at + k] + alpha * c[k] + 0.5);
    }
}

void am_image_shrink(const uint8_t *img, int height, int width, int k, uint8_t *out) {
  int h = height / k, w = width / k;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int ch = 0; ch < 3; ch++) {
        unsigned s = 0;
        for (int i = 0; i < k; i++)
          for (int j = 0; j < k; j++)
            s += img[((size_t)(y * k + i) * width + (x * k + j)) * 3 + ch];
        out[((size_t)y * w + x) * 3 + ch] =
            (uint8_t)((2 * s + (unsigned)(k * k)) / (2u * (unsigned)(k * k)));
      }
}
