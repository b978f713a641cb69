/* saliency.c — token saliency of one example from its input embeddings and their
 * gradients (DESIGN §3): grad_l2 = ||g_i||_2 (inseq's default aggregation of gradient
 * attributions), grad_x_input = sum_d g_id x_id (Captum InputXGradient, summed over the
 * embedding dimension) and abs_grad_x_input = |sum_d g_id x_id|. Sums in double. */
#include <math.h>

#include "core/half.h"
#include "cpu/example_pass.h"

void am_cpu_saliency(const void *emb, am_dtype emb_dtype, const void *grad,
                     am_dtype grad_dtype, int D, const int32_t *idx, int n, float *grad_l2,
                     float *grad_x_input, float *abs_grad_x_input) {
  for (int i = 0; i < n; i++) {
    int64_t first = (int64_t)idx[i] * D; /* row idx[i] of [T,D] */
    double gg = 0.0, gx = 0.0;
    for (int d = 0; d < D; d++) {
      double g = am_load_float(grad, grad_dtype, first + d);
      double x = am_load_float(emb, emb_dtype, first + d);
      gg += g * g;
      gx += g * x;
    }
    if (grad_l2)
      grad_l2[i] = (float)sqrt(gg);
    if (grad_x_input)
      grad_x_input[i] = (float)gx;
    if (abs_grad_x_input)
      abs_grad_x_input[i] = (float)fabs(gx);
  }
}
