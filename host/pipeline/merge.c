/* merge.c — `attnmap merge RUN... -o OUT`: run folders made with the same options are
 * combined in the given order: examples concatenated (rows re-padded to the largest T),
 * aggregates recomputed from the rows in that order (merge_rows.c), so the result is the
 * same, bit for bit, as one run over all the inputs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/json_guard.h"
#include "pipeline/aggregate.h"
#include "pipeline/faith.h"
#include "pipeline/merge_rows.h"
#include "pipeline/replace.h"
#include "pipeline/run_dir.h"
#include "pipeline/run_folder.h"
#include "pipeline/summary.h"

typedef struct merge_input {
  am_run_t *run; /* opened and validated by run_folder.c */
  int64_t N;
  int T;
} merge_input_t;

static const json_t *options_of(const merge_input_t *in) {
  return json_object_get(json_object_get(in->run->summary, "provenance"), "options");
}

/* Run r holds the same tensors (names, order, dtypes, dims other than N and T), maps,
 * pairs, layers and heads as the first: each run's own layout is already checked against
 * its files, so the layouts are compared, never summary.json's lists alone. */
static am_status check_run(am_ctx_t *ctx, const merge_input_t *in, int r, const char *run) {
  const am_layout_t *a = &in[0].run->lay, *b = &in[r].run->lay;
  if (a->L != b->L || a->H != b->H)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s/summary.json: %d layers x %d heads differ from the first run's "
                   "%d x %d; such runs cannot be merged",
                   run, b->L, b->H, a->L, a->H);
  int same = a->nspecs == b->nspecs && a->npairs == b->npairs && a->nmaps == b->nmaps;
  for (int i = 0; same && i < a->nspecs; i++)
    same = strcmp(a->specs[i].name, b->specs[i].name) == 0 &&
           a->specs[i].dtype == b->specs[i].dtype;
  for (int p = 0; same && p < a->npairs; p++)
    same = strcmp(a->pair_names[p], b->pair_names[p]) == 0;
  if (!same)
    return am_fail(
        ctx, AM_STATUS_BAD_INPUT,
        "%s: tensors or agreement pairs (__metadata__ attnmap.pairs) differ from "
        "the first run's; such runs cannot be merged",
        am_file_path(in[r].run->examples));
  return AM_STATUS_OK;
}

/* The same input file: equal CRC-32C and size where both runs have checksums, else equal
 * canonical path (realpath: "f" and "./f" are one file) or, for runs that did not record
 * it, equal path, and size. */
static int same_input(const json_t *a, const json_t *b) {
  const json_t *ca = json_object_get(a, "crc32c"), *cb = json_object_get(b, "crc32c");
  const json_t *ra = json_object_get(a, "realpath"), *rb = json_object_get(b, "realpath");
  if (!json_equal(json_object_get(a, "bytes"), json_object_get(b, "bytes")))
    return 0;
  if (json_is_string(ca) && json_is_string(cb))
    return json_equal(ca, cb);
  if (json_is_string(ra) && json_is_string(rb))
    return json_equal(ra, rb);
  return json_equal(json_object_get(a, "path"), json_object_get(b, "path"));
}

/* Run r against the runs before it: the same run folder (by canonical path), or an input
 * file both were made from (by checksum, else canonical path), would have its examples
 * counted twice. */
