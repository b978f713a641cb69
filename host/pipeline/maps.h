/* maps.h — the per-example maps a run can hold, listed once (maps.c): the layout reads
 * which a plan makes and in what order, the chunk where the fused pass writes each, the
 * run-folder reader the kind of a name in summary.json, the report whether a map is signed.
 * Adding a map the pass computes is one entry there (docs/architecture.md). */
#ifndef AM_PIPELINE_MAPS_H
#define AM_PIPELINE_MAPS_H

#include "attnmap.h"
#include "ops/example.h"

typedef enum am_map_kind {
  AM_MAP_PASS,             /* written by the fused pass (am_map_def_t.pass) */
  AM_MAP_FLOW,             /* the backend's flow op */
  AM_MAP_SALIENCY_GIVEN,   /* a precomputed saliency tensor (sub = its index) */
  AM_MAP_SALIENCY_DERIVED, /* from embedding gradients (sub = 0 l2, 1 gxi, 2 abs gxi) */
} am_map_kind;

typedef struct am_map_def {
  const char *name; /* "rollout"; a saliency tensor's map is "saliency." + its name */
  am_map_kind kind;
  int sub;
  unsigned method;  /* the AM_METHOD_* bit that asks for it */
  unsigned needs;   /* AM_ROLE_* the dataset must hold for it to be made (any of them) */
  int is_attention; /* attention side of "attention vs gradients" */
  int nonneg;       /* non-negative by construction: the report draws it sequential */
  int worst_first;  /* the attention map ranked first for "disagree most" (rollout) */
  unsigned pass;    /* AM_PASS_* bit of its [n] output (am_pass_output_slot), or 0 */
  unsigned rows;    /* AM_PASS_* bit of its [n,n] all-rows form, or 0 */
  unsigned steps;   /* AM_PASS_* bit of its [nsteps,n] form for several targets, or 0 */
} am_map_def_t;

/* The list, in the order a run makes its maps; the AM_MAP_SALIENCY_GIVEN entry stands for
 * every saliency tensor of the dataset. */
extern const am_map_def_t am_map_defs[];
extern const int am_map_def_count;

/* The entry a run's map name belongs to (a name "saliency.X" not listed: the given
 * saliency entry), or NULL. */
const am_map_def_t *am_map_def_find(const char *name);

#endif
