/* long_cols.cu — the column side of one layer of the long-context form
 * (docs/long-context.md): per (key tile, head) block, FlashAttention's dV = P^T dO with a
 * row vector in place of dO, over the query tiles that see the key tile, in order:
 *   u_att[j]  = sum_i w_i a_ij          (rollout, w = v / 2: rows of mean_h A + I sum to 2)
 *   u_last[j] = sum_i e_i a_ij          (attention_last, top layer only)
 *   u_grad[j] = sum_i v_i max(0, g_ij a_ij), g_ij = dO_i . v_j (gradient rollout)
 * with a_ij = exp(s_ij - lse_i) recomputed from long_rows.cu's lse and the tile of G =
 * dO V^T. A thread owns a key and adds the rows in increasing i, in double: the CPU's
 * order, and no atomics. Then apply adds the heads in head order into the example's row
 * vectors (host/cpu/long_pass.c's apply_layer), and finish writes the maps.
 *
 * Work mapping: grid (n/64 key tiles, H), 128 threads: threads 0-63 the att and last
 * columns, 64-127 the grad column of the tile's 64 keys. Per head: 2 n^2 dp flops for S
 * and as many for G (MMA from F16/BF16), n^2 expf (twice: both halves recompute a);
 * halved by causal masking. Writes 3 H n doubles. */
#include "cuda/long.cuh"

namespace {

template <int DT>
__global__ void __launch_bounds__(AM_LC_THREADS) long_cols_kernel(am_cu_lc_args_t a) {
  __shared__ __align__(32) float S[AM_LC_TQ * AM_LC_SLD];
  __shared__ __align__(32) float G[AM_LC_TQ * AM_LC_SLD];
  __shared__ double lse[AM_LC_TQ], wa[AM_LC_TQ], wl[AM_LC_TQ], wg[AM_LC_TQ];
  const int h = blockIdx.y, kv = h / (a.H / a.Hkv), n = a.n, j0 = blockIdx.x * AM_LC_TK;
  const int t = threadIdx.x, c = t & (AM_LC_TK - 1), grad_side = t >= AM_LC_TK, j = j0 + c;
  const int nj = min(AM_LC_TK, n - j0), es = DT == AM_DT_F32 ? 4 : 2;
  const size_t head = (size_t)a.np * a.dp * es;
  const char *Q = (const char *)a.q + h * head, *K = (const char *)a.k + kv * head;
  const char *V = (const char *)a.v + kv * head;
  const char *D = a.w_grad ? (const char *)a.dout + h * head : NULL;
  double ua = 0.0, ul = 0.0, ug = 0.0;
  for (int i0 = 0; i0 < n; i0 += AM_LC_TQ) {
    const int mi = min(AM_LC_TQ, n - i0);
    if (am_lc_hidden(a, i0, mi, j0, nj))
      continue;
    __syncthreads(); /* the previous tile is read */
    am_lc_dot_tile<DT>(Q, K, i0, j0, a.dp, S);
    if (D)
      am_lc_dot_tile<DT>(D, V, i0, j0, a.dp, G);
    for (int r = t; r < AM_LC_TQ; r += AM_LC_THREADS) {
      const bool in = r < mi;
      lse[r] = in ? a.lse[(size_t)h * n + i0 + r] : 0.0;
      wa[r] = in && a.w_att ? a.w_att[i0 + r] : 0.0;
      wl[r] = in && a.w_last ? a.w_last[i0 + r] : 0.0;
      wg[r] = in && a.w_grad ? a.w_grad[i0 + r] : 0.0;
    }
    __syncthreads();
    if (j >= n)
      continue;
    for (int r = 0; r < mi; r++) {
      const float s = am_lc_score(a, S[r * AM_LC_SLD + c], i0 + r, j);
      const float p = expf((float)((double)s - lse[r]));
      if (!grad_side) {
        ua += wa[r] * (double)p;
        ul += wl[r] * (double)p;
      } else if (D) {
        const double ga = (double)G[r * AM_LC_SLD + c] * (double)p;
        ug += wg[r] * (ga > 0.0 ? ga : 0.0);
      }
    }
  }
  if (j >= n)
    return;
  if (!grad_side) {
    a.u[(size_t)h * n + j] = ua;
    a.u[((size_t)a.H + h) * n + j] = ul;
  } else {
    a.u[(2 * (size_t)a.H + h) * n + j] = ug;
  }
}

enum { ST_VR, ST_WR, ST_VG, ST_LAST, ST_WLAST, ST_N };

__global__ void __launch_bounds__(256) long_init_kernel(double *st, int n, int target) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= n)
    return;
  const double start = target == AM_ROW_MEAN ? 1.0 / (double)n : (double)(j == target);
  st[ST_VR * (size_t)n + j] = start;
  st[ST_VG * (size_t)n + j] = start;
  st[ST_WR * (size_t)n + j] = start / 2.0;
  st[ST_LAST * (size_t)n + j] = 0.0;
  st[ST_WLAST * (size_t)n + j] = target == AM_ROW_MEAN ? 1.0 : (double)(j == target);
}

