/* source.c — finds the dataset a run was made from (summary.json provenance.inputs, or
 * the paths the user gave), checks that it is still that dataset (file sizes, example
 * count, layers, heads) and serves token strings from it. A missing or changed dataset is
 * not an error: the report is written without the dataset's parts and says why. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/ctx.h"
#include "core/half.h"
#include "dataset/dataset.h"
#include "pipeline/run_tokens.h"
#include "report/report.h"

static int exists(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0;
}

/* A relative input path that is not found from here is looked for under each ancestor of
 * the run folder (a run analysed from the repository root as examples/runs/x records
 * examples/data/...). Writes the found prefix ("" or "DIR/") into prefix. */
static int find_prefix(const char *run_dir, const char *first, char *prefix, size_t len) {
  prefix[0] = '\0';
  if (exists(first) || first[0] == '/')
    return exists(first);
  char dir[4096], cand[8192];
  if (!realpath(run_dir, dir))
    return 0;
  for (int up = 0; up < 32; up++) {
    snprintf(cand, sizeof cand, "%s/%s", dir, first);
    if (exists(cand))
      return snprintf(prefix, len, "%s/", dir) < (int)len;
    if (strcmp(dir, "/") == 0)
      break;
    char *slash = strrchr(dir, '/');
    if (!slash)
      break;
    if (slash == dir)
      slash[1] = '\0';
    else
      *slash = '\0';
  }
  return 0;
}

/* The recorded input paths with the prefix applied; sizes compared with the record. */
static int recorded_paths(am_report_t *r, char ***out, int *n) {
  json_t *inputs = am_jget(r->run.summary, "provenance", "inputs", NULL);
  size_t k = json_array_size(inputs);
  const char *first = am_jstr(am_jget(json_array_get(inputs, 0), "path", NULL));
  char prefix[4096];
  if (!k || !first) {
    snprintf(r->note, sizeof r->note, "summary.json records no input files");
    return -1;
  }
  if (!find_prefix(r->run_dir, first, prefix, sizeof prefix)) {
    snprintf(r->note, sizeof r->note, "the dataset is not found at %.400s", first);
    return -1;
  }
  char **paths = calloc(k, sizeof *paths);
  for (size_t i = 0; paths && i < k; i++) {
    json_t *in = json_array_get(inputs, i);
    const char *p = am_jstr(json_object_get(in, "path"));
    char full[8192];
    struct stat sb;
    snprintf(full, sizeof full, "%s%s", p && p[0] != '/' ? prefix : "", p ? p : "");
    double bytes = am_jnum(json_object_get(in, "bytes"));
    if (!p || stat(full, &sb) != 0 || (bytes >= 0 && (double)sb.st_size != bytes)) {
      snprintf(r->note, sizeof r->note, "the dataset file %.300s is %s since the run",
               p ? p : "(unnamed)", p && exists(full) ? "changed (size differs)" : "gone");
      for (size_t j = 0; j < i; j++)
        free(paths[j]);
      free(paths);
      return -1;
    }
    paths[i] = strdup(full);
  }
  *out = paths;
  *n = (int)k;
  return paths ? 0 : -1;
}

struct am_vocab_entry {
  int64_t id;
  const char *text; /* borrowed from summary.json */
};

static int by_id(const void *a, const void *b) {
  int64_t x = ((const struct am_vocab_entry *)a)->id,
          y = ((const struct am_vocab_entry *)b)->id;
  return (x > y) - (x < y);
}

/* id -> text from tokens_table (the ids and texts the run saw). */
static void read_vocab(am_report_t *r) {
  json_t *ids = am_jget(r->run.summary, "tokens_table", "id", NULL);
  json_t *text = am_jget(r->run.summary, "tokens_table", "text", NULL);
  size_t n = json_array_size(ids);
  if (!n || json_array_size(text) != n || !(r->vocab = calloc(n, sizeof *r->vocab)))
    return;
  for (size_t i = 0; i < n; i++) {
    const char *t = am_jstr(json_array_get(text, i));
    double id = am_jnum(json_array_get(ids, i));
    if (t && isfinite(id))
      r->vocab[r->nvocab++] = (struct am_vocab_entry){(int64_t)id, t};
  }
  qsort(r->vocab, (size_t)r->nvocab, sizeof *r->vocab, by_id);
}

