/* bench_steps.c — several targets on the CPU (docs/generation.md): one pass that asks for
 * ATTENTION_LAST_STEPS, ROLLOUT_STEPS and GRAD_ROLLOUT_STEPS for S steps against S
 * single-target passes (ATTENTION_LAST, ROLLOUT, GRAD_ROLLOUT, target steps[s]), which
 * is what a backend without the step rows costs (the pipeline's fall-back). One example
 * made here as the parity suites make theirs: L layers of H heads over n tokens, the
 * last S tokens the steps (as a generated continuation). The rows are checked to be
 * the single passes' bits once, then each form is warmed up and timed (median of
 * --repeats), one thread. Bytes: the valid attention and gradient bytes one pass reads,
 * L H n^2 (1 + 1) x the dtype's size (with --per-step, S more gradients).
 *   usage: bench_steps [--L 12] [--H 12] [--n 256] [--S 32] [--dtype f16|bf16|f32]
 *                      [--simd auto|portable] [--per-step] [--repeats 5]
 * Last line: RESULT key=value ... */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/example_pass.h"
#include "cpu/row_sweep.h"
#include "support/parity.h"

/* The thread's CPU time: the machine this ran on is shared, and one thread's CPU time is
 * what the pass costs whatever else runs (wall time is printed beside it). */
