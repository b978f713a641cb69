/* faith_probs.h — a hand-written PROBS.safetensors (the file attnmap-faithfulness writes,
 * docs/faithfulness.md "Files") for the faithfulness tests: four examples, three maps
 * (attention_last, rollout, random), bins {10, 50}, whose scores are worked out by hand in
 * faith_probs.c; every field can be spoiled to test one refusal. */
#ifndef TESTS_SUPPORT_FAITH_PROBS_H
#define TESTS_SUPPORT_FAITH_PROBS_H

#include <stdint.h>

#define FP_N 4 /* examples; example 3 has no token (its rows are NaN) */
#define FP_M 3
#define FP_K 2
#define FP_S 11

typedef struct fp_probs {
  float p_full[FP_N];
  float p_removed[FP_N][FP_M][FP_K], p_kept[FP_N][FP_M][FP_K];
  float del[FP_N][FP_M][FP_S], ins[FP_N][FP_M][FP_S];
  int32_t target[FP_N], tokens[FP_N];
  /* metadata, as JSON text pieces */
  const char *maps;  /* default "[\"attention_last\",\"rollout\",\"random\"]" */
  const char *bins;  /* default "[10,50]" */
  const char *mode;  /* default "\"delete\"" */
  const char *meta;  /* non-NULL: the whole metadata text instead */
  const char *model; /* default "\"hand-made\"" */
  int64_t run_n;     /* -1: the run's */
  const char *crc;   /* NULL: the run's */
  int drop;          /* 1 + index of a tensor to leave out (0: none) */
  int target_f32;    /* 1: faithfulness.target written as F32 */
  int removed_k;     /* > 0: p_removed written with this many bins */
} fp_probs_t;

/* The hand-made values (see faith_probs.c for each number). */
void fp_default(fp_probs_t *p);
/* Writes rows [begin, end) of p for the run folder run_dir (its examples file's size and
 * CRC-32C from its summary.json) to path. 0 on success. */
int fp_write(const fp_probs_t *p, const char *run_dir, int begin, int end,
             const char *path);

#endif
