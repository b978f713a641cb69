/* examples_file.c — the tensors of RUN/examples.safetensors (docs/design.md §4) and the
 * writing of one chunk's rows into them: valid-token results scattered back to their padded
 * positions, padding 0, rows at their global index. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "pipeline/chunk.h"
#include "pipeline/cross_run.h"
#include "pipeline/steps.h"

int am_layout_add_spec(am_layout_t *lay, const char *name, am_dtype dtype, int ndim,
                       int64_t d0, int64_t d1, int64_t d2) {
  int i = lay->nspecs++;
  snprintf(lay->spec_names[i], sizeof lay->spec_names[i], "%s", name);
  am_tensor_spec_t *s = &lay->specs[i];
  s->name = lay->spec_names[i];
  s->dtype = dtype;
  s->ndim = ndim;
  s->shape[0] = d0;
  s->shape[1] = d1;
  s->shape[2] = d2;
  return i;
}

am_status am_layout_specs(am_ctx_t *ctx, am_layout_t *lay) {
  (void)ctx;
  int64_t N = lay->N, T = lay->T;
  lay->spec_rows_rollout = lay->spec_rows_grad = lay->spec_stat0 = -1;
  lay->spec_importance = lay->spec_metric0 = lay->spec_labels = lay->spec_predictions = -1;
  lay->spec_ids = lay->spec_special = -1;
  lay->spec_mask = am_layout_add_spec(lay, "mask", AM_DTYPE_U8, 2, N, T, 0);
  lay->spec_lengths = am_layout_add_spec(lay, "lengths", AM_DTYPE_I32, 1, N, 0, 0);
  lay->spec_map0 = lay->nspecs;
  for (int m = 0; m < lay->nmaps; m++)
    am_layout_add_spec(lay, lay->maps[m].name, AM_DTYPE_F32, 2, N, T, 0);
  if (lay->pass.want & AM_PASS_ROLLOUT_ROWS)
    lay->spec_rows_rollout =
        am_layout_add_spec(lay, "rollout.rows", AM_DTYPE_F32, 3, N, T, T);
  if (lay->pass.want & AM_PASS_GRAD_ROLLOUT_ROWS)
    lay->spec_rows_grad =
        am_layout_add_spec(lay, "grad_rollout.rows", AM_DTYPE_F32, 3, N, T, T);
  if (lay->head_stats) {
    lay->spec_stat0 = lay->nspecs;
    for (int s = 0; s < AM_STAT_COUNT; s++) {
      char name[64];
      snprintf(name, sizeof name, "head.%s", am_stat_name((am_stat)s));
      am_layout_add_spec(lay, name, AM_DTYPE_F32, 3, N, lay->L, lay->H);
    }
  }
  if (lay->head_importance)
    lay->spec_importance =
        am_layout_add_spec(lay, "head.importance", AM_DTYPE_F32, 3, N, lay->L, lay->H);
  if (lay->npairs > 0) {
    lay->spec_metric0 = lay->nspecs;
    for (int k = 0; k < AM_METRIC_COUNT; k++) {
      char metric[48], name[64];
      am_layout_metric_name(lay, k, metric, sizeof metric);
      snprintf(name, sizeof name, "agreement.%s", metric);
      am_layout_add_spec(lay, name, AM_DTYPE_F32, 2, N, lay->npairs, 0);
    }
  }
  if (lay->has_labels)
    lay->spec_labels = am_layout_add_spec(lay, "labels", AM_DTYPE_I32, 1, N, 0, 0);
  if (lay->has_predictions)
    lay->spec_predictions =
        am_layout_add_spec(lay, "predictions", AM_DTYPE_I32, 1, N, 0, 0);
  /* The token-level inputs of the aggregates, so that a merge can recompute them. */
  if (lay->has_ids)
    lay->spec_ids = am_layout_add_spec(lay, "input_ids", AM_DTYPE_I32, 2, N, T, 0);
  if (lay->has_special)
    lay->spec_special =
        am_layout_add_spec(lay, "special_tokens_mask", AM_DTYPE_U8, 2, N, T, 0);
  if (lay->several)
    am_layout_step_specs(lay);
  am_layout_cross_specs(lay);
  return AM_STATUS_OK;
}

