/* cross_layout.c — which decoder→encoder maps a run writes (docs/generation.md,
 * "Encoder-decoder models") and their tensors in examples.safetensors: source_mask U8
 * [N,Tenc], source_lengths I32 [N], source_ids I32 [N,Tenc] (with encoder_input_ids) and
 * cross.<name>.steps F32 [N,S,Tenc], and provenance.options.cross of summary.json, which
 * rebuilds them when a run is read back. */
#include <string.h>

#include "core/ctx.h"
#include "core/options.h"
#include "pipeline/cross_run.h"
#include "pipeline/layout.h"

const char *am_cross_map_name(int k) {
  static const char *const names[] = {
#define AM_CROSS_NAME_(name, field, needs) "cross." #field ".steps",
      AM_CROSS_OUTPUT_LIST(AM_CROSS_NAME_)
#undef AM_CROSS_NAME_
  };
  return k >= 0 && k < AM_CROSS_OUTPUT_COUNT ? names[k] : NULL;
}

int am_layout_cross_S(const am_layout_t *lay) { return lay->several ? lay->S : 1; }

am_status am_layout_cross(am_ctx_t *ctx, const am_dataset_t *ds, am_layout_t *lay) {
  (void)ctx;
  lay->cross_want = 0;
  lay->Tenc = 0;
  lay->cross_ids = 0;
  if (!ds->cross || lay->plan.target == AM_TARGET_MEAN)
    return AM_STATUS_OK; /* a step is one decoder row; mean has none */
  unsigned m = lay->plan.methods;
  int grads = (ds->roles & AM_ROLE_ATTENTION_GRADS) || ds->has_step_grads;
  int cgrads = ds->cross_grads || ds->cross_step_grads;
  if (m & AM_METHOD_ATTENTION_LAST)
    lay->cross_want |= AM_CROSS_ATTENTION_LAST;
  if (m & AM_METHOD_ROLLOUT)
    lay->cross_want |= AM_CROSS_ROLLOUT;
  if ((m & AM_METHOD_GRAD_ROLLOUT) && cgrads)
    lay->cross_want |= AM_CROSS_GRAD_X_ATTENTION;
  if ((m & AM_METHOD_GRAD_ROLLOUT) && cgrads && grads)
    lay->cross_want |= AM_CROSS_GRAD_ROLLOUT;
  lay->Tenc = ds->Tenc_max > 0 ? ds->Tenc_max : 1;
  lay->cross_ids = ds->nshards > 0 && ds->shards[0].cross.ids != NULL;
  return AM_STATUS_OK;
}

void am_layout_cross_specs(am_layout_t *lay) {
  lay->spec_source_mask = lay->spec_source_lengths = lay->spec_source_ids = -1;
  for (int k = 0; k < AM_CROSS_OUTPUT_COUNT; k++)
    lay->spec_cross[k] = -1;
  if (!lay->cross_want)
    return;
  int64_t N = lay->N, Te = lay->Tenc, S = am_layout_cross_S(lay);
  lay->spec_source_mask = am_layout_add_spec(lay, "source_mask", AM_DTYPE_U8, 2, N, Te, 0);
  lay->spec_source_lengths =
      am_layout_add_spec(lay, "source_lengths", AM_DTYPE_I32, 1, N, 0, 0);
  if (lay->cross_ids)
    lay->spec_source_ids = am_layout_add_spec(lay, "source_ids", AM_DTYPE_I32, 2, N, Te, 0);
  for (int k = 0; k < AM_CROSS_OUTPUT_COUNT; k++)
    if (lay->cross_want & (1u << k))
      lay->spec_cross[k] =
          am_layout_add_spec(lay, am_cross_map_name(k), AM_DTYPE_F32, 3, N, S, Te);
}

json_t *am_cross_options_json(const am_layout_t *lay) {
  json_t *maps = json_array();
  for (int k = 0; k < AM_CROSS_OUTPUT_COUNT; k++)
    if (lay->cross_want & (1u << k))
      json_array_append_new(maps, json_string(am_cross_map_name(k)));
  return json_pack("{s:o,s:i,s:b}", "maps", maps, "max_source_tokens", lay->Tenc,
                   "source_ids", lay->cross_ids);
}

am_status am_cross_options_read(am_ctx_t *ctx, const json_t *cross, const char *where,
                                am_layout_t *lay) {
  lay->cross_want = 0;
  if (!cross)
    return AM_STATUS_OK; /* a run without encoder-decoder maps */
  const json_t *maps = json_object_get(cross, "maps");
  const json_t *Te = json_object_get(cross, "max_source_tokens");
  const json_t *ids = json_object_get(cross, "source_ids");
  if (!json_is_array(maps) || json_array_size(maps) < 1 || !json_is_integer(Te) ||
      json_integer_value(Te) < 1 || json_integer_value(Te) > (1 << 20) ||
      !json_is_boolean(ids))
    return am_fail(
        ctx, AM_STATUS_BAD_INPUT,
        "%s: provenance.options.cross: expected a list of maps, max_source_tokens "
        "in [1,%d] and source_ids true or false",
        where, 1 << 20);
  for (size_t i = 0; i < json_array_size(maps); i++) {
    const char *name = json_string_value(json_array_get(maps, i));
    int found = -1;
    for (int k = 0; name && k < AM_CROSS_OUTPUT_COUNT; k++)
      if (strcmp(name, am_cross_map_name(k)) == 0)
        found = k;
    if (found < 0 || (lay->cross_want & (1u << found)))
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: provenance.options.cross.maps: '%s' is not a cross map, or twice",
                     where, name ? name : "(not a string)");
    lay->cross_want |= 1u << found;
  }
  lay->Tenc = (int)json_integer_value(Te);
  lay->cross_ids = json_is_true(ids);
  return AM_STATUS_OK;
}
