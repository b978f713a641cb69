/* bench_flow.c — times attention flow (host/cpu/flow.h) on the CPU beside the networkx
 * reference (bench/flow_networkx.py: the authors' graph construction and Edmonds-Karp) on
 * the same inputs, in the same run.
 *
 * The inputs: N examples of L layers × H heads × n tokens of softmax attention with
 * logits uniform in [0, sharp) (sharp 8: a few keys per row take most of the weight, like
 * trained heads), written to DIR/attentions.npy for the peer. The peer solves the first
 * `--peer-sinks` sinks of example 0 and prints their values and times; this program checks
 * its own values against them (1e-6 relative) and extrapolates the peer's time per
 * example as (its mean time per sink) × n, saying so. Then it times attnmap: one example
 * at a time on one thread (latency), and the whole batch on --threads threads as the
 * backend runs it (throughput), the median of --repeats runs, with the solver's work per
 * sink (pushes, relabels, global relabellings) from one example.
 * With --cuda-examples M (a build with CUDA, on a machine with a GPU) it also times
 * am_cuda_flow (cuda/flow.cuh) on a batch of M examples that cycle through the N
 * generated ones, after checking the device's maps against the CPU's.
 *   usage: bench_flow [--layers L] [--tokens n] [--heads H] [--examples N] [--repeats R]
 *                     [--threads K] [--sharp S] [--target cls|mean] [--peer-sinks S]
 *                     [--no-peer] [--python PATH] [--dir DIR] [--cuda-examples M] */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "attnmap.h"
#include "cpu/flow.h"
#include "cpu/maxflow.h"
#ifdef ATTNMAP_HAVE_CUDA
#include <cuda_runtime.h>

#include "../cuda/flow.cuh"
#endif

typedef struct args {
  int L, n, H, N, repeats, threads, peer_sinks, no_peer, mean, cuda_examples;
  double sharp;
  const char *python, *dir;
} args_t;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of the calling thread: less sensitive than wall time to a busy machine. */
static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int k) {
  qsort(v, (size_t)k, sizeof *v, cmp_double);
  return k % 2 ? v[k / 2] : 0.5 * (v[k / 2 - 1] + v[k / 2]);
}

/* [L,N,H,n,n] softmax rows, logits uniform in [0, sharp) from a 64-bit LCG. */
static float *make_attention(const args_t *a) {
  size_t rows = (size_t)a->L * a->N * a->H * a->n;
  float *att = malloc(rows * a->n * sizeof *att);
  double *e = malloc((size_t)a->n * sizeof *e);
  uint64_t s = 12345;
  for (size_t r = 0; r < rows; r++) {
    double sum = 0.0;
    for (int j = 0; j < a->n; j++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      e[j] = exp(a->sharp * (double)(s >> 11) / 9007199254740992.0);
      sum += e[j];
    }
    for (int j = 0; j < a->n; j++)
      att[r * a->n + j] = (float)(e[j] / sum);
  }
  free(e);
  return att;
}

typedef struct batch {
  am_example_t *ex;
  const void **ptrs; /* [N,L] */
  int32_t *idx;
} batch_t;

static void make_batch(const args_t *a, const float *att, batch_t *b) {
  size_t block = (size_t)a->H * a->n * a->n;
  b->ex = calloc((size_t)a->N, sizeof *b->ex);
  b->ptrs = malloc((size_t)a->N * a->L * sizeof *b->ptrs);
  b->idx = malloc((size_t)a->n * sizeof *b->idx);
  for (int j = 0; j < a->n; j++)
    b->idx[j] = j;
  for (int e = 0; e < a->N; e++) {
    for (int l = 0; l < a->L; l++)
      b->ptrs[(size_t)e * a->L + l] = att + ((size_t)l * a->N + e) * block;
    b->ex[e] = (am_example_t){.L = a->L,
                              .H = a->H,
                              .T = a->n,
                              .n = a->n,
                              .dtype = AM_DTYPE_F32,
                              .att = b->ptrs + (size_t)e * a->L,
                              .idx = b->idx,
                              .target = a->mean ? AM_ROW_MEAN : 0};
  }
}

