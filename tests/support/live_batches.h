/* live_batches.h — random batches for the live run writer's tests: each batch is one
 * dataset_builder dataset (its own B, T and valid lengths), given to am_run_writer_add as
 * am_arrays_t + am_batch_extras_t and written as a shard file with the same metadata
 * (model, grid, exporter target, attnmap.tokens), so that a live run can be compared with
 * `analyze` over the shards. */
#ifndef TESTS_SUPPORT_LIVE_BATCHES_H
#define TESTS_SUPPORT_LIVE_BATCHES_H

#include "support/dataset_builder.h"

typedef struct lb_config {
  int L, H;
  am_dtype dtype;
  int grads, saliency, embed_dim, labels, special, tokens; /* inputs present */
  const char *model, *grid, *target;                       /* metadata or NULL */
  int fixed_T; /* > 0: every batch has this T and full lengths (a grid) */
  int max_B, max_T;
} lb_config_t;

typedef struct lb_batch {
  dsb_t *ds;
  int ntensors;
  const void *att[64], *grad[64];
  const char *sal_names[1];
  const void *sal[1];
  am_arrays_t in;
  am_batch_extras_t extras;
  char **tok;   /* token strings */
  int64_t *off; /* [B+1] */
  char *tokens_json;
} lb_batch_t;

typedef struct lb_set {
  lb_config_t cfg;
  int n;
  lb_batch_t *b;
  int64_t N;
  int T; /* the largest batch T */
} lb_set_t;

/* n random batches from seed (B in [1, max_B], T in [2, max_T], lengths in [0, T]). */
int lb_make(lb_set_t *s, const lb_config_t *cfg, int n, unsigned seed);
void lb_free(lb_set_t *s);
/* Writes batch i as dir/shard-%04d.safetensors with the set's metadata. 0 on success. */
int lb_write_shards(const lb_set_t *s, const char *dir);
/* The examples before batch i. */
int64_t lb_first(const lb_set_t *s, int i);
/* The plan of the config (target_recorded when it records a target). */
void lb_plan(const lb_set_t *s, am_plan_t *plan);
/* The stream info of the set (N, T, model, grid, target). */
am_stream_info_t lb_info(const lb_set_t *s);
/* Runs analyze over dir's shards into run. Returns the status; message in err. */
am_status lb_analyze(am_ctx_t *ctx, const char *dir, const am_plan_t *plan,
                     const char *run);
/* 1 when examples.safetensors is byte-identical and summary.json equal apart from
 * provenance; otherwise 0 with what differs in why. */
int lb_same_runs(const char *a, const char *b, char *why, size_t len);

#endif
