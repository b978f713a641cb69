/* agreement.h — agreement between two token-importance vectors of one example
 * (docs/design.md §3 "Agreement"), the CPU reference. */
#ifndef AM_CPU_AGREEMENT_H
#define AM_CPU_AGREEMENT_H

#include "ops/lists.h"

/* Doubles of scratch that am_cpu_agreement needs for vectors of length m. */
#define AM_AGREEMENT_WORK(m) (10 * (size_t)(m) + 8)

/* x, y: [m] importance values of the compared tokens (valid and, unless asked,
 * non-special), in position order. k: top-k size (clipped to m). work: AM_AGREEMENT_WORK(m)
 * doubles. out[AM_METRIC_COUNT]: NaN where a metric is undefined (constant or all-zero
 * input, m == 0), never 0 in its place. */
void am_cpu_agreement(const float *x, const float *y, int m, int k, double *work,
                      double out[AM_METRIC_COUNT]);

#endif
