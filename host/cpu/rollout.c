/* rollout.c — one layer of attention rollout (Abnar & Zuidema 2020, "Quantifying
 * Attention Flow in Transformers"; code: samiraabnar/attention_flow
 * compute_joint_attention, and jacobgil/vit-explain vit_rollout.py for head fusion and
 * the discard ratio): A^_l = rownorm(F(A_l) + I), R = A^_{L-1} ... A^_0.
 *
 * Departures from vit-explain, on purpose: rows are normalised (vit-explain's
 * `a / a.sum(dim=-1)` broadcasts the row sums along columns, its issue #16); the
 * floor(n^2 d) smallest fused weights are found with ties broken by the lower flat index
 * (torch.topk leaves ties unspecified); as in vit-explain the first token's self-weight
 * (flat index 0) is never discarded and no other weight is discarded in its place.
 * Also the products of whole matrices (CBLAS sgemm) shared with grad_rollout.c. */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/half.h"
#include "cpu/example_pass.h"
#include "cpu/rollout.h"

void am_rollout_fuse_row(float *dst, const float *a, int n, int head, am_fusion fusion) {
  if (head == 0) {
    memcpy(dst, a, (size_t)n * sizeof *dst);
    return;
  }
  switch (fusion) {
  case AM_FUSION_MAX:
    for (int j = 0; j < n; j++)
      dst[j] = a[j] > dst[j] ? a[j] : dst[j];
    break;
  case AM_FUSION_MIN:
    for (int j = 0; j < n; j++)
      dst[j] = a[j] < dst[j] ? a[j] : dst[j];
    break;
  default:
    for (int j = 0; j < n; j++)
      dst[j] += a[j];
    break;
  }
}

void am_rollout_fuse_finish(float *fused, int n, int H, am_fusion fusion) {
  if (fusion != AM_FUSION_MAX && fusion != AM_FUSION_MIN && H > 1) {
    size_t nn = (size_t)n * n;
    for (size_t p = 0; p < nn; p++)
      fused[p] /= (float)H;
  }
}

/* Order key of a weight >= 0 (or -0): the bit pattern without its sign grows with the
 * value, so the k-th smallest weight is found by radix selection on these keys. */
static uint32_t order_key(float x) {
  uint32_t b;
  memcpy(&b, &x, sizeof b);
  return b & 0x7FFFFFFFu;
}

/* Key of the weight of rank `rank` (0 = smallest) among m[0..nn), by three histogram
 * passes of 11, 11 and 10 bits; *take: how many weights equal to that key have rank
 * <= `rank` (they are the first ones in index order, by the tie rule). */
static uint32_t select_key(const float *m, size_t nn, size_t rank, size_t *take) {
  static const int shifts[3] = {21, 10, 0};
  static const uint32_t widths[3] = {11, 11, 10};
  uint32_t prefix = 0, mask = 0;
  for (int pass = 0; pass < 3; pass++) {
    size_t hist[2048] = {0};
    uint32_t bins = (1u << widths[pass]) - 1u;
    for (size_t p = 0; p < nn; p++) {
      uint32_t key = order_key(m[p]);
      if ((key & mask) == prefix)
        hist[(key >> shifts[pass]) & bins]++;
    }
    uint32_t b = 0;
    while (hist[b] <= rank) /* skip the bins that lie wholly below the rank */
      rank -= hist[b++];
    prefix |= b << shifts[pass];
    mask |= bins << shifts[pass];
  }
  *take = rank + 1;
  return prefix;
}

void am_rollout_discard(float *fused, int n, double ratio) {
  size_t nn = (size_t)n * n;
  /* as vit-explain's int(flat.size(-1) * discard_ratio), in the same double arithmetic */
  size_t k = (size_t)floor((double)nn * ratio);
  if (k == 0 || k >= nn)
    return;
  size_t take;
  uint32_t theta = select_key(fused, nn, k - 1, &take);
  for (size_t p = 0; p < nn; p++) {
    uint32_t key = order_key(fused[p]);
    int drop = key < theta;
    if (key == theta && take > 0) {
      take--;
      drop = 1;
    }
    if (drop && p != 0)
      fused[p] = 0.0f;
  }
}

