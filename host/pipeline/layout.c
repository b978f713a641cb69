/* layout.c — resolves a plan against a dataset (see layout.h) and sets the plan's
 * defaults. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/options.h"
#include "pipeline/layout.h"

void am_plan_init(am_plan_t *plan) {
  memset(plan, 0, sizeof *plan);
  plan->methods = AM_METHOD_DEFAULT;
  plan->fusion = AM_FUSION_MEAN;
  plan->target = AM_TARGET_CLS;
  plan->normalize = AM_NORMALIZE_NONE;
  plan->topk = 5;
  plan->worst = 20;
  plan->histogram_bins = 40;
}

void am_run_options_init(am_run_options_t *opts) {
  memset(opts, 0, sizeof *opts);
  opts->checksums = 1;
  opts->checkpoint_s = 2.0;
}

static void add_map(am_layout_t *lay, const am_map_def_t *def, int sub, const char *name) {
  am_map_t *m = &lay->maps[lay->nmaps++];
  m->def = def;
  m->kind = def->kind;
  m->sub = sub;
  m->is_attention = def->is_attention;
  size_t k = strlen(name) < sizeof m->name ? strlen(name) : sizeof m->name - 1;
  memcpy(m->name, name, k);
  m->name[k] = '\0';
}

static int find_map(const am_layout_t *lay, const char *name, size_t len) {
  for (int i = 0; i < lay->nmaps; i++)
    if (strlen(lay->maps[i].name) == len && strncmp(lay->maps[i].name, name, len) == 0)
      return i;
  return -1;
}

static void add_pair(am_layout_t *lay, int a, int b) {
  lay->pair_a[lay->npairs] = a;
  lay->pair_b[lay->npairs] = b;
  char name[sizeof lay->pair_names[0]];
  snprintf(name, sizeof name, "%s~%s", lay->maps[a].name, lay->maps[b].name);
  memcpy(lay->pair_names[lay->npairs], name, sizeof name);
  lay->npairs++;
}

/* "a~b,c~d" → pairs; every map named must exist. */
static am_status parse_pairs(am_ctx_t *ctx, am_layout_t *lay, const char *text) {
  const char *p = text;
  while (*p) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    const char *tilde = memchr(p, '~', len);
    int a = tilde ? find_map(lay, p, (size_t)(tilde - p)) : -1;
    int b = tilde ? find_map(lay, tilde + 1, len - (size_t)(tilde + 1 - p)) : -1;
    if (a < 0 || b < 0 || a == b)
      return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                     "--pairs: '%.*s' is not MAP~MAP of two different maps this run makes",
                     (int)len, p);
    if (lay->npairs >= AM_MAX_PAIRS)
      return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "--pairs: too many pairs");
    add_pair(lay, a, b);
    p += len + (comma ? 1 : 0);
  }
  return AM_STATUS_OK;
}

static am_status need(am_ctx_t *ctx, const am_dataset_t *ds, const am_plan_t *plan,
                      unsigned method, unsigned role, const char *what,
                      const char *missing) {
  if ((plan->methods & method) && plan->methods_explicit && !(ds->roles & role))
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: needed by %s but not found",
                   ds->shards[0].path, missing, what);
  return AM_STATUS_OK;
}

static am_status check_plan(am_ctx_t *ctx, const am_dataset_t *ds, const am_plan_t *plan) {
  am_status st = am_options_check(ctx, AM_SCOPE_PLAN, plan, NULL, 0);
  if (st != AM_STATUS_OK)
    return st;
  const char *grads = ds->long_form ? "attention_output_grads" : "attention_grads";
  if ((st = need(ctx, ds, plan, AM_METHOD_GRAD_ROLLOUT, AM_ROLE_ATTENTION_GRADS,
                 "grad_rollout", grads)) ||
      (st = need(ctx, ds, plan, AM_METHOD_HEAD_IMPORTANCE, AM_ROLE_ATTENTION_GRADS,
                 "head importance", grads)) ||
      (st = need(ctx, ds, plan, AM_METHOD_SALIENCY, AM_ROLE_EMBEDS | AM_ROLE_SALIENCY,
                 "saliency", "inputs_embeds_grads")))
    return st;
  return AM_STATUS_OK;
}

