/* faith_probs.c — PROBS.safetensors (the contract of docs/faithfulness.md, "Files") read
 * and validated against the run it was made from, then scored (faith_scores.c). Every
 * refusal is one line naming the file, the tensor (or metadata key) and the problem. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "io/file.h"
#include "pipeline/faith.h"
#include "pipeline/run_folder.h"
#include "pipeline/summary.h"

/* The metadata keys that must be equal for runs to merge; the rest is provenance. */
static const char *const common_keys[] = {"version", "maps", "bins",   "steps",
                                          "mode",    "seed", "target", "k_rounding",
                                          "model",   "rank", "task",   NULL};

static const am_tensor_t *need(am_ctx_t *ctx, const am_file_t *pf, const char *name,
                               am_dtype dtype, int ndim, const int64_t *shape,
                               am_status *st) {
  const am_tensor_t *t = am_file_find(pf, name);
  if (!t) {
    *st =
        am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: missing", am_file_path(pf), name);
    return NULL;
  }
  int ok = t->dtype == dtype && t->ndim == ndim;
  for (int d = 0; ok && d < ndim; d++)
    ok = t->shape[d] == shape[d];
  if (!ok) {
    char want[64] = "";
    for (int d = 0; d < ndim; d++)
      snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? "," : "",
               (long long)shape[d]);
    *st = am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: expected %s [%s], found %s %dD",
                  am_file_path(pf), name, am_dtype_name(dtype), want,
                  am_dtype_name(t->dtype), t->ndim);
    return NULL;
  }
  return t;
}

/* The run's record of its examples file against the one PROBS was made from. */
static am_status check_run(am_ctx_t *ctx, const char *path, const json_t *meta,
                           const am_run_t *run) {
  const json_t *r = json_object_get(meta, "run");
  const json_t *rec =
      json_object_get(json_object_get(json_object_get(run->summary, "provenance"), "files"),
                      "examples.safetensors");
  const json_t *n = json_object_get(r, "N"), *bytes = json_object_get(r, "examples_bytes");
  const char *crc = json_string_value(json_object_get(r, "examples_crc32c"));
  if (!json_is_object(r) || !json_is_integer(n) || !json_is_integer(bytes) || !crc)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: metadata %s: run: not {\"N\", \"examples_bytes\", "
                   "\"examples_crc32c\"}",
                   path, AM_FAITH_META);
  if (json_integer_value(n) != run->lay.N)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: metadata %s: run.N: %lld examples, but %s holds %lld", path,
                   AM_FAITH_META, (long long)json_integer_value(n), run->dir,
                   (long long)run->lay.N);
  const char *want = json_string_value(json_object_get(rec, "crc32c"));
  if (!json_equal(bytes, json_object_get(rec, "bytes")) || !want || strcmp(want, crc) != 0)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: metadata %s: run: examples file %lld bytes, CRC-32C %.16s, but "
                   "%s/examples.safetensors is %lld bytes, %.16s: made from another run",
                   path, AM_FAITH_META, (long long)json_integer_value(bytes), crc, run->dir,
                   (long long)json_integer_value(json_object_get(rec, "bytes")),
                   want ? want : "(none)");
  return AM_STATUS_OK;
}

static float f32_at(const am_tensor_t *t, size_t i) {
  float v;
  memcpy(&v, (const char *)t->data + 4 * i, 4);
  return v;
}

static int32_t i32_at(const am_tensor_t *t, size_t i) {
  int32_t v;
  memcpy(&v, (const char *)t->data + 4 * i, 4);
  return v;
}

/* Probabilities [n] of example i (with tokens) in [0, 1]; copied into out. */
static am_status probs(am_ctx_t *ctx, const am_file_t *pf, const am_tensor_t *t,
                       const char *name, const am_faith_t *f, int64_t i, int per, int n,
                       float *out) {
  for (int j = 0; j < n; j++) {
    float v = f32_at(t, (size_t)i * n + j);
    if (!(v >= 0 && v <= 1)) {
      char where[200] = "";
      if (per)
        snprintf(where, sizeof where, ", map %s, %s %d", f->maps[j / per],
                 per == f->S ? "step" : "bin", j % per);
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor %s: example %lld%s: %g is not a probability in [0, 1]",
                     am_file_path(pf), name, (long long)i, where, (double)v);
    }
    if (out)
      out[j] = v;
  }
  return AM_STATUS_OK;
}

