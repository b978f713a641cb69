/* overlay.h — a map drawn over its image (overlay.c): the patch values bilinearly
 * upsampled to the image's pixels, coloured, alpha-blended with the picture. The report's
 * overlays, its contact sheet and am_run_write_overlay all draw through these. */
#ifndef AM_REPORT_OVERLAY_H
#define AM_REPORT_OVERLAY_H

#include <stdint.h>

#include "attnmap.h"

/* Value at output pixel (y, x) of values [rows, cols] upsampled bilinearly to
 * [height, width]: pixel centres, source coordinate (y + 0.5) * rows / height - 0.5
 * clamped to 0..rows-1 (torch's interpolate(mode="bilinear", align_corners=False), PIL's
 * and OpenCV's convention; scipy's zoom(grid_mode=True, mode="nearest") for whole factors).
 * A NaN among the four neighbours gives the nearest cell's value (NaN stays NaN). */
double am_overlay_sample(const float *v, int rows, int cols, int height, int width, int y,
                         int x);

/* Colour limits of a map's patch values: [min, max] of the finite values for a
 * non-negative map (the min-max scaling of Chefer et al.'s notebooks), [-m, m] with
 * m = max |v| for a signed one (drawn in RdBu_r); *cmap is set to what is drawn. */
void am_overlay_limits(const float *v, int n, int is_signed, am_colormap *cmap,
                       double *vmin, double *vmax);

/* out [height, width, 3] = floor((1 - alpha) * img + alpha * colour + 0.5) per channel,
 * colour the colormap's entry of the upsampled value (NaN: grey 128). */
void am_overlay_render(const float *v, int rows, int cols, const uint8_t *img, int height,
                       int width, am_colormap cmap, double vmin, double vmax, double alpha,
                       uint8_t *out);

/* img [height, width, 3] reduced by k in each direction into out [height/k, width/k, 3]:
 * the mean of each k x k block, rounded half up (k >= 1; the last partial rows and
 * columns are dropped). */
void am_image_shrink(const uint8_t *img, int height, int width, int k, uint8_t *out);

#endif
