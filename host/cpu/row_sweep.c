/* row_sweep.c — chooses the row sweep of the CPU backend at run time (row_sweep.h): the
 * AVX2 + FMA + F16C sweep where the CPU and the OS support those instructions, else none
 * (the plain loops of example_pass.c). The choice is made once and is the same for every
 * thread, so results do not depend on the thread count. */
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <stdatomic.h>

#include "cpu/row_sweep.h"

/* -2: not decided yet; 0: plain; 1: AVX2 */
static atomic_int chosen = -2;

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

static int decide(void) {
  int level = atomic_load_explicit(&chosen, memory_order_relaxed);
  if (level == -2) {
    level = am_cpu_simd_supported();
    atomic_store_explicit(&chosen, level, memory_order_relaxed);
  }
  return level;
}

am_row_sweep_fn am_cpu_row_sweep(void) {
#if defined(__x86_64__) && defined(__GNUC__)
  return decide() == 1 ? am_row_sweep_avx2 : NULL;
#else
  return NULL;
#endif
}

am_head_sweep_fn am_cpu_head_sweep(void) {
#if defined(__x86_64__) && defined(__GNUC__)
  return decide() == 1 ? am_head_sweep_avx2 : NULL;
#else
  return NULL;
#endif
}

am_layer_sweep_fn am_cpu_layer_sweep(void) {
#if defined(__x86_64__) && defined(__GNUC__)
  return decide() == 1 ? am_layer_sweep_avx2 : NULL;
#else
  return NULL;
#endif
}

void am_cpu_simd_force(int level) {
  int v = level < 0 ? -2 : (level > 0 && am_cpu_simd_supported() ? 1 : 0);
  atomic_store_explicit(&chosen, v, memory_order_relaxed);
}

const char *am_cpu_simd_name(void) {
  return am_cpu_row_sweep() ? "avx2+fma+f16c" : "portable";
}
