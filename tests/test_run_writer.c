/* test_run_writer.c — the live run writer (am_run_writer_*, docs/live-runs.md) against
 * `analyze` over the same batches stored as shards: random batches of differing B and T,
 * with and without gradients, saliency, embeddings, labels, ids and tokens, give
 * byte-identical examples.safetensors and equal summary.json (apart from provenance); a
 * writer killed with SIGKILL and resumed gives the same bytes; a bad batch mid-stream is
 * a one-line error naming the batch and leaves the batches before it resumable; fewer or
 * more examples than declared are errors; nothing attnmap did not write is replaced; the
 * report and merge read live runs. Seeds are printed on failure. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/ctx.h"
#include "ops/backend.h"
#include "support/live_batches.h"

static char dir[128], shards[256], ref[256], run[256], partial[300];
static am_ctx_t *ctx;

static void setup(void) {
  cr_assert_eq(dsb_tempdir(dir, sizeof dir, "live"), 0);
  dsb_join(shards, sizeof shards, dir, "shards");
  dsb_join(ref, sizeof ref, dir, "ref");
  dsb_join(run, sizeof run, dir, "run");
  snprintf(partial, sizeof partial, "%s.partial", run);
  cr_assert_eq(mkdir(shards, 0777), 0);
  am_ctx_options_t o = {.backend = "cpu", .threads = 2};
  cr_assert_eq(am_ctx_create(&o, &ctx, NULL, 0), AM_STATUS_OK);
}

static void teardown(void) {
  am_ctx_destroy(ctx);
  dsb_rmtree(dir);
}

TestSuite(run_writer, .init = setup, .fini = teardown, .timeout = 300);

static const lb_config_t full = {.L = 2,
                                 .H = 2,
                                 .dtype = AM_DTYPE_F32,
                                 .grads = 1,
                                 .saliency = 1,
                                 .labels = 1,
                                 .special = 1,
                                 .tokens = 1,
                                 .model = "tiny-bert",
                                 .max_B = 5,
                                 .max_T = 12};

static unsigned seed_now(void) { return (unsigned)time(NULL) ^ (unsigned)getpid(); }

/* Opens a writer on run; *from = what it resumes from. */
static am_status open_writer(const lb_set_t *s, const am_plan_t *plan, int resume,
                             double checkpoint_s, am_run_writer_t **w, int64_t *from) {
  am_run_options_t opts;
  am_run_options_init(&opts);
  opts.resume = resume;
  opts.checkpoint_s = checkpoint_s;
  am_stream_info_t info = lb_info(s);
  return am_run_writer_open(ctx, run, plan, &opts, &info, w, from);
}

/* Adds batches [from, to) of s. */
static void add_range(am_run_writer_t *w, const lb_set_t *s, int from, int to,
                      unsigned seed) {
  for (int i = from; i < to; i++)
    cr_assert_eq(am_run_writer_add(w, &s->b[i].in, &s->b[i].extras), AM_STATUS_OK,
                 "seed %u batch %d: %s", seed, i, am_last_error(ctx));
}

/* The reference: analyze over the set's batches as shards. */
static void make_reference(const lb_set_t *s, const am_plan_t *plan, unsigned seed) {
  cr_assert_eq(lb_write_shards(s, shards), 0);
  cr_assert_eq(lb_analyze(ctx, shards, plan, ref), AM_STATUS_OK, "seed %u: %s", seed,
               am_last_error(ctx));
}

static void expect_same(const char *what, unsigned seed) {
  char why[512] = "";
  cr_expect(lb_same_runs(ref, run, why, sizeof why), "%s (seed %u): %s", what, seed, why);
}

/* The batch index whose examples start at `at`, or -1. */
static int batch_at(const lb_set_t *s, int64_t at) {
  for (int i = 0; i <= s->n; i++)
    if (lb_first(s, i) == at)
      return i;
  return -1;
}

