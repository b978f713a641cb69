/* report_run.h — a run folder as the report reads it: opened and validated by am_run_open
 * (pipeline/run_folder.c), its tensors sorted into maps and metrics, and small helpers to
 * read JSON values that may be missing or of the wrong type without crashing. */
#ifndef AM_REPORT_REPORT_RUN_H
#define AM_REPORT_REPORT_RUN_H

#include <jansson.h>
#include <stdint.h>

#include "attnmap.h"

#define AM_RR_MAX_MAPS 32
#define AM_RR_MAX_METRICS 16

typedef struct am_report_run {
  char *dir;
  am_run_t *rf;                      /* the validated run folder (owned) */
  json_t *summary;                   /* summary.json (borrowed from rf or own_summary) */
  json_t *own_summary;               /* summary.json read alone (with_examples 0) */
  const am_file_t *file;             /* examples.safetensors (borrowed from rf) */
  int64_t N;                         /* examples */
  int T, L, H;                       /* padded length of the run's maps, layers, heads */
  const am_tensor_t *mask, *lengths; /* U8 [N,T], I32 [N] */
  const am_tensor_t *labels, *predictions; /* I32 [N] or NULL */
  const am_tensor_t *ids;                  /* input_ids I32 [N,T] or NULL */
  int nmaps;
  const char *map_names[AM_RR_MAX_MAPS];   /* borrowed from the file */
  const am_tensor_t *maps[AM_RR_MAX_MAPS]; /* F32 [N,T] */
  int npairs;
  char **pairs; /* [npairs] from __metadata__ attnmap.pairs (borrowed from rf) */
  int nmetrics;
  const char *metric_names[AM_RR_MAX_METRICS];   /* "spearman" (without "agreement.") */
  const am_tensor_t *metrics[AM_RR_MAX_METRICS]; /* F32 [N,P] */
} am_report_run_t;

/* Opens and validates dir (am_run_open) or, without with_examples, reads its summary.json
 * alone (a comparison reads nothing else). AM_STATUS_BAD_INPUT names the file, the tensor
 * or field and the problem. */
am_status am_report_run_open(am_ctx_t *ctx, const char *dir, int with_examples,
                             am_report_run_t *run);
void am_report_run_close(am_report_run_t *run);

/* Element i of an F32/I32/U8 tensor (any alignment). */
float am_rr_f32(const am_tensor_t *t, int64_t i);
int64_t am_rr_int(const am_tensor_t *t, int64_t i);

/* 1 when the map may hold negative values (drawn with the diverging colormap): every map
 * but those the list of maps marks non-negative by construction (pipeline/maps.c). */
int am_rr_map_signed(const char *name);

/* Valid positions of example i into idx (capacity run->T); returns their count. */
int am_rr_valid_positions(const am_report_run_t *run, int64_t i, int32_t *idx);

/* JSON access: am_jget(root, "agreement", pair, "spearman", NULL) walks object keys;
 * NULL when a step is missing or not an object. */
json_t *am_jget(json_t *root, ...);
/* A number (integer or real) as double; NaN for null, missing or other types. */
double am_jnum(const json_t *v);
/* A string, or NULL. */
const char *am_jstr(const json_t *v);
/* [L][H] nested arrays into out (L*H doubles, NaN where missing). */
void am_jgrid(const json_t *v, int L, int H, double *out);

#endif
