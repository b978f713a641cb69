/* backends.c — the backends under test (backends.h). One entry a backend: its name, how
 * to make its contexts, its attnmap analyze spec. */
#include "support/backends.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/ctx.h"
#include "cpu/backend_cpu.h"

static am_ctx_t *make(const char *spec, char *why, size_t len) {
  am_ctx_options_t o = {.backend = spec, .threads = 2};
  am_ctx_t *c = NULL;
  if (am_ctx_create(&o, &c, why, len) != AM_STATUS_OK)
    return NULL;
  return c;
}

am_ctx_t *par_reference(void) {
  char why[512] = "";
  am_ctx_t *c = make("cpu", why, sizeof why);
  if (c)
    am_cpu_backend_use_kernels(c->backend_state, am_cpu_kernels_plain());
  return c;
}

/* The CPU backend with the x86 sweeps (row_sweep.h), where this CPU has them. */
static am_ctx_t *open_cpu_sweeps(par_variant v, char *why, size_t len) {
  if (v != PAR_PLAIN) {
    snprintf(why, len, "the CPU backend has no devices, slabs or device memory");
    return NULL;
  }
  const am_cpu_kernels_t *k = am_cpu_kernels_for_this_cpu();
  if (k == am_cpu_kernels_plain()) {
    snprintf(why, len, "this CPU or build has no x86 sweeps (AVX2 + FMA + F16C)");
    return NULL;
  }
  am_ctx_t *c = make("cpu", why, len);
  if (c)
    am_cpu_backend_use_kernels(c->backend_state, k);
  return c;
}

/* The CUDA backend: a GPU, or the CPU emulator's build (tests/cuda_emu); its slabs and
 * memory bounds are set through its environment variables (docs/cuda.md). */
static am_ctx_t *open_cuda(par_variant v, char *why, size_t len) {
  if (v == PAR_SMALL_WORK)
    setenv("AM_CUDA_SLAB_MB", "1", 1);
  if (v == PAR_TIGHT_MEMORY) { /* slabs of 4 MiB whose allocations fail above 2.5 MiB */
    setenv("AM_CUDA_SLAB_MB", "4", 1);
    setenv("AM_CUDA_FAIL_ALLOC_ABOVE", "2621440", 1);
  }
  if (v == PAR_ALL_DEVICES)
    setenv("AM_CUDA_SLAB_MB", "1", 1); /* several slabs, spread over the devices */
  am_ctx_t *c = make(v == PAR_ALL_DEVICES ? "cuda:all" : "cuda", why, len);
  unsetenv("AM_CUDA_SLAB_MB");
  unsetenv("AM_CUDA_FAIL_ALLOC_ABOVE");
  return c;
}

par_backend_t par_backends[] = {
    {.name = "cpu_x86_sweeps", .open = open_cpu_sweeps, .cli_spec = "cpu"},
    {.name = "cuda", .open = open_cuda, .cli_spec = "cuda:all"},
};
const size_t par_backend_count = sizeof par_backends / sizeof par_backends[0];
int par_backend_ids[] = {0, 1, 2, 3, 4, 5, 6, 7}; /* more entries: more numbers */
_Static_assert(sizeof par_backends / sizeof par_backends[0] <=
                   sizeof par_backend_ids / sizeof par_backend_ids[0],
               "par_backend_ids: a number for every entry of par_backends");

am_ctx_t *par_backend_open(const par_backend_t *be, par_variant v) {
  char why[512] = "";
  am_ctx_t *c = be->open(v, why, sizeof why);
  if (!c)
    cr_skip_test("%s: not available here: %s", be->name, why);
  return c;
}
