/* merge.c — `attnmap merge RUN... -o OUT`: run folders made with the same options are
 * combined in the given order: examples concatenated (rows re-padded to the largest T),
 * aggregates recomputed from the rows in that order (merge_rows.c), so the result is the
 * same, bit for bit, as one run over all the inputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/json_guard.h"
#include "pipeline/aggregate.h"
#include "pipeline/merge_rows.h"
#include "pipeline/run_dir.h"
#include "pipeline/summary.h"

typedef struct merge_input {
  json_t *summary;
  am_file_t *examples;
  int64_t N;
  int T;
} merge_input_t;

static am_status load_input(am_ctx_t *ctx, const char *run, merge_input_t *in) {
  char path[4200];
  snprintf(path, sizeof path, "%s/summary.json", run);
  json_error_t err;
  in->summary = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
  if (!in->summary)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: cannot read: %s", path, err.text);
  const json_t *ds = json_object_get(in->summary, "dataset");
  in->N = json_integer_value(json_object_get(ds, "examples"));
  in->T = (int)json_integer_value(json_object_get(ds, "max_tokens"));
  snprintf(path, sizeof path, "%s/examples.safetensors", run);
  return am_file_open(ctx, path, &in->examples);
}

static const json_t *options_of(const merge_input_t *in) {
  return json_object_get(json_object_get(in->summary, "provenance"), "options");
}

/* Rebuilds the layout a run was made with from its summary.json. */
static am_status layout_from(am_ctx_t *ctx, const merge_input_t *in, int64_t N, int T,
                             am_layout_t *lay, const char *run) {
  const json_t *opt = options_of(in), *ds = json_object_get(in->summary, "dataset");
  const json_t *maps = json_object_get(opt, "maps"), *pairs = json_object_get(opt, "pairs");
  if (!json_is_array(maps) || !json_is_array(pairs) ||
      json_array_size(maps) > AM_MAX_MAPS || json_array_size(pairs) > AM_MAX_PAIRS)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s/summary.json: no options.maps/pairs", run);
  memset(lay, 0, sizeof *lay);
  am_plan_init(&lay->plan);
  lay->N = N;
  lay->T = T;
  lay->L = (int)json_integer_value(json_object_get(ds, "layers"));
  lay->H = (int)json_integer_value(json_object_get(ds, "heads"));
  lay->plan.topk = (int)json_integer_value(json_object_get(opt, "topk"));
  lay->plan.worst = (int)json_integer_value(json_object_get(opt, "worst"));
  lay->plan.histogram_bins =
      (int)json_integer_value(json_object_get(opt, "histogram_bins"));
  lay->head_stats = json_is_true(json_object_get(opt, "head_stats"));
  lay->head_importance = json_is_true(json_object_get(opt, "head_importance"));
  lay->has_labels = am_file_find(in->examples, "labels") != NULL;
  lay->has_predictions = am_file_find(in->examples, "predictions") != NULL;
  lay->plan.include_special = json_is_true(json_object_get(opt, "include_special"));
  /* the target token left out of the per-token table again, as when the run was made */
  lay->plan.include_target = json_is_true(json_object_get(opt, "include_target"));
  const json_t *target = json_object_get(opt, "target");
  const char *tname = json_string_value(target);
  lay->plan.target = json_is_integer(target)            ? AM_TARGET_INDEX
                     : tname && !strcmp(tname, "last") ? AM_TARGET_LAST
                     : tname && !strcmp(tname, "mean") ? AM_TARGET_MEAN
                                                       : AM_TARGET_CLS;
  lay->plan.target_index = (int)json_integer_value(target);
  lay->nmaps = (int)json_array_size(maps);
  for (int m = 0; m < lay->nmaps; m++)
    snprintf(lay->maps[m].name, sizeof lay->maps[m].name, "%s",
             json_string_value(json_array_get(maps, (size_t)m)));
  lay->npairs = (int)json_array_size(pairs);
  const char *worst = json_string_value(
      json_object_get(json_object_get(in->summary, "disagreement"), "pair"));
  lay->worst_pair = -1;
  for (int p = 0; p < lay->npairs; p++) {
    snprintf(lay->pair_names[p], sizeof lay->pair_names[p], "%s",
             json_string_value(json_array_get(pairs, (size_t)p)));
    if (worst && strcmp(worst, lay->pair_names[p]) == 0)
      lay->worst_pair = p;
  }
  if (lay->L < 1 || lay->H < 1 || lay->plan.histogram_bins < 1 || lay->plan.topk < 1)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s/summary.json: bad dataset or options",
                   run);
  return AM_STATUS_OK;
}

