/* report_run.c — opens a run folder for the report: summary.json through jansson, the
 * per-example tensors of examples.safetensors through am_file_open, every shape checked
 * against N, T and the pair list before anything reads them. */
#include "report/report_run.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"

json_t *am_jget(json_t *root, ...) {
  va_list ap;
  va_start(ap, root);
  json_t *v = root;
  for (const char *k = va_arg(ap, const char *); k && v; k = va_arg(ap, const char *))
    v = json_is_object(v) ? json_object_get(v, k) : NULL;
  va_end(ap);
  return v;
}

double am_jnum(const json_t *v) { return json_is_number(v) ? json_number_value(v) : NAN; }
const char *am_jstr(const json_t *v) {
  return json_is_string(v) ? json_string_value(v) : NULL;
}

void am_jgrid(const json_t *v, int L, int H, double *out) {
  for (int l = 0; l < L; l++)
    for (int h = 0; h < H; h++)
      out[(size_t)l * H + h] =
          am_jnum(json_array_get(json_array_get(v, (size_t)l), (size_t)h));
}

float am_rr_f32(const am_tensor_t *t, int64_t i) {
  float f;
  memcpy(&f, (const char *)t->data + 4 * i, 4);
  return f;
}

int64_t am_rr_int(const am_tensor_t *t, int64_t i) {
  if (t->dtype == AM_DTYPE_U8)
    return ((const unsigned char *)t->data)[i];
  int32_t v;
  memcpy(&v, (const char *)t->data + 4 * i, 4);
  return v;
}

int am_rr_map_signed(const char *name) {
  static const char *const nonneg[] = {"attention_last",   "rollout",
                                       "grad_rollout",     "flow",
                                       "saliency.grad_l2", "saliency.abs_grad_x_input"};
  for (size_t i = 0; i < sizeof nonneg / sizeof *nonneg; i++)
    if (strcmp(name, nonneg[i]) == 0)
      return 0;
  return 1;
}

int am_rr_valid_positions(const am_report_run_t *run, int64_t i, int32_t *idx) {
  int n = 0;
  for (int p = 0; p < run->T; p++)
    if (am_rr_int(run->mask, i * run->T + p))
      idx[n++] = p;
  return n;
}

static am_status read_summary(am_ctx_t *ctx, const char *dir, json_t **out) {
  char path[4096];
  snprintf(path, sizeof path, "%s/summary.json", dir);
  json_error_t err;
  json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
  if (!doc)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: cannot read JSON: %s (line %d)", path,
                   err.text, err.line);
  if (!json_is_object(doc) || !json_is_object(am_jget(doc, "dataset", NULL))) {
    json_decref(doc);
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: not an attnmap summary (no \"dataset\")",
                   path);
  }
  *out = doc;
  return AM_STATUS_OK;
}

/* A tensor of the expected dtype and shape, or a message. shape[k] < 0: any. */
static am_status want(am_ctx_t *ctx, const am_file_t *f, const char *name,
                      const am_tensor_t *t, am_dtype dtype, int ndim,
                      const int64_t *shape) {
  int ok = t->dtype == dtype && t->ndim == ndim;
  for (int k = 0; ok && k < ndim; k++)
    ok = shape[k] < 0 || t->shape[k] == shape[k];
  if (ok)
    return AM_STATUS_OK;
  char buf[128] = "";
  for (int k = 0; k < ndim; k++)
    snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%lld", k ? "," : "",
             (long long)shape[k]);
  return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: expected %s [%s]",
                 am_file_path(f), name, am_dtype_name(dtype), buf);
}

static am_status read_pairs(am_ctx_t *ctx, am_report_run_t *run) {
  const char *text = am_file_metadata(run->file, "attnmap.pairs");
  if (!text)
    return AM_STATUS_OK;
  json_t *arr = json_loads(text, 0, NULL);
  size_t n = json_array_size(arr);
  int ok = json_is_array(arr) && n <= 100000;
  for (size_t i = 0; ok && i < n; i++)
    ok = am_jstr(json_array_get(arr, i)) != NULL;
  if (!ok) {
    json_decref(arr);
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: __metadata__ attnmap.pairs: not a JSON array of strings",
                   am_file_path(run->file));
  }
  run->pairs = calloc(n ? n : 1, sizeof *run->pairs);
  for (size_t i = 0; run->pairs && i < n; i++)
    if ((run->pairs[run->npairs] = strdup(am_jstr(json_array_get(arr, i)))))
      run->npairs++;
  json_decref(arr);
  if (!run->pairs || (size_t)run->npairs != n)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  return AM_STATUS_OK;
}

/* Per-example maps [N,T]: the attention maps and every saliency (not *.rows). */
static int is_map(const char *name) {
  static const char *const maps[] = {"attention_last", "rollout", "grad_rollout", "flow"};
  for (size_t i = 0; i < sizeof maps / sizeof *maps; i++)
    if (strcmp(name, maps[i]) == 0)
      return 1;
  return strncmp(name, "saliency.", 9) == 0 && !strstr(name, ".rows");
}

