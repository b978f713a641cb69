/* rollout.cu — attention rollout's row form outside the fused kernel (Abnar & Zuidema
 * 2020; docs/design.md §3): the start vectors, the matrix-form step of one layer (used with
 * the discard ratio and for rows longer than 512, where F must be whole first)
 *   s_i = 1 + sum_j F_ij,  w_i = v_i / s_i,  v_j <- w_j + sum_i w_i F_ij
 * and the final maps of both rollouts: the row vector after layer 0, rounded to float
 * and normalised as --normalize says (max, sum, minmax; am_cpu_normalize's rules).
 *
 * Work mapping: the row sums take a warp per row (grid = (n/8, examples), 256 threads),
 * the product is vecmat.cu's; the final maps take one block of 256 threads per example.
 * Per example and layer: reads F twice (4 n^2 bytes each), 3 n^2 flops. */
#include "cuda/kernels.cuh"

namespace {

__global__ void __launch_bounds__(256) rollout_init_kernel(am_cu_args_t a) {
  const am_cu_ex_t X = a.ex[blockIdx.y];
  const int n = X.n, j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= n)
    return;
  if (X.flags & AM_EXF_ROLL_MAT)
    a.work[X.roll + j] = am_cu_start(X.target, n, j);
  if (X.flags & AM_EXF_GRAD_MAT)
    a.work[X.grad + j] = am_cu_start(X.target, n, j);
}

/* s_i = 1 + sum_j F_ij: w_i = v_i / s_i of the matrix form, and s_i itself for the step
 * rows (steps.cu). */
__global__ void __launch_bounds__(256) rollout_rowsum_kernel(am_cu_args_t a) {
  const am_cu_ex_t X = a.ex[blockIdx.y];
  const int n = X.n, lane = threadIdx.x & 31, i = blockIdx.x * 8 + (threadIdx.x >> 5);
  if (!(X.flags & (AM_EXF_ROLL_MAT | AM_EXF_ROLL_STEPS)) || i >= n)
    return; /* whole warps */
  const float *Fr = a.mat + X.F + (size_t)i * n;
  double p = 0.0;
  for (int j = lane; j < n; j += 32)
    p += Fr[j];
  const double s = 1.0 + am_group_sum_d(p, 32); /* + 1: the identity */
  if (lane == 0 && (X.flags & AM_EXF_ROLL_MAT)) {
    double *st = a.work + X.roll; /* [V n][w n] */
    st[n + i] = st[i] / s;
  }
  if (lane == 0 && (X.flags & AM_EXF_ROLL_STEPS))
    a.work[X.rsteps + i] = s;
}

/* The final row of one map into out[o..o+n), normalised. Every thread of the block runs it.
 */
__device__ void finish_map(const am_cu_args_t &a, const am_cu_ex_t &X, bool ink,
                           const double *st, long long o, int divide_h, double *scratch) {
  const int n = X.n, nb = am_cu_nb(n);
  float *out = a.out + o;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    double v = st[j];
    if (ink) { /* layer 0 wrote partial set 0 */
      double part = 0.0;
      for (int b = 0; b < nb; b++)
        part += st[n + (size_t)b * n + j];
      v += divide_h ? part / a.H : part;
    }
    out[j] = (float)v;
  }
  am_block_normalize(out, n, a.normalize, scratch);
}

__global__ void __launch_bounds__(256) rollout_finish_kernel(am_cu_args_t a) {
  __shared__ double scratch[32];
  const am_cu_ex_t X = a.ex[blockIdx.x];
  const unsigned f = X.flags;
  if (f & (AM_EXF_ROLL_INK | AM_EXF_ROLL_MAT))
    finish_map(a, X, f & AM_EXF_ROLL_INK, a.work + X.roll, X.o_roll, 0, scratch);
  if (f & (AM_EXF_GRAD_INK | AM_EXF_GRAD_MAT))
    finish_map(a, X, f & AM_EXF_GRAD_INK, a.work + X.grad, X.o_grad, 1, scratch);
}

} // namespace

am_status am_cuda_rollout_init(const am_cu_args_t *a, int nmax, cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  AM_LAUNCH(rollout_init_kernel, dim3((unsigned)((nmax + 255) / 256), (unsigned)a->nex),
            dim3(256), 0, s, *a);
done:
  return st;
}

am_status am_cuda_rollout_rowsum(const am_cu_args_t *a, int nmax, cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  AM_LAUNCH(rollout_rowsum_kernel, dim3((unsigned)((nmax + 7) / 8), (unsigned)a->nex),
            dim3(256), 0, s, *a);
done:
  return st;
}

am_status am_cuda_rollout_step(const am_cu_args_t *a, int nmax, cudaStream_t s) {
  return am_cuda_vecmat(a, AM_VM_ROLLOUT, nmax, s);
}

am_status am_cuda_rollout_finish(const am_cu_args_t *a, cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  AM_LAUNCH(rollout_finish_kernel, dim3((unsigned)a->nex), dim3(256), 0, s, *a);
done:
  return st;
}
