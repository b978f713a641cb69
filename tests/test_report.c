/* test_report.c — am_run_report on runs analysed from built datasets: the page's sections
 * and images, token strings from the dataset shown as text (markup in tokens never
 * reaches the page unescaped, nor ends a script block), the head grid's pixels against
 * matplotlib's table and summary.json, a dataset that moved or changed (the report says so
 * and still works), patch-grid maps, a run without gradients or agreement, replacing an
 * old report whole, and bad run folders. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures/colormap_reference.h"
#include "pipeline/summary.h"
#include "support/dataset_builder.h"
#include "support/png_decode.h"
#include "support/report_dataset.h"

static char work[128];
static char paths[16][512];
static int next_path;
static am_ctx_t *ctx;

static void setup(void) {
  cr_assert_eq(dsb_tempdir(work, sizeof work, "report"), 0);
  cr_assert_eq(am_ctx_create(NULL, &ctx, NULL, 0), AM_STATUS_OK);
}
static void teardown(void) {
  am_ctx_destroy(ctx);
  dsb_rmtree(work);
}
TestSuite(report, .init = setup, .fini = teardown, .timeout = 120);

static const char *P(const char *name) {
  return dsb_join(paths[next_path++ % 16], sizeof paths[0], work, name);
}
static const char *in(const char *dir, const char *name) {
  return dsb_join(paths[next_path++ % 16], sizeof paths[0], dir, name);
}

static void analyze(const char *data, const char *run) {
  cr_assert_eq(rds_analyze(ctx, data, run), AM_STATUS_OK, "%s", am_last_error(ctx));
}

static const char *make(const rds_spec_t *spec, const char *name) {
  char file[64];
  snprintf(file, sizeof file, "%s.safetensors", name);
  const char *data = P(file), *run = P(name);
  cr_assert_eq(rds_make(spec, data), 0);
  analyze(data, run);
  return run;
}

static const rds_spec_t full = {.L = 2,
                                .H = 3,
                                .B = 16,
                                .T = 10,
                                .grads = 1,
                                .saliency = 1,
                                .labels = 1,
                                .varied = 1,
                                .seed = 5};

static char *report(const char *run, const am_report_options_t *o,
                    am_report_result_t *res) {
  am_status st = am_run_report(ctx, run, o, res);
  cr_assert_eq(st, AM_STATUS_OK, "%s", am_last_error(ctx));
  char *html = dsb_read_file(in(run, "report/index.html"), NULL);
  cr_assert_not_null(html);
  return html;
}

static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
    n++;
  return n;
}

Test(report, page_sections_images_and_escaped_tokens) {
  const char *run = make(&full, "run");
  am_report_result_t res;
  char *html = report(run, NULL, &res);
  cr_assert_str_eq(res.note, "");
  cr_assert_eq(res.views, 6);
  cr_assert_eq(res.compared, 0);
  static const char *const ids[] = {"id=\"provenance\"", "id=\"heads\"",
                                    "id=\"positions\"",  "id=\"agreement\"",
                                    "id=\"examples\"",   "id=\"tokens\""};
  for (size_t i = 0; i < sizeof ids / sizeof *ids; i++)
    cr_assert(strstr(html, ids[i]), "section %s", ids[i]);
  cr_assert(strstr(html, "report test &lt;model&gt;"), "model name escaped");
  for (int k = 0; k < RDS_NHOSTILE; k++) {
    char *esc = rds_html_escape(rds_hostile[k]);
    cr_assert(strstr(html, esc), "token %d shown as text", k);
    free(esc);
  }
  cr_assert_null(strstr(html, "<img src=x"), "no token reaches the page as markup");
  cr_assert_null(strstr(html, "<b>"));
  for (const char *b = strstr(html, "<script"); b; b = strstr(b + 1, "<script")) {
    const char *e = strstr(b, "</script>");
    cr_assert_not_null(e);
    cr_assert_null(memmem(b, (size_t)(e - b), "\xe2\x80\xa8", 3), "raw U+2028 in a script");
  }
  cr_assert(strstr(html, "line\\u2028sep"), "U+2028 escaped in JSON");
  /* every script element ends where attnmap ends it: one page script + one per view */
  cr_assert_eq(count(html, "<script"), 1 + res.views);
  cr_assert_eq(count(html, "</script>"), 1 + res.views);
  cr_assert(strstr(html, "\\u003cimg src=x onerror=alert(1)\\u003e"), "JSON escapes <");
  cr_assert_null(strstr(html, "http://") ? strstr(html, "src=\"http") : NULL, "no network");
  cr_assert_null(strstr(html, "src=\"https"));
  cr_assert(dsb_exists(in(run, "report/img/heads-importance.png")));
  cr_assert_gt(count(html, "class=\"example\""), 6);
  cr_assert_eq(count(html, "class=\"mv\""), 6, "a model view per example with views");
  cr_assert_eq(dsb_count_prefixed(in(run, "report"), ".tmp-"), 0);
  cr_assert_null(strstr(html, "<h4>Generation</h4>"), "one target: no generation view");
  cr_assert_null(strstr(html, "id=\"generation\""));
  free(html);
}

