/* test_png.c — the PNG writer and its colormaps against matplotlib: the embedded 8-bit
 * tables against matplotlib's float colours, written files decoded back with libpng and
 * compared pixel by pixel with matplotlib's rendering of the same values (NaN, values
 * beyond the limits, nearest and bilinear upsampling, the latter against scipy's zoom),
 * the tEXt chunks, automatic limits and argument errors. Expected values come from
 * tests/fixtures/colormap_reference.h (matplotlib, scipy) and from matplotlib's
 * documented end colours, never from attnmap. */
#include <criterion/criterion.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnmap.h"
#include "fixtures/colormap_reference.h"
#include "support/png_decode.h"
#include "support/scratch_dir.h"

static const am_colormap cmaps[3] = {AM_COLORMAP_VIRIDIS, AM_COLORMAP_MAGMA,
                                     AM_COLORMAP_RDBU_R};

static void setup(void) { scratch_setup("png"); }
TestSuite(png, .init = setup, .fini = scratch_teardown, .timeout = 60);

/* Decodes path as 8-bit RGB (malloc'd) with libpng's simplified API. */
static unsigned char *decode(const char *path, int *w, int *h) {
  unsigned char *px = png_decode_rgb(path, w, h);
  cr_assert_not_null(px, "%s", path);
  return px;
}

/* tEXt value of key in path (malloc'd), NULL when absent. */
static char *text_chunk(const char *path, const char *key) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f);
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  cr_assert(png && info);
  char *out = NULL;
  if (setjmp(png_jmpbuf(png)) == 0) {
    png_init_io(png, f);
    png_read_info(png, info);
    png_textp t = NULL;
    int n = png_get_text(png, info, &t, NULL);
    for (int i = 0; i < n; i++)
      if (strcmp(t[i].key, key) == 0)
        out = strdup(t[i].text);
  }
  png_destroy_read_struct(&png, &info, NULL);
  fclose(f);
  return out;
}

static am_png_options_t opts(am_colormap c, double lo, double hi, int scale,
                             am_upsample up) {
  am_png_options_t o;
  am_png_options_init(&o);
  o.colormap = c;
  o.vmin = lo;
  o.vmax = hi;
  o.scale = scale;
  o.upsample = up;
  o.quantity = "rollout";
  return o;
}

Test(png, tables_are_matplotlibs) {
  /* Documented ends of matplotlib's tables (8-bit, as imsave writes them). */
  static const unsigned char ends[3][2][3] = {{{68, 1, 84}, {253, 231, 36}},
                                              {{0, 0, 3}, {251, 252, 191}},
                                              {{5, 48, 97}, {103, 0, 31}}};
  for (int c = 0; c < 3; c++) {
    cr_assert_str_eq(am_colormap_name(cmaps[c]), cmr_names[c]);
    uint8_t rgb[3];
    am_colormap_rgb(cmaps[c], 0.0, 0.0, 1.0, rgb);
    cr_assert(memcmp(rgb, ends[c][0], 3) == 0, "%s low end", cmr_names[c]);
    am_colormap_rgb(cmaps[c], 1.0, 0.0, 1.0, rgb);
    cr_assert(memcmp(rgb, ends[c][1], 3) == 0, "%s high end", cmr_names[c]);
    for (int i = 0; i < 256; i++) { /* entry i sits at the centre of bin i */
      am_colormap_rgb(cmaps[c], (i + 0.5) / 256.0, 0.0, 1.0, rgb);
      for (int k = 0; k < 3; k++)
        cr_assert_eq(rgb[k], (int)(cmr_float[c][i][k] * 255.0), "%s entry %d channel %d",
                     cmr_names[c], i, k);
    }
  }
  cr_assert_null(am_colormap_name((am_colormap)7));
}

Test(png, nan_is_grey_in_every_map) {
  for (int c = 0; c < 3; c++) {
    uint8_t rgb[3];
    am_colormap_rgb(cmaps[c], NAN, 0.0, 1.0, rgb);
    cr_assert(rgb[0] == 128 && rgb[1] == 128 && rgb[2] == 128);
    for (int i = 0; i < 256; i++) /* distinct: no entry is that grey */
      cr_assert(fabs(cmr_float[c][i][0] - 0.502) + fabs(cmr_float[c][i][1] - 0.502) +
                        fabs(cmr_float[c][i][2] - 0.502) >
                    0.05,
                "%s entry %d is close to the NaN grey", cmr_names[c], i);
  }
}

