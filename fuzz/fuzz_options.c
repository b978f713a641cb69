/* fuzz_options.c — libFuzzer harness of the option table (am_settings_set and the checks
 * behind it, pipeline/options.c): the input is split at FUZZ_SEP into name/value pairs
 * (name, value, name, value); each is set by name, then the settings are checked as the
 * library checks structs it is given, and a plan that passed is run by
 * am_analyze_arrays on a tiny batch held in memory. Invariants: no crash; a value that
 * am_settings_set accepted passes the library's own range check (one range, two
 * readers); a refusal is one non-empty line; option lookups by fuzzed names agree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_support.h"
#include "core/options.h"

/* One batch: B=1, L=1, H=1, T=3, uniform rows, half the keys of the last row masked. */
static am_status run_plan(am_ctx_t *ctx, const am_plan_t *plan) {
  static const float att[9] = {1.f / 3, 1.f / 3, 1.f / 3, 1.f / 3, 1.f / 3,
                               1.f / 3, 1.f / 3, 1.f / 3, 1.f / 3};
  const void *layers[1] = {att};
  am_arrays_t in = {.layers = 1,
                    .batch = 1,
                    .heads = 1,
                    .tokens = 3,
                    .dtype = AM_DTYPE_F32,
                    .attentions = layers,
                    .attention_grads = layers};
  am_arrays_desc_t *desc = NULL;
  am_status st = am_arrays_describe(ctx, &in, plan, &desc);
  if (st != AM_STATUS_OK)
    return st;
  float maps[8][3], stats[16][1], agree[16][64], importance[1], rows[2][9];
  float *mp[8], *sp[16], *ap[16];
  int nm = am_arrays_desc_count(desc, AM_ARRAYS_MAPS);
  int ns = am_arrays_desc_count(desc, AM_ARRAYS_STATS);
  int nk = am_arrays_desc_count(desc, AM_ARRAYS_METRICS);
  int np = am_arrays_desc_count(desc, AM_ARRAYS_PAIRS);
  unsigned flags = am_arrays_desc_flags(desc);
  am_arrays_desc_destroy(desc);
  if (nm > 8 || ns > 16 || nk > 16 || np > 64)
    abort(); /* B=1, L=H=1: more outputs than a 3-token batch can have */
  for (int i = 0; i < 8; i++)
    mp[i] = maps[i];
  for (int i = 0; i < 16; i++) {
    sp[i] = stats[i];
    ap[i] = agree[i];
  }
  int32_t lengths[1];
  am_arrays_result_t out = {
      .maps = mp,
      .head_stats = sp,
      .agreement = ap,
      .lengths = lengths,
      .head_importance = (flags & AM_ARRAYS_HAS_HEAD_IMPORTANCE) ? importance : NULL,
      .rollout_rows = (flags & AM_ARRAYS_HAS_ROLLOUT_ROWS) ? rows[0] : NULL,
      .grad_rollout_rows = (flags & AM_ARRAYS_HAS_GRAD_ROLLOUT_ROWS) ? rows[1] : NULL};
  return am_analyze_arrays(ctx, &in, plan, &out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  am_ctx_t *ctx = fuzz_ctx();
  fuzz_part_t parts[FUZZ_MAX_PARTS];
  int n = fuzz_split(data, size, parts, FUZZ_MAX_PARTS);
  char text[FUZZ_MAX_PARTS][256], err[512];
  for (int i = 0; i < n; i++) { /* NUL-terminated copies: names and values are C strings */
    size_t k = parts[i].size < 255 ? parts[i].size : 255;
    memcpy(text[i], parts[i].data, k);
    text[i][k] = '\0';
  }
  am_settings_t set;
  am_settings_init(&set);
  for (int i = 0; i + 1 < n; i += 2) {
    const am_option_info_t *o = am_option_find(text[i]);
    double lo, hi;
    if ((am_option_bounds(text[i], &lo, &hi) == AM_STATUS_OK) !=
        (o && (o->kind <= 1 || (o->kind == AM_OPTION_CHOICE && o->min < o->max))))
      abort();
    err[0] = '\0';
    am_status st = am_settings_set(&set, text[i], text[i + 1], err, sizeof err);
    if ((st == AM_STATUS_OK) != (o != NULL && st == AM_STATUS_OK) ||
        (st != AM_STATUS_OK && (!err[0] || strchr(err, '\n')))) {
      fprintf(stderr, "fuzz: set %s='%s': status %d, message '%s'\n", text[i], text[i + 1],
              (int)st, err);
      abort();
    }
    if (st == AM_STATUS_OK && o &&
        am_options_check(NULL, o->scope,
                         o->scope == AM_SCOPE_CTX    ? (const void *)&set.ctx
                         : o->scope == AM_SCOPE_PLAN ? (const void *)&set.plan
                         : o->scope == AM_SCOPE_RUN  ? (const void *)&set.run
                                                     : (const void *)&set.report,
                         err, sizeof err) != AM_STATUS_OK) {
      fprintf(stderr, "fuzz: %s='%s' was accepted but fails the check: %s\n", text[i],
              text[i + 1], err);
      abort();
    }
  }
  if (n % 2 == 1) /* a lone name: the list lookups */
    for (int l = 0; l < AM_LIST_COUNT; l++) {
      int k = am_list_find((am_list)l, text[n - 1]);
      if (k >= 0 && strcmp(am_list_name((am_list)l, k), text[n - 1]) != 0)
        abort();
    }
  set.plan.chunk = 0;
  am_status st = run_plan(ctx, &set.plan);
  fuzz_check_message(ctx, st);
  return 0;
}
