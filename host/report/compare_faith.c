/* compare_faith.c — the faithfulness part of `report --baseline` (docs/faithfulness.md,
 * "Comparison"): for every map both runs scored, AOPC comprehensiveness and sufficiency and
 * the deletion and insertion areas compared as the other metrics are (am_compare_z: the
 * change of the mean in pooled standard deviations, from the Welford n, mean, m2 of each
 * summary), the two rankings side by side, and notes when the runs were perturbed
 * differently (mode, bins, target, model). */
#include <math.h>
#include <string.h>

#include "report/compare.h"

static const char *const quantities[][2] = {{"comprehensiveness", "aopc"},
                                            {"sufficiency", "aopc"},
                                            {"deletion", "area"},
                                            {"insertion", "area"}};

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *entry(const char *map, int q, json_t *a, json_t *b, double thr, int *drift) {
  double sd, na = am_jnum(json_object_get(a, "n")), nb = am_jnum(json_object_get(b, "n"));
  double ma = am_jnum(json_object_get(a, "mean")), mb = am_jnum(json_object_get(b, "mean"));
  double z = am_compare_z(na, ma, am_jnum(json_object_get(a, "m2")), nb, mb,
                          am_jnum(json_object_get(b, "m2")), &sd);
  *drift = !isnan(z) && fabs(z) > thr;
  json_t *o = json_pack("{s:s,s:o}", "map", map, "quantity",
                        json_sprintf("%s.%s", quantities[q][0], quantities[q][1]));
  json_object_set_new(o, "run", num(ma));
  json_object_set_new(o, "baseline", num(mb));
  json_object_set_new(o, "delta", num(ma - mb));
  json_object_set_new(o, "sd", num(sd));
  json_object_set_new(o, "z", num(z));
  if (isinf(z))
    json_object_set_new(o, "z_infinite", json_integer(z > 0 ? 1 : -1));
  json_object_set_new(o, "drift", json_boolean(*drift));
  return o;
}

static json_t *ranking(json_t *sec) {
  json_t *out = json_array(), *e;
  size_t i;
  json_array_foreach(json_object_get(sec, "ranking"), i, e)
      json_array_append(out, json_object_get(e, "map"));
  return out;
}

json_t *am_compare_faithfulness(json_t *run, json_t *base, double thr, int64_t *drifted) {
  json_t *a = json_object_get(run, "faithfulness"),
         *b = json_object_get(base, "faithfulness");
  *drifted = 0;
  if (!a && !b)
    return json_null();
  json_t *notes = json_array(), *entries = json_array(), *only = json_array();
  if (!a || !b)
    json_array_append_new(
        notes, json_sprintf("only the %s has faithfulness scores", a ? "run" : "baseline"));
  static const char *const keys[] = {"mode",       "bins", "target", "model",
                                     "k_rounding", "rank", "task"};
  for (size_t k = 0; a && b && k < sizeof keys / sizeof *keys; k++)
    if (!json_equal(am_jget(a, "metadata", keys[k], NULL),
                    am_jget(b, "metadata", keys[k], NULL)))
      json_array_append_new(
          notes, json_sprintf("faithfulness %s differs from the baseline", keys[k]));
  const char *map;
  json_t *rm;
  json_object_foreach(json_object_get(a, "maps"), map, rm) {
    json_t *bm = am_jget(b, "maps", map, NULL);
    if (!bm) {
      json_array_append_new(only, json_string(map));
      continue;
    }
    for (int q = 0; q < 4; q++) {
      int drift = 0;
      json_array_append_new(
          entries,
          entry(map, q, am_jget(rm, quantities[q][0], quantities[q][1], NULL),
                am_jget(bm, quantities[q][0], quantities[q][1], NULL), thr, &drift));
      *drifted += drift;
    }
  }
  return json_pack("{s:o,s:o,s:o,s:{s:o,s:o}}", "notes", notes, "entries", entries,
                   "only_in_run", only, "ranking", "run", ranking(a), "baseline",
                   ranking(b));
}
