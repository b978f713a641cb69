/* views.c — attention views of one example, from the original dataset and over its real
 * tokens only: a model view (a layer x head grid of attention-matrix thumbnails, as in
 * BertViz's model view, each box-averaged down to a few pixels and scaled to its own
 * maximum) and the data of a head view (token-to-token lines weighted by attention, drawn
 * by the page's script for the chosen head). To stay legible at 512 tokens and 32 x 32
 * heads the model view is one PNG, and the head view keeps the 3 strongest keys of each
 * query (weight >= 0.01) for as many heads as fit 60,000 lines, most important first. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/half.h"
#include "dataset/dataset.h"
#include "report/colormap.h"
#include "report/png.h"
#include "report/report.h"
#include "report/svg.h"

#define HV_KEYS 3
#define HV_MIN_WEIGHT 0.01f
#define HV_BUDGET 60000
#define MV_GAP 2

typedef struct ex_att {
  const am_shard_t *sh;
  int64_t b;
  int n, H;
  int32_t *idx;
} ex_att_t;

static float att(const ex_att_t *e, const void *layer, int h, int i, int j) {
  int64_t T = e->sh->T;
  return am_load_float(layer, e->sh->att.layer[0]->dtype,
                       ((int64_t)h * T + e->idx[i]) * T + e->idx[j]);
}

/* Row i of head h over the valid keys into row[0..n), through span (a buffer of
 * idx[n-1] - idx[0] + 1 floats) when the valid keys are not contiguous. */
static void load_row(const ex_att_t *e, const void *layer, int h, int i, float *row,
                     float *span) {
  int64_t T = e->sh->T, first = e->idx[0], width = e->idx[e->n - 1] - first + 1;
  int64_t at = ((int64_t)h * T + e->idx[i]) * T + first;
  am_dtype dt = e->sh->att.layer[0]->dtype;
  if (width == e->n) {
    am_widen(row, layer, dt, at, e->n);
    return;
  }
  am_widen(span, layer, dt, at, width);
  for (int j = 0; j < e->n; j++)
    row[j] = span[e->idx[j] - first];
}

/* Thumbnail of head h of one layer: t x t box means of the n x n matrix into rgb. */
static void thumb(const ex_att_t *e, const void *layer, int h, int t, uint8_t *rgb,
                  size_t stride) {
  int n = e->n;
  float *cell = calloc((size_t)t * t, sizeof *cell), *row = malloc((size_t)n * sizeof *row);
  float *span = malloc((size_t)e->sh->T * sizeof *span);
  if (!cell || !row || !span)
    goto done;
  float mx = 0;
  for (int y = 0; y < t; y++) {
    int i0 = y * n / t, i1 = (y + 1) * n / t;
    i1 = i1 > i0 ? i1 : i0 + 1;
    for (int i = i0; i < i1; i++) {
      load_row(e, layer, h, i, row, span);
      for (int x = 0; x < t; x++) {
        int j0 = x * n / t, j1 = (x + 1) * n / t;
        j1 = j1 > j0 ? j1 : j0 + 1;
        double s = 0;
        for (int j = j0; j < j1; j++)
          s += row[j];
        cell[y * t + x] += (float)(s / ((double)(i1 - i0) * (j1 - j0)));
      }
    }
    for (int x = 0; x < t; x++)
      mx = cell[y * t + x] > mx ? cell[y * t + x] : mx;
  }
  for (int y = 0; y < t; y++)
    for (int x = 0; x < t; x++)
      am_colormap_rgb(AM_COLORMAP_VIRIDIS, cell[y * t + x], 0.0, mx > 0 ? mx : 1.0,
                      rgb + (size_t)y * stride + (size_t)x * 3);
done:
  free(cell);
  free(row);
  free(span);
}

