/* dataset_builder.h — synthetic attnmap datasets for the tests, built in C and written
 * through the library's own writer (am_safetensors_write), plus a raw-bytes writer for
 * hand-made malformed safetensors files and a few temp-folder helpers.
 *
 * An example's values depend only on (seed, first + b) and its valid length n, never on
 * where its valid tokens sit: the same spec stored with right padding in T=10 and with
 * left padding in T=13 holds the same examples (what the padding-invariance test needs).
 * Attention rows are masked softmaxes over the n valid keys (sum 1 within F32/F16
 * rounding). */
#ifndef TESTS_SUPPORT_DATASET_BUILDER_H
#define TESTS_SUPPORT_DATASET_BUILDER_H

#include <stddef.h>
#include <stdint.h>

#include "attnmap.h"

typedef struct dsb_spec {
  int L, H, B, T;
  am_dtype dtype;     /* of attentions and attention_grads: F32 (default) or F16 */
  const int *lengths; /* [B] valid tokens of each example (0..T); NULL: every example T */
  int left_pad;       /* 1: valid tokens at the end of the row, padding first */
  int grads;          /* 1: attention_grads */
  int saliency;       /* 1: saliency.ig [B,T] F32 */
  int embed_dim;      /* D > 0: inputs_embeds and inputs_embeds_grads [B,T,D] F32 */
  int labels;         /* 1: labels and predictions [B] I64 */
  int special;        /* 1: special_tokens_mask (first and last valid token) + input_ids */
  int no_mask;        /* 1: no attention_mask tensor */
  int per_layer;      /* 1: attentions.{l} / attention_grads.{l} [B,H,T,T] */
  int pad_junk;       /* padded cells hold 0, 1: arbitrary finite values, 2: NaN */
  uint64_t seed;
  int64_t first; /* global index of example 0 (seeds of split datasets line up) */
} dsb_spec_t;

/* A dataset in memory: F32 (and I64) master copies in padded [L,B,H,T,T] / [B,T] /
 * [B,T,D] order that a test may edit (a NaN, a mask value 2) before writing; the dtype of
 * the spec is applied when the tensors are made (dsb_tensors). */
typedef struct dsb {
  dsb_spec_t spec;
  int *len;                /* [B] */
  int *start;              /* [B] first valid position */
  float *att;              /* [L,B,H,T,T] */
  float *grad;             /* [L,B,H,T,T] or NULL */
  int64_t *mask;           /* [B,T] */
  int64_t *special, *ids;  /* [B,T] or NULL */
  float *sal;              /* [B,T] or NULL */
  float *emb, *egrad;      /* [B,T,D] or NULL */
  int64_t *labels, *preds; /* [B] or NULL */
  /* dsb_tensors' output (owned; rebuilt by each call) */
  am_named_tensor_t list[64];
  char names[64][32];
  void *encoded[2 * 64];
  int nencoded;
} dsb_t;

/* Builds the dataset of spec (lengths copied). NULL on a bad spec or out of memory. */
dsb_t *dsb_build(const dsb_spec_t *spec);
void dsb_free(dsb_t *ds);

/* Pointers into the master buffers (padded coordinates). */
float *dsb_att(dsb_t *ds, int l, int b, int h, int i, int j);
float *dsb_grad(dsb_t *ds, int l, int b, int h, int i, int j);

/* The tensors as the dataset would be written (dtype applied), in ds->list; returns their
 * count. The array may be edited (removed, renamed, reshaped) and passed to dsb_write_list.
 * Valid until the next dsb_tensors call or dsb_free. */
int dsb_tensors(dsb_t *ds);
/* Index of a tensor in ds->list (after dsb_tensors), or -1. */
int dsb_find(const dsb_t *ds, int n, const char *name);
/* Removes ds->list[i], shifting the rest; returns the new count. */
int dsb_remove(dsb_t *ds, int n, int i);

/* Writes ds (dsb_tensors + am_safetensors_write) to path. 0 on success. */
int dsb_write(dsb_t *ds, const char *path);
/* Writes any tensor list with the library's writer; meta: nmeta key/value pairs. */
int dsb_write_list(const char *path, const am_named_tensor_t *list, int n,
                   const char *const *meta, int nmeta);
/* Builds spec and writes it to path in one call. 0 on success. */
int dsb_make(const dsb_spec_t *spec, const char *path);

/* Raw safetensors bytes: the 8-byte little-endian length `declared`, then header_len bytes
 * of header, then ndata bytes of data. 0 on success. */
int dsb_write_raw(const char *path, uint64_t declared, const void *header,
                  size_t header_len, const void *data, size_t ndata);
/* A header given as a C string with its true length and `ndata` zero bytes of data. */
int dsb_write_header(const char *path, const char *header, size_t ndata);
int dsb_write_bytes(const char *path, const void *bytes, size_t n);

/* ---- folders ---------------------------------------------------------------------- */
/* mkdtemp("/tmp/attnmap-<tag>-XXXXXX") into buf (at least 64 bytes). 0 on success. */
int dsb_tempdir(char *buf, size_t len, const char *tag);
/* rm -rf path (does not follow links). */
void dsb_rmtree(const char *path);
/* snprintf("%s/%s") into buf, returns buf. */
char *dsb_join(char *buf, size_t len, const char *dir, const char *name);
int dsb_exists(const char *path);
/* Entries of dirname(path) whose name starts with basename(path) followed by `suffix`
 * (e.g. ".tmp-": leftovers of an interrupted run). */
int dsb_count_prefixed(const char *path, const char *suffix);
/* Reads a whole file (malloc'd, NUL-terminated); NULL on failure. */
char *dsb_read_file(const char *path, size_t *len);

#endif
