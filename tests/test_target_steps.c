/* test_target_steps.c — several targets (docs/generation.md): `--target A:B` gives step
 * rows equal bit for bit to single-target runs and [N,T] maps equal to their mean;
 * `--target gen` reads generation_start; step_attention_grads give each step its own
 * gradient; per-step saliency, agreement.steps and summary.json's steps section against
 * values computed here; every error is one line and leaves no run folder; a merge of runs
 * of different S equals one run; --resume of a complete run does nothing. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "support/dataset_builder.h"
#include "support/long_dataset.h"
#include "support/run_cli.h"

static char work[128];
static char paths[16][512];
static int next_path;
static am_ctx_t *ctx;

static void setup(void) {
  cr_assert_eq(dsb_tempdir(work, sizeof work, "steps"), 0);
  am_ctx_options_t o = {.backend = "cpu", .threads = 1};
  cr_assert_eq(am_ctx_create(&o, &ctx, NULL, 0), AM_STATUS_OK);
}
static void teardown(void) {
  am_ctx_destroy(ctx);
  dsb_rmtree(work);
}

TestSuite(target_steps, .init = setup, .fini = teardown, .timeout = 120);

static const char *P(const char *name) {
  char *p = paths[next_path++ % 16];
  return dsb_join(p, sizeof paths[0], work, name);
}

#define NB 4
#define NT 9
static const int lens[NB] = {9, 6, 8, 5};
static const int64_t gen_start[NB] = {5, 6, 4, 9}; /* left padding: 4, 3, 3, 0 steps */

/* Extra tensors appended to the builder's list. */
typedef struct extras {
  int gen;           /* generation_start I64 [B] */
  int gen_f32;       /* generation_start as F32 (refused) */
  int gen_bad_value; /* example 1 beyond T */
  int step_saliency; /* saliency.ig as [B,3,T] (step s's row = (s+1) x row) */
  int64_t gen_values[NB];
  float sal3[NB * 3 * NT];
} extras_t;

static void write_dataset(const char *path, extras_t *x) {
  dsb_spec_t s = {.L = 2,
                  .H = 2,
                  .B = NB,
                  .T = NT,
                  .lengths = lens,
                  .left_pad = 1,
                  .grads = 1,
                  .special = 1,
                  .saliency = 1,
                  .seed = 7};
  dsb_t *ds = dsb_build(&s);
  cr_assert_not_null(ds);
  int n = dsb_tensors(ds);
  if (x && x->gen) {
    for (int b = 0; b < NB; b++)
      x->gen_values[b] = gen_start[b] + (x->gen_bad_value && b == 1 ? 4 : 0);
    am_dtype dt = x->gen_f32 ? AM_DTYPE_F32 : AM_DTYPE_I64;
    static float as_f32[NB];
    for (int b = 0; b < NB; b++)
      as_f32[b] = (float)x->gen_values[b];
    ds->list[n++] =
        (am_named_tensor_t){"generation_start",
                            {dt,
                             1,
                             {NB},
                             dt == AM_DTYPE_F32 ? (const void *)as_f32 : x->gen_values,
                             (size_t)NB * (dt == AM_DTYPE_F32 ? 4 : 8)}};
  }
  if (x && x->step_saliency) {
    int i = dsb_find(ds, n, "saliency.ig");
    for (int b = 0; b < NB; b++)
      for (int k = 0; k < 3; k++)
        for (int t = 0; t < NT; t++)
          x->sal3[(b * 3 + k) * NT + t] = (float)(k + 1) * ds->sal[b * NT + t];
    ds->list[i].tensor =
        (am_tensor_t){AM_DTYPE_F32, 3, {NB, 3, NT}, x->sal3, sizeof x->sal3};
  }
  cr_assert_eq(dsb_write_list(path, ds->list, n, NULL, 0), 0);
  dsb_free(ds);
}

static void analyze_ok(const char *data, const char *run, const char *target,
                       const char *extra) {
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", data, "-o", run, "--target", target, "-q",
                       extra ? extra : NULL, NULL),
               0);
  cr_assert_eq(r.exit_code, 0, "--target %s: %s", target, r.err);
  cli_result_free(&r);
}