Test(run_writer, identical_to_analyze_over_the_batches_as_shards) {
  const lb_config_t configs[] = {
      full,
      {.L = 3,
       .H = 2,
       .dtype = AM_DTYPE_F16,
       .grads = 1,
       .embed_dim = 4,
       .special = 1,
       .tokens = 1,
       .target = "last",
       .max_B = 4,
       .max_T = 9},
      {.L = 1, .H = 3, .dtype = AM_DTYPE_F32, .max_B = 6, .max_T = 7},
      {.L = 2,
       .H = 2,
       .dtype = AM_DTYPE_F32,
       .grads = 1,
       .labels = 1,
       .grid = "2x2+1",
       .fixed_T = 5,
       .max_B = 3,
       .max_T = 5},
  };
  unsigned seed = seed_now();
  for (int c = 0; c < 4; c++)
    for (int variant = 0; variant < 2; variant++) {
      lb_set_t s;
      cr_assert_eq(lb_make(&s, &configs[c], 6, seed + (unsigned)c), 0);
      am_plan_t plan;
      lb_plan(&s, &plan);
      if (variant == 1) { /* batches cut into chunks, and attention flow */
        plan.chunk = 2;
        plan.methods |= AM_METHOD_FLOW;
      }
      dsb_rmtree(shards);
      dsb_rmtree(ref);
      dsb_rmtree(run);
      mkdir(shards, 0777);
      make_reference(&s, &plan, seed);
      am_run_writer_t *w = NULL;
      int64_t from = -1;
      cr_assert_eq(open_writer(&s, &plan, 0, 2.0, &w, &from), AM_STATUS_OK, "%s",
                   am_last_error(ctx));
      cr_expect_eq(from, 0);
      add_range(w, &s, 0, s.n, seed);
      cr_assert_eq(am_run_writer_close(w), AM_STATUS_OK, "seed %u config %d: %s", seed, c,
                   am_last_error(ctx));
      char what[64];
      snprintf(what, sizeof what, "config %d variant %d", c, variant);
      expect_same(what, seed);
      cr_expect(!dsb_exists(partial), "%s: the partial folder is left", what);
      am_run_t *r = NULL;
      cr_expect_eq(am_run_open(ctx, run, &r), AM_STATUS_OK, "%s: %s", what,
                   am_last_error(ctx));
      am_run_close(r);
      lb_free(&s);
    }
}

/* The run folder of trial k. */
static void use_run(int k) {
  char name[32];
  snprintf(name, sizeof name, "run-%d", k);
  dsb_join(run, sizeof run, dir, name);
  snprintf(partial, sizeof partial, "%s.partial", run);
}

/* A child process writes batches [0, upto] with a checkpoint after each, then is killed
 * with SIGKILL. Forked before this process runs any analysis: an OpenMP runtime that ran
 * before a fork is not usable in the child. */
static void killed_after(const lb_set_t *s, const am_plan_t *plan, int upto) {
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    am_run_writer_t *w = NULL;
    int64_t from = 0;
    if (open_writer(s, plan, 0, 0.0, &w, &from) != AM_STATUS_OK)
      _exit(3);
    for (int i = 0; i <= upto; i++)
      if (am_run_writer_add(w, &s->b[i].in, &s->b[i].extras) != AM_STATUS_OK)
        _exit(4);
    kill(getpid(), SIGKILL);
    _exit(5);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);
}

Test(run_writer, killed_with_sigkill_then_resumed_gives_the_same_bytes) {
  unsigned seed = seed_now();
  lb_set_t s;
  cr_assert_eq(lb_make(&s, &full, 7, seed), 0);
  am_plan_t plan;
  lb_plan(&s, &plan);
  plan.chunk = 2;
  const int kills[] = {0, 3, 5};
  for (int k = 0; k < 3; k++) {
    use_run(k);
    killed_after(&s, &plan, kills[k]);
    cr_expect(!dsb_exists(run), "a killed live run left %s", run);
    cr_expect(dsb_exists(partial));
  }
  make_reference(&s, &plan, seed);
  for (int k = 0; k < 3; k++) {
    use_run(k);
    am_run_writer_t *w = NULL;
    int64_t from = -1;
    cr_assert_eq(open_writer(&s, &plan, 1, 2.0, &w, &from), AM_STATUS_OK, "%s",
                 am_last_error(ctx));
    cr_expect_eq(from, lb_first(&s, kills[k] + 1), "seed %u: resumes from %lld", seed,
                 (long long)from);
    add_range(w, &s, batch_at(&s, from), s.n, seed);
    cr_assert_eq(am_run_writer_close(w), AM_STATUS_OK, "%s", am_last_error(ctx));
    expect_same("killed and resumed", seed);
  }
  lb_free(&s);
}

