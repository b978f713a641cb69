/* run_folder.c — reads a run folder back and validates it once (see run_folder.h):
 * summary.json must belong to this examples.safetensors (its recorded size and CRC-32C),
 * its dataset and option lists rebuild the layout the run was written with, and that
 * layout's tensors (am_layout_specs, the writer's own list) must be the file's, name by
 * name, dtype and shape; the pair names are the examples file's, so an edited summary can
 * never put statistics under the wrong names. */
#include "pipeline/run_folder.h"
#include "pipeline/run_tokens.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/ctx.h"
#include "core/options.h"
#include "pipeline/cross_run.h"
#include "pipeline/summary.h"

#define SUMMARY_MAX_BYTES (1ull << 30)

static am_status read_summary(am_ctx_t *ctx, am_run_t *rf) {
  char path[4200];
  snprintf(path, sizeof path, "%s/summary.json", rf->dir);
  if (strlen(rf->dir) + 14 >= sizeof path)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%.200s...: path too long", rf->dir);
  FILE *f = fopen(path, "rb");
  struct stat sb;
  if (!f || fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) ||
      (uint64_t)sb.st_size > SUMMARY_MAX_BYTES) {
    int err = errno;
    if (f)
      fclose(f);
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: cannot read: %s", path,
                   f ? "not a regular file of at most 1 GiB" : strerror(err));
  }
  rf->summary_text = malloc((size_t)sb.st_size + 1);
  size_t got = rf->summary_text ? fread(rf->summary_text, 1, (size_t)sb.st_size, f) : 0;
  fclose(f);
  if (!rf->summary_text)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
  rf->summary_text[got] = '\0';
  json_error_t err;
  rf->summary = json_loadb(rf->summary_text, got, JSON_REJECT_DUPLICATES, &err);
  if (!rf->summary)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: not JSON: %s (line %d)", path, err.text,
                   err.line);
  if (!json_is_object(rf->summary) ||
      !json_is_object(json_object_get(rf->summary, "dataset")) ||
      !json_is_object(json_object_get(rf->summary, "provenance")))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: not an attnmap summary (no \"dataset\" or \"provenance\" object)",
                   path);
  return AM_STATUS_OK;
}

/* An integer field of summary.json in [lo, hi]. */
static am_status get_int(am_ctx_t *ctx, const am_run_t *rf, const json_t *obj,
                         const char *where, const char *key, int64_t lo, int64_t hi,
                         int64_t *out) {
  const json_t *v = json_object_get(obj, key);
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s/summary.json: %s.%s: missing or not an integer in [%lld, %lld]",
                   rf->dir, where, key, (long long)lo, (long long)hi);
  *out = json_integer_value(v);
  return AM_STATUS_OK;
}

/* provenance.files["examples.safetensors"]: the size and CRC-32C the writer recorded. */
static am_status check_checksum(am_ctx_t *ctx, const am_run_t *rf) {
  const json_t *rec =
      json_object_get(json_object_get(json_object_get(rf->summary, "provenance"), "files"),
                      "examples.safetensors");
  const char *want = json_string_value(json_object_get(rec, "crc32c"));
  const json_t *bytes = json_object_get(rec, "bytes");
  if (!want || !json_is_integer(bytes))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s/summary.json: provenance.files.examples.safetensors: no size and "
                   "CRC-32C recorded (a summary from before attnmap checked run folders, "
                   "or edited): run analyze again",
                   rf->dir);
  char path[4200], have[16];
  snprintf(path, sizeof path, "%s/examples.safetensors", rf->dir);
  struct stat sb;
  if (stat(path, &sb) != 0)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: cannot open: %s", path, strerror(errno));
  if ((json_int_t)sb.st_size != json_integer_value(bytes))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: %lld bytes, but %s/summary.json records %lld: the summary belongs "
                   "to another run or the file was changed",
                   path, (long long)sb.st_size, rf->dir,
                   (long long)json_integer_value(bytes));
  uint32_t crc = 0;
  am_status st = am_file_crc32c(ctx, path, &crc);
  if (st != AM_STATUS_OK)
    return st;
  snprintf(have, sizeof have, "%08x", crc);
  if (strcmp(have, want) != 0)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: CRC-32C %s, but %s/summary.json records %.16s: the summary belongs "
                   "to another run or the file was changed",
                   path, have, rf->dir, want);
  return AM_STATUS_OK;
}