/* Scatters map m of every example of the chunk into c->padded [nex, Tout]. */
static void pad_map(am_chunk_t *c, int m) {
  int Tout = c->lay->T;
  memset(c->padded, 0, (size_t)c->nex * (size_t)Tout * sizeof *c->padded);
  for (int e = 0; e < c->nex; e++) {
    const float *v = am_chunk_map(c, m, e);
    const int32_t *idx = c->idx + (size_t)e * (size_t)c->Tcap;
    float *dst = c->padded + (size_t)e * (size_t)Tout;
    for (int i = 0; i < c->n[e]; i++)
      dst[idx[i]] = v[i];
  }
}

static void pad_rows(am_chunk_t *c, const float *rows) {
  size_t Tout = (size_t)c->lay->T, Tc = (size_t)c->Tcap;
  memset(c->padded_rows, 0, (size_t)c->nex * Tout * Tout * sizeof *c->padded_rows);
  for (int e = 0; e < c->nex; e++) {
    const int32_t *idx = c->idx + (size_t)e * Tc;
    const float *src = rows + (size_t)e * Tc * Tc;
    float *dst = c->padded_rows + (size_t)e * Tout * Tout;
    int n = c->n[e];
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++)
        dst[(size_t)idx[i] * Tout + (size_t)idx[j]] =
            src[(size_t)i * (size_t)n + (size_t)j];
  }
}

/* Writes `per_row` bytes per example of tensor spec from buf. */
static am_status put_rows(am_chunk_t *c, am_st_writer_t *w, int spec, const void *buf,
                          size_t per_row) {
  return am_st_writer_put(w, spec, (uint64_t)c->global0 * per_row, buf,
                          (size_t)c->nex * per_row);
}

static am_status write_heads(am_chunk_t *c, am_st_writer_t *w) {
  const am_layout_t *lay = c->lay;
  size_t LH = (size_t)lay->L * (size_t)lay->H;
  am_status st = AM_STATUS_OK;
  for (int s = 0; lay->head_stats && s < AM_STAT_COUNT && st == AM_STATUS_OK; s++) {
    for (int e = 0; e < c->nex; e++)
      memcpy(c->padded + (size_t)e * LH, c->stats + ((size_t)e * AM_STAT_COUNT + s) * LH,
             LH * sizeof(float));
    st = put_rows(c, w, lay->spec_stat0 + s, c->padded, LH * sizeof(float));
  }
  if (st == AM_STATUS_OK && lay->head_importance)
    st = put_rows(c, w, lay->spec_importance, c->importance, LH * sizeof(float));
  return st;
}

static am_status write_agreement(am_chunk_t *c, am_st_writer_t *w) {
  const am_layout_t *lay = c->lay;
  size_t P = (size_t)lay->npairs;
  am_status st = AM_STATUS_OK;
  for (int k = 0; P && k < AM_METRIC_COUNT && st == AM_STATUS_OK; k++) {
    for (int e = 0; e < c->nex; e++)
      for (size_t p = 0; p < P; p++)
        c->padded[(size_t)e * P + p] =
            (float)c->agree[((size_t)e * P + p) * AM_METRIC_COUNT + (size_t)k];
    st = put_rows(c, w, lay->spec_metric0 + k, c->padded, P * sizeof(float));
  }
  return st;
}

/* input_ids and special_tokens_mask at their padded positions (padding 0). */
static am_status write_tokens(am_chunk_t *c, am_st_writer_t *w) {
  const am_layout_t *lay = c->lay;
  size_t Tout = (size_t)lay->T, Tc = (size_t)c->Tcap;
  am_status st = AM_STATUS_OK;
  if (lay->spec_ids >= 0) {
    int32_t *ids = (int32_t *)(void *)c->padded;
    memset(ids, 0, (size_t)c->nex * Tout * sizeof *ids);
    for (int e = 0; e < c->nex; e++)
      for (int i = 0; i < c->n[e]; i++)
        ids[(size_t)e * Tout + (size_t)c->idx[(size_t)e * Tc + (size_t)i]] =
            c->ids[(size_t)e * Tc + (size_t)i];
    st = put_rows(c, w, lay->spec_ids, ids, Tout * sizeof *ids);
  }
  if (st == AM_STATUS_OK && lay->spec_special >= 0) {
    memset(c->mask_out, 0, (size_t)c->nex * Tout);
    for (int e = 0; e < c->nex; e++)
      for (int i = 0; i < c->n[e]; i++)
        c->mask_out[(size_t)e * Tout + (size_t)c->idx[(size_t)e * Tc + (size_t)i]] =
            c->special[(size_t)e * Tc + (size_t)i];
    st = put_rows(c, w, lay->spec_special, c->mask_out, Tout);
  }
  return st;
}

