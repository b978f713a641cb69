/* long_dataset.c — see long_dataset.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/dataset_builder.h"
#include "support/long_dataset.h"

void lcd_attention_json(const lc_case_t *c, char *buf, size_t len) {
  char window[32] = "null", cap[32] = "null";
  if (c->attn.sliding_window > 0)
    snprintf(window, sizeof window, "%d", c->attn.sliding_window);
  if (c->attn.softcap > 0)
    snprintf(cap, sizeof cap, "%.17g", c->attn.softcap);
  snprintf(buf, len,
           "{\"scale\": %.17g, \"causal\": %s, \"sliding_window\": %s, "
           "\"softcap\": %s}",
           c->attn.scale, c->attn.causal ? "true" : "false", window, cap);
}

typedef struct batch {
  int B, L;
  lc_data_t *x; /* [B] */
} batch_t;

/* Copies block (l, b) of every example's per-layer tensors into [B, ...] layer tensors:
 * src of example b holds L blocks of `block` bytes. */
static void *stack(const batch_t *bt, int which, size_t block, int l) {
  unsigned char *dst = malloc((size_t)bt->B * block);
  for (int b = 0; dst && b < bt->B; b++) {
    const lc_data_t *x = &bt->x[b];
    const void *src[6] = {x->q, x->k, x->v, x->dout, x->att, x->grad};
    memcpy(dst + (size_t)b * block, (const unsigned char *)src[which] + (size_t)l * block,
           block);
  }
  return dst;
}

static int write_form(const batch_t *bt, const lc_case_t *c, int matrix, int grads,
                      const char *path, int64_t *mask) {
  static const char *names[6] = {"queries",    "keys",
                                 "values",     "attention_output_grads",
                                 "attentions", "attention_grads"};
  int L = c->L, n = 0, rc = -1;
  size_t es = c->dtype == AM_DTYPE_F32 ? 4 : 2;
  am_named_tensor_t *list = calloc((size_t)(4 * L + 1), sizeof *list);
  char(*nm)[48] = calloc((size_t)(4 * L), sizeof *nm);
  void **bufs = calloc((size_t)(4 * L), sizeof *bufs);
  if (!list || !nm || !bufs)
    goto done;
  for (int which = matrix ? 4 : 0; which < (matrix ? 6 : 4); which++) {
    if ((which == 3 || which == 5) && !grads)
      continue;
    int heads = which == 1 || which == 2 ? c->Hkv : c->H, inner = matrix ? c->T : c->d;
    size_t block = (size_t)heads * c->T * inner * (matrix ? 4 : es);
    for (int l = 0; l < L; l++) {
      snprintf(nm[n], sizeof nm[n], "%s.%d", names[which], l);
      if (!(bufs[n] = stack(bt, which, block, l)))
        goto done;
      list[n] = (am_named_tensor_t){nm[n],
                                    {matrix ? AM_DTYPE_F32 : c->dtype,
                                     4,
                                     {bt->B, heads, c->T, inner},
                                     bufs[n],
                                     (size_t)bt->B * block}};
      n++;
    }
  }
  list[n++] = (am_named_tensor_t){
      "attention_mask",
      {AM_DTYPE_I64, 2, {bt->B, c->T}, mask, (size_t)bt->B * c->T * sizeof *mask}};
  char json[256];
  lcd_attention_json(c, json, sizeof json);
  const char *meta[] = {"attnmap.attention", json};
  rc = dsb_write_list(path, list, n, meta, matrix ? 0 : 1);
done:
  for (int k = 0; bufs && k < 4 * L; k++)
    free(bufs[k]);
  free(bufs);
  free(nm);
  free(list);
  return rc;
}

int lcd_write(const lc_case_t *c, int B, int grads, const char *long_path,
              const char *matrix_path) {
  batch_t bt = {B, c->L, calloc((size_t)B, sizeof(lc_data_t))};
  int64_t *mask = calloc((size_t)B * c->T, sizeof *mask);
  int rc = bt.x && mask ? 0 : -1;
  for (int b = 0; b < B && rc == 0; b++) {
    lc_case_t one = *c;
    one.seed = c->seed * 1000 + (uint64_t)b;
    one.pad_left = b % 2 ? b : 0;
    one.pad_right = b % 2 ? 0 : b;
    one.hole_every = 0;
    rc = b < c->T && lc_data_make(&bt.x[b], &one) == 0 ? 0 : -1;
    for (int i = 0; rc == 0 && i < bt.x[b].n; i++)
      mask[(size_t)b * c->T + bt.x[b].idx[i]] = 1;
  }
  if (rc == 0 && long_path)
    rc = write_form(&bt, c, 0, grads, long_path, mask);
  if (rc == 0 && matrix_path)
    rc = write_form(&bt, c, 1, grads, matrix_path, mask);
  for (int b = 0; bt.x && b < B; b++)
    lc_data_free(&bt.x[b]);
  free(bt.x);
  free(mask);
  return rc;
}