static am_file_t *open_run(const char *run) {
  char path[600];
  am_file_t *f = NULL;
  cr_assert_eq(
      am_file_open(ctx, dsb_join(path, sizeof path, run, "examples.safetensors"), &f),
      AM_STATUS_OK, "%s", am_last_error(ctx));
  return f;
}

static float f32(const am_file_t *f, const char *name, size_t i) {
  const am_tensor_t *t = am_file_find(f, name);
  cr_assert_not_null(t, "no tensor %s", name);
  cr_assert_lt(i * 4, t->nbytes);
  float v;
  memcpy(&v, (const char *)t->data + 4 * i, 4);
  return v;
}

static int32_t i32(const am_file_t *f, const char *name, size_t i) {
  float v = f32(f, name, i);
  int32_t x;
  memcpy(&x, &v, 4);
  return x;
}

static json_t *summary_of(const char *run) {
  char path[600];
  json_t *root = json_load_file(dsb_join(path, sizeof path, run, "summary.json"), 0, NULL);
  cr_assert_not_null(root);
  return root;
}

/* Runs data with --target slice and with each of the three single targets, and expects
 * every step row equal bit for bit to its single-target run and the [N,T] maps their mean
 * (b examples of t positions). */
static void expect_rows_of_single_runs(const char *data, const char *run, const char *slice,
                                       const char *const *singles, int b_count,
                                       int t_count) {
  analyze_ok(data, run, slice, NULL);
  const char *runs[3] = {P("single0"), P("single1"), P("single2")};
  am_file_t *f = open_run(run), *g[3];
  for (int k = 0; k < 3; k++) {
    analyze_ok(data, runs[k], singles[k], NULL);
    g[k] = open_run(runs[k]);
  }
  const char *maps[] = {"attention_last", "rollout", "grad_rollout"};
  for (int m = 0; m < 3; m++) {
    char steps[64];
    snprintf(steps, sizeof steps, "%s.steps", maps[m]);
    for (int b = 0; b < b_count; b++)
      for (int t = 0; t < t_count; t++) {
        double sum = 0;
        for (int s = 0; s < 3; s++) {
          float row = f32(f, steps, (size_t)((b * 3 + s) * t_count + t));
          float one = f32(g[s], maps[m], (size_t)(b * t_count + t));
          cr_expect(memcmp(&row, &one, 4) == 0,
                    "%s: %s example %d step %d position %d: %a vs %a", data, maps[m], b, s,
                    t, row, one);
          sum += one;
        }
        float mean = (float)(sum / 3), got = f32(f, maps[m], (size_t)(b * t_count + t));
        cr_expect(memcmp(&mean, &got, 4) == 0, "%s: %s mean %d %d: %a vs %a", data, maps[m],
                  b, t, got, mean);
      }
  }
  am_file_close(f);
  for (int k = 0; k < 3; k++)
    am_file_close(g[k]);
}

Test(target_steps, a_slice_gives_the_rows_of_single_target_runs_and_their_mean) {
  const char *data = P("d.safetensors"), *run = P("r25");
  write_dataset(data, NULL);
  expect_rows_of_single_runs(data, run, "2:5", (const char *[]){"2", "3", "4"}, NB, NT);
  am_file_t *f = open_run(run);
  for (int b = 0; b < NB; b++) {
    cr_expect_eq(i32(f, "steps", (size_t)b), 3);
    for (int s = 0; s < 3; s++) /* left padding: valid index i sits at NT - len + i */
      cr_expect_eq(i32(f, "step_positions", (size_t)(b * 3 + s)), NT - lens[b] + 2 + s);
  }
  am_file_close(f);
  json_t *root = summary_of(run);
  json_t *opt = json_object_get(json_object_get(root, "provenance"), "options");
  cr_expect_str_eq(json_string_value(json_object_get(opt, "target")), "2:5");
  json_t *st = json_object_get(root, "steps");
  cr_expect_str_eq(json_string_value(json_object_get(st, "target")), "2:5");
  cr_expect_eq(json_integer_value(json_object_get(st, "max_steps")), 3);
  cr_expect_eq(json_integer_value(json_object_get(st, "examples")), 4);
  cr_expect_str_eq(json_string_value(json_object_get(st, "gradients")), "shared");
  cr_expect_eq(json_array_size(json_object_get(st, "per_step")), 3);
  json_decref(root);
  cli_result_t r; /* the reader accepts it: a report is drawn */
  cr_assert_eq(cli_run(&r, NULL, "report", run, NULL), 0);
  cr_expect_eq(r.exit_code, 0, "%s", r.err);
  cli_result_free(&r);
}

