/* vecmat.cu — the row-vector times matrix product of the matrix form of both rollouts:
 * part[rc][j] = sum_{i in rows chunk rc} c_i M_ij, then
 *   rollout:            V_j = w_j + sum_rc part[rc][j]          (M = F, c = w)
 *   gradient rollout:   V_j = V_j + (sum_rc part[rc][j]) / H     (M = Gbar, c = V)
 * which is one layer of e_t^T rownorm(F + I) ... and e_t^T (I + Gbar/H) ... (docs/design.md
 * §3).
 *
 * Work mapping: grid = (column blocks of 256, row chunks of 256, examples); a thread owns
 * one column j and walks the 256 rows of its chunk in order (coalesced across threads,
 * double accumulation, the chunk's coefficients in shared memory); the combine kernel adds
 * the chunks in order. No atomics: the same bits every run.
 * Per example and layer: reads the n^2 floats of M once, writes and reads rc*n doubles
 * (rc = n/256); 2 n^2 flops. */
#include "cuda/kernels.cuh"

namespace {

/* The state of `which` map of example X: [V n][(rollout: w n)][part rc*n]. */
__device__ __forceinline__ double *state_of(const am_cu_args_t &a, const am_cu_ex_t &X,
                                            int which) {
  return a.work + (which == AM_VM_GRAD ? X.grad : X.roll);
}

__device__ __forceinline__ bool on(const am_cu_ex_t &X, int which) {
  return X.flags & (which == AM_VM_GRAD ? AM_EXF_GRAD_MAT : AM_EXF_ROLL_MAT);
}

__global__ void __launch_bounds__(AM_CU_VM) vecmat_kernel(am_cu_args_t a, int which) {
  __shared__ double cs[AM_CU_VM];
  const am_cu_ex_t X = a.ex[blockIdx.z];
  const int n = X.n, rc = blockIdx.y, j = blockIdx.x * AM_CU_VM + threadIdx.x;
  if (!on(X, which) || rc >= am_cu_rc(n) || (int)(blockIdx.x * AM_CU_VM) >= n)
    return; /* the whole block */
  double *st = state_of(a, X, which);
  const double *c = which == AM_VM_GRAD ? st : st + n;
  double *part = st + (which == AM_VM_GRAD ? n : 2 * (size_t)n);
  const float *M = a.mat + (which == AM_VM_GRAD ? X.G : X.F);
  const int i0 = rc * AM_CU_VM, rows = min(AM_CU_VM, n - i0);
  if ((int)threadIdx.x < rows)
    cs[threadIdx.x] = c[i0 + threadIdx.x];
  __syncthreads();
  if (j >= n)
    return;
  double acc = 0.0;
  for (int r = 0; r < rows; r++)
    acc += cs[r] * (double)M[(size_t)(i0 + r) * n + j];
  part[(size_t)rc * n + j] = acc;
}

__global__ void __launch_bounds__(AM_CU_VM) combine_kernel(am_cu_args_t a, int which) {
  const am_cu_ex_t X = a.ex[blockIdx.y];
  const int n = X.n, j = blockIdx.x * AM_CU_VM + threadIdx.x;
  if (!on(X, which) || j >= n)
    return;
  double *st = state_of(a, X, which);
  const int rc = am_cu_rc(n);
  const double *part = st + (which == AM_VM_GRAD ? n : 2 * (size_t)n);
  double sum = 0.0;
  for (int c = 0; c < rc; c++)
    sum += part[(size_t)c * n + j];
  if (which == AM_VM_GRAD)
    st[j] += sum / a.H;
  else
    st[j] = st[n + j] + sum; /* V = w + w F */
}

} // namespace

am_status am_cuda_vecmat(const am_cu_args_t *a, int which, int nmax, cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  const unsigned cols = (unsigned)((nmax + AM_CU_VM - 1) / AM_CU_VM);
  AM_LAUNCH(vecmat_kernel, dim3(cols, (unsigned)am_cu_rc(nmax), (unsigned)a->nex),
            dim3(AM_CU_VM), 0, s, *a, which);
  AM_LAUNCH(combine_kernel, dim3(cols, (unsigned)a->nex), dim3(AM_CU_VM), 0, s, *a, which);
done:
  return st;
}