/* Sorts the examples file's tensors into maps and agreement metrics, checking shapes. */
static am_status find_tensors(am_ctx_t *ctx, am_report_run_t *run) {
  const am_file_t *f = run->file;
  int64_t nt[2] = {run->N, run->T}, np[2] = {run->N, run->npairs}, n1[1] = {run->N};
  am_status st = AM_STATUS_OK;
  for (int i = 0; i < am_file_tensor_count(f) && st == AM_STATUS_OK; i++) {
    const char *name = am_file_tensor_name(f, i);
    const am_tensor_t *t = am_file_tensor(f, i);
    if (strcmp(name, "labels") == 0 || strcmp(name, "predictions") == 0) {
      st = want(ctx, f, name, t, AM_DTYPE_I32, 1, n1);
      *(name[0] == 'l' ? &run->labels : &run->predictions) = t;
    } else if (strncmp(name, "agreement.", 10) == 0) {
      st = want(ctx, f, name, t, AM_DTYPE_F32, 2, np);
      if (st == AM_STATUS_OK && run->nmetrics < AM_RR_MAX_METRICS) {
        run->metric_names[run->nmetrics] = name + 10;
        run->metrics[run->nmetrics++] = t;
      }
    } else if (strcmp(name, "input_ids") == 0) {
      st = want(ctx, f, name, t, AM_DTYPE_I32, 2, nt);
      run->ids = t;
    } else if (is_map(name) && run->nmaps < AM_RR_MAX_MAPS) {
      st = want(ctx, f, name, t, AM_DTYPE_F32, 2, nt);
      run->map_names[run->nmaps] = name;
      run->maps[run->nmaps++] = t;
    }
  }
  return st;
}

/* Puts the maps in the order summary.json's options list them (analyze's order). */
static void order_maps(am_report_run_t *run) {
  json_t *maps = am_jget(run->summary, "provenance", "options", "maps", NULL);
  int next = 0;
  for (size_t k = 0; k < json_array_size(maps); k++) {
    const char *want_name = am_jstr(json_array_get(maps, k));
    for (int m = next; want_name && m < run->nmaps; m++)
      if (strcmp(run->map_names[m], want_name) == 0) {
        const char *n = run->map_names[m];
        const am_tensor_t *t = run->maps[m];
        memmove(&run->map_names[next + 1], &run->map_names[next],
                (size_t)(m - next) * sizeof *run->map_names);
        memmove(&run->maps[next + 1], &run->maps[next],
                (size_t)(m - next) * sizeof *run->maps);
        run->map_names[next] = n;
        run->maps[next++] = t;
        break;
      }
  }
}

static am_status open_examples(am_ctx_t *ctx, am_report_run_t *run) {
  char path[4096];
  snprintf(path, sizeof path, "%s/examples.safetensors", run->dir);
  am_status st = am_file_open(ctx, path, &run->file);
  if (st != AM_STATUS_OK)
    return st;
  run->mask = am_file_find(run->file, "mask");
  run->lengths = am_file_find(run->file, "lengths");
  if (!run->mask || !run->lengths)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: missing", path,
                   run->mask ? "lengths" : "mask");
  if (run->mask->ndim != 2 || run->mask->shape[1] > (1 << 20))
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor mask: expected U8 [N,T]", path);
  run->N = run->mask->shape[0];
  run->T = (int)run->mask->shape[1];
  int64_t nt[2] = {run->N, run->T}, n1[1] = {run->N};
  if ((st = want(ctx, run->file, "mask", run->mask, AM_DTYPE_U8, 2, nt)) != AM_STATUS_OK ||
      (st = want(ctx, run->file, "lengths", run->lengths, AM_DTYPE_I32, 1, n1)) !=
          AM_STATUS_OK ||
      (st = read_pairs(ctx, run)) != AM_STATUS_OK ||
      (st = find_tensors(ctx, run)) != AM_STATUS_OK)
    return st;
  order_maps(run);
  return AM_STATUS_OK;
}

am_status am_report_run_open(am_ctx_t *ctx, const char *dir, int with_examples,
                             am_report_run_t *run) {
  memset(run, 0, sizeof *run);
  run->dir = strdup(dir);
  if (!run->dir)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  am_status st = read_summary(ctx, dir, &run->summary);
  if (st == AM_STATUS_OK) {
    double L = am_jnum(am_jget(run->summary, "dataset", "layers", NULL));
    double H = am_jnum(am_jget(run->summary, "dataset", "heads", NULL));
    if (!(L >= 0 && L <= 4096 && H >= 0 && H <= 4096))
      st = am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s/summary.json: dataset.layers/heads missing", dir);
    run->L = (int)L;
    run->H = (int)H;
  }
  if (st == AM_STATUS_OK && with_examples)
    st = open_examples(ctx, run);
  if (st != AM_STATUS_OK)
    am_report_run_close(run);
  return st;
}

void am_report_run_close(am_report_run_t *run) {
  if (!run)
    return;
  json_decref(run->summary);
  am_file_close(run->file);
  for (int i = 0; i < run->npairs; i++)
    free(run->pairs[i]);
  free(run->pairs);
  free(run->dir);
  memset(run, 0, sizeof *run);
}
