/* cross_dataset.h — a small encoder-decoder dataset for the tests (docs/generation.md,
 * "Encoder-decoder models"): the dataset builder's decoder (attentions.{l},
 * attention_grads.{l}) plus cross_attentions.{l}, cross_attention_grads.{l},
 * step_cross_attention_grads.{l} (S_in = 2), encoder_attention_mask and encoder_input_ids,
 * as F32/I64 master copies a test may edit before writing (dsb_write_list of ds->list). */
#ifndef TESTS_SUPPORT_CROSS_DATASET_H
#define TESTS_SUPPORT_CROSS_DATASET_H

#include <stdint.h>

#include "support/dataset_builder.h"

enum { XDS_L = 2, XDS_H = 2, XDS_B = 2, XDS_T = 5, XDS_TE = 6 };

/* Example b has 5 - 2b valid decoder tokens and 4 - b valid source tokens from position 1;
 * cross-attention rows uniform over them, gradients a fixed pattern. */
typedef struct xds {
  dsb_t *ds; /* free with dsb_free */
  float cross[XDS_L][XDS_B * XDS_H * XDS_T * XDS_TE],
      cgrad[XDS_L][XDS_B * XDS_H * XDS_T * XDS_TE];
  int64_t emask[XDS_B * XDS_TE], eids[XDS_B * XDS_TE];
  float sgrad[XDS_L][XDS_B * 2 * XDS_H * XDS_T * XDS_TE]; /* S_in = 2 */
  char names[3 * XDS_L][32];
  int n; /* tensors in ds->list */
} xds_t;

/* Builds it; 0 on success. */
int xds_make(xds_t *x);

#endif
