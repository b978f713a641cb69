/* backend_cpu.c — the CPU reference backend: OpenMP threads across the examples of a
 * batch, each running the per-example pass (example_pass.c, agreement.c) with the kernels
 * the context chose when it was created (row_sweep.h). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "cpu/agreement.h"
#include "cpu/backend_cpu.h"
#include "cpu/cross.h"
#include "cpu/flow.h"
#include "cpu/long_pass.h"
#include "cpu/row_sweep.h"
#include "ops/backend.h"

typedef struct cpu_state {
  int threads;
  const am_cpu_kernels_t *kernels; /* this context's: chosen at create */
} cpu_state_t;

void am_cpu_backend_use_kernels(void *state, const am_cpu_kernels_t *kernels) {
  ((cpu_state_t *)state)->kernels = kernels;
}

static void read_cpu_model(char *dst, size_t len) {
  snprintf(dst, len, "CPU");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f)
    return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "model name", 10) == 0) {
      char *colon = strchr(line, ':');
      if (colon) {
        colon++;
        while (*colon == ' ')
          colon++;
        colon[strcspn(colon, "\n")] = '\0';
        snprintf(dst, len, "%s", colon);
      }
      break;
    }
  }
  fclose(f);
}

static am_status cpu_create(am_ctx_t *ctx, const char *spec, void **state) {
  (void)spec;
  cpu_state_t *s = calloc(1, sizeof *s);
  if (!s)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  s->threads = ctx->threads;
  s->kernels = am_cpu_kernels_for_this_cpu();
  /* Parallelism is across examples (OpenMP); a BLAS call inside one example stays on its
   * thread instead of spawning more. */
  openblas_set_num_threads(1);
  read_cpu_model(ctx->device_name, sizeof ctx->device_name);
  *state = s;
  return AM_STATUS_OK;
}

static void cpu_destroy(void *state) { free(state); }

static am_status cpu_example_pass(void *state, const am_example_t *ex, int nex,
                                  const am_pass_options_t *opt, am_pass_output_t *out,
                                  am_fault_t *fault, int *fault_example) {
  cpu_state_t *s = state;
  int first_bad = nex;
  am_status bad_status = AM_STATUS_OK;
  am_fault_t bad_fault = {0};
#pragma omp parallel num_threads(s->threads)
  {
    am_cpu_scratch_t scratch = {.kernels = s->kernels};
#pragma omp for schedule(dynamic, 1)
    for (int e = 0; e < nex; e++) {
      am_fault_t f = {0};
      am_status st = am_cpu_example_pass(&ex[e], opt, &out[e], &scratch, &f);
      if (st != AM_STATUS_OK) {
#pragma omp critical(am_cpu_fault)
        if (e < first_bad) {
          first_bad = e;
          bad_status = st;
          bad_fault = f;
        }
      }
    }
    am_cpu_scratch_free(&scratch);
  }
  if (first_bad < nex) {
    *fault = bad_fault;
    *fault_example = first_bad;
    return bad_status;
  }
  return AM_STATUS_OK;
}

static am_status cpu_flow(void *state, const am_example_t *ex, int nex,
                          const am_pass_options_t *opt, float *const *out) {
  cpu_state_t *s = state;
  am_status st = AM_STATUS_OK;
#pragma omp parallel num_threads(s->threads)
  {
    am_cpu_scratch_t scratch = {0};
#pragma omp for schedule(dynamic, 1)
    for (int e = 0; e < nex; e++) {
      am_status one = am_cpu_flow(&ex[e], opt, out[e], &scratch);
      if (one != AM_STATUS_OK) {
#pragma omp critical(am_cpu_flow_status)
        st = one;
      }
    }
    am_cpu_scratch_free(&scratch);
  }
  return st;
}

static am_status cpu_agreement(void *state, const float *const *x, const float *const *y,
                               const int *m, int npairs, int k, double *out) {
  cpu_state_t *s = state;
  int maxm = 0;
  for (int p = 0; p < npairs; p++)
    if (m[p] > maxm)
      maxm = m[p];
  am_status st = AM_STATUS_OK;
#pragma omp parallel num_threads(s->threads) if (npairs > 64)
  {
    double *work = malloc(AM_AGREEMENT_WORK(maxm) * sizeof *work);
    if (!work) {
#pragma omp atomic write
      st = AM_STATUS_OUT_OF_MEMORY;
    } else {
#pragma omp for schedule(static)
      for (int p = 0; p < npairs; p++)
        am_cpu_agreement(x[p], y[p], m[p], k, work, out + (size_t)p * AM_METRIC_COUNT);
    }
    free(work);
  }
  return st;
}

static am_status cpu_saliency(void *state, int nex, int D, const void *const *emb,
                              am_dtype emb_dtype, const void *const *grad,
                              am_dtype grad_dtype, const int32_t *const *idx, const int *n,
                              float *const *out) {
  cpu_state_t *s = state;
#pragma omp parallel for num_threads(s->threads) schedule(dynamic, 1) if (nex > 1)
  for (int e = 0; e < nex; e++)
    am_cpu_saliency(emb[e], emb_dtype, grad[e], grad_dtype, D, idx[e], n[e], out[3 * e],
                    out[3 * e + 1], out[3 * e + 2]);
  return AM_STATUS_OK;
}

static am_status cpu_long_pass(void *state, const am_lc_example_t *ex, int nex,
                               const am_pass_options_t *opt, am_pass_output_t *out,
                               am_fault_t *fault, int *fault_example) {
  cpu_state_t *s = state;
  if (opt && (opt->want & am_pass_needing(AM_NEEDS_STEPS)))
    return AM_STATUS_UNSUPPORTED; /* the pipeline falls back to a pass per step */
  return am_cpu_lc_pass_with(s->kernels, ex, nex, opt, out, s->threads, fault,
                             fault_example);
}

static am_status cpu_cross(void *state, const am_cross_example_t *ex, int nex,
                           unsigned want, const am_pass_options_t *opt,
                           am_cross_output_t *out, am_cross_fault_t *fault,
                           int *fault_example) {
  return am_cpu_cross_batch(ex, nex, want, opt, out, fault, fault_example,
                            ((cpu_state_t *)state)->threads);
}

const am_backend_t am_backend_cpu = {
    .name = "cpu",
    .create = cpu_create,
    .destroy = cpu_destroy,
    .example_pass = cpu_example_pass,
    .flow = cpu_flow,
    .agreement = cpu_agreement,
    .saliency = cpu_saliency,
    .long_pass = cpu_long_pass,
    .cross = cpu_cross,
};
