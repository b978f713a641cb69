/* test_overlay.c — maps drawn over images (docs/report.md, "Overlays"): the overlay's
 * pixels against numpy's (tests/fixtures/make_overlay_reference.py: 2x2 patches on 16x16
 * px, 3x2 on 13x10 in jet, a signed 2x3 map with a NaN patch on 8x12), a bad `images`
 * tensor refused with one line naming file and tensor, and a report of a ViT-shaped
 * dataset with images showing every example's overlays and the contact sheet, with
 * `attnmap overlay` writing the same pixels as the report, and the report's overlay options
 * reaching the pixels (corner pixels against the run's patch values). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures/overlay_reference.h"
#include "report/overlay.h"
#include "support/dataset_builder.h"
#include "support/png_decode.h"
#include "support/report_dataset.h"
#include "support/run_cli.h"
#include "support/scratch_dir.h"

static void setup(void) { scratch_setup("overlay"); }
TestSuite(overlay, .init = setup, .fini = scratch_teardown, .timeout = 120);

static char paths[16][512]; /* tmp_path rotates 4 buffers: these tests hold more */
static int next_path;
static const char *P(const char *name) {
  return dsb_join(paths[next_path++ % 16], sizeof paths[0], dir, name);
}

static unsigned char *decode(const char *path, int *w, int *h) {
  unsigned char *px = png_decode_rgb(path, w, h);
  cr_assert_not_null(px, "%s", path);
  return px;
}

Test(overlay, pixels_match_numpy) {
  for (int c = 0; c < OVR_NCASES; c++) {
    const ovr_case_t *k = &ovr_cases[c];
    am_colormap cmap = (am_colormap)k->colormap;
    double lo, hi;
    am_overlay_limits(k->values, k->rows * k->cols, k->is_signed, &cmap, &lo, &hi);
    cr_assert_eq((int)cmap, k->colormap, "%s", k->name);
    size_t n = (size_t)k->height * k->width * 3;
    uint8_t *out = malloc(n);
    am_overlay_render(k->values, k->rows, k->cols, k->image, k->height, k->width, cmap, lo,
                      hi, k->alpha, out);
    for (size_t i = 0; i < n; i++)
      cr_assert_eq(out[i], k->expected[i], "%s: pixel (%zu, %zu) channel %zu: %d, numpy %d",
                   k->name, i / 3 / k->width, i / 3 % k->width, i % 3, out[i],
                   k->expected[i]);
    free(out);
  }
}

static const rds_spec_t vit = {.L = 2,
                               .H = 2,
                               .B = 6,
                               .T = 5,
                               .grads = 1,
                               .saliency = 1,
                               .labels = 1,
                               .grid = "2x2+1",
                               .img_h = 16,
                               .img_w = 24,
                               .seed = 18};

Test(overlay, bad_images_refused) {
  static const char *const why[] = {"dtype F32 is not U8", "expected shape [B,Hpx,Wpx,3]",
                                    "expected shape [B,Hpx,Wpx,3]"};
  for (int bad = 1; bad <= 3; bad++) {
    rds_spec_t s = vit;
    s.img_bad = bad;
    char name[32];
    snprintf(name, sizeof name, "bad%d.safetensors", bad);
    const char *path = P(name);
    cr_assert_eq(rds_make(&s, path), 0);
    am_dataset_t *ds = NULL;
    cr_assert_eq(am_dataset_open(ctx, &path, 1, &ds), AM_STATUS_BAD_INPUT, "case %d", bad);
    const char *msg = am_last_error(ctx);
    cr_assert(strstr(msg, path) && strstr(msg, "tensor images") &&
                  strstr(msg, why[bad - 1]),
              "case %d: %s", bad, msg);
    cr_assert_null(strchr(msg, '\n'), "one line: %s", msg);
    cr_assert_null(ds);
  }
}

static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
    n++;
  return n;
}

