/* long.cuh — the long-context form on the device (docs/long-context.md, docs/cuda.md):
 * what the kernels of long_rows.cu and long_cols.cu share. A layer of one example is
 * staged compact: head h's valid rows of Q (and dO) at q + (h*np + i)*dp, its KV head's
 * rows of K and V likewise, np = n rounded up to the tile, dp = d rounded up to 16, zeros
 * in the padding (so tiles need no bounds checks; padded keys are masked, padded rows
 * ignored). A score tile is TQ query rows x TK keys of raw dot products in shared memory:
 * tensor-core MMA (nvcuda::wmma, m16n16k16, F32 accumulation) from F16/BF16 inputs, plain
 * FMA in F32 from F32 inputs (TF32 would lose the CPU's agreement). Nothing is n x n. */
#ifndef AM_CUDA_LONG_CUH
#define AM_CUDA_LONG_CUH

#ifndef AM_CUDA_EMU
#include <cuda_bf16.h>
#include <mma.h>
#endif

#include "cuda/cuda_common.cuh"

extern "C" {
#include "ops/example.h"
}

#define AM_LC_TQ 64       /* query rows of a tile (= the CPU's AM_LC_BQ: the fault order) */
#define AM_LC_TK 64       /* keys of a tile */
#define AM_LC_CPU_BK 128  /* the CPU's key tile, for the order of score faults */
#define AM_LC_SLD 68      /* row stride of a shared tile in floats (16-byte multiple) */
#define AM_LC_THREADS 128 /* 4 warps: warp w owns tile rows 16w..16w+15 in the MMA */

/* Row terms per (head, valid row), doubles: summed over rows by long_head_sums_kernel. */
enum {
  AM_LR_ENT, /* sum_j a_ij (lse_i - s_ij) */
  AM_LR_CONF,
  AM_LR_FIRST,
  AM_LR_LAST,
  AM_LR_SELF,
  AM_LR_PREV,
  AM_LR_NEXT,
  AM_LR_DIST,
  AM_LR_DOT, /* sum_j a_ij g_ij = dO_i . O_i; the head sum takes | | */
  AM_LR_N
};

/* One layer of one example, passed by value. */
typedef struct am_cu_lc_args {
  const void *q, *k, *v, *dout; /* staged [H|Hkv][np][dp]; dout NULL without gradients */
  const int *pos;               /* [n] padded positions of the valid tokens */
  int n, np, dp, H, Hkv;
  float scale, softcap; /* softcap 0: none */
  int causal, window;   /* window 0: none */
  int stats, importance;
  int grid, prefix, cols;                /* grid: the patch distance (ops/grid.h) */
  double *lse;                           /* [H][n] */
  double *rows;                          /* [H][n][AM_LR_N] */
  double *acc;                           /* this layer's [H][AM_LR_N] row sums */
  unsigned long long *fault;             /* this layer's [H]: first bad score's key */
  const double *w_att, *w_last, *w_grad; /* [n] column weights, or NULL */
  double *u;                             /* [3][H][n]: att, last, grad column products */
} am_cu_lc_args_t;

/* 1 when no key of [j0, j0+nj) is visible to a query of [i0, i0+mi) (host/cpu/long_tile.c's
 * test: positions increase with the index). */
__device__ __forceinline__ bool am_lc_hidden(const am_cu_lc_args_t &a, int i0, int mi,
                                             int j0, int nj) {
  const int i1 = i0 + mi - 1, j1 = j0 + nj - 1;
  if (a.causal && j0 > i1)
    return true;
  if (a.window > 0) {
    if ((long long)a.pos[i0] - a.pos[j1] >= a.window)
      return true;
    if (!a.causal && (long long)a.pos[j0] - a.pos[i1] >= a.window)
      return true;
  }
  return false;
}

/* The score of valid row i and key j from the raw product x: scale, soft-cap, mask (padded
 * keys j >= n, causal, window), as host/cpu/long_tile.c. */
__device__ __forceinline__ float am_lc_score(const am_cu_lc_args_t &a, float x, int i,
                                             int j) {
  if (j >= a.n || (a.causal && j > i))
    return -INFINITY;
  if (a.window > 0) {
    const long long back = (long long)a.pos[i] - a.pos[j];
    if (back >= a.window || (!a.causal && -back >= a.window))
      return -INFINITY;
  }
  float s = a.scale * x;
  if (a.softcap > 0.0f)
    s = a.softcap * tanhf(s / a.softcap);
  return s;
}

