/* batch_extras.c — what a live batch carries besides the analysed arrays (input ids,
 * labels, predictions, token strings), bound to its one-shard dataset exactly as a shard
 * file's tensors and attnmap.tokens would be, with the shard's checks. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/half.h"
#include "pipeline/arrays_ds.h"

static int is_int(am_dtype t) {
  return t == AM_DTYPE_BOOL || (t >= AM_DTYPE_I8 && t <= AM_DTYPE_U64);
}

/* An integer array of B (ndim 1) or [B,T] values; values of labels and predictions must
 * fit in 32 bits, as a shard's must. */
static am_status bind_int(am_ctx_t *ctx, am_arrays_ds_t *a, const void *data,
                          am_dtype dtype, int ndim, const char *name, const char *lb,
                          am_tensor_t *view, const am_tensor_t **slot) {
  if (!data)
    return AM_STATUS_OK;
  if (!is_int(dtype))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: dtype %s is not an integer type", lb, name,
                   am_dtype_name(dtype) ? am_dtype_name(dtype) : "unknown");
  int64_t B = a->sh.B, T = a->sh.T;
  *view = (am_tensor_t){.dtype = dtype, .ndim = ndim, .data = data};
  view->shape[0] = B;
  view->shape[1] = ndim == 2 ? T : 0;
  view->nbytes = (size_t)(B * (ndim == 2 ? T : 1)) * am_dtype_size(dtype);
  for (int64_t b = 0; ndim == 1 && b < B; b++) {
    int64_t v = am_load_int(data, dtype, b);
    if (v < INT32_MIN || v > INT32_MAX)
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor %s: value %lld at example %lld does not fit in 32 bits",
                     lb, name, (long long)v, (long long)b);
  }
  *slot = view;
  return AM_STATUS_OK;
}

/* The tokens as a shard's attnmap.tokens: B arrays of T strings (one per position) or of
 * the example's valid tokens. */
static am_status bind_tokens(am_ctx_t *ctx, am_arrays_ds_t *a, const am_batch_extras_t *x,
                             const char *lb) {
  const int64_t *off = x->token_offsets;
  int64_t B = a->sh.B;
  if (!off)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: tokens: token_offsets missing (B+1 offsets into tokens)", lb);
  int32_t *idx = malloc(((size_t)a->sh.T + 1) * sizeof *idx);
  json_t *all = json_array();
  am_status st = idx && all ? AM_STATUS_OK : am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "oom");
  for (int64_t b = 0; st == AM_STATUS_OK && b < B; b++) {
    int64_t len = off[b + 1] - off[b];
    int n = am_shard_valid_positions(&a->sh, b, idx);
    if (off[0] != 0 || len < 0 || (len != a->sh.T && len != n)) {
      st = am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tokens: example %lld has %lld strings, expected T=%d (one per "
                   "position) or %d (one per valid token)",
                   lb, (long long)b, (long long)len, a->sh.T, n);
      break;
    }
    json_t *row = json_array();
    for (int64_t i = 0; row && i < len && st == AM_STATUS_OK; i++) {
      const char *s = x->tokens[off[b] + i];
      json_t *str = s ? json_string(s) : NULL;
      if (!str)
        st = am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tokens: example %lld, token %lld is %s",
                     lb, (long long)b, (long long)i, s ? "not valid UTF-8" : "NULL");
      else
        json_array_append_new(row, str);
    }
    if (st == AM_STATUS_OK && (!row || json_array_append_new(all, row) != 0))
      st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
    else if (st != AM_STATUS_OK)
      json_decref(row);
  }
  free(idx);
  if (st != AM_STATUS_OK) {
    json_decref(all);
    return st;
  }
  a->sh.tokens = all;
  a->ds.roles |= AM_ROLE_TOKENS;
  return AM_STATUS_OK;
}

am_status am_arrays_ds_bind_extras(am_ctx_t *ctx, am_arrays_ds_t *a,
                                   const am_batch_extras_t *x, const char *lb) {
  if (!x)
    return AM_STATUS_OK;
  am_status st = bind_int(ctx, a, x->input_ids, x->input_ids_dtype, 2, "input_ids", lb,
                          &a->ids, &a->sh.ids);
  if (st == AM_STATUS_OK)
    st = bind_int(ctx, a, x->labels, x->labels_dtype, 1, "labels", lb, &a->labels,
                  &a->sh.labels);
  if (st == AM_STATUS_OK)
    st = bind_int(ctx, a, x->predictions, x->predictions_dtype, 1, "predictions", lb,
                  &a->predictions, &a->sh.predictions);
  if (st == AM_STATUS_OK && x->tokens)
    st = bind_tokens(ctx, a, x, lb);
  if (st != AM_STATUS_OK)
    return st;
  a->ds.roles |= (a->sh.ids ? AM_ROLE_INPUT_IDS : 0u) |
                 (a->sh.labels ? AM_ROLE_LABELS : 0u) |
                 (a->sh.predictions ? AM_ROLE_PREDICTIONS : 0u);
  return AM_STATUS_OK;
}