/* Decodes an RGB PNG (malloc'd). */
static unsigned char *decode(const char *path, int *w, int *h) {
  unsigned char *px = png_decode_rgb(path, w, h);
  cr_assert_not_null(px, "%s", path);
  return px;
}

Test(report, importance_grid_pixels_follow_summary) {
  const char *run = make(&full, "run");
  free(report(run, NULL, NULL));
  json_t *sum = json_load_file(in(run, "summary.json"), 0, NULL);
  json_t *score = json_object_get(json_object_get(sum, "head_importance"), "score");
  double lo = 0, hi = 0; /* the report's limits: 0 .. max score */
  for (int l = 0; l < full.L; l++)
    for (int h = 0; h < full.H; h++) {
      double v = json_number_value(json_array_get(json_array_get(score, l), h));
      hi = v > hi ? v : hi;
    }
  int w, ht;
  unsigned char *px = decode(in(run, "report/img/heads-importance.png"), &w, &ht);
  int cell = w / full.H;
  cr_assert_eq(ht, cell * full.L, "layers are rows, heads columns");
  for (int l = 0; l < full.L; l++)
    for (int h = 0; h < full.H; h++) {
      double v = json_number_value(json_array_get(json_array_get(score, l), h));
      int idx = (int)((v - lo) / (hi - lo) * 256.0);
      idx = idx > 255 ? 255 : idx;
      unsigned char *p = px + ((size_t)(l * cell + cell / 2) * w + h * cell + cell / 2) * 3;
      for (int k = 0; k < 3; k++) /* magma, from matplotlib's float table */
        cr_assert_eq(p[k], (int)(cmr_float[1][idx][k] * 255.0), "layer %d head %d", l, h);
    }
  free(px);
  json_decref(sum);
}

Test(report, moved_dataset_is_reported_and_can_be_given) {
  const char *run = make(&full, "run");
  const char *moved = P("moved.safetensors");
  cr_assert_eq(rename(P("run.safetensors"), moved), 0);
  am_report_result_t res;
  char *html = report(run, NULL, &res);
  cr_assert(strstr(res.note, "run.safetensors"), "%s", res.note);
  cr_assert_eq(res.views, 0);
  cr_assert(strstr(html, "id=\"dataset-note\""));
  cr_assert_eq(count(html, "<script"), 1);
  char *esc = rds_html_escape(rds_hostile[0]); /* the token text comes from tokens_table */
  cr_assert(strstr(html, esc), "tokens still shown from summary.json");
  free(esc);
  free(html);
  am_report_options_t o;
  am_report_options_init(&o);
  o.dataset = &moved;
  o.ndataset = 1;
  o.views = 2;
  html = report(run, &o, &res);
  cr_assert_str_eq(res.note, "");
  cr_assert_eq(res.views, 2);
  cr_assert_null(strstr(html, "dataset-note"));
  free(html);
}

