/* bench_cpu.c — times the CPU backend on a dataset (bench/synth files), beside the two
 * floors it is measured against, all in one process on the same bytes:
 *   - the pass: the backend's fused per-example pass (rollout, gradient rollout, every head
 *     statistic, head importance, attention_last; docs/design.md §3 but flow), and the
 *     chunk
 *     computation around it (the pass + saliency + agreement, as `attnmap analyze` runs
 *     it, without reading files anew, aggregating or writing);
 *   - the memory-read floor: the valid attention and gradient bytes the pass reads
 *     divided by this machine's read bandwidth (an integer sum over 512 MiB, all threads,
 *     best of 5);
 *   - the entropy compute floor: a tight loop that computes sum a ln a over the same
 *     attention rows (widen, vectorised ln, multiply-add: row_sweep.h), all threads.
 * The pass is checked once against the plain reference loops (the same analyses without
 * the AVX2 sweep) before it is timed. Timings are medians of --repeats after one warm-up;
 * CPU time over wall time x threads says how much of the machine the run had.
 *   usage: bench_cpu DATASET... [--threads K] [--repeats R] [--simd auto|portable]
 *                    [--examples N] [--methods LIST]
 * --examples N times the first N examples only; --methods takes the names of
 * `attnmap analyze --methods` (default: all but flow).
 * Last line: RESULT key=value ... (read by bench/run.sh). */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/ctx.h"
#include "core/half.h"
#include "cpu/backend_cpu.h"
#include "cpu/row_sweep.h"
#include "dataset/dataset.h"
#include "ops/backend.h"
#include "pipeline/chunk.h"

typedef struct bench {
  am_ctx_t *ctx;
  am_dataset_t *ds;
  am_layout_t lay;
  am_chunk_t chunk;
  int cap, threads, repeats;
  int64_t limit; /* examples timed (the first ones) */
  unsigned methods;
  double bytes;                    /* valid attention + gradient bytes the pass reads */
  const am_cpu_kernels_t *kernels; /* what the context's passes run with */
} bench_t;

/* The context's passes run with k from now on. */
static void use_kernels(bench_t *b, const am_cpu_kernels_t *k) {
  b->kernels = k;
  am_cpu_backend_use_kernels(b->ctx->backend_state, k);
}