/* The maps of the list (maps.h) the plan asks for and the dataset has inputs for, and
 * what the pass is asked for to make them. */
static void build_maps(const am_dataset_t *ds, am_layout_t *lay) {
  unsigned m = lay->plan.methods;
  int grads = (ds->roles & AM_ROLE_ATTENTION_GRADS) != 0;
  for (int i = 0; i < am_map_def_count; i++) {
    const am_map_def_t *def = &am_map_defs[i];
    if (!(m & def->method) || (def->needs && !(ds->roles & def->needs)))
      continue;
    if (def->kind == AM_MAP_SALIENCY_GIVEN) {
      for (int s = 0; s < ds->nsaliency && lay->nmaps < AM_MAX_MAPS - 3; s++) {
        char name[80];
        snprintf(name, sizeof name, "%s%s", def->name, ds->saliency_names[s]);
        add_map(lay, def, s, name);
      }
      continue;
    }
    lay->derived_saliency |= def->kind == AM_MAP_SALIENCY_DERIVED;
    add_map(lay, def, def->sub, def->name);
    /* several targets: the step rows, whose mean is the [n] map (docs/generation.md) */
    lay->pass.want |= (am_target_several(&lay->plan) ? def->steps : def->pass) |
                      (lay->plan.all_rows ? def->rows : 0);
  }
  lay->head_stats = (m & AM_METHOD_HEAD_STATS) != 0;
  lay->head_importance = (m & AM_METHOD_HEAD_IMPORTANCE) && grads;
  lay->pass.want |= (lay->head_stats ? AM_PASS_HEAD_STATS : 0) |
                    (lay->head_importance ? AM_PASS_HEAD_IMPORTANCE : 0);
}

/* The pair ranked for disagreement: the first attention-side map against the first
 * gradient-side map (rollout~saliency.X preferred by map order). */
static void choose_worst_pair(am_layout_t *lay) {
  lay->worst_pair = -1;
  for (int p = 0; p < lay->npairs; p++) {
    int a = lay->pair_a[p], b = lay->pair_b[p];
    if (lay->maps[a].is_attention != lay->maps[b].is_attention) {
      int att = lay->maps[a].is_attention ? a : b;
      if (lay->worst_pair < 0 ||
          (lay->maps[att].def->worst_first &&
           !lay->maps[lay->pair_a[lay->worst_pair]].def->worst_first))
        lay->worst_pair = p;
    }
  }
}

/* What the long-context form cannot compute (docs/long-context.md). */
static am_status long_form_refusal(am_ctx_t *ctx, const am_dataset_t *ds,
                                   const am_layout_t *lay) {
  const char *why = am_lc_refusal(&lay->pass);
  if (!why && (lay->plan.methods & AM_METHOD_FLOW))
    why =
        "attention flow needs every layer's attention matrix as a graph; the long-context "
        "form (queries/keys/values) does not compute it";
  if (why)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "%s: %s", ds->shards[0].path, why);
  return AM_STATUS_OK;
}

/* The exporter's recorded target (cls, last, mean, gen, an index or A:B) into plan. */
static am_status recorded_target(am_ctx_t *ctx, const am_dataset_t *ds, am_plan_t *plan) {
  am_plan_t parsed = *plan;
  if (am_target_parse(ds->target, &parsed) != 0)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: __metadata__ attnmap.exporter: target '%s' is not cls, last, mean, "
                   "gen, an index or a slice A:B (pass --target)",
                   ds->target_file, ds->target);
  *plan = parsed;
  return AM_STATUS_OK;
}

/* A per-step saliency [B,S,T] has no single row to read with one target. */
static am_status single_target_steps(am_ctx_t *ctx, const am_dataset_t *ds,
                                     const am_layout_t *lay) {
  for (int m = 0; m < lay->nmaps; m++)
    if (lay->maps[m].kind == AM_MAP_SALIENCY_GIVEN &&
        am_dataset_saliency_per_step(ds, lay->maps[m].sub))
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor %s: per-step saliency [B,S,T] needs several targets "
                     "(--target A:B or gen)",
                     ds->shards[0].saliency_src[lay->maps[m].sub].path,
                     ds->shards[0].saliency_src[lay->maps[m].sub].name);
  return AM_STATUS_OK;
}