/* 1 + sum of a fused row in double, four partial sums (independent adds: a single chain
 * of n dependent additions costs 4n cycles), combined in a fixed order. */
static double hat_row_sum(const float *row, int n) {
  double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
  int j = 0;
  for (; j + 4 <= n; j += 4) {
    s0 += row[j];
    s1 += row[j + 1];
    s2 += row[j + 2];
    s3 += row[j + 3];
  }
  for (; j < n; j++)
    s0 += row[j];
  return 1.0 + ((s0 + s1) + (s2 + s3)); /* the identity's 1 on the diagonal */
}

void am_rollout_step(const float *fused, int n, double *v, double *w) {
  for (int i = 0; i < n; i++)
    w[i] = v[i] / hat_row_sum(fused + (size_t)i * n, n);
  for (int j = 0; j < n; j++)
    v[j] = w[j];
  for (int i = 0; i < n; i++) {
    const float *row = fused + (size_t)i * n;
    double wi = w[i];
    if (wi == 0.0)
      continue;
    for (int j = 0; j < n; j++)
      v[j] += wi * row[j];
  }
}

void am_rollout_step_rows(const float *fused, int n, int S, double *v, double *w) {
  enum { BLOCK = 8 }; /* rows of v per read of the matrix: 8 x n doubles stay in L1 */
  size_t sn = (size_t)S * n;
  for (int i = 0; i < n; i++) {
    double sum = hat_row_sum(fused + (size_t)i * n, n);
    for (int s = 0; s < S; s++)
      w[(size_t)s * n + i] = v[(size_t)s * n + i] / sum;
  }
  memcpy(v, w, sn * sizeof *v);
  for (int s0 = 0; s0 < S; s0 += BLOCK) {
    int s1 = S - s0 < BLOCK ? S : s0 + BLOCK;
    for (int i = 0; i < n; i++) {
      const float *row = fused + (size_t)i * n;
      for (int s = s0; s < s1; s++) {
        double wi = w[(size_t)s * n + i], *vs = v + (size_t)s * n;
        if (wi == 0.0)
          continue;
        for (int j = 0; j < n; j++)
          vs[j] += wi * row[j];
      }
    }
  }
}

void am_rollout_hat(float *fused, int n) {
  for (int i = 0; i < n; i++) {
    float *row = fused + (size_t)i * n;
    double s = hat_row_sum(row, n);
    for (int j = 0; j < n; j++)
      row[j] = (float)(((double)row[j] + (i == j)) / s);
  }
}

void am_rows_mul(float **p, float **tmp, const float *m, int n, int first) {
  if (first) {
    memcpy(*p, m, (size_t)n * n * sizeof **p);
    return;
  }
  /* tmp[n,n] = p[n,n] * m[n,n] */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, *p, n, m, n, 0.0f,
              *tmp, n);
  float *t = *p;
  *p = *tmp;
  *tmp = t;
}

void am_rollout_layer_hat(const am_example_t *ex, int l, am_fusion fusion, double discard,
                          float *hat, float *row) {
  int n = ex->n, T = ex->T;
  const void *att = ex->att[l];
  for (int h = 0; h < ex->H; h++)
    for (int i = 0; i < n; i++) {
      /* row <- att[h, idx[i], idx[:]] (valid keys only) */
      int64_t base = ((int64_t)h * T + ex->idx[i]) * T;
      for (int j = 0; j < n; j++)
        row[j] = am_load_float(att, ex->dtype, base + ex->idx[j]);
      am_rollout_fuse_row(hat + (size_t)i * n, row, n, h, fusion);
    }
  am_rollout_fuse_finish(hat, n, ex->H, fusion);
  am_rollout_discard(hat, n, discard);
  am_rollout_hat(hat, n);
}
