/* report_dataset.c — see report_dataset.h. */
#include "support/report_dataset.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/dataset_builder.h"

const char *const rds_hostile[RDS_NHOSTILE] = {
    "<img src=x onerror=alert(1)>", "<img src=x onerror=\"document.title='pwned'\">",
    "</script><script>document.title='pwned2'</script>", "\"quoted\" & 'single' <b>",
    "line\xe2\x80\xa8sep"};

#define NWORDS 12
static const char *const words[NWORDS] = {"the",  "movie", "was",  "not",
                                          "good", "at",    "all",  "naïve",
                                          "plot", "great", "cast", "ending"};

/* Vocabulary entry k: the hostile strings first, then the words. */
static const char *vocab(int k) {
  return k < RDS_NHOSTILE ? rds_hostile[k] : words[(k - RDS_NHOSTILE) % NWORDS];
}

int rds_make(const rds_spec_t *spec, const char *path) {
  int B = spec->B, T = spec->T, *len = malloc((size_t)B * sizeof *len);
  if (!len)
    return -1;
  for (int b = 0; b < B; b++)
    len[b] = spec->varied && !spec->grid ? T - b % 3 : T;
  dsb_spec_t s = {.L = spec->L,
                  .H = spec->H,
                  .B = B,
                  .T = T,
                  .dtype = AM_DTYPE_F32,
                  .lengths = len,
                  .grads = spec->grads,
                  .saliency = spec->saliency,
                  .labels = spec->labels,
                  .special = 1,
                  .seed = spec->seed};
  dsb_t *ds = dsb_build(&s);
  for (int l = 0; ds && spec->known && l < spec->L; l++)
    for (int b = 0; b < B; b++)
      for (int h = 0; h < spec->H; h++)
        for (int j = 0; j < T; j++)
          *dsb_att(ds, l, b, h, 0, j) = rds_known(l, h, j);
  json_t *all = json_array();
  for (int b = 0; ds && b < B; b++) {
    json_t *row = json_array();
    for (int p = 0; p < T; p++) {
      int rank = p - ds->start[b], n = ds->len[b];
      int64_t *id = &ds->ids[(size_t)b * T + p];
      const char *tok = "[PAD]";
      if (rank == 0)
        tok = "[CLS]";
      else if (rank == n - 1)
        tok = "[SEP]";
      else if (rank > 0 && rank < n - 1) {
        int k = (b + rank - 1) % (RDS_NHOSTILE + NWORDS);
        tok = vocab(k);
        *id = 2000 + k;
      }
      json_array_append_new(row, json_string(tok));
    }
    json_array_append_new(all, row);
  }
  int rc = -1;
  char *text = json_dumps(all, JSON_COMPACT);
  uint8_t *img = NULL;
  int32_t *gen = NULL;
  if (ds && text) {
    int n = dsb_tensors(ds);
    if (spec->img_h > 0 && spec->img_w > 0 && n < 64) {
      int C = spec->img_bad == 2 ? 4 : 3, Bi = spec->img_bad == 3 ? B + 1 : B;
      size_t cnt = (size_t)Bi * spec->img_h * spec->img_w * C;
      img = malloc(cnt * (spec->img_bad == 1 ? 4 : 1));
      for (size_t i = 0; img && i < cnt; i++) {
        size_t px = i / C;
        int k = (int)(i % C), x = (int)(px % spec->img_w),
            y = (int)(px / spec->img_w % spec->img_h),
            b = (int)(px / spec->img_w / spec->img_h);
        uint8_t v = rds_pixel(b, y, x, k % 3);
        if (spec->img_bad == 1)
          ((float *)img)[i] = v;
        else
          img[i] = v;
      }
      am_named_tensor_t *t = &ds->list[n++];
      t->name = "images";
      t->tensor = (am_tensor_t){spec->img_bad == 1 ? AM_DTYPE_F32 : AM_DTYPE_U8,
                                4,
                                {Bi, spec->img_h, spec->img_w, C},
                                img,
                                cnt * (spec->img_bad == 1 ? 4 : 1)};
    }
    if (spec->gen_start > 0 && n < 64 && (gen = malloc((size_t)B * sizeof *gen))) {
      for (int b = 0; b < B; b++)
        gen[b] = (int32_t)(ds->start[b] + spec->gen_start);
      am_named_tensor_t *t = &ds->list[n++];
      t->name = "generation_start";
      t->tensor = (am_tensor_t){AM_DTYPE_I32, 1, {B}, gen, (size_t)B * sizeof *gen};
    }
    const char *meta[6] = {"attnmap.tokens",      text,           "model",
                           "report test <model>", "attnmap.grid", spec->grid};
    rc = dsb_write_list(path, ds->list, n, meta, spec->grid ? 3 : 2);
  }
  free(text);
  free(img);
  free(gen);
  json_decref(all);
  dsb_free(ds);
  free(len);
  return rc;
}

uint8_t rds_pixel(int b, int y, int x, int k) {
  return (uint8_t)((k == 0   ? 9 * x + 3 * b
                    : k == 1 ? 7 * y + 5 * b
                             : 4 * (x + y) + 40) %
                   256);
}

float rds_known(int l, int h, int j) {
  (void)l;
  int m = h % 2 ? 17 - j : j;
  return j == 0 ? 8.0f / 264.0f : (float)(2 * m - 1) / 264.0f;
}

am_status rds_analyze(am_ctx_t *ctx, const char *data, const char *run) {
  return rds_analyze_plan(ctx, data, run, NULL);
}

am_status rds_analyze_plan(am_ctx_t *ctx, const char *data, const char *run,
                           const am_plan_t *given) {
  am_dataset_t *ds = NULL;
  am_status st = am_dataset_open(ctx, &data, 1, &ds);
  if (st != AM_STATUS_OK)
    return st;
  am_plan_t plan;
  am_plan_init(&plan);
  if (given)
    plan = *given;
  am_run_options_t o;
  am_run_options_init(&o);
  st = am_run_analyze(ctx, ds, &plan, run, &o);
  am_dataset_close(ds);
  return st;
}

char *rds_html_escape(const char *s) {
  char *out = malloc(6 * strlen(s) + 1), *o = out;
  for (; out && *s; s++) {
    const char *e = *s == '&'    ? "&amp;"
                    : *s == '<'  ? "&lt;"
                    : *s == '>'  ? "&gt;"
                    : *s == '"'  ? "&quot;"
                    : *s == '\'' ? "&#39;"
                                 : NULL;
    if (e) {
      strcpy(o, e);
      o += strlen(e);
    } else {
      *o++ = *s;
    }
  }
  if (out)
    *o = '\0';
  return out;
}
