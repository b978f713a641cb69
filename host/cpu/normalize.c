/* normalize.c — readout normalisation of a rollout or gradient-weighted rollout row
 * (docs/design.md §3), in place. The maps it is applied to are >= 0, so:
 *  - max: v / max(v), as vit-explain's `mask / np.max(mask)`; a row whose largest value
 *    is not > 0 (all zeros) is left as it is;
 *  - sum: v / sum(v), a distribution over the tokens; a sum that is not > 0 leaves the
 *    row as it is;
 *  - minmax: (v - min) / (max - min), as Chefer et al.'s visualisation code; a constant
 *    row (max == min), where that code divides by zero, becomes all zeros.
 * Extremes and sums are taken in double; the quotient is rounded once to float. */
#include "cpu/example_pass.h"

void am_cpu_normalize(float *v, int n, am_normalize how) {
  if (!v || n <= 0 || how == AM_NORMALIZE_NONE)
    return;
  double lo = v[0], hi = v[0], sum = 0.0;
  for (int j = 0; j < n; j++) {
    if (v[j] < lo)
      lo = v[j];
    if (v[j] > hi)
      hi = v[j];
    sum += v[j];
  }
  switch (how) {
  case AM_NORMALIZE_MAX:
    if (hi > 0.0)
      for (int j = 0; j < n; j++)
        v[j] = (float)(v[j] / hi);
    break;
  case AM_NORMALIZE_SUM:
    if (sum > 0.0)
      for (int j = 0; j < n; j++)
        v[j] = (float)(v[j] / sum);
    break;
  case AM_NORMALIZE_MINMAX:
    for (int j = 0; j < n; j++)
      v[j] = hi > lo ? (float)((v[j] - lo) / (hi - lo)) : 0.0f;
    break;
  default:
    break;
  }
}
