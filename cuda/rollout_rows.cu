/* rollout_rows.cu — the all-rows form of both rollouts (docs/design.md §3 "Row form",
 * --all-rows):
 * R = A^_{L-1} ... A^_0 with A^_l = rownorm(F_l + I) (rollout) or I + Gbar_l / H
 * (gradient rollout, hat in grad_rollout.cu), the whole matrices multiplied with cuBLAS
 * strided-batched SGEMM, one call per layer for the examples of one length (so an
 * example's numbers never depend on which others share its slab).
 *
 * Row-major P <- P A^ is, read column-major, P^T <- A^T P^T: sgemm(N, N, n, n, n, 1, A^,
 * n, P, n, 0, T, n) with the product then in T; the buffers alternate and the last product
 * is copied into the output if it ended in the temporary.
 * Work mapping of the hat: a warp per row, grid = (n/8, examples), 256 threads.
 * Per example and layer: hat reads and writes 4 n^2 bytes; the product 2 n^3 flops,
 * 12 n^2 bytes. Default math mode: full float products (no TF32), like CBLAS sgemm. */
#include "cuda/kernels.cuh"
#include "cuda/rows.cuh"

namespace {

__global__ void __launch_bounds__(256) rollout_hat_kernel(am_cu_args_t a) {
  const am_cu_ex_t X = a.ex[blockIdx.y];
  const int n = X.n, lane = threadIdx.x & 31, i = blockIdx.x * 8 + (threadIdx.x >> 5);
  if (!(X.flags & AM_EXF_RROWS) || i >= n)
    return;
  float *Fr = a.mat + X.F + (size_t)i * n;
  double p = 0.0;
  for (int j = lane; j < n; j += 32)
    p += Fr[j];
  const double s = 1.0 + am_group_sum_d(p, 32);
  for (int j = lane; j < n; j += 32)
    Fr[j] = (float)(((double)Fr[j] + (j == i ? 1.0 : 0.0)) / s);
}

} // namespace

am_status am_cuda_rollout_hat(const am_cu_args_t *a, int nmax, cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  AM_LAUNCH(rollout_hat_kernel, dim3((unsigned)((nmax + 7) / 8), (unsigned)a->nex),
            dim3(256), 0, s, *a);
done:
  return st;
}

am_status am_cuda_rows_step(cublasHandle_t blas, const am_cu_rows_group_t *g, float *hat,
                            float *prod, float *tmp, int *in_tmp, int first,
                            cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  const int n = g->n;
  const long long nn = (long long)n * n;
  const float one = 1.0f, zero = 0.0f;
  float *cur = *in_tmp ? tmp : prod, *next = *in_tmp ? prod : tmp;
  if (first) {
    AM_CHECK(cudaMemcpyAsync(prod, hat, (size_t)g->count * nn * sizeof(float),
                             cudaMemcpyDeviceToDevice, s));
    *in_tmp = 0;
    goto done;
  }
  AM_CHECK(cublasSetStream(blas, s));
  AM_CHECK(cublasSgemmStridedBatched(blas, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, hat, n,
                                     nn, cur, n, nn, &zero, next, n, nn, g->count));
  *in_tmp = !*in_tmp;
done:
  return st;
}

am_status am_cuda_rows_finish(const am_cu_rows_group_t *g, float *prod, float *tmp,
                              int in_tmp, cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  if (in_tmp)
    AM_CHECK(cudaMemcpyAsync(prod, tmp, (size_t)g->count * g->n * g->n * sizeof(float),
                             cudaMemcpyDeviceToDevice, s));
done:
  return st;
}
