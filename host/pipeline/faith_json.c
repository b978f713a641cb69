/* faith_json.c — summary.json's `faithfulness` section from a run's rows
 * (docs/faithfulness.md, "Aggregates"): per map, comprehensiveness and sufficiency per bin
 * and their AOPC, the deletion and insertion curves and areas, each a mean over the
 * examples with values with its normal 95% interval (mean ± 1.96·sd/√n) from Welford
 * moments (n, mean, m2 are written, so the numbers can be merged); the same AOPCs per
 * target class; then the ranking and the listed examples (faith_rank.c). Rows are added
 * in example order, so the same rows give the same bits however they were produced. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/aggregate.h"
#include "pipeline/faith.h"
#include "pipeline/faith_rank.h"

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

json_t *am_faith_stat_json(const am_welford_t *w) {
  double sd = w->n > 1 ? sqrt(w->m2 / (w->n - 1)) : (w->n == 1 ? 0.0 : NAN);
  double mean = w->n ? w->mean : NAN, half = w->n > 1 ? 1.96 * sd / sqrt(w->n) : NAN;
  return json_pack("{s:f,s:o,s:f,s:o,s:[o,o]}", "n", w->n, "mean", num(mean), "m2", w->m2,
                   "std", num(sd), "ci95", num(mean - half), num(mean + half));
}

/* Welford over the examples of column j of rows [N, stride] (with class cls, or any when
 * cls < 0). */
static am_welford_t column(const am_faith_t *f, const float *rows, size_t stride, size_t j,
                           int64_t cls) {
  am_welford_t w = {0, 0, 0};
  for (int64_t i = 0; i < f->N; i++)
    if (f->tokens[i] > 0 && (cls < 0 || f->target[i] == cls))
      am_welford_add(&w, rows[(size_t)i * stride + j]);
  return w;
}

static json_t *stat_of(const am_faith_t *f, const float *rows, size_t stride, size_t j,
                       int64_t cls) {
  am_welford_t w = column(f, rows, stride, j, cls);
  return am_faith_stat_json(&w);
}

static json_t *bins_json(const am_faith_t *f, const float *rows, int m) {
  json_t *a = json_array();
  size_t stride = (size_t)f->M * f->K;
  for (int k = 0; k < f->K; k++)
    json_array_append_new(a, stat_of(f, rows, stride, (size_t)m * f->K + k, -1));
  return a;
}

static json_t *curve_json(const am_faith_t *f, const float *rows, const float *areas,
                          int m) {
  json_t *a = json_array();
  size_t stride = (size_t)f->M * f->S;
  for (int s = 0; s < f->S; s++)
    json_array_append_new(a, stat_of(f, rows, stride, (size_t)m * f->S + s, -1));
  return json_pack("{s:o,s:o}", "curve", a, "area", stat_of(f, areas, f->M, m, -1));
}

static json_t *map_json(const am_faith_t *f, int m) {
  return json_pack("{s:{s:o,s:o},s:{s:o,s:o},s:o,s:o}", "comprehensiveness", "bins",
                   bins_json(f, f->comp, m), "aopc", stat_of(f, f->aopc_c, f->M, m, -1),
                   "sufficiency", "bins", bins_json(f, f->suff, m), "aopc",
                   stat_of(f, f->aopc_s, f->M, m, -1), "deletion",
                   curve_json(f, f->del, f->del_area, m), "insertion",
                   curve_json(f, f->ins, f->ins_area, m));
}

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* One entry per target class among the scored examples, ascending. */
static json_t *classes_json(const am_faith_t *f) {
  json_t *arr = json_array();
  int32_t *cls = malloc((size_t)(f->N ? f->N : 1) * sizeof *cls);
  int64_t n = 0;
  for (int64_t i = 0; cls && i < f->N; i++)
    if (f->tokens[i] > 0)
      cls[n++] = f->target[i];
  if (cls)
    qsort(cls, (size_t)n, sizeof *cls, cmp_i32);
  for (int64_t i = 0; cls && i < n; i++) {
    if (i > 0 && cls[i] == cls[i - 1])
      continue;
    int64_t count = 0;
    for (int64_t j = i; j < n && cls[j] == cls[i]; j++)
      count++;
    json_t *maps = json_object();
    for (int m = 0; m < f->M; m++)
      json_object_set_new(maps, f->maps[m],
                          json_pack("{s:o,s:o}", "aopc_comprehensiveness",
                                    stat_of(f, f->aopc_c, f->M, m, cls[i]),
                                    "aopc_sufficiency",
                                    stat_of(f, f->aopc_s, f->M, m, cls[i])));
    json_array_append_new(arr, json_pack("{s:i,s:I,s:o}", "class", (int)cls[i], "count",
                                         (json_int_t)count, "maps", maps));
  }
  free(cls);
  return arr;
}

json_t *am_faith_section(const am_faith_t *f, const json_t *summary) {
  int64_t scored = 0;
  for (int64_t i = 0; i < f->N; i++)
    scored += f->tokens[i] > 0;
  json_t *maps = json_object();
  for (int m = 0; m < f->M; m++)
    json_object_set_new(maps, f->maps[m], map_json(f, m));
  json_t *o = json_object();
  json_object_set_new(o, "metadata", json_deep_copy(f->meta));
  json_object_set_new(o, "examples", json_integer(f->N));
  json_object_set_new(o, "scored", json_integer(scored));
  json_object_set_new(o, "interval", json_string("normal 95%: mean +- 1.96 std/sqrt(n)"));
  json_object_set_new(o, "maps", maps);
  json_object_set_new(o, "class_source", json_string("faithfulness.target"));
  json_object_set_new(o, "by_class", classes_json(f));
  json_object_set_new(o, "ranking", am_faith_ranking(f));
  json_object_set_new(o, "most_agreed", am_faith_most_agreed(f, summary));
  return o;
}
