/* compare_runs.c — see compare_runs.h. */
#include "support/compare_runs.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnmap.h"
#include "support/parity.h"

#define RTOL 1e-5
#define RTOL_ROWS 1e-4
#define RTOL_SUMMARY 1e-4

static int ends_with(const char *s, const char *tail) {
  size_t a = strlen(s), b = strlen(tail);
  return a >= b && strcmp(s + a - b, tail) == 0;
}

static int same_shape(const am_tensor_t *a, const am_tensor_t *b) {
  if (a->dtype != b->dtype || a->ndim != b->ndim || a->nbytes != b->nbytes)
    return 0;
  for (int d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d])
      return 0;
  return 1;
}

static int compare_tensors(const am_file_t *got, const am_file_t *ref) {
  int bad = 0;
  if (am_file_tensor_count(got) != am_file_tensor_count(ref)) {
    fprintf(stderr, "examples.safetensors: %d tensors against %d\n",
            am_file_tensor_count(got), am_file_tensor_count(ref));
    bad++;
  }
  for (int i = 0; i < am_file_tensor_count(ref); i++) {
    const char *name = am_file_tensor_name(ref, i);
    const am_tensor_t *r = am_file_tensor(ref, i), *g = am_file_find(got, name);
    if (!g || !same_shape(g, r)) {
      fprintf(stderr, "examples.safetensors: %s %s\n", name,
              g ? "differs in dtype or shape" : "missing");
      bad++;
    } else if (r->dtype == AM_DTYPE_F32) {
      /* mapped tensor data need not be 4-byte aligned (safetensors does not pad): copies */
      float *gf = malloc(r->nbytes + 4), *rf = malloc(r->nbytes + 4);
      if (gf && rf) {
        memcpy(gf, g->data, r->nbytes);
        memcpy(rf, r->data, r->nbytes);
        bad += par_compare_floats(name, gf, rf, r->nbytes / 4,
                                  ends_with(name, ".rows") ? RTOL_ROWS : RTOL, "analyze",
                                  0) != 0;
      } else {
        bad++;
      }
      free(gf);
      free(rf);
    } else if (memcmp(g->data, r->data, r->nbytes) != 0) {
      fprintf(stderr, "examples.safetensors: %s (%s) differs\n", name,
              am_dtype_name(r->dtype));
      bad++;
    }
  }
  const char *pg = am_file_metadata(got, "attnmap.pairs");
  const char *pr = am_file_metadata(ref, "attnmap.pairs");
  if ((pg == NULL) != (pr == NULL) || (pg && strcmp(pg, pr) != 0)) {
    fprintf(stderr, "examples.safetensors: attnmap.pairs differ\n");
    bad++;
  }
  return bad;
}

static int number_ok(double x, double y, double scale) {
  return fabs(x - y) <= RTOL_SUMMARY * scale + RTOL_SUMMARY * fabs(y);
}

static const char *extra_skip; /* cmp_runs_except's key, or NULL */

static int skipped(const char *key) {
  static const char *const skip[] = {"provenance", "timings", "backend", "device",
                                     "created",    "inputs",  "threads"};
  if (extra_skip && strcmp(key, extra_skip) == 0)
    return 1;
  for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
    if (strcmp(key, skip[i]) == 0)
      return 1;
  return 0;
}

/* Differences under path; scale: the largest |number| of the enclosing array (0: none). */
static int walk(json_t *a, json_t *b, const char *path, double scale) {
  if (json_is_number(a) && json_is_number(b)) {
    const double x = json_number_value(a), y = json_number_value(b);
    if (number_ok(x, y, scale > 0 ? scale : fabs(y)))
      return 0;
    fprintf(stderr, "summary.json: %s: %.17g against %.17g\n", path, x, y);
    return 1;
  }
  if (json_is_object(a) && json_is_object(b)) {
    int bad = 0;
    const char *key;
    json_t *v;
    json_object_foreach(b, key, v) {
      if (skipped(key))
        continue;
      char sub[512];
      snprintf(sub, sizeof sub, "%s.%s", path, key);
      json_t *w = json_object_get(a, key);
      bad +=
          w ? walk(w, v, sub, 0) : (fprintf(stderr, "summary.json: %s missing\n", sub), 1);
    }
    json_object_foreach(a, key, v) if (!skipped(key) && !json_object_get(b, key)) {
      fprintf(stderr, "summary.json: %s.%s only in the run compared\n", path, key);
      bad++;
    }
    return bad;
  }
  if (json_is_array(a) && json_is_array(b)) {
    if (json_array_size(a) != json_array_size(b)) {
      fprintf(stderr, "summary.json: %s: lengths differ\n", path);
      return 1;
    }
    double s = 0;
    size_t i;
    json_t *v;
    json_array_foreach(b, i, v) if (json_is_number(v) && fabs(json_number_value(v)) > s) s =
        fabs(json_number_value(v));
    int bad = 0;
    json_array_foreach(b, i, v) {
      char sub[512];
      snprintf(sub, sizeof sub, "%s[%zu]", path, i);
      bad += walk(json_array_get(a, i), v, sub, json_is_number(v) ? s : 0);
    }
    return bad;
  }
  if (json_equal(a, b))
    return 0;
  fprintf(stderr, "summary.json: %s differs\n", path);
  return 1;
}

int cmp_runs(am_ctx_t *ctx, const char *got_dir, const char *ref_dir) {
  char pg[1024], pr[1024];
  int bad = 0;
  am_file_t *g = NULL, *r = NULL;
  snprintf(pg, sizeof pg, "%s/examples.safetensors", got_dir);
  snprintf(pr, sizeof pr, "%s/examples.safetensors", ref_dir);
  if (am_file_open(ctx, pg, &g) != AM_STATUS_OK ||
      am_file_open(ctx, pr, &r) != AM_STATUS_OK) {
    fprintf(stderr, "cannot open %s or %s\n", pg, pr);
    bad++;
  } else {
    bad += compare_tensors(g, r);
  }
  am_file_close(g);
  am_file_close(r);
  snprintf(pg, sizeof pg, "%s/summary.json", got_dir);
  snprintf(pr, sizeof pr, "%s/summary.json", ref_dir);
  json_t *jg = json_load_file(pg, JSON_ALLOW_NUL, NULL);
  json_t *jr = json_load_file(pr, JSON_ALLOW_NUL, NULL);
  if (!jg || !jr) {
    fprintf(stderr, "cannot read %s or %s\n", pg, pr);
    bad++;
  } else {
    bad += walk(jg, jr, "summary", 0);
  }
  json_decref(jg);
  json_decref(jr);
  return bad;
}

int cmp_runs_except(am_ctx_t *ctx, const char *got_dir, const char *ref_dir,
                    const char *key) {
  extra_skip = key;
  int bad = cmp_runs(ctx, got_dir, ref_dir);
  extra_skip = NULL;
  return bad;
}
