/* attention_last.cu — the last layer's head-mean attention row of the target
 * (docs/design.md §3,
 * docs/analyses.md): last[j] = sum_h a[L-1][h][t][j] / H, or for the mean target the mean
 * over every valid row, sum_h sum_i a[h][i][j] / (H n).
 *
 * Work mapping: grid = (column blocks of 128, examples), one thread per key j sums down
 * the rows (heads, then rows, as the CPU does, in double: the same bits as the CPU).
 * Per example: reads H*n values (fixed target) or H*n^2 (mean target) of layer L-1 once,
 * coalesced across the threads; writes n floats; H (or H*n) adds per key. */
#include "cuda/kernels.cuh"

namespace {

template <int DT>
__global__ void __launch_bounds__(128) attention_last_kernel(am_cu_args_t a) {
  typedef typename am_elem<DT>::type T;
  const am_cu_ex_t X = a.ex[blockIdx.y];
  const int n = X.n, j = blockIdx.x * blockDim.x + threadIdx.x;
  if (!(X.flags & AM_EXF_LAST) || j >= n)
    return;
  const size_t nn = (size_t)n * n;
  const T *A = (const T *)a.att + X.in + (size_t)(a.L - 1) * a.H * nn;
  const bool mean = X.target == AM_ROW_MEAN;
  const int i0 = mean ? 0 : X.target, i1 = mean ? n : X.target + 1;
  double acc = 0.0;
  for (int h = 0; h < a.H; h++)
    for (int i = i0; i < i1; i++)
      acc += (double)am_ld<DT>(A, ((size_t)h * n + i) * n + j);
  const double div = (double)a.H * (mean ? n : 1);
  a.out[X.o_last + j] = (float)(acc / div);
}

template <int DT> am_status launch(const am_cu_args_t *a, int nmax, cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  void (*k)(am_cu_args_t) = attention_last_kernel<DT>;
  const dim3 grid((unsigned)((nmax + 127) / 128), (unsigned)a->nex);
  AM_LAUNCH(k, grid, dim3(128), 0, s, *a);
done:
  return st;
}

} // namespace

am_status am_cuda_attention_last(const am_cu_args_t *a, int dt, int nmax, cudaStream_t s) {
  if (dt == AM_DT_F32)
    return launch<AM_DT_F32>(a, nmax, s);
  return dt == AM_DT_F16 ? launch<AM_DT_F16>(a, nmax, s) : launch<AM_DT_BF16>(a, nmax, s);
}
