/* flow.c — STUB: attention flow arrives with the flow issue. */
#include "cpu/flow.h"

am_status am_cpu_flow(const am_example_t *ex, const am_pass_options_t *opt, float *out,
                      am_cpu_scratch_t *scratch) {
  (void)ex;
  (void)opt;
  (void)out;
  (void)scratch;
  return AM_STATUS_UNSUPPORTED;
}