am_status am_chunk_write(am_ctx_t *ctx, am_chunk_t *c, am_st_writer_t *w) {
  (void)ctx;
  const am_layout_t *lay = c->lay;
  size_t Tout = (size_t)lay->T;
  memset(c->mask_out, 0, (size_t)c->nex * Tout);
  for (int e = 0; e < c->nex; e++)
    for (int i = 0; i < c->n[e]; i++)
      c->mask_out[(size_t)e * Tout + (size_t)c->idx[(size_t)e * (size_t)c->Tcap + i]] = 1;
  am_status st = put_rows(c, w, lay->spec_mask, c->mask_out, Tout);
  for (int e = 0; e < c->nex; e++)
    ((int32_t *)(void *)c->padded)[e] = c->n[e];
  if (st == AM_STATUS_OK)
    st = put_rows(c, w, lay->spec_lengths, c->padded, sizeof(int32_t));
  for (int m = 0; m < lay->nmaps && st == AM_STATUS_OK; m++) {
    pad_map(c, m);
    st = put_rows(c, w, lay->spec_map0 + m, c->padded, Tout * sizeof(float));
  }
  if (st == AM_STATUS_OK && lay->spec_rows_rollout >= 0) {
    pad_rows(c, c->rows_rollout);
    st =
        put_rows(c, w, lay->spec_rows_rollout, c->padded_rows, Tout * Tout * sizeof(float));
  }
  if (st == AM_STATUS_OK && lay->spec_rows_grad >= 0) {
    pad_rows(c, c->rows_grad);
    st = put_rows(c, w, lay->spec_rows_grad, c->padded_rows, Tout * Tout * sizeof(float));
  }
  if (st == AM_STATUS_OK)
    st = write_heads(c, w);
  if (st == AM_STATUS_OK)
    st = write_agreement(c, w);
  if (st == AM_STATUS_OK)
    st = write_tokens(c, w);
  if (st == AM_STATUS_OK && lay->spec_labels >= 0)
    st = put_rows(c, w, lay->spec_labels, c->labels, sizeof(int32_t));
  if (st == AM_STATUS_OK && lay->spec_predictions >= 0)
    st = put_rows(c, w, lay->spec_predictions, c->predictions, sizeof(int32_t));
  if (st == AM_STATUS_OK && c->steps)
    st = am_steps_write(ctx, c, w);
  if (st == AM_STATUS_OK && c->cross)
    st = am_cross_chunk_write(ctx, c, w);
  return st;
}

static json_t *metadata_pairs(const am_layout_t *lay) {
  json_t *pairs = json_array();
  for (int p = 0; p < lay->npairs; p++)
    json_array_append_new(pairs, json_string(lay->pair_names[p]));
  return pairs;
}

am_status am_examples_writer_open(am_ctx_t *ctx, const char *dir, const am_layout_t *lay,
                                  const char *model, int resume, am_st_writer_t **out) {
  char path[4200];
  snprintf(path, sizeof path, "%s/examples.safetensors", dir);
  json_t *pairs = metadata_pairs(lay);
  char *pairs_text = json_dumps(pairs, JSON_COMPACT);
  json_decref(pairs);
  const char *meta[] = {"attnmap.pairs",   pairs_text ? pairs_text : "[]",
                        "attnmap.version", am_version(),
                        "model",           model ? model : ""};
  am_status st = (resume ? am_st_writer_resume : am_st_writer_open)(
      ctx, path, lay->specs, lay->nspecs, meta, model ? 3 : 2, out);
  free(pairs_text);
  return st;
}