/* A tensor's dims after the first are token positions unless it is per head or pair. */
static int has_token_dims(const char *name) {
  return strncmp(name, "head.", 5) != 0 && strncmp(name, "agreement.", 10) != 0;
}

static int64_t dataset_int(const merge_input_t *in, const char *key) {
  return json_integer_value(json_object_get(json_object_get(in->summary, "dataset"), key));
}

/* Every tensor of run r's examples file has the shape its summary.json promises, and the
 * runs hold the same tensors, layers and heads as the first. */
static am_status check_run(am_ctx_t *ctx, const merge_input_t *in, int r, const char *run) {
  const am_file_t *f = in[r].examples, *first = in[0].examples;
  int64_t L = dataset_int(&in[r], "layers"), H = dataset_int(&in[r], "heads");
  int64_t P = (int64_t)json_array_size(json_object_get(options_of(&in[r]), "pairs"));
  /* what a summary claims must be backed by its examples file before anything is sized by
   * it: mask [N,T] is always written, and a run has at most 65,536 heads in all */
  const am_tensor_t *mask = am_file_find(f, "mask");
  if (!mask || mask->ndim != 2 || mask->shape[0] != in[r].N || mask->shape[1] != in[r].T ||
      in[r].T > (1 << 20) || L < 1 || H < 1 || L * H > 65536 || P < 0 || P > AM_MAX_PAIRS)
    return am_fail(
        ctx, AM_STATUS_BAD_INPUT,
        "%s: tensor mask: missing or not [N,T] as %s/summary.json claims (N=%lld, "
        "T=%d, %lld layers x %lld heads)",
        am_file_path(f), run, (long long)in[r].N, in[r].T, (long long)L, (long long)H);
  if (L != dataset_int(&in[0], "layers") || H != dataset_int(&in[0], "heads"))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s/summary.json: %lld layers x %lld heads differ from the first run's "
                   "%lld x %lld; such runs cannot be merged",
                   run, (long long)L, (long long)H,
                   (long long)dataset_int(&in[0], "layers"),
                   (long long)dataset_int(&in[0], "heads"));
  if (am_file_tensor_count(f) != am_file_tensor_count(first))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: %d tensors, but the first run has %d; such runs cannot be merged",
                   am_file_path(f), am_file_tensor_count(f), am_file_tensor_count(first));
  for (int i = 0; i < am_file_tensor_count(f); i++) {
    const char *name = am_file_tensor_name(f, i);
    const am_tensor_t *t = am_file_tensor(f, i), *t0 = am_file_find(first, name);
    int ok = t0 && t0->dtype == t->dtype && t0->ndim == t->ndim && t->ndim >= 1 &&
             t->shape[0] == in[r].N;
    for (int d = 1; ok && d < t->ndim; d++) {
      int64_t want = has_token_dims(name)             ? in[r].T
                     : strncmp(name, "head.", 5) == 0 ? (d == 1 ? L : H)
                                                      : P;
      ok = t->shape[d] == want;
    }
    if (!ok)
      return am_fail(
          ctx, AM_STATUS_BAD_INPUT,
          "%s: tensor %s: shape or dtype does not match %s/summary.json (N=%lld, "
          "T=%d, L=%lld, H=%lld, P=%lld) or the first run",
          am_file_path(f), name, run, (long long)in[r].N, in[r].T, (long long)L,
          (long long)H, (long long)P);
  }
  return AM_STATUS_OK;
}

/* The same input file: equal CRC-32C and size where both runs have checksums, else equal
 * path and size. */
static int same_input(const json_t *a, const json_t *b) {
  const json_t *ca = json_object_get(a, "crc32c"), *cb = json_object_get(b, "crc32c");
  if (!json_equal(json_object_get(a, "bytes"), json_object_get(b, "bytes")))
    return 0;
  if (json_is_string(ca) && json_is_string(cb))
    return json_equal(ca, cb);
  return json_equal(json_object_get(a, "path"), json_object_get(b, "path"));
}

/* Run r against the runs before it: an input file both were made from would have its
 * examples counted twice (a run given twice, or two runs over one shard). */
static am_status check_distinct(am_ctx_t *ctx, const merge_input_t *in, int r,
                                const char *const *runs) {
  const json_t *mine =
      json_object_get(json_object_get(in[r].summary, "provenance"), "inputs");
  for (int q = 0; q < r; q++) {
    const json_t *theirs =
        json_object_get(json_object_get(in[q].summary, "provenance"), "inputs");
    for (size_t i = 0; i < json_array_size(mine); i++)
      for (size_t k = 0; k < json_array_size(theirs); k++) {
        const json_t *file = json_array_get(mine, i);
        if (!same_input(file, json_array_get(theirs, k)))
          continue;
        const char *path = json_string_value(json_object_get(file, "path"));
        return am_fail(ctx, AM_STATUS_BAD_INPUT,
                       "%s and %s were both made from %s; merging them would count its "
                       "examples twice",
                       runs[q], runs[r], path ? path : "the same input file");
      }
  }
  return AM_STATUS_OK;
}

