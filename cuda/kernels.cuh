/* kernels.cuh — the device-side description of a slab (the examples one device computes
 * in one go) and the launchers of the kernels that run on it, one op per .cu file.
 *
 * A slab's inputs are staged compact: example e's attention of layer l, head h, valid
 * query i, valid key j is element  ex[e].in + ((l*H + h)*n + i)*n + j  of `att` (and of
 * `grad`), whatever the padding was in the file. Work, matrices and outputs of an example
 * sit at the offsets its descriptor names. Rows of an example are split into blocks of
 * AM_CU_RB; the fused kernel leaves per-block partial sums that the next layer (or the
 * finalize kernels) add up in a fixed order, so results never depend on timing. */
#ifndef AM_CUDA_KERNELS_CUH
#define AM_CUDA_KERNELS_CUH

#include "cuda/cuda_common.cuh"

extern "C" {
#include "ops/example.h"
}

#define AM_CU_THREADS 128  /* fused kernel block: 4 warps */
#define AM_CU_RB 16        /* rows per block of the fused kernel */
#define AM_CU_C 16         /* columns per lane per tile */
#define AM_CU_FAST_MAX 512 /* longest row that fits one tile (32 lanes x 16) */
#define AM_CU_NSTAT 9      /* partial sums per row and head, below */
#define AM_CU_VM 256 /* rows per chunk and columns per block of the vector-matrix op */
#define AM_CU_FAULT_NONE 0xFFFFFFFFFFFFFFFFull

/* Partial sums per (layer, row block, head): the row terms of docs/design.md §3's
 * statistics. */
enum {
  AM_PS_ENT, /* sum_i -sum_j a ln a */
  AM_PS_CONF,
  AM_PS_FIRST,
  AM_PS_LAST,
  AM_PS_SELF,
  AM_PS_PREV,
  AM_PS_NEXT,
  AM_PS_DIST,
  AM_PS_IMP /* sum_i |sum_j a g| */
};

/* What is computed for an example (am_cu_ex_t.flags). */
enum {
  AM_EXF_STATS = 1u << 0,    /* head statistics */
  AM_EXF_IMP = 1u << 1,      /* head importance */
  AM_EXF_GRADS = 1u << 2,    /* gradients staged (always checked) */
  AM_EXF_ROLL_INK = 1u << 3, /* rollout row step inside the fused kernel */
  AM_EXF_ROLL_MAT = 1u << 4, /* rollout row step from the fused matrix F */
  AM_EXF_WRITE_F = 1u << 5,  /* the fused kernel writes F [n,n] */
  AM_EXF_GRAD_INK = 1u << 6, /* gradient rollout row step inside the fused kernel */
  AM_EXF_GRAD_MAT = 1u << 7, /* ... from Gbar = sum_h max(0, G (.) A) */
  AM_EXF_WRITE_G = 1u << 8,  /* the fused kernel writes Gbar [n,n] */
  AM_EXF_GRID = 1u << 9,     /* distance on the patch grid */
  AM_EXF_LAST = 1u << 10,    /* attention_last */
  AM_EXF_RROWS = 1u << 11,   /* rollout.rows */
  AM_EXF_GROWS = 1u << 12,   /* grad_rollout.rows */
  AM_EXF_DISCARD = 1u << 13, /* 0 < kdrop < n*n */
  /* several targets (steps.cu): S step rows of each */
  AM_EXF_LAST_STEPS = 1u << 14, /* attention_last */
  AM_EXF_ROLL_STEPS = 1u << 15, /* rollout, from F */
  AM_EXF_GRAD_STEPS = 1u << 16, /* gradient rollout, from Gbar */
};

/* One staged example (n >= 1; empty examples are never staged). Offsets: elements of
 * att/grad, doubles of work, floats of mat and out; -1 where absent. */
typedef struct am_cu_ex {
  int n, target; /* target: valid index or AM_ROW_MEAN */
  unsigned flags;
  int idx, T, pad_; /* device pointers only: offset of the valid positions in the slab's
                       idx table, padded length of the source rows */
  unsigned long long kdrop; /* floor(n^2 * discard), as the CPU computes it */
  long long in;
  long long stats;      /* [L, nb, H, AM_CU_NSTAT] */
  long long roll, grad; /* row-form state, am_cu_roll_doubles / am_cu_grad_doubles */
  long long F, G;       /* [n,n] fused matrix and Gbar */
  long long o_stats;    /* [AM_STAT_COUNT, L, H] */
  long long o_imp;      /* [L, H] */
  long long o_last, o_roll, o_grad; /* [n] */
  long long o_rrows, o_grows;       /* [n,n] */
  int S, steps; /* step rows (0: none) and the offset of their targets in the steps table */
  long long rsteps, gsteps;               /* work: [RS n][V S n][W S n], [V S n][W S n] */
  long long o_lsteps, o_rsteps, o_gsteps; /* [S,n] */
} am_cu_ex_t;

/* Everything a kernel of the slab needs, passed by value. */
typedef struct am_cu_args {
  const void *att, *grad; /* staged inputs */
  const am_cu_ex_t *ex;   /* [nex] */
  int nex, L, H, layer;
  int fusion;     /* am_fusion */
  int normalize;  /* am_normalize */
  float tol_fast; /* row-sum screen in float: tol minus a margin above float rounding */
  double tol;     /* |row sum - 1| allowed, as the CPU checks it */
  int grid_rows, grid_cols, grid_prefix;
  float *out;
  double *work;
  float *mat;
  unsigned long long *fault; /* [nex] key of the first bad value, AM_CU_FAULT_NONE */
  const int *steps; /* the slab's step targets (valid indices), by am_cu_ex_t.steps */
} am_cu_args_t;

