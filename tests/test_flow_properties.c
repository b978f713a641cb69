/* test_flow_properties.c — properties of attention flow that hold whatever the inputs
 * (host/cpu/flow.h, host/cpu/maxflow.h), on seeded random attention of up to 12 layers and
 * 70 tokens:
 *  - every solve ends with a valid preflow whose sink excess equals the capacity of an
 *    s-t cut found here, independently of the solver (max-flow min-cut: the value is the
 *    maximum), for cold and warm starts alike;
 *  - each flow is at most the capacity into its input node and at most the capacity out
 *    of the source (1), and at least rollout's value (rollout's flow is a feasible flow);
 *    with one layer the flow is exactly Â[t, j];
 *  - where every layer's attention is the identity, all flow goes to the target token;
 *  - results do not depend on thread count, padding side or data alignment (same bits),
 *    neither in the library nor through the CLI. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnmap.h"
#include "cpu/flow.h"
#include "cpu/maxflow.h"
#include "support/dataset_builder.h"
#include "support/run_cli.h"

static uint64_t next_u64(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* [L,H,n,n] softmax rows of logits uniform in [0, sharp). */
static float *random_attention(int L, int H, int n, uint64_t seed, double sharp) {
  float *att = malloc((size_t)L * H * n * n * sizeof *att);
  double e[128];
  for (size_t row = 0; row < (size_t)L * H * n; row++) {
    double sum = 0.0;
    for (int j = 0; j < n; j++) {
      e[j] = exp(sharp * (double)(next_u64(&seed) >> 11) / 9007199254740992.0);
      sum += e[j];
    }
    for (int j = 0; j < n; j++)
      att[row * n + j] = (float)(e[j] / sum);
  }
  return att;
}

typedef struct graph {
  int L, n;
  float *cap; /* [L,n,n] then capt [L,n,n] */
  const void *att[16];
  int32_t idx[128];
  am_example_t ex;
} graph_t;

/* Unpadded F32 example of att [L,H,n,n] and the capacities of its flow graph. */
static void make_graph(graph_t *g, const float *att, int L, int H, int n, int target,
                       const am_pass_options_t *opt) {
  size_t nn = (size_t)n * n;
  g->L = L;
  g->n = n;
  for (int l = 0; l < L; l++)
    g->att[l] = att + (size_t)l * H * nn;
  for (int j = 0; j < n; j++)
    g->idx[j] = j;
  g->ex = (am_example_t){.L = L,
                         .H = H,
                         .T = n,
                         .n = n,
                         .dtype = AM_DTYPE_F32,
                         .att = g->att,
                         .idx = g->idx,
                         .target = target};
  g->cap = malloc(2 * (size_t)L * nn * sizeof *g->cap);
  float row[128];
  am_cpu_flow_capacities(&g->ex, opt, g->cap, g->cap + L * nn, row);
}

/* ---- an independent certificate ---------------------------------------------------- */

/* Checks that m holds a valid preflow (capacities, transposed copy, excesses), finds the
 * nodes that reach the sink in its residual graph by a fixpoint (not the solver's search)
 * and returns the capacity of the cut into them. */