/* Options that change numbers must agree; the chunk size and where the target came from
 * (the exporter's record or --target) do not matter. */
static int same_options(const json_t *a, const json_t *b) {
  json_t *x = json_deep_copy(a), *y = json_deep_copy(b);
  json_object_del(x, "chunk");
  json_object_del(y, "chunk");
  json_object_del(x, "target_source");
  json_object_del(y, "target_source");
  int same = json_equal(x, y);
  json_decref(x);
  json_decref(y);
  return same;
}

static am_status copy_tensor(am_ctx_t *ctx, am_st_writer_t *w, int index, const char *name,
                             const merge_input_t *in, int n, int T) {
  uint64_t row0 = 0;
  for (int r = 0; r < n; r++) {
    const am_tensor_t *t = am_file_find(in[r].examples, name);
    if (!t)
      return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: missing",
                     am_file_path(in[r].examples), name);
    size_t es = am_dtype_size(t->dtype);
    int pad = has_token_dims(name) && t->ndim >= 2 && t->shape[1] != T;
    size_t in_row = es, out_row = es;
    for (int d = 1; d < t->ndim; d++) {
      in_row *= (size_t)t->shape[d];
      out_row *= pad ? (size_t)T : (size_t)t->shape[d];
    }
    unsigned char *buf = calloc(1, out_row ? out_row : 1);
    if (!buf)
      return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
    am_status st = AM_STATUS_OK;
    for (int64_t i = 0; i < t->shape[0] && st == AM_STATUS_OK; i++) {
      const unsigned char *src = (const unsigned char *)t->data + (size_t)i * in_row;
      if (!pad) {
        memcpy(buf, src, in_row);
      } else if (t->ndim == 2) {
        memcpy(buf, src, in_row);
      } else { /* [N,t,t] → [N,T,T] */
        size_t tt = (size_t)t->shape[1];
        for (size_t q = 0; q < tt; q++)
          memcpy(buf + q * (size_t)T * es, src + q * tt * es, tt * es);
      }
      st = am_st_writer_put(w, index, (row0 + (uint64_t)i) * out_row, buf, out_row);
    }
    free(buf);
    if (st != AM_STATUS_OK)
      return st;
    row0 += (uint64_t)t->shape[0];
  }
  return AM_STATUS_OK;
}

static am_status write_examples(am_ctx_t *ctx, const char *dir, const merge_input_t *in,
                                int n, int64_t N, int T) {
  const am_file_t *first = in[0].examples;
  int nt = am_file_tensor_count(first);
  am_tensor_spec_t *specs = calloc((size_t)nt, sizeof *specs);
  if (!specs)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  for (int i = 0; i < nt; i++) {
    const am_tensor_t *t = am_file_tensor(first, i);
    const char *name = am_file_tensor_name(first, i);
    specs[i] = (am_tensor_spec_t){.name = name, .dtype = t->dtype, .ndim = t->ndim};
    for (int d = 0; d < t->ndim; d++)
      specs[i].shape[d] = d == 0 ? N : (has_token_dims(name) ? T : t->shape[d]);
  }
  const char *meta[6];
  int nmeta = 0;
  for (int i = 0; i < am_file_metadata_count(first) && nmeta < 3; i++) {
    meta[2 * nmeta] = am_file_metadata_key(first, i);
    meta[2 * nmeta + 1] = am_file_metadata(first, meta[2 * nmeta]);
    nmeta++;
  }
  char path[4200];
  snprintf(path, sizeof path, "%s/examples.safetensors", dir);
  am_st_writer_t *w = NULL;
  am_status st = am_st_writer_open(ctx, path, specs, nt, meta, nmeta, &w);
  for (int i = 0; i < nt && st == AM_STATUS_OK; i++)
    st = copy_tensor(ctx, w, i, specs[i].name, in, n, T);
  am_status cs = am_st_writer_close(w, st != AM_STATUS_OK);
  free(specs);
  return st != AM_STATUS_OK ? st : cs;
}

