/* test_analyses.c — the CPU reference of the per-example analyses (host/cpu/example_pass.h)
 * against the values that the authors' published code gives on the same inputs:
 * tests/fixtures/analysis_reference.h, written by tests/fixtures/make_analysis_reference.py
 * from numpy transcriptions of jacobgil/vit-explain (rollout, head fusion, discard),
 * samiraabnar/attention_flow (compute_joint_attention), hila-chefer/Transformer-MM-
 * Explainability (avg_heads, apply_self_attention_rules), the probing-vits mean attention
 * distance and the formulas of docs/design.md §3, in float64. Never from attnmap itself.
 * Tolerance: |x - ref| <= ATOL + RTOL |ref| (STYLE.md's F32 rtol); ATOL covers entries that
 * are exactly 0 in the reference and come out as float rounding noise here. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cpu/example_pass.h"
#include "fixtures/analysis_reference.h"

#define RTOL 1e-5
#define ATOL 1e-7
#define MAXN 8
#define MAXLH 8

typedef struct outputs {
  float last[MAXN], rollout[MAXN], grad[MAXN], rrows[MAXN * MAXN], grows[MAXN * MAXN];
  float stats[AM_STAT_COUNT * MAXLH], importance[MAXLH];
} outputs_t;

static void expect_close(const float *got, const float *ref, int count, const char *what,
                         int c) {
  for (int k = 0; k < count; k++) {
    double err = fabs((double)got[k] - (double)ref[k]);
    cr_expect(isfinite(got[k]) && err <= ATOL + RTOL * fabs((double)ref[k]),
              "case %d %s[%d]: got %.9g, expected %.9g", c, what, k, got[k], ref[k]);
  }
}

/* Runs every analysis on reference case c with the given target and options. */
static void run_case(int c, int target, am_fusion fusion, double discard,
                     am_normalize normalize, const am_grid_t *grid, outputs_t *o) {
  const ref_case_t *rc = &ref_cases[c];
  const void *att[4], *grad[4];
  size_t block = (size_t)rc->H * rc->T * rc->T;
  for (int l = 0; l < rc->L; l++) {
    att[l] = rc->att + l * block;
    grad[l] = rc->grad + l * block;
  }
  am_example_t ex = {.L = rc->L,
                     .H = rc->H,
                     .T = rc->T,
                     .n = rc->n,
                     .dtype = AM_DTYPE_F32,
                     .att = att,
                     .grad = grad,
                     .idx = rc->idx,
                     .target = target};
  am_pass_options_t opt = {
      .want = 0x7Fu, .fusion = fusion, .discard = discard, .normalize = normalize};
  if (grid)
    opt.grid = *grid;
  am_pass_output_t out = {.attention_last = o->last,
                          .rollout = o->rollout,
                          .grad_rollout = o->grad,
                          .rollout_rows = o->rrows,
                          .grad_rollout_rows = o->grows,
                          .head_stats = o->stats,
                          .head_importance = o->importance};
  am_cpu_scratch_t scratch = {0};
  am_fault_t fault;
  am_status st = am_cpu_example_pass(&ex, &opt, &out, &scratch, &fault);
  am_cpu_scratch_free(&scratch);
  cr_assert_eq(st, AM_STATUS_OK, "case %d: status %d, fault kind %d", c, st, fault.kind);
}

/* The reference's targets: cls, last, index 2, the mean of the rows. */
static int target_of(const ref_case_t *rc, int t) {
  switch (t) {
  case 0:
    return 0;
  case 1:
    return rc->n - 1;
  case 2:
    return 2;
  default:
    return AM_ROW_MEAN;
  }
}

Test(analyses, rollout_matches_vit_explain_and_attention_flow) {
  static const am_fusion fusions[3] = {AM_FUSION_MEAN, AM_FUSION_MAX, AM_FUSION_MIN};
  for (int c = 0; c < REF_CASES; c++) {
    const ref_case_t *rc = &ref_cases[c];
    int n = rc->n;
    for (int f = 0; f < 3; f++)
      for (int d = 0; d < 2; d++)
        for (int t = 0; t < 4; t++) {
          outputs_t o;
          run_case(c, target_of(rc, t), fusions[f], rc->discard[d], AM_NORMALIZE_NONE, NULL,
                   &o);
          char what[64];
          snprintf(what, sizeof what, "rollout f%d d%.1f t%d", f, rc->discard[d], t);
          expect_close(o.rollout, rc->rollout + ((f * 2 + d) * 4 + t) * n, n, what, c);
          snprintf(what, sizeof what, "rollout_rows f%d d%.1f", f, rc->discard[d]);
          expect_close(o.rrows, rc->rollout_rows + (f * 2 + d) * n * n, n * n, what, c);
        }
  }
}

Test(analyses, grad_rollout_matches_chefer) {
  for (int c = 0; c < REF_CASES; c++) {
    const ref_case_t *rc = &ref_cases[c];
    int n = rc->n;
    static const int targets[2] = {0, AM_ROW_MEAN};
    for (int t = 0; t < 2; t++) {
      outputs_t o;
      run_case(c, targets[t], AM_FUSION_MEAN, 0.0, AM_NORMALIZE_NONE, NULL, &o);
      expect_close(o.grad, rc->grad_rollout + t * n, n, "grad_rollout", c);
      expect_close(o.grows, rc->grad_rollout_rows, n * n, "grad_rollout_rows", c);
    }
  }
}