static am_status check_distinct(am_ctx_t *ctx, const merge_input_t *in, int r,
                                const char *const *runs) {
  const json_t *mine =
      json_object_get(json_object_get(in[r].run->summary, "provenance"), "inputs");
  char *me = realpath(runs[r], NULL);
  for (int q = 0; q < r; q++) {
    const json_t *theirs =
        json_object_get(json_object_get(in[q].run->summary, "provenance"), "inputs");
    for (size_t i = 0; i < json_array_size(mine); i++)
      for (size_t k = 0; k < json_array_size(theirs); k++) {
        const json_t *file = json_array_get(mine, i);
        if (!same_input(file, json_array_get(theirs, k)))
          continue;
        const char *path = json_string_value(json_object_get(file, "path"));
        free(me);
        return am_fail(ctx, AM_STATUS_BAD_INPUT,
                       "%s and %s were both made from %s; merging them would count its "
                       "examples twice",
                       runs[q], runs[r], path ? path : "the same input file");
      }
    char *other = realpath(runs[q], NULL);
    int same_dir = me && other && strcmp(me, other) == 0;
    free(other);
    if (same_dir) {
      free(me);
      return am_fail(
          ctx, AM_STATUS_BAD_INPUT,
          "%s and %s are the same run folder; merging it with itself would count "
          "its examples twice",
          runs[q], runs[r]);
    }
  }
  free(me);
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
  /* runs of different numbers of steps merge, padded to the largest (docs/generation.md) */
  json_object_del(json_object_get(x, "steps"), "max_steps");
  json_object_del(json_object_get(y, "steps"), "max_steps");
  json_object_del(json_object_get(x, "cross"), "max_source_tokens"); /* padded alike */
  json_object_del(json_object_get(y, "cross"), "max_source_tokens");
  int same = json_equal(x, y);
  json_decref(x);
  json_decref(y);
  return same;
}

/* What a merge puts where a run's rows are narrower than the merged tensor's (a run of
 * shorter T or fewer steps S): -1 in step_positions, NaN in agreement (undefined, as past
 * an example's steps), 0 elsewhere (padding, as in any run). */
static void fill_padding(const char *name, unsigned char *buf, size_t count, size_t es) {
  memset(buf, 0, count * es);
  if (strcmp(name, "step_positions") == 0)
    memset(buf, 0xff, count * es); /* I32 -1 */
  else if (strncmp(name, "agreement.steps.", 16) == 0)
    for (size_t i = 0; i < count; i++) {
      float v = NAN;
      memcpy(buf + i * es, &v, sizeof v);
    }
}

/* Tensor `spec` of the merged file from every run's rows, each row [d1,d2] placed at the
 * start of the merged row [D1,D2]. */
static am_status copy_tensor(am_ctx_t *ctx, am_st_writer_t *w, int index,
                             const am_tensor_spec_t *spec, const merge_input_t *in, int n) {
  uint64_t row0 = 0;
  size_t D1 = spec->ndim > 1 ? (size_t)spec->shape[1] : 1;
  size_t D2 = spec->ndim > 2 ? (size_t)spec->shape[2] : 1;
  for (int r = 0; r < n; r++) {
    const am_tensor_t *t = am_file_find(in[r].run->examples, spec->name);
    if (!t)
      return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: missing",
                     am_file_path(in[r].run->examples), spec->name);
    size_t es = am_dtype_size(t->dtype);
    size_t d1 = t->ndim > 1 ? (size_t)t->shape[1] : 1,
           d2 = t->ndim > 2 ? (size_t)t->shape[2] : 1;
    if (t->ndim != spec->ndim || d1 > D1 || d2 > D2)
      return am_fail(ctx, AM_STATUS_INTERNAL, "%s: tensor %s: wider than the merged run's",
                     am_file_path(in[r].run->examples), spec->name);
    size_t in_row = es * d1 * d2, out_row = es * D1 * D2;
    unsigned char *buf = malloc(out_row ? out_row : 1);
    if (!buf)
      return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
    fill_padding(spec->name, buf, D1 * D2, es); /* padded cells are never overwritten */
    am_status st = AM_STATUS_OK;
    for (int64_t i = 0; i < t->shape[0] && st == AM_STATUS_OK; i++) {
      const unsigned char *src = (const unsigned char *)t->data + (size_t)i * in_row;
      for (size_t q = 0; q < d1; q++)
        memcpy(buf + q * D2 * es, src + q * d2 * es, d2 * es);
      st = am_st_writer_put(w, index, (row0 + (uint64_t)i) * out_row, buf, out_row);
    }
    free(buf);
    if (st != AM_STATUS_OK)
      return st;
    row0 += (uint64_t)t->shape[0];
  }
  return AM_STATUS_OK;
}

