/* check.c — what every backend checks before a pass reads anything (example.h), and the
 * row-sum tolerance of the input check. The CUDA backend adds its own limits after these
 * (cuda/batch.cu); the answer for an example is the same on every backend. */
#include "ops/example.h"

/* Stored probabilities are rounded to nearest, each with a relative error of at most the
 * unit roundoff u (F16 2^-11, BF16 2^-8), so a stored row of true sum 1 sums to within u
 * (plus n * 2^-25 absolute for F16 values that underflow to subnormals or zero: 1.2e-4
 * at n = 4096). We allow 4u + 1e-5 for the half types, headroom for a softmax computed in
 * that type. F32/F64: a float softmax is exact to ~1e-6 at these lengths; 1e-4 still
 * catches a wrong axis, logits or an unmasked padding, which miss by far more. */
double am_row_sum_tolerance(am_dtype dtype) {
  switch (dtype) {
  case AM_DTYPE_F16:
    return 4.0 * 0x1p-11 + 1e-5;
  case AM_DTYPE_BF16:
    return 4.0 * 0x1p-8 + 1e-5;
  default:
    /* F32/F64 dumps often come from models run in float16 and cast up: allow the
     * float16 rounding of the stored probabilities (--row-tolerance widens it further,
     * e.g. for bfloat16 models dumped as F32). */
    return 4.0 * 0x1p-11 + 1e-5;
  }
}

unsigned am_pass_needing(unsigned what) {
  unsigned bits = 0;
#define AM_WANTING_(name, field, needs) bits |= (what & (needs)) ? AM_PASS_##name : 0u;
  AM_PASS_OUTPUT_LIST(AM_WANTING_)
#undef AM_WANTING_
  return bits;
}

float **am_pass_output_slot(am_pass_output_t *out, unsigned bit) {
#define AM_SLOT_(name, field, needs)                                                       \
  if (bit == AM_PASS_##name)                                                               \
    return &out->field;
  AM_PASS_OUTPUT_LIST(AM_SLOT_)
#undef AM_SLOT_
  return NULL;
}

int am_ops_float_dtype(am_dtype d) {
  return d == AM_DTYPE_F32 || d == AM_DTYPE_F16 || d == AM_DTYPE_BF16 || d == AM_DTYPE_F64;
}

const char *am_fault_text(am_fault_kind k) {
  switch (k) {
  case AM_FAULT_ATT_NOT_FINITE:
    return "attention weight is not finite";
  case AM_FAULT_ATT_NEGATIVE:
    return "attention weight is negative";
  case AM_FAULT_ATT_ROW_SUM:
    return "attention row does not sum to 1 over the valid keys";
  case AM_FAULT_GRAD_NOT_FINITE:
    return "gradient is not finite";
  case AM_FAULT_NONE:
    break;
  }
  return "bad value";
}

int am_ops_outputs_present(unsigned want, const am_pass_output_t *out) {
#define AM_MISSING_(name, field, needs)                                                    \
  if ((want & AM_PASS_##name) && !out->field)                                              \
    return 0;
  AM_PASS_OUTPUT_LIST(AM_MISSING_)
#undef AM_MISSING_
  return 1;
}

int am_ops_positions_ok(const int32_t *idx, int n, int T, int target, unsigned want) {
  for (int j = 0; j < n; j++)
    if (idx[j] < 0 || idx[j] >= T || (j > 0 && idx[j] <= idx[j - 1]))
      return 0;
  return !(want & am_pass_needing(AM_NEEDS_TARGET)) || target == AM_ROW_MEAN ||
         (target >= 0 && target < n);
}

am_status am_ops_check_example(const am_example_t *ex, const am_pass_options_t *opt,
                               const am_pass_output_t *out) {
  if (!ex || !opt || !out || ex->L < 1 || ex->H < 1 || ex->n < 0 || ex->n > ex->T ||
      !am_ops_float_dtype(ex->dtype))
    return AM_STATUS_INVALID_ARGUMENT;
  unsigned w = opt->want;
  if (!am_ops_outputs_present(w, out))
    return AM_STATUS_INVALID_ARGUMENT;
  if (ex->n == 0)
    return AM_STATUS_OK;
  if (!ex->att || !ex->idx || (w & am_pass_needing(AM_NEEDS_GRAD) && !ex->grad))
    return AM_STATUS_INVALID_ARGUMENT;
  for (int l = 0; l < ex->L; l++)
    if (!ex->att[l] || (ex->grad && !ex->grad[l]))
      return AM_STATUS_INVALID_ARGUMENT;
  if (!am_ops_positions_ok(ex->idx, ex->n, ex->T, ex->target, w))
    return AM_STATUS_INVALID_ARGUMENT;
  if (w & am_pass_needing(AM_NEEDS_STEPS)) {
    if (ex->nsteps < 1 || !ex->steps)
      return AM_STATUS_INVALID_ARGUMENT;
    for (int s = 0; s < ex->nsteps; s++)
      if (ex->steps[s] < 0 || ex->steps[s] >= ex->n)
        return AM_STATUS_INVALID_ARGUMENT;
    for (int l = 0; ex->step_grad && l < ex->L; l++)
      if (!ex->step_grad[l])
        return AM_STATUS_INVALID_ARGUMENT;
  }
  if (w & am_pass_needing(AM_NEEDS_FUSED) && !(opt->discard >= 0.0 && opt->discard < 1.0))
    return AM_STATUS_INVALID_ARGUMENT;
  if (opt->fusion != AM_FUSION_MEAN && opt->fusion != AM_FUSION_MAX &&
      opt->fusion != AM_FUSION_MIN)
    return AM_STATUS_INVALID_ARGUMENT;
  return AM_STATUS_OK;
}