static double now(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- the floors ------------------------------------------------------------------- */

/* Read bandwidth in GB/s: a 64-bit integer sum (vectorised, never compute-bound) over a
 * buffer far larger than the caches, all threads, best of `repeats`. */
static volatile uint64_t sink_u64; /* keeps the sums alive */

static double read_bandwidth(size_t bytes, int threads, int repeats) {
  size_t n = bytes / 8;
  uint64_t *buf = malloc(n * 8);
  double best = 0;
  if (!buf)
    return 0;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (size_t i = 0; i < n; i++)
    buf[i] = i;
  for (int r = 0; r < repeats; r++) {
    double t0 = now(CLOCK_MONOTONIC);
    uint64_t s = 0;
#pragma omp parallel for num_threads(threads) reduction(+ : s) schedule(static)
    for (size_t i = 0; i < n; i++)
      s += buf[i];
    double gbs = (double)bytes / (now(CLOCK_MONOTONIC) - t0) / 1e9;
    sink_u64 += s;
    best = gbs > best ? gbs : best;
  }
  free(buf);
  return best;
}

/* sum a ln a over every valid attention row of example e (contiguous valid spans). */
static double entropy_example(const am_example_t *ex, int simd) {
  size_t es = am_dtype_size(ex->dtype);
  double total = 0.0;
  int n = ex->n;
  if (n == 0 || ex->idx[n - 1] - ex->idx[0] != n - 1)
    return 0.0;
  for (int l = 0; l < ex->L; l++)
    for (int h = 0; h < ex->H; h++)
      for (int i = 0; i < n; i++) {
        int64_t first = ((int64_t)h * ex->T + ex->idx[i]) * ex->T + ex->idx[0];
        const unsigned char *row = (const unsigned char *)ex->att[l] + (size_t)first * es;
        if (simd) {
          total += am_row_entropy_avx2(row, ex->dtype, n);
          continue;
        }
        for (int j = 0; j < n; j++) {
          float x = am_load_float(row, ex->dtype, j);
          total += x > 0.0f ? (double)x * logf(x) : 0.0;
        }
      }
  return total;
}

/* ---- running the pass over the whole dataset --------------------------------------- */

typedef enum what { PASS, COMPUTE, ENTROPY } what_t;

/* One sweep over every example: the backend pass, the chunk computation or the entropy
 * loop. Returns wall seconds; *cpu gets process CPU seconds. */
static double sweep(bench_t *b, what_t what, double *cpu, am_status *st) {
  double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID), sink = 0;
  int simd = b->kernels->row != NULL;
  *st = AM_STATUS_OK;
  int64_t done = 0;
  for (int s = 0; s < b->ds->nshards && *st == AM_STATUS_OK && done < b->limit; s++)
    for (int64_t row = 0; row < b->ds->shards[s].B && *st == AM_STATUS_OK; row += b->cap) {
      int64_t left = b->ds->shards[s].B - row;
      left = left < b->limit - done ? left : b->limit - done;
      if (left <= 0)
        break;
      int nex = (int)(left < b->cap ? left : b->cap);
      done += nex;
      am_chunk_t *c = &b->chunk;
      *st = am_chunk_load(b->ctx, c, b->ds, s, row, nex);
      if (*st != AM_STATUS_OK)
        break;
      if (what == COMPUTE) {
        *st = am_chunk_compute(b->ctx, c, b->ds);
      } else if (what == PASS) {
        am_fault_t fault;
        int bad;
        *st = b->ctx->backend->example_pass(b->ctx->backend_state, c->ex, c->nex,
                                            &b->lay.pass, c->out, &fault, &bad);
      } else {
#pragma omp parallel for num_threads(b->threads) schedule(dynamic, 1) reduction(+ : sink)
        for (int e = 0; e < nex; e++)
          sink += entropy_example(&c->ex[e], simd);
      }
    }
  *cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
  double wall = now(CLOCK_MONOTONIC) - t0;
  return sink == 1e300 ? 0 : wall;
}

/* Median wall time of `repeats` sweeps after one warm-up; *util = CPU / (wall x threads).
 */
static double timed(bench_t *b, what_t what, double *util) {
  double *w = malloc((size_t)b->repeats * sizeof *w), cpu_sum = 0, wall_sum = 0, cpu;
  am_status st;
  sweep(b, what, &cpu, &st);
  for (int r = 0; r < b->repeats && st == AM_STATUS_OK; r++) {
    w[r] = sweep(b, what, &cpu, &st);
    cpu_sum += cpu;
    wall_sum += w[r];
  }
  double med = st == AM_STATUS_OK ? median(w, b->repeats) : NAN;
  *util = cpu_sum / (wall_sum * b->threads);
  if (st != AM_STATUS_OK)
    fprintf(stderr, "bench_cpu: %s\n", am_last_error(b->ctx));
  free(w);
  return med;
}

/* ---- the check against the plain reference loops ----------------------------------- */

static double worst_error(const float *got, const float *ref, size_t count) {
  double worst = 0;
  for (size_t k = 0; k < count; k++) {
    if (isnan(ref[k]) && isnan(got[k]))
      continue;
    double err = fabs((double)got[k] - ref[k]) / (1e-6 + 1e-5 * fabs((double)ref[k]));
    worst = err > worst || isnan(err) ? err : worst;
  }
  return worst;
}

/* Runs the first chunk with the plain loops, then with the tuned sweep, and compares
 * every map, statistic and importance: |x - ref| <= 1e-6 + 1e-5 |ref|. Returns the largest
 * error / bound (<= 1 passes), or -1 when the run failed. */
