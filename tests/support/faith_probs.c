/* faith_probs.c — see faith_probs.h. The numbers are multiples of 1/16 (exact in F32), so
 * each expected score in tests/test_faithfulness.c follows by hand:
 *   p_full = 0.75 for examples 0..2.
 *   comprehensiveness (p_full - p_removed), bins {10, 50}:
 *     attention_last: {0.25 + e, 0.5 + e} with e = 0, +0.125, -0.125 for examples 0, 1, 2
 *                     -> AOPC 0.375, 0.5, 0.25: mean 0.375, sd 0.125 (m2 0.03125)
 *     rollout:        {0.125, 0.25}  -> AOPC 0.1875 in every example (sd 0)
 *     random:         {0, 0.0625}    -> AOPC 0.03125
 *   sufficiency (p_full - p_kept):
 *     attention_last {0.125, 0} (AOPC 0.0625), rollout {0.25, 0.125} (0.1875),
 *     random {0.5, 0.5} (0.5).
 *   deletion: 0.75 at 0%, then 0.5 (attention_last, rollout) or 0.75 (random): area
 *     0.1*(0.75+0.5)/2 + 0.9*0.5 = 0.5125, random 0.75.
 *   insertion: 0 at 0%, then 0.75: area 0.1*0.75/2 + 0.9*0.75 = 0.7125 for every map.
 *   target classes {1, 0, 1, 0}; tokens {4, 4, 2, 0}: example 3 holds NaN. */
#include "support/faith_probs.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnmap.h"
#include "support/dataset_builder.h"

void fp_default(fp_probs_t *p) {
  memset(p, 0, sizeof *p);
  static const float comp[FP_M][FP_K] = {{0.25f, 0.5f}, {0.125f, 0.25f}, {0, 0.0625f}};
  static const float suff[FP_M][FP_K] = {{0.125f, 0}, {0.25f, 0.125f}, {0.5f, 0.5f}};
  static const float e[3] = {0, 0.125f, -0.125f};
  static const int32_t target[FP_N] = {1, 0, 1, 0}, tokens[FP_N] = {4, 4, 2, 0};
  for (int i = 0; i < FP_N; i++) {
    int none = tokens[i] == 0;
    p->p_full[i] = none ? NAN : 0.75f;
    p->target[i] = target[i];
    p->tokens[i] = tokens[i];
    for (int m = 0; m < FP_M; m++) {
      for (int k = 0; k < FP_K; k++) {
        float c = comp[m][k] + (m == 0 && !none ? e[i] : 0);
        p->p_removed[i][m][k] = none ? NAN : 0.75f - c;
        p->p_kept[i][m][k] = none ? NAN : 0.75f - suff[m][k];
      }
      for (int s = 0; s < FP_S; s++) {
        p->del[i][m][s] = none ? NAN : s == 0 ? 0.75f : (m == 2 ? 0.75f : 0.5f);
        p->ins[i][m][s] = none ? NAN : s == 0 ? 0.0f : 0.75f;
      }
    }
  }
  p->run_n = -1;
}

static am_tensor_t t3(const void *data, int n, int a, int b) {
  am_tensor_t t = {.dtype = AM_DTYPE_F32, .ndim = 3, .data = data};
  t.shape[0] = n;
  t.shape[1] = a;
  t.shape[2] = b;
  t.nbytes = (size_t)n * a * b * 4;
  return t;
}

static am_tensor_t t1(const void *data, int n, am_dtype dt) {
  am_tensor_t t = {.dtype = dt, .ndim = 1, .data = data, .nbytes = (size_t)n * 4};
  t.shape[0] = n;
  return t;
}

int fp_write(const fp_probs_t *p, const char *run_dir, int begin, int end,
             const char *path) {
  int n = end - begin;
  char sp[600], meta[2048];
  json_t *sum = json_load_file(dsb_join(sp, sizeof sp, run_dir, "summary.json"), 0, NULL);
  const json_t *rec = json_object_get(
      json_object_get(json_object_get(sum, "provenance"), "files"), "examples.safetensors");
  if (!rec) {
    json_decref(sum);
    return -1;
  }
  snprintf(
      meta, sizeof meta,
      "{\"version\":1,\"maps\":%s,\"bins\":%s,\"steps\":[0,10,20,30,40,50,60,70,80,"
      "90,100],\"mode\":%s,\"seed\":0,\"target\":\"predicted\",\"k_rounding\":\"ceil\","
      "\"run\":{\"N\":%lld,\"examples_bytes\":%lld,\"examples_crc32c\":\"%s\"},"
      "\"model\":%s,\"forwards\":0,\"seconds\":0}",
      p->maps ? p->maps : "[\"attention_last\",\"rollout\",\"random\"]",
      p->bins ? p->bins : "[10,50]", p->mode ? p->mode : "\"delete\"",
      (long long)(p->run_n >= 0 ? p->run_n : n),
      (long long)json_integer_value(json_object_get(rec, "bytes")),
      p->crc ? p->crc : json_string_value(json_object_get(rec, "crc32c")),
      p->model ? p->model : "\"hand-made\"");
  json_decref(sum);
  int rk = p->removed_k > 0 ? p->removed_k : FP_K;
  float *removed = calloc((size_t)n * FP_M * rk, sizeof(float));
  float tf[FP_N];
  for (int i = 0; i < n; i++) {
    tf[i] = (float)p->target[begin + i];
    for (int m = 0; m < FP_M; m++)
      for (int k = 0; k < rk; k++)
        removed[(i * FP_M + m) * rk + k] = p->p_removed[begin + i][m][k % FP_K];
  }
  am_named_tensor_t list[7] = {
      {"faithfulness.p_full", t1(&p->p_full[begin], n, AM_DTYPE_F32)},
      {"faithfulness.p_removed", t3(removed, n, FP_M, rk)},
      {"faithfulness.p_kept", t3(p->p_kept[begin], n, FP_M, FP_K)},
      {"faithfulness.deletion", t3(p->del[begin], n, FP_M, FP_S)},
      {"faithfulness.insertion", t3(p->ins[begin], n, FP_M, FP_S)},
      {"faithfulness.target",
       p->target_f32 ? t1(tf, n, AM_DTYPE_F32) : t1(&p->target[begin], n, AM_DTYPE_I32)},
      {"faithfulness.tokens", t1(&p->tokens[begin], n, AM_DTYPE_I32)},
  };
  int count = 7;
  if (p->drop > 0) {
    memmove(&list[p->drop - 1], &list[p->drop], (size_t)(7 - p->drop) * sizeof list[0]);
    count--;
  }
  const char *kv[2] = {"attnmap.faithfulness", p->meta ? p->meta : meta};
  int none = p->meta && !*p->meta; /* no metadata at all */
  int rc = dsb_write_list(path, list, count, none ? NULL : kv, none ? 0 : 1);
  free(removed);
  return rc;
}
