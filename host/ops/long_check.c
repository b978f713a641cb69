/* long_check.c — what every backend checks before a long-context pass reads anything
 * (long_example.h), and which options the long-context form refuses. */
#include <math.h>

#include "ops/long_example.h"

const char *am_lc_refusal(const am_pass_options_t *opt) {
  if (opt->want & (AM_PASS_ROLLOUT_ROWS | AM_PASS_GRAD_ROLLOUT_ROWS))
    return "--all-rows writes T x T matrices, which the long-context form (queries/keys/"
           "values) never forms";
  if (opt->want & AM_PASS_ROLLOUT && opt->fusion != AM_FUSION_MEAN)
    return "head fusion max/min needs the attention matrices; the long-context form "
           "(queries/keys/values) computes rollout with --fusion mean only";
  if (opt->want & AM_PASS_ROLLOUT && opt->discard != 0.0)
    return "--discard ranks every weight of a fused layer, which needs the attention "
           "matrices; the long-context form (queries/keys/values) takes --discard 0 only";
  return NULL;
}

static int spec_ok(const am_attention_spec_t *a) {
  return isfinite(a->scale) && a->scale > 0.0 && (a->causal == 0 || a->causal == 1) &&
         a->sliding_window >= 0 && isfinite(a->softcap) && a->softcap >= 0.0;
}

static int layers_ok(const void *const *p, int L) {
  if (!p)
    return 0;
  for (int l = 0; l < L; l++)
    if (!p[l])
      return 0;
  return 1;
}

am_status am_lc_check_example(const am_lc_example_t *ex, const am_pass_options_t *opt,
                              const am_pass_output_t *out) {
  if (!ex || !opt || !out || ex->L < 1 || ex->H < 1 || ex->Hkv < 1 || ex->H % ex->Hkv ||
      ex->d < 1 || ex->n < 0 || ex->n > ex->T || !spec_ok(&ex->attn) ||
      (ex->dtype != AM_DTYPE_F32 && ex->dtype != AM_DTYPE_F16 &&
       ex->dtype != AM_DTYPE_BF16))
    return AM_STATUS_INVALID_ARGUMENT;
  if (am_lc_refusal(opt))
    return AM_STATUS_INVALID_ARGUMENT;
  unsigned w = opt->want;
  if (!am_ops_outputs_present(w, out))
    return AM_STATUS_INVALID_ARGUMENT;
  if (ex->n == 0)
    return AM_STATUS_OK;
  if (!ex->idx || !layers_ok(ex->q, ex->L) || !layers_ok(ex->k, ex->L) ||
      !layers_ok(ex->v, ex->L) || (ex->dout && !layers_ok(ex->dout, ex->L)) ||
      (w & am_pass_needing(AM_NEEDS_GRAD) && !ex->dout))
    return AM_STATUS_INVALID_ARGUMENT;
  if (!am_ops_positions_ok(ex->idx, ex->n, ex->T, ex->target, w))
    return AM_STATUS_INVALID_ARGUMENT;
  return AM_STATUS_OK;
}