/* Batch 3 made bad, checked, and made good again by `undo`. */
typedef struct bad_case {
  const char *name;
  const char *expect; /* in the message */
} bad_case_t;

static float *first_valid_cell(lb_batch_t *b) {
  int e = 0;
  while (b->ds->len[e] < 2 && e + 1 < b->ds->spec.B)
    e++;
  cr_assert(b->ds->len[e] >= 2, "batch 3 needs an example of two tokens");
  return dsb_att(b->ds, 1, e, 0, b->ds->start[e], b->ds->start[e]);
}

Test(run_writer, a_bad_batch_names_itself_and_keeps_the_batches_before_it) {
  unsigned seed = seed_now();
  const bad_case_t cases[] = {
      {"NaN", "not finite"}, {"row sum", "sum"}, {"layers", "2 layers"}};
  lb_config_t cfg = full;
  cfg.L = 3;
  for (int k = 0; k < 3; k++) {
    lb_set_t s;
    lb_config_t c = cfg;
    cr_assert_eq(lb_make(&s, &c, 6, seed + (unsigned)k), 0);
    for (int i = 0; i < s.n; i++) /* long enough examples for the row edits */
      cr_assert(s.b[i].ds->spec.T >= 2);
    am_plan_t plan;
    lb_plan(&s, &plan);
    dsb_rmtree(shards);
    dsb_rmtree(ref);
    dsb_rmtree(run);
    dsb_rmtree(partial);
    mkdir(shards, 0777);
    make_reference(&s, &plan, seed);
    lb_batch_t *bad = &s.b[3];
    float *cell = NULL, saved = 0;
    int valid = 0;
    for (int e = 0; e < bad->ds->spec.B; e++)
      valid |= bad->ds->len[e] >= 2;
    if (k < 2 && !valid) { /* no example to spoil: nothing to test with this seed */
      lb_free(&s);
      continue;
    }
    if (k < 2) {
      cell = first_valid_cell(bad);
      saved = *cell;
      *cell = k == 0 ? NAN : saved + 0.5f;
    } else {
      bad->in.layers = 2;
    }
    am_run_writer_t *w = NULL;
    int64_t from = -1;
    cr_assert_eq(open_writer(&s, &plan, 0, 2.0, &w, &from), AM_STATUS_OK);
    add_range(w, &s, 0, 3, seed);
    am_status st = am_run_writer_add(w, &bad->in, &bad->extras);
    const char *msg = am_last_error(ctx);
    cr_expect_eq(st, AM_STATUS_BAD_INPUT, "%s: %s", cases[k].name, msg);
    cr_expect(strstr(msg, "batch 3") && strstr(msg, "attentions") &&
                  strstr(msg, cases[k].expect) && !strchr(msg, '\n'),
              "%s (seed %u): message '%s'", cases[k].name, seed, msg);
    cr_expect_neq(am_run_writer_add(w, &s.b[4].in, &s.b[4].extras), AM_STATUS_OK,
                  "a failed writer takes no more batches");
    cr_expect_neq(am_run_writer_close(w), AM_STATUS_OK,
                  "a failed writer publishes nothing");
    cr_expect(!dsb_exists(run) && dsb_exists(partial));
    if (cell)
      *cell = saved;
    bad->in.layers = 3;
    cr_assert_eq(open_writer(&s, &plan, 1, 2.0, &w, &from), AM_STATUS_OK);
    cr_expect_eq(from, lb_first(&s, 3), "%s (seed %u): resumes from %lld", cases[k].name,
                 seed, (long long)from);
    add_range(w, &s, batch_at(&s, from), s.n, seed);
    cr_assert_eq(am_run_writer_close(w), AM_STATUS_OK, "%s", am_last_error(ctx));
    expect_same(cases[k].name, seed);
    lb_free(&s);
  }
}

