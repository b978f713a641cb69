/* compare.h — the nightly comparison of two run summaries (docs/report.md): per head
 * statistic, layer and head, and per agreement pair and metric, the change of the mean in
 * pooled standard deviations, entries beyond the threshold first. */
#ifndef AM_REPORT_COMPARE_H
#define AM_REPORT_COMPARE_H

#include <jansson.h>
#include <stdint.h>

#include "attnmap.h"
#include "report/report_run.h"

/* The standardised change of one mean: pooled sd = sqrt((m2_a + m2_b) / (n_a + n_b - 2));
 * z = (mean_a - mean_b) / sd. A zero or undefined spread gives z = 0 when the means are
 * equal and +-infinity when they differ; a missing mean gives NaN. */
double am_compare_z(double n_a, double mean_a, double m2_a, double n_b, double mean_b,
                    double m2_b, double *sd);

/* Builds the comparison document of run against base (both summary.json documents,
 * borrowed); run_name and base_name are recorded as given. *drifted counts entries with
 * |z| > threshold. With strata_run and strata_base (both runs opened with their examples)
 * every change is stratified by length (am_compare_stratified). The document also holds
 * the length mix of both runs and a note when it changed. */
am_status am_compare_summaries(am_ctx_t *ctx, json_t *run, json_t *base,
                               const char *run_name, const char *base_name,
                               double threshold, const am_report_run_t *strata_run,
                               const am_report_run_t *strata_base, json_t **out,
                               int64_t *drifted);

/* The faithfulness part of the comparison (compare_faith.c): entries per map and quantity
 * (AOPC comprehensiveness and sufficiency, deletion and insertion areas) as for the other
 * metrics, the rankings, notes; null when neither summary has a faithfulness section.
 * *drifted counts its entries beyond thr. */
json_t *am_compare_faithfulness(json_t *run, json_t *base, double thr, int64_t *drifted);

/* One per-example quantity of a run: values[i * stride + offset] (F32) for example i of N,
 * with its valid length lengths[i] (I32). */
typedef struct am_strata_input {
  const am_tensor_t *values, *lengths;
  int64_t N, stride, offset;
} am_strata_input_t;

/* The length stratum of an example of n tokens: floor(2 log2 n) (strata a factor sqrt 2
 * wide), 0 for n <= 1. */
int am_length_stratum(int64_t n);
/* The change of a quantity stratified by length (compare_strata.c): the weighted mean of
 * the per-stratum differences over strata both runs hold, weights the strata's pooled
 * counts; sd the pooled within-stratum standard deviation; z = delta / sd (as am_compare_z
 * for a zero spread); mean_run and mean_base the weighted means. NaN when no stratum is
 * shared. */
void am_compare_stratified(const am_strata_input_t *run, const am_strata_input_t *base,
                           double *mean_run, double *mean_base, double *delta, double *sd,
                           double *z);
/* The length mix of both runs from summary.json's positions.count: mean and sd of the
 * lengths, z of the mean length, the total variation distance of the length histograms in
 * strata, and whether the mix changed (|z| > threshold or distance > 0.2); null when a
 * summary holds no counts. */
json_t *am_compare_length_mix(json_t *run, json_t *base, double threshold);

#endif
