/* lists.h — the per-head statistics and the agreement metrics, each named once, in the
 * order of their outputs; every backend, the pipeline and the report use these lists. */
#ifndef AM_OPS_LISTS_H
#define AM_OPS_LISTS_H

/* Per-head statistics, in the order of the [AM_STAT_COUNT,L,H] output. */
#define AM_STAT_LIST(X)                                                                    \
  X(ENTROPY, "entropy")                                                                    \
  X(ENTROPY_NORM, "entropy_norm")                                                          \
  X(CONFIDENCE, "confidence")                                                              \
  X(TO_FIRST, "to_first")                                                                  \
  X(TO_LAST, "to_last")                                                                    \
  X(TO_SELF, "to_self")                                                                    \
  X(TO_PREV, "to_prev")                                                                    \
  X(TO_NEXT, "to_next")                                                                    \
  X(DISTANCE, "distance")

typedef enum am_stat {
#define AM_STAT_ENUM_(name, text) AM_STAT_##name,
  AM_STAT_LIST(AM_STAT_ENUM_)
#undef AM_STAT_ENUM_
      AM_STAT_COUNT
} am_stat;

const char *am_stat_name(am_stat stat); /* "entropy" */

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

#endif
