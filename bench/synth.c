/* synth.c — writes synthetic attnmap datasets of any shape (docs/design.md §2) with the
 * structure
 * real models show: a sink on the first token, a diagonal band, a few sharp heads, random
 * right or left padding; masked softmax rows; attention gradients, embeddings and their
 * gradients, precomputed saliency, input ids with [CLS]/[SEP], labels and predictions.
 * Used for the bundled example dataset, the benchmarks and the tests. */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attnmap.h"
#include "core/half.h"

typedef struct synth_opts {
  int examples, layers, heads, tokens, shards, embed_dim, min_tokens, classes;
  am_dtype dtype;
  int grads, left_pad; /* left_pad: 0 right, 1 left, 2 either side at random per example */
  uint64_t seed;
  const char *out;
} synth_opts_t;

static uint64_t rng_state;
static double uniform(void) { /* splitmix64 */
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}
static double normal(void) {
  double u = uniform() + 1e-300, v = uniform();
  return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static void store(void *dst, am_dtype dtype, size_t i, float v) {
  if (dtype == AM_DTYPE_F32)
    memcpy((char *)dst + 4 * i, &v, 4);
  else {
    uint16_t h = dtype == AM_DTYPE_F16 ? am_f32_to_f16(v) : am_f32_to_bf16(v);
    memcpy((char *)dst + 2 * i, &h, 2);
  }
}

/* One head's [T,T] attention over the valid span [s, s+n): softmax of structured logits. */
static void head_rows(float *a, int T, int s, int n, int layer, int head) {
  double sink = 2.0 + 0.3 * layer, band = (head % 3 == 0) ? 3.0 : 0.5;
  double temp = (head % 4 == 1) ? 6.0 : 1.0; /* a few sharp heads */
  memset(a, 0, (size_t)T * (size_t)T * sizeof *a);
  for (int i = 0; i < n; i++) {
    double logit[4096], mx = -1e300, sum = 0;
    for (int j = 0; j < n; j++) {
      double d = fabs((double)(i - j));
      logit[j] = temp * (normal() * 0.8 + (j == 0 ? sink : 0.0) + band * exp(-d));
      mx = logit[j] > mx ? logit[j] : mx;
    }
    for (int j = 0; j < n; j++)
      sum += (logit[j] = exp(logit[j] - mx));
    for (int j = 0; j < n; j++)
      a[(size_t)(s + i) * T + (size_t)(s + j)] = (float)(logit[j] / sum);
  }
}

static int write_shard(const synth_opts_t *o, int shard, int B, const char *path) {
  int L = o->layers, H = o->heads, T = o->tokens, D = o->embed_dim;
  size_t es = am_dtype_size(o->dtype), per = (size_t)H * T * T;
  size_t att_n = (size_t)L * B * per;
  void *att = calloc(att_n, es), *grad = o->grads ? calloc(att_n, es) : NULL;
  int64_t *mask = calloc((size_t)B * T, 8), *special = calloc((size_t)B * T, 8);
  int64_t *ids = calloc((size_t)B * T, 8), *labels = calloc((size_t)B, 8),
          *preds = calloc((size_t)B, 8);
  float *sal = calloc((size_t)B * T, 4), *emb = calloc((size_t)B * T * D, 4),
        *egrad = calloc((size_t)B * T * D, 4), *head = malloc(per / H * sizeof(float));
  int rc = 1;
  if (!att || (o->grads && !grad) || !mask || !special || !ids || !labels || !preds ||
      !sal || !emb || !egrad || !head)
    goto done;
  for (int b = 0; b < B; b++) {
    int n = o->min_tokens + (int)(uniform() * (T - o->min_tokens + 1));
    n = n > T ? T : n;
    int left = o->left_pad == 2 ? uniform() < 0.5 : o->left_pad;
    int s = left ? T - n : 0;
    for (int p = s; p < s + n; p++) {
      mask[(size_t)b * T + p] = 1;
      ids[(size_t)b * T + p] =
          p == s ? 101 : (p == s + n - 1 ? 102 : 1000 + (int)(uniform() * 500));
      special[(size_t)b * T + p] = (p == s || p == s + n - 1);
      sal[(size_t)b * T + p] = (float)normal();
      for (int d = 0; d < D; d++) {
        emb[((size_t)b * T + p) * D + d] = (float)normal();
        egrad[((size_t)b * T + p) * D + d] = (float)(0.1 * normal());
      }
    }
    labels[b] = (int64_t)(uniform() * o->classes);
    preds[b] = uniform() < 0.8 ? labels[b] : (labels[b] + 1) % o->classes;
    for (int l = 0; l < L; l++)
      for (int h = 0; h < H; h++) {
        head_rows(head, T, s, n, l, h);
        size_t base = (((size_t)l * B + b) * H + h) * (size_t)T * T;
        for (size_t k = 0; k < (size_t)T * T; k++) {
          store(att, o->dtype, base + k, head[k]);
          if (grad)
            store(grad, o->dtype, base + k, head[k] > 0 ? (float)(0.05 * normal()) : 0.0f);
        }
      }
  }
  am_named_tensor_t t[12];
  int nt = 0;
#define ADD(nm, dt, data_, nd, ...)                                                        \
  do {                                                                                     \
    int64_t sh_[] = {__VA_ARGS__};                                                         \
    t[nt].name = nm;                                                                       \
    t[nt].tensor = (am_tensor_t){.dtype = dt, .ndim = nd, .data = data_};                  \
    memcpy(t[nt].tensor.shape, sh_, sizeof sh_);                                           \
    size_t c_ = am_dtype_size(dt);                                                         \
    for (int d_ = 0; d_ < nd; d_++)                                                        \
      c_ *= (size_t)sh_[d_];                                                               \
    t[nt].tensor.nbytes = c_;                                                              \
    nt++;                                                                                  \
  } while (0)
  ADD("attentions", o->dtype, att, 5, L, B, H, T, T);
  if (grad)
    ADD("attention_grads", o->dtype, grad, 5, L, B, H, T, T);
  ADD("attention_mask", AM_DTYPE_I64, mask, 2, B, T);
  ADD("special_tokens_mask", AM_DTYPE_I64, special, 2, B, T);
  ADD("input_ids", AM_DTYPE_I64, ids, 2, B, T);
  ADD("saliency.ig", AM_DTYPE_F32, sal, 2, B, T);
  if (D > 0) {
    ADD("inputs_embeds", AM_DTYPE_F32, emb, 3, B, T, D);
    ADD("inputs_embeds_grads", AM_DTYPE_F32, egrad, 3, B, T, D);
  }
  ADD("labels", AM_DTYPE_I64, labels, 1, B);
  ADD("predictions", AM_DTYPE_I64, preds, 1, B);
  const char *meta[] = {"model", "synthetic (bench/synth)"};
  char err[512];
  am_ctx_t *ctx = NULL;
  if (am_ctx_create(NULL, &ctx, err, sizeof err) == AM_STATUS_OK) {
    rc = am_safetensors_write(ctx, path, t, nt, meta, 1) == AM_STATUS_OK ? 0 : 1;
    if (rc)
      fprintf(stderr, "synth: %s\n", am_last_error(ctx));
    am_ctx_destroy(ctx);
  }
  (void)shard;
done:
  free(att), free(grad), free(mask), free(special), free(ids), free(labels), free(preds);
  free(sal), free(emb), free(egrad), free(head);
  return rc;
}

static void usage(void) {
  fprintf(
      stderr,
      "usage: synth -o DIR [--examples N] [--layers L] [--heads H] [--tokens T]\n"
      "  [--min-tokens N] [--shards S] [--dtype f32|f16|bf16] [--embed-dim D]\n"
      "  [--no-grads] [--left-pad | --pad right|left|mixed] [--classes C] [--seed S]\n");
}

int main(int argc, char **argv) {
  synth_opts_t o = {.examples = 64,
                    .layers = 4,
                    .heads = 4,
                    .tokens = 24,
                    .shards = 1,
                    .embed_dim = 8,
                    .min_tokens = 4,
                    .classes = 2,
                    .dtype = AM_DTYPE_F16,
                    .grads = 1,
                    .seed = 1};
  static const struct option opts[] = {
      {"examples", 1, 0, 'n'}, {"layers", 1, 0, 'L'},     {"heads", 1, 0, 'H'},
      {"tokens", 1, 0, 'T'},   {"min-tokens", 1, 0, 'm'}, {"shards", 1, 0, 's'},
      {"dtype", 1, 0, 'd'},    {"embed-dim", 1, 0, 'D'},  {"no-grads", 0, 0, 'g'},
      {"left-pad", 0, 0, 'l'}, {"pad", 1, 0, 'p'},        {"classes", 1, 0, 'c'},
      {"seed", 1, 0, 'S'},     {"output", 1, 0, 'o'},     {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
    switch (c) {
    case 'n':
      o.examples = atoi(optarg);
      break;
    case 'L':
      o.layers = atoi(optarg);
      break;
    case 'H':
      o.heads = atoi(optarg);
      break;
    case 'T':
      o.tokens = atoi(optarg);
      break;
    case 'm':
      o.min_tokens = atoi(optarg);
      break;
    case 's':
      o.shards = atoi(optarg);
      break;
    case 'D':
      o.embed_dim = atoi(optarg);
      break;
    case 'g':
      o.grads = 0;
      break;
    case 'l':
      o.left_pad = 1;
      break;
    case 'p':
      o.left_pad = !strcmp(optarg, "mixed") ? 2 : !strcmp(optarg, "left");
      break;
    case 'c':
      o.classes = atoi(optarg);
      break;
    case 'S':
      o.seed = strtoull(optarg, NULL, 10);
      break;
    case 'o':
      o.out = optarg;
      break;
    case 'd':
      o.dtype = !strcmp(optarg, "f32")    ? AM_DTYPE_F32
                : !strcmp(optarg, "bf16") ? AM_DTYPE_BF16
                                          : AM_DTYPE_F16;
      break;
    default:
      usage();
      return 2;
    }
  }
  if (!o.out || o.examples < 1 || o.layers < 1 || o.heads < 1 || o.tokens < 1 ||
      o.tokens > 4096 || o.shards < 1 || o.min_tokens < 1 || o.classes < 1 ||
      o.embed_dim < 0) {
    usage();
    return 2;
  }
  rng_state = o.seed;
  mkdir(o.out, 0777);
  for (int s = 0; s < o.shards; s++) {
    int B = o.examples / o.shards + (s < o.examples % o.shards);
    char path[4096];
    snprintf(path, sizeof path, "%s/shard-%05d.safetensors", o.out, s);
    if (B > 0 && write_shard(&o, s, B, path) != 0)
      return 1;
  }
  return 0;
}
