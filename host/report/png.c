/* png.c — the PNG writer: values through a colormap (colormap.c), optional nearest or
 * bilinear upsampling, tEXt chunks that record what the picture shows, libpng for the
 * encoding. Files appear whole: temporary name, then rename. */
#include "report/png.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ctx.h"
#include "report/colormap.h"

#define AM_PNG_MAX_SIDE 16384

void am_png_options_init(am_png_options_t *opts) {
  memset(opts, 0, sizeof *opts);
  opts->colormap = AM_COLORMAP_VIRIDIS;
  opts->vmin = NAN;
  opts->vmax = NAN;
  opts->scale = 1;
  opts->upsample = AM_UPSAMPLE_NEAREST;
  opts->quantity = "value";
}

typedef struct png_err {
  char msg[256];
} png_err_t;

static void on_error(png_structp png, png_const_charp msg) {
  png_err_t *e = png_get_error_ptr(png);
  snprintf(e->msg, sizeof e->msg, "%s", msg);
  png_longjmp(png, 1);
}
static void on_warning(png_structp png, png_const_charp msg) {
  (void)png;
  (void)msg;
}

/* Everything libpng may longjmp out of; returns 0 on success. */
static int encode(FILE *f, const uint8_t *rgb, int width, int height, png_text *text,
                  int ntext, png_err_t *err) {
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, err, on_error, on_warning);
  if (!png) {
    snprintf(err->msg, sizeof err->msg, "out of memory");
    return -1;
  }
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, info ? &info : NULL);
    if (!err->msg[0])
      snprintf(err->msg, sizeof err->msg, "out of memory");
    return -1;
  }
  png_init_io(png, f);
  png_set_compression_level(png, 6);
  png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (ntext > 0)
    png_set_text(png, info, text, ntext);
  png_write_info(png, info);
  for (int y = 0; y < height; y++)
    png_write_row(png, (png_const_bytep)(rgb + (size_t)y * (size_t)width * 3));
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  return 0;
}

am_status am_png_write_rgb(am_ctx_t *ctx, const char *path, const uint8_t *rgb, int width,
                           int height, const am_png_text_t *texts, int ntexts) {
  if (width < 1 || height < 1 || width > AM_PNG_MAX_SIDE || height > AM_PNG_MAX_SIDE)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "%s: image of %dx%d pixels", path,
                   width, height);
  png_text text[16];
  if (ntexts > 16 || ntexts < 0)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "%s: too many tEXt chunks", path);
  for (int i = 0; i < ntexts; i++) {
    size_t kl = texts[i].key ? strlen(texts[i].key) : 0;
    if (kl < 1 || kl > 79)
      return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "%s: bad tEXt key", path);
    memset(&text[i], 0, sizeof text[i]);
    text[i].compression = PNG_TEXT_COMPRESSION_NONE;
    text[i].key = (png_charp)texts[i].key;
    text[i].text = (png_charp)(texts[i].value ? texts[i].value : "");
    text[i].text_length = strlen(text[i].text);
  }
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof tmp)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "%s: path too long", path);
  FILE *f = fopen(tmp, "wb");
  if (!f)
    return am_fail(ctx, AM_STATUS_IO, "%s: cannot create: %s", tmp, strerror(errno));
  png_err_t err = {{0}};
  int bad = encode(f, rgb, width, height, text, ntexts, &err);
  int werr = ferror(f);
  if (fclose(f) != 0)
    werr = 1;
  if (bad || werr) {
    remove(tmp);
    return am_fail(ctx, AM_STATUS_IO, "%s: cannot write PNG: %s", path,
                   err.msg[0] ? err.msg : "write failed");
  }
  if (rename(tmp, path) != 0) {
    int e = errno;
    remove(tmp);
    return am_fail(ctx, AM_STATUS_IO, "%s: cannot rename into place: %s", path,
                   strerror(e));
  }
  return AM_STATUS_OK;
}

/* Value at output pixel (y, x) of a bilinear upsampling by s: pixel centres map to
 * (x + 0.5) / s - 0.5 in the source (half-pixel centres, edges clamped); a NaN among the
 * weighted neighbours gives the nearest value instead, so NaN cells keep their size. */
