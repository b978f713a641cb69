/* long_tile.c — one tile of attention scores of the long-context form: S = scale Q K^T
 * (CBLAS sgemm, F32 accumulation), the logit soft-cap c tanh(S / c) where the model has one
 * (Gemma 2 applies it after the scale, before the mask), then the mask: padding is not in
 * the valid rows at all; causal hides later keys; a sliding window w hides keys w or more
 * padded positions before the query (and after it, without causal). Flops per tile:
 * 2 mi nj d. */
#include <cblas.h>
#include <math.h>

#include "cpu/long_head.h"

static inline int visible(const am_attention_spec_t *a, const int32_t *pos, int i, int j) {
  if (a->causal && j > i)
    return 0;
  if (a->sliding_window > 0) {
    int64_t back = (int64_t)pos[i] - pos[j];
    if (back >= a->sliding_window || (!a->causal && -back >= a->sliding_window))
      return 0;
  }
  return 1;
}

/* How keys [j0, j0+nj) stand to queries [i0, i0+mi): hidden from all, visible to all, or
 * some of each. Positions increase with the index, so the extreme distances of the tile
 * are those of its corners. */
enum { TILE_HIDDEN, TILE_PARTIAL, TILE_VISIBLE };
static int tile_class(const am_lc_head_job_t *job, int i0, int mi, int j0, int nj) {
  const am_attention_spec_t *a = job->attn;
  int i1 = i0 + mi - 1, j1 = j0 + nj - 1;
  const int32_t *pos = job->pos;
  if (a->causal && j0 > i1)
    return TILE_HIDDEN;
  int64_t w = a->sliding_window;
  if (w > 0 &&
      ((int64_t)pos[i0] - pos[j1] >= w || (!a->causal && (int64_t)pos[j0] - pos[i1] >= w)))
    return TILE_HIDDEN;
  if (a->causal && j1 > i0)
    return TILE_PARTIAL;
  if (w > 0 &&
      ((int64_t)pos[i1] - pos[j0] >= w || (!a->causal && (int64_t)pos[j1] - pos[i0] >= w)))
    return TILE_PARTIAL;
  return TILE_VISIBLE;
}

int am_lc_tile_hidden(const am_lc_head_job_t *job, int i0, int mi, int j0, int nj) {
  return tile_class(job, i0, mi, j0, nj) == TILE_HIDDEN;
}

void am_lc_scores(const am_lc_head_job_t *job, int i0, int mi, int j0, int nj, float *s) {
  const am_attention_spec_t *a = job->attn;
  int d = job->d;
  /* s[mi,nj] = scale * q[i0:i0+mi, :] k[j0:j0+nj, :]^T */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mi, nj, d, (float)a->scale,
              job->q + (size_t)i0 * d, d, job->k + (size_t)j0 * d, d, 0.0f, s, AM_LC_BK);
  float cap = (float)a->softcap;
  if (cap > 0.0f)
    for (int r = 0; r < mi; r++) {
      float *row = s + (size_t)r * AM_LC_BK;
      for (int c = 0; c < nj; c++)
        row[c] = cap * tanhf(row[c] / cap);
    }
  if (tile_class(job, i0, mi, j0, nj) == TILE_VISIBLE)
    return; /* below the diagonal and inside the window: nothing to mask */
  for (int r = 0; r < mi; r++) {
    float *row = s + (size_t)r * AM_LC_BK;
    if (a->sliding_window > 0) {
      for (int c = 0; c < nj; c++)
        if (!visible(a, job->pos, i0 + r, j0 + c))
          row[c] = -INFINITY;
    } else { /* causal only: the keys after the query */
      for (int c = i0 + r - j0 + 1; c < nj; c++)
        if (c >= 0)
          row[c] = -INFINITY;
    }
  }
}
