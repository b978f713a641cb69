/* compare_runs.h — two run folders of `attnmap analyze` (another backend against the CPU)
 * compared within the parity suite's tolerances: examples.safetensors tensor by tensor
 * (same names, shapes and dtypes; integers and masks exactly; floats by
 * par_compare_floats, rtol 1e-5, *.rows 1e-4) and summary.json number by number (rtol
 * 1e-4 of the number or of its array's largest value), provenance left out. */
#ifndef TESTS_SUPPORT_COMPARE_RUNS_H
#define TESTS_SUPPORT_COMPARE_RUNS_H

#include "attnmap.h"

/* Differences found (each reported on stderr); 0 when the runs agree. */
int cmp_runs(am_ctx_t *ctx, const char *got_dir, const char *ref_dir);
/* The same, leaving out summary.json keys named key too (e.g. "dtype" for runs over the
 * same values stored in two dtypes). */
int cmp_runs_except(am_ctx_t *ctx, const char *got_dir, const char *ref_dir,
                    const char *key);

#endif
