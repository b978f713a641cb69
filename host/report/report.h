/* report.h — the state shared by the parts of `attnmap report` (report.c drives them):
 * the run, the dataset it came from (for token strings and attention views), the examples
 * shown, the page being written and the folder its images go to. */
#ifndef AM_REPORT_REPORT_H
#define AM_REPORT_REPORT_H

#include <jansson.h>
#include <stdint.h>

#include "attnmap.h"
#include "report/html.h"
#include "report/report_run.h"

/* Why an example is shown (bits): ranked by disagreement, misclassified, or one of the
 * first examples of a run that ranks none. */
enum { AM_SHOWN_DISAGREE = 1, AM_SHOWN_MISCLASSIFIED = 2, AM_SHOWN_FIRST = 4 };

typedef struct am_shown {
  int64_t index; /* example, 0..N-1 */
  double score;  /* the disagreement metric's value (NaN when not ranked) */
  int rank;      /* 1-based rank in the disagreement list, 0 when not in it */
  unsigned why;  /* AM_SHOWN_* */
  int views;     /* 1: attention views are drawn */
} am_shown_t;

typedef struct am_report {
  am_ctx_t *ctx;
  am_report_options_t opts;
  am_report_run_t run;
  const char *run_dir;
  char out[4096]; /* the folder being written (temporary name) */
  am_html_t html;
  /* the dataset, for token strings and attention views; NULL with a note when missing */
  am_dataset_t *ds;
  char note[512];
  /* a live run (provenance.live): it keeps no attention tensors; its token strings are
   * RUN/tokens.jsonl, one array of valid tokens per example (NULL when it has none) */
  int live;
  json_t *tokens;
  /* id -> text from summary.json tokens_table, sorted by id (token strings without the
   * dataset) */
  struct am_vocab_entry *vocab;
  int nvocab;
  /* examples shown, disagreement first */
  am_shown_t *shown;
  int nshown;
  /* the comparison (baseline given) */
  json_t *comparison;
  int64_t drifted;
  /* heads in view order: importance score (or confidence) descending, as l * H + h */
  int *head_rank;
  int views_done;
  char nonce[40]; /* the page script's CSP nonce */
} am_report_t;

/* img/<name> inside the folder being written, into buf. */
const char *am_report_img_path(const am_report_t *r, char *buf, size_t len,
                               const char *name);

/* Opens the dataset recorded in summary.json (or opts.dataset) and checks that it is the
 * one the run was made from; on any problem r->ds stays NULL and r->note says why. */
void am_report_source_open(am_report_t *r);
/* 1 when the dataset's example ex has exactly the run's valid positions idx[0..n). */
int am_report_source_matches(const am_report_t *r, int64_t ex, const int32_t *idx, int n);
/* The text of a token for the page: the dataset's string, else the text that
 * summary.json's tokens_table records for the run's input id, else "[id]", else "#rank".
 * Borrowed or written into buf. */
/* The text a token string stands for (token_text.c): byte-level BPE decoded ("Ġthe" ->
 * " the", "Ċ" -> "↵") into out, or raw itself when it is not byte-level text. */
const char *am_token_display(const char *raw, char *out, size_t cap);
const char *am_report_token(const am_report_t *r, int64_t ex, int pos, int rank, int n,
                            char *buf, size_t len);

/* Chooses r->shown from the disagreement list and the misclassified examples. */
am_status am_report_pick_examples(am_report_t *r);

/* Page parts, in page order (html_page.c, html_sections.c, html_agreement.c,
 * html_examples.c, html_compare.c, views.c). Each appends to r->html and writes its
 * PNGs; a failure is an am_status with the message on r->ctx. */
void am_report_page_begin(am_report_t *r);
void am_report_page_end(am_report_t *r);
am_status am_report_provenance(am_report_t *r);
am_status am_report_comparison(am_report_t *r);
am_status am_report_heads(am_report_t *r);
am_status am_report_positions(am_report_t *r);
am_status am_report_agreement(am_report_t *r);
am_status am_report_examples(am_report_t *r);
/* A run with several targets (html_generation.c): the generation view of example ex
 * (valid positions idx[0..n)) and the aggregates per step position; nothing otherwise. */
am_status am_report_generation_example(am_report_t *r, int64_t ex, const int32_t *idx,
                                       int n);
am_status am_report_generation_summary(am_report_t *r);
/* The faithfulness section (html_faith.c; nothing when the run has none) and the two
 * rankings of a comparison's faithfulness part. */
am_status am_report_faithfulness(am_report_t *r);
void am_report_faith_rankings(am_html_t *h, json_t *faith);
/* Patch-grid maps (grid_maps.c): 1 and *g filled when summary.json has a grid; the dataset
 * means (with the positions) and one example's maps over its valid positions idx. */
struct am_grid;
int am_report_grid(const am_report_t *r, struct am_grid *g);
am_status am_report_grid_mean(am_report_t *r);
am_status am_report_grid_example(am_report_t *r, int64_t ex, const int32_t *idx, int n);
/* Overlays on the dataset's images (overlay_html.c, overlay_sheet.c): the image of
 * example ex (NULL: none; *height, *width set), an example's R*C patch values of map m
 * (0 when its valid tokens are not the grid's; idx: run.T entries of scratch), one map
 * drawn over an image into out [H,W,3] and written to path unless NULL, an example's
 * overlays (when it has an image), and the contact sheet. */
const uint8_t *am_report_image(const am_report_t *r, int64_t ex, int *height, int *width);
int am_report_patches(const am_report_t *r, const struct am_grid *g, int64_t ex, int m,
                      int32_t *idx, float *v);
am_status am_report_overlay_draw(am_report_t *r, const struct am_grid *g, const float *v,
                                 const char *map, const uint8_t *img, int H, int W,
                                 uint8_t *out, const char *path);
am_status am_report_overlays_example(am_report_t *r, int64_t ex, int32_t *idx);
am_status am_report_overlay_sheet(am_report_t *r);
/* Model view and head view of one example (views.c); appends their markup. */
am_status am_report_views(am_report_t *r, int64_t ex);

#endif
