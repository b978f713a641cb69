/* png.h — 8-bit RGB PNG files through libpng, with tEXt chunks, written atomically. */
#ifndef AM_REPORT_PNG_H
#define AM_REPORT_PNG_H

#include <stdint.h>

#include "attnmap.h"

typedef struct am_png_text {
  const char *key; /* 1..79 Latin-1 characters */
  const char *value;
} am_png_text_t;

/* rgb [height, width, 3]. Written to "<path>.tmp-<pid>" and renamed. */
am_status am_png_write_rgb(am_ctx_t *ctx, const char *path, const uint8_t *rgb, int width,
                           int height, const am_png_text_t *texts, int ntexts);

/* Colours values [rows, cols] into rgb [rows*scale, cols*scale, 3] (the caller's buffer)
 * with limits vmin..vmax, upsampled as asked. */
void am_png_render(const float *values, int rows, int cols, am_colormap cmap, double vmin,
                   double vmax, int scale, am_upsample up, uint8_t *rgb);

#endif