/* Runs the peer on DIR/attentions.npy; fills peer[0..sinks) and its wall and CPU seconds
 * per sink. Returns the number of sinks read (0 when the peer could not run). */
static int run_peer(const args_t *a, double *peer, double *sec_per_sink,
                    double *cpu_per_sink) {
  char cmd[2048];
  /* the peer sits beside this file's source (CMake passes absolute source paths) */
  char here[1024];
  snprintf(here, sizeof here, "%s", __FILE__);
  char *slash = strrchr(here, '/');
  if (slash)
    *slash = '\0';
  else
    snprintf(here, sizeof here, "bench");
  snprintf(cmd, sizeof cmd, "%s %s/flow_networkx.py %s/attentions.npy --sinks %d",
           a->python, here, a->dir, a->peer_sinks);
  printf("peer: %s\n", cmd);
  fflush(stdout);
  FILE *p = popen(cmd, "r");
  if (!p)
    return 0;
  char line[4096];
  int got = 0;
  double total = 0.0, total_cpu = 0.0;
  while (fgets(line, sizeof line, p)) {
    int j;
    double v, sec, cpu;
    if (sscanf(line, "sink %d value %lf seconds %lf cpu %lf", &j, &v, &sec, &cpu) == 4 &&
        j == got && got < a->n) {
      peer[got++] = v;
      total += sec;
      total_cpu += cpu;
    } else {
      fputs(line, stdout);
    }
  }
  if (pclose(p) != 0)
    return 0;
  *sec_per_sink = got ? total / got : 0.0;
  *cpu_per_sink = got ? total_cpu / got : 0.0;
  return got;
}

/* Solver statistics over example 0's sinks (source cls). */
static void work_stats(const args_t *a, const batch_t *b) {
  size_t nn = (size_t)a->n * a->n;
  float *cap = malloc(2 * (size_t)a->L * nn * sizeof *cap), *row = malloc(a->n * 4);
  am_pass_options_t opt = {0};
  am_cpu_flow_capacities(&b->ex[0], &opt, cap, cap + a->L * nn, row);
  void *mem = malloc(am_maxflow_bytes(a->L, a->n));
  am_maxflow_t g;
  am_maxflow_init(&g, a->L, a->n, cap, cap + a->L * nn, mem);
  am_maxflow_start(&g, 0);
  for (int j = 0; j < a->n; j++)
    am_maxflow_solve(&g, j);
  printf("solver work per sink (example 0, one warm run over all sinks): %.0f pushes, "
         "%.0f relabels, %.2f global relabellings\n",
         (double)g.pushes / a->n, (double)g.relabels / a->n, (double)g.global / a->n);
  free(mem);
  free(row);
  free(cap);
}

/* Checks example 0's raw flows from the cls row against the peer's. */
static int check(const args_t *a, const batch_t *b, const double *peer, int sinks) {
  size_t nn = (size_t)a->n * a->n;
  float *cap = malloc(2 * (size_t)a->L * nn * sizeof *cap), *row = malloc(a->n * 4);
  double *raw = malloc((size_t)a->n * sizeof *raw), worst = 0.0;
  am_pass_options_t opt = {0};
  int src = 0;
  am_cpu_flow_capacities(&b->ex[0], &opt, cap, cap + a->L * nn, row);
  am_cpu_flow_values(a->L, a->n, cap, cap + a->L * nn, &src, 1, raw);
  for (int j = 0; j < sinks; j++) {
    double rel = fabs(raw[j] - peer[j]) / fmax(fabs(peer[j]), 1e-300);
    worst = rel > worst ? rel : worst;
  }
  printf("check: %d sinks of example 0 against networkx: largest relative difference "
         "%.2e (%s 1e-6)\n",
         sinks, worst, worst <= 1e-6 ? "within" : "NOT within");
  free(raw);
  free(row);
  free(cap);
  return worst <= 1e-6;
}

/* Median seconds per example of am_cpu_flow on one thread, examples one after another;
 * *cpu the median of the thread's CPU time. */
