/* live_batches.c — see live_batches.h. */
#include "support/live_batches.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned next(unsigned *s) {
  *s = *s * 1103515245u + 12345u;
  return (*s >> 8) & 0xFFFFFF;
}

static const am_named_tensor_t *find(const lb_batch_t *b, const char *name) {
  int i = dsb_find(b->ds, b->ntensors, name);
  return i >= 0 ? &b->ds->list[i] : NULL;
}

/* Token strings: per position (even batches) or per valid token (odd), some not ASCII. */
static int make_tokens(lb_batch_t *b, int index) {
  const dsb_spec_t *p = &b->ds->spec;
  b->tok = calloc((size_t)p->B * (size_t)p->T + 1, sizeof *b->tok);
  b->off = calloc((size_t)p->B + 1, sizeof *b->off);
  json_t *all = json_array();
  int64_t k = 0;
  for (int e = 0; b->tok && b->off && e < p->B; e++) {
    json_t *row = json_array();
    for (int t = 0; t < p->T; t++) {
      int valid = t >= b->ds->start[e] && t < b->ds->start[e] + b->ds->len[e];
      if (index % 2 == 1 && !valid)
        continue;
      char s[48];
      int64_t id = b->ds->ids ? b->ds->ids[(size_t)e * p->T + t] : t;
      snprintf(s, sizeof s, "%s%lld", id % 3 == 0 ? "\xc3\xa9t" : "t", (long long)id);
      b->tok[k++] = strdup(s);
      json_array_append_new(row, json_string(s));
    }
    b->off[e + 1] = k;
    json_array_append_new(all, row);
  }
  b->tokens_json = json_dumps(all, JSON_COMPACT);
  json_decref(all);
  b->extras.tokens = (const char *const *)b->tok;
  b->extras.token_offsets = b->off;
  return b->tokens_json ? 0 : -1;
}

/* am_arrays_t and am_batch_extras_t over the dataset's tensors. */
static void bind(lb_batch_t *b, const lb_config_t *c) {
  const dsb_spec_t *p = &b->ds->spec;
  size_t per = (size_t)p->B * p->H * p->T * p->T * am_dtype_size(p->dtype);
  const am_named_tensor_t *att = find(b, "attentions"), *grad = find(b, "attention_grads");
  for (int l = 0; l < p->L; l++) {
    b->att[l] = (const char *)att->tensor.data + (size_t)l * per;
    b->grad[l] = grad ? (const char *)grad->tensor.data + (size_t)l * per : NULL;
  }
  am_arrays_t *in = &b->in;
  *in = (am_arrays_t){.layers = p->L,
                      .batch = p->B,
                      .heads = p->H,
                      .tokens = p->T,
                      .dtype = p->dtype,
                      .attentions = b->att,
                      .attention_grads = grad ? b->grad : NULL,
                      .attention_mask = find(b, "attention_mask")->tensor.data,
                      .attention_mask_dtype = AM_DTYPE_I64,
                      .grid = c->grid};
  const am_named_tensor_t *t;
  if ((t = find(b, "special_tokens_mask"))) {
    in->special_tokens_mask = t->tensor.data;
    in->special_tokens_mask_dtype = AM_DTYPE_I64;
    b->extras.input_ids = find(b, "input_ids")->tensor.data;
    b->extras.input_ids_dtype = AM_DTYPE_I64;
  }
  if ((t = find(b, "saliency.ig"))) {
    b->sal_names[0] = "ig";
    b->sal[0] = t->tensor.data;
    in->saliency_count = 1;
    in->saliency_names = b->sal_names;
    in->saliency = b->sal;
    in->saliency_dtype = AM_DTYPE_F32;
  }
  if ((t = find(b, "inputs_embeds"))) {
    in->embed_dim = p->embed_dim;
    in->embeds_dtype = AM_DTYPE_F32;
    in->inputs_embeds = t->tensor.data;
    in->inputs_embeds_grads = find(b, "inputs_embeds_grads")->tensor.data;
  }
  if ((t = find(b, "labels"))) {
    b->extras.labels = t->tensor.data;
    b->extras.labels_dtype = AM_DTYPE_I64;
    b->extras.predictions = find(b, "predictions")->tensor.data;
    b->extras.predictions_dtype = AM_DTYPE_I64;
  }
}