Test(run_writer, fewer_or_more_examples_than_declared_are_errors) {
  unsigned seed = seed_now();
  lb_set_t s;
  cr_assert_eq(lb_make(&s, &full, 5, seed), 0);
  am_plan_t plan;
  lb_plan(&s, &plan);
  make_reference(&s, &plan, seed);
  am_run_writer_t *w = NULL;
  int64_t from = -1;
  cr_assert_eq(open_writer(&s, &plan, 0, 2.0, &w, &from), AM_STATUS_OK);
  add_range(w, &s, 0, 3, seed);
  cr_expect_eq(am_run_writer_close(w), AM_STATUS_INVALID_ARGUMENT);
  cr_expect(strstr(am_last_error(ctx), "closed after"), "%s", am_last_error(ctx));
  cr_expect(!dsb_exists(run) && dsb_exists(partial));
  cr_assert_eq(open_writer(&s, &plan, 1, 2.0, &w, &from), AM_STATUS_OK);
  cr_expect_eq(from, lb_first(&s, 3));
  add_range(w, &s, 3, s.n, seed);
  cr_assert_eq(am_run_writer_close(w), AM_STATUS_OK, "%s", am_last_error(ctx));
  expect_same("closed early, then resumed", seed);
  /* resume on the finished run: nothing to do, nothing touched; other options: refused */
  cr_assert_eq(open_writer(&s, &plan, 1, 2.0, &w, &from), AM_STATUS_OK, "%s",
               am_last_error(ctx));
  cr_expect_eq(from, s.N);
  cr_expect_eq(am_run_writer_close(w), AM_STATUS_OK, "%s", am_last_error(ctx));
  expect_same("resumed when finished", seed);
  am_plan_t other = plan;
  other.topk = 3;
  cr_expect_eq(open_writer(&s, &other, 1, 2.0, &w, &from), AM_STATUS_INVALID_ARGUMENT);
  cr_expect(strstr(am_last_error(ctx), "already exists"), "%s", am_last_error(ctx));
  /* one example fewer declared: the last batch is refused by name */
  dsb_rmtree(run);
  am_run_options_t opts;
  am_run_options_init(&opts);
  am_stream_info_t info = lb_info(&s);
  info.examples -= 1;
  cr_assert_eq(am_run_writer_open(ctx, run, &plan, &opts, &info, &w, &from), AM_STATUS_OK);
  add_range(w, &s, 0, s.n - 1, seed);
  cr_expect_eq(am_run_writer_add(w, &s.b[s.n - 1].in, &s.b[s.n - 1].extras),
               AM_STATUS_INVALID_ARGUMENT);
  char want[32];
  snprintf(want, sizeof want, "batch %d", s.n - 1);
  cr_expect(strstr(am_last_error(ctx), want) && strstr(am_last_error(ctx), "more than"),
            "%s", am_last_error(ctx));
  am_run_writer_abort(w);
  cr_expect(!dsb_exists(run));
  lb_free(&s);
}

static void write_text(const char *path, const char *text) {
  cr_assert_eq(dsb_write_bytes(path, text, strlen(text)), 0);
}

