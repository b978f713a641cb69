/* cross_dataset.c — see cross_dataset.h. */
#include "support/cross_dataset.h"

#include <stdio.h>

enum { L = XDS_L, H = XDS_H, B = XDS_B, T = XDS_T, TE = XDS_TE };

int xds_make(xds_t *x) {
  static const int lengths[B] = {5, 3};
  dsb_spec_t spec = {.L = L,
                     .H = H,
                     .B = B,
                     .T = T,
                     .lengths = lengths,
                     .grads = 1,
                     .per_layer = 1,
                     .seed = 7};
  x->ds = dsb_build(&spec);
  if (!x->ds)
    return -1;
  for (int b = 0; b < B; b++)
    for (int p = 0; p < TE; p++) {
      x->emask[b * TE + p] = p >= 1 && p < 1 + 4 - b;
      x->eids[b * TE + p] = 100 + p;
    }
  for (int l = 0; l < L; l++)
    for (int k = 0; k < B * H * T * TE; k++) {
      int b = k / (H * T * TE), p = k % TE;
      x->cross[l][k] = x->emask[b * TE + p] ? 1.0f / (float)(4 - b) : 0.0f;
      x->cgrad[l][k] = 0.5f - (float)(k % 7) * 0.1f;
    }
  x->n = dsb_tensors(x->ds);
  for (int l = 0; l < L; l++) {
    snprintf(x->names[2 * l], 32, "cross_attentions.%d", l);
    snprintf(x->names[2 * l + 1], 32, "cross_attention_grads.%d", l);
    am_tensor_t t = {.dtype = AM_DTYPE_F32,
                     .ndim = 4,
                     .shape = {B, H, T, TE},
                     .nbytes = sizeof x->cross[l]};
    t.data = x->cross[l];
    x->ds->list[x->n++] = (am_named_tensor_t){x->names[2 * l], t};
    t.data = x->cgrad[l];
    x->ds->list[x->n++] = (am_named_tensor_t){x->names[2 * l + 1], t};
  }
  for (int l = 0; l < L; l++) {
    for (int k = 0; k < B * 2 * H * T * TE; k++)
      x->sgrad[l][k] = (float)(k % 5) * 0.25f;
    snprintf(x->names[2 * L + l], 32, "step_cross_attention_grads.%d", l);
    am_tensor_t t = {.dtype = AM_DTYPE_F32,
                     .ndim = 5,
                     .shape = {B, 2, H, T, TE},
                     .data = x->sgrad[l],
                     .nbytes = sizeof x->sgrad[l]};
    x->ds->list[x->n++] = (am_named_tensor_t){x->names[2 * L + l], t};
  }
  am_tensor_t m = {.dtype = AM_DTYPE_I64,
                   .ndim = 2,
                   .shape = {B, TE},
                   .data = x->emask,
                   .nbytes = sizeof x->emask};
  x->ds->list[x->n++] = (am_named_tensor_t){"encoder_attention_mask", m};
  m.data = x->eids;
  x->ds->list[x->n++] = (am_named_tensor_t){"encoder_input_ids", m};
  return 0;
}
