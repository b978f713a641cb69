/* row_sweep.h — the tuned inner loop of the CPU backend: one sweep over one attention row
 * (and its gradient row) that widens the stored values and computes, in the same pass,
 * everything example_pass.c needs from the row: the check sums, the per-head statistics'
 * row terms, the head-importance term, the head-mean fusion and the gradient-rollout
 * update. Selected per context (am_cpu_kernels_t below): an AVX2 + FMA + F16C version
 * (row_sweep_avx2.c) where the CPU has those, else none and the pass keeps its plain
 * reference loops (pass_plain.c).
 *
 * Accuracy (tests/test_cpu_kernels.c): ln is a table + polynomial (row_sweep_avx2.c),
 * within 8.8e-8 absolute for |ln x| <= 1 and one float ulp relative elsewhere; row sums
 * are float partial sums over 64 keys (8 per lane) added into double, so a row's sums
 * are within ~1e-7 relative of the double reference (importance: ~1e-7 of sum |a g|);
 * the gradient-rollout update is float, added into double every 16 rows by the caller. */
#ifndef AM_CPU_ROW_SWEEP_H
#define AM_CPU_ROW_SWEEP_H

#include <stdint.h>

#include "attnmap.h"
#include "cpu/example_pass.h"

/* One row's sums. */
typedef struct am_row_sums {
  double sum;  /* sum_j a_j (the row check) */
  double ent;  /* sum_j a_j ln a_j over normal a_j > 0 (0 ln 0 = 0; subnormals count 0) */
  double dist; /* sum_j a_j |i - j| (when asked) */
  double imp;  /* sum_j a_j g_j (with g); not finite when a g_j is not finite, or when a
                  float product overflowed (|g| > ~1e38: the caller then recomputes) */
  float amin;  /* min_j a_j; NaN rows give any value, the sum catches them */
  float amax;  /* max_j a_j */
} am_row_sums_t;

/* What to do with one row of n keys. a (and g) hold n consecutive elements of dtype
 * (F32, F16 or BF16), possibly unaligned. */
typedef struct am_row_job {
  const void *a, *g; /* g may be NULL */
  am_dtype dtype;
  int n, i;     /* keys; the query's valid index (for the distance) */
  int distance; /* 1: compute sums.dist */
  float *arow;  /* [n] receives the widened a, or NULL */
  float *grow;  /* [n] receives the widened g, or NULL */
  float *fuse;  /* [n] += a (head-mean fusion), or NULL */
  float *u;     /* [n] += vi * max(0, a g) (gradient rollout, needs g), or NULL */
  float vi;
  const float *dist; /* [n] |i - j| as floats (the head and layer sweeps), or NULL */
} am_row_job_t;

typedef void (*am_row_sweep_fn)(const am_row_job_t *job, am_row_sums_t *sums);

/* Every row of one head in one call: the common case (contiguous valid keys, mean
 * fusion, no patch grid, no whole-matrix products), where each row feeds only sums and
 * running vectors. Row i starts `stride` elements after row i-1; keys = rows = n. */
typedef struct am_head_job {
  const void *a, *g; /* row 0 at its first valid key (g may be NULL); dtype F32/F16/BF16 */
  am_dtype dtype;
  int64_t stride;
  int n;
  int first;       /* the row to start at (rows before it are done) */
  int stats;       /* 1: the statistics' sums too (acc); 0: the check sums only */
  float *arow;     /* [n] scratch: the widened row */
  float *fuse;     /* [n,n] rows += a (head-mean fusion), or NULL */
  const double *v; /* [n] gradient-rollout row vector, or NULL: then uf += v_i max(0,a g) */
  float *uf;       /* [n] float sums, added into ug after rows 15, 31, ... and the last */
  double *ug;      /* [n] */
  double *last;    /* [n] += a for the rows last_row picks, or NULL */
  int last_row;    /* a row index, or AM_ROW_MEAN for every row */
  const float *dist_mid; /* dist_mid[k] = |k| for k in (-n, n): row i's distances start at
                            dist_mid - i */
  double tol;            /* rows with |sum - 1| > tol, a negative weight or a non-finite
                            importance stop the sweep (the caller checks them exactly) */
  /* several targets (step_rows.c): nsv more gradient-rollout row vectors, each updated
   * as v is (sv, suf, sug: [nsv,n]); grow [n] scratch for the widened g; nsv 0: none */
  int nsv;
  const double *sv;
  float *suf, *grow;
  double *sug;
  double acc[AM_STAT_COUNT]; /* the head's statistics sums (as am_head_stats_row); the
                                linear distance, as no grid is active */
  double importance;         /* sum_i |sum_j a_ij g_ij| */
  am_row_sums_t stop;        /* the sums of the row that stopped the sweep */
} am_head_job_t;

/* Sweeps rows job->first .. n-1, adding each row's terms to job->acc, importance, fuse,
 * uf/ug and last; returns the first row whose sums stopped it (its terms are added), or n
 * when none did. */
