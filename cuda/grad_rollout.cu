/* grad_rollout.cu — gradient-weighted rollout outside the fused kernel (Chefer, Gur & Wolf
 * 2021; docs/design.md §3): Gbar_l = sum_h max(0, G_l (.) A_l) is written by the fused
 * kernel,
 *   - the matrix-form row step  v <- v + (v Gbar_l) / H  (rows longer than 512), and
 *   - the all-rows hat  I + Gbar_l / H  in place, as am_grad_rollout_hat (float divide,
 *     then + 1 on the diagonal), for the products of grad_rollout.rows.
 *
 * Work mapping: the step is vecmat.cu's; the hat takes a warp per row (grid = (n/8,
 * examples), 256 threads). Per example and layer: the hat reads and writes 4 n^2 bytes,
 * n^2 divisions. */
#include "cuda/kernels.cuh"

namespace {

__global__ void __launch_bounds__(256) grad_hat_kernel(am_cu_args_t a) {
  const am_cu_ex_t X = a.ex[blockIdx.y];
  const int n = X.n, lane = threadIdx.x & 31, i = blockIdx.x * 8 + (threadIdx.x >> 5);
  if (!(X.flags & AM_EXF_GROWS) || i >= n)
    return;
  float *Gr = a.mat + X.G + (size_t)i * n;
  const float H = (float)a.H;
  for (int j = lane; j < n; j += 32) {
    float v = Gr[j] / H;
    if (j == i)
      v += 1.0f;
    Gr[j] = v;
  }
}

} // namespace

am_status am_cuda_grad_rollout_step(const am_cu_args_t *a, int nmax, cudaStream_t s) {
  return am_cuda_vecmat(a, AM_VM_GRAD, nmax, s);
}

am_status am_cuda_grad_rollout_hat(const am_cu_args_t *a, int nmax, cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  AM_LAUNCH(grad_hat_kernel, dim3((unsigned)((nmax + 7) / 8), (unsigned)a->nex), dim3(256),
            0, s, *a);
done:
  return st;
}