static am_status read_rows(am_ctx_t *ctx, const am_file_t *pf, const am_run_t *run,
                           am_faith_t *f) {
  int64_t N = f->N, nmk[3] = {N, f->M, f->K}, nms[3] = {N, f->M, f->S};
  am_status st = AM_STATUS_OK;
  const am_tensor_t *full = need(ctx, pf, "faithfulness.p_full", AM_DTYPE_F32, 1, &N, &st);
  const am_tensor_t *rem =
      full ? need(ctx, pf, "faithfulness.p_removed", AM_DTYPE_F32, 3, nmk, &st) : NULL;
  const am_tensor_t *kept =
      rem ? need(ctx, pf, "faithfulness.p_kept", AM_DTYPE_F32, 3, nmk, &st) : NULL;
  const am_tensor_t *del =
      kept ? need(ctx, pf, "faithfulness.deletion", AM_DTYPE_F32, 3, nms, &st) : NULL;
  const am_tensor_t *ins =
      del ? need(ctx, pf, "faithfulness.insertion", AM_DTYPE_F32, 3, nms, &st) : NULL;
  const am_tensor_t *tgt =
      ins ? need(ctx, pf, "faithfulness.target", AM_DTYPE_I32, 1, &N, &st) : NULL;
  const am_tensor_t *tok =
      tgt ? need(ctx, pf, "faithfulness.tokens", AM_DTYPE_I32, 1, &N, &st) : NULL;
  if (!tok)
    return st;
  const am_tensor_t *len = am_file_find(run->examples, "lengths");
  size_t mk = (size_t)f->M * f->K, ms = (size_t)f->M * f->S;
  float *rrow = malloc(mk * sizeof(float)), *krow = malloc(mk * sizeof(float));
  if (!rrow || !krow)
    st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  for (int64_t i = 0; i < N && st == AM_STATUS_OK; i++) {
    f->target[i] = i32_at(tgt, (size_t)i);
    f->tokens[i] = i32_at(tok, (size_t)i);
    int32_t n = i32_at(len, (size_t)i);
    if (f->tokens[i] < 0 || f->tokens[i] > n)
      st = am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor faithfulness.tokens: example %lld: %d, but the run's "
                   "example has %d tokens",
                   am_file_path(pf), (long long)i, f->tokens[i], n);
    else if (f->target[i] < 0)
      st = am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor faithfulness.target: example %lld: class %d is negative",
                   am_file_path(pf), (long long)i, f->target[i]);
    if (st != AM_STATUS_OK || f->tokens[i] == 0) {
      if (st == AM_STATUS_OK) { /* only special tokens: p_full may still be known */
        float v = f32_at(full, (size_t)i);
        f->p_full[i] = v >= 0 && v <= 1 ? v : NAN;
        am_faith_score_row(f, i, NULL, NULL);
      }
      continue;
    }
    float *d = f->del + (size_t)i * ms, *s = f->ins + (size_t)i * ms;
    if ((st = probs(ctx, pf, full, "faithfulness.p_full", f, i, 0, 1, f->p_full + i)) ||
        (st = probs(ctx, pf, rem, "faithfulness.p_removed", f, i, f->K, (int)mk, rrow)) ||
        (st = probs(ctx, pf, kept, "faithfulness.p_kept", f, i, f->K, (int)mk, krow)) ||
        (st = probs(ctx, pf, del, "faithfulness.deletion", f, i, f->S, (int)ms, d)) ||
        (st = probs(ctx, pf, ins, "faithfulness.insertion", f, i, f->S, (int)ms, s)))
      break;
    am_faith_score_row(f, i, rrow, krow);
  }
  free(rrow);
  free(krow);
  return st;
}

static json_t *parse_meta(am_ctx_t *ctx, const am_file_t *pf, am_status *st) {
  const char *text = am_file_metadata(pf, AM_FAITH_META);
  json_error_t err;
  json_t *all = text ? json_loads(text, JSON_REJECT_DUPLICATES, &err) : NULL;
  if (!all || !json_is_object(all)) {
    *st = am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: metadata %s: %s", am_file_path(pf),
                  AM_FAITH_META,
                  !text ? "missing"
                  : all ? "not a JSON object"
                        : "not valid JSON");
    json_decref(all);
    return NULL;
  }
  return all;
}

am_status am_faith_probs_check(am_ctx_t *ctx, const am_file_t *pf, const am_run_t *run,
                               int check_run_file, am_faith_t *f, json_t **provenance) {
  *provenance = NULL;
  const char *path = am_file_path(pf);
  json_t *all = NULL, *common = json_object(), *prov = json_object();
  const char *names[AM_MAX_MAPS];
  for (int m = 0; m < run->lay.nmaps && m < AM_MAX_MAPS; m++)
    names[m] = run->lay.maps[m].name;
  am_status st = AM_STATUS_OK;
  all = parse_meta(ctx, pf, &st);
  if (st == AM_STATUS_OK) {
    const char *key;
    json_t *v;
    json_object_foreach(all, key, v) {
      int is_common = 0;
      for (int k = 0; common_keys[k]; k++)
        is_common |= strcmp(key, common_keys[k]) == 0;
      json_object_set(is_common ? common : prov, key, v);
    }
    st = am_faith_meta_read(ctx, path, common, names, run->lay.nmaps, f);
  }
  if (st == AM_STATUS_OK && check_run_file)
    st = check_run(ctx, path, all, run);
  if (st == AM_STATUS_OK) {
    f->N = run->lay.N;
    st = am_faith_alloc(ctx, f);
  }
  if (st == AM_STATUS_OK)
    st = read_rows(ctx, pf, run, f);
  if (st == AM_STATUS_OK) {
    json_object_set_new(prov, "probs", json_string(path));
    json_object_set_new(prov, "run_dir", json_string(run->dir));
    *provenance = prov;
    prov = NULL;
  }
  json_decref(prov);
  json_decref(common);
  json_decref(all);
  return st;
}

am_status am_faith_probs_read(am_ctx_t *ctx, const char *path, const am_run_t *run,
                              am_faith_t *f, json_t **provenance) {
  *provenance = NULL;
  am_file_t *pf = NULL;
  uint32_t crc = 0;
  am_status st = am_file_open(ctx, path, &pf);
  if (st == AM_STATUS_OK)
    st = am_faith_probs_check(ctx, pf, run, 1, f, provenance);
  if (st == AM_STATUS_OK)
    st = am_file_crc32c(ctx, path, &crc);
  if (st == AM_STATUS_OK) {
    char hex[16];
    snprintf(hex, sizeof hex, "%08x", crc);
    json_object_set_new(*provenance, "probs_crc32c", json_string(hex));
  }
  am_file_close(pf);
  return st;
}