static am_status read_maps(am_ctx_t *ctx, am_run_t *rf, const json_t *opt) {
  const json_t *maps = json_object_get(opt, "maps");
  am_layout_t *lay = &rf->lay;
  if (!json_is_array(maps) || json_array_size(maps) > AM_MAX_MAPS)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s/summary.json: provenance.options.maps: not an array of at most %d "
                   "map names",
                   rf->dir, AM_MAX_MAPS);
  for (size_t m = 0; m < json_array_size(maps); m++) {
    const char *name = json_string_value(json_array_get(maps, m));
    am_map_t *map = &lay->maps[lay->nmaps];
    const am_map_def_t *def = name ? am_map_def_find(name) : NULL;
    int known =
        def && !strchr(name, '~') && !strchr(name, ',') && strlen(name) < sizeof map->name;
    for (int k = 0; known && k < lay->nmaps; k++)
      known = strcmp(lay->maps[k].name, name) != 0;
    if (!known)
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s/summary.json: provenance.options.maps[%zu]: not a map name, or "
                     "given twice",
                     rf->dir, m);
    snprintf(map->name, sizeof map->name, "%s", name);
    map->def = def;
    map->kind = def->kind;
    map->sub = def->sub;
    map->is_attention = def->is_attention;
    lay->nmaps++;
  }
  return AM_STATUS_OK;
}

static int find_map(const am_layout_t *lay, const char *name, size_t len) {
  for (int i = 0; i < lay->nmaps; i++)
    if (strlen(lay->maps[i].name) == len && strncmp(lay->maps[i].name, name, len) == 0)
      return i;
  return -1;
}

/* The pairs are the examples file's __metadata__ attnmap.pairs (the columns of its
 * agreement tensors); summary.json's list must be the same, in the same order. */
static am_status read_pairs(am_ctx_t *ctx, am_run_t *rf, const json_t *opt) {
  am_layout_t *lay = &rf->lay;
  const char *text = am_file_metadata(rf->examples, "attnmap.pairs");
  json_t *pairs = text ? json_loads(text, JSON_REJECT_DUPLICATES, NULL) : NULL;
  const char *path = am_file_path(rf->examples);
  am_status st = AM_STATUS_OK;
  if (!json_is_array(pairs) || json_array_size(pairs) > AM_MAX_PAIRS)
    st =
        am_fail(ctx, AM_STATUS_BAD_INPUT,
                "%s: __metadata__ attnmap.pairs: missing or not a JSON array of at most %d "
                "pair names",
                path, AM_MAX_PAIRS);
  for (size_t p = 0; st == AM_STATUS_OK && p < json_array_size(pairs); p++) {
    const char *name = json_string_value(json_array_get(pairs, p));
    const char *tilde = name ? strchr(name, '~') : NULL;
    int a = tilde ? find_map(lay, name, (size_t)(tilde - name)) : -1;
    int b = tilde ? find_map(lay, tilde + 1, strlen(tilde + 1)) : -1;
    if (a < 0 || b < 0 || a == b || strlen(name) >= sizeof lay->pair_names[0])
      st =
          am_fail(ctx, AM_STATUS_BAD_INPUT,
                  "%s: __metadata__ attnmap.pairs[%zu]: not MAP~MAP of two maps of the run",
                  path, p);
    else {
      lay->pair_a[lay->npairs] = a;
      lay->pair_b[lay->npairs] = b;
      snprintf(lay->pair_names[lay->npairs++], sizeof lay->pair_names[0], "%s", name);
    }
  }
  if (st == AM_STATUS_OK && !json_equal(pairs, json_object_get(opt, "pairs")))
    st = am_fail(ctx, AM_STATUS_BAD_INPUT,
                 "%s/summary.json: provenance.options.pairs: not the pairs of %s (%s): the "
                 "agreement columns would go under wrong names",
                 rf->dir, path, text);
  json_decref(pairs);
  return st;
}

