/* flow_caps.h — the capacities of attention flow's graph on the device: rollout's Â of
 * every layer, built by the same operations as the CPU's am_cpu_flow_capacities (so with
 * the same bits; tests/test_flow_sync.c checks it): head fusion in float in head order,
 * the discard ratio (one thread, the radix selection and tie rule of
 * host/cpu/rollout.c), + I and the row normalisation in double rounded once to float.
 * Shared, like flow_sync.h, by cuda/flow.cu and its host emulation. */
#ifndef AM_CUDA_FLOW_CAPS_H
#define AM_CUDA_FLOW_CAPS_H

#include "flow_sync.h"

/* ---- capacities ------------------------------------------------------------------- */

/* Element i of a float tensor of dtype F32/F16/BF16/F64, possibly unaligned (as
 * am_load_float of host/core/half.h, which device code cannot call). */
AM_FS_FN float am_fs_load(const void *data, int dtype, int64_t i) {
  const unsigned char *p = (const unsigned char *)data;
  if (dtype == AM_DTYPE_F16 || dtype == AM_DTYPE_BF16) {
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    uint32_t bits;
    if (dtype == AM_DTYPE_BF16) {
      bits = (uint32_t)h << 16;
    } else {
      uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu,
               man = h & 0x3FFu;
      if (exp == 0x1Fu) {
        bits = sign | 0x7F800000u | (man << 13);
      } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
      } else if (man == 0) {
        bits = sign;
      } else { /* subnormal: normalise */
        exp = 113;
        while (!(man & 0x400u)) {
          man <<= 1;
          exp--;
        }
        bits = sign | (exp << 23) | ((man & 0x3FFu) << 13);
      }
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
  }
  if (dtype == AM_DTYPE_F64) {
    double d;
    memcpy(&d, p + 8 * i, 8);
    return (float)d;
  }
  float f;
  memcpy(&f, p + 4 * i, 4);
  return f;
}

/* Element (i, j) of one layer's fused matrix over the valid tokens idx: heads in order,
 * as am_rollout_fuse_row and am_rollout_fuse_finish (fusion: am_fusion). att: the
 * example's [H,T,T] block of the layer. */
AM_FS_FN float am_fs_fuse(const void *att, int dtype, int H, int T, const int32_t *idx,
                          int i, int j, int fusion) {
  int64_t at = (int64_t)idx[i] * T + idx[j], plane = (int64_t)T * T;
  float acc = am_fs_load(att, dtype, at);
  for (int h = 1; h < H; h++) {
    float a = am_fs_load(att, dtype, at + h * plane);
    if (fusion == AM_FUSION_MAX)
      acc = a > acc ? a : acc;
    else if (fusion == AM_FUSION_MIN)
      acc = a < acc ? a : acc;
    else
      acc += a;
  }
  if (fusion != AM_FUSION_MAX && fusion != AM_FUSION_MIN && H > 1)
    acc /= (float)H;
  return acc;
}

AM_FS_FN uint32_t am_fs_key(float x) {
  uint32_t b;
  memcpy(&b, &x, sizeof b);
  return b & 0x7FFFFFFFu;
}

/* host/cpu/rollout.c's am_rollout_discard, for one thread: the floor(n^2 ratio)
 * smallest entries set to 0, ties to the lower flat index, flat index 0 kept. hist: 2048
 * counters of scratch. */
AM_FS_FN void am_fs_discard(float *m, int n, double ratio, unsigned *hist) {
  size_t nn = (size_t)n * n, k = (size_t)floor((double)nn * ratio);
  if (k == 0 || k >= nn)
    return;
  const int shifts[3] = {21, 10, 0};
  const uint32_t widths[3] = {11, 11, 10};
  uint32_t prefix = 0, mask = 0;
  size_t rank = k - 1;
  for (int pass = 0; pass < 3; pass++) {
    uint32_t bins = (1u << widths[pass]) - 1u;
    for (int b = 0; b < 2048; b++)
      hist[b] = 0;
    for (size_t p = 0; p < nn; p++) {
      uint32_t key = am_fs_key(m[p]);
      if ((key & mask) == prefix)
        hist[(key >> shifts[pass]) & bins]++;
    }
    uint32_t b = 0;
    while (hist[b] <= rank)
      rank -= hist[b++];
    prefix |= b << shifts[pass];
    mask |= bins << shifts[pass];
  }
  size_t take = rank + 1;
  for (size_t p = 0; p < nn; p++) {
    uint32_t key = am_fs_key(m[p]);
    int drop = key < prefix;
    if (key == prefix && take > 0) {
      take--;
      drop = 1;
    }
    if (drop && p != 0)
      m[p] = 0.0f;
  }
}

/* Row i of rownorm(fused + I), in place as am_rollout_hat, and its transpose into capt.
 * The row sum is host/cpu/rollout.c's hat_row_sum: four partial sums in double combined
 * as 1 + ((s0 + s1) + (s2 + s3)); tests/test_flow_sync.c checks the bits agree. */
AM_FS_FN void am_fs_hat_row(float *cap, float *capt, int n, int i) {
  float *row = cap + (size_t)i * n;
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
  double s = 1.0 + ((s0 + s1) + (s2 + s3));
  for (j = 0; j < n; j++) {
    row[j] = (float)(((double)row[j] + (i == j)) / s);
    capt[(size_t)j * n + i] = row[j];
  }
}

/* One layer's capacities cap [n,n] and capt [n,n] (block-wide); hist: 2048 unsigned of
 * scratch for the discard selection, run by one thread. */
AM_FS_FN void am_fs_layer_caps(const void *att, int dtype, int H, int T, const int32_t *idx,
                               int n, int fusion, double discard, float *cap, float *capt,
                               unsigned *hist) {
  AM_FS_FOR(k, n * n) cap[k] = am_fs_fuse(att, dtype, H, T, idx, k / n, k % n, fusion);
  AM_FS_SYNC();
  if (AM_FS_TID == 0)
    am_fs_discard(cap, n, discard, hist);
  AM_FS_SYNC();
  AM_FS_FOR(i, n) am_fs_hat_row(cap, capt, n, i);
  AM_FS_SYNC();
}

#endif