static double certified_cut(const am_maxflow_t *m) {
  int L = m->L, n = m->n, N = L * n, s = m->source;
  size_t nn = (size_t)n * n;
  for (size_t k = 0; k < (size_t)L * nn; k++) {
    size_t b = k / nn, i = k % nn / n, j = k % n;
    cr_assert(m->flow[k] >= 0.0 && m->flow[k] <= m->cap[k] + 1e-15, "flow %zu: %g > %g", k,
              m->flow[k], m->cap[k]);
    cr_assert_eq(m->flowt[b * nn + j * n + i], m->flow[k], "flowt is not flow transposed");
    if (b == (size_t)L - 1 && (int)i != s)
      cr_assert_eq(m->flow[k], 0.0, "flow out of a top node that is not the source");
  }
  for (int v = 0; v < N; v++) { /* excess = inflow - outflow >= 0 */
    int l = v / n, i = v % n;
    double in = 0.0, out = 0.0;
    for (int k = 0; k < n; k++)
      in += m->flow[(size_t)l * nn + (size_t)k * n + i];
    for (int j = 0; l > 0 && j < n; j++)
      out += m->flow[(size_t)(l - 1) * nn + (size_t)i * n + j];
    cr_assert(fabs(in - out - m->excess[v]) <= 1e-12,
              "node %d: excess %.17g, in - out %.17g", v, m->excess[v], in - out);
    cr_assert(m->excess[v] >= 0.0, "node %d holds a deficit", v);
  }
  char *reach = calloc((size_t)N, 1);
  reach[m->sink] = 1;
  for (int reached = 1, before = 0; reached != before;) { /* until a sweep adds none */
    before = reached;
    for (int v = 0; v < N; v++) {
      if (reach[v])
        continue;
      int l = v / n, i = v % n, r = 0;
      for (int j = 0; !r && l > 0 && j < n; j++) { /* down arcs */
        size_t o = (size_t)(l - 1) * nn + (size_t)i * n + j;
        r = reach[(l - 1) * n + j] && (double)m->cap[o] - m->flow[o] > 0;
      }
      for (int k = 0; !r && l < L - 1 && k < n; k++) /* up arcs: cancel inflow */
        r = reach[(l + 1) * n + k] && m->flow[(size_t)l * nn + (size_t)k * n + i] > 0;
      if (r) {
        reach[v] = 1;
        reached++;
      }
    }
  }
  double cut = 0.0;
  const float *src = m->cap + (size_t)(L - 1) * nn + (size_t)s * n;
  for (int j = 0; j < n; j++) {
    if (reach[(L - 1) * n + j]) {
      cr_assert_eq((double)src[j], m->flow[(size_t)(L - 1) * nn + (size_t)s * n + j],
                   "the source reaches the sink");
      cut += src[j];
    }
  }
  for (int l = 1; l < L; l++)
    for (int i = 0; i < n; i++)
      for (int j = 0; !reach[l * n + i] && j < n; j++)
        if (reach[(l - 1) * n + j])
          cut += m->cap[(size_t)(l - 1) * nn + (size_t)i * n + j];
  free(reach);
  return cut;
}

/* Row s of rollout from the same capacities, in double: e_s^T Â_{L-1} ... Â_0. */
static void rollout_row(const graph_t *g, int s, double *v) {
  int n = g->n;
  size_t nn = (size_t)n * n;
  double w[128];
  for (int j = 0; j < n; j++)
    v[j] = j == s;
  for (int l = g->L - 1; l >= 0; l--) {
    for (int j = 0; j < n; j++)
      w[j] = 0.0;
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++)
        w[j] += v[i] * g->cap[(size_t)l * nn + (size_t)i * n + j];
    memcpy(v, w, (size_t)n * sizeof *v);
  }
}

typedef struct shape {
  int L, H, n;
  double sharp, discard;
  am_fusion fusion;
} shape_t;

static const shape_t shapes[] = {
    {1, 1, 1, 1.0, 0.0, AM_FUSION_MEAN},    {1, 2, 6, 3.0, 0.0, AM_FUSION_MEAN},
    {2, 2, 5, 6.0, 0.0, AM_FUSION_MAX},     {3, 3, 17, 4.0, 0.5, AM_FUSION_MEAN},
    {6, 2, 33, 8.0, 0.0, AM_FUSION_MIN},    {12, 2, 40, 5.0, 0.3, AM_FUSION_MEAN},
    {12, 1, 24, 12.0, 0.0, AM_FUSION_MEAN},
};
#define NSHAPES ((int)(sizeof shapes / sizeof shapes[0]))

