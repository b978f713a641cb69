/* steps.cu — several targets (docs/generation.md, "Several targets"): the S step rows of
 * ATTENTION_LAST_STEPS, ROLLOUT_STEPS and GRAD_ROLLOUT_STEPS of every example, row s as
 * the single-target row for target steps[s] (host/cpu/step_rows.c is the reference).
 * Both rollouts go through the layer's whole matrix (F, or Gbar, written by the fused
 * kernel), as their matrix form does, with a matrix of S rows instead of a vector:
 *   rollout:   W = V / (1 + rowsum F),  V <- W + W F
 *   gradient:  W = V,                   V <- W + (W Gbar) / H
 * (V, W: [S,n] doubles; the row sums RS from rollout.cu's kernel), then the rows rounded
 * to float and normalised per row.
 * attention_last: row steps[s] of the top layer, summed over heads in double (the CPU's
 * bits). Per-step gradients (ex->step_grad) are refused by the backend (batch.cu): the
 * pipeline then runs a single-target pass per step.
 *
 * Work mapping: the product takes grid = (column blocks of 256, step blocks of 8,
 * examples); a thread owns one column j for 8 step rows and walks every row i in order
 * (coalesced across threads, double accumulation, the 8 rows of W of a chunk of 256 rows
 * in shared memory, 16 KiB), so M is read S/8 times a layer; no atomics: the same bits
 * every run. Prepare and finish: a thread per element, a block
 * per output row. Per example and layer: 2 S n^2 flops, (S/8) 4 n^2 bytes of M. */
#include "cuda/kernels.cuh"

#define AM_CU_SB 8 /* step rows per block of the product */

namespace {

/* [RS n][V S n][W S n] of the rollout rows, [V S n][W S n] of the gradient rows. */
__device__ __forceinline__ double *rows_v(const am_cu_args_t &a, const am_cu_ex_t &X,
                                          int which) {
  return which == AM_VM_GRAD ? a.work + X.gsteps : a.work + X.rsteps + X.n;
}

__device__ __forceinline__ bool steps_on(const am_cu_ex_t &X, int which) {
  return X.flags & (which == AM_VM_GRAD ? AM_EXF_GRAD_STEPS : AM_EXF_ROLL_STEPS);
}

__global__ void __launch_bounds__(256) steps_init_kernel(am_cu_args_t a) {
  const am_cu_ex_t X = a.ex[blockIdx.z];
  const int n = X.n, s = blockIdx.y, j = blockIdx.x * blockDim.x + threadIdx.x;
  if (s >= X.S || j >= n)
    return;
  const double v = j == a.steps[X.steps + s] ? 1.0 : 0.0;
  for (int which = 0; which < 2; which++)
    if (steps_on(X, which))
      rows_v(a, X, which)[(size_t)s * n + j] = v;
}

/* W = V / RS (rollout) or W = V (gradient rollout). */
__global__ void __launch_bounds__(256) steps_prepare_kernel(am_cu_args_t a, int which) {
  const am_cu_ex_t X = a.ex[blockIdx.z];
  const int n = X.n, s = blockIdx.y, j = blockIdx.x * blockDim.x + threadIdx.x;
  if (!steps_on(X, which) || s >= X.S || j >= n)
    return;
  const double *V = rows_v(a, X, which);
  double *W = (double *)V + (size_t)X.S * n;
  const size_t k = (size_t)s * n + j;
  W[k] = which == AM_VM_GRAD ? V[k] : V[k] / a.work[X.rsteps + j];
}

/* V[s,j] = W[s,j] + c sum_i W[s,i] M[i,j] for 8 step rows s of a block, c = 1 or 1/H. */
__global__ void __launch_bounds__(AM_CU_VM)
    steps_product_kernel(am_cu_args_t a, int which) {
  __shared__ double ws[AM_CU_SB][AM_CU_VM];
  const am_cu_ex_t X = a.ex[blockIdx.z];
  const int n = X.n, s0 = blockIdx.y * AM_CU_SB, j = blockIdx.x * AM_CU_VM + threadIdx.x;
  if (!steps_on(X, which) || s0 >= X.S || (int)(blockIdx.x * AM_CU_VM) >= n)
    return; /* the whole block */
  const int ns = min(AM_CU_SB, X.S - s0);
  double *V = rows_v(a, X, which), *W = V + (size_t)X.S * n;
  const float *M = a.mat + (which == AM_VM_GRAD ? X.G : X.F);
  double acc[AM_CU_SB];
#pragma unroll
  for (int k = 0; k < AM_CU_SB; k++)
    acc[k] = 0.0;
  for (int i0 = 0; i0 < n; i0 += AM_CU_VM) {
    const int rows = min(AM_CU_VM, n - i0);
    __syncthreads(); /* the previous chunk is used up */
    for (int k = 0; k < ns; k++)
      if ((int)threadIdx.x < rows)
        ws[k][threadIdx.x] = W[(size_t)(s0 + k) * n + i0 + threadIdx.x];
    __syncthreads();
    if (j >= n)
      continue;
    for (int r = 0; r < rows; r++) {
      const double m = (double)M[(size_t)(i0 + r) * n + j];
#pragma unroll
      for (int k = 0; k < AM_CU_SB; k++)
        if (k < ns)
          acc[k] += ws[k][r] * m;
    }
  }
  if (j >= n)
    return;
  for (int k = 0; k < ns; k++) {
    const size_t at = (size_t)(s0 + k) * n + j;
    V[at] = W[at] + (which == AM_VM_GRAD ? acc[k] / a.H : acc[k]);
  }
}

/* Row s of example X: attention_last's from the staged top layer, the rollouts' from V,
 * rounded to float and normalised. A block per row. */
template <int DT>
__global__ void __launch_bounds__(256) steps_finish_kernel(am_cu_args_t a) {
  typedef typename am_elem<DT>::type T;
  __shared__ double scratch[32];
  const am_cu_ex_t X = a.ex[blockIdx.y];
  const int n = X.n, s = blockIdx.x;
  if (s >= X.S)
    return; /* the whole block */
  if (X.flags & AM_EXF_LAST_STEPS) {
    const size_t nn = (size_t)n * n;
    const T *A = (const T *)a.att + X.in + (size_t)(a.L - 1) * a.H * nn;
    const int t = a.steps[X.steps + s];
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
      double acc = 0.0;
      for (int h = 0; h < a.H; h++)
        acc += (double)am_ld<DT>(A, ((size_t)h * n + t) * n + j);
      a.out[X.o_lsteps + (size_t)s * n + j] = (float)(acc / (double)a.H);
    }
  }
  for (int which = 0; which < 2; which++) {
    if (!steps_on(X, which))
      continue;
    const double *V = rows_v(a, X, which) + (size_t)s * n;
    float *out = a.out + (which == AM_VM_GRAD ? X.o_gsteps : X.o_rsteps) + (size_t)s * n;
    for (int j = threadIdx.x; j < n; j += blockDim.x)
      out[j] = (float)V[j];
    am_block_normalize(out, n, a.normalize, scratch);
  }
}

} // namespace

