/* test_summary.c — summary.json's aggregates recomputed here, independently and naively,
 * from the per-example rows of examples.safetensors: per-head means and standard
 * deviations, head-importance scores (Michel et al.: sum / tokens, L2 per layer),
 * position means, per-token counts, agreement means, NaN counts, histogram totals and
 * quantile order, the disagreement ranking and the misclassified count. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "attnmap.h"
#include "support/dataset_builder.h"

static char dir[128], data[256], run[256];
static am_ctx_t *ctx;
static am_file_t *ex;
static json_t *sum;

static void setup(void) {
  cr_assert_eq(dsb_tempdir(dir, sizeof dir, "summary"), 0);
  dsb_join(data, sizeof data, dir, "data.safetensors");
  dsb_join(run, sizeof run, dir, "run");
  int lengths[24];
  for (int b = 0; b < 24; b++)
    lengths[b] = b == 5 ? 0 : 3 + (b * 5) % 11;
  dsb_spec_t spec = {.L = 2,
                     .H = 3,
                     .B = 24,
                     .T = 14,
                     .lengths = lengths,
                     .grads = 1,
                     .saliency = 1,
                     .labels = 1,
                     .special = 1,
                     .seed = 5};
  cr_assert_eq(dsb_make(&spec, data), 0);
  cr_assert_eq(am_ctx_create(NULL, &ctx, NULL, 0), AM_STATUS_OK);
  am_dataset_t *ds = NULL;
  const char *paths[] = {data};
  cr_assert_eq(am_dataset_open(ctx, paths, 1, &ds), AM_STATUS_OK, "%s", am_last_error(ctx));
  am_plan_t plan;
  am_plan_init(&plan);
  plan.worst = 5;
  am_run_options_t opts;
  am_run_options_init(&opts);
  cr_assert_eq(am_run_analyze(ctx, ds, &plan, run, &opts), AM_STATUS_OK, "%s",
               am_last_error(ctx));
  am_dataset_close(ds);
  char path[512];
  cr_assert_eq(
      am_file_open(ctx, dsb_join(path, sizeof path, run, "examples.safetensors"), &ex),
      AM_STATUS_OK);
  sum = json_load_file(dsb_join(path, sizeof path, run, "summary.json"), 0, NULL);
  cr_assert_not_null(sum);
}

static void teardown(void) {
  json_decref(sum);
  am_file_close(ex);
  am_ctx_destroy(ctx);
  dsb_rmtree(dir);
}

TestSuite(summary, .init = setup, .fini = teardown);

static float f32(const am_tensor_t *t, int64_t i) {
  float v;
  memcpy(&v, (const char *)t->data + 4 * i, 4);
  return v;
}

static double num(const json_t *j) {
  return json_is_number(j) ? json_number_value(j) : NAN;
}

static const json_t *path2(const char *a, const char *b) {
  return json_object_get(json_object_get(sum, a), b);
}

#define CLOSE(x, y) (fabs((x) - (y)) <= 1e-9 * (1.0 + fabs(y)))

Test(summary, head_statistics_are_means_and_sample_deviations_over_examples) {
  const am_tensor_t *t = am_file_find(ex, "head.entropy");
  cr_assert_not_null(t);
  int64_t N = t->shape[0];
  for (int l = 0; l < 2; l++)
    for (int h = 0; h < 3; h++) {
      double s = 0, ss = 0;
      int n = 0;
      for (int64_t e = 0; e < N; e++) {
        double v = f32(t, e * 6 + l * 3 + h);
        if (isnan(v))
          continue; /* the fully masked example */
        s += v;
        n++;
      }
      double mean = s / n;
      for (int64_t e = 0; e < N; e++) {
        double v = f32(t, e * 6 + l * 3 + h);
        if (!isnan(v))
          ss += (v - mean) * (v - mean);
      }
      const json_t *o = json_object_get(json_object_get(sum, "head_stats"), "entropy");
      double got = num(json_array_get(json_array_get(json_object_get(o, "mean"), l), h));
      double sd = num(json_array_get(json_array_get(json_object_get(o, "std"), l), h));
      cr_expect(CLOSE(got, mean), "mean %d,%d: %.17g vs %.17g", l, h, got, mean);
      cr_expect(CLOSE(sd, sqrt(ss / (n - 1))), "std %d,%d", l, h);
      cr_expect_eq(n, 23, "the fully masked example is not counted");
    }
}

Test(summary, head_importance_is_sum_over_tokens_normalised_per_layer) {
  const am_tensor_t *t = am_file_find(ex, "head.importance"),
                    *len = am_file_find(ex, "lengths");
  int64_t N = t->shape[0], tokens = 0;
  for (int64_t e = 0; e < N; e++) {
    int32_t n;
    memcpy(&n, (const char *)len->data + 4 * e, 4);
    tokens += n;
  }
  const json_t *score = path2("head_importance", "score");
  for (int l = 0; l < 2; l++) {
    double v[3], norm = 0;
    for (int h = 0; h < 3; h++) {
      double s = 0;
      for (int64_t e = 0; e < N; e++)
        s += f32(t, e * 6 + l * 3 + h);
      v[h] = s / (double)tokens;
      norm += v[h] * v[h];
    }
    for (int h = 0; h < 3; h++)
      cr_expect(CLOSE(num(json_array_get(json_array_get(score, l), h)),
                      v[h] / (sqrt(norm) + 1e-20)),
                "score %d,%d", l, h);
  }
  cr_expect_eq(json_integer_value(path2("head_importance", "tokens")), tokens);
}