Test(overlay, report_shows_overlays_and_sheet) {
  const char *data = P("vit.safetensors"), *run = P("vit");
  cr_assert_eq(rds_make(&vit, data), 0);
  cr_assert_eq(rds_analyze(ctx, data, run), AM_STATUS_OK, "%s", am_last_error(ctx));
  cr_assert_eq(am_run_report(ctx, run, NULL, NULL), AM_STATUS_OK, "%s", am_last_error(ctx));
  char *html = dsb_read_file(P("vit/report/index.html"), NULL);
  cr_assert_not_null(html);
  am_run_t *rf = NULL;
  cr_assert_eq(am_run_open(ctx, run, &rf), AM_STATUS_OK);
  int nmaps = am_run_map_count(rf);
  am_run_close(rf);
  /* every shown example (all 6: fewer than the 20 of each table) */
  cr_assert_eq(count(html, "<h4>Over the image</h4>"), vit.B, "%d",
               count(html, "Over the"));
  cr_assert_eq(count(html, "-ov-"), nmaps * vit.B, "one overlay per map per example");
  cr_assert(strstr(html, "img/sheet.png"), "the contact sheet");
  int w, h;
  unsigned char *px = decode(P("vit/report/img/ex3-image.png"), &w, &h);
  cr_assert(w == vit.img_w && h == vit.img_h, "%dx%d", w, h);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int k = 0; k < 3; k++)
        cr_assert_eq(px[((size_t)y * w + x) * 3 + k], rds_pixel(3, y, x, k));
  free(px);
  unsigned char *sheet = decode(P("vit/report/img/sheet.png"), &w, &h);
  cr_assert(w == 4 + 3 * (vit.img_w + 4) && h >= 4 + vit.img_h + 4, "%dx%d", w, h);
  free(sheet);
  /* attnmap overlay: the report's pixels for example 2, map 0, and refusals */
  char map[64];
  cr_assert_eq(am_run_open(ctx, run, &rf), AM_STATUS_OK);
  snprintf(map, sizeof map, "%s", am_run_map_name(rf, 0));
  am_run_close(rf);
  const char *png = P("one.png");
  cli_result_t r;
  cr_assert_eq(
      cli_run(&r, NULL, "overlay", run, "--example", "2", "--map", map, "-o", png, NULL),
      0);
  cr_assert_eq(r.exit_code, 0, "%s", r.err);
  cli_result_free(&r);
  int w2, h2;
  unsigned char *a = decode(png, &w, &h),
                *b = decode(P("vit/report/img/ex2-ov-0.png"), &w2, &h2);
  cr_assert(w == w2 && h == h2 && memcmp(a, b, (size_t)w * h * 3) == 0);
  free(a);
  free(b);
  cr_assert_eq(
      cli_run(&r, NULL, "overlay", run, "--example", "2", "--map", "nope", "-o", png, NULL),
      0);
  cr_assert_eq(r.exit_code, 2);
  cr_assert(strstr(r.err, "map nope"), "%s", r.err);
  cli_result_free(&r);
  cr_assert_eq(cli_run(&r, NULL, "overlay", run, "--example", "2", "--map", map, "--alpha",
                       "2", "-o", png, NULL),
               0);
  cr_assert_eq(r.exit_code, 2, "%s", r.err);
  cli_result_free(&r);
  free(html);
}

Test(overlay, run_without_images_is_refused) {
  rds_spec_t s = vit;
  s.img_h = 0;
  const char *data = P("noimg.safetensors"), *run = P("noimg");
  cr_assert_eq(rds_make(&s, data), 0);
  cr_assert_eq(rds_analyze(ctx, data, run), AM_STATUS_OK, "%s", am_last_error(ctx));
  cr_assert_eq(am_run_write_overlay(ctx, run, 0, "rollout", P("x.png"), NULL),
               AM_STATUS_BAD_INPUT);
  cr_assert(strstr(am_last_error(ctx), "tensor images: not found"), "%s",
            am_last_error(ctx));
  cr_assert_eq(am_run_report(ctx, run, NULL, NULL), AM_STATUS_OK, "%s", am_last_error(ctx));
  char *html = dsb_read_file(P("noimg/report/index.html"), NULL);
  cr_assert(html && !strstr(html, "Over the image") && !strstr(html, "sheet.png"));
  free(html);
}

