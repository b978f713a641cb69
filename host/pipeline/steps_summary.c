/* steps_summary.c — a run with several targets in summary.json (docs/generation.md):
 * provenance.options.steps (what the run reader needs to rebuild the step tensors) and the
 * "steps" section, computed from examples.safetensors as written, in example order, so that
 * analyze, --resume and merge give the same numbers from the same rows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/options.h"
#include "io/file.h"
#include "pipeline/summary.h"

#define AM_STEPS_MAX (1 << 20)

json_t *am_steps_options_json(const am_layout_t *lay) {
  json_t *maps = json_array();
  for (int m = 0; m < lay->nmaps; m++)
    if (lay->map_steps[m])
      json_array_append_new(maps, json_string(lay->maps[m].name));
  return json_pack("{s:i,s:s,s:o}", "max_steps", lay->S, "gradients",
                   lay->step_grads ? "per_step" : "shared", "maps", maps);
}

am_status am_steps_options_read(am_ctx_t *ctx, const json_t *steps, const char *where,
                                am_layout_t *lay) {
  const json_t *S = json_object_get(steps, "max_steps");
  const json_t *maps = json_object_get(steps, "maps");
  const char *grads = json_string_value(json_object_get(steps, "gradients"));
  if (!json_is_integer(S) || json_integer_value(S) < 1 ||
      json_integer_value(S) > AM_STEPS_MAX || !json_is_array(maps) || !grads ||
      (strcmp(grads, "per_step") != 0 && strcmp(grads, "shared") != 0))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: provenance.options.steps: expected max_steps in [1,%d], gradients "
                   "per_step or shared and a list of maps",
                   where, AM_STEPS_MAX);
  lay->several = 1;
  lay->S = (int)json_integer_value(S);
  lay->step_grads = strcmp(grads, "per_step") == 0;
  memset(lay->map_steps, 0, sizeof lay->map_steps);
  for (size_t i = 0; i < json_array_size(maps); i++) {
    const char *name = json_string_value(json_array_get(maps, i));
    int found = -1;
    for (int m = 0; name && m < lay->nmaps; m++)
      if (strcmp(lay->maps[m].name, name) == 0)
        found = m;
    if (found < 0)
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: provenance.options.steps.maps: '%s' is not one of the run's maps",
                     where, name ? name : "(not a string)");
    lay->map_steps[found] = 1;
  }
  am_layout_step_maps(lay);
  return AM_STATUS_OK;
}

/* The data of a tensor of f, or NULL; not aligned (files are read where they lie). */
static const unsigned char *tensor_data(const am_file_t *f, const char *name) {
  for (int i = 0; i < f->ntensors; i++)
    if (strcmp(f->names[i], name) == 0)
      return (const unsigned char *)f->tensors[i].data;
  return NULL;
}

static int32_t i32_at(const unsigned char *p, size_t i) {
  int32_t v;
  memcpy(&v, p + 4 * i, 4);
  return v;
}

static float f32_at(const unsigned char *p, size_t i) {
  float v;
  memcpy(&v, p + 4 * i, 4);
  return v;
}

am_status am_steps_check_file(am_ctx_t *ctx, const am_file_t *f, const am_layout_t *lay) {
  const unsigned char *nsteps = tensor_data(f, "steps"),
                      *pos = tensor_data(f, "step_positions");
  const unsigned char *mask = tensor_data(f, "mask");
  int64_t S = lay->S, T = lay->T;
  for (int64_t e = 0; nsteps && pos && mask && e < lay->N; e++) {
    int32_t k = i32_at(nsteps, (size_t)e), prev = -1;
    if (k < 0 || k > S)
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor steps: example %lld: %d steps is outside [0,%lld]",
                     f->path, (long long)e, k, (long long)S);
    for (int64_t s = 0; s < S; s++) {
      int32_t p = i32_at(pos, (size_t)(e * S + s));
      int ok = s < k ? p > prev && p < T && mask[e * T + p] == 1 : p == -1;
      if (!ok)
        return am_fail(ctx, AM_STATUS_BAD_INPUT,
                       "%s: tensor step_positions: example %lld, step %lld: %d is not %s",
                       f->path, (long long)e, (long long)s, p,
                       s < k ? "a valid position after the previous step's" : "-1");
      prev = p;
    }
  }
  return AM_STATUS_OK;
}