/* The merged examples file: the merged layout's tensors (lay->specs: N examples, the
 * largest T and S), the first run's metadata. */
static am_status write_examples(am_ctx_t *ctx, const char *dir, const merge_input_t *in,
                                int n, const am_layout_t *lay) {
  const am_file_t *first = in[0].run->examples;
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
  am_status st = am_st_writer_open(ctx, path, lay->specs, lay->nspecs, meta, nmeta, &w);
  for (int i = 0; i < lay->nspecs && st == AM_STATUS_OK; i++)
    st = copy_tensor(ctx, w, i, &lay->specs[i], in, n);
  am_status cs = am_st_writer_close(w, st != AM_STATUS_OK);
  return st != AM_STATUS_OK ? st : cs;
}

static json_t *merged_summary(am_ctx_t *ctx, const merge_input_t *in, int n,
                              const char *const *runs, const am_aggregates_t *agg,
                              const am_layout_t *lay) {
  json_t *doc = am_agg_to_json(agg, lay);
  json_t *prov = json_deep_copy(json_object_get(in[0].run->summary, "provenance"));
  json_t *ds = json_deep_copy(json_object_get(in[0].run->summary, "dataset"));
  json_t *inputs = json_array(), *from = json_array();
  int shards = 0;
  for (int r = 0; r < n; r++) {
    json_array_extend(
        inputs,
        json_object_get(json_object_get(in[r].run->summary, "provenance"), "inputs"));
    json_array_append_new(from, json_string(runs[r]));
    shards += (int)json_integer_value(
        json_object_get(json_object_get(in[r].run->summary, "dataset"), "shards"));
  }
  json_object_set_new(prov, "inputs", inputs);
  json_object_set_new(prov, "merged_from", from);
  json_object_del(prov, "files"); /* the first run's; the merge's own are added after */
  json_object_set_new(prov, "backend", json_string(am_ctx_backend_name(ctx)));
  json_object_set_new(ds, "examples", json_integer(lay->N));
  json_object_set_new(ds, "max_tokens", json_integer(lay->T));
  if (lay->cross_want) /* the largest source length of the runs (the others padded) */
    json_object_set_new(json_object_get(json_object_get(prov, "options"), "cross"),
                        "max_source_tokens", json_integer(lay->Tenc));
  if (lay->several) /* the largest S of the runs (shorter ones were padded) */
    json_object_set_new(json_object_get(json_object_get(prov, "options"), "steps"),
                        "max_steps", json_integer(lay->S));
  json_object_set_new(ds, "shards", json_integer(shards));
  json_object_set_new(doc, "provenance", prov);
  json_object_set_new(doc, "dataset", ds);
  return doc;
}

static am_status merge_faithfulness(am_ctx_t *ctx, const merge_input_t *in, int n,
                                    const char *const *runs, const char *tmp, json_t *doc) {
  const json_t **sums = calloc((size_t)n, sizeof *sums);
  int64_t *Ns = calloc((size_t)n, sizeof *Ns);
  am_status st = sums && Ns ? AM_STATUS_OK : am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "oom");
  for (int r = 0; st == AM_STATUS_OK && r < n; r++) {
    sums[r] = in[r].run->summary;
    Ns[r] = in[r].N;
  }
  if (st == AM_STATUS_OK)
    st = am_faith_merge(ctx, runs, sums, Ns, n, tmp, doc);
  free(sums);
  free(Ns);
  return st;
}