static am_status model_view(am_report_t *r, const ex_att_t *e, int64_t ex) {
  int L = r->run.L, H = e->H, big = L > H ? L : H;
  int t = 720 / (big ? big : 1) - MV_GAP;
  t = t < 6 ? 6 : t > 48 ? 48 : t;
  if (e->n < t) /* whole pixels per token */
    t = e->n * (t / e->n);
  int step = t + MV_GAP, W = H * step + MV_GAP, Ht = L * step + MV_GAP;
  uint8_t *rgb = malloc((size_t)W * Ht * 3);
  if (!rgb)
    return am_fail(r->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  memset(rgb, 255, (size_t)W * Ht * 3);
#pragma omp parallel for schedule(dynamic)
  for (int k = 0; k < L * H; k++) {
    int l = k / H, h = k % H;
    const void *layer = am_layers_example(&e->sh->att, e->sh, H, l, e->b);
    thumb(e, layer, h, t,
          rgb + ((size_t)(MV_GAP + l * step) * W + (size_t)(MV_GAP + h * step)) * 3,
          (size_t)W * 3);
  }
  char file[96], path[4200], src[128], attrs[128];
  snprintf(file, sizeof file, "ex%lld-model.png", (long long)ex);
  snprintf(src, sizeof src, "img/%s", file);
  char soft[32];
  snprintf(soft, sizeof soft, "attnmap %s", am_version());
  am_png_text_t texts[] = {{"attnmap.quantity", "attention (model view: layer rows, head "
                                                "columns; query rows, key columns)"},
                           {"attnmap.colormap", "viridis"},
                           {"attnmap.vmin", "0"},
                           {"attnmap.vmax", "each head's maximum"},
                           {"Software", soft}};
  am_status st = am_png_write_rgb(r->ctx, am_report_img_path(r, path, sizeof path, file),
                                  rgb, W, Ht, texts, 5);
  free(rgb);
  if (st != AM_STATUS_OK)
    return st;
  am_html_t *h = &r->html;
  am_html_raw(h,
              "<div class=\"card\"><div>Model view: each thumbnail is one head's attention "
              "(query rows, key columns) over the real tokens, scaled to its own maximum. "
              "Click a head to draw it in the head view.</div>");
  snprintf(attrs, sizeof attrs, "class=\"mv\" data-l=\"%d\" data-h=\"%d\"", L, H);
  am_svg_heatmap_t m = {
      src, "layer", "head", "model view", attrs, L, H, step, AM_COLORMAP_VIRIDIS, 0.0, 1.0};
  am_svg_heatmap(h, &m);
  am_html_raw(h, "</div>");
  return AM_STATUS_OK;
}

/* The HV_KEYS strongest keys of query i (weight >= HV_MIN_WEIGHT, the strongest always). */
static int strongest(const ex_att_t *e, const void *layer, int h, int i, int *key,
                     float *w) {
  int m = 0;
  for (int j = 0; j < e->n; j++) {
    float a = att(e, layer, h, i, j);
    int at;
    if (m < HV_KEYS)
      at = m++;
    else if (a > w[HV_KEYS - 1])
      at = HV_KEYS - 1;
    else
      continue;
    while (at > 0 && w[at - 1] < a) {
      w[at] = w[at - 1];
      key[at] = key[at - 1];
      at--;
    }
    w[at] = a;
    key[at] = j;
  }
  int keep = m ? 1 : 0;
  while (keep < m && w[keep] >= HV_MIN_WEIGHT)
    keep++;
  return keep;
}

static void head_view(am_report_t *r, const ex_att_t *e, int64_t ex) {
  am_html_t *h = &r->html;
  int LH = r->run.L * e->H, per = e->n * HV_KEYS;
  int heads = per ? HV_BUDGET / per : LH;
  heads = heads < 1 ? 1 : heads > LH ? LH : heads;
  am_html_printf(h,
                 "<div class=\"card\"><div>Head view: <select class=\"hsel\"></select> "
                 "%d of %d heads, most important first; lines from each query token "
                 "(left) to its %d strongest keys (right), opacity = attention.</div>"
                 "<div class=\"hv\" data-src=\"hv-%lld\"></div></div>",
                 heads, LH, HV_KEYS, (long long)ex);
  am_html_printf(h, "<script type=\"application/json\" id=\"hv-%lld\">{\"tok\":[",
                 (long long)ex);
  char buf[64], text[512];
  for (int i = 0; i < e->n; i++) {
    am_html_raw(h, i ? "," : "");
    am_html_json_str(h, am_token_display(am_report_token(r, ex, e->idx[i], i, e->n, buf,
                                                         sizeof buf),
                                         text, sizeof text));
  }
  am_html_raw(h, "],\"heads\":[");
  for (int k = 0; k < heads; k++) {
    int l = r->head_rank[k] / e->H, hd = r->head_rank[k] % e->H;
    const void *layer = am_layers_example(&e->sh->att, e->sh, e->H, l, e->b);
    am_html_printf(h, "%s[%d,%d,[", k ? "," : "", l, hd);
    int first = 1;
    for (int i = 0; i < e->n; i++) {
      int key[HV_KEYS];
      float w[HV_KEYS];
      int m = strongest(e, layer, hd, i, key, w);
      for (int q = 0; q < m; q++, first = 0)
        am_html_printf(h, "%s%d,%d,%d", first ? "" : ",", i, key[q],
                       (int)lrintf(w[q] * 1000.0f));
    }
    am_html_raw(h, "]]");
  }
  am_html_raw(h, "]}</script>");
}

am_status am_report_views(am_report_t *r, int64_t ex) {
  const am_dataset_t *ds = r->ds;
  ex_att_t e = {0};
  for (int s = 0; s < ds->nshards; s++)
    if (ex >= ds->shards[s].first && ex < ds->shards[s].first + ds->shards[s].B) {
      e.sh = &ds->shards[s];
      e.b = ex - e.sh->first;
    }
  if (!e.sh || !e.sh->att.layer)
    return AM_STATUS_OK;
  e.H = ds->H;
  e.idx = malloc((size_t)e.sh->T * sizeof *e.idx);
  if (!e.idx)
    return am_fail(r->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  e.n = am_shard_valid_positions(e.sh, e.b, e.idx);
  am_status st = AM_STATUS_OK;
  if (e.n > 0 && r->run.L > 0 && e.H > 0) {
    am_html_raw(&r->html, "<h4>Attention views</h4><div class=\"grid\">");
    st = model_view(r, &e, ex);
    if (st == AM_STATUS_OK)
      head_view(r, &e, ex);
    am_html_raw(&r->html, "</div>");
    r->views_done++;
  }
  free(e.idx);
  return st;
}