static void check_source(const graph_t *g, int src, int shape) {
  int L = g->L, n = g->n;
  size_t nn = (size_t)n * n;
  void *mem = malloc(am_maxflow_bytes(L, n));
  am_maxflow_t m;
  am_maxflow_init(&m, L, n, g->cap, g->cap + L * nn, mem);
  am_maxflow_start(&m, src);
  double roll[128], out_cap = 0.0;
  rollout_row(g, src, roll);
  for (int j = 0; j < n; j++)
    out_cap += g->cap[(size_t)(L - 1) * nn + (size_t)src * n + j];
  cr_expect(out_cap <= 1.0 + 1e-6, "shape %d: source capacity %.17g", shape, out_cap);
  for (int j = 0; j < n; j++) {
    double v = am_maxflow_solve(&m, j), in_cap = 0.0;
    for (int i = 0; i < n; i++)
      in_cap += g->cap[(size_t)i * n + j];
    double cut = certified_cut(&m);
    cr_expect(fabs(v - cut) <= 1e-12, "shape %d src %d sink %d: flow %.17g, cut %.17g",
              shape, src, j, v, cut);
    cr_expect(
        v <= in_cap + 1e-12 && v <= out_cap + 1e-12,
        "shape %d src %d sink %d: flow %.17g above the capacities in %.17g, out %.17g",
        shape, src, j, v, in_cap, out_cap);
    cr_expect(v >= roll[j] - 1e-12,
              "shape %d src %d sink %d: flow %.17g below rollout %.17g", shape, src, j, v,
              roll[j]);
    if (L == 1)
      cr_expect(fabs(v - g->cap[(size_t)src * n + j]) <= 1e-15, "one layer: flow = Â[t,j]");
  }
  free(mem);
}

Test(flow_properties, every_value_is_a_certified_maximum_within_the_bounds) {
  for (int k = 0; k < NSHAPES; k++) {
    const shape_t *sh = &shapes[k];
    float *att = random_attention(sh->L, sh->H, sh->n, 100 + k, sh->sharp);
    am_pass_options_t opt = {.fusion = sh->fusion, .discard = sh->discard};
    graph_t g;
    make_graph(&g, att, sh->L, sh->H, sh->n, 0, &opt);
    int sources[3] = {0, sh->n / 2, sh->n - 1};
    for (int s = 0; s < 3; s++)
      check_source(&g, sources[s], k);
    free(g.cap);
    free(att);
  }
}

Test(flow_properties, warm_starts_give_the_values_of_cold_starts) {
  for (int k = 3; k < NSHAPES; k++) {
    const shape_t *sh = &shapes[k];
    int L = sh->L, n = sh->n;
    float *att = random_attention(L, sh->H, n, 200 + k, sh->sharp);
    am_pass_options_t opt = {.fusion = sh->fusion, .discard = sh->discard};
    graph_t g;
    make_graph(&g, att, L, sh->H, n, 0, &opt);
    void *mem = malloc(am_maxflow_bytes(L, n));
    am_maxflow_t m;
    am_maxflow_init(&m, L, n, g.cap, g.cap + (size_t)L * n * n, mem);
    double cold[128], fwd[128], back[128];
    for (int j = 0; j < n; j++) {
      am_maxflow_start(&m, 1);
      cold[j] = am_maxflow_solve(&m, j);
    }
    am_maxflow_start(&m, 1);
    for (int j = 0; j < n; j++)
      fwd[j] = am_maxflow_solve(&m, j);
    am_maxflow_start(&m, 1);
    for (int j = n - 1; j >= 0; j--)
      back[j] = am_maxflow_solve(&m, j);
    for (int j = 0; j < n; j++)
      cr_expect(fabs(fwd[j] - cold[j]) <= 1e-12 && fabs(back[j] - cold[j]) <= 1e-12,
                "shape %d sink %d: cold %.17g, warm %.17g, reversed %.17g", k, j, cold[j],
                fwd[j], back[j]);
    free(mem);
    free(g.cap);
    free(att);
  }
}

Test(flow_properties, identity_attention_sends_all_flow_to_the_target) {
  enum { L = 4, H = 2, n = 9 };
  float *att = calloc((size_t)L * H * n * n, sizeof *att);
  for (int lh = 0; lh < L * H; lh++)
    for (int i = 0; i < n; i++)
      att[((size_t)lh * n + i) * n + i] = 1.0f;
  am_pass_options_t opt = {0};
  graph_t g;
  make_graph(&g, att, L, H, n, 0, &opt);
  int targets[4] = {0, 4, n - 1, AM_ROW_MEAN};
  am_cpu_scratch_t scratch = {0};
  for (int t = 0; t < 4; t++) {
    float out[n];
    g.ex.target = targets[t];
    cr_assert_eq(am_cpu_flow(&g.ex, &opt, out, &scratch), AM_STATUS_OK);
    for (int j = 0; j < n; j++) {
      float want = targets[t] == AM_ROW_MEAN ? 1.0f / n : (float)(j == targets[t]);
      cr_expect(fabsf(out[j] - want) <= 1e-7f, "target %d token %d: %g", targets[t], j,
                out[j]);
    }
  }
  am_cpu_scratch_free(&scratch);
  free(g.cap);
  free(att);
}