/* The plan's numbers that shape the files, each within the option table's range. */
static am_status read_plan(am_ctx_t *ctx, am_run_t *rf, const json_t *opt) {
  static const struct {
    const char *key, *option;
  } ints[] = {{"topk", "topk"}, {"worst", "worst"}, {"histogram_bins", "bins"}};
  am_layout_t *lay = &rf->lay;
  int *dst[] = {&lay->plan.topk, &lay->plan.worst, &lay->plan.histogram_bins};
  for (int i = 0; i < 3; i++) {
    double lo = 0, hi = 0;
    int64_t v = 0;
    am_option_bounds(ints[i].option, &lo, &hi);
    am_status st = get_int(ctx, rf, opt, "provenance.options", ints[i].key, (int64_t)lo,
                           (int64_t)hi, &v);
    if (st != AM_STATUS_OK)
      return st;
    *dst[i] = (int)v;
  }
  lay->plan.include_special = json_is_true(json_object_get(opt, "include_special"));
  /* the target token left out of the per-token table again, as when the run was made */
  lay->plan.include_target = json_is_true(json_object_get(opt, "include_target"));
  const json_t *target = json_object_get(opt, "target");
  double lo = 0, hi = 0;
  am_option_bounds("target", &lo, &hi);
  if (json_is_integer(target) && json_integer_value(target) >= lo &&
      json_integer_value(target) <= hi) {
    lay->plan.target = AM_TARGET_INDEX;
    lay->plan.target_index = (int)json_integer_value(target);
  } else if (!json_is_string(target) ||
             am_target_parse(json_string_value(target), &lay->plan) != 0 ||
             lay->plan.target == AM_TARGET_INDEX) /* an index is written as a number */
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s/summary.json: provenance.options.target: not cls, last, mean, gen, "
                   "a slice A:B or an index in [%.0f,%.0f]",
                   rf->dir, lo, hi);
  lay->plan.all_rows = json_is_true(json_object_get(opt, "all_rows"));
  lay->head_stats = json_is_true(json_object_get(opt, "head_stats"));
  lay->head_importance = json_is_true(json_object_get(opt, "head_importance"));
  return AM_STATUS_OK;
}

/* What the dataset held (labels, ids, ...) decides the token-level tensors. */
static void read_roles(am_run_t *rf) {
  const json_t *roles = json_object_get(json_object_get(rf->summary, "dataset"), "roles");
  am_layout_t *lay = &rf->lay;
  for (size_t i = 0; i < json_array_size(roles); i++) {
    const char *r = json_string_value(json_array_get(roles, i));
    if (!r)
      continue;
    lay->has_labels |= strcmp(r, "labels") == 0;
    lay->has_predictions |= strcmp(r, "predictions") == 0;
    lay->has_ids |= strcmp(r, "input_ids") == 0;
    lay->has_special |= strcmp(r, "special_tokens_mask") == 0;
  }
  for (int m = 0; m < lay->nmaps && lay->plan.all_rows; m++)
    lay->pass.want |= lay->maps[m].def->rows;
}

static am_status read_worst_pair(am_ctx_t *ctx, am_run_t *rf) {
  const json_t *pair =
      json_object_get(json_object_get(rf->summary, "disagreement"), "pair");
  am_layout_t *lay = &rf->lay;
  lay->worst_pair = -1;
  if (!pair || json_is_null(pair))
    return AM_STATUS_OK;
  for (int p = 0; json_is_string(pair) && p < lay->npairs; p++)
    if (strcmp(json_string_value(pair), lay->pair_names[p]) == 0)
      lay->worst_pair = p;
  if (lay->worst_pair < 0)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s/summary.json: disagreement.pair: not one of the run's pairs",
                   rf->dir);
  return AM_STATUS_OK;
}