Test(png, pixels_match_matplotlib) {
  for (int c = 0; c < 3; c++) {
    am_png_options_t o = opts(cmaps[c], CMR_VMIN, CMR_VMAX, 1, AM_UPSAMPLE_NEAREST);
    const char *path = tmp_path("a.png");
    cr_assert_eq(am_png_write_map(ctx, path, cmr_values, CMR_ROWS, CMR_COLS, &o),
                 AM_STATUS_OK, "%s", am_last_error(ctx));
    int w, h;
    unsigned char *px = decode(path, &w, &h);
    cr_assert_eq(w, CMR_COLS);
    cr_assert_eq(h, CMR_ROWS);
    for (int i = 0; i < w * h * 3; i++)
      cr_assert_eq(px[i], cmr_expect[c][i], "%s: pixel %d channel %d (value %g)",
                   cmr_names[c], i / 3, i % 3, cmr_values[i / 3]);
    free(px);
  }
}

Test(png, nearest_upsampling_repeats_cells) {
  am_png_options_t o = opts(AM_COLORMAP_MAGMA, CMR_VMIN, CMR_VMAX, 4, AM_UPSAMPLE_NEAREST);
  const char *path = tmp_path("n.png");
  cr_assert_eq(am_png_write_map(ctx, path, cmr_values, CMR_ROWS, CMR_COLS, &o),
               AM_STATUS_OK);
  int w, h;
  unsigned char *px = decode(path, &w, &h);
  cr_assert(w == 4 * CMR_COLS && h == 4 * CMR_ROWS);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      cr_assert(memcmp(px + (y * w + x) * 3,
                       cmr_expect[1] + ((y / 4) * CMR_COLS + x / 4) * 3, 3) == 0,
                "pixel %d,%d", x, y);
  free(px);
}

/* The entry matplotlib uses for v in [0, 1] (Normalize, *256, floor, clip). */
static int entry(double v) {
  double t = v * 256.0;
  return t >= 255 ? 255 : t < 0 ? 0 : (int)t;
}

Test(png, bilinear_upsampling_matches_scipy_zoom) {
  am_png_options_t o = opts(AM_COLORMAP_VIRIDIS, 0.0, 1.0, CMR_SCALE, AM_UPSAMPLE_BILINEAR);
  const char *path = tmp_path("b.png");
  cr_assert_eq(am_png_write_map(ctx, path, cmr_small, CMR_SMALL_ROWS, CMR_SMALL_COLS, &o),
               AM_STATUS_OK);
  int w, h, off = 0;
  unsigned char *px = decode(path, &w, &h);
  cr_assert(w == CMR_SMALL_COLS * CMR_SCALE && h == CMR_SMALL_ROWS * CMR_SCALE);
  for (int i = 0; i < w * h; i++) {
    if (memcmp(px + 3 * i, cmr_zoomed_rgb + 3 * i, 3) == 0)
      continue;
    /* float rounding may cross a bin edge: allowed only right at one */
    double t = cmr_zoomed[i] * 256.0;
    cr_assert(fabs(t - nearbyint(t)) < 1e-4, "pixel %d: value %.9g not at a bin edge", i,
              cmr_zoomed[i]);
    uint8_t alt[3];
    am_colormap_rgb(AM_COLORMAP_VIRIDIS, (entry(cmr_zoomed[i]) - 0.5) / 256.0, 0, 1, alt);
    cr_assert(memcmp(px + 3 * i, alt, 3) == 0, "pixel %d", i);
    off++;
  }
  cr_assert_leq(off, 3);
  free(px);
}