/* am_cpu_flow on ex in an OpenMP team of `threads` (its tasks spread over the team). */
static void flow_in_team(const am_example_t *ex, int threads, float *out) {
  am_pass_options_t opt = {.discard = 0.1};
  am_status st = AM_STATUS_INTERNAL;
  am_cpu_scratch_t scratch = {0};
#pragma omp parallel num_threads(threads)
#pragma omp single
  st = am_cpu_flow(ex, &opt, out, &scratch);
  am_cpu_scratch_free(&scratch);
  cr_assert_eq(st, AM_STATUS_OK, "%d threads", threads);
}

Test(flow_properties, thread_count_does_not_change_a_bit) {
  static const int sizes[2][3] = {{3, 70, 0}, {2, 20, AM_ROW_MEAN}}; /* L, n, target */
  for (int c = 0; c < 2; c++) {
    int L = sizes[c][0], n = sizes[c][1];
    float *att = random_attention(L, 2, n, 300 + c, 6.0);
    am_pass_options_t opt = {0};
    graph_t g;
    make_graph(&g, att, L, 2, n, sizes[c][2], &opt);
    float one[70], many[70];
    flow_in_team(&g.ex, 1, one);
    for (int threads = 2; threads <= 5; threads++) {
      flow_in_team(&g.ex, threads, many);
      cr_expect(!memcmp(one, many, (size_t)n * sizeof *one), "L=%d n=%d: %d threads differ",
                L, n, threads);
    }
    free(g.cap);
    free(att);
  }
}

Test(flow_properties, padding_side_and_alignment_do_not_change_a_bit) {
  enum { L = 5, H = 3, n = 21, pad = 6, T = n + pad };
  float *att = random_attention(L, H, n, 400, 7.0);
  am_pass_options_t opt = {.fusion = AM_FUSION_MAX, .discard = 0.2};
  float ref[n], got[n];
  graph_t g;
  make_graph(&g, att, L, H, n, 3, &opt);
  am_cpu_scratch_t scratch = {0};
  cr_assert_eq(am_cpu_flow(&g.ex, &opt, ref, &scratch), AM_STATUS_OK);
  for (int start = 0; start <= pad; start += pad) { /* right padding, then left */
    size_t block = (size_t)H * T * T;
    unsigned char *buf = malloc(L * block * sizeof(float) + 3);
    float *padded = malloc(L * block * sizeof *padded);
    for (size_t k = 0; k < L * block; k++)
      padded[k] = NAN;
    const void *ptrs[L];
    int32_t idx[n];
    for (int l = 0; l < L; l++)
      for (int h = 0; h < H; h++)
        for (int i = 0; i < n; i++)
          for (int j = 0; j < n; j++)
            padded[l * block + ((size_t)h * T + start + i) * T + start + j] =
                att[(((size_t)l * H + h) * n + i) * n + j];
    memcpy(buf + 3, padded, L * block * sizeof *padded); /* 3 bytes off alignment */
    for (int l = 0; l < L; l++)
      ptrs[l] = buf + 3 + l * block * sizeof(float);
    for (int j = 0; j < n; j++)
      idx[j] = start + j;
    am_example_t ex = g.ex;
    ex.T = T;
    ex.att = ptrs;
    ex.idx = idx;
    cr_assert_eq(am_cpu_flow(&ex, &opt, got, &scratch), AM_STATUS_OK);
    cr_expect(!memcmp(ref, got, sizeof ref), "padding starting at %d changes the flow",
              start);
    free(padded);
    free(buf);
  }
  am_cpu_scratch_free(&scratch);
  free(g.cap);
  free(att);
}