/* Per step position k: count, prefix_share per map, per pair and metric n/mean/nan. */
static json_t *per_step(const am_layout_t *lay, const am_file_t *f) {
  int64_t N = lay->N, S = lay->S, T = lay->T, P = lay->npairs;
  const unsigned char *nsteps = tensor_data(f, "steps"),
                      *pos = tensor_data(f, "step_positions");
  const unsigned char *mask = tensor_data(f, "mask");
  json_t *out = json_array();
  for (int64_t k = 0; k < S; k++) {
    int64_t count = 0;
    for (int64_t e = 0; e < N; e++)
      count += i32_at(nsteps, (size_t)e) > k;
    json_t *share = json_object(), *agree = json_object();
    for (int m = 0; m < lay->nmaps; m++) {
      char name[96];
      snprintf(name, sizeof name, "%s.steps", lay->maps[m].name);
      const unsigned char *rows = lay->map_steps[m] ? tensor_data(f, name) : NULL;
      double sum = 0.0;
      int64_t n = 0;
      for (int64_t e = 0; rows && e < N; e++) {
        if (i32_at(nsteps, (size_t)e) <= k)
          continue;
        size_t row = ((size_t)e * (size_t)S + (size_t)k) * (size_t)T;
        int64_t first = i32_at(pos, (size_t)e * (size_t)S);
        double all = 0.0, before = 0.0;
        for (int64_t t = 0; t < T; t++) {
          double a = fabs((double)f32_at(rows, row + (size_t)t));
          all += a;
          before += (t < first && mask[(size_t)e * (size_t)T + (size_t)t]) ? a : 0.0;
        }
        if (all > 0.0) {
          sum += before / all;
          n++;
        }
      }
      if (rows)
        json_object_set_new(share, lay->maps[m].name,
                            n ? json_real(sum / (double)n) : json_null());
    }
    for (int p = 0; lay->step_pairs && p < P; p++) {
      if (!lay->map_steps[lay->pair_a[p]] || !lay->map_steps[lay->pair_b[p]])
        continue;
      json_t *metrics = json_object();
      for (int q = 0; q < AM_METRIC_COUNT; q++) {
        char metric[48], name[96];
        am_layout_metric_name(lay, q, metric, sizeof metric);
        snprintf(name, sizeof name, "agreement.steps.%s", metric);
        const unsigned char *v = tensor_data(f, name);
        double sum = 0.0;
        int64_t n = 0, nan = 0;
        for (int64_t e = 0; v && e < N; e++) {
          if (i32_at(nsteps, (size_t)e) <= k)
            continue;
          double x = f32_at(v, ((size_t)e * (size_t)S + (size_t)k) * (size_t)P + (size_t)p);
          if (isnan(x))
            nan++;
          else {
            sum += x;
            n++;
          }
        }
        json_object_set_new(metrics, metric,
                            json_pack("{s:I,s:o,s:I}", "n", (json_int_t)n, "mean",
                                      n ? json_real(sum / (double)n) : json_null(), "nan",
                                      (json_int_t)nan));
      }
      json_object_set_new(agree, lay->pair_names[p], metrics);
    }
    json_array_append_new(out, json_pack("{s:I,s:o,s:o}", "count", (json_int_t)count,
                                         "prefix_share", share, "agreement", agree));
  }
  return out;
}

am_status am_steps_summary_add(am_ctx_t *ctx, json_t *doc, const char *dir,
                               const am_layout_t *lay) {
  if (!lay->several)
    return AM_STATUS_OK;
  char path[4200], target[48];
  snprintf(path, sizeof path, "%s/examples.safetensors", dir);
  am_file_t *f = NULL;
  am_status st = am_safetensors_open(ctx, path, &f);
  if (st != AM_STATUS_OK)
    return st;
  const unsigned char *nsteps = tensor_data(f, "steps");
  if (!nsteps || !tensor_data(f, "step_positions") || !tensor_data(f, "mask")) {
    am_file_close(f);
    return am_fail(ctx, AM_STATUS_INTERNAL, "%s: the step tensors are missing", path);
  }
  int64_t with = 0;
  for (int64_t e = 0; e < lay->N; e++)
    with += i32_at(nsteps, (size_t)e) > 0;
  am_target_text(&lay->plan, target, sizeof target);
  json_t *sec =
      json_pack("{s:s,s:i,s:I,s:s,s:o}", "target", target, "max_steps", lay->S, "examples",
                (json_int_t)with, "gradients", lay->step_grads ? "per_step" : "shared",
                "per_step", per_step(lay, f));
  am_file_close(f);
  if (!sec)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory building summary.json");
  json_object_set_new(doc, "steps", sec);
  return AM_STATUS_OK;
}