static double time_latency(const args_t *a, const batch_t *b, float *out, double *cpu) {
  int count = a->N < 8 ? a->N : 8;
  double *t = malloc((size_t)count * a->repeats * sizeof *t);
  double *c = malloc((size_t)count * a->repeats * sizeof *c);
  am_pass_options_t opt = {0};
  am_cpu_scratch_t scratch = {0};
  int k = 0;
  for (int r = 0; r < a->repeats; r++)
    for (int e = 0; e < count; e++) {
      double t0 = now(), c0 = cpu_now();
      if (am_cpu_flow(&b->ex[e], &opt, out + (size_t)e * a->n, &scratch) != AM_STATUS_OK)
        fprintf(stderr, "am_cpu_flow failed\n");
      c[k] = cpu_now() - c0;
      t[k++] = now() - t0;
    }
  am_cpu_scratch_free(&scratch);
  double m = median(t, k);
  *cpu = median(c, k);
  free(c);
  free(t);
  return m;
}

/* Median seconds for the whole batch on a->threads threads, as backend_cpu.c runs it. */
static double time_batch(const args_t *a, const batch_t *b, float *out) {
  double *t = malloc((size_t)a->repeats * sizeof *t);
  am_pass_options_t opt = {0};
  for (int r = 0; r < a->repeats; r++) {
    double t0 = now();
#pragma omp parallel num_threads(a->threads)
    {
      am_cpu_scratch_t scratch = {0};
#pragma omp for schedule(dynamic, 1)
      for (int e = 0; e < a->N; e++)
        am_cpu_flow(&b->ex[e], &opt, out + (size_t)e * a->n, &scratch);
      am_cpu_scratch_free(&scratch);
    }
    t[r] = now() - t0;
  }
  double m = median(t, a->repeats);
  free(t);
  return m;
}

#ifdef ATTNMAP_HAVE_CUDA
/* am_cuda_flow on M examples cycling through the N generated ones (uploaded once): checks
 * the first N maps against `cpu` (am_cpu_flow's, from time_batch), then the median time
 * of --repeats runs. Returns 0 when the check fails. */
