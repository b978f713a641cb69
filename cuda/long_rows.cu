/* long_rows.cu — the row side of one layer of the long-context form (docs/long-context.md),
 * FlashAttention's backward pass as the model: per (query tile, head) block
 *
 *  sweep 1: each row's maximum m_i and l_i = sum_j exp(s_ij - m_i) over the visible key
 *           tiles, rescaled when a tile raises the maximum; lse_i = m_i + ln l_i (kept for
 *           long_cols.cu); a score that is NaN or +inf is a fault (its key: the CPU's
 *           order, query tile, 128-key tile, row);
 *  sweep 2: a_ij = exp(s_ij - lse_i) recomputed per tile, and the row terms of the head
 *           statistics (entropy sum_j a (lse - s), confidence exp(m - lse), the weights at
 *           the first/last/own/previous/next key, the distance) and of importance
 *           sum_j a_ij g_ij with the tile of G = dO V^T (= dO_i . O_i, O = A V).
 *
 * Then long_head_sums_kernel adds each head's row terms in row order (double; |.| of the
 * importance term), the same order as the CPU.
 *
 * Work mapping: grid (n/64 query tiles, H), 128 threads; two threads per row (even and odd
 * keys of a tile), combined by one shuffle. Per head: 2 n^2 dp flops per score sweep (MMA
 * from F16/BF16, FMA from F32), 2 n^2 dp more for G when importance is wanted, 2 n^2 expf;
 * halved by causal masking. Reads Q, K (and dO, V) tiles: (n/64) x (K, V bytes) per head;
 * writes 8 (1 + AM_LR_N) n bytes per head. Shared memory: two 64 x 68 float tiles (35 KiB)
 * and, from F32, 8.5 KiB of staged chunks. */
#include "cuda/long.cuh"