template <int DT> struct am_lc_mma_elem { typedef __half type; };
template <> struct am_lc_mma_elem<AM_DT_BF16> { typedef __nv_bfloat16 type; };

/* raw[r*SLD + c] = X[i0 + r] . Y[j0 + c] for a TQ x TK tile, X and Y staged [np][dp].
 * Every thread of the block calls it; raw is read after the caller's __syncthreads. */
template <int DT>
__device__ __forceinline__ void am_lc_dot_tile(const void *X, const void *Y, int i0, int j0,
                                               int dp, float *raw) {
  if constexpr (DT == AM_DT_F32) {
    /* FMA over 16-dimension chunks staged in shared memory; thread t owns row t/2 and
     * the keys of its parity, sums in dimension order */
    __shared__ float xs[AM_LC_TQ][17], ys[AM_LC_TK][17];
    const float *x = (const float *)X, *y = (const float *)Y;
    const int t = threadIdx.x, r = t >> 1, c0 = t & 1;
    float acc[AM_LC_TK / 2];
#pragma unroll
    for (int m = 0; m < AM_LC_TK / 2; m++)
      acc[m] = 0.0f;
    for (int k0 = 0; k0 < dp; k0 += 16) {
      __syncthreads(); /* the previous chunk is read */
      for (int e = t; e < AM_LC_TQ * 16; e += AM_LC_THREADS) {
        const int rr = e >> 4, kk = e & 15;
        xs[rr][kk] = x[(size_t)(i0 + rr) * dp + k0 + kk];
        ys[rr][kk] = y[(size_t)(j0 + rr) * dp + k0 + kk];
      }
      __syncthreads();
      for (int kk = 0; kk < 16; kk++) {
        const float xv = xs[r][kk];
#pragma unroll
        for (int m = 0; m < AM_LC_TK / 2; m++)
          acc[m] = fmaf(xv, ys[c0 + 2 * m][kk], acc[m]);
      }
    }
#pragma unroll
    for (int m = 0; m < AM_LC_TK / 2; m++)
      raw[r * AM_LC_SLD + c0 + 2 * m] = acc[m];
  } else {
    /* warp w: rows 16w..16w+15 against the four 16-key blocks, 16 dimensions a step */
    using namespace nvcuda;
    typedef typename am_lc_mma_elem<DT>::type T;
    const int w = threadIdx.x >> 5;
    const T *x = (const T *)X + (size_t)(i0 + 16 * w) * dp;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[AM_LC_TK / 16];
#pragma unroll
    for (int b = 0; b < AM_LC_TK / 16; b++)
      wmma::fill_fragment(acc[b], 0.0f);
    for (int k = 0; k < dp; k += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
      wmma::load_matrix_sync(fa, x + k, (unsigned)dp);
#pragma unroll
      for (int b = 0; b < AM_LC_TK / 16; b++) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb;
        wmma::load_matrix_sync(fb, (const T *)Y + (size_t)(j0 + 16 * b) * dp + k,
                               (unsigned)dp);
        wmma::mma_sync(acc[b], fa, fb, acc[b]);
      }
    }
#pragma unroll
    for (int b = 0; b < AM_LC_TK / 16; b++)
      wmma::store_matrix_sync(raw + 16 * w * AM_LC_SLD + 16 * b, acc[b], AM_LC_SLD,
                              wmma::mem_row_major);
  }
}

/* Launchers (dt: AM_DT_*), on stream s. long_rows.cu: each row's log-sum-exp, its terms of
 * the head statistics and importance, then their sums per head; long_cols.cu: the column
 * products of the probabilities (rollout, attention_last, gradient rollout). */
am_status am_cuda_long_rows(const am_cu_lc_args_t *a, int dt, cudaStream_t s);
am_status am_cuda_long_cols(const am_cu_lc_args_t *a, int dt, cudaStream_t s);
/* long_cols.cu: the row vectors of an example: st [5][n] = v_roll, w_roll, v_grad, last,
 * w_last; init sets the start, apply adds a layer's heads (in head order), finish writes
 * out [3][n] floats: attention_last (divided), rollout, gradient rollout (normalised). */
am_status am_cuda_long_init(double *st, int n, int target, cudaStream_t s);
am_status am_cuda_long_apply(const am_cu_lc_args_t *a, double *st, int last_layer,
                             cudaStream_t s);
am_status am_cuda_long_finish(const double *st, int n, int H, int target, int normalize,
                              float *out, cudaStream_t s);

#endif