Test(target_steps, gen_reads_generation_start_and_the_summary_counts_steps) {
  const char *data = P("g.safetensors"), *run = P("rg");
  extras_t x = {.gen = 1};
  write_dataset(data, &x);
  analyze_ok(data, run, "gen", NULL);
  am_file_t *f = open_run(run);
  const int want[NB] = {4, 3, 5, 0}; /* valid positions >= generation_start */
  int S = 5;
  for (int b = 0; b < NB; b++) {
    cr_expect_eq(i32(f, "steps", (size_t)b), want[b], "example %d", b);
    for (int s = 0; s < S; s++) {
      int32_t p = i32(f, "step_positions", (size_t)(b * S + s));
      cr_expect_eq(p, s < want[b] ? (int32_t)gen_start[b] + s : -1, "example %d step %d", b,
                   s);
    }
    for (int t = 0; want[b] == 0 && t < NT; t++) /* no steps: the mean map is 0 */
      cr_expect_eq(f32(f, "rollout", (size_t)(b * NT + t)), 0.0f);
  }
  /* prefix_share of step 0, rollout: mean over examples with a step of the row's
   * absolute mass before the first step's position */
  double sum = 0;
  int n = 0;
  for (int b = 0; b < NB; b++) {
    if (want[b] == 0)
      continue;
    double all = 0, before = 0;
    for (int t = 0; t < NT; t++) {
      double a = fabs(f32(f, "rollout.steps", (size_t)((b * S) * NT + t)));
      all += a;
      before += t < gen_start[b] ? a : 0;
    }
    sum += before / all;
    n++;
  }
  am_file_close(f);
  json_t *root = summary_of(run);
  json_t *st = json_object_get(root, "steps");
  cr_expect_eq(json_integer_value(json_object_get(st, "examples")), 3);
  cr_expect_eq(json_integer_value(json_object_get(st, "max_steps")), 5);
  json_t *k0 = json_array_get(json_object_get(st, "per_step"), 0);
  json_t *k4 = json_array_get(json_object_get(st, "per_step"), 4);
  cr_expect_eq(json_integer_value(json_object_get(k0, "count")), 3);
  cr_expect_eq(json_integer_value(json_object_get(k4, "count")), 1);
  double share =
      json_real_value(json_object_get(json_object_get(k0, "prefix_share"), "rollout"));
  cr_expect(fabs(share - sum / n) < 1e-12, "prefix_share %.17g vs %.17g", share, sum / n);
  json_decref(root);
}