Test(run_writer, never_replaces_what_attnmap_did_not_write) {
  unsigned seed = seed_now();
  lb_set_t s;
  cr_assert_eq(lb_make(&s, &full, 2, seed), 0);
  am_plan_t plan;
  lb_plan(&s, &plan);
  char notes[300];
  am_run_writer_t *w = NULL;
  int64_t from;
  am_run_options_t opts;
  am_run_options_init(&opts);
  opts.force = 1;
  am_stream_info_t info = lb_info(&s);
  /* a user's folder at RUN: refused, even with force */
  cr_assert_eq(mkdir(run, 0777), 0);
  write_text(dsb_join(notes, sizeof notes, run, "notes.txt"), "mine");
  cr_expect_neq(am_run_writer_open(ctx, run, &plan, &opts, &info, &w, &from), AM_STATUS_OK);
  cr_expect(dsb_exists(notes));
  dsb_rmtree(run);
  /* a user's folder at RUN.partial: the first batch stops, the folder stays */
  cr_assert_eq(mkdir(partial, 0777), 0);
  write_text(dsb_join(notes, sizeof notes, partial, "notes.txt"), "mine");
  cr_assert_eq(am_run_writer_open(ctx, run, &plan, &opts, &info, &w, &from), AM_STATUS_OK);
  cr_expect_neq(am_run_writer_add(w, &s.b[0].in, &s.b[0].extras), AM_STATUS_OK);
  cr_expect(strstr(am_last_error(ctx), "notes.txt"), "%s", am_last_error(ctx));
  am_run_writer_abort(w);
  cr_expect(dsb_exists(notes));
  dsb_rmtree(partial);
  /* a live run of attnmap's is replaced with force; with a user's file in it, it is not */
  for (int pass = 0; pass < 3; pass++) {
    am_status st = am_run_writer_open(ctx, run, &plan, &opts, &info, &w, &from);
    if (pass == 2) {
      cr_expect_neq(st, AM_STATUS_OK, "a run holding a user's file was accepted");
      break;
    }
    cr_assert_eq(st, AM_STATUS_OK, "pass %d: %s", pass, am_last_error(ctx));
    add_range(w, &s, 0, s.n, seed);
    cr_assert_eq(am_run_writer_close(w), AM_STATUS_OK, "%s", am_last_error(ctx));
    if (pass == 1)
      write_text(dsb_join(notes, sizeof notes, run, "notes.txt"), "mine");
  }
  cr_expect(dsb_exists(notes));
  lb_free(&s);
}

Test(run_writer, report_and_merge_read_live_runs) {
  unsigned seed = seed_now();
  lb_set_t s;
  cr_assert_eq(lb_make(&s, &full, 6, seed), 0);
  am_plan_t plan;
  lb_plan(&s, &plan);
  make_reference(&s, &plan, seed);
  /* the first three batches live, the last three as shards: merged = one run over all */
  lb_set_t head = s, tail = s;
  head.n = 3;
  head.N = lb_first(&s, 3);
  tail.b = s.b + 3;
  tail.n = 3;
  tail.N = s.N - head.N;
  head.T = tail.T = 0;
  for (int i = 0; i < 3; i++) {
    head.T = head.b[i].ds->spec.T > head.T ? head.b[i].ds->spec.T : head.T;
    tail.T = tail.b[i].ds->spec.T > tail.T ? tail.b[i].ds->spec.T : tail.T;
  }
  am_run_writer_t *w = NULL;
  int64_t from;
  cr_assert_eq(open_writer(&head, &plan, 0, 2.0, &w, &from), AM_STATUS_OK);
  add_range(w, &head, 0, 3, seed);
  cr_assert_eq(am_run_writer_close(w), AM_STATUS_OK, "%s", am_last_error(ctx));
  char tail_dir[300], tail_run[300], merged[300];
  dsb_join(tail_dir, sizeof tail_dir, dir, "tail");
  dsb_join(tail_run, sizeof tail_run, dir, "tail-run");
  dsb_join(merged, sizeof merged, dir, "merged");
  mkdir(tail_dir, 0777);
  cr_assert_eq(lb_write_shards(&tail, tail_dir), 0);
  cr_assert_eq(lb_analyze(ctx, tail_dir, &plan, tail_run), AM_STATUS_OK, "%s",
               am_last_error(ctx));
  const char *runs[] = {run, tail_run};
  cr_assert_eq(am_run_merge(ctx, runs, 2, merged, NULL), AM_STATUS_OK, "%s",
               am_last_error(ctx));
  char why[512] = "";
  cr_expect(lb_same_runs(ref, merged, why, sizeof why),
            "live + file-made merged (seed %u): %s", seed, why);
  /* the report of the live run: token strings from tokens.jsonl, views missing, said so */
  am_report_options_t ro;
  am_report_options_init(&ro);
  am_report_result_t res;
  cr_assert_eq(am_run_report(ctx, run, &ro, &res), AM_STATUS_OK, "%s", am_last_error(ctx));
  cr_expect(strstr(res.note, "live run") && strstr(res.note, "attention"), "%s", res.note);
  cr_expect_eq(res.views, 0);
  char page[400];
  size_t n = 0;
  char *html = dsb_read_file(dsb_join(page, sizeof page, run, "report/index.html"), &n);
  cr_assert(html);
  cr_expect(strstr(html, "t101") && strstr(html, "\xc3\xa9t102"),
            "the report shows no token string of tokens.jsonl");
  free(html);
  /* an edited tokens.jsonl is refused by every reader */
  char tokens[400];
  dsb_join(tokens, sizeof tokens, run, "tokens.jsonl");
  char *text = dsb_read_file(tokens, &n);
  cr_assert(text && n > 4);
  text[2] = text[2] == 't' ? 'u' : 't';
  cr_assert_eq(dsb_write_bytes(tokens, text, n), 0);
  free(text);
  am_run_t *r = NULL;
  cr_expect_eq(am_run_open(ctx, run, &r), AM_STATUS_BAD_INPUT);
  cr_expect(strstr(am_last_error(ctx), "tokens.jsonl"), "%s", am_last_error(ctx));
  lb_free(&s);
}

