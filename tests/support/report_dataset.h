/* report_dataset.h — datasets for the report suites: dataset_builder's tensors plus
 * __metadata__ attnmap.tokens whose strings include markup that would run script if a
 * page parsed it (rds_hostile), input ids that match the strings, and optionally a ViT
 * patch grid (attnmap.grid). */
#ifndef TESTS_SUPPORT_REPORT_DATASET_H
#define TESTS_SUPPORT_REPORT_DATASET_H

#include <stdint.h>

#include "attnmap.h"

#define RDS_NHOSTILE 5
/* <img src=x onerror=alert(1)>, an onerror that sets document.title to "pwned", a
 * </script> that would start a script setting it to "pwned2", quotes and ampersands,
 * a U+2028 line separator. */
extern const char *const rds_hostile[RDS_NHOSTILE];

typedef struct rds_spec {
  int L, H, B, T;
  int grads, saliency, labels; /* as dataset_builder's spec */
  int varied;                  /* 1: example b has T - (b % 3) valid tokens */
  const char *grid;            /* "RxC+P" (then every example has T tokens) or NULL */
  int known;                   /* 1: row 0 of every head is rds_known's (with a grid) */
  int img_h, img_w;            /* > 0: tensor images U8 [B,img_h,img_w,3] (rds_pixel) */
  int img_bad;                 /* images written wrong: 1 F32, 2 four channels, 3 B+1 */
  int gen_start;               /* > 0: generation_start I32 [B], example b's valid token
                                  gen_start (its first generated token) */
  uint64_t seed;
} rds_spec_t;

/* With .known, what token 0 gives token j in layer l, head h of every example (T tokens,
 * one prefix): 8/264 to itself, (2m - 1)/264 to patch m = 1..16 (T = 17), the patches in
 * reverse order in odd heads; its patch maximum is 31/264, and no patch sits on a
 * colormap boundary (m/31 * 256 is never whole). */
float rds_known(int l, int h, int j);

/* Channel k of pixel (y, x) of example b's image: a smooth gradient per example. */
uint8_t rds_pixel(int b, int y, int x, int k);

/* Writes the dataset to path; 0 on success. Every example's valid tokens are [CLS], words
 * (the hostile strings among them, at least one per example when T >= 4) and [SEP]. */
int rds_make(const rds_spec_t *spec, const char *path);

/* attnmap analyze of the dataset at data into run with the default plan (the status; the
 * message on ctx). */
am_status rds_analyze(am_ctx_t *ctx, const char *data, const char *run);
/* The same with plan (NULL: the default plan). */
am_status rds_analyze_plan(am_ctx_t *ctx, const char *data, const char *run,
                           const am_plan_t *plan);

/* s with & < > " ' written as HTML entities (malloc'd): what a page must show. */
char *rds_html_escape(const char *s);

#endif
