/* saliency.c — token saliency of one example from its input embeddings and their
 * gradients (docs/design.md §3): grad_l2 = ||g_i||_2 (inseq's default aggregation of
 * gradient
 * attributions), grad_x_input = sum_d g_id x_id (Captum InputXGradient, summed over the
 * embedding dimension) and abs_grad_x_input = |sum_d g_id x_id|. Sums in double, as four
 * partial sums over d mod 4 combined in a fixed order (one chain of dependent additions
 * would cost 4 cycles per element: D = 768 and 512 tokens make 1.5 ms an example). */
#include <math.h>
#include <string.h>

#include "core/half.h"
#include "cpu/example_pass.h"

/* sum_d g_d^2 and sum_d g_d x_d over one token's D elements starting at element first. */
static void token_sums(const void *emb, am_dtype emb_dtype, const void *grad,
                       am_dtype grad_dtype, int D, int64_t first, double *gg, double *gx) {
  double sg[4] = {0}, sx[4] = {0};
  if (emb_dtype == AM_DTYPE_F32 && grad_dtype == AM_DTYPE_F32) {
    float x[4], g[4];
    const unsigned char *pe = (const unsigned char *)emb + 4 * first,
                        *pg = (const unsigned char *)grad + 4 * first;
    int d = 0;
    for (; d + 4 <= D; d += 4) {
      memcpy(x, pe + 4 * d, sizeof x); /* rows may be unaligned */
      memcpy(g, pg + 4 * d, sizeof g);
      for (int k = 0; k < 4; k++) {
        sg[k] += (double)g[k] * g[k];
        sx[k] += (double)g[k] * x[k];
      }
    }
    for (; d < D; d++) {
      memcpy(x, pe + 4 * d, 4);
      memcpy(g, pg + 4 * d, 4);
      sg[0] += (double)g[0] * g[0];
      sx[0] += (double)g[0] * x[0];
    }
  } else {
    for (int d = 0; d < D; d++) {
      double g = am_load_float(grad, grad_dtype, first + d);
      double x = am_load_float(emb, emb_dtype, first + d);
      sg[d & 3] += g * g;
      sx[d & 3] += g * x;
    }
  }
  *gg = (sg[0] + sg[1]) + (sg[2] + sg[3]);
  *gx = (sx[0] + sx[1]) + (sx[2] + sx[3]);
}

void am_cpu_saliency(const void *emb, am_dtype emb_dtype, const void *grad,
                     am_dtype grad_dtype, int D, const int32_t *idx, int n, float *grad_l2,
                     float *grad_x_input, float *abs_grad_x_input) {
  for (int i = 0; i < n; i++) {
    double gg, gx;
    token_sums(emb, emb_dtype, grad, grad_dtype, D, (int64_t)idx[i] * D, &gg, &gx);
    if (grad_l2)
      grad_l2[i] = (float)sqrt(gg);
    if (grad_x_input)
      grad_x_input[i] = (float)gx;
    if (abs_grad_x_input)
      abs_grad_x_input[i] = (float)fabs(gx);
  }
}