/* Pearson of x and y (m values) as plainly as it is defined. */
static double pearson(const double *x, const double *y, int m) {
  double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
  for (int i = 0; i < m; i++) {
    mx += x[i] / m;
    my += y[i] / m;
  }
  for (int i = 0; i < m; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return sxy / sqrt(sxx * syy);
}

/* Per-step saliency (step s = (s+1) x the [B,T] row): its rows and mean; agreement.steps
 * over the tokens before the step (special and the step's own token left out). */
Test(target_steps, per_step_saliency_and_agreement_steps_against_hand_computed_values) {
  const char *data = P("s.safetensors"), *run = P("rs");
  extras_t x = {.gen = 1, .step_saliency = 1};
  write_dataset(data, &x); /* steps 4, 3, 5, 0: at most 5 > 3 rows per example */
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", data, "-o", run, "--target", "gen", NULL), 0);
  cr_expect_eq(r.exit_code, 2, "%s", r.err);
  cr_expect(
      strstr(r.err, "tensor saliency.ig: example 0 has 4 steps but the tensor holds 3"),
      "%s", r.err);
  cr_expect_eq(cli_count_lines(r.err), 1, "%s", r.err);
  cr_expect(!dsb_exists(run));
  cli_result_free(&r);
  analyze_ok(data, run, "-3:", NULL); /* 3 steps each: the last three valid tokens */
  am_file_t *f = open_run(run);
  const am_tensor_t *pairs_meta = am_file_find(f, "agreement.steps.pearson");
  cr_assert_not_null(pairs_meta);
  const char *pairs = am_file_metadata(f, "attnmap.pairs");
  json_t *pj = json_loads(pairs, 0, NULL);
  int col = -1, sal_col = -1;
  for (size_t p = 0; p < json_array_size(pj); p++) {
    const char *name = json_string_value(json_array_get(pj, p));
    if (strcmp(name, "attention_last~rollout") == 0)
      col = (int)p;
    if (strcmp(name, "rollout~saliency.ig") == 0)
      sal_col = (int)p;
  }
  int P_ = (int)json_array_size(pj);
  json_decref(pj);
  cr_assert(col >= 0 && sal_col >= 0);
  for (int b = 0; b < NB; b++) {
    int start = NT - lens[b];
    for (int s = 0; s < 3; s++) {
      int pos = start + lens[b] - 3 + s; /* the step's padded position */
      double xs[NT], ys[NT];
      int m = 0;
      /* the builder marks the first and last valid token special */
      for (int t = start + 1; t < pos && t < start + lens[b] - 1; t++) {
        xs[m] = f32(f, "attention_last.steps", (size_t)((b * 3 + s) * NT + t));
        ys[m] = f32(f, "rollout.steps", (size_t)((b * 3 + s) * NT + t));
        m++;
      }
      float got = f32(f, "agreement.steps.pearson", (size_t)((b * 3 + s) * P_ + col));
      double want = pearson(xs, ys, m);
      if (m < 2)
        cr_expect(isnan(got), "example %d step %d: %g", b, s, got);
      else
        cr_expect(fabs(got - want) < 1e-5, "example %d step %d: %.9g vs %.9g", b, s, got,
                  want);
      for (int t = 0; t < NT; t++) { /* saliency rows: (s+1) x the row at valid positions */
        float row = f32(f, "saliency.ig.steps", (size_t)((b * 3 + s) * NT + t));
        float want_row = t >= start ? x.sal3[(b * 3 + s) * NT + t] : 0.0f;
        cr_expect_eq(row, want_row, "saliency example %d step %d position %d", b, s, t);
      }
    }
    for (int t = start; t < NT; t++) {
      double sum = 0;
      for (int s = 0; s < 3; s++)
        sum += x.sal3[(b * 3 + s) * NT + t];
      cr_expect_eq(f32(f, "saliency.ig", (size_t)(b * NT + t)), (float)(sum / 3));
    }
  }
  am_file_close(f);
}

static void expect_refused(const char *data, const char *run, const char *const *argv,
                           const char *needle) {
  cli_result_t r;
  const char *args[16] = {"analyze", data, "-o", run};
  int n = 4;
  for (int i = 0; argv[i]; i++)
    args[n++] = argv[i];
  args[n] = NULL;
  cr_assert_eq(cli_runv(&r, NULL, args), 0);
  cr_expect_eq(r.exit_code, 2, "%s: %s", needle, r.err);
  cr_expect(strstr(r.err, needle), "want '%s' in: %s", needle, r.err);
  cr_expect_eq(cli_count_lines(r.err), 1, "%s", r.err);
  cr_expect(!dsb_exists(run), "%s left a run folder", needle);
  char partial[600];
  snprintf(partial, sizeof partial, "%s.partial", run);
  cr_expect(!dsb_exists(partial), "%s left a partial folder", needle);
  cli_result_free(&r);
}

Test(target_steps, every_error_is_one_line_and_leaves_no_run) {
  const char *plain = P("plain.safetensors"), *f32gen = P("f32gen.safetensors");
  const char *big = P("big.safetensors"), *run = P("never");
  write_dataset(plain, NULL);
  extras_t a = {.gen = 1, .gen_f32 = 1}, b = {.gen = 1, .gen_bad_value = 1};
  write_dataset(f32gen, &a);
  write_dataset(big, &b);
  expect_refused(plain, run, (const char *[]){"--target", "gen", NULL},
                 "plain.safetensors: tensor generation_start: needed by --target gen but "
                 "not found");
  expect_refused(
      f32gen, run, (const char *[]){"--target", "gen", NULL},
      "f32gen.safetensors: tensor generation_start: dtype F32 is not an integer");
  expect_refused(big, run, (const char *[]){"--target", "gen", NULL},
                 "big.safetensors: tensor generation_start: example 1: value 10 is outside "
                 "[0,9]");
  expect_refused(plain, run,
                 (const char *[]){"--target", "2:5", "--methods", "rollout,flow", NULL},
                 "--methods flow: attention flow solves one max-flow problem per target");
  expect_refused(plain, run, (const char *[]){"--target", "2:x", NULL},
                 "--target '2:x': expected");
  expect_refused(plain, run, (const char *[]){"--target", "1:2:3", NULL},
                 "--target '1:2:3': expected");
  expect_refused(plain, run, (const char *[]){"--target", "gen:", NULL},
                 "--target 'gen:': expected");
}

/* Runs of 3 and 1 steps merge into what one run over both inputs writes (padded to S = 3):
 * examples.safetensors byte for byte, summary.json apart from provenance. */
Test(target_steps, merge_of_runs_of_different_steps_equals_one_run) {
  const char *dir = P("shards"), *all = P("all"), *ra = P("ra"), *rb = P("rb"),
             *merged = P("merged");
  char a[600], b[600];
  mkdir(dir, 0777);
  dsb_spec_t s = {.L = 2, .H = 2, .B = 3, .T = 7, .left_pad = 1, .grads = 1, .seed = 9};
  for (int part = 0; part < 2; part++) {
    s.first = part * 3;
    dsb_t *ds = dsb_build(&s);
    int n = dsb_tensors(ds);
    static int64_t g[2][3] = {{4, 4, 5}, {6, 6, 6}};
    ds->list[n++] = (am_named_tensor_t){"generation_start",
                                        {AM_DTYPE_I64, 1, {3}, g[part], sizeof g[part]}};
    cr_assert_eq(dsb_write_list(dsb_join(part ? b : a, 600, dir,
                                         part ? "b.safetensors" : "a.safetensors"),
                                ds->list, n, NULL, 0),
                 0);
    dsb_free(ds);
  }
  analyze_ok(dir, all, "gen", NULL);
  analyze_ok(a, ra, "gen", NULL);
  analyze_ok(b, rb, "gen", NULL);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "merge", ra, rb, "-o", merged, "-q", NULL), 0);
  cr_expect_eq(r.exit_code, 0, "%s", r.err);
  cli_result_free(&r);
  char p1[600], p2[600];
  size_t n1 = 0, n2 = 0;
  char *x = dsb_read_file(dsb_join(p1, sizeof p1, all, "examples.safetensors"), &n1);
  char *y = dsb_read_file(dsb_join(p2, sizeof p2, merged, "examples.safetensors"), &n2);
  cr_expect(x && y && n1 == n2 && memcmp(x, y, n1) == 0, "examples differ");
  free(x);
  free(y);
  json_t *u = summary_of(all), *v = summary_of(merged);
  json_object_del(u, "provenance");
  json_object_del(v, "provenance");
  cr_expect(json_equal(u, v), "summaries differ");
  cr_expect_eq(
      json_integer_value(json_object_get(json_object_get(v, "steps"), "max_steps")), 3);
  json_decref(u);
  json_decref(v);
  /* --resume on the complete run with the same options: nothing to do */
  cr_assert_eq(
      cli_run(&r, NULL, "analyze", dir, "-o", all, "--target", "gen", "--resume", NULL), 0);
  cr_expect_eq(r.exit_code, 0, "%s", r.err);
  cr_expect(strstr(r.err, "already complete"), "%s", r.err);
  cli_result_free(&r);
}