/* The report's options reach the pixels, and the patches land where they belong: with
 * jet at alpha 0.4, each corner pixel of an overlay is its corner patch's colour (the
 * upsampling clamps there) blended with the dataset's pixel, for every example and map. */
Test(overlay, report_corners_follow_patches_and_options) {
  const char *data = P("jet.safetensors"), *run = P("jet");
  cr_assert_eq(rds_make(&vit, data), 0);
  cr_assert_eq(rds_analyze(ctx, data, run), AM_STATUS_OK, "%s", am_last_error(ctx));
  am_report_options_t o;
  am_report_options_init(&o);
  o.overlay_colormap = AM_COLORMAP_JET;
  o.overlay_alpha = 0.4;
  cr_assert_eq(am_run_report(ctx, run, &o, NULL), AM_STATUS_OK, "%s", am_last_error(ctx));
  am_run_t *rf = NULL;
  cr_assert_eq(am_run_open(ctx, run, &rf), AM_STATUS_OK);
  const am_file_t *ex = am_run_examples(rf);
  int W = vit.img_w, H = vit.img_h, checked = 0;
  for (int m = 0; m < am_run_map_count(rf); m++) {
    const am_tensor_t *t = am_file_find(ex, am_run_map_name(rf, m));
    cr_assert(t && t->dtype == AM_DTYPE_F32 && t->shape[1] == vit.T);
    for (int b = 0; b < vit.B; b++) {
      float v[4];
      memcpy(v, (const float *)t->data + (size_t)b * vit.T + 1, sizeof v); /* prefix 1 */
      double lo = INFINITY, hi = -INFINITY;
      for (int i = 0; i < 4; i++) {
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
      }
      static const char *const nonneg[] = {"attention_last",   "rollout",
                                           "grad_rollout",     "flow",
                                           "saliency.grad_l2", "saliency.abs_grad_x_input"};
      int is_signed = 1; /* docs/report.md: all maps but these may be negative */
      for (int k = 0; k < 6; k++)
        is_signed &= strcmp(am_run_map_name(rf, m), nonneg[k]) != 0;
      am_colormap c = is_signed ? AM_COLORMAP_RDBU_R : AM_COLORMAP_JET;
      if (is_signed) {
        hi = fabs(lo) > fabs(hi) ? fabs(lo) : fabs(hi);
        lo = -hi;
      }
      char name[64];
      snprintf(name, sizeof name, "jet/report/img/ex%d-ov-%d.png", b, m);
      int w, h;
      unsigned char *px = decode(P(name), &w, &h);
      cr_assert(w == W && h == H);
      static const int ys[4] = {0, 0, 1, 1}, xs[4] = {0, 1, 0, 1};
      for (int i = 0; i < 4; i++) {
        int y = ys[i] * (H - 1), x = xs[i] * (W - 1);
        uint8_t rgb[3];
        am_colormap_rgb(c, v[i], lo, hi > lo ? hi : lo + 1, rgb);
        for (int k = 0; k < 3; k++) {
          int want = (int)floor(0.6 * rds_pixel(b, y, x, k) + 0.4 * rgb[k] + 0.5);
          cr_assert_eq(px[((size_t)y * W + x) * 3 + k], want,
                       "map %s, example %d, corner %d, channel %d", am_run_map_name(rf, m),
                       b, i, k);
        }
        checked++;
      }
      free(px);
    }
  }
  cr_assert_geq(checked, 4 * vit.B * 4, "at least four maps");
  am_run_close(rf);
}
