/* faith_meta.c — the rows of am_faith_t and the checks of the `attnmap.faithfulness`
 * metadata shared by PROBS.safetensors and a run's faithfulness.safetensors
 * (docs/faithfulness.md, "Files"). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "pipeline/faith.h"

am_status am_faith_alloc(am_ctx_t *ctx, am_faith_t *f) {
  size_t n = (size_t)f->N, mk = n * (size_t)f->M * (size_t)f->K, m = n * (size_t)f->M,
         ms = m * (size_t)f->S;
  f->p_full = calloc(n ? n : 1, sizeof(float));
  f->target = calloc(n ? n : 1, sizeof(int32_t));
  f->tokens = calloc(n ? n : 1, sizeof(int32_t));
  f->comp = calloc(mk ? mk : 1, sizeof(float));
  f->suff = calloc(mk ? mk : 1, sizeof(float));
  f->aopc_c = calloc(m ? m : 1, sizeof(float));
  f->aopc_s = calloc(m ? m : 1, sizeof(float));
  f->del = calloc(ms ? ms : 1, sizeof(float));
  f->ins = calloc(ms ? ms : 1, sizeof(float));
  f->del_area = calloc(m ? m : 1, sizeof(float));
  f->ins_area = calloc(m ? m : 1, sizeof(float));
  if (!f->p_full || !f->target || !f->tokens || !f->comp || !f->suff || !f->aopc_c ||
      !f->aopc_s || !f->del || !f->ins || !f->del_area || !f->ins_area)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory for %lld faithfulness rows",
                   (long long)f->N);
  return AM_STATUS_OK;
}

void am_faith_free(am_faith_t *f) {
  if (!f)
    return;
  free(f->p_full);
  free(f->target);
  free(f->tokens);
  free(f->comp);
  free(f->suff);
  free(f->aopc_c);
  free(f->aopc_s);
  free(f->del);
  free(f->ins);
  free(f->del_area);
  free(f->ins_area);
  json_decref(f->meta);
  memset(f, 0, sizeof *f);
}

static const char *const modes[] = {"delete", "mask", "pad", "image_baseline", NULL};
static const char *const targets[] = {"predicted", "label", NULL};

static int one_of(const char *s, const char *const *list) {
  for (int i = 0; s && list[i]; i++)
    if (strcmp(s, list[i]) == 0)
      return 1;
  return 0;
}

static am_status check_maps(am_ctx_t *ctx, const char *file, const json_t *maps,
                            const char *const *run_maps, int nrun, am_faith_t *f) {
  size_t n = json_array_size(maps);
  if (!json_is_array(maps) || n < 2 || n > AM_FAITH_MAX_MAPS)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: metadata %s: maps: not an array of 2 to %d names (the maps, then "
                   "\"random\")",
                   file, AM_FAITH_META, AM_FAITH_MAX_MAPS);
  for (size_t m = 0; m < n; m++) {
    const char *name = json_string_value(json_array_get(maps, m));
    if (!name || !*name || strlen(name) > 120)
      return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: metadata %s: maps[%zu]: not a name",
                     file, AM_FAITH_META, m);
    for (size_t q = 0; q < m; q++)
      if (strcmp(name, f->maps[q]) == 0)
        return am_fail(ctx, AM_STATUS_BAD_INPUT,
                       "%s: metadata %s: maps: \"%s\" named twice", file, AM_FAITH_META,
                       name);
    int random = strcmp(name, "random") == 0, known = random || !run_maps;
    for (int r = 0; !known && r < nrun; r++)
      known = strcmp(name, run_maps[r]) == 0;
    if (!known)
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: metadata %s: maps: \"%s\" is not a map of the run", file,
                     AM_FAITH_META, name);
    if (random != (m + 1 == n))
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: metadata %s: maps: \"random\" must be the last name, once", file,
                     AM_FAITH_META);
    f->maps[m] = name;
  }
  f->M = (int)n;
  return AM_STATUS_OK;
}

static am_status check_bins(am_ctx_t *ctx, const char *file, const json_t *bins,
                            am_faith_t *f) {
  size_t n = json_array_size(bins);
  if (!json_is_array(bins) || n < 1 || n > AM_FAITH_MAX_BINS)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: metadata %s: bins: not an array of 1 to %d percentages", file,
                   AM_FAITH_META, AM_FAITH_MAX_BINS);
  for (size_t k = 0; k < n; k++) {
    const json_t *b = json_array_get(bins, k);
    double v = json_is_number(b) ? json_number_value(b) : NAN;
    if (!(v > 0 && v <= 100) || (k > 0 && !(v > f->bins[k - 1])))
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: metadata %s: bins[%zu]: not strictly increasing in (0, 100]",
                     file, AM_FAITH_META, k);
    f->bins[k] = v;
  }
  f->K = (int)n;
  return AM_STATUS_OK;
}

am_status am_faith_meta_read(am_ctx_t *ctx, const char *file, json_t *meta,
                             const char *const *run_maps, int nrun_maps, am_faith_t *f) {
  if (!json_is_object(meta))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: metadata %s: missing or not a JSON object", file, AM_FAITH_META);
  const json_t *v = json_object_get(meta, "version");
  if (!json_is_integer(v) || json_integer_value(v) != 1)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: metadata %s: version: not 1 (the only version this attnmap reads)",
                   file, AM_FAITH_META);
  am_status st =
      check_maps(ctx, file, json_object_get(meta, "maps"), run_maps, nrun_maps, f);
  if (st == AM_STATUS_OK)
    st = check_bins(ctx, file, json_object_get(meta, "bins"), f);
  if (st != AM_STATUS_OK)
    return st;
  const json_t *steps = json_object_get(meta, "steps");
  int ok = json_is_array(steps) && json_array_size(steps) == AM_FAITH_STEPS;
  for (int s = 0; ok && s < AM_FAITH_STEPS; s++) {
    const json_t *x = json_array_get(steps, (size_t)s);
    ok = json_is_number(x) && json_number_value(x) == 10.0 * s;
  }
  if (!ok)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: metadata %s: steps: not [0, 10, ..., 100]", file, AM_FAITH_META);
  f->S = AM_FAITH_STEPS;
  const char *mode = json_string_value(json_object_get(meta, "mode"));
  if (!one_of(mode, modes))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: metadata %s: mode: \"%.40s\" is not delete, mask, pad or "
                   "image_baseline",
                   file, AM_FAITH_META, mode ? mode : "(missing)");
  const char *target = json_string_value(json_object_get(meta, "target"));
  if (!one_of(target, targets))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: metadata %s: target: \"%.40s\" is not predicted or label", file,
                   AM_FAITH_META, target ? target : "(missing)");
  if (!json_is_integer(json_object_get(meta, "seed")))
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: metadata %s: seed: not an integer", file,
                   AM_FAITH_META);
  if (!json_is_string(json_object_get(meta, "k_rounding")))
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: metadata %s: k_rounding: not a string",
                   file, AM_FAITH_META);
  static const char *const texts[] = {"model", "rank", "task"}; /* optional */
  for (int k = 0; k < 3; k++) {
    const json_t *v = json_object_get(meta, texts[k]);
    if (v && !json_is_string(v))
      return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: metadata %s: %s: not a string", file,
                     AM_FAITH_META, texts[k]);
  }
  f->meta = json_incref(meta);
  return AM_STATUS_OK;
}
