/* long_dataset.h — a long-context dataset and its matrix-form twin, written by C code for
 * the tests: B examples of one lc_case_t shape (long_inputs.h), example b with its own
 * seed and padding (b tokens of padding, on the left for odd b, on the right for even b),
 * stored once as queries.{l}, keys.{l}, values.{l}, attention_output_grads.{l} with
 * attnmap.attention, and once as attentions.{l} and attention_grads.{l} (F32) formed from
 * the same values; both with attention_mask. */
#ifndef TESTS_SUPPORT_LONG_DATASET_H
#define TESTS_SUPPORT_LONG_DATASET_H

#include "support/long_inputs.h"

/* Either path may be NULL (not written). grads 0: no attention_output_grads /
 * attention_grads. 0 on success. */
int lcd_write(const lc_case_t *c, int B, int grads, const char *long_path,
              const char *matrix_path);

/* The attnmap.attention JSON of c into buf. */
void lcd_attention_json(const lc_case_t *c, char *buf, size_t len);

#endif