Test(report, changed_dataset_is_not_used) {
  const char *run = make(&full, "run");
  rds_spec_t other = full;
  other.B = 12;
  cr_assert_eq(rds_make(&other, P("run.safetensors")), 0);
  am_report_result_t res;
  char *html = report(run, NULL, &res);
  cr_assert(strstr(res.note, "changed"), "%s", res.note);
  cr_assert_eq(res.views, 0);
  free(html);
}

Test(report, patch_grid_maps) {
  rds_spec_t vit = {.L = 2,
                    .H = 2,
                    .B = 8,
                    .T = 7,
                    .grads = 1,
                    .saliency = 1,
                    .labels = 1,
                    .grid = "2x3+1",
                    .seed = 9};
  const char *run = make(&vit, "vit");
  char *html = report(run, NULL, NULL);
  cr_assert(strstr(html, "Patch grid (2x3+1)"));
  int w, h;
  unsigned char *px = decode(in(run, "report/img/grid-mean-1.png"), &w, &h);
  cr_assert(w * 2 == h * 3 && w >= 3, "3 columns by 2 rows: %dx%d", w, h);
  free(px);
  cr_assert(count(html, "-grid-") >= 3, "per-example patch maps");
  free(html);
}

/* The head view of a patch-grid run: one tile of 4 x 4 cells per head, in each layer, of
 * the target row (token 0) over the patches, coloured by viridis of its share of the
 * head's patch maximum; the prefix token's weight listed apart; no 17 text labels. */
Test(report, grid_head_view_cells_follow_attention) {
  rds_spec_t vit = {
      .L = 2, .H = 3, .B = 6, .T = 17, .grid = "4x4+1", .known = 1, .seed = 4};
  const char *run = make(&vit, "vitk");
  am_report_result_t res;
  char *html = report(run, NULL, &res);
  cr_assert_gt(res.views, 0, "%s", res.note);
  cr_assert(strstr(html, "Head view over the 4x4 patch grid"));
  cr_assert_eq(count(html, "class=\"hv\""), 0, "no token-label head view");
  cr_assert_eq(count(html, "class=\"hg\""), res.views * vit.L * vit.H, "a tile per head");
  cr_assert_eq(count(html, "class=\"hgl\""), res.views * vit.L);
  cr_assert(strstr(html, "[CLS] 0.030</div>"), "the prefix token's weight, 8/264");
  cr_assert(strstr(html, "patch max 0.117</div>"), "31/264");
  const char *at = strstr(html, "-hgrid-0.png");
  cr_assert_not_null(at);
  while (at[-1] >= '0' && at[-1] <= '9')
    at--;
  long ex = strtol(at, NULL, 10);
  for (int l = 0; l < vit.L; l++) {
    char name[64];
    snprintf(name, sizeof name, "report/img/ex%ld-hgrid-%d.png", ex, l);
    int w, h;
    unsigned char *px = decode(in(run, name), &w, &h);
    int s = h / 4, tw = 4 * s;
    cr_assert(s >= 2 && h == 4 * s, "4 rows of whole cells: %dx%d", w, h);
    cr_assert_eq(w, vit.H * tw + (vit.H - 1) * 4, "3 tiles of 4 columns, 4 px apart");
    for (int hd = 0; hd < vit.H; hd++)
      for (int c = 0; c < 16; c++) {
        int idx = (int)(rds_known(l, hd, 1 + c) / (31.0 / 264.0) * 256.0);
        idx = idx > 255 ? 255 : idx;
        unsigned char *p =
            px +
            ((size_t)((c / 4) * s + s / 2) * w + hd * (tw + 4) + (c % 4) * s + s / 2) * 3;
        for (int k = 0; k < 3; k++) /* viridis, from matplotlib's float table */
          cr_assert_eq(p[k], (int)(cmr_float[0][idx][k] * 255.0),
                       "layer %d head %d cell %d", l, hd, c);
      }
    free(px);
  }
  free(html);
}

