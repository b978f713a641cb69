/* row_sweep.c — the CPU backend's two kernel sets (row_sweep.h): the AVX2 + FMA + F16C
 * sweeps where the CPU and the OS support those instructions, and none (the plain loops of
 * pass_plain.c). Which one a pass uses is the context's choice, not this file's. */
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "cpu/row_sweep.h"

int am_cpu_simd_supported(void) {
#if defined(__x86_64__) && defined(__GNUC__)
  /* F16C through cpuid: clang 14's __builtin_cpu_supports does not know "f16c" */
  unsigned a, b, c, d;
  int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
#else
  return 0;
#endif
}

static const am_cpu_kernels_t plain = {"portable", NULL, NULL, NULL};
#if defined(__x86_64__) && defined(__GNUC__)
static const am_cpu_kernels_t avx2 = {"avx2+fma+f16c", am_row_sweep_avx2,
                                      am_head_sweep_avx2, am_layer_sweep_avx2};
#endif

const am_cpu_kernels_t *am_cpu_kernels_plain(void) { return &plain; }

const am_cpu_kernels_t *am_cpu_kernels_for_this_cpu(void) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (am_cpu_simd_supported())
    return &avx2;
#endif
  return &plain;
}
