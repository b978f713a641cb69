/* cross_check.c — the argument check of the cross-attention op (cross_example.h), made
 * before anything is read, and the output slots of its list. */
#include "ops/cross_example.h"

float **am_cross_output_slot(am_cross_output_t *out, unsigned bit) {
#define AM_CROSS_SLOT_(name, field, needs)                                                 \
  if (bit == AM_CROSS_##name)                                                              \
    return &out->field;
  AM_CROSS_OUTPUT_LIST(AM_CROSS_SLOT_)
#undef AM_CROSS_SLOT_
  return NULL;
}

/* The AM_CROSS_NEEDS_* bits of the wanted outputs; 0 with an output missing (*ok = 0). */
static unsigned wanted_needs(unsigned want, const am_cross_output_t *out, int *ok) {
  unsigned needs = 0;
  *ok = (want & ~((1u << AM_CROSS_OUTPUT_COUNT) - 1u)) == 0;
#define AM_CROSS_NEED_(name, field, need)                                                  \
  if (want & AM_CROSS_##name) {                                                            \
    needs |= (need);                                                                       \
    *ok = *ok && out->field != NULL;                                                       \
  }
  AM_CROSS_OUTPUT_LIST(AM_CROSS_NEED_)
#undef AM_CROSS_NEED_
  return needs;
}

am_status am_cross_check_example(const am_cross_example_t *ex, unsigned want,
                                 const am_pass_options_t *opt,
                                 const am_cross_output_t *out) {
  if (!ex || !opt || !out)
    return AM_STATUS_INVALID_ARGUMENT;
  const am_example_t *d = &ex->dec;
  int ok = 1;
  unsigned needs = wanted_needs(want, out, &ok);
  if (!ok || d->L < 1 || d->H < 1 || d->n < 0 || d->n > d->T || ex->Tenc < 1 ||
      ex->n_enc < 0 || ex->n_enc > ex->Tenc || !am_ops_float_dtype(d->dtype) ||
      !am_ops_float_dtype(ex->dtype) || d->nsteps < 0 || (d->nsteps > 0 && !d->steps))
    return AM_STATUS_INVALID_ARGUMENT;
  if (opt->fusion != AM_FUSION_MEAN && opt->fusion != AM_FUSION_MAX &&
      opt->fusion != AM_FUSION_MIN)
    return AM_STATUS_INVALID_ARGUMENT;
  for (int s = 0; s < d->nsteps; s++)
    if (d->steps[s] < 0 || d->steps[s] >= d->n)
      return AM_STATUS_INVALID_ARGUMENT;
  if (d->n == 0 || d->nsteps == 0 || want == 0)
    return AM_STATUS_OK; /* nothing is read */
  if (!d->att || !ex->cross || !d->idx || (ex->n_enc > 0 && !ex->enc_idx) ||
      ((needs & AM_CROSS_NEEDS_GRAD) && !d->grad && !d->step_grad) ||
      ((needs & AM_CROSS_NEEDS_CROSS_GRAD) && !ex->cross_grad && !ex->step_cross_grad))
    return AM_STATUS_INVALID_ARGUMENT;
  for (int l = 0; l < d->L; l++)
    if (!d->att[l] || !ex->cross[l] || (d->grad && !d->grad[l]) ||
        (ex->cross_grad && !ex->cross_grad[l]) || (d->step_grad && !d->step_grad[l]) ||
        (ex->step_cross_grad && !ex->step_cross_grad[l]))
      return AM_STATUS_INVALID_ARGUMENT;
  if (!am_ops_positions_ok(d->idx, d->n, d->T, 0, 0u) ||
      !am_ops_positions_ok(ex->enc_idx, ex->n_enc, ex->Tenc, 0, 0u))
    return AM_STATUS_INVALID_ARGUMENT;
  return AM_STATUS_OK;
}