static void shape_text(const int64_t *shape, int ndim, char *buf, size_t len) {
  buf[0] = '\0';
  for (int d = 0; d < ndim; d++)
    snprintf(buf + strlen(buf), len - strlen(buf), "%s%lld", d ? "," : "",
             (long long)shape[d]);
}

/* The file's tensors are exactly the layout's, in order, dtype and shape. */
static am_status check_tensors(am_ctx_t *ctx, const am_run_t *rf) {
  const am_layout_t *lay = &rf->lay;
  const am_file_t *f = rf->examples;
  int n = am_file_tensor_count(f);
  for (int i = 0; i < lay->nspecs || i < n; i++) {
    const am_tensor_spec_t *s = i < lay->nspecs ? &lay->specs[i] : NULL;
    const am_tensor_t *t = i < n ? am_file_tensor(f, i) : NULL;
    const char *name = i < n ? am_file_tensor_name(f, i) : NULL;
    int ok =
        s && t && strcmp(name, s->name) == 0 && t->dtype == s->dtype && t->ndim == s->ndim;
    for (int d = 0; ok && d < s->ndim; d++)
      ok = t->shape[d] == s->shape[d];
    if (ok)
      continue;
    char want[96] = "", have[96] = "";
    if (s)
      shape_text(s->shape, s->ndim, want, sizeof want);
    if (t)
      shape_text(t->shape, t->ndim, have, sizeof have);
    if (!s)
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor %s: not one %s/summary.json describes", am_file_path(f),
                     name, rf->dir);
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: expected %s [%s] as %s/summary.json describes the run, "
                   "found %s %s [%s]",
                   am_file_path(f), s->name, am_dtype_name(s->dtype), want, rf->dir,
                   name ? name : "nothing", t ? am_dtype_name(t->dtype) : "", have);
  }
  return AM_STATUS_OK;
}

/* mask holds 0/1 and lengths counts its ones: the report indexes rows by both. */
static am_status check_mask(am_ctx_t *ctx, const am_run_t *rf) {
  const am_tensor_t *mask = am_file_find(rf->examples, "mask");
  const am_tensor_t *len = am_file_find(rf->examples, "lengths");
  const unsigned char *m = mask->data;
  int64_t T = rf->lay.T;
  for (int64_t i = 0; i < rf->lay.N; i++) {
    int32_t want;
    memcpy(&want, (const char *)len->data + 4 * i, 4);
    int64_t ones = 0;
    for (int64_t t = 0; t < T; t++) {
      if (m[i * T + t] > 1)
        return am_fail(ctx, AM_STATUS_BAD_INPUT,
                       "%s: tensor mask: example %lld, position %lld: %d is not 0 or 1",
                       am_file_path(rf->examples), (long long)i, (long long)t,
                       m[i * T + t]);
      ones += m[i * T + t];
    }
    if (ones != want)
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor lengths: example %lld: %d, but its mask has %lld tokens",
                     am_file_path(rf->examples), (long long)i, want, (long long)ones);
  }
  return AM_STATUS_OK;
}

static am_status read_layout(am_ctx_t *ctx, am_run_t *rf) {
  am_layout_t *lay = &rf->lay;
  const json_t *ds = json_object_get(rf->summary, "dataset");
  const json_t *opt =
      json_object_get(json_object_get(rf->summary, "provenance"), "options");
  int64_t N = 0, T = 0, L = 1, H = 1;
  am_status st;
  am_plan_init(&lay->plan);
  if ((st = get_int(ctx, rf, ds, "dataset", "examples", 0, INT64_C(1) << 40, &N)) ||
      (st = get_int(ctx, rf, ds, "dataset", "max_tokens", 0, 1 << 20, &T)) ||
      (st = get_int(ctx, rf, ds, "dataset", "layers", 1, 65536, &L)) ||
      (st = get_int(ctx, rf, ds, "dataset", "heads", 1, 65536 / L, &H)))
    return st;
  lay->N = N;
  lay->T = (int)T;
  lay->L = (int)L;
  lay->H = (int)H;
  if (!json_is_object(opt))
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s/summary.json: provenance.options: missing",
                   rf->dir);
  if ((st = read_plan(ctx, rf, opt)) || (st = read_maps(ctx, rf, opt)) ||
      (st = read_pairs(ctx, rf, opt)) || (st = read_worst_pair(ctx, rf)))
    return st;
  read_roles(rf);
  if (am_target_several(&lay->plan)) {
    char where[4200];
    snprintf(where, sizeof where, "%s/summary.json", rf->dir);
    if ((st = am_steps_options_read(ctx, json_object_get(opt, "steps"), where, lay)))
      return st;
  }
  char where[4200];
  snprintf(where, sizeof where, "%s/summary.json", rf->dir);
  if ((st = am_cross_options_read(ctx, json_object_get(opt, "cross"), where, lay)))
    return st;
  return am_layout_specs(ctx, lay);
}

