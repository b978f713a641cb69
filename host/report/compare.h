/* compare.h — the nightly comparison of two run summaries (docs/report.md): per head
 * statistic, layer and head, and per agreement pair and metric, the change of the mean in
 * pooled standard deviations, entries beyond the threshold first. */
#ifndef AM_REPORT_COMPARE_H
#define AM_REPORT_COMPARE_H

#include <jansson.h>
#include <stdint.h>

#include "attnmap.h"

/* The standardised change of one mean: pooled sd = sqrt((m2_a + m2_b) / (n_a + n_b - 2));
 * z = (mean_a - mean_b) / sd. A zero or undefined spread gives z = 0 when the means are
 * equal and +-infinity when they differ; a missing mean gives NaN. */
double am_compare_z(double n_a, double mean_a, double m2_a, double n_b, double mean_b,
                    double m2_b, double *sd);

/* Builds the comparison document of run against base (both summary.json documents,
 * borrowed); run_name and base_name are recorded as given. *drifted counts entries with
 * |z| > threshold. */
am_status am_compare_summaries(am_ctx_t *ctx, json_t *run, json_t *base,
                               const char *run_name, const char *base_name,
                               double threshold, json_t **out, int64_t *drifted);

#endif
