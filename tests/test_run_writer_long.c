/* test_run_writer_long.c — the live run writer in the long-context form (am_arrays_t
 * .queries; docs/live-runs.md, docs/long-context.md): batches of queries, keys, values and
 * attention_output_grads of differing B and T (GQA, causal with a sliding window and a
 * soft-cap, F16 / BF16 / F32, padding on both sides) give the run that `analyze` writes
 * over the same batches stored as long-form shards, byte for byte; a writer aborted after
 * two batches resumes to the same bytes; a batch of the other form, of other KV heads or
 * attention settings, or with bad shapes or settings, is one line naming batch and
 * tensor. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "support/dataset_builder.h"
#include "support/live_batches.h"
#include "support/long_dataset.h"

static char dir[128], shards[256], ref[256], run[256];
static am_ctx_t *ctx;

static void setup(void) {
  cr_assert_eq(dsb_tempdir(dir, sizeof dir, "livelong"), 0);
  dsb_join(shards, sizeof shards, dir, "shards");
  dsb_join(ref, sizeof ref, dir, "ref");
  dsb_join(run, sizeof run, dir, "run");
  cr_assert_eq(mkdir(shards, 0777), 0);
  am_ctx_options_t o = {.backend = "cpu", .threads = 2};
  cr_assert_eq(am_ctx_create(&o, &ctx, NULL, 0), AM_STATUS_OK);
}

static void teardown(void) {
  am_ctx_destroy(ctx);
  dsb_rmtree(dir);
}

TestSuite(run_writer_long, .init = setup, .fini = teardown, .timeout = 300);

#define NB 4
static const int Bs[NB] = {3, 1, 4, 2}, Ts[NB] = {37, 70, 9, 131};

/* One batch: its shard file, mapped, and the am_arrays_t over its tensors. */
typedef struct batch {
  am_file_t *f;
  const void *p[4][8];
  am_arrays_t in;
} batch_t;

static const char *const ROLES[4] = {"queries", "keys", "values", "attention_output_grads"};

static void open_batch(batch_t *b, const char *path, const lc_case_t *c) {
  memset(b, 0, sizeof *b);
  cr_assert_eq(am_file_open(ctx, path, &b->f), AM_STATUS_OK, "%s", am_last_error(ctx));
  for (int r = 0; r < 4; r++)
    for (int l = 0; l < c->L; l++) {
      char name[64];
      snprintf(name, sizeof name, "%s.%d", ROLES[r], l);
      const am_tensor_t *t = am_file_find(b->f, name);
      cr_assert(t, "%s: %s", path, name);
      b->p[r][l] = t->data;
    }
  const am_tensor_t *q = am_file_find(b->f, "queries.0");
  b->in = (am_arrays_t){.layers = c->L,
                        .batch = (int)q->shape[0],
                        .heads = c->H,
                        .tokens = (int)q->shape[2],
                        .dtype = c->dtype,
                        .attention_mask = am_file_find(b->f, "attention_mask")->data,
                        .attention_mask_dtype = AM_DTYPE_I64,
                        .kv_heads = c->Hkv,
                        .head_dim = c->d,
                        .queries = b->p[0],
                        .keys = b->p[1],
                        .values = b->p[2],
                        .attention_output_grads = b->p[3],
                        .attn_scale = c->attn.scale,
                        .attn_causal = c->attn.causal,
                        .attn_sliding_window = c->attn.sliding_window,
                        .attn_softcap = c->attn.softcap};
}

/* The NB batches of c as shards (the reference run made from them) and opened. */
static void make_batches(const lc_case_t *c, batch_t *b, int64_t *N, int *T) {
  *N = 0;
  *T = 0;
  for (int i = 0; i < NB; i++) {
    char name[64], path[512];
    lc_case_t one = *c;
    one.T = Ts[i];
    one.seed = c->seed + (uint64_t)i;
    snprintf(name, sizeof name, "shard-%04d.safetensors", i);
    dsb_join(path, sizeof path, shards, name);
    cr_assert_eq(lcd_write(&one, Bs[i], 1, path, NULL), 0);
    open_batch(&b[i], path, &one);
    *N += Bs[i];
    *T = Ts[i] > *T ? Ts[i] : *T;
  }
  am_plan_t plan;
  am_plan_init(&plan);
  cr_assert_eq(lb_analyze(ctx, shards, &plan, ref), AM_STATUS_OK, "%s", am_last_error(ctx));
}

static void close_batches(batch_t *b) {
  for (int i = 0; i < NB; i++)
    am_file_close(b[i].f);
}

static am_run_writer_t *open_run(int64_t N, int T, int resume, int64_t *from) {
  am_plan_t plan;
  am_plan_init(&plan);
  am_run_options_t opts;
  am_run_options_init(&opts);
  opts.resume = resume;
  opts.checkpoint_s = 0;
  am_stream_info_t info = {.examples = N, .max_tokens = T};
  am_run_writer_t *w = NULL;
  cr_assert_eq(am_run_writer_open(ctx, run, &plan, &opts, &info, &w, from), AM_STATUS_OK,
               "%s", am_last_error(ctx));
  return w;
}

static void expect_same(const char *what) {
  char why[512] = "";
  cr_expect(lb_same_runs(ref, run, why, sizeof why), "%s: %s", what, why);
}

