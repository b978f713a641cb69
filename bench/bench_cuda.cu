/* bench_cuda.cu — the CUDA backend against the limits of the same device measured in the
 * same run (issue 3), on a dataset written by bench/synth (BERT-base: L=12, H=12, F16):
 *   limits     device-to-device copy (1 GiB, bytes read + written), pinned host-to-device
 *              copy (1 GiB), SGEMM (8192^3, default math: no TF32), cudaEvent timings;
 *   check      the first examples on the CUDA and the CPU backend, largest relative error;
 *   fused      the fused pass's kernels on examples already on the device (every analysis
 *              but all rows): GB/s of attention + gradient bytes read, / the copy rate;
 *   rows       the all-rows rollout (hat + strided-batched SGEMM per layer) at n = 256 and
 *              512 on device-resident fused matrices: TFLOP/s of 2 n^3 (L-1), / SGEMM;
 *   end-to-end every example of the file (read once before: page cache) through the
 *              backend's submit/wait in pipeline-sized chunks: GB/s / pinned H2D rate.
 * Each timing is the median of --repeats after a warm-up. The last line is JSON for
 * bench/gpu_check.sh.
 *   usage: bench_cuda DATASET [--repeats R] [--resident N] [--threads K] [--quick]
 * --quick: 64 MiB copies, a 1024^3 SGEMM and 2 examples per all-rows size (smoke tests). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "cuda/cuda_internal.h"

extern "C" {
#include "dataset/dataset.h"
}

#define CK(call)                                                                           \
  do {                                                                                     \
    am_status st_ = am_cuda_check((call), #call, __FILE__, __LINE__);                      \
    if (st_ != AM_STATUS_OK) {                                                             \
      fprintf(stderr, "bench_cuda: %s\n", am_cuda_error());                                \
      exit(1);                                                                             \
    }                                                                                      \
  } while (0)

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef void (*work_fn)(void *arg);

/* Median seconds of fn on stream s over `repeats` runs after one warm-up. */
static double timed(work_fn fn, void *arg, cudaStream_t s, int repeats) {
  cudaEvent_t a, b;
  double *t = (double *)malloc((size_t)repeats * sizeof *t);
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  fn(arg);
  CK(cudaStreamSynchronize(s));
  for (int r = 0; r < repeats; r++) {
    float ms = 0;
    CK(cudaEventRecord(a, s));
    fn(arg);
    CK(cudaEventRecord(b, s));
    CK(cudaEventSynchronize(b));
    CK(cudaEventElapsedTime(&ms, a, b));
    t[r] = ms / 1e3;
  }
  qsort(t, (size_t)repeats, sizeof *t, cmp_double);
  double med = t[repeats / 2];
  free(t);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return med;
}

/* ---- the device's limits ------------------------------------------------------------- */

typedef struct copy_arg {
  void *dst;
  const void *src;
  size_t bytes;
  cudaMemcpyKind kind;
  cudaStream_t s;
} copy_arg_t;

static void do_copy(void *p) {
  copy_arg_t *c = (copy_arg_t *)p;
  CK(cudaMemcpyAsync(c->dst, c->src, c->bytes, c->kind, c->s));
}

typedef struct gemm_arg {
  cublasHandle_t h;
  int n, batch;
  const float *a, *b;
  float *c;
} gemm_arg_t;

static void do_gemm(void *p) {
  gemm_arg_t *g = (gemm_arg_t *)p;
  const float one = 1.0f, zero = 0.0f;
  const long long nn = (long long)g->n * g->n;
  CK(cublasSgemmStridedBatched(g->h, CUBLAS_OP_N, CUBLAS_OP_N, g->n, g->n, g->n, &one, g->a,
                               g->n, nn, g->b, g->n, nn, &zero, g->c, g->n, nn, g->batch));
}

typedef struct limits {
  double d2d_gbs, h2d_gbs, sgemm_tflops;
} limits_t;

static int quick;