/* A live run has no dataset to find: its tokens are its own; the views are missing. */
static void open_live(am_report_t *r) {
  r->live = 1;
  if (am_run_tokens_load(r->ctx, r->run_dir, &r->tokens) != AM_STATUS_OK)
    r->tokens = NULL; /* checked when the run was opened; a failure only loses texts */
  snprintf(r->note, sizeof r->note,
           "a live run (%.300s) analysed each batch while its attention tensors were in "
           "memory and kept none of them: the model and head views need them",
           r->run_dir);
  am_clear_error(r->ctx);
}

void am_report_source_open(am_report_t *r) {
  char **paths = NULL;
  int n = 0;
  r->note[0] = '\0';
  read_vocab(r);
  if (!r->opts.dataset && am_jget(r->run.summary, "provenance", "live", NULL)) {
    open_live(r);
    return;
  }
  if (r->opts.dataset && r->opts.ndataset > 0) {
    paths = calloc((size_t)r->opts.ndataset, sizeof *paths);
    for (int i = 0; paths && i < r->opts.ndataset; i++)
      paths[n++] = strdup(r->opts.dataset[i]);
  } else if (recorded_paths(r, &paths, &n) != 0) {
    return;
  }
  am_dataset_t *ds = NULL;
  am_status st = paths ? am_dataset_open(r->ctx, (const char *const *)paths, n, &ds)
                       : AM_STATUS_OUT_OF_MEMORY;
  if (st != AM_STATUS_OK)
    snprintf(r->note, sizeof r->note, "the dataset cannot be opened: %.400s",
             am_last_error(r->ctx));
  else if (ds->N != r->run.N || ds->L != r->run.L || ds->H != r->run.H)
    snprintf(r->note, sizeof r->note,
             "the dataset holds %lld examples, %d layers, %d heads; the run %lld, %d, %d",
             (long long)ds->N, ds->L, ds->H, (long long)r->run.N, r->run.L, r->run.H);
  if (r->note[0])
    am_dataset_close(ds);
  else
    r->ds = ds;
  for (int i = 0; i < n; i++)
    free(paths[i]);
  free(paths);
  am_clear_error(r->ctx);
}

const char *am_report_token(const am_report_t *r, int64_t ex, int pos, int rank, int n,
                            char *buf, size_t len) {
  const char *mine = r->tokens ? json_string_value(json_array_get(
                                     json_array_get(r->tokens, (size_t)ex), (size_t)rank))
                               : NULL;
  if (mine)
    return mine;
  for (int s = 0; r->ds && s < r->ds->nshards; s++) {
    const am_shard_t *sh = &r->ds->shards[s];
    if (ex < sh->first || ex >= sh->first + sh->B)
      continue;
    const char *t = pos < sh->T ? am_shard_token(sh, ex - sh->first, pos, rank, n) : NULL;
    if (t)
      return t;
    break;
  }
  if (r->run.ids) {
    struct am_vocab_entry key = {am_rr_int(r->run.ids, ex * r->run.T + pos), NULL};
    const struct am_vocab_entry *hit =
        r->nvocab ? bsearch(&key, r->vocab, (size_t)r->nvocab, sizeof key, by_id) : NULL;
    if (hit)
      return hit->text;
    snprintf(buf, len, "[%lld]", (long long)key.id);
    return buf;
  }
  snprintf(buf, len, "#%d", rank);
  return buf;
}

int am_report_source_matches(const am_report_t *r, int64_t ex, const int32_t *idx, int n) {
  if (!r->ds)
    return 0;
  for (int s = 0; s < r->ds->nshards; s++) {
    const am_shard_t *sh = &r->ds->shards[s];
    if (ex < sh->first || ex >= sh->first + sh->B)
      continue;
    int32_t *mine = malloc((size_t)sh->T * sizeof *mine);
    int m = mine ? am_shard_valid_positions(sh, ex - sh->first, mine) : -1;
    int same = m == n && (n == 0 || memcmp(mine, idx, (size_t)n * sizeof *idx) == 0);
    free(mine);
    return same;
  }
  return 0;
}