/* v_roll <- w + sum_h u_att / H, v_grad += sum_h u_grad / H, last += sum_h u_last. */
__global__ void __launch_bounds__(256)
    long_apply_kernel(am_cu_lc_args_t a, double *st, int last_layer) {
  const int n = a.n, H = a.H, j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= n)
    return;
  double r = 0.0, g = 0.0, l = 0.0;
  for (int h = 0; h < H; h++) {
    r += a.w_att ? a.u[(size_t)h * n + j] : 0.0;
    l += last_layer && a.w_last ? a.u[((size_t)H + h) * n + j] : 0.0;
    g += a.w_grad ? a.u[(2 * (size_t)H + h) * n + j] : 0.0;
  }
  const double vr = st[ST_WR * (size_t)n + j] + r / H;
  st[ST_VR * (size_t)n + j] = vr;
  st[ST_VG * (size_t)n + j] += g / H;
  st[ST_LAST * (size_t)n + j] += l;
  st[ST_WR * (size_t)n + j] = vr / 2.0;
}

__global__ void __launch_bounds__(256)
    long_finish_kernel(const double *st, int n, int H, int target, int normalize,
                       float *out) {
  __shared__ double scratch[32];
  const double div = (double)H * (target == AM_ROW_MEAN ? n : 1);
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    out[j] = (float)(st[ST_LAST * (size_t)n + j] / div);
    out[(size_t)n + j] = (float)st[ST_VR * (size_t)n + j];
    out[2 * (size_t)n + j] = (float)st[ST_VG * (size_t)n + j];
  }
  am_block_normalize(out + n, n, normalize, scratch);
  am_block_normalize(out + 2 * (size_t)n, n, normalize, scratch);
}

} // namespace

am_status am_cuda_long_cols(const am_cu_lc_args_t *a, int dt, cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  const dim3 grid((unsigned)((a->n + AM_LC_TK - 1) / AM_LC_TK), (unsigned)a->H);
  void (*k)(am_cu_lc_args_t) = dt == AM_DT_F16    ? long_cols_kernel<AM_DT_F16>
                               : dt == AM_DT_BF16 ? long_cols_kernel<AM_DT_BF16>
                                                  : long_cols_kernel<AM_DT_F32>;
  if (a->w_att || a->w_last || a->w_grad)
    AM_LAUNCH(k, grid, dim3(AM_LC_THREADS), 0, s, *a);
done:
  return st;
}

am_status am_cuda_long_init(double *st_, int n, int target, cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  AM_LAUNCH(long_init_kernel, dim3((unsigned)((n + 255) / 256)), dim3(256), 0, s, st_, n,
            target);
done:
  return st;
}

am_status am_cuda_long_apply(const am_cu_lc_args_t *a, double *st_, int last_layer,
                             cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  AM_LAUNCH(long_apply_kernel, dim3((unsigned)((a->n + 255) / 256)), dim3(256), 0, s, *a,
            st_, last_layer);
done:
  return st;
}

am_status am_cuda_long_finish(const double *st_, int n, int H, int target, int normalize,
                              float *out, cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  AM_LAUNCH(long_finish_kernel, dim3(1), dim3(256), 0, s, st_, n, H, target, normalize,
            out);
done:
  return st;
}