Test(run_writer, the_cpu_backend_refuses_device_pointers) {
  unsigned seed = seed_now();
  lb_set_t s;
  cr_assert_eq(lb_make(&s, &full, 1, seed), 0);
  am_plan_t plan;
  lb_plan(&s, &plan);
  am_run_writer_t *w = NULL;
  int64_t from;
  cr_assert_eq(open_writer(&s, &plan, 0, 2.0, &w, &from), AM_STATUS_OK);
  s.b[0].in.device_pointers = 1;
  cr_expect_eq(am_run_writer_add(w, &s.b[0].in, &s.b[0].extras), AM_STATUS_UNSUPPORTED);
  cr_expect(strstr(am_last_error(ctx), "batch 0") &&
                strstr(am_last_error(ctx), "cuda backend"),
            "%s", am_last_error(ctx));
  am_run_writer_abort(w);
  lb_free(&s);
}

/* Device copies of a batch's attentions and gradients (the backend's test hooks), its
 * layer pointers moved onto them; NULL restores the host pointers. */
typedef struct dev_copy {
  unsigned char *att, *grad;
} dev_copy_t;

static void to_device(am_ctx_t *gpu, lb_batch_t *b, dev_copy_t *d) {
  const dsb_spec_t *p = &b->ds->spec;
  size_t per = (size_t)p->B * p->H * p->T * p->T * am_dtype_size(p->dtype);
  const am_named_tensor_t *att = &b->ds->list[dsb_find(b->ds, b->ntensors, "attentions")];
  const am_named_tensor_t *grad =
      &b->ds->list[dsb_find(b->ds, b->ntensors, "attention_grads")];
  d->att = gpu->backend->device_copy(gpu->backend_state, att->tensor.data, per * p->L);
  d->grad = gpu->backend->device_copy(gpu->backend_state, grad->tensor.data, per * p->L);
  cr_assert(d->att && d->grad, "device copies");
  for (int l = 0; l < p->L; l++) {
    b->att[l] = d->att + (size_t)l * per;
    b->grad[l] = d->grad + (size_t)l * per;
  }
  b->in.device_pointers = 1;
}

static void device_free(am_ctx_t *gpu, dev_copy_t *d) {
  gpu->backend->device_free(gpu->backend_state, d->att);
  gpu->backend->device_free(gpu->backend_state, d->grad);
}

/* The CUDA backend with device pointers: each batch's chunks are submitted and finished
 * during the next add (analyze's pass_submit/pass_wait), and the run equals analyze over
 * the shards with that backend. Runs on a GPU and on the CPU emulator of CUDA
 * (tests/cuda_emu/run.sh); skips without either. */