static double check_against_plain(bench_t *b) {
  am_chunk_t *c = &b->chunk;
  size_t nm = (size_t)(b->lay.nmaps ? b->lay.nmaps : 1) * c->cap * c->Tcap;
  size_t ns = (size_t)c->cap * AM_STAT_COUNT * b->lay.L * b->lay.H;
  size_t ni = (size_t)c->cap * b->lay.L * b->lay.H;
  float *maps = malloc(nm * 4), *stats = malloc(ns * 4), *imp = malloc(ni * 4);
  int nex = (int)(b->ds->shards[0].B < b->cap ? b->ds->shards[0].B : b->cap);
  nex = nex < 8 ? nex : 8;
  double weights = (double)b->lay.L * b->lay.H * (double)c->Tcap * c->Tcap * nex;
  if (weights > 4e8) /* the plain loops take ~10 ns a weight: a long example once */
    nex = 1;
  const am_cpu_kernels_t *fast = b->kernels;
  use_kernels(b, am_cpu_kernels_plain());
  am_status st = am_chunk_load(b->ctx, c, b->ds, 0, 0, nex);
  if (st == AM_STATUS_OK)
    st = am_chunk_compute(b->ctx, c, b->ds);
  if (st == AM_STATUS_OK) {
    memcpy(maps, c->maps, nm * 4);
    memcpy(stats, c->stats, ns * 4);
    memcpy(imp, c->importance, ni * 4);
  }
  use_kernels(b, fast);
  if (st == AM_STATUS_OK)
    st = am_chunk_compute(b->ctx, c, b->ds);
  double worst = -1;
  if (st == AM_STATUS_OK) {
    double e1 = worst_error(c->maps, maps, nm), e2 = worst_error(c->stats, stats, ns),
           e3 = worst_error(c->importance, imp, ni);
    worst = fmax(e1, fmax(e2, e3));
  }
  free(maps), free(stats), free(imp);
  return worst;
}

/* ---- set-up ------------------------------------------------------------------------ */

static am_status setup(bench_t *b, char **paths, int npaths) {
  am_ctx_options_t o = {.backend = "cpu", .threads = b->threads};
  char err[256];
  am_status st = am_ctx_create(&o, &b->ctx, err, sizeof err);
  if (st != AM_STATUS_OK) {
    fprintf(stderr, "bench_cpu: %s\n", err);
    return st;
  }
  b->threads = am_ctx_threads(b->ctx);
  use_kernels(b, am_cpu_kernels_for_this_cpu());
  am_plan_t plan;
  am_plan_init(&plan);
  if (b->methods)
    plan.methods = b->methods;
  st = am_dataset_open(b->ctx, (const char *const *)paths, npaths, &b->ds);
  if (st == AM_STATUS_OK)
    st = am_layout_build(b->ctx, b->ds, &plan, &b->lay);
  int64_t maxb = 1;
  for (int s = 0; st == AM_STATUS_OK && s < b->ds->nshards; s++)
    maxb = b->ds->shards[s].B > maxb ? b->ds->shards[s].B : maxb;
  b->cap = (int)(maxb < 1024 ? maxb : 1024);
  if (st == AM_STATUS_OK)
    st = am_chunk_alloc(b->ctx, &b->chunk, &b->lay, b->cap, b->ds->Tmax);
  if (st != AM_STATUS_OK) {
    fprintf(stderr, "bench_cpu: %s\n", am_last_error(b->ctx));
    return st;
  }
  /* bytes the pass reads: valid rows x valid keys of attentions (and gradients) */
  size_t es = am_dtype_size(b->ds->dtype);
  unsigned reads_grad =
      AM_PASS_GRAD_ROLLOUT | AM_PASS_GRAD_ROLLOUT_ROWS | AM_PASS_HEAD_IMPORTANCE;
  int sets = b->lay.pass.want & reads_grad ? 2 : 1;
  b->limit = b->limit > 0 && b->limit < b->ds->N ? b->limit : b->ds->N;
  int64_t counted = 0;
  for (int s = 0; s < b->ds->nshards; s++) {
    am_shard_t *sh = &b->ds->shards[s];
    int32_t *idx = malloc((size_t)sh->T * sizeof *idx);
    for (int64_t r = 0; r < sh->B && counted++ < b->limit; r++) {
      double n = am_shard_valid_positions(sh, r, idx);
      b->bytes += (double)sets * b->lay.L * b->lay.H * n * n * (double)es;
    }
    free(idx);
  }
  return AM_STATUS_OK;
}

static void usage(void) {
  fprintf(stderr, "usage: bench_cpu DATASET... [--threads K] [--repeats R] "
                  "[--simd auto|portable] [--examples N] [--methods LIST]\n");
}

