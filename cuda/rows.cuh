/* rows.cuh — the products of the all-rows form (rollout_rows.cu): examples of one length
 * n in a slab, their matrices consecutive at stride n*n. */
#ifndef AM_CUDA_ROWS_CUH
#define AM_CUDA_ROWS_CUH

#include "cuda/kernels.cuh"

typedef struct am_cu_rows_group {
  int n, count;
} am_cu_rows_group_t;

/* One layer of P <- P hat for the group: first (the top layer) copies hat into prod;
 * otherwise multiplies into the other buffer and flips *in_tmp (where the product is). */
am_status am_cuda_rows_step(cublasHandle_t blas, const am_cu_rows_group_t *g, float *hat,
                            float *prod, float *tmp, int *in_tmp, int first,
                            cudaStream_t s);
/* Leaves the product in prod. */
am_status am_cuda_rows_finish(const am_cu_rows_group_t *g, float *prod, float *tmp,
                              int in_tmp, cudaStream_t s);

#endif
