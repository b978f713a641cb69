/* steps_layout.c — a plan with several targets (--target A:B or gen, docs/generation.md)
 * resolved against a dataset: each example's steps come from its mask (and
 * generation_start), S is the largest count, read once before the run starts, so that the
 * step tensors [N,S,*] of examples.safetensors have their shape when the file is opened. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/options.h"
#include "pipeline/layout.h"

void am_layout_step_maps(am_layout_t *lay) {
  lay->nstep_maps = 0;
  for (int m = 0; m < lay->nmaps; m++) {
    if (lay->maps[m].def->steps)
      lay->map_steps[m] = 1;
    lay->step_slot[m] = lay->map_steps[m] ? lay->nstep_maps++ : -1;
  }
  lay->step_pairs = 0;
  for (int p = 0; p < lay->npairs; p++)
    lay->step_pairs |= lay->map_steps[lay->pair_a[p]] && lay->map_steps[lay->pair_b[p]];
}

void am_layout_step_specs(am_layout_t *lay) {
  int64_t N = lay->N, S = lay->S, T = lay->T;
  lay->spec_steps = am_layout_add_spec(lay, "steps", AM_DTYPE_I32, 1, N, 0, 0);
  lay->spec_step_positions =
      am_layout_add_spec(lay, "step_positions", AM_DTYPE_I32, 2, N, S, 0);
  for (int m = 0; m < lay->nmaps; m++) {
    char name[96];
    snprintf(name, sizeof name, "%s.steps", lay->maps[m].name);
    lay->spec_step_map[m] =
        lay->map_steps[m] ? am_layout_add_spec(lay, name, AM_DTYPE_F32, 3, N, S, T) : -1;
  }
  lay->spec_step_metric0 = -1;
  if (!lay->step_pairs)
    return;
  lay->spec_step_metric0 = lay->nspecs;
  for (int k = 0; k < AM_METRIC_COUNT; k++) {
    char metric[48], name[96];
    am_layout_metric_name(lay, k, metric, sizeof metric);
    snprintf(name, sizeof name, "agreement.steps.%s", metric);
    am_layout_add_spec(lay, name, AM_DTYPE_F32, 3, N, S, lay->npairs);
  }
}

/* An example's steps must all have rows in a per-step input of S_in rows. */
static am_status too_few_rows(am_ctx_t *ctx, const am_source_t *src, int64_t b, int k,
                              int S_in) {
  return am_fail(ctx, AM_STATUS_BAD_INPUT,
                 "%s: tensor %s: example %lld has %d steps but the tensor holds %d per "
                 "example",
                 src->path, src->name, (long long)b, k, S_in);
}

/* Every example's step count; S and the per-step inputs' rows checked. */
static am_status scan_steps(am_ctx_t *ctx, const am_dataset_t *ds, am_layout_t *lay) {
  int32_t *idx = malloc((size_t)(ds->Tmax > 0 ? ds->Tmax : 1) * 2 * sizeof *idx);
  if (!idx)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  am_status st = AM_STATUS_OK;
  int S = 0;
  for (int s = 0; s < ds->nshards && st == AM_STATUS_OK; s++) {
    const am_shard_t *sh = &ds->shards[s];
    for (int64_t b = 0; b < sh->B && st == AM_STATUS_OK; b++) {
      int n = am_shard_valid_positions(sh, b, idx);
      int k = am_shard_steps(sh, b, &lay->plan, idx, n, idx + ds->Tmax);
      S = k > S ? k : S;
      if (lay->step_grads && k > sh->step_grad_S)
        st = too_few_rows(ctx, &sh->step_grad.source[0], b, k, sh->step_grad_S);
      for (int m = 0; m < lay->nmaps && st == AM_STATUS_OK; m++)
        if (lay->maps[m].kind == AM_MAP_SALIENCY_GIVEN && lay->map_steps[m] &&
            k > sh->saliency_S[lay->maps[m].sub])
          st = too_few_rows(ctx, &sh->saliency_src[lay->maps[m].sub], b, k,
                            sh->saliency_S[lay->maps[m].sub]);
    }
  }
  free(idx);
  lay->S = S > 0 ? S : 1; /* no example with a step: one row of zeros, never [N,0,T] */
  return st;
}

am_status am_layout_steps(am_ctx_t *ctx, const am_dataset_t *ds, am_layout_t *lay) {
  const char *path = ds->nshards ? ds->shards[0].path : "dataset";
  char target[48];
  am_target_text(&lay->plan, target, sizeof target);
  lay->several = 1;
  if (lay->plan.methods & AM_METHOD_FLOW)
    return am_fail(
        ctx, AM_STATUS_INVALID_ARGUMENT,
        "--methods flow: attention flow solves one max-flow problem per target "
        "and token; --target %s gives several targets (run flow with one target)",
        target);
  if (lay->plan.target == AM_TARGET_GEN && !ds->has_gen_start)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor generation_start: needed by --target gen but not found",
                   path);
  lay->step_grads = ds->has_step_grads && (lay->pass.want & AM_PASS_GRAD_ROLLOUT_STEPS);
  for (int m = 0; m < lay->nmaps; m++)
    if (lay->maps[m].kind == AM_MAP_SALIENCY_GIVEN)
      lay->map_steps[m] = am_dataset_saliency_per_step(ds, lay->maps[m].sub);
  am_layout_step_maps(lay);
  return scan_steps(ctx, ds, lay);
}