__host__ __device__ inline int am_cu_nb(int n) { return (n + AM_CU_RB - 1) / AM_CU_RB; }
__host__ __device__ inline int am_cu_rc(int n) { return (n + AM_CU_VM - 1) / AM_CU_VM; }
/* Lanes that share one row in the fused kernel: 8 lanes x 16 columns cover 128 keys. */
__host__ __device__ inline int am_cu_group(int n) {
  return n <= 128 ? 8 : n <= 256 ? 16 : 32;
}

/* Doubles of row-form state. In-kernel: w (or the gradient row) [n], then two sets of
 * per-block partials [nb][n] used by alternate layers. From a matrix: V [n], (rollout: w
 * [n]), partials [rc][n]. */
__host__ __device__ inline long long am_cu_roll_doubles(int n, int ink) {
  return ink ? n + 2LL * am_cu_nb(n) * n : 2LL * n + (long long)am_cu_rc(n) * n;
}
__host__ __device__ inline long long am_cu_grad_doubles(int n, int ink) {
  return ink ? n + 2LL * am_cu_nb(n) * n : (long long)n + (long long)am_cu_rc(n) * n;
}

/* Start of a row-form product: e_target, or the mean row (1/n each). */
__device__ __forceinline__ double am_cu_start(int target, int n, int i) {
  return target == AM_ROW_MEAN ? 1.0 / n : (i == target ? 1.0 : 0.0);
}

/* The key of a fault: row order (layers from the top, heads, rows) then, within the row,
 * attention keys in order (0..n-1), the row sum (n), gradient keys (n+1..2n). The lowest
 * key is the fault the CPU reference reports first. */
__host__ __device__ inline unsigned long long am_cu_fault_key(int L, int H, int n, int l,
                                                              int h, int i, int sub) {
  unsigned long long row = ((unsigned long long)(L - 1 - l) * H + h) * n + i;
  return row * (2ull * n + 1) + sub;
}

/* ---- launchers (each in the file of its op; dt: AM_DT_*) ------------------------------
 */

/* fused_layer.cu: one read of layer a->layer of every example feeds checks, head
 * statistics, head importance, head fusion and both row-form steps. nbmax[c]: the most
 * row blocks of an example of length class c (am_cu_group: 8, 16, 32 lanes), 0: none. */
am_status am_cuda_fused_layer(const am_cu_args_t *a, int dt, const int nbmax[3],
                              cudaStream_t s);
size_t am_cuda_fused_layer_smem(int H); /* its dynamic shared memory */
/* attention_last.cu */
am_status am_cuda_attention_last(const am_cu_args_t *a, int dt, int nmax, cudaStream_t s);
/* head_stats.cu: partial sums -> [AM_STAT_COUNT,L,H] statistics and [L,H] importance */
am_status am_cuda_head_stats(const am_cu_args_t *a, cudaStream_t s);
/* discard.cu: zeroes the kdrop smallest entries of F of layer a->layer */
am_status am_cuda_discard(const am_cu_args_t *a, cudaStream_t s);
/* rollout.cu: start vectors, the row sums 1 + sum_j F_ij of one layer (for the matrix
 * form and the step rows), the matrix-form rollout step after them, final maps */
am_status am_cuda_rollout_init(const am_cu_args_t *a, int nmax, cudaStream_t s);
am_status am_cuda_rollout_rowsum(const am_cu_args_t *a, int nmax, cudaStream_t s);
am_status am_cuda_rollout_step(const am_cu_args_t *a, int nmax, cudaStream_t s);
am_status am_cuda_rollout_finish(const am_cu_args_t *a, cudaStream_t s);
/* grad_rollout.cu: the matrix-form gradient rollout step; the hat I + Gbar/H */
am_status am_cuda_grad_rollout_step(const am_cu_args_t *a, int nmax, cudaStream_t s);
am_status am_cuda_grad_rollout_hat(const am_cu_args_t *a, int nmax, cudaStream_t s);
/* vecmat.cu: part[rc][j] = sum_{i in chunk rc} c_i M_ij, then out = base + scale * sum */
enum { AM_VM_ROLLOUT = 0, AM_VM_GRAD = 1 };
am_status am_cuda_vecmat(const am_cu_args_t *a, int which, int nmax, cudaStream_t s);
/* steps.cu: several targets' rows (smax: the most steps of an example of the slab): the
 * start rows; one layer's rollout and gradient rollout steps from F and Gbar (any: the
 * slab's flags), before the all-rows hats change them; the rows into the outputs. */
am_status am_cuda_steps_init(const am_cu_args_t *a, int nmax, int smax, cudaStream_t s);
am_status am_cuda_steps_layer(const am_cu_args_t *a, unsigned any, int nmax, int smax,
                              cudaStream_t s);
am_status am_cuda_steps_finish(const am_cu_args_t *a, int dt, int smax, cudaStream_t s);
/* rollout_rows.cu: rownorm(F + I) in place (the all-rows form's hat) */
am_status am_cuda_rollout_hat(const am_cu_args_t *a, int nmax, cudaStream_t s);

#endif