am_status am_run_merge(am_ctx_t *ctx, const char *const *runs, int nruns,
                       const char *out_dir, const am_run_options_t *opts) {
  am_clear_error(ctx);
  am_json_take_failures(); /* the documents this merge writes count their own failures */
  int force = opts ? opts->force : 0;
  const am_out_inputs_t inputs = {runs, nruns}; /* the out folder never replaces a run */
  merge_input_t *in = calloc((size_t)(nruns > 0 ? nruns : 1), sizeof *in);
  am_layout_t *lay = calloc(1, sizeof *lay);
  am_aggregates_t agg;
  memset(&agg, 0, sizeof agg);
  json_t *doc = NULL;
  char tmp[4096] = "";
  int64_t N = 0;
  int T = 0, S = 0, Tenc = 0, began = 0;
  am_status st = (in && lay) ? AM_STATUS_OK : am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "oom");
  if (st == AM_STATUS_OK && nruns < 1)
    st = am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "merge: no run folders given");
  for (int r = 0; r < nruns && st == AM_STATUS_OK; r++) {
    st = am_run_open(ctx, runs[r], &in[r].run);
    if (st == AM_STATUS_OK) {
      in[r].N = in[r].run->lay.N;
      in[r].T = in[r].run->lay.T;
      st = check_run(ctx, in, r, runs[r]);
    }
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
    if (in[r].run) { /* NULL when the run could not be opened */
      S = in[r].run->lay.S > S ? in[r].run->lay.S : S;
      Tenc = in[r].run->lay.Tenc > Tenc ? in[r].run->lay.Tenc : Tenc;
    }
  }
  if (st == AM_STATUS_OK) { /* the first run's layout, over all the examples */
    *lay = in[0].run->lay;
    lay->N = N;
    lay->T = T;
    lay->S = S;
    lay->Tenc = Tenc;
    lay->nspecs = 0;
    st = am_layout_specs(ctx, lay);
  }
  if (st == AM_STATUS_OK) /* first: an input run itself is "never replaces its inputs" */
    st = am_run_dir_check(ctx, out_dir, AM_OUT_RUN, force, &inputs);
  for (int r = 0; r < nruns && st == AM_STATUS_OK; r++)
    st = am_out_outside(ctx, out_dir, runs[r], "write the merged run beside it");
  if (st == AM_STATUS_OK)
    st = am_agg_init(ctx, &agg, lay);
  am_merge_part_t *parts = calloc((size_t)(nruns > 0 ? nruns : 1), sizeof *parts);
  if (st == AM_STATUS_OK && !parts)
    st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  for (int r = 0; r < nruns && st == AM_STATUS_OK; r++)
    parts[r] = (am_merge_part_t){
        in[r].run->examples, in[r].run->summary, in[r].N, in[r].T, NULL, NULL};
  if (st == AM_STATUS_OK)
    st = am_merge_aggregate(ctx, &agg, lay, parts, nruns);
  free(parts);
  if (st == AM_STATUS_OK && (st = am_run_dir_begin(ctx, out_dir, tmp, sizeof tmp)) == 0)
    began = 1;
  if (st == AM_STATUS_OK)
    st = write_examples(ctx, tmp, in, nruns, lay);
  if (st == AM_STATUS_OK) {
    char path[4200];
    snprintf(path, sizeof path, "%s/summary.json", tmp);
    doc = merged_summary(ctx, in, nruns, runs, &agg, lay);
    st = doc ? am_steps_summary_add(ctx, doc, tmp, lay)
             : am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory building summary.json");
    if (st == AM_STATUS_OK)
      st = am_summary_add_files(ctx, doc, tmp);
    if (st == AM_STATUS_OK) /* the runs' faithfulness scores, when they have them */
      st = merge_faithfulness(ctx, in, nruns, runs, tmp, doc);
    if (st == AM_STATUS_OK)
      st = am_write_json(ctx, path, doc);
  }
  if (st == AM_STATUS_OK)
    st = am_run_dir_publish(ctx, tmp, out_dir, AM_OUT_RUN, force, &inputs);
  if (st != AM_STATUS_OK && began)
    am_rmtree(tmp);
  for (int r = 0; in && r < nruns; r++)
    am_run_close(in[r].run);
  json_decref(doc);
  am_agg_free(&agg);
  free(lay);
  free(in);
  return st;
}