int lb_make(lb_set_t *s, const lb_config_t *cfg, int n, unsigned seed) {
  memset(s, 0, sizeof *s);
  s->cfg = *cfg;
  s->n = n;
  s->b = calloc((size_t)n, sizeof *s->b);
  unsigned r = seed;
  for (int i = 0; s->b && i < n; i++) {
    lb_batch_t *b = &s->b[i];
    int B = 1 + (int)(next(&r) % (unsigned)cfg->max_B);
    int T = cfg->fixed_T ? cfg->fixed_T : 2 + (int)(next(&r) % (unsigned)(cfg->max_T - 1));
    int lengths[256];
    for (int e = 0; e < B && e < 256; e++)
      lengths[e] = cfg->fixed_T ? T : (int)(next(&r) % (unsigned)(T + 1));
    dsb_spec_t spec = {.L = cfg->L,
                       .H = cfg->H,
                       .B = B,
                       .T = T,
                       .dtype = cfg->dtype,
                       .lengths = lengths,
                       .left_pad = i % 3 == 2,
                       .grads = cfg->grads,
                       .saliency = cfg->saliency,
                       .embed_dim = cfg->embed_dim,
                       .labels = cfg->labels,
                       .special = cfg->special,
                       .seed = seed + 1,
                       .first = s->N};
    if (!(b->ds = dsb_build(&spec)))
      return -1;
    b->ntensors = dsb_tensors(b->ds);
    bind(b, cfg);
    if (cfg->tokens && make_tokens(b, i) != 0)
      return -1;
    s->N += B;
    s->T = T > s->T ? T : s->T;
  }
  return s->b ? 0 : -1;
}

void lb_free(lb_set_t *s) {
  for (int i = 0; s->b && i < s->n; i++) {
    lb_batch_t *b = &s->b[i];
    for (int64_t k = 0; b->off && k < b->off[b->ds->spec.B]; k++)
      free(b->tok[k]);
    free(b->tok);
    free(b->off);
    free(b->tokens_json);
    dsb_free(b->ds);
  }
  free(s->b);
  memset(s, 0, sizeof *s);
}

int64_t lb_first(const lb_set_t *s, int i) {
  int64_t first = 0;
  for (int k = 0; k < i; k++)
    first += s->b[k].ds->spec.B;
  return first;
}

int lb_write_shards(const lb_set_t *s, const char *dir) {
  char exporter[64];
  snprintf(exporter, sizeof exporter, "{\"target\":\"%s\"}",
           s->cfg.target ? s->cfg.target : "");
  for (int i = 0; i < s->n; i++) {
    const char *meta[8];
    int m = 0;
    if (s->cfg.model)
      meta[m++] = "model", meta[m++] = s->cfg.model;
    if (s->cfg.grid)
      meta[m++] = "attnmap.grid", meta[m++] = s->cfg.grid;
    if (s->cfg.target)
      meta[m++] = "attnmap.exporter", meta[m++] = exporter;
    if (s->b[i].tokens_json)
      meta[m++] = "attnmap.tokens", meta[m++] = s->b[i].tokens_json;
    char path[512];
    snprintf(path, sizeof path, "%s/shard-%04d.safetensors", dir, i);
    if (dsb_write_list(path, s->b[i].ds->list, s->b[i].ntensors, meta, m / 2) != 0)
      return -1;
  }
  return 0;
}

void lb_plan(const lb_set_t *s, am_plan_t *plan) {
  am_plan_init(plan);
  plan->target_recorded = s->cfg.target != NULL;
}

am_stream_info_t lb_info(const lb_set_t *s) {
  return (am_stream_info_t){.examples = s->N,
                            .max_tokens = s->T,
                            .model = s->cfg.model,
                            .grid = s->cfg.grid,
                            .target = s->cfg.target};
}

am_status lb_analyze(am_ctx_t *ctx, const char *dir, const am_plan_t *plan,
                     const char *run) {
  am_dataset_t *ds = NULL;
  am_status st = am_dataset_open(ctx, &dir, 1, &ds);
  am_run_options_t opts;
  am_run_options_init(&opts);
  if (st == AM_STATUS_OK)
    st = am_run_analyze(ctx, ds, plan, run, &opts);
  am_dataset_close(ds);
  return st;
}

int lb_same_runs(const char *a, const char *b, char *why, size_t len) {
  char pa[512], pb[512];
  size_t na = 0, nb = 0;
  char *x = dsb_read_file(dsb_join(pa, sizeof pa, a, "examples.safetensors"), &na);
  char *y = dsb_read_file(dsb_join(pb, sizeof pb, b, "examples.safetensors"), &nb);
  int same = x && y && na == nb && memcmp(x, y, na) == 0;
  if (!same)
    snprintf(why, len, "examples.safetensors: %zu and %zu bytes, %s", na, nb,
             x && y ? "contents differ" : "missing");
  free(x);
  free(y);
  json_t *s1 = json_load_file(dsb_join(pa, sizeof pa, a, "summary.json"), 0, NULL);
  json_t *s2 = json_load_file(dsb_join(pb, sizeof pb, b, "summary.json"), 0, NULL);
  json_object_del(s1, "provenance");
  json_object_del(s2, "provenance");
  if (same && !(s1 && s2 && json_equal(s1, s2))) {
    same = 0;
    char *t1 = s1 ? json_dumps(json_object_get(s1, "dataset"), JSON_COMPACT) : NULL;
    char *t2 = s2 ? json_dumps(json_object_get(s2, "dataset"), JSON_COMPACT) : NULL;
    snprintf(why, len, "summary.json differs (dataset %s vs %s)", t1 ? t1 : "-",
             t2 ? t2 : "-");
    free(t1);
    free(t2);
  }
  json_decref(s1);
  json_decref(s2);
  return same;
}