Test(flow_properties, degenerate_and_invalid_inputs) {
  float att[3 * 2 * 1 * 1] = {1, 1, 1, 1, 1, 1}, out[2] = {-1.0f, -2.0f};
  graph_t g;
  am_pass_options_t opt = {0};
  make_graph(&g, att, 3, 2, 1, 0, &opt);
  am_cpu_scratch_t scratch = {0};
  cr_assert_eq(am_cpu_flow(&g.ex, &opt, out, &scratch), AM_STATUS_OK);
  cr_expect_eq(out[0], 1.0f, "one token takes all the flow");
  cr_expect_eq(out[1], -2.0f, "written past n");
  g.ex.n = 0; /* a fully masked example: out untouched */
  out[0] = -1.0f;
  cr_assert_eq(am_cpu_flow(&g.ex, &opt, out, &scratch), AM_STATUS_OK);
  cr_expect_eq(out[0], -1.0f);
  g.ex.n = 1;
  g.ex.target = 1;
  cr_expect_eq(am_cpu_flow(&g.ex, &opt, out, &scratch), AM_STATUS_INVALID_ARGUMENT);
  g.ex.target = 0;
  opt.discard = 1.0;
  cr_expect_eq(am_cpu_flow(&g.ex, &opt, out, &scratch), AM_STATUS_INVALID_ARGUMENT);
  opt.discard = 0.0;
  cr_expect_eq(am_cpu_flow(&g.ex, &opt, NULL, &scratch), AM_STATUS_INVALID_ARGUMENT);
  cr_expect_eq(am_cpu_flow(&g.ex, &opt, out, NULL), AM_STATUS_INVALID_ARGUMENT);
  am_cpu_scratch_free(&scratch);
  free(g.cap);
}

/* ---- through the CLI --------------------------------------------------------------- */

static char work[128];
static void setup(void) { cr_assert_eq(dsb_tempdir(work, sizeof work, "flowp"), 0); }
static void teardown(void) { dsb_rmtree(work); }
TestSuite(flow_cli, .init = setup, .fini = teardown, .timeout = 120);

/* The flow map of `ds_name` analysed with `threads`, at the valid positions, in rows of
 * `n` per example (lengths from the mask), into got[b * 16 + j]. */
static void flow_map(const dsb_spec_t *spec, const char *tag, const char *threads,
                     float *got) {
  char ds[512], run[512], file[600], name[64];
  snprintf(name, sizeof name, "%s.safetensors", tag);
  dsb_join(ds, sizeof ds, work, name);
  dsb_join(run, sizeof run, work, tag);
  cr_assert_eq(dsb_make(spec, ds), 0);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", ds, "-o", run, "--methods", "flow", "--threads",
                       threads, "--chunk", "2", "--quiet", NULL),
               0);
  cr_assert_eq(r.exit_code, 0, "%s: %s", tag, r.err);
  cli_result_free(&r);
  am_ctx_t *ctx = NULL;
  am_file_t *f = NULL;
  cr_assert_eq(am_ctx_create(NULL, &ctx, NULL, 0), AM_STATUS_OK);
  cr_assert_eq(
      am_file_open(ctx, dsb_join(file, sizeof file, run, "examples.safetensors"), &f),
      AM_STATUS_OK);
  const am_tensor_t *flow = am_file_find(f, "flow"), *mask = am_file_find(f, "mask");
  cr_assert(flow && mask);
  const unsigned char *m = mask->data;
  for (int b = 0; b < spec->B; b++)
    for (int t = 0, j = 0; t < spec->T; t++)
      if (m[(size_t)b * spec->T + t])
        memcpy(&got[b * 16 + j++], (const char *)flow->data + 4 * ((size_t)b * spec->T + t),
               4);
  am_file_close(f);
  am_ctx_destroy(ctx);
}

Test(flow_cli, threads_and_padding_side_do_not_change_a_bit) {
  static const int lens[5] = {10, 3, 8, 1, 10};
  dsb_spec_t right = {.L = 3, .H = 2, .B = 5, .T = 10, .lengths = lens, .seed = 21};
  dsb_spec_t left = right;
  left.T = 14;
  left.left_pad = 1;
  float a[5 * 16] = {0}, b[5 * 16] = {0}, c[5 * 16] = {0};
  flow_map(&right, "right1", "1", a);
  flow_map(&right, "right2", "2", b);
  flow_map(&left, "left2", "2", c);
  cr_expect(!memcmp(a, b, sizeof a), "thread count changes the flow map");
  cr_expect(!memcmp(a, c, sizeof a), "padding side changes the flow map");
}