typedef int (*am_head_sweep_fn)(am_head_job_t *job);
int am_head_sweep_avx2(am_head_job_t *job);

/* Every row of every head of one layer in one call, by blocks of rows and head by head
 * within a block: the block's head-mean fused rows and gradient-rollout terms are summed
 * over the heads while they sit in L1 (head by head, the whole fused matrix went through
 * L2 once per head). Same conditions as the head sweep, for rows of at most
 * AM_LAYER_MAX_N keys; each head's statistics are summed in the same order as there. The
 * gradient-rollout update of row i is u += v_i (sum_h max(0, a_h g_h)), the head sum in
 * float (terms >= 0, within ~H x 6e-8 relative), added into double after each block.
 * Measured on F16 BERT-base shapes (2 threads, Zen 4): the pass 12% faster at T = 128
 * (blocks of 16 rows) and 12% at T = 512 (blocks of 4); at T = 2048 (32 heads) it was 17%
 * slower than head by head, as the heads' rows no longer stream: those stay head by head.
 */
#define AM_LAYER_MAX_N 512
#define AM_LAYER_BLOCK_FLOATS 2048 /* a block's fused rows: 8 KiB, as many for trow */
static inline int am_layer_block_rows(int n) {
  int rows = AM_LAYER_BLOCK_FLOATS / (n > 0 ? n : 1);
  return rows < 1 ? 1
                  : (rows > 16 ? 16 : rows); /* 16: uf goes into ug at least that often */
}
typedef struct am_layer_job {
  const void *a, *g; /* head 0, row 0 at its first valid key (g may be NULL) */
  am_dtype dtype;
  int64_t stride;      /* elements from a row to the next */
  int64_t head_stride; /* elements from a head to the next */
  int n, H;
  int stats;       /* as am_head_job_t */
  float *arow;     /* [n] scratch: the widened row */
  float *trow;     /* [block rows, n] scratch: sum_h max(0, a g) of the block's rows */
  float *fuse;     /* [n,n] rows += a of every head, or NULL */
  const double *v; /* [n] gradient-rollout row vector, or NULL */
  float *uf;       /* [n] float sums, added into ug after rows 15, 31, ... and the last */
  double *ug;      /* [n] */
  double *last;    /* [n] += a for the rows last_row picks (every head), or NULL */
  const float *dist_mid; /* as am_head_job_t */
  int last_row;          /* a row index, or AM_ROW_MEAN */
  double tol;            /* as am_head_job_t */
  double *acc;           /* [H][AM_STAT_COUNT] each head's statistics sums */
  double *importance;    /* [H] */
  int nsv;               /* as am_head_job_t: step vectors sharing trow, or 0 */
  const double *sv;
  float *suf;
  double *sug;
} am_layer_job_t;

/* Sweeps the layer; 1 when every row passed, 0 when a row stopped it (the caller then
 * computes the example head by head, where stopped rows are checked exactly). */
typedef int (*am_layer_sweep_fn)(am_layer_job_t *job);
int am_layer_sweep_avx2(am_layer_job_t *job);

/* The kernels a pass runs with: the x86 sweeps, or none (NULL: the plain loops of
 * pass_plain.c). Chosen per context (the CPU backend's state, or a test's scratch), never
 * process-wide; every thread of a context uses the same, so results do not depend on the
 * thread count. */
typedef struct am_cpu_kernels {
  const char *name; /* "avx2+fma+f16c" or "portable" */
  am_row_sweep_fn row;
  am_head_sweep_fn head;
  am_layer_sweep_fn layer;
} am_cpu_kernels_t;

/* The plain loops only: the reference. */
const am_cpu_kernels_t *am_cpu_kernels_plain(void);
/* The fastest this CPU runs: the AVX2 + FMA + F16C sweeps where the CPU and the OS support
 * them, else the plain loops. */
const am_cpu_kernels_t *am_cpu_kernels_for_this_cpu(void);

/* Several targets (step_rows.c): uf[s] += (float)v[s,i] max(0, a g) over n keys for
 * each of the S rows v [S,n] (uf [S,n]), a, g the widened row: the u update of the sweep,
 * bit for bit, for S row vectors at once. */
void am_steps_update_avx2(const float *a, const float *g, int n, const double *v, int i,
                          int S, float *uf);

/* The AVX2 sweep itself, and its ln of 8 floats applied to n values (tests). Call only
 * where am_cpu_simd_supported() is 1. */
void am_row_sweep_avx2(const am_row_job_t *job, am_row_sums_t *sums);
void am_fast_log_avx2(const float *x, float *out, int n);
/* sum_j a_j ln a_j of n contiguous elements of dtype (F32/F16/BF16): the benchmarks'
 * entropy compute floor. */
double am_row_entropy_avx2(const void *a, am_dtype dtype, int n);
int am_cpu_simd_supported(void);

#endif