Test(report, attention_only_run) {
  rds_spec_t bare = {.L = 3, .H = 2, .B = 6, .T = 8, .seed = 3};
  const char *run = make(&bare, "bare");
  am_report_result_t res;
  char *html = report(run, NULL, &res);
  cr_assert(strstr(html, "attention_last~rollout"), "the only pair");
  cr_assert_not(dsb_exists(in(run, "report/img/heads-importance.png")));
  cr_assert_gt(res.views, 0, "heads ranked by confidence without gradients (%s)", res.note);
  free(html);
}

Test(report, replaces_the_old_report_whole) {
  const char *run = make(&full, "run");
  free(report(run, NULL, NULL));
  /* a PNG of an earlier report (a view no longer drawn) goes with the old report */
  const char *stale = in(run, "report/img/stale.png");
  cr_assert_eq(dsb_write_bytes(stale, "x", 1), 0);
  free(report(run, NULL, NULL));
  cr_assert_not(dsb_exists(stale));
  cr_assert_eq(dsb_write_bytes(stale, "x", 1), 0);
  /* a run folder whose examples file is broken: the old report stays as it was */
  cr_assert_eq(dsb_write_bytes(in(run, "examples.safetensors"), "\x10\0\0\0\0\0\0\0{}", 10),
               0);
  cr_assert_eq(am_run_report(ctx, run, NULL, NULL), AM_STATUS_BAD_INPUT);
  cr_assert(dsb_exists(stale));
  cr_assert_eq(dsb_count_prefixed(in(run, "report"), ".tmp-"), 0);
}

/* A file the user put in the report folder is not attnmap's: the folder is kept whole. */
Test(report, keeps_a_report_folder_holding_a_user_file) {
  const char *run = make(&full, "run");
  free(report(run, NULL, NULL));
  const char *mine = in(run, "report/notes.txt");
  cr_assert_eq(dsb_write_bytes(mine, "mine", 4), 0);
  cr_assert_eq(am_run_report(ctx, run, NULL, NULL), AM_STATUS_INVALID_ARGUMENT);
  cr_expect(strstr(am_last_error(ctx), "notes.txt") != NULL, "%s", am_last_error(ctx));
  cr_expect(dsb_exists(mine) && dsb_exists(in(run, "report/index.html")));
  cr_expect_eq(dsb_count_prefixed(run, "report.tmp-"), 0);
}