Test(analyses, attention_last_is_head_mean_whatever_the_fusion) {
  for (int c = 0; c < REF_CASES; c++) {
    const ref_case_t *rc = &ref_cases[c];
    for (int t = 0; t < 4; t++) {
      outputs_t o;
      run_case(c, target_of(rc, t), AM_FUSION_MAX, 0.0, AM_NORMALIZE_NONE, NULL, &o);
      expect_close(o.last, rc->attention_last + t * rc->n, rc->n, "attention_last", c);
    }
  }
}

Test(analyses, head_statistics_and_importance) {
  for (int c = 0; c < REF_CASES; c++) {
    const ref_case_t *rc = &ref_cases[c];
    int lh = rc->L * rc->H;
    outputs_t o;
    run_case(c, 0, AM_FUSION_MEAN, 0.0, AM_NORMALIZE_NONE, NULL, &o);
    for (int s = 0; s < AM_STAT_COUNT; s++)
      expect_close(o.stats + s * lh, rc->head_stats + s * lh, lh, am_stat_name(s), c);
    expect_close(o.importance, rc->head_importance, lh, "head_importance", c);
  }
}

Test(analyses, mean_attention_distance_on_a_patch_grid) {
  am_grid_t grid = {.rows = 2, .cols = 2, .prefix = 1};
  outputs_t o;
  run_case(0, 0, AM_FUSION_MEAN, 0.0, AM_NORMALIZE_NONE, &grid, &o);
  int lh = ref_cases[0].L * ref_cases[0].H;
  for (int s = 0; s < AM_STAT_COUNT; s++)
    expect_close(o.stats + s * lh, ref0_head_stats_grid + s * lh, lh, am_stat_name(s), 0);
  /* a grid that does not match n falls back to |i - j| */
  am_grid_t wrong = {.rows = 3, .cols = 3, .prefix = 1};
  run_case(0, 0, AM_FUSION_MEAN, 0.0, AM_NORMALIZE_NONE, &wrong, &o);
  expect_close(o.stats + AM_STAT_DISTANCE * lh, ref0_head_stats + AM_STAT_DISTANCE * lh, lh,
               "distance (no grid)", 0);
}

Test(analyses, readout_normalisation) {
  static const am_normalize how[4] = {AM_NORMALIZE_NONE, AM_NORMALIZE_MAX, AM_NORMALIZE_SUM,
                                      AM_NORMALIZE_MINMAX};
  for (int c = 0; c < REF_CASES; c++) {
    const ref_case_t *rc = &ref_cases[c];
    int n = rc->n;
    for (int h = 0; h < 4; h++) {
      outputs_t o;
      run_case(c, 0, AM_FUSION_MEAN, rc->discard[0], how[h], NULL, &o);
      expect_close(o.rollout, rc->norm_rollout + h * n, n, "normalised rollout", c);
      expect_close(o.grad, rc->norm_grad + h * n, n, "normalised grad_rollout", c);
      float v[MAXN];
      memcpy(v, rc->norm_rollout, n * sizeof *v); /* the raw row */
      am_cpu_normalize(v, n, how[h]);
      expect_close(v, rc->norm_rollout + h * n, n, "am_cpu_normalize", c);
    }
  }
}

Test(analyses, normalisation_of_degenerate_rows) {
  float zeros[3] = {0, 0, 0}, flat[3] = {0.5f, 0.5f, 0.5f};
  am_cpu_normalize(zeros, 3, AM_NORMALIZE_MAX); /* max 0: left as it is */
  am_cpu_normalize(zeros, 3, AM_NORMALIZE_SUM); /* sum 0: left as it is */
  for (int j = 0; j < 3; j++)
    cr_expect_eq(zeros[j], 0.0f);
  am_cpu_normalize(flat, 3, AM_NORMALIZE_MINMAX); /* constant: zeros, not NaN */
  for (int j = 0; j < 3; j++)
    cr_expect_eq(flat[j], 0.0f);
}

Test(analyses, saliency_matches_captum_and_inseq_definitions) {
  float out[3][REF_SAL_N];
  am_cpu_saliency(ref_sal_emb, AM_DTYPE_F32, ref_sal_grad, AM_DTYPE_F32, REF_SAL_D,
                  ref_sal_idx, REF_SAL_N, out[0], out[1], out[2]);
  expect_close(out[0], ref_sal_out, REF_SAL_N, "grad_l2", 0);
  expect_close(out[1], ref_sal_out + REF_SAL_N, REF_SAL_N, "grad_x_input", 0);
  expect_close(out[2], ref_sal_out + 2 * REF_SAL_N, REF_SAL_N, "abs_grad_x_input", 0);
}

Test(analyses, names_and_tolerances) {
  cr_expect_str_eq(am_stat_name(AM_STAT_ENTROPY), "entropy");
  cr_expect_str_eq(am_stat_name(AM_STAT_ENTROPY_NORM), "entropy_norm");
  cr_expect_str_eq(am_stat_name(AM_STAT_DISTANCE), "distance");
  cr_expect_null(am_stat_name(AM_STAT_COUNT));
  /* F32/F64 allow float16 rounding: dumps are often float16 models cast to F32 */
  cr_expect_float_eq(am_row_sum_tolerance(AM_DTYPE_F32), 4.0 / 2048 + 1e-5, 1e-12);
  cr_expect_float_eq(am_row_sum_tolerance(AM_DTYPE_F64), 4.0 / 2048 + 1e-5, 1e-12);
  cr_expect_float_eq(am_row_sum_tolerance(AM_DTYPE_F16), 4.0 / 2048 + 1e-5, 1e-12);
  cr_expect_float_eq(am_row_sum_tolerance(AM_DTYPE_BF16), 4.0 / 256 + 1e-5, 1e-12);
}