Test(png, text_chunks_record_the_picture) {
  am_png_options_t o = opts(AM_COLORMAP_RDBU_R, -0.25, 0.75, 2, AM_UPSAMPLE_NEAREST);
  o.quantity = "saliency.ig of example 3";
  const char *path = tmp_path("t.png");
  cr_assert_eq(am_png_write_map(ctx, path, cmr_values, CMR_ROWS, CMR_COLS, &o),
               AM_STATUS_OK);
  static const char *const keys[] = {"attnmap.quantity", "attnmap.colormap", "attnmap.vmin",
                                     "attnmap.vmax"};
  char *v[4];
  for (int k = 0; k < 4; k++) {
    v[k] = text_chunk(path, keys[k]);
    cr_assert_not_null(v[k], "no tEXt %s", keys[k]);
  }
  cr_assert_str_eq(v[0], "saliency.ig of example 3");
  cr_assert_str_eq(v[1], "RdBu_r");
  cr_assert_float_eq(strtod(v[2], NULL), -0.25, 1e-12);
  cr_assert_float_eq(strtod(v[3], NULL), 0.75, 1e-12);
  for (int k = 0; k < 4; k++)
    free(v[k]);
  char *soft = text_chunk(path, "Software");
  cr_assert(soft && strstr(soft, "attnmap"));
  free(soft);
}

Test(png, automatic_limits) {
  const float signed_vals[4] = {-0.5f, 0.25f, NAN, 2.0f};
  const float pos_vals[4] = {0.5f, 0.25f, INFINITY, 2.0f};
  am_png_options_t o = opts(AM_COLORMAP_RDBU_R, NAN, NAN, 1, AM_UPSAMPLE_NEAREST);
  const char *path = tmp_path("auto.png");
  cr_assert_eq(am_png_write_map(ctx, path, signed_vals, 2, 2, &o), AM_STATUS_OK);
  char *lo = text_chunk(path, "attnmap.vmin"), *hi = text_chunk(path, "attnmap.vmax");
  cr_assert(strtod(lo, NULL) == -2.0 && strtod(hi, NULL) == 2.0, "%s %s", lo, hi);
  free(lo);
  free(hi);
  int w, h;
  unsigned char *px = decode(path, &w, &h);
  cr_assert(px[6] == 128 && px[7] == 128 && px[8] == 128, "NaN pixel grey");
  cr_assert(memcmp(px + 9, (unsigned char[]){103, 0, 31}, 3) == 0, "max = darkest red");
  free(px);
  o.colormap = AM_COLORMAP_VIRIDIS;
  cr_assert_eq(am_png_write_map(ctx, path, pos_vals, 2, 2, &o), AM_STATUS_OK);
  lo = text_chunk(path, "attnmap.vmin");
  hi = text_chunk(path, "attnmap.vmax");
  cr_assert(strtod(lo, NULL) == 0.0 && strtod(hi, NULL) == 2.0, "%s %s", lo, hi);
  free(lo);
  free(hi);
}

Test(png, bad_arguments_leave_no_file) {
  am_png_options_t o = opts(AM_COLORMAP_VIRIDIS, 0, 1, 0, AM_UPSAMPLE_NEAREST);
  const char *path = tmp_path("bad.png");
  cr_assert_eq(am_png_write_map(ctx, path, cmr_values, 5, 7, &o),
               AM_STATUS_INVALID_ARGUMENT);
  o.scale = 65;
  cr_assert_eq(am_png_write_map(ctx, path, cmr_values, 5, 7, &o),
               AM_STATUS_INVALID_ARGUMENT);
  o.scale = 1;
  cr_assert_eq(am_png_write_map(ctx, path, cmr_values, 0, 7, &o),
               AM_STATUS_INVALID_ARGUMENT);
  o.colormap = (am_colormap)9;
  cr_assert_eq(am_png_write_map(ctx, path, cmr_values, 5, 7, &o),
               AM_STATUS_INVALID_ARGUMENT);
  o.colormap = AM_COLORMAP_MAGMA;
  cr_assert_eq(am_png_write_map(ctx, "/nonexistent-dir/x.png", cmr_values, 5, 7, &o),
               AM_STATUS_IO);
  cr_assert(strstr(am_last_error(ctx), "/nonexistent-dir/x.png"));
  cr_assert_eq(count_files(), 0, "no file or temporary left behind");
}
