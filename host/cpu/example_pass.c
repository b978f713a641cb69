/* STUB — replaced by the analysis work. */
#include <stdlib.h>
#include "cpu/example_pass.h"
const char *am_stat_name(am_stat s) { static const char *n[] = {
#define N_(name, text) text,
AM_STAT_LIST(N_)
#undef N_
}; return n[s]; }
double am_row_sum_tolerance(am_dtype dtype) { (void)dtype; return 1e-3; }
void am_cpu_scratch_free(am_cpu_scratch_t *s) { free(s->buf); s->buf = NULL; s->cap = 0; }
am_status am_cpu_example_pass(const am_example_t *ex, const am_pass_options_t *opt, am_pass_output_t *out, am_cpu_scratch_t *scratch, am_fault_t *fault) { (void)ex; (void)opt; (void)out; (void)scratch; (void)fault; return AM_STATUS_UNSUPPORTED; }
void am_cpu_normalize(float *v, int n, am_normalize how) { (void)v; (void)n; (void)how; }
void am_cpu_saliency(const void *emb, am_dtype ed, const void *grad, am_dtype gd, int D, const int32_t *idx, int n, float *a, float *b, float *c) { (void)emb; (void)ed; (void)grad; (void)gd; (void)D; (void)idx; (void)n; (void)a; (void)b; (void)c; }
