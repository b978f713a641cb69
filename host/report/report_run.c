/* report_run.c — a run folder as the report reads it: opened and validated by the one
 * run-folder reader (pipeline/run_folder.c), then its tensors sorted for the pages. */
#include "report/report_run.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "pipeline/run_folder.h"

json_t *am_jget(json_t *root, ...) {
  va_list ap;
  va_start(ap, root);
  json_t *v = root;
  for (const char *k = va_arg(ap, const char *); k && v; k = va_arg(ap, const char *))
    v = json_is_object(v) ? json_object_get(v, k) : NULL;
  va_end(ap);
  return v;
}

double am_jnum(const json_t *v) { return json_is_number(v) ? json_number_value(v) : NAN; }
const char *am_jstr(const json_t *v) {
  return json_is_string(v) ? json_string_value(v) : NULL;
}

void am_jgrid(const json_t *v, int L, int H, double *out) {
  for (int l = 0; l < L; l++)
    for (int h = 0; h < H; h++)
      out[(size_t)l * H + h] =
          am_jnum(json_array_get(json_array_get(v, (size_t)l), (size_t)h));
}

float am_rr_f32(const am_tensor_t *t, int64_t i) {
  float f;
  memcpy(&f, (const char *)t->data + 4 * i, 4);
  return f;
}

int64_t am_rr_int(const am_tensor_t *t, int64_t i) {
  if (t->dtype == AM_DTYPE_U8)
    return ((const unsigned char *)t->data)[i];
  int32_t v;
  memcpy(&v, (const char *)t->data + 4 * i, 4);
  return v;
}

int am_rr_map_signed(const char *name) {
  const am_map_def_t *def = am_map_def_find(name);
  return !def || !def->nonneg;
}

int am_rr_valid_positions(const am_report_run_t *run, int64_t i, int32_t *idx) {
  int n = 0;
  for (int p = 0; p < run->T; p++)
    if (am_rr_int(run->mask, i * run->T + p))
      idx[n++] = p;
  return n;
}

/* Per-example maps [N,T] come from the validated layout, in summary.json's order (the
 * order analyze made them); metrics and the optional tensors are found by name. */
static am_status fill(am_ctx_t *ctx, am_report_run_t *run) {
  const am_run_t *rf = run->rf;
  const am_layout_t *lay = &rf->lay;
  run->summary = rf->summary;
  run->file = rf->examples;
  run->N = lay->N;
  run->T = lay->T;
  run->L = lay->L;
  run->H = lay->H;
  run->mask = am_file_find(rf->examples, "mask");
  run->lengths = am_file_find(rf->examples, "lengths");
  run->labels = am_file_find(rf->examples, "labels");
  run->predictions = am_file_find(rf->examples, "predictions");
  run->ids = am_file_find(rf->examples, "input_ids");
  for (int m = 0; m < lay->nmaps && run->nmaps < AM_RR_MAX_MAPS; m++) {
    run->map_names[run->nmaps] = lay->maps[m].name;
    run->maps[run->nmaps++] = am_file_find(rf->examples, lay->maps[m].name);
  }
  for (int i = 0; i < lay->nspecs && run->nmetrics < AM_RR_MAX_METRICS; i++)
    if (strncmp(lay->specs[i].name, "agreement.", 10) == 0) {
      run->metric_names[run->nmetrics] = lay->specs[i].name + 10;
      run->metrics[run->nmetrics++] = am_file_find(rf->examples, lay->specs[i].name);
    }
  run->pairs = calloc(lay->npairs ? (size_t)lay->npairs : 1, sizeof *run->pairs);
  if (!run->pairs)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  for (int p = 0; p < lay->npairs; p++)
    run->pairs[p] = (char *)lay->pair_names[p];
  run->npairs = lay->npairs;
  return AM_STATUS_OK;
}

/* summary.json alone: the dataset's layers and heads within bounds. */
static am_status summary_only(am_ctx_t *ctx, am_report_run_t *run) {
  am_status st = am_run_read_summary(ctx, run->dir, &run->own_summary);
  run->summary = run->own_summary;
  if (st != AM_STATUS_OK)
    return st;
  double L = am_jnum(am_jget(run->summary, "dataset", "layers", NULL));
  double H = am_jnum(am_jget(run->summary, "dataset", "heads", NULL));
  if (!(L >= 0 && L <= 4096 && H >= 0 && H <= 4096))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s/summary.json: dataset.layers/heads missing", run->dir);
  run->L = (int)L;
  run->H = (int)H;
  return AM_STATUS_OK;
}

am_status am_report_run_open(am_ctx_t *ctx, const char *dir, int with_examples,
                             am_report_run_t *run) {
  memset(run, 0, sizeof *run);
  run->dir = strdup(dir);
  if (!run->dir)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  am_status st =
      with_examples ? am_run_open_checked(ctx, dir, 1, &run->rf) : summary_only(ctx, run);
  if (st == AM_STATUS_OK && with_examples)
    st = fill(ctx, run);
  if (st != AM_STATUS_OK)
    am_report_run_close(run);
  return st;
}

void am_report_run_close(am_report_run_t *run) {
  if (!run)
    return;
  am_run_close(run->rf);
  json_decref(run->own_summary);
  free(run->pairs);
  free(run->dir);
  memset(run, 0, sizeof *run);
}
