/* dataset.h — the insides of am_dataset_t: shards, the tensors found in each by role,
 * and the view of one example that the backends read (docs/design.md §2). */
#ifndef AM_DATASET_DATASET_H
#define AM_DATASET_DATASET_H

#include <jansson.h>
#include <stdint.h>

#include "attnmap.h"
#include "ops/cross_example.h"
#include "ops/example.h"
#include "ops/long_example.h"

/* Where a tensor came from, for messages. */
typedef struct am_source {
  const char *path; /* borrowed from the shard's file */
  const char *name; /* tensor name */
} am_source_t;

/* Attentions or their gradients: stacked [L,B,H,T,T] or per layer L x [B,H,T,T]. */
typedef struct am_layers {
  const am_tensor_t **layer; /* [L]: for stacked input every entry is the stacked tensor */
  am_source_t *source;       /* [L] */
  int stacked;
} am_layers_t;

/* The long-context form (docs/long-context.md): per layer queries.{l} [B,H,T,d], keys.{l}
 * and values.{l} [B,Hkv,T,d], attention_output_grads.{l} [B,H,T,d] (optional). */
typedef struct am_long_layers {
  am_layers_t q, k, v, dout; /* dout.layer == NULL when absent */
  int Hkv, d;
  am_attention_spec_t attn; /* from __metadata__ attnmap.attention, defaults filled in */
} am_long_layers_t;

/* An encoder-decoder model's decoder→encoder inputs (cross.c; docs/generation.md): per
 * decoder layer cross_attentions.{l} [B,H,T,Tenc] (T: the decoder's padded length) and
 * optionally cross_attention_grads.{l} alike; encoder_attention_mask and encoder_input_ids
 * [B,Tenc] (optional); __metadata__ attnmap.source_tokens. */
typedef struct am_cross_set {
  am_layers_t att, grad; /* att.layer == NULL: the shard has none; grad.layer likewise */
  int Tenc;              /* padded source length of this shard */
  am_layers_t step_grad; /* step_cross_attention_grads.{l} [B,S_in,H,T,Tenc], or none */
  int S_in;              /* its steps (0: none) */
  am_dtype dtype;        /* of att and grad */
  const am_tensor_t *mask, *ids; /* or NULL */
  am_source_t mask_src, ids_src;
  json_t *tokens; /* attnmap.source_tokens parsed: B arrays of strings, or NULL */
} am_cross_set_t;

typedef struct am_shard {
  char *path;        /* the .safetensors file, or the directory of .npy files */
  am_file_t **files; /* the files it was read from */
  int nfiles;
  int64_t B;             /* examples */
  int T;                 /* padded length */
  int64_t first;         /* global index of its first example */
  am_layers_t att, grad; /* grad.layer == NULL when absent */
  int long_form;         /* 1: the attention is in lc, att.layer == NULL */
  am_long_layers_t lc;
  const am_tensor_t *mask, *special, *ids, *labels, *predictions, *embeds, *embeds_grads;
  am_source_t mask_src, special_src, embeds_src;
  const am_tensor_t *images; /* U8 [B,Hpx,Wpx,3] or NULL (images.c) */
  am_source_t images_src;
  const am_tensor_t **saliency; /* [dataset nsaliency], same order as dataset names */
  am_source_t *saliency_src;    /* [dataset nsaliency] */
  int *saliency_S; /* [dataset nsaliency]: S_in of a per-step [B,S_in,T] tensor, else 0 */
  /* several targets (steps.c, docs/generation.md) */
  const am_tensor_t *gen_start; /* generation_start [B], values in [0,T], or NULL */
  am_source_t gen_start_src;
  am_layers_t step_grad; /* step_attention_grads.{l} [B,S_in,H,T,T]; layer NULL: none */
  int step_grad_S;       /* its S_in */
  json_t *tokens;        /* attnmap.tokens parsed: array of B arrays of strings, or NULL */
  json_t *ex_ids;        /* attnmap.ids parsed: array of B strings, or NULL */
  am_cross_set_t cross;  /* encoder-decoder inputs (cross.c) */
  uint64_t bytes;        /* file sizes */
} am_shard_t;

struct am_dataset {
  am_shard_t *shards;
  int nshards;
  int64_t N;
  int L, H, Tmax;
  am_dtype dtype;
  unsigned roles;
  char **saliency_names; /* [nsaliency]: "given" for a bare `saliency`, else the suffix */
  int nsaliency;
  int embed_dim;
  char *model, *grid;
  char *target, *target_file; /* attnmap.exporter's recorded target and where, or NULL */
  am_grid_t grid_parsed;
  int long_form; /* every shard holds the long-context form (shards[s].lc) */
  /* encoder-decoder inputs, alike in every shard (cross.c): cross_attentions present,
   * cross_attention_grads present, their dtype, the largest Tenc of a non-empty shard */
  int cross, cross_grads, cross_step_grads;
  am_dtype cross_dtype;
  int Tenc_max;
  int has_gen_start, has_step_grads; /* in every shard (steps.c) */
};