static double now(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef struct bench {
  am_example_t ex;
  const am_cpu_kernels_t *kernels;
  float *steps_out[3], *single_out[3]; /* [S,n] each: attention_last, rollout, grad */
} bench_t;

/* The S-row pass. */
static void pass_steps(bench_t *b) {
  am_pass_options_t opt = {.want = AM_PASS_ATTENTION_LAST_STEPS | AM_PASS_ROLLOUT_STEPS |
                                   AM_PASS_GRAD_ROLLOUT_STEPS,
                           .fusion = AM_FUSION_MEAN};
  am_pass_output_t out = {.attention_last_steps = b->steps_out[0],
                          .rollout_steps = b->steps_out[1],
                          .grad_rollout_steps = b->steps_out[2]};
  am_cpu_scratch_t scratch = {.kernels = b->kernels};
  if (am_cpu_example_pass(&b->ex, &opt, &out, &scratch, NULL) != AM_STATUS_OK) {
    fprintf(stderr, "bench_steps: the steps pass failed\n");
    exit(1);
  }
  am_cpu_scratch_free(&scratch);
}

/* S single-target passes, each with its step's gradient (--per-step) or the one. */
static void pass_singles(bench_t *b) {
  am_pass_options_t opt = {.want = AM_PASS_ATTENTION_LAST | AM_PASS_ROLLOUT |
                                   AM_PASS_GRAD_ROLLOUT,
                           .fusion = AM_FUSION_MEAN};
  am_cpu_scratch_t scratch = {.kernels = b->kernels};
  const am_example_t *ex = &b->ex;
  const void *grad[64];
  size_t block = (size_t)ex->H * ex->T * ex->T * am_dtype_size(ex->dtype);
  for (int s = 0; s < ex->nsteps; s++) {
    am_example_t one = *ex;
    one.target = ex->steps[s];
    one.nsteps = 0;
    one.steps = NULL;
    one.step_grad = NULL;
    if (ex->step_grad) {
      for (int l = 0; l < ex->L; l++)
        grad[l] = (const unsigned char *)ex->step_grad[l] + (size_t)s * block;
      one.grad = grad;
    }
    size_t r = (size_t)s * ex->n;
    am_pass_output_t out = {.attention_last = b->single_out[0] + r,
                            .rollout = b->single_out[1] + r,
                            .grad_rollout = b->single_out[2] + r};
    if (am_cpu_example_pass(&one, &opt, &out, &scratch, NULL) != AM_STATUS_OK) {
      fprintf(stderr, "bench_steps: a single pass failed\n");
      exit(1);
    }
  }
  am_cpu_scratch_free(&scratch);
}

/* Median CPU time (and median wall time in *wall) of fn over repeats, after a warm-up. */
static double time_median(bench_t *b, void (*fn)(bench_t *), int repeats, double *wall) {
  double t[64], w[64];
  fn(b);
  for (int k = 0; k < repeats; k++) {
    double c0 = now(CLOCK_THREAD_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC);
    fn(b);
    t[k] = now(CLOCK_THREAD_CPUTIME_ID) - c0;
    w[k] = now(CLOCK_MONOTONIC) - w0;
  }
  qsort(t, (size_t)repeats, sizeof *t, cmp_double);
  qsort(w, (size_t)repeats, sizeof *w, cmp_double);
  *wall = w[repeats / 2];
  return t[repeats / 2];
}

int main(int argc, char **argv) {
  int L = 12, H = 12, n = 256, S = 32, repeats = 5, per_step = 0, portable = 0;
  am_dtype dt = AM_DTYPE_F16;
  static const struct option opts[] = {
      {"L", 1, 0, 'L'},        {"H", 1, 0, 'H'},       {"n", 1, 0, 'n'},
      {"S", 1, 0, 'S'},        {"dtype", 1, 0, 'd'},   {"simd", 1, 0, 'm'},
      {"per-step", 0, 0, 'p'}, {"repeats", 1, 0, 'r'}, {0, 0, 0, 0}};
  for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
    if (c == 'L')
      L = atoi(optarg);
    else if (c == 'H')
      H = atoi(optarg);
    else if (c == 'n')
      n = atoi(optarg);
    else if (c == 'S')
      S = atoi(optarg);
    else if (c == 'd')
      dt = !strcmp(optarg, "f32")
               ? AM_DTYPE_F32
               : (!strcmp(optarg, "bf16") ? AM_DTYPE_BF16 : AM_DTYPE_F16);
    else if (c == 'm')
      portable = !strcmp(optarg, "portable");
    else if (c == 'p')
      per_step = 1;
    else if (c == 'r')
      repeats = atoi(optarg);
    else
      return 2;
  }
  if (L < 1 || L > 64 || H < 1 || n < 1 || S < 1 || S > n || repeats < 1 || repeats > 64) {
    fprintf(stderr, "bench_steps: bad sizes (L <= 64, S <= n, repeats <= 64)\n");
    return 2;
  }
  /* the parity suites' example: softmax rows, flat to peaky heads, gradients of either
   * sign (tests/support/parity.c) */
  size_t es = am_dtype_size(dt), hb = (size_t)n * n, layer = (size_t)H * hb * es;
  par_case_t pc = {.name = "bench_steps",
                   .L = L,
                   .H = H,
                   .T = n,
                   .nex = 1,
                   .dtype = dt,
                   .grads = 1,
                   .lengths = &n,
                   .want = 0,
                   .seed = 7};
  par_data_t *d = par_make(&pc);
  unsigned char *sgrad = per_step ? malloc((size_t)L * S * layer) : NULL;
  int32_t *steps = malloc((size_t)S * sizeof *steps);
  const void **sgradp = malloc((size_t)L * sizeof *sgradp);
  if (!d || (per_step && !sgrad) || !steps || !sgradp) {
    fprintf(stderr, "bench_steps: out of memory\n");
    return 1;
  }
  uint64_t rng = 8;
  for (size_t k = 0; per_step && k < (size_t)L * S * H * hb; k++)
    par_store_value(sgrad + k * es, dt, (float)(par_uniform(&rng) - 0.5));
  for (int l = 0; l < L; l++)
    sgradp[l] = per_step ? sgrad + (size_t)l * S * layer : NULL;
  for (int s = 0; s < S; s++)
    steps[s] = n - S + s; /* the last S tokens, as a generated continuation */
  bench_t b = {.ex = d->ex[0],
               .kernels =
                   portable ? am_cpu_kernels_plain() : am_cpu_kernels_for_this_cpu()};
  b.ex.nsteps = S;
  b.ex.steps = steps;
  b.ex.step_grad = per_step ? sgradp : NULL;
  for (int k = 0; k < 3; k++) {
    b.steps_out[k] = calloc((size_t)S * n, sizeof(float));
    b.single_out[k] = calloc((size_t)S * n, sizeof(float));
  }
  pass_steps(&b);
  pass_singles(&b);
  for (int k = 0; k < 3; k++)
    if (memcmp(b.steps_out[k], b.single_out[k], (size_t)S * n * sizeof(float)) != 0) {
      fprintf(stderr, "bench_steps: output %d differs from the single-target passes\n", k);
      return 1;
    }
  double w_steps, w_single;
  double t_steps = time_median(&b, pass_steps, repeats, &w_steps);
  double t_single = time_median(&b, pass_singles, repeats, &w_single);
  double bytes = 2.0 * L * H * (double)hb * (double)es;
  double bytes_steps = bytes + (per_step ? (double)S * L * H * hb * es : 0.0);
  printf(
      "L=%d H=%d n=%d S=%d %s %s, gradients %s: rows equal the single passes bit for bit\n",
      L, H, n, S, am_dtype_name(dt), b.kernels->name, per_step ? "per step" : "shared");
  printf(
      "S-row pass:       %9.2f ms CPU (wall %.2f; %.2f GB/s of attention and gradients)\n",
      1e3 * t_steps, 1e3 * w_steps, bytes_steps / t_steps / 1e9);
  printf("%3d single passes: %9.2f ms CPU (wall %.2f; %.2f ms each)\n", S, 1e3 * t_single,
         1e3 * w_single, 1e3 * t_single / S);
  printf("RESULT steps_ms=%.3f singles_ms=%.3f speedup=%.2f\n", 1e3 * t_steps,
         1e3 * t_single, t_single / t_steps);
  for (int k = 0; k < 3; k++)
    free(b.steps_out[k]), free(b.single_out[k]);
  par_free(d);
  free(sgrad), free(steps), free(sgradp);
  return 0;
}
