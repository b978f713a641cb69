/* agreement.h — agreement between two token-importance vectors of one example
 * (DESIGN §3 "Agreement"), the CPU reference. */
#ifndef AM_CPU_AGREEMENT_H
#define AM_CPU_AGREEMENT_H

/* name as written in outputs ("@k" is replaced by the plan's k, e.g. "jaccard@5") */
#define AM_METRIC_LIST(X)                                                                  \
  X(SPEARMAN, "spearman")                                                                  \
  X(KENDALL, "kendall")                                                                    \
  X(PEARSON, "pearson")                                                                    \
  X(COSINE, "cosine")                                                                      \
  X(JACCARD, "jaccard@k")                                                                  \
  X(FEATURE_AGREEMENT, "feature_agreement@k")                                              \
  X(RANK_AGREEMENT, "rank_agreement@k")                                                    \
  X(JSD, "jsd")                                                                            \
  X(TVD, "tvd")

typedef enum am_metric {
#define AM_METRIC_ENUM_(name, text) AM_METRIC_##name,
  AM_METRIC_LIST(AM_METRIC_ENUM_)
#undef AM_METRIC_ENUM_
      AM_METRIC_COUNT
} am_metric;

/* Static name with "@k" still in it ("jaccard@k"). */
const char *am_metric_name(am_metric metric);

/* Doubles of scratch that am_cpu_agreement needs for vectors of length m. */
#define AM_AGREEMENT_WORK(m) (8 * (size_t)(m) + 8)

/* x, y: [m] importance values of the compared tokens (valid and, unless asked,
 * non-special), in position order. k: top-k size (clipped to m). work: AM_AGREEMENT_WORK(m)
 * doubles. out[AM_METRIC_COUNT]: NaN where a metric is undefined (constant or all-zero
 * input, m == 0), never 0 in its place. */
void am_cpu_agreement(const float *x, const float *y, int m, int k, double *work,
                      double out[AM_METRIC_COUNT]);

#endif