Test(summary, positions_and_tokens_add_up) {
  const am_tensor_t *roll = am_file_find(ex, "rollout"), *mask = am_file_find(ex, "mask");
  const am_tensor_t *special = am_file_find(ex, "special_tokens_mask");
  cr_assert(roll && mask && special);
  int64_t N = roll->shape[0], T = roll->shape[1], counted = 0;
  double pos_sum[64] = {0};
  int64_t pos_n[64] = {0};
  for (int64_t e = 0; e < N; e++) {
    int k = 0;
    for (int64_t p = 0; p < T; p++)
      if (((const unsigned char *)mask->data)[e * T + p]) {
        pos_sum[k] += f32(roll, e * T + p);
        pos_n[k++]++;
        counted += !((const unsigned char *)special->data)[e * T + p];
      }
  }
  const json_t *pos = json_object_get(sum, "positions");
  for (int k = 0; k < T; k++) {
    cr_expect_eq(json_integer_value(json_array_get(json_object_get(pos, "count"), k)),
                 pos_n[k]);
    if (pos_n[k])
      cr_expect(CLOSE(num(json_array_get(
                          json_object_get(json_object_get(pos, "mean"), "rollout"), k)),
                      pos_sum[k] / pos_n[k]),
                "position %d", k);
  }
  const json_t *count = path2("tokens_table", "count");
  int64_t total = 0;
  for (size_t i = 0; i < json_array_size(count); i++)
    total += json_integer_value(json_array_get(count, i));
  cr_expect_eq(total, counted, "special tokens are left out of the per-token table");
}

Test(summary, agreement_distributions_and_disagreement_ranking) {
  const am_tensor_t *sp = am_file_find(ex, "agreement.spearman");
  json_t *pairs = json_loads(am_file_metadata(ex, "attnmap.pairs"), 0, NULL);
  cr_assert(sp && pairs);
  int64_t N = sp->shape[0], P = sp->shape[1];
  const char *worst = json_string_value(path2("disagreement", "pair"));
  cr_assert_not_null(worst);
  for (int64_t p = 0; p < P; p++) {
    const char *name = json_string_value(json_array_get(pairs, (size_t)p));
    const json_t *m = json_object_get(
        json_object_get(json_object_get(sum, "agreement"), name), "spearman");
    double s = 0;
    int64_t n = 0, nan = 0, hist = 0;
    for (int64_t e = 0; e < N; e++) {
      double v = f32(sp, e * P + p);
      if (isnan(v))
        nan++;
      else
        s += v, n++;
    }
    const json_t *counts = json_object_get(json_object_get(m, "histogram"), "counts");
    for (size_t b = 0; b < json_array_size(counts); b++)
      hist += json_integer_value(json_array_get(counts, b));
    cr_expect_eq(json_integer_value(json_object_get(m, "nan")), nan, "%s nan", name);
    cr_expect_eq(hist, n, "%s histogram total", name);
    cr_expect(n == 0 || CLOSE(num(json_object_get(m, "mean")), s / n), "%s mean", name);
    const json_t *q = json_object_get(m, "quantiles");
    cr_expect(n == 0 || (num(json_object_get(q, "p05")) <= num(json_object_get(q, "p50")) &&
                         num(json_object_get(q, "p50")) <= num(json_object_get(q, "p95"))),
              "%s quantiles in order", name);
    if (strcmp(name, worst) != 0)
      continue;
    /* the K lowest values, ties to the lower index, NaN never ranked */
    const json_t *list = path2("disagreement", "examples");
    double last = -INFINITY;
    int64_t last_index = -1;
    for (size_t i = 0; i < json_array_size(list); i++) {
      const json_t *w = json_array_get(list, i);
      int64_t idx = json_integer_value(json_object_get(w, "index"));
      double v = num(json_object_get(w, "score"));
      cr_expect_eq(v, (double)f32(sp, idx * P + p));
      cr_expect(v > last || (v == last && idx > last_index), "ranking order");
      int64_t below = 0;
      for (int64_t e = 0; e < N; e++) {
        double u = f32(sp, e * P + p);
        below += !isnan(u) && (u < v || (u == v && e < idx));
      }
      cr_expect_eq(below, (int64_t)i, "entry %zu is the %zu-th lowest", i, i);
      last = v;
      last_index = idx;
    }
  }
  json_decref(pairs);
}

Test(summary, misclassified_examples) {
  const am_tensor_t *lab = am_file_find(ex, "labels"),
                    *pred = am_file_find(ex, "predictions");
  cr_assert(lab && pred);
  int64_t wrong = 0;
  for (int64_t e = 0; e < lab->shape[0]; e++) {
    int32_t a, b;
    memcpy(&a, (const char *)lab->data + 4 * e, 4);
    memcpy(&b, (const char *)pred->data + 4 * e, 4);
    wrong += a != b;
  }
  cr_expect_eq(json_integer_value(path2("misclassified", "count")), wrong);
  cr_expect_eq((int64_t)json_array_size(path2("misclassified", "indices")), wrong);
}