static json_t *merged_summary(am_ctx_t *ctx, const merge_input_t *in, int n,
                              const char *const *runs, const am_aggregates_t *agg,
                              const am_layout_t *lay) {
  json_t *doc = am_agg_to_json(agg, lay);
  json_t *prov = json_deep_copy(json_object_get(in[0].summary, "provenance"));
  json_t *ds = json_deep_copy(json_object_get(in[0].summary, "dataset"));
  json_t *inputs = json_array(), *from = json_array();
  int shards = 0;
  for (int r = 0; r < n; r++) {
    json_array_extend(
        inputs, json_object_get(json_object_get(in[r].summary, "provenance"), "inputs"));
    json_array_append_new(from, json_string(runs[r]));
    shards += (int)json_integer_value(
        json_object_get(json_object_get(in[r].summary, "dataset"), "shards"));
  }
  json_object_set_new(prov, "inputs", inputs);
  json_object_set_new(prov, "merged_from", from);
  json_object_set_new(prov, "backend", json_string(am_ctx_backend_name(ctx)));
  json_object_set_new(ds, "examples", json_integer(lay->N));
  json_object_set_new(ds, "max_tokens", json_integer(lay->T));
  json_object_set_new(ds, "shards", json_integer(shards));
  json_object_set_new(doc, "provenance", prov);
  json_object_set_new(doc, "dataset", ds);
  return doc;
}

am_status am_run_merge(am_ctx_t *ctx, const char *const *runs, int nruns,
                       const char *out_dir, const am_run_options_t *opts) {
  am_clear_error(ctx);
  am_json_take_failures(); /* the documents this merge writes count their own failures */
  int force = opts ? opts->force : 0;
  merge_input_t *in = calloc((size_t)(nruns > 0 ? nruns : 1), sizeof *in);
  am_layout_t *lay = calloc(1, sizeof *lay);
  am_aggregates_t agg;
  memset(&agg, 0, sizeof agg);
  json_t *doc = NULL;
  char tmp[4096] = "";
  int64_t N = 0;
  int T = 0, began = 0;
  am_status st = (in && lay) ? AM_STATUS_OK : am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "oom");
  if (st == AM_STATUS_OK && nruns < 1)
    st = am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "merge: no run folders given");
  for (int r = 0; r < nruns && st == AM_STATUS_OK; r++) {
    st = load_input(ctx, runs[r], &in[r]);
    if (st == AM_STATUS_OK && (in[r].N < 0 || in[r].T < 0))
      st = am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s/summary.json: no dataset examples/max_tokens", runs[r]);
    if (st == AM_STATUS_OK)
      st = check_run(ctx, in, r, runs[r]);
    if (st == AM_STATUS_OK)
      st = check_distinct(ctx, in, r, runs);
    if (st == AM_STATUS_OK && r > 0 &&
        !same_options(options_of(&in[0]), options_of(&in[r])))
      st = am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s/summary.json: options differ from %s's; runs made with different "
                   "options cannot be merged",
                   runs[r], runs[0]);
    N += in[r].N;
    T = in[r].T > T ? in[r].T : T;
  }
  if (st == AM_STATUS_OK)
    st = layout_from(ctx, &in[0], N, T, lay, runs[0]);
  if (st == AM_STATUS_OK)
    st = am_run_dir_check(ctx, out_dir, force);
  if (st == AM_STATUS_OK)
    st = am_agg_init(ctx, &agg, lay);
  am_merge_part_t *parts = calloc((size_t)(nruns > 0 ? nruns : 1), sizeof *parts);
  if (st == AM_STATUS_OK && !parts)
    st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  for (int r = 0; r < nruns && st == AM_STATUS_OK; r++)
    parts[r] =
        (am_merge_part_t){in[r].examples, in[r].summary, in[r].N, in[r].T, NULL, NULL};
  if (st == AM_STATUS_OK)
    st = am_merge_aggregate(ctx, &agg, lay, parts, nruns);
  free(parts);
  if (st == AM_STATUS_OK && (st = am_run_dir_begin(ctx, out_dir, tmp, sizeof tmp)) == 0)
    began = 1;
  if (st == AM_STATUS_OK)
    st = write_examples(ctx, tmp, in, nruns, N, T);
  if (st == AM_STATUS_OK) {
    char path[4200];
    snprintf(path, sizeof path, "%s/summary.json", tmp);
    doc = merged_summary(ctx, in, nruns, runs, &agg, lay);
    st = am_write_json(ctx, path, doc);
  }
  if (st == AM_STATUS_OK)
    st = am_run_dir_publish(ctx, tmp, out_dir, force);
  if (st != AM_STATUS_OK && began)
    am_rmtree(tmp);
  for (int r = 0; in && r < nruns; r++) {
    json_decref(in[r].summary);
    am_file_close(in[r].examples);
  }
  json_decref(doc);
  am_agg_free(&agg);
  free(lay);
  free(in);
  return st;
}