/* step_attention_grads: grad_rollout.steps row k equals a single-target run whose
 * attention_grads is step k's gradient (here (k+1) x the builder's, sign flipped at k = 1),
 * bit for bit; the summary says "per_step". */
Test(target_steps, per_step_gradients_give_each_step_its_own_gradient) {
  enum { L = 2, H = 2, K = 3 };
  dsb_spec_t s = {.L = L,
                  .H = H,
                  .B = NB,
                  .T = NT,
                  .lengths = lens,
                  .left_pad = 1,
                  .grads = 1,
                  .per_layer = 1,
                  .seed = 11};
  static float sg[L][NB * K * H * NT * NT], one[K][L][NB * H * NT * NT];
  dsb_t *ds = dsb_build(&s);
  cr_assert_not_null(ds);
  for (int l = 0; l < L; l++)
    for (int b = 0; b < NB; b++)
      for (int k = 0; k < K; k++)
        for (int h = 0; h < H; h++)
          for (int i = 0; i < NT; i++)
            for (int j = 0; j < NT; j++) {
              float g =
                  (float)(k + 1) * (k == 1 ? -1.0f : 1.0f) * *dsb_grad(ds, l, b, h, i, j);
              sg[l][(((b * K + k) * H + h) * NT + i) * NT + j] = g;
              one[k][l][((b * H + h) * NT + i) * NT + j] = g;
            }
  int n = dsb_tensors(ds);
  const char *data = P("sg.safetensors"), *run = P("rsg");
  static const char *names[L] = {"step_attention_grads.0", "step_attention_grads.1"};
  for (int l = 0; l < L; l++)
    ds->list[n + l] = (am_named_tensor_t){
        names[l], {AM_DTYPE_F32, 5, {NB, K, H, NT, NT}, sg[l], sizeof sg[l]}};
  cr_assert_eq(dsb_write_list(data, ds->list, n + L, NULL, 0), 0);
  analyze_ok(data, run, "-3:", NULL);
  const char *target[K] = {"-3", "-2", "-1"};
  for (int k = 0; k < K; k++) { /* attention_grads := step k's gradient, one target */
    char name[32];
    for (int l = 0; l < L; l++) {
      snprintf(name, sizeof name, "attention_grads.%d", l);
      int i = dsb_find(ds, n, name);
      cr_assert(i >= 0);
      ds->list[i].tensor.data = one[k][l];
    }
    const char *single = P("single.safetensors"), *srun = P("single");
    cr_assert_eq(dsb_write_list(single, ds->list, n, NULL, 0), 0);
    analyze_ok(single, srun, target[k], "--force");
    am_file_t *f = open_run(run), *g = open_run(srun);
    for (int b = 0; b < NB; b++)
      for (int t = 0; t < NT; t++) {
        float row = f32(f, "grad_rollout.steps", (size_t)((b * K + k) * NT + t));
        float want = f32(g, "grad_rollout", (size_t)(b * NT + t));
        cr_expect(memcmp(&row, &want, 4) == 0, "step %d example %d position %d: %a vs %a",
                  k, b, t, row, want);
      }
    am_file_close(f);
    am_file_close(g);
  }
  dsb_free(ds);
  json_t *root = summary_of(run);
  cr_expect_str_eq(
      json_string_value(json_object_get(json_object_get(root, "steps"), "gradients")),
      "per_step");
  json_decref(root);
}

/* The long-context form has no step rows of its own: one single-target pass per step (the
 * pipeline's fallback, steps_chunk.c), so the rows are the single runs' by definition. */
Test(target_steps, the_long_context_form_takes_one_pass_per_step) {
  const lc_case_t c = {.L = 2,
                       .H = 4,
                       .Hkv = 2,
                       .T = 20,
                       .d = 8,
                       .attn = {0.35, 1, 0, 0},
                       .dtype = AM_DTYPE_F32,
                       .seed = 5};
  const char *data = P("long.safetensors");
  cr_assert_eq(lcd_write(&c, 3, 1, data, NULL), 0);
  expect_rows_of_single_runs(data, P("rlong"), "-4:-1", (const char *[]){"-4", "-3", "-2"},
                             3, 20);
}