static double bilinear(const float *v, int rows, int cols, int s, int y, int x) {
  double sy = (y + 0.5) / s - 0.5, sx = (x + 0.5) / s - 0.5;
  sy = sy < 0 ? 0 : sy > rows - 1 ? rows - 1 : sy;
  sx = sx < 0 ? 0 : sx > cols - 1 ? cols - 1 : sx;
  int y0 = (int)sy, x0 = (int)sx;
  int y1 = y0 + 1 < rows ? y0 + 1 : y0, x1 = x0 + 1 < cols ? x0 + 1 : x0;
  double fy = sy - y0, fx = sx - x0;
  double a = v[(size_t)y0 * cols + x0], b = v[(size_t)y0 * cols + x1];
  double c = v[(size_t)y1 * cols + x0], d = v[(size_t)y1 * cols + x1];
  if (isnan(a) || isnan(b) || isnan(c) || isnan(d))
    return v[(size_t)(y / s) * cols + (x / s)];
  return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy;
}

void am_png_render(const float *values, int rows, int cols, am_colormap cmap, double vmin,
                   double vmax, int scale, am_upsample up, uint8_t *rgb) {
  size_t w = (size_t)cols * (size_t)scale;
  for (int y = 0; y < rows * scale; y++)
    for (size_t x = 0; x < w; x++) {
      double v = up == AM_UPSAMPLE_BILINEAR && scale > 1
                     ? bilinear(values, rows, cols, scale, y, (int)x)
                     : values[(size_t)(y / scale) * cols + x / (size_t)scale];
      am_colormap_rgb(cmap, v, vmin, vmax, rgb + ((size_t)y * w + x) * 3);
    }
}

am_status am_png_write_map(am_ctx_t *ctx, const char *path, const float *values, int rows,
                           int cols, const am_png_options_t *opts) {
  am_png_options_t o;
  if (opts)
    o = *opts;
  else
    am_png_options_init(&o);
  if (!path || !values || rows < 1 || cols < 1 || o.scale < 1 || o.scale > 64 ||
      !am_colormap_name(o.colormap) ||
      (o.upsample != AM_UPSAMPLE_NEAREST && o.upsample != AM_UPSAMPLE_BILINEAR))
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: PNG map needs values, rows, cols >= 1, scale 1..64 and a colormap",
                   path ? path : "(null)");
  if ((int64_t)rows * o.scale > AM_PNG_MAX_SIDE ||
      (int64_t)cols * o.scale > AM_PNG_MAX_SIDE)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: %dx%d values at scale %d exceed %d px", path, rows, cols, o.scale,
                   AM_PNG_MAX_SIDE);
  double lo = o.vmin, hi = o.vmax, alo, ahi;
  if (isnan(lo) || isnan(hi)) {
    am_colormap_auto_limits(o.colormap, values, (size_t)rows * (size_t)cols, &alo, &ahi);
    lo = isnan(lo) ? alo : lo;
    hi = isnan(hi) ? ahi : hi;
  }
  size_t w = (size_t)cols * o.scale, h = (size_t)rows * o.scale;
  uint8_t *rgb = malloc(w * h * 3);
  if (!rgb)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
  am_png_render(values, rows, cols, o.colormap, lo, hi, o.scale, o.upsample, rgb);
  char slo[32], shi[32], soft[32];
  snprintf(slo, sizeof slo, "%.9g", lo);
  snprintf(shi, sizeof shi, "%.9g", hi);
  snprintf(soft, sizeof soft, "attnmap %s", am_version());
  am_png_text_t texts[] = {{"attnmap.quantity", o.quantity ? o.quantity : "value"},
                           {"attnmap.colormap", am_colormap_name(o.colormap)},
                           {"attnmap.vmin", slo},
                           {"attnmap.vmax", shi},
                           {"attnmap.nan", "rgb(128,128,128)"},
                           {"Software", soft}};
  am_status st = am_png_write_rgb(ctx, path, rgb, (int)w, (int)h, texts, 6);
  free(rgb);
  return st;
}