Test(run_writer, cuda_device_pointers_overlap_and_match_analyze) {
  am_ctx_options_t o = {.backend = "cuda", .threads = 2};
  am_ctx_t *gpu = NULL;
  if (am_ctx_create(&o, &gpu, NULL, 0) != AM_STATUS_OK || !gpu->backend->device_copy)
    cr_skip_test("no CUDA backend or device");
  am_ctx_t *cpu = ctx;
  ctx = gpu;
  unsigned seed = seed_now();
  lb_set_t s;
  cr_assert_eq(lb_make(&s, &full, 6, seed), 0);
  am_plan_t plan;
  lb_plan(&s, &plan);
  plan.chunk = 2; /* several chunks in flight per batch */
  make_reference(&s, &plan, seed);
  dev_copy_t dev[6];
  for (int i = 0; i < s.n; i++)
    to_device(gpu, &s.b[i], &dev[i]);
  am_run_writer_t *w = NULL;
  int64_t from;
  cr_assert_eq(open_writer(&s, &plan, 0, 0.0, &w, &from), AM_STATUS_OK, "%s",
               am_last_error(ctx));
  add_range(w, &s, 0, s.n, seed);
  cr_assert_eq(am_run_writer_close(w), AM_STATUS_OK, "%s", am_last_error(ctx));
  expect_same("cuda, device pointers", seed);
  /* a bad batch in flight: the batches before it stay whole */
  dsb_rmtree(run);
  lb_batch_t *b3 = &s.b[3];
  float *cell = NULL, saved = 0;
  for (int e = 0; e < b3->ds->spec.B && !cell; e++)
    if (b3->ds->len[e] >= 2)
      cell = dsb_att(b3->ds, 0, e, 0, b3->ds->start[e], b3->ds->start[e]);
  if (cell) {
    saved = *cell;
    *cell = NAN;
    device_free(gpu, &dev[3]);
    to_device(gpu, b3, &dev[3]);
    cr_assert_eq(open_writer(&s, &plan, 0, 0.0, &w, &from), AM_STATUS_OK);
    add_range(w, &s, 0, 3, seed);
    am_status st = am_run_writer_add(w, &b3->in, &b3->extras);
    if (st == AM_STATUS_OK) /* submitted: found when it is finished */
      st = am_run_writer_add(w, &s.b[4].in, &s.b[4].extras);
    cr_expect_eq(st, AM_STATUS_BAD_INPUT, "%s", am_last_error(ctx));
    cr_expect(strstr(am_last_error(ctx), "batch 3"), "%s", am_last_error(ctx));
    am_run_writer_abort(w);
    *cell = saved;
    device_free(gpu, &dev[3]);
    to_device(gpu, b3, &dev[3]);
    cr_assert_eq(open_writer(&s, &plan, 1, 0.0, &w, &from), AM_STATUS_OK);
    cr_expect_eq(from, lb_first(&s, 3));
    add_range(w, &s, batch_at(&s, from), s.n, seed);
    cr_assert_eq(am_run_writer_close(w), AM_STATUS_OK, "%s", am_last_error(ctx));
    expect_same("cuda, bad batch then resumed", seed);
  }
  for (int i = 0; i < s.n; i++)
    device_free(gpu, &dev[i]);
  lb_free(&s);
  ctx = cpu;
  am_ctx_destroy(gpu);
}

/* Several targets (docs/generation.md) are refused in one line: live batches carry no
 * generation_start and a live run no step tensors; nothing is published. */
Test(run_writer, several_targets_are_refused) {
  lb_set_t s;
  cr_assert_eq(lb_make(&s, &full, 2, 5), 0);
  am_plan_t plan;
  am_plan_init(&plan);
  plan.target = AM_TARGET_RANGE;
  plan.target_slice = 3;
  plan.target_index = 0;
  plan.target_stop = 2;
  am_run_writer_t *w = NULL;
  int64_t from = 0;
  am_status st = open_writer(&s, &plan, 0, 2.0, &w, &from);
  if (st == AM_STATUS_OK)
    st = am_run_writer_add(w, &s.b[0].in, &s.b[0].extras);
  cr_expect_eq(st, AM_STATUS_INVALID_ARGUMENT);
  cr_expect(
      strstr(am_last_error(ctx), "live runs take one target; target 0:2 gives several"),
      "%s", am_last_error(ctx));
  am_run_writer_abort(w);
  cr_expect(!dsb_exists(run));
  lb_free(&s);
}