namespace {

/* |i - j| in valid-token order, or the patch distance (0 for prefix tokens). */
__device__ __forceinline__ double key_distance(const am_cu_lc_args_t &a, int i, int j) {
  if (!a.grid)
    return (double)(i > j ? i - j : j - i);
  if (i < a.prefix || j < a.prefix)
    return 0.0;
  const int pi = i - a.prefix, pj = j - a.prefix;
  const int dr = pi / a.cols - pj / a.cols, dc = pi % a.cols - pj % a.cols;
  return sqrt((double)(dr * dr + dc * dc));
}

template <int DT>
__global__ void __launch_bounds__(AM_LC_THREADS) long_rows_kernel(am_cu_lc_args_t a) {
  __shared__ __align__(32) float S[AM_LC_TQ * AM_LC_SLD];
  __shared__ __align__(32) float G[AM_LC_TQ * AM_LC_SLD];
  const int h = blockIdx.y, kv = h / (a.H / a.Hkv), n = a.n, i0 = blockIdx.x * AM_LC_TQ;
  const int t = threadIdx.x, r = t >> 1, half = t & 1, i = i0 + r;
  const int mi = min(AM_LC_TQ, n - i0), es = DT == AM_DT_F32 ? 4 : 2;
  const size_t head = (size_t)a.np * a.dp * es;
  const char *Q = (const char *)a.q + h * head, *K = (const char *)a.k + kv * head;
  const char *V = (const char *)a.v + kv * head;
  const char *D = a.dout ? (const char *)a.dout + h * head : NULL;
  const float *srow = S + r * AM_LC_SLD, *grow = G + r * AM_LC_SLD;
  const unsigned long long nk_cpu =
      (unsigned long long)(n + AM_LC_CPU_BK - 1) / AM_LC_CPU_BK;
  float m = -INFINITY;
  double l = 0.0;
  for (int j0 = 0; j0 < n; j0 += AM_LC_TK) { /* sweep 1 */
    if (am_lc_hidden(a, i0, mi, j0, min(AM_LC_TK, n - j0)))
      continue;
    __syncthreads(); /* the previous tile is read */
    am_lc_dot_tile<DT>(Q, K, i0, j0, a.dp, S);
    __syncthreads();
    float mt = -INFINITY;
    for (int c = half; c < AM_LC_TK && i < n; c += 2) {
      const float s = am_lc_score(a, srow[c], i, j0 + c);
      if (isnan(s) || s == INFINITY) {
        const unsigned long long key =
            ((unsigned long long)blockIdx.x * nk_cpu + (unsigned)(j0 + c) / AM_LC_CPU_BK) *
                AM_LC_TQ +
            r;
        atomicMin(a.fault + h, key); /* integer: the least key, whatever the order */
      }
      mt = fmaxf(mt, s);
    }
    mt = fmaxf(mt, __shfl_xor_sync(AM_FULL_MASK, mt, 1));
    double sum = 0.0;
    if (mt != -INFINITY) { /* else every key of the tile is masked for the row */
      if (mt > m) {
        if (l > 0.0)
          l *= exp((double)m - (double)mt);
        m = mt;
      }
      for (int c = half; c < AM_LC_TK && i < n; c += 2)
        sum += expf(am_lc_score(a, srow[c], i, j0 + c) - m);
    }
    l += sum + __shfl_xor_sync(AM_FULL_MASK, sum, 1);
  }
  const double lse = (double)m + log(l);
  if (half == 0 && i < n)
    a.lse[(size_t)h * n + i] = lse;
  if (!a.stats && !a.importance)
    return;
  double ent = 0.0, dist = 0.0, dot = 0.0;
  float pick[5] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  for (int j0 = 0; j0 < n; j0 += AM_LC_TK) { /* sweep 2 */
    if (am_lc_hidden(a, i0, mi, j0, min(AM_LC_TK, n - j0)))
      continue;
    __syncthreads();
    am_lc_dot_tile<DT>(Q, K, i0, j0, a.dp, S);
    if (a.importance)
      am_lc_dot_tile<DT>(D, V, i0, j0, a.dp, G);
    __syncthreads();
    for (int c = half; c < AM_LC_TK && i < n; c += 2) {
      const int j = j0 + c;
      const float s = am_lc_score(a, srow[c], i, j);
      const float p = expf((float)((double)s - lse)); /* masked: exp(-inf) = 0 */
      if (p > 0.0f) {
        ent += (double)p * (lse - (double)s);
        if (a.stats)
          dist += (double)p * key_distance(a, i, j);
        if (a.importance)
          dot += (double)p * (double)grow[c];
      }
      pick[0] = j == 0 ? p : pick[0];
      pick[1] = j == n - 1 ? p : pick[1];
      pick[2] = j == i ? p : pick[2];
      pick[3] = j == i - 1 ? p : pick[3];
      pick[4] = j == i + 1 ? p : pick[4];
    }
  }
  /* the pair's halves: sums of disjoint keys; each pick is held by one of the two */
  ent += __shfl_xor_sync(AM_FULL_MASK, ent, 1);
  dist += __shfl_xor_sync(AM_FULL_MASK, dist, 1);
  dot += __shfl_xor_sync(AM_FULL_MASK, dot, 1);
#pragma unroll
  for (int k = 0; k < 5; k++)
    pick[k] += __shfl_xor_sync(AM_FULL_MASK, pick[k], 1);
  if (half || i >= n)
    return;
  double *o = a.rows + ((size_t)h * n + i) * AM_LR_N;
  o[AM_LR_ENT] = ent;
  o[AM_LR_CONF] = (double)(float)exp((double)m - lse); /* the CPU's float confidence */
  for (int k = 0; k < 5; k++)
    o[AM_LR_FIRST + k] = (double)pick[k];
  o[AM_LR_DIST] = dist;
  o[AM_LR_DOT] = dot;
}

/* acc[h][k] = sum over rows in order of the row terms (|dot| for importance). */
__global__ void __launch_bounds__(32) long_head_sums_kernel(am_cu_lc_args_t a) {
  const int h = blockIdx.x, k = threadIdx.x;
  if (k >= AM_LR_N)
    return;
  const double *p = a.rows + (size_t)h * a.n * AM_LR_N + k;
  double s = 0.0;
  for (int i = 0; i < a.n; i++)
    s += k == AM_LR_DOT ? fabs(p[(size_t)i * AM_LR_N]) : p[(size_t)i * AM_LR_N];
  a.acc[(size_t)h * AM_LR_N + k] = s;
}

} // namespace

am_status am_cuda_long_rows(const am_cu_lc_args_t *a, int dt, cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  const dim3 grid((unsigned)((a->n + AM_LC_TQ - 1) / AM_LC_TQ), (unsigned)a->H);
  void (*k)(am_cu_lc_args_t) = dt == AM_DT_F16    ? long_rows_kernel<AM_DT_F16>
                               : dt == AM_DT_BF16 ? long_rows_kernel<AM_DT_BF16>
                                                  : long_rows_kernel<AM_DT_F32>;
  AM_LAUNCH(k, grid, dim3(AM_LC_THREADS), 0, s, *a);
  if (a->stats || a->importance)
    AM_LAUNCH(long_head_sums_kernel, dim3((unsigned)a->H), dim3(32), 0, s, *a);
done:
  return st;
}