am_status am_cuda_steps_init(const am_cu_args_t *a, int nmax, int smax, cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  AM_LAUNCH(steps_init_kernel,
            dim3((unsigned)((nmax + 255) / 256), (unsigned)smax, (unsigned)a->nex),
            dim3(256), 0, s, *a);
done:
  return st;
}

am_status am_cuda_steps_layer(const am_cu_args_t *a, unsigned any, int nmax, int smax,
                              cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  const dim3 rows((unsigned)((nmax + 255) / 256), (unsigned)smax, (unsigned)a->nex);
  const dim3 prod((unsigned)((nmax + AM_CU_VM - 1) / AM_CU_VM),
                  (unsigned)((smax + AM_CU_SB - 1) / AM_CU_SB), (unsigned)a->nex);
  if (any & AM_EXF_ROLL_STEPS) { /* RS: am_cuda_rollout_rowsum, before */
    AM_LAUNCH(steps_prepare_kernel, rows, dim3(256), 0, s, *a, (int)AM_VM_ROLLOUT);
    AM_LAUNCH(steps_product_kernel, prod, dim3(AM_CU_VM), 0, s, *a, (int)AM_VM_ROLLOUT);
  }
  if (any & AM_EXF_GRAD_STEPS) {
    AM_LAUNCH(steps_prepare_kernel, rows, dim3(256), 0, s, *a, (int)AM_VM_GRAD);
    AM_LAUNCH(steps_product_kernel, prod, dim3(AM_CU_VM), 0, s, *a, (int)AM_VM_GRAD);
  }
done:
  return st;
}

template <int DT> static am_status finish(const am_cu_args_t *a, int smax, cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  void (*k)(am_cu_args_t) = steps_finish_kernel<DT>;
  AM_LAUNCH(k, dim3((unsigned)smax, (unsigned)a->nex), dim3(256), 0, s, *a);
done:
  return st;
}

am_status am_cuda_steps_finish(const am_cu_args_t *a, int dt, int smax, cudaStream_t s) {
  if (dt == AM_DT_F32)
    return finish<AM_DT_F32>(a, smax, s);
  return dt == AM_DT_F16 ? finish<AM_DT_F16>(a, smax, s) : finish<AM_DT_BF16>(a, smax, s);
}