static limits_t measure_limits(am_cu_dev_t *d, int repeats) {
  limits_t lim;
  const size_t bytes = quick ? (size_t)64 << 20 : (size_t)1 << 30;
  void *a, *b, *h;
  CK(cudaMalloc(&a, bytes));
  CK(cudaMalloc(&b, bytes));
  CK(cudaHostAlloc(&h, bytes, cudaHostAllocDefault));
  memset(h, 1, bytes);
  CK(cudaMemset(a, 1, bytes));
  copy_arg_t c = {b, a, bytes, cudaMemcpyDeviceToDevice, d->compute};
  lim.d2d_gbs = 2.0 * bytes / timed(do_copy, &c, d->compute, repeats) / 1e9;
  c = copy_arg_t{a, h, bytes, cudaMemcpyHostToDevice, d->compute};
  lim.h2d_gbs = bytes / timed(do_copy, &c, d->compute, repeats) / 1e9;
  const int n = quick ? 1024 : 8192;
  float *m = (float *)a; /* 3 x 8192^2 floats = 768 MiB: a and b hold them */
  float *x = (float *)h;
  for (size_t i = 0; i < (size_t)n * n; i++)
    x[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f; /* not zeros */
  CK(cudaMemcpy(m, x, (size_t)n * n * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(m + (size_t)n * n, x, (size_t)n * n * 4, cudaMemcpyHostToDevice));
  if (!d->blas)
    CK(cublasCreate(&d->blas));
  CK(cublasSetMathMode(d->blas, CUBLAS_DEFAULT_MATH));
  CK(cublasSetStream(d->blas, d->compute));
  gemm_arg_t g = {d->blas, n, 1, m, m + (size_t)n * n, (float *)b};
  lim.sgemm_tflops =
      2.0 * n * (double)n * n / timed(do_gemm, &g, d->compute, repeats) / 1e12;
  cudaFree(a);
  cudaFree(b);
  cudaFreeHost(h);
  return lim;
}

/* ---- the dataset's examples -------------------------------------------------------------
 */

typedef struct views {
  int nex, L, H, T;
  am_example_t *ex;
  const void **ap, **gp;
  int32_t *idx;
  am_pass_output_t *out;
  float *buf;
  double bytes; /* attention + gradient bytes of the examples as stored */
} views_t;

/* Views of examples [0, count) of the dataset (all shards, in order) and their outputs. */
static void make_views(const am_dataset_t *ds, int count, views_t *v) {
  const int L = ds->L, H = ds->H, T = ds->Tmax;
  v->nex = count;
  v->L = L;
  v->H = H;
  v->T = T;
  v->ex = (am_example_t *)calloc((size_t)count, sizeof *v->ex);
  v->ap = (const void **)calloc((size_t)count * L, sizeof *v->ap);
  v->gp = (const void **)calloc((size_t)count * L, sizeof *v->gp);
  v->idx = (int32_t *)calloc((size_t)count * T, sizeof *v->idx);
  v->out = (am_pass_output_t *)calloc((size_t)count, sizeof *v->out);
  const size_t per = 3 * (size_t)T + (AM_STAT_COUNT + 1) * (size_t)L * H;
  v->buf = (float *)calloc((size_t)count * per, sizeof *v->buf);
  v->bytes = 0;
  int e = 0;
  for (int s = 0; s < ds->nshards && e < count; s++) {
    const am_shard_t *sh = &ds->shards[s];
    for (int64_t b = 0; b < sh->B && e < count; b++, e++) {
      int32_t *idx = v->idx + (size_t)e * T;
      const int n = am_shard_valid_positions(sh, b, idx);
      for (int l = 0; l < L; l++) {
        v->ap[(size_t)e * L + l] = am_layers_example(&sh->att, sh, H, l, b);
        v->gp[(size_t)e * L + l] = am_layers_example(&sh->grad, sh, H, l, b);
      }
      v->ex[e] = am_example_t{L,
                              H,
                              sh->T,
                              n,
                              ds->dtype,
                              v->ap + (size_t)e * L,
                              sh->grad.layer ? v->gp + (size_t)e * L : NULL,
                              idx,
                              0,
                              0,
                              NULL,
                              NULL};
      v->bytes += (double)L * H * sh->T * sh->T * am_dtype_size(ds->dtype) *
                  (sh->grad.layer ? 2 : 1);
      float *o = v->buf + (size_t)e * per;
      const unsigned g = sh->grad.layer
                             ? ~0u
                             : ~(unsigned)(AM_PASS_GRAD_ROLLOUT | AM_PASS_HEAD_IMPORTANCE);
      v->out[e] = am_pass_output_t{
          o,
          o + T,
          (g & AM_PASS_GRAD_ROLLOUT) ? o + 2 * T : NULL,
          NULL,
          NULL,
          o + 3 * T,
          (g & AM_PASS_HEAD_IMPORTANCE) ? o + 3 * T + (size_t)AM_STAT_COUNT * L * H : NULL,
          NULL,
          NULL,
          NULL};
    }
  }
  v->nex = e;
}

static void free_views(views_t *v) {
  free(v->ex);
  free(v->ap);
  free(v->gp);
  free(v->idx);
  free(v->out);
  free(v->buf);
}

/* The largest relative error of the CUDA backend against the CPU on the first examples. */
static double check_once(am_ctx_t *gpu, am_ctx_t *cpu, const views_t *v,
                         const am_pass_options_t *opt) {
  const int n = v->nex < 8 ? v->nex : 8;
  const size_t per = 3 * (size_t)v->T + (AM_STAT_COUNT + 1) * (size_t)v->L * v->H;
  float *keep = (float *)malloc((size_t)n * per * sizeof *keep);
  am_fault_t f;
  int bad;
  if (cpu->backend->example_pass(cpu->backend_state, v->ex, n, opt, v->out, &f, &bad) ||
      gpu->backend->example_pass(gpu->backend_state, v->ex, n, opt, v->out, &f, &bad)) {
    fprintf(stderr, "bench_cuda: check pass failed: %s\n", am_last_error(gpu));
    exit(1);
  }
  memcpy(keep, v->buf, (size_t)n * per * sizeof *keep); /* cuda's */
  cpu->backend->example_pass(cpu->backend_state, v->ex, n, opt, v->out, &f, &bad);
  double worst = 0, scale = 0;
  for (size_t i = 0; i < (size_t)n * per; i++)
    if (isfinite(v->buf[i]))
      scale = fmax(scale, fabs(v->buf[i]));
  for (size_t i = 0; i < (size_t)n * per; i++)
    if (isfinite(v->buf[i]))
      worst = fmax(worst, fabs(keep[i] - v->buf[i]) / (1e-5 * scale + fabs(v->buf[i])));
  free(keep);
  return worst;
}

/* ---- the fused pass on device-resident examples ---------------------------------------
 */

typedef struct fused_arg {
  am_cu_dev_t *d;
  const am_cu_plan_t *p;
  const am_cu_batch_t *b;
  unsigned char *dev;
} fused_arg_t;

static void do_fused(void *p) {
  fused_arg_t *f = (fused_arg_t *)p;
  if (am_cu_kernels(f->d, f->p, f->b, f->dev) != AM_STATUS_OK) {
    fprintf(stderr, "bench_cuda: %s\n", am_cuda_error());
    exit(1);
  }
}

/* Seconds of the kernels of one pass over the first k examples, staged once. */
static double fused_resident(am_cu_dev_t *d, const views_t *v, int k,
                             const am_pass_options_t *opt, int repeats, double *bytes) {
  am_cu_batch_t *b = new am_cu_batch_t();
  b->ex = v->ex;
  b->nex = k;
  b->opt = *opt;
  b->out = v->out;
  b->limit = k;
  am_cu_plan_t p;
  memset(&p, 0, sizeof p);
  if (am_cu_plan_build(b, 0, k, &p) != AM_STATUS_OK)
    exit(1);
  unsigned char *pin, *dev;
  CK(cudaHostAlloc((void **)&pin, p.in_bytes, cudaHostAllocDefault));
  CK(cudaMalloc((void **)&dev, p.dev_bytes));
  am_cu_stage(d->pool, b, &p, pin);
  CK(cudaMemcpy(dev, pin, p.in_bytes, cudaMemcpyHostToDevice));
  *bytes = 0;
  for (int s = 0; s < p.nex; s++)
    *bytes += (double)v->L * v->H * p.ex[s].n * p.ex[s].n * p.es * (p.grads ? 2 : 1);
  fused_arg_t f = {d, &p, b, dev};
  const double t = timed(do_fused, &f, d->compute, repeats);
  cudaFree(dev);
  cudaFreeHost(pin);
  am_cu_plan_free(&p);
  delete b;
  return t;
}

/* ---- the all-rows rollout ---------------------------------------------------------------
 */

typedef struct rows_arg {
  am_cu_dev_t *d;
  am_cu_args_t a;
  float *F, *P, *T;
  am_cu_rows_group_t g;
} rows_arg_t;

static void do_rows(void *p) {
  rows_arg_t *r = (rows_arg_t *)p;
  int in_tmp = 0;
  const size_t layer = (size_t)r->g.count * r->g.n * r->g.n;
  for (int l = r->a.L - 1; l >= 0; l--) {
    r->a.mat = r->F + (size_t)l * layer;
    if (am_cuda_rollout_hat(&r->a, r->g.n, r->d->compute) != AM_STATUS_OK ||
        am_cuda_rows_step(r->d->blas, &r->g, r->a.mat, r->P, r->T, &in_tmp, l == r->a.L - 1,
                          r->d->compute) != AM_STATUS_OK) {
      fprintf(stderr, "bench_cuda: %s\n", am_cuda_error());
      exit(1);
    }
  }
  am_cuda_rows_finish(&r->g, r->P, r->T, in_tmp, r->d->compute);
}

/* TFLOP/s of R = prod_l rownorm(F_l + I) for cnt examples of n tokens, L layers; also the
 * plain strided-batched SGEMM rate at the same size (*gemm). */
static double rows_rate(am_cu_dev_t *d, int n, int L, int repeats, double *gemm,
                        int *count) {
  const size_t nn = (size_t)n * n;
  int cnt = (int)(((size_t)3 << 30) / ((size_t)(L + 2) * nn * 4));
  cnt = cnt > 64 ? 64 : cnt < 1 ? 1 : cnt;
  cnt = quick && cnt > 2 ? 2 : cnt;
  *count = cnt;
  rows_arg_t r;
  memset(&r, 0, sizeof r);
  r.d = d;
  r.g.n = n;
  r.g.count = cnt;
  float *host = (float *)malloc(nn * cnt * sizeof(float));
  am_cu_ex_t *ex = (am_cu_ex_t *)calloc((size_t)cnt, sizeof *ex), *dex;
  for (size_t i = 0; i < nn * cnt; i++) /* a softmax-like positive row, not zeros */
    host[i] = (float)(1 + (i * 2654435761u) % 97) / (97.0f * n);
  CK(cudaMalloc((void **)&r.F, (size_t)L * nn * cnt * 4));
  CK(cudaMalloc((void **)&r.P, nn * cnt * 4));
  CK(cudaMalloc((void **)&r.T, nn * cnt * 4));
  for (int l = 0; l < L; l++)
    CK(cudaMemcpy(r.F + (size_t)l * nn * cnt, host, nn * cnt * 4, cudaMemcpyHostToDevice));
  for (int e = 0; e < cnt; e++) {
    ex[e].n = n;
    ex[e].flags = AM_EXF_RROWS;
    ex[e].F = (long long)(e * nn);
  }
  CK(cudaMalloc((void **)&dex, (size_t)cnt * sizeof *ex));
  CK(cudaMemcpy(dex, ex, (size_t)cnt * sizeof *ex, cudaMemcpyHostToDevice));
  r.a.ex = dex;
  r.a.nex = cnt;
  r.a.L = L;
  const double t = timed(do_rows, &r, d->compute, repeats);
  gemm_arg_t g = {d->blas, n, cnt, r.F, r.P, r.T};
  *gemm = 2.0 * n * (double)nn * cnt / timed(do_gemm, &g, d->compute, repeats) / 1e12;
  cudaFree(r.F);
  cudaFree(r.P);
  cudaFree(r.T);
  cudaFree(dex);
  free(host);
  free(ex);
  return 2.0 * n * (double)nn * (L - 1) * cnt / t / 1e12;
}

/* ---- end to end from the page cache -----------------------------------------------------
 */

static void read_through(const char *path) {
  FILE *f = fopen(path, "rb");
  static char buf[1 << 20];
  while (f && fread(buf, 1, sizeof buf, f) == sizeof buf) {
  }
  if (f)
    fclose(f);
}

/* Drops this process's mappings of the tensors (the page cache keeps the pages), so each
 * pass faults them in again as a fresh `attnmap analyze` does. */
static void drop_mappings(const am_dataset_t *ds) {
  const uintptr_t page = 4096;
  for (int s = 0; s < am_dataset_shard_count(ds); s++)
    for (int i = 0; i < am_dataset_shard_file_count(ds, s); i++) {
      const am_file_t *f = am_dataset_shard_file(ds, s, i);
      for (int t = 0; t < am_file_tensor_count(f); t++) {
        const am_tensor_t *x = am_file_tensor(f, t);
        uintptr_t lo = ((uintptr_t)x->data + page - 1) & ~(page - 1);
        uintptr_t hi = ((uintptr_t)x->data + x->nbytes) & ~(page - 1);
        if (hi > lo)
          madvise((void *)lo, hi - lo, MADV_DONTNEED);
      }
    }
}

static double end_to_end(am_ctx_t *gpu, const am_dataset_t *ds, const views_t *v,
                         const am_pass_options_t *opt, int repeats, int *chunk_out) {
  const am_backend_t *be = gpu->backend;
  void *st = gpu->backend_state;
  const int chunk = be->chunk_examples(st, (uint64_t)(v->bytes / v->nex));
  *chunk_out = chunk;
  for (int s = 0; s < am_dataset_shard_count(ds); s++)
    for (int i = 0; i < am_dataset_shard_file_count(ds, s); i++)
      read_through(am_file_path(am_dataset_shard_file(ds, s, i)));
  double *t = (double *)malloc((size_t)(repeats + 1) * sizeof *t);
  for (int r = 0; r <= repeats; r++) {
    drop_mappings(ds);
    const double t0 = now_s();
    int pending = 0;
    am_fault_t f;
    int bad;
    for (int e0 = 0; e0 < v->nex; e0 += chunk) {
      const int k = v->nex - e0 < chunk ? v->nex - e0 : chunk;
      if (be->pass_submit(st, v->ex + e0, k, opt, v->out + e0) != AM_STATUS_OK ||
          (pending && be->pass_wait(st, &f, &bad) != AM_STATUS_OK)) {
        fprintf(stderr, "bench_cuda: end to end: %s\n", am_last_error(gpu));
        exit(1);
      }
      pending = 1;
    }
    if (pending && be->pass_wait(st, &f, &bad) != AM_STATUS_OK) {
      fprintf(stderr, "bench_cuda: end to end: %s\n", am_last_error(gpu));
      exit(1);
    }
    t[r] = now_s() - t0;
  }
  qsort(t + 1, (size_t)repeats, sizeof *t, cmp_double); /* t[0]: the warm-up */
  const double med = t[1 + repeats / 2];
  free(t);
  return med;
}

/* ---- the measurements in order, and the JSON line ------------------------------------ */

typedef struct results {
  double worst, tf, fbytes, rows_tf[2], gemm_tf[2], te;
  int resident, cnts[2], chunk;
} results_t;

static void measure(am_ctx_t *gpu, am_cu_dev_t *d, const am_dataset_t *ds, const views_t *v,
                    const am_pass_options_t *opt, int repeats, const limits_t *lim,
                    results_t *r) {
  if (r->resident <= 0) {
    size_t free_b, total;
    CK(cudaMemGetInfo(&free_b, &total));
    r->resident = (int)(0.4 * (double)free_b / (v->bytes / v->nex * 1.05));
  }
  r->resident = r->resident > v->nex ? v->nex : r->resident < 1 ? 1 : r->resident;
  r->tf = fused_resident(d, v, r->resident, opt, repeats, &r->fbytes);
  const double gbs = r->fbytes / r->tf / 1e9;
  printf(
      "fused pass, %d examples on the device: %.3f ms, %.1f GB/s = %.0f%% of the copy rate"
      " (target >= 80%%)\n",
      r->resident, r->tf * 1e3, gbs, 100 * gbs / lim->d2d_gbs);
  const int ns[2] = {256, 512};
  for (int k = 0; k < 2; k++) {
    r->rows_tf[k] = rows_rate(d, ns[k], v->L, repeats, &r->gemm_tf[k], &r->cnts[k]);
    printf("all-rows rollout n=%d, %d examples x %d layers: %.1f TFLOP/s = %.0f%% of SGEMM "
           "(target >= 60%%); strided-batched SGEMM alone at n=%d: %.1f TFLOP/s\n",
           ns[k], r->cnts[k], v->L, r->rows_tf[k], 100 * r->rows_tf[k] / lim->sgemm_tflops,
           ns[k], r->gemm_tf[k]);
  }
  r->te = end_to_end(gpu, ds, v, opt, repeats < 3 ? repeats : 3, &r->chunk);
  const double e2e = v->bytes / r->te / 1e9;
  printf("end to end from the page cache, %d examples in chunks of %d: %.3f s, %.1f GB/s = "
         "%.0f%% of pinned host->device (target >= 70%%)\n",
         v->nex, r->chunk, r->te, e2e, 100 * e2e / lim->h2d_gbs);
}

static void print_json(am_ctx_t *gpu, const am_dataset_t *ds, const views_t *v,
                       const limits_t *lim, const results_t *r) {
  printf(
      "{\"device\": \"%s\", \"L\": %d, \"H\": %d, \"T\": %d, \"dtype\": \"%s\", "
      "\"d2d_gbs\": %.2f, \"h2d_gbs\": %.2f, \"sgemm_tflops\": %.2f, \"check\": %.3g, "
      "\"fused_examples\": %d, \"fused_s\": %.6g, \"fused_gbs\": %.2f, "
      "\"fused_examples_per_s\": %.1f, \"rows256_tflops\": %.2f, \"rows512_tflops\": %.2f, "
      "\"gemm256_tflops\": %.2f, \"gemm512_tflops\": %.2f, \"e2e_examples\": %d, "
      "\"e2e_s\": %.6g, \"e2e_gbs\": %.2f}\n",
      am_ctx_device_name(gpu), v->L, v->H, v->T, am_dtype_name(ds->dtype), lim->d2d_gbs,
      lim->h2d_gbs, lim->sgemm_tflops, r->worst, r->resident, r->tf,
      r->fbytes / r->tf / 1e9, r->resident / r->tf, r->rows_tf[0], r->rows_tf[1],
      r->gemm_tf[0], r->gemm_tf[1], v->nex, r->te, v->bytes / r->te / 1e9);
}

/* ---- main -------------------------------------------------------------------------------
 */

int main(int argc, char **argv) {
  int repeats = 10, resident = 0, threads = 0, c;
  static const struct option opts[] = {{"repeats", 1, 0, 'r'},
                                       {"resident", 1, 0, 'n'},
                                       {"threads", 1, 0, 't'},
                                       {"quick", 0, 0, 'q'},
                                       {0, 0, 0, 0}};
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
    switch (c) {
    case 'r':
      repeats = atoi(optarg) > 0 ? atoi(optarg) : 1;
      break;
    case 'n':
      resident = atoi(optarg);
      break;
    case 't':
      threads = atoi(optarg);
      break;
    case 'q':
      quick = 1;
      break;
    default:
      fprintf(stderr,
              "usage: bench_cuda DATASET [--repeats R] [--resident N] [--threads K] "
              "[--quick]\n");
      return 2;
    }
  if (optind != argc - 1) {
    fprintf(stderr, "usage: bench_cuda DATASET [--repeats R] [--resident N] [--threads K] "
                    "[--quick]\n");
    return 2;
  }
  const char *path = argv[optind];
  am_ctx_options_t o = {"cuda", threads};
  am_ctx_t *gpu = NULL, *cpu = NULL;
  char err[1024] = "";
  if (am_ctx_create(&o, &gpu, err, sizeof err) != AM_STATUS_OK) {
    fprintf(stderr, "bench_cuda: %s\n", err);
    return 1;
  }
  o.backend = "cpu";
  am_ctx_create(&o, &cpu, NULL, 0);
  am_cu_dev_t *d = &((am_cu_state_t *)gpu->backend_state)->dev[0];
  am_dataset_t *ds = NULL;
  if (am_dataset_open(gpu, &path, 1, &ds) != AM_STATUS_OK) {
    fprintf(stderr, "bench_cuda: %s\n", am_last_error(gpu));
    return 1;
  }
  const limits_t lim = measure_limits(d, repeats);
  views_t v;
  make_views(ds, (int)ds->N, &v);
  const int grads = v.ex[0].grad != NULL;
  am_pass_options_t opt;
  memset(&opt, 0, sizeof opt);
  opt.want = AM_PASS_ATTENTION_LAST | AM_PASS_ROLLOUT | AM_PASS_HEAD_STATS |
             (grads ? AM_PASS_GRAD_ROLLOUT | AM_PASS_HEAD_IMPORTANCE : 0);
  printf("device: %s; dataset %s: N=%d L=%d H=%d T=%d %s%s; repeats %d\n",
         am_ctx_device_name(gpu), path, v.nex, v.L, v.H, v.T, am_dtype_name(ds->dtype),
         grads ? " + gradients" : "", repeats);
  printf(
      "limits: device copy %.1f GB/s, pinned host->device %.1f GB/s, SGEMM %.1f TFLOP/s\n",
      lim.d2d_gbs, lim.h2d_gbs, lim.sgemm_tflops);
  results_t r;
  memset(&r, 0, sizeof r);
  r.worst = check_once(gpu, cpu, &v, &opt);
  printf("check: largest |cuda - cpu| / (1e-5 max|cpu| + |cpu|) over 8 examples: %.3g "
         "(<= 1e-5: within the parity bound)\n",
         r.worst);
  r.resident = resident;
  measure(gpu, d, ds, &v, &opt, repeats, &lim, &r);
  print_json(gpu, ds, &v, &lim, &r);
  free_views(&v);
  am_dataset_close(ds);
  am_ctx_destroy(cpu);
  am_ctx_destroy(gpu);
  return 0;
}