static const lc_case_t cases[] = {
    {.L = 2, .H = 4, .Hkv = 2, .d = 16, .attn = {0.25, 1, 24, 0}, .dtype = AM_DTYPE_F16,
     .seed = 5},
    {.L = 3, .H = 2, .Hkv = 1, .d = 8, .attn = {0.3, 1, 0, 20.0}, .dtype = AM_DTYPE_BF16,
     .seed = 9},
    {.L = 1, .H = 3, .Hkv = 3, .d = 4, .attn = {0.5, 0, 0, 0}, .dtype = AM_DTYPE_F32,
     .seed = 13},
};

Test(run_writer_long, identical_to_analyze_over_the_batches_as_shards) {
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    batch_t b[NB];
    int64_t N, from = -1;
    int T;
    make_batches(&cases[k], b, &N, &T);
    am_run_writer_t *w = open_run(N, T, 0, &from);
    for (int i = 0; i < NB; i++)
      cr_assert_eq(am_run_writer_add(w, &b[i].in, NULL), AM_STATUS_OK, "case %zu batch %d: %s",
                   k, i, am_last_error(ctx));
    cr_assert_eq(am_run_writer_close(w), AM_STATUS_OK, "%s", am_last_error(ctx));
    expect_same("whole run");
    /* aborted after two batches, then resumed: the same bytes */
    dsb_rmtree(run);
    w = open_run(N, T, 0, &from);
    for (int i = 0; i < 2; i++)
      cr_assert_eq(am_run_writer_add(w, &b[i].in, NULL), AM_STATUS_OK);
    am_run_writer_abort(w);
    w = open_run(N, T, 1, &from);
    cr_expect_eq(from, Bs[0] + Bs[1], "case %zu resumes from %lld", k, (long long)from);
    for (int i = 2; i < NB; i++)
      cr_assert_eq(am_run_writer_add(w, &b[i].in, NULL), AM_STATUS_OK, "%s",
                   am_last_error(ctx));
    cr_assert_eq(am_run_writer_close(w), AM_STATUS_OK, "%s", am_last_error(ctx));
    expect_same("resumed run");
    close_batches(b);
    dsb_rmtree(run);
    dsb_rmtree(ref);
    for (int i = 0; i < NB; i++) {
      char name[64], path[512];
      snprintf(name, sizeof name, "shard-%04d.safetensors", i);
      remove(dsb_join(path, sizeof path, shards, name));
    }
  }
}

/* Adds in as batch 1 after a sound batch 0 and expects a one-line failure holding want. */
static void refused(const batch_t *b0, const am_arrays_t *in, const char *want) {
  int64_t from = 0;
  am_run_writer_t *w = open_run(b0->in.batch + in->batch, 200, 0, &from);
  cr_assert_eq(am_run_writer_add(w, &b0->in, NULL), AM_STATUS_OK, "%s", am_last_error(ctx));
  cr_expect_neq(am_run_writer_add(w, in, NULL), AM_STATUS_OK, "accepted: %s", want);
  const char *msg = am_last_error(ctx);
  cr_expect(strstr(msg, want) && !strchr(msg, '\n'), "expected '%s' in: %s", want, msg);
  am_run_writer_abort(w);
  dsb_rmtree(run);
  char partial[300];
  snprintf(partial, sizeof partial, "%s.partial", run);
  dsb_rmtree(partial);
}

Test(run_writer_long, bad_batches_are_one_line_naming_batch_and_tensor) {
  batch_t b[NB];
  int64_t N;
  int T;
  make_batches(&cases[0], b, &N, &T);
  am_arrays_t x = b[1].in;
  x.kv_heads = 4;
  refused(&b[0], &x, "batch 1: tensor keys.0: 4 key/value heads of dimension 16, but the "
                     "run's first batch has 2 of 16");
  x = b[1].in;
  x.kv_heads = 3;
  refused(&b[0], &x, "batch 1: keys: 3 key/value heads do not divide the queries' 4 heads");
  x = b[1].in;
  x.attn_sliding_window = 0;
  refused(&b[0], &x, "batch 1: attnmap.attention: differs from the run's first batch's");
  x = b[1].in;
  x.attn_scale = -1;
  refused(&b[0], &x, "batch 1: attnmap.attention: scale -1");
  x = b[1].in;
  x.dtype = AM_DTYPE_F64;
  refused(&b[0], &x, "batch 1: queries: dtype F64, expected F32, F16 or BF16");
  x = b[1].in;
  x.values = NULL;
  refused(&b[0], &x, "batch 1: values missing");
  x = b[1].in;
  x.attention_output_grads = NULL;
  refused(&b[0], &x, "batch 1: tensor attention_grads: missing here but present");
  x = b[1].in;
  x.attentions = b[1].in.queries;
  refused(&b[0], &x, "batch 1: both attentions and queries given");
  x = b[1].in; /* the matrix form after the long-context form */
  x.queries = NULL;
  x.attentions = b[1].in.queries;
  x.attention_grads = NULL;
  x.dtype = AM_DTYPE_F16;
  refused(&b[0], &x, "batch 1: tensor attentions: this batch holds the matrix form but the "
                     "run's first batch the long-context form");
  close_batches(b);
}