/* The data of layer l of example b (shard row) of a layer set; NULL if absent. */
const void *am_layers_example(const am_layers_t *ls, const am_shard_t *sh, int H, int l,
                              int64_t b);

/* Layer l of example b in the long-context form: the [heads,T,d] block of ls. */
const void *am_long_example(const am_layers_t *ls, const am_shard_t *sh, int heads, int d,
                            int l, int64_t b);

/* Valid positions of shard row b into idx (capacity sh->T); returns their count. */
int am_shard_valid_positions(const am_shard_t *sh, int64_t b, int32_t *idx);

/* 1 if position p of row b is a special token. */
int am_shard_is_special(const am_shard_t *sh, int64_t b, int p);

/* Token string of position p of row b (borrowed), or NULL. n: valid tokens of the row. */
const char *am_shard_token(const am_shard_t *sh, int64_t b, int p, int valid_rank, int n);

/* am_file_check_unchanged on every file of shard s: called before a chunk of the shard is
 * read, so that a shard cut short since am_dataset_open fails with a message naming it
 * rather than SIGBUS. */
am_status am_shard_check_unchanged(am_ctx_t *ctx, const am_dataset_t *ds, int s);

/* Tells the kernel that the attention and gradient rows [row0, row0+n) of shard s have
 * been read: their pages may leave memory (MADV_DONTNEED on a read-only file mapping
 * drops the process's view of the page cache; reading them again faults them back in).
 * A pass over a dataset larger than memory calls it after each chunk, so that its
 * resident size stays bounded. */
void am_shard_release_rows(const am_dataset_t *ds, int s, int64_t row0, int64_t n);

/* Asks the kernel to start reading the attention and gradient rows [row0, row0+n) of
 * shard s into the page cache (MADV_WILLNEED) and returns at once: the pipeline calls it
 * for chunk k+1 when it has read chunk k, so that a dataset not in the page cache is
 * read from disk while chunk k is computed. */
void am_shard_prefetch_rows(const am_dataset_t *ds, int s, int64_t row0, int64_t n);

/* ---- encoder-decoder inputs (cross.c) ---- */

/* Finds and checks the cross tensors of a shard whose attentions gave L, H, B, T. */
am_status am_shard_find_cross(am_ctx_t *ctx, am_shard_t *sh, int L, int H);
/* Shard s > 0 holds the same cross tensors (and their dtype) as the first shard; for s == 0
 * sets ds->cross, cross_grads, cross_dtype. Updates ds->Tenc_max. */
am_status am_cross_same_as_first(am_ctx_t *ctx, am_dataset_t *ds, int s);
/* Frees what am_shard_find_cross allocated. */
void am_shard_cross_free(am_shard_t *sh);
/* Example b's [H,T,Tenc] block of layer l of ls (sh->cross.att or .grad), or NULL. */
const void *am_cross_layer_example(const am_layers_t *ls, const am_shard_t *sh, int H,
                                   int l, int64_t b);
/* Example b's [S_in,H,T,Tenc] block of layer l of step_cross_attention_grads, or NULL. */
const void *am_cross_step_grad_example(const am_shard_t *sh, int H, int l, int64_t b);
/* Valid source positions of shard row b into idx (capacity sh->cross.Tenc); their count. */
int am_shard_source_positions(const am_shard_t *sh, int64_t b, int32_t *idx);
/* Source token string of position p (valid_rank among n valid ones) of row b, or NULL. */
const char *am_shard_source_token(const am_shard_t *sh, int64_t b, int p, int valid_rank,
                                  int n);
/* The one-line error of a fault of the cross op on an example of shard sh (L layers; global
 * index example): the file, the tensor, the example, layer, head, the padded decoder (and
 * source) position and the problem. dec_idx, enc_idx: the example's valid positions. */
am_status am_cross_report_fault(am_ctx_t *ctx, const am_shard_t *sh, int L, int64_t example,
                                const int32_t *dec_idx, int n_dec, const int32_t *enc_idx,
                                int n_enc, const am_cross_fault_t *f);
/* Several targets (steps.c): the steps of shard row b, whose n valid positions are idx,
 * under plan's AM_TARGET_RANGE or AM_TARGET_GEN, as valid-token indices into steps
 * (capacity n), increasing; returns their count. */
int am_shard_steps(const am_shard_t *sh, int64_t b, const am_plan_t *plan,
                   const int32_t *idx, int n, int32_t *steps);
/* 1 when saliency i of the dataset is per step ([B,S_in,T]). */
static inline int am_dataset_saliency_per_step(const am_dataset_t *ds, int i) {
  return ds->nshards > 0 && ds->shards[0].saliency_S && ds->shards[0].saliency_S[i] > 0;
}

/* Parses "14x14+1" / "14x14". Returns 0 on success. */
int am_grid_parse(const char *text, am_grid_t *grid);

#endif
