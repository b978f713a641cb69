/* report.c — am_run_report: reads the run folder once (summary.json, examples.safetensors
 * mapped), opens the dataset it came from for token strings and attention views, compares
 * against a baseline when asked, and writes index.html and its PNGs into a folder that is
 * built under a temporary name and renamed into place. Work grows with the layers, heads,
 * pairs and the examples shown, and with N only through one pass over the agreement
 * tensors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/ctx.h"
#include "core/json_guard.h"
#include "core/options.h"
#include "dataset/dataset.h"
#include "pipeline/run_dir.h"
#include "report/compare.h"
#include "report/report.h"

void am_report_options_init(am_report_options_t *opts) {
  memset(opts, 0, sizeof *opts);
  opts->drift = 0.5;
  opts->examples = 20;
  opts->views = 6;
  opts->topk_heads = 10;
  opts->overlay_colormap = AM_COLORMAP_VIRIDIS;
  opts->overlay_alpha = 0.5;
  opts->overlay_sheet = 12;
}

const char *am_report_img_path(const am_report_t *r, char *buf, size_t len,
                               const char *name) {
  snprintf(buf, len, "%s/img/%s", r->out, name);
  return buf;
}

typedef struct ranked {
  double key;
  int head;
} ranked_t;

/* Finite keys first, descending; ties and NaN in head order. */
static int by_key(const void *a, const void *b) {
  const ranked_t *x = a, *y = b;
  int nx = !isfinite(x->key), ny = !isfinite(y->key);
  if (nx != ny)
    return nx - ny;
  if (!nx && x->key != y->key)
    return x->key > y->key ? -1 : 1;
  return x->head - y->head;
}