static int bench_cuda(const args_t *a, const float *att, const float *cpu) {
  int count = 0, M = a->cuda_examples, L = a->L, n = a->n, ok = 1;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    printf("cuda: no device, skipped\n");
    return 1;
  }
  struct cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  size_t block = (size_t)a->H * n * n, bytes = (size_t)L * a->N * block * sizeof(float);
  const void **ptrs = malloc((size_t)M * L * sizeof *ptrs);
  int *ns = malloc((size_t)M * sizeof *ns), *tg = malloc((size_t)M * sizeof *tg);
  int32_t *idx = malloc((size_t)M * n * sizeof *idx);
  float *got = malloc((size_t)M * n * sizeof *got);
  void *d_att = NULL, *d_ptrs = NULL, *d_idx = NULL, *d_out = NULL;
  if (cudaMalloc(&d_att, bytes) != cudaSuccess ||
      cudaMalloc(&d_ptrs, (size_t)M * L * sizeof *ptrs) != cudaSuccess ||
      cudaMalloc(&d_idx, (size_t)M * n * sizeof *idx) != cudaSuccess ||
      cudaMalloc(&d_out, (size_t)M * n * sizeof *got) != cudaSuccess) {
    printf("cuda: out of device memory\n");
    return 0;
  }
  for (int e = 0; e < M; e++) {
    ns[e] = n;
    tg[e] = a->mean ? -1 : 0;
    for (int j = 0; j < n; j++)
      idx[(size_t)e * n + j] = j;
    for (int l = 0; l < L; l++)
      ptrs[(size_t)e * L + l] =
          (const char *)d_att +
          ((size_t)l * a->N + (size_t)(e % a->N)) * block * sizeof(float);
  }
  cudaMemcpy(d_att, att, bytes, cudaMemcpyHostToDevice);
  cudaMemcpy(d_ptrs, ptrs, (size_t)M * L * sizeof *ptrs, cudaMemcpyHostToDevice);
  cudaMemcpy(d_idx, idx, (size_t)M * n * sizeof *idx, cudaMemcpyHostToDevice);
  am_cuda_flow_batch_t b = {.nex = M,
                            .L = L,
                            .H = a->H,
                            .T = n,
                            .dtype = AM_DTYPE_F32,
                            .att = (const void *const *)d_ptrs,
                            .idx = d_idx,
                            .n = ns,
                            .target = tg,
                            .fusion = AM_FUSION_MEAN,
                            .discard = 0.0,
                            .out = d_out};
  double *t = malloc((size_t)a->repeats * sizeof *t), worst = 0.0;
  char err[256] = "";
  for (int r = 0; r < a->repeats && ok; r++) {
    double t0 = now();
    ok = am_cuda_flow(&b, 0, err, sizeof err) == AM_STATUS_OK;
    t[r] = now() - t0;
  }
  if (ok) {
    cudaMemcpy(got, d_out, (size_t)M * n * sizeof *got, cudaMemcpyDeviceToHost);
    for (size_t k = 0; k < (size_t)(M < a->N ? M : a->N) * n; k++)
      worst =
          fmax(worst, fabs((double)got[k] - cpu[k]) / fmax(fabs((double)cpu[k]), 1e-30));
    printf("cuda check: %d examples against the CPU: largest relative difference %.2e\n",
           M < a->N ? M : a->N, worst);
    double m = median(t, a->repeats);
    printf("cuda (%s): %d examples in %.3f s (median of %d) = %.1f examples/s\n", prop.name,
           M, m, a->repeats, M / m);
    ok = worst <= 1e-5;
  } else {
    printf("cuda: am_cuda_flow failed: %s\n", err);
  }
  cudaFree(d_att);
  cudaFree(d_ptrs);
  cudaFree(d_idx);
  cudaFree(d_out);
  free(t);
  free(got);
  free(idx);
  free(tg);
  free(ns);
  free(ptrs);
  return ok;
}
#else
static int bench_cuda(const args_t *a, const float *att, const float *cpu) {
  (void)a;
  (void)att;
  (void)cpu;
  printf("cuda: this build has no CUDA backend, skipped\n");
  return 1;
}
#endif

static int parse(int argc, char **argv, args_t *a) {
  static const struct option opts[] = {
      {"layers", 1, 0, 'L'},        {"tokens", 1, 0, 'n'},
      {"heads", 1, 0, 'H'},         {"examples", 1, 0, 'N'},
      {"repeats", 1, 0, 'r'},       {"threads", 1, 0, 't'},
      {"sharp", 1, 0, 's'},         {"target", 1, 0, 'g'},
      {"peer-sinks", 1, 0, 'p'},    {"no-peer", 0, 0, 'x'},
      {"python", 1, 0, 'y'},        {"dir", 1, 0, 'd'},
      {"cuda-examples", 1, 0, 'c'}, {0, 0, 0, 0}};
  *a = (args_t){.L = 12,
                .n = 64,
                .H = 12,
                .N = 8,
                .repeats = 3,
                .threads = 2,
                .peer_sinks = 4,
                .sharp = 8.0,
                .python = "/usr/bin/python3",
                .dir = "/tmp/attnmap-bench-flow"};
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'L':
      a->L = atoi(optarg);
      break;
    case 'n':
      a->n = atoi(optarg);
      break;
    case 'H':
      a->H = atoi(optarg);
      break;
    case 'N':
      a->N = atoi(optarg);
      break;
    case 'r':
      a->repeats = atoi(optarg);
      break;
    case 't':
      a->threads = atoi(optarg);
      break;
    case 's':
      a->sharp = atof(optarg);
      break;
    case 'g':
      a->mean = !strcmp(optarg, "mean");
      break;
    case 'p':
      a->peer_sinks = atoi(optarg);
      break;
    case 'x':
      a->no_peer = 1;
      break;
    case 'y':
      a->python = optarg;
      break;
    case 'd':
      a->dir = optarg;
      break;
    case 'c':
      a->cuda_examples = atoi(optarg);
      break;
    default:
      return -1;
    }
  }
  if (a->L < 1 || a->L > 64 || a->n < 1 || a->n > 4096 || a->H < 1 || a->N < 1 ||
      a->repeats < 1 || a->threads < 1 || a->peer_sinks < 1 || a->cuda_examples < 0)
    return -1;
  if (a->peer_sinks > a->n)
    a->peer_sinks = a->n;
  return 0;
}