/* The bits of a comma list of `attnmap analyze --methods` names, read through the
 * library's option table (am_settings_set); 0 on an unknown name. */
static unsigned parse_methods(const char *list) {
  am_settings_t set;
  am_settings_init(&set);
  char err[512];
  if (am_settings_set(&set, "methods", list, err, sizeof err) != AM_STATUS_OK) {
    fprintf(stderr, "bench_cpu: --%s\n", err);
    return 0;
  }
  return set.plan.methods;
}

int main(int argc, char **argv) {
  bench_t b = {.repeats = 5};
  int portable = 0, c;
  static const struct option opts[] = {{"threads", 1, 0, 't'}, {"repeats", 1, 0, 'r'},
                                       {"simd", 1, 0, 's'},    {"examples", 1, 0, 'n'},
                                       {"methods", 1, 0, 'm'}, {0, 0, 0, 0}};
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (c == 't')
      b.threads = atoi(optarg);
    else if (c == 'r')
      b.repeats = atoi(optarg);
    else if (c == 's')
      portable = !strcmp(optarg, "portable");
    else if (c == 'n')
      b.limit = atoll(optarg);
    else if (c == 'm') {
      if (!(b.methods = parse_methods(optarg)))
        return usage(), 2;
    } else
      return usage(), 2;
  }
  if (optind >= argc || b.repeats < 1 || b.threads < 0)
    return usage(), 2;
  if (setup(&b, argv + optind, argc - optind) != AM_STATUS_OK)
    return 1;
  am_dataset_info_t info;
  am_dataset_get_info(b.ds, &info);
  double check = check_against_plain(&b);
  if (portable)
    use_kernels(&b, am_cpu_kernels_plain());
  printf("device: %s, %d threads, sweep %s\n", am_ctx_device_name(b.ctx), b.threads,
         b.kernels->name);
  printf("dataset: %lld examples, L=%d H=%d T=%d %s, %.1f MB of valid attention%s read\n",
         (long long)b.limit, info.layers, info.heads, info.max_tokens,
         am_dtype_name(info.dtype), b.bytes / 1e6,
         b.lay.pass.want & (AM_PASS_GRAD_ROLLOUT | AM_PASS_HEAD_IMPORTANCE) ? " + gradients"
                                                                            : "");
  printf("check against the plain loops: worst error / (1e-6 + 1e-5 |ref|) = %.3g: %s\n",
         check, check >= 0 && check <= 1 ? "ok" : "FAILED");
  double u_pass, u_comp, u_ent, N = (double)b.limit;
  double t_pass = timed(&b, PASS, &u_pass), t_comp = timed(&b, COMPUTE, &u_comp);
  double t_ent = timed(&b, ENTROPY, &u_ent);
  double bw = read_bandwidth((size_t)512 << 20, b.threads, 5), t_mem = b.bytes / (bw * 1e9);
  double t_floor = fmax(t_mem, t_ent);
  printf("pass         %8.4f s  %8.1f examples/s  %6.2f GB/s  (CPU use %.0f%%)\n", t_pass,
         N / t_pass, b.bytes / t_pass / 1e9, 100 * u_pass);
  printf("pass+sal+agr %8.4f s  %8.1f examples/s  (CPU use %.0f%%)\n", t_comp, N / t_comp,
         100 * u_comp);
  printf("floor: memory read %.4f s (%.2f GB/s), entropy loop %.4f s (CPU use %.0f%%): "
         "pass at %.0f%% of the slower\n",
         t_mem, bw, t_ent, 100 * u_ent, 100 * t_floor / t_pass);
  printf("RESULT examples=%lld pass_s=%.6f compute_s=%.6f mem_floor_s=%.6f "
         "entropy_floor_s=%.6f read_gbs=%.3f bytes=%.0f check=%.4g threads=%d util=%.3f "
         "simd=%s\n",
         (long long)b.limit, t_pass, t_comp, t_mem, t_ent, bw, b.bytes, check, b.threads,
         u_pass, b.kernels->name);
  am_chunk_free(&b.chunk);
  am_dataset_close(b.ds);
  am_ctx_destroy(b.ctx);
  return check >= 0 && check <= 1 ? 0 : 1;
}
