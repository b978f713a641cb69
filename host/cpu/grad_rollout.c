/* grad_rollout.c — one layer of gradient-weighted rollout (Chefer, Gur, Wolf 2021,
 * "Generic Attention-model Explainability for Interpreting Bi-Modal and Encoder-Decoder
 * Transformers"; code: hila-chefer/Transformer-MM-Explainability, avg_heads and
 * apply_self_attention_rules): A-_l = mean_h max(0, G_l (.) A_l) (clamp per head, then
 * the mean), R = I, R <- R + A-_l R bottom-up, so R = (I + A-_{L-1}) ... (I + A-_0);
 * no normalisation. In row form a layer is v <- v + v A-_l. */
#include <stddef.h>

#include "cpu/rollout.h"

void am_grad_rollout_row(const float *a, const float *g, int n, double vi, double *u,
                         float *abar_row) {
  /* branch-free clamps: the sign of g is random, so a branch on it would mispredict */
  if (u && vi != 0.0)
    for (int j = 0; j < n; j++) {
      double t = (double)g[j] * (double)a[j];
      u[j] += vi * (t > 0.0 ? t : 0.0);
    }
  if (abar_row)
    for (int j = 0; j < n; j++) {
      float t = g[j] * a[j];
      abar_row[j] += t > 0.0f ? t : 0.0f;
    }
}

void am_grad_rollout_step(double *v, double *u, int n, int H) {
  for (int j = 0; j < n; j++) {
    v[j] += u[j] / H;
    u[j] = 0.0;
  }
}

void am_grad_rollout_hat(float *abar, int n, int H) {
  size_t nn = (size_t)n * n;
  for (size_t p = 0; p < nn; p++)
    abar[p] /= (float)H;
  for (int i = 0; i < n; i++)
    abar[(size_t)i * n + i] += 1.0f;
}
