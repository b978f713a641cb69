/* steps_write.c — the step tensors of a chunk into examples.safetensors
 * (docs/generation.md): steps I32 [N], step_positions I32 [N,S] (-1 past the example's
 * steps), <map>.steps F32 [N,S,T] at the padded positions (0 elsewhere and past the
 * steps), agreement.steps.<metric> F32 [N,S,P]. */
#include <string.h>

#include "core/ctx.h"
#include "pipeline/steps.h"

am_status am_steps_put(am_chunk_t *c, am_st_writer_t *w, int spec, const void *rows,
                       size_t W, size_t elem) {
  size_t per = (size_t)c->steps->S * W * elem;
  return am_st_writer_put(w, spec, (uint64_t)c->global0 * per, rows, (size_t)c->nex * per);
}

/* Map m's step rows scattered to their padded positions: pad [nex, S, Tout]. */
static void pad_step_rows(am_chunk_t *c, int m) {
  am_chunk_steps_t *st = c->steps;
  size_t S = (size_t)st->S, Tout = (size_t)c->lay->T;
  memset(st->pad, 0, (size_t)c->nex * S * Tout * sizeof *st->pad);
  for (int e = 0; e < c->nex; e++) {
    const int32_t *idx = c->idx + (size_t)e * (size_t)c->Tcap;
    const float *rows = am_steps_rows(c, m, e);
    size_t n = (size_t)c->n[e];
    for (int s = 0; s < st->nsteps[e]; s++) {
      float *dst = st->pad + ((size_t)e * S + (size_t)s) * Tout;
      for (size_t i = 0; i < n; i++)
        dst[idx[i]] = rows[(size_t)s * n + i];
    }
  }
}

static am_status write_counts(am_chunk_t *c, am_st_writer_t *w) {
  const am_layout_t *lay = c->lay;
  am_chunk_steps_t *st = c->steps;
  size_t S = (size_t)st->S;
  am_status r = am_st_writer_put(w, lay->spec_steps, (uint64_t)c->global0 * sizeof(int32_t),
                                 st->nsteps, (size_t)c->nex * sizeof(int32_t));
  int32_t *pos = (int32_t *)(void *)st->pad;
  for (int e = 0; e < c->nex; e++)
    for (size_t s = 0; s < S; s++)
      pos[(size_t)e * S + s] =
          (int)s < st->nsteps[e]
              ? c->idx[(size_t)e * (size_t)c->Tcap + (size_t)st->steps[(size_t)e * S + s]]
              : -1;
  return r != AM_STATUS_OK ? r : am_steps_put(c, w, lay->spec_step_positions, pos, 1, 4);
}

am_status am_steps_write(am_ctx_t *ctx, am_chunk_t *c, am_st_writer_t *w) {
  (void)ctx;
  const am_layout_t *lay = c->lay;
  am_chunk_steps_t *st = c->steps;
  if (!st)
    return AM_STATUS_OK;
  am_status r = write_counts(c, w);
  for (int m = 0; m < lay->nmaps && r == AM_STATUS_OK; m++) {
    if (lay->spec_step_map[m] < 0)
      continue;
    pad_step_rows(c, m);
    r = am_steps_put(c, w, lay->spec_step_map[m], st->pad, (size_t)lay->T, sizeof(float));
  }
  size_t S = (size_t)st->S, P = (size_t)lay->npairs;
  for (int q = 0; lay->spec_step_metric0 >= 0 && q < AM_METRIC_COUNT && r == AM_STATUS_OK;
       q++) {
    for (size_t i = 0; i < (size_t)c->nex * S * P; i++)
      st->pad[i] = st->agree[i * AM_METRIC_COUNT + (size_t)q];
    r = am_steps_put(c, w, lay->spec_step_metric0 + q, st->pad, P, sizeof(float));
  }
  return r;
}