/* Heads by importance score, or without gradients by mean confidence, descending. */
static am_status rank_heads(am_report_t *r) {
  int n = r->run.L * r->run.H;
  double *key = malloc((size_t)(n ? n : 1) * sizeof *key);
  ranked_t *rk = malloc((size_t)(n ? n : 1) * sizeof *rk);
  r->head_rank = malloc((size_t)(n ? n : 1) * sizeof *r->head_rank);
  if (!key || !rk || !r->head_rank) {
    free(key);
    free(rk);
    return am_fail(r->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  }
  json_t *score = am_jget(r->run.summary, "head_importance", "score", NULL);
  if (!json_is_array(score))
    score = am_jget(r->run.summary, "head_stats", "confidence", "mean", NULL);
  am_jgrid(score, r->run.L, r->run.H, key);
  for (int i = 0; i < n; i++)
    rk[i] = (ranked_t){key[i], i};
  qsort(rk, (size_t)n, sizeof *rk, by_key);
  for (int i = 0; i < n; i++)
    r->head_rank[i] = rk[i].head;
  free(key);
  free(rk);
  return AM_STATUS_OK;
}

static am_status compare(am_report_t *r) {
  am_report_run_t base;
  int strata = r->opts.stratify_length;
  am_status st = am_report_run_open(r->ctx, r->opts.baseline, strata, &base);
  if (st != AM_STATUS_OK)
    return st;
  st = am_compare_summaries(r->ctx, r->run.summary, base.summary, r->run_dir,
                            r->opts.baseline, r->opts.drift, strata ? &r->run : NULL,
                            strata ? &base : NULL, &r->comparison, &r->drifted);
  am_report_run_close(&base);
  char path[4200];
  snprintf(path, sizeof path, "%s/comparison.json", r->out);
  return st == AM_STATUS_OK ? am_write_json(r->ctx, path, r->comparison) : st;
}

static am_status page(am_report_t *r) {
  am_status st;
  am_report_page_begin(r);
  if ((st = am_report_provenance(r)) != AM_STATUS_OK ||
      (st = am_report_comparison(r)) != AM_STATUS_OK ||
      (st = am_report_heads(r)) != AM_STATUS_OK ||
      (st = am_report_positions(r)) != AM_STATUS_OK ||
      (st = am_report_agreement(r)) != AM_STATUS_OK ||
      (st = am_report_generation_summary(r)) != AM_STATUS_OK ||
      (st = am_report_faithfulness(r)) != AM_STATUS_OK ||
      (st = am_report_examples(r)) != AM_STATUS_OK)
    return st;
  am_report_page_end(r);
  char path[4200];
  snprintf(path, sizeof path, "%s/index.html", r->out);
  return am_html_write(r->ctx, path, &r->html);
}

static am_status check_options(am_ctx_t *ctx, const char *run_dir,
                               const am_report_options_t *o) {
  if (!run_dir)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "am_run_report: run_dir is NULL");
  am_status st = am_options_check(ctx, AM_SCOPE_REPORT, o, NULL, 0);
  if (st != AM_STATUS_OK)
    return st;
  if (o->ndataset < 0 || (o->ndataset > 0 && !o->dataset))
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "report options: ndataset = %d without "
                   "dataset paths",
                   o->ndataset);
  struct stat sb;
  if (stat(run_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: not a run folder", run_dir);
  return AM_STATUS_OK;
}

am_status am_run_report(am_ctx_t *ctx, const char *run_dir, const am_report_options_t *opts,
                        am_report_result_t *result) {
  am_json_take_failures(); /* the files this report writes count their own failures */
  am_report_t r = {0};
  char final[4096], tmp[4200];
  if (result)
    memset(result, 0, sizeof *result);
  if (opts)
    r.opts = *opts;
  else
    am_report_options_init(&r.opts);
  am_status st = check_options(ctx, run_dir, &r.opts);
  if (st != AM_STATUS_OK)
    return st;
  r.ctx = ctx;
  r.run_dir = run_dir;
  am_html_init(&r.html);
  if ((st = am_report_run_open(ctx, run_dir, 1, &r.run)) != AM_STATUS_OK)
    goto done;
  snprintf(final, sizeof final, "%s", r.opts.out_dir ? r.opts.out_dir : "");
  if (!r.opts.out_dir)
    snprintf(final, sizeof final, "%s/report", run_dir);
  /* an earlier report is replaced; the run, its parents, the baseline, the dataset or a
   * folder attnmap did not write never are */
  const char *in_paths[66] = {run_dir, r.opts.baseline};
  int nin = 2;
  for (int i = 0; i < r.opts.ndataset && i < 64; i++)
    in_paths[nin++] = r.opts.dataset[i];
  const am_out_inputs_t inputs = {in_paths, nin};
  if ((st = am_run_dir_check(ctx, final, AM_OUT_REPORT, 1, &inputs)) != AM_STATUS_OK ||
      (st = am_run_dir_begin(ctx, final, r.out, sizeof r.out)) != AM_STATUS_OK)
    goto done;
  snprintf(tmp, sizeof tmp, "%s/img", r.out);
  if (mkdir(tmp, 0777) != 0) {
    st = am_fail(ctx, AM_STATUS_IO, "%s: cannot create directory", tmp);
    goto done;
  }
  if (r.opts.baseline && (st = compare(&r)) != AM_STATUS_OK)
    goto done;
  am_report_source_open(&r);
  if ((st = rank_heads(&r)) != AM_STATUS_OK ||
      (st = am_report_pick_examples(&r)) != AM_STATUS_OK || (st = page(&r)) != AM_STATUS_OK)
    goto done;
  st = am_run_dir_publish(ctx, r.out, final, AM_OUT_REPORT, 1, &inputs);
  if (st == AM_STATUS_OK && result) {
    result->compared = r.comparison != NULL;
    result->drifted = r.drifted;
    result->views = r.views_done;
    snprintf(result->note, sizeof result->note, "%s", r.note);
  }
done:
  if (st != AM_STATUS_OK && r.out[0])
    am_rmtree(r.out);
  am_html_free(&r.html);
  json_decref(r.comparison);
  am_dataset_close(r.ds);
  json_decref(r.tokens);
  free(r.shown);
  free(r.head_rank);
  free(r.vocab);
  am_report_run_close(&r.run);
  return st;
}
