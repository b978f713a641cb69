/* maps.c — the list of the per-example maps (maps.h), in the order a run makes them. */
#include "pipeline/maps.h"

#include <string.h>

const am_map_def_t am_map_defs[] = {
    {.name = "attention_last",
     .kind = AM_MAP_PASS,
     .method = AM_METHOD_ATTENTION_LAST,
     .is_attention = 1,
     .nonneg = 1,
     .pass = AM_PASS_ATTENTION_LAST,
     .steps = AM_PASS_ATTENTION_LAST_STEPS},
    {.name = "rollout",
     .kind = AM_MAP_PASS,
     .method = AM_METHOD_ROLLOUT,
     .is_attention = 1,
     .nonneg = 1,
     .worst_first = 1,
     .pass = AM_PASS_ROLLOUT,
     .rows = AM_PASS_ROLLOUT_ROWS,
     .steps = AM_PASS_ROLLOUT_STEPS},
    {.name = "grad_rollout",
     .kind = AM_MAP_PASS,
     .method = AM_METHOD_GRAD_ROLLOUT,
     .needs = AM_ROLE_ATTENTION_GRADS,
     .nonneg = 1,
     .pass = AM_PASS_GRAD_ROLLOUT,
     .rows = AM_PASS_GRAD_ROLLOUT_ROWS,
     .steps = AM_PASS_GRAD_ROLLOUT_STEPS},
    {.name = "flow",
     .kind = AM_MAP_FLOW,
     .method = AM_METHOD_FLOW,
     .is_attention = 1,
     .nonneg = 1},
    {.name = "saliency.", .kind = AM_MAP_SALIENCY_GIVEN, .method = AM_METHOD_SALIENCY},
    {.name = "saliency.grad_l2",
     .kind = AM_MAP_SALIENCY_DERIVED,
     .sub = 0,
     .method = AM_METHOD_SALIENCY,
     .needs = AM_ROLE_EMBEDS,
     .nonneg = 1},
    {.name = "saliency.grad_x_input",
     .kind = AM_MAP_SALIENCY_DERIVED,
     .sub = 1,
     .method = AM_METHOD_SALIENCY,
     .needs = AM_ROLE_EMBEDS},
    {.name = "saliency.abs_grad_x_input",
     .kind = AM_MAP_SALIENCY_DERIVED,
     .sub = 2,
     .method = AM_METHOD_SALIENCY,
     .needs = AM_ROLE_EMBEDS,
     .nonneg = 1},
};
const int am_map_def_count = (int)(sizeof am_map_defs / sizeof am_map_defs[0]);

const am_map_def_t *am_map_def_find(const char *name) {
  const am_map_def_t *given = NULL;
  for (int i = 0; i < am_map_def_count; i++) {
    const am_map_def_t *d = &am_map_defs[i];
    if (d->kind == AM_MAP_SALIENCY_GIVEN)
      given = d;
    else if (strcmp(name, d->name) == 0)
      return d;
  }
  return strncmp(name, "saliency.", 9) == 0 && name[9] ? given : NULL;
}