am_status am_layout_build(am_ctx_t *ctx, const am_dataset_t *ds, const am_plan_t *plan,
                          am_layout_t *lay) {
  memset(lay, 0, sizeof *lay);
  am_status st = check_plan(ctx, ds, plan);
  if (st != AM_STATUS_OK)
    return st;
  lay->plan = *plan;
  lay->plan.pairs = NULL; /* borrowed string: not kept */
  if (plan->target_recorded && ds->target) {
    if ((st = recorded_target(ctx, ds, &lay->plan)) != AM_STATUS_OK)
      return st;
    lay->target_from_exporter = 1;
  }
  lay->N = ds->N;
  lay->L = ds->L;
  lay->H = ds->H;
  lay->T = ds->Tmax;
  lay->pass.fusion = plan->fusion;
  lay->pass.discard = plan->discard;
  lay->pass.normalize = plan->normalize;
  lay->pass.row_tolerance = plan->row_tolerance;
  lay->pass.grid = ds->grid ? ds->grid_parsed : (am_grid_t){0, 0, 0};
  lay->has_labels = (ds->roles & AM_ROLE_LABELS) != 0;
  lay->has_ids = (ds->roles & AM_ROLE_INPUT_IDS) != 0;
  lay->has_special = (ds->roles & AM_ROLE_SPECIAL_TOKENS_MASK) != 0;
  lay->has_predictions = (ds->roles & AM_ROLE_PREDICTIONS) != 0;
  build_maps(ds, lay);
  if (plan->methods & AM_METHOD_AGREEMENT) {
    if (plan->pairs && *plan->pairs) {
      if ((st = parse_pairs(ctx, lay, plan->pairs)) != AM_STATUS_OK)
        return st;
    } else {
      for (int a = 0; a < lay->nmaps; a++)
        for (int b = a + 1; b < lay->nmaps; b++)
          add_pair(lay, a, b);
    }
  }
  choose_worst_pair(lay);
  st = am_target_several(&lay->plan) ? am_layout_steps(ctx, ds, lay)
                                     : single_target_steps(ctx, ds, lay);
  if (st != AM_STATUS_OK)
    return st;
  if (ds->long_form && (st = long_form_refusal(ctx, ds, lay)) != AM_STATUS_OK)
    return st;
  if ((st = am_layout_cross(ctx, ds, lay)) != AM_STATUS_OK)
    return st;
  return am_layout_specs(ctx, lay);
}

void am_layout_metric_name(const am_layout_t *lay, int metric, char *buf, size_t len) {
  const char *name = am_metric_name((am_metric)metric);
  const char *at = strstr(name, "@k");
  if (at)
    snprintf(buf, len, "%.*s@%d", (int)(at - name), name, lay->plan.topk);
  else
    snprintf(buf, len, "%s", name);
}

int am_layout_target(const am_layout_t *lay, int n) {
  switch (lay->plan.target) {
  case AM_TARGET_CLS:
    return 0;
  case AM_TARGET_LAST:
    return n - 1;
  case AM_TARGET_MEAN:
    return AM_ROW_MEAN;
  case AM_TARGET_RANGE: /* several targets: the pass is asked for step rows only */
  case AM_TARGET_GEN:
    return 0;
  case AM_TARGET_INDEX: {
    int t =
        lay->plan.target_index < 0 ? n + lay->plan.target_index : lay->plan.target_index;
    return (t >= 0 && t < n) ? t : -2;
  }
  }
  return 0;
}

int am_layout_excluded(const am_layout_t *lay, int n) {
  if (lay->plan.include_target || lay->plan.target == AM_TARGET_MEAN || n <= 0 ||
      am_target_several(&lay->plan)) /* the mean of the steps: no single target token */
    return -1;
  int t = am_layout_target(lay, n);
  return t >= 0 ? t : -1;
}