am_status am_run_read_summary(am_ctx_t *ctx, const char *dir, json_t **out) {
  *out = NULL;
  am_run_t *rf = calloc(1, sizeof *rf);
  if (!rf)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  snprintf(rf->dir, sizeof rf->dir, "%s", dir);
  am_status st = read_summary(ctx, rf);
  if (st == AM_STATUS_OK)
    *out = json_incref(rf->summary);
  am_run_close(rf);
  return st;
}

am_status am_run_open_checked(am_ctx_t *ctx, const char *dir, int with_checksum,
                              am_run_t **out) {
  *out = NULL;
  am_run_t *rf = calloc(1, sizeof *rf);
  if (!rf)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/')
    n--;
  snprintf(rf->dir, sizeof rf->dir, "%.*s", (int)n, dir);
  char path[4200];
  snprintf(path, sizeof path, "%s/examples.safetensors", rf->dir);
  am_status st = read_summary(ctx, rf);
  if (st == AM_STATUS_OK && with_checksum)
    st = check_checksum(ctx, rf);
  if (st == AM_STATUS_OK)
    st = am_file_open(ctx, path, &rf->examples);
  if (st == AM_STATUS_OK)
    st = read_layout(ctx, rf);
  if (st == AM_STATUS_OK)
    st = check_tensors(ctx, rf);
  if (st == AM_STATUS_OK)
    st = check_mask(ctx, rf);
  if (st == AM_STATUS_OK && rf->lay.several)
    st = am_steps_check_file(ctx, rf->examples, &rf->lay);
  if (st == AM_STATUS_OK && with_checksum) /* a live run's token strings */
    st = am_run_tokens_check(ctx, rf);
  if (st != AM_STATUS_OK) {
    am_run_close(rf);
    return st;
  }
  *out = rf;
  return AM_STATUS_OK;
}

am_status am_run_open(am_ctx_t *ctx, const char *run_dir, am_run_t **out) {
  if (!out)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "am_run_open: out is NULL");
  if (!run_dir) {
    *out = NULL;
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "am_run_open: run_dir is NULL");
  }
  am_clear_error(ctx);
  return am_run_open_checked(ctx, run_dir, 1, out);
}

void am_run_close(am_run_t *rf) {
  if (!rf)
    return;
  json_decref(rf->summary);
  free(rf->summary_text);
  am_file_close(rf->examples);
  free(rf);
}

const am_file_t *am_run_examples(const am_run_t *rf) { return rf ? rf->examples : NULL; }
const char *am_run_summary(const am_run_t *rf) { return rf ? rf->summary_text : NULL; }
int am_run_map_count(const am_run_t *rf) { return rf ? rf->lay.nmaps : 0; }
const char *am_run_map_name(const am_run_t *rf, int i) {
  return rf && i >= 0 && i < rf->lay.nmaps ? rf->lay.maps[i].name : NULL;
}
int am_run_pair_count(const am_run_t *rf) { return rf ? rf->lay.npairs : 0; }
const char *am_run_pair_name(const am_run_t *rf, int i) {
  return rf && i >= 0 && i < rf->lay.npairs ? rf->lay.pair_names[i] : NULL;
}
