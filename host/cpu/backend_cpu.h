/* backend_cpu.h — what the CPU backend offers beyond its table (ops/backend.h), for the
 * tests and benchmarks that compare its two kernel sets on one context. */
#ifndef AM_CPU_BACKEND_CPU_H
#define AM_CPU_BACKEND_CPU_H

#include "cpu/row_sweep.h"

/* The kernels the passes of this CPU backend state run with from now on (not while a pass
 * runs); state: a cpu context's backend state. */
void am_cpu_backend_use_kernels(void *state, const am_cpu_kernels_t *kernels);

#endif