Test(report, bad_run_folders_and_options) {
  cr_assert_eq(am_run_report(ctx, P("nowhere"), NULL, NULL), AM_STATUS_BAD_INPUT);
  const char *run = make(&full, "run");
  am_report_options_t o;
  am_report_options_init(&o);
  o.drift = -1;
  cr_assert_eq(am_run_report(ctx, run, &o, NULL), AM_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(am_run_report(ctx, NULL, NULL, NULL), AM_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(dsb_write_bytes(in(run, "summary.json"), "[1,", 3), 0);
  cr_assert_eq(am_run_report(ctx, run, NULL, NULL), AM_STATUS_BAD_INPUT);
  cr_assert(strstr(am_last_error(ctx), "summary.json"), "%s", am_last_error(ctx));
  cr_assert_not(dsb_exists(in(run, "report")));
  /* a mask of the wrong dtype in examples.safetensors */
  const char *run2 = make(&full, "run2");
  uint16_t mask[2] = {1, 1};
  int32_t lengths[1] = {2};
  am_named_tensor_t t[2] = {{"mask", {AM_DTYPE_U16, 2, {1, 2}, mask, sizeof mask}},
                            {"lengths", {AM_DTYPE_I32, 1, {1}, lengths, sizeof lengths}}};
  json_t *sum = json_load_file(in(run2, "summary.json"), 0, NULL);
  char *pairs = json_dumps(
      json_object_get(json_object_get(json_object_get(sum, "provenance"), "options"),
                      "pairs"),
      JSON_COMPACT);
  const char *meta[2] = {"attnmap.pairs", pairs};
  cr_assert_eq(dsb_write_list(in(run2, "examples.safetensors"), t, 2, meta, 1), 0);
  free(pairs);
  json_decref(sum);
  cr_assert_eq(am_run_report(ctx, run2, NULL, NULL), AM_STATUS_BAD_INPUT);
  cr_assert(strstr(am_last_error(ctx), "another run"), "%s", am_last_error(ctx));
  /* with the file's checksum recorded again, the shape check behind it names the tensor */
  json_t *doc = json_load_file(in(run2, "summary.json"), 0, NULL);
  cr_assert_eq(am_summary_add_files(ctx, doc, run2), AM_STATUS_OK);
  cr_assert_eq(json_dump_file(doc, in(run2, "summary.json"), 0), 0);
  json_decref(doc);
  cr_assert_eq(am_run_report(ctx, run2, NULL, NULL), AM_STATUS_BAD_INPUT);
  cr_assert(strstr(am_last_error(ctx), "tensor mask"), "%s", am_last_error(ctx));
}

/* A run with several targets (--target gen): per shown example a generation view whose
 * first heatmap has one row per step (the example's valid tokens from generation_start
 * on), the tokens before them across with markup escaped, and the per-step section. */
Test(report, generation_view_rows_and_escaped_tokens) {
  rds_spec_t spec = full;
  spec.gen_start = 3; /* valid tokens 3.. of each example are its steps */
  const char *data = P("gen.safetensors"), *run = P("gen");
  cr_assert_eq(rds_make(&spec, data), 0);
  am_plan_t plan;
  am_plan_init(&plan);
  plan.target = AM_TARGET_GEN;
  cr_assert_eq(rds_analyze_plan(ctx, data, run, &plan), AM_STATUS_OK, "%s",
               am_last_error(ctx));
  am_report_result_t res;
  char *html = report(run, NULL, &res);
  cr_assert(strstr(html, "id=\"generation\""), "the per-step section");
  int views = count(html, "<h4>Generation</h4>");
  cr_assert_gt(views, 6, "a generation view per shown example");
  /* the first shown example: its id, then its generation block up to the next example */
  const char *ex = strstr(html, "<div class=\"example\" id=\"ex-");
  cr_assert_not_null(ex);
  long index = strtol(ex + strlen("<div class=\"example\" id=\"ex-"), NULL, 10);
  const char *g = strstr(ex, "<h4>Generation</h4>");
  const char *next = strstr(ex + 1, "<div class=\"example\"");
  cr_assert(g && (!next || g < next));
  const char *after = strstr(g + 1, "<h4"); /* the attention views after it */
  if (after && (!next || after < next))
    next = after;
  size_t len = next ? (size_t)(next - g) : strlen(g);
  char *block = strndup(g, len);
  int n = full.T - (int)(index % 3); /* rds's varied lengths */
  const char *table = strstr(block, "<tbody>"), *tend = strstr(block, "</tbody>");
  cr_assert(table && tend);
  int rows = 0;
  for (const char *p = strstr(table, "<tr>"); p && p < tend; p = strstr(p + 1, "<tr>"))
    rows++;
  cr_assert_eq(rows, n - 3, "example %ld: %d valid tokens, steps from the 4th", index, n);
  int escaped = 0;
  for (int k = 0; k < RDS_NHOSTILE; k++) {
    char *esc = rds_html_escape(rds_hostile[k]);
    escaped += strstr(block, esc) != NULL;
    free(esc);
  }
  cr_assert_gt(escaped, 0, "the example's hostile tokens appear, escaped");
  cr_assert_null(strstr(block, "<img src=x"), "no token reaches the view as markup");
  cr_assert_null(strstr(block, "<script"));
  free(block);
  free(html);
}
