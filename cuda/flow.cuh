/* flow.cuh — attention flow on the device (cuda/flow.cu): many independent maximum-flow
 * problems, one per (example, source row, block of sinks), solved in parallel, for the
 * CUDA backend's `flow` op (host/ops/backend.h).
 *
 * Wiring into the backend (cuda/backend_cuda.cu, not done here): its `flow` op gets the
 * chunk's examples (am_example_t, attention already on the device when
 * opt->device_pointers, else staged there), fills an am_cuda_flow_batch_t with device
 * arrays of the layer pointers and the valid positions, host arrays of n and target, and
 * a device output of nex·T floats, calls am_cuda_flow on its stream, and copies example
 * e's n values from out + e·T to the chunk's map. The values agree with the CPU
 * reference (am_cpu_flow) within 1e-12 absolute before the cast to float. C and C++
 * callers alike (tests/test_flow_cuda.c calls it from C). */
#ifndef AM_CUDA_FLOW_CUH
#define AM_CUDA_FLOW_CUH

#ifndef AM_CUDA_EMU /* the emulator includes its own stand-ins first */
#include <cuda_runtime.h>
#endif
#include <stddef.h>
#include <stdint.h>

#include "attnmap.h"

typedef struct am_cuda_flow_batch {
  int nex;        /* examples */
  int L, H, T;    /* layers, heads, padded length of the attention blocks */
  am_dtype dtype; /* F32, F16, BF16 or F64 */
  const void *const
      *att;           /* device [nex·L]: example e's [H,T,T] block of layer l at e·L+l */
  const int32_t *idx; /* device [nex·T]: example e's valid positions from e·T */
  const int *n;       /* host [nex]: valid tokens (0..T) */
  const int *target;  /* host [nex]: a valid-token index, or -1 (AM_ROW_MEAN) */
  am_fusion fusion;   /* head fusion, as rollout */
  double discard;     /* discard ratio in [0,1), as rollout */
  float *out;         /* device [nex·T]: example e's flow in valid-token order at e·T */
} am_cuda_flow_batch_t;

/* Computes b->out on `stream` and waits for it. Device memory for the capacities, the raw
 * flows and the solvers' workspaces is allocated and freed inside (stream-ordered).
 * AM_STATUS_INVALID_ARGUMENT for a bad batch, AM_STATUS_OUT_OF_MEMORY, AM_STATUS_DEVICE
 * with the CUDA error in err (errlen bytes) otherwise. Examples with n = 0 are left
 * untouched. */
#ifdef __cplusplus
extern "C" {
#endif
am_status am_cuda_flow(const am_cuda_flow_batch_t *b, cudaStream_t stream, char *err,
                       size_t errlen);
#ifdef __cplusplus
}
#endif

#endif
