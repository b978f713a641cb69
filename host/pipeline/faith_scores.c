/* faith_scores.c — one example's faithfulness scores from its target probabilities
 * (docs/faithfulness.md): comprehensiveness_k = p_full - p_removed_k, sufficiency_k =
 * p_full - p_kept_k (ERASER, DeYoung et al. 2020), AOPC = their mean over the bins, and the
 * trapezoid areas under the deletion and insertion curves with x in [0, 1]. Differences
 * are taken in double and stored as F32; AOPC and the areas are computed from the stored
 * F32 values, so a run's file alone gives them again. */
#include <math.h>

#include "pipeline/faith.h"

static float area(const float *c, int S) {
  double a = 0, dx = 1.0 / (S - 1);
  for (int s = 0; s + 1 < S; s++)
    a += dx * ((double)c[s] + (double)c[s + 1]) / 2;
  return (float)a;
}

void am_faith_score_row(am_faith_t *f, int64_t i, const float *p_removed,
                        const float *p_kept) {
  int M = f->M, K = f->K, S = f->S;
  float *comp = f->comp + (size_t)i * M * K, *suff = f->suff + (size_t)i * M * K;
  float *del = f->del + (size_t)i * M * S, *ins = f->ins + (size_t)i * M * S;
  if (f->tokens[i] <= 0) { /* nothing to rank: every score is NaN (p_full kept) */
    for (int j = 0; j < M * K; j++)
      comp[j] = suff[j] = NAN;
    for (int j = 0; j < M * S; j++)
      del[j] = ins[j] = NAN;
    for (int m = 0; m < M; m++) {
      size_t r = (size_t)i * M + m;
      f->aopc_c[r] = f->aopc_s[r] = f->del_area[r] = f->ins_area[r] = NAN;
    }
    return;
  }
  double p = f->p_full[i];
  for (int m = 0; m < M; m++) {
    double sc = 0, ss = 0;
    for (int k = 0; k < K; k++) {
      comp[m * K + k] = (float)(p - (double)p_removed[m * K + k]);
      suff[m * K + k] = (float)(p - (double)p_kept[m * K + k]);
      sc += comp[m * K + k];
      ss += suff[m * K + k];
    }
    size_t r = (size_t)i * M + m;
    f->aopc_c[r] = (float)(sc / K);
    f->aopc_s[r] = (float)(ss / K);
    f->del_area[r] = area(del + (size_t)m * S, S);
    f->ins_area[r] = area(ins + (size_t)m * S, S);
  }
}
