/* STUB — replaced by the agreement work. */
#include <math.h>
#include "cpu/agreement.h"
const char *am_metric_name(am_metric m) { static const char *n[] = {
#define N_(name, text) text,
AM_METRIC_LIST(N_)
#undef N_
}; return n[m]; }
void am_cpu_agreement(const float *x, const float *y, int m, int k, double *work, double out[AM_METRIC_COUNT]) { (void)x; (void)y; (void)m; (void)k; (void)work; for (int i = 0; i < AM_METRIC_COUNT; i++) out[i] = NAN; }