/* Writes the attentions for the peer: DIR/attentions.npy, F32 [L,N,H,n,n]. */
static int write_npy(const args_t *a, const float *att) {
  am_ctx_t *ctx = NULL;
  if (am_ctx_create(NULL, &ctx, NULL, 0) != AM_STATUS_OK)
    return -1;
  mkdir(a->dir, 0755);
  char path[1024];
  snprintf(path, sizeof path, "%s/attentions.npy", a->dir);
  size_t count = (size_t)a->L * a->N * a->H * a->n * a->n;
  am_tensor_t t = {.dtype = AM_DTYPE_F32,
                   .ndim = 5,
                   .shape = {a->L, a->N, a->H, a->n, a->n},
                   .data = att,
                   .nbytes = count * sizeof(float)};
  am_status st = am_npy_write(ctx, path, &t);
  am_ctx_destroy(ctx);
  return st == AM_STATUS_OK ? 0 : -1;
}

int main(int argc, char **argv) {
  args_t a;
  if (parse(argc, argv, &a) != 0) {
    fprintf(stderr,
            "usage: bench_flow [--layers L] [--tokens n] [--heads H] [--examples N] "
            "[--repeats R] [--threads K] [--sharp S] [--target cls|mean] "
            "[--peer-sinks S] [--no-peer] [--python PATH] [--dir DIR] "
            "[--cuda-examples M]\n");
    return 2;
  }
  printf("attention flow, L=%d n=%d H=%d, %d examples, target %s, logits in [0,%g), "
         "%d repeats\n",
         a.L, a.n, a.H, a.N, a.mean ? "mean" : "cls", a.sharp, a.repeats);
  float *att = make_attention(&a), *out = malloc((size_t)a.N * a.n * sizeof *out);
  batch_t b;
  make_batch(&a, att, &b);
  double peer[4096], peer_sec = 0.0, peer_cpu = 0.0, lat_cpu = 0.0;
  int sinks = 0, ok = 1;
  if (!a.no_peer) {
    if (write_npy(&a, att) != 0)
      fprintf(stderr, "could not write %s/attentions.npy\n", a.dir);
    else if ((sinks = run_peer(&a, peer, &peer_sec, &peer_cpu)) == 0)
      fprintf(stderr, "the networkx peer did not run\n");
    else
      ok = check(&a, &b, peer, sinks);
  }
  work_stats(&a, &b);
  double lat = time_latency(&a, &b, out, &lat_cpu), batch = time_batch(&a, &b, out);
  printf("attnmap, 1 thread:   %.4f s per example (median; CPU time %.4f s)\n", lat,
         lat_cpu);
  printf("attnmap, %d threads: %.4f s for %d examples = %.2f examples/s\n", a.threads,
         batch, a.N, a.N / batch);
  if (sinks) {
    double scale = (double)a.n * (a.mean ? a.n : 1);
    double peer_ex = peer_sec * scale, peer_cpu_ex = peer_cpu * scale;
    printf(
        "networkx edmonds_karp: %.4f s per sink (CPU %.4f s) over %d sinks -> %.1f s per "
        "example, CPU %.1f s (%s%d sinks%s)\n",
        peer_sec, peer_cpu, sinks, peer_ex, peer_cpu_ex,
        sinks == a.n ? "all " : "extrapolated to ", a.n, a.mean ? " x n sources" : "");
    printf("speed-up, 1 thread vs networkx: %.0fx wall, %.0fx CPU time\n", peer_ex / lat,
           peer_cpu_ex / lat_cpu);
  }
  if (a.cuda_examples > 0)
    ok &= bench_cuda(&a, att, out);
  free(out);
  free(att);
  free(b.ex);
  free(b.ptrs);
  free(b.idx);
  return ok ? 0 : 1;
}
