/* views.c — attention views of one example, from the original dataset and over its real
 * tokens only: a model view (a layer x head grid of attention-matrix thumbnails, as in
 * BertViz's model view, each box-averaged down to a few pixels and scaled to its own
 * maximum) and the data of a head view (token-to-token lines weighted by attention, drawn
 * by the page's script for the chosen head). To stay legible at 512 tokens and 32 x 32
 * heads the model view is one PNG, and the head view keeps the 3 strongest keys of each
 * query (weight >= 0.01) for as many heads as fit 60,000 lines, most important first.
 * With a patch grid (attnmap.grid) the head view is instead one layer's heads side by side,
 * each the target row's attention over the R x C patches as a small heatmap scaled to its
 * own patch maximum, the prefix tokens' weights listed under it: 197 labels cannot be
 * read, a 14 x 14 picture can. */
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
#define HG_GAP 4

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

/* A view's RGB image as img/file, with its tEXt chunks (viridis from 0). */
static am_status write_png(am_report_t *r, const char *file, const uint8_t *rgb, int W,
                           int H, const char *quantity, const char *vmax) {
  char path[4200], soft[32];
  snprintf(soft, sizeof soft, "attnmap %s", am_version());
  am_png_text_t texts[] = {{"attnmap.quantity", quantity},
                           {"attnmap.colormap", "viridis"},
                           {"attnmap.vmin", "0"},
                           {"attnmap.vmax", vmax},
                           {"Software", soft}};
  return am_png_write_rgb(r->ctx, am_report_img_path(r, path, sizeof path, file), rgb, W, H,
                          texts, 5);
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
  char file[96], src[128], attrs[128];
  snprintf(file, sizeof file, "ex%lld-model.png", (long long)ex);
  snprintf(src, sizeof src, "img/%s", file);
  am_status st =
      write_png(r, file, rgb, W, Ht,
                "attention (model view: layer rows, head columns; query rows, key "
                "columns)",
                "each head's maximum");
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
    am_html_json_str(
        h, am_token_display(am_report_token(r, ex, e->idx[i], i, e->n, buf, sizeof buf),
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

/* The run's target row among the n valid tokens as summary.json's options record it
 * (-1: the mean of all rows); the first token when unknown. */
static int target_row(const am_report_t *r, int n) {
  const json_t *t =
      json_object_get(am_jget(r->run.summary, "provenance", "options", NULL), "target");
  if (json_is_integer(t)) {
    json_int_t k = json_integer_value(t), at = k < 0 ? n + k : k;
    return at >= 0 && at < n ? (int)at : 0;
  }
  const char *s = json_string_value(t);
  return s && !strcmp(s, "last") ? n - 1 : s && !strcmp(s, "mean") ? -1 : 0;
}

/* Row q of head h (q < 0: the mean of all rows) into row[0..n). */
static void query_row(const ex_att_t *e, const void *layer, int h, int q, float *row,
                      float *span, float *tmp) {
  if (q >= 0) {
    load_row(e, layer, h, q, row, span);
    return;
  }
  for (int j = 0; j < e->n; j++)
    row[j] = 0;
  for (int i = 0; i < e->n; i++) {
    load_row(e, layer, h, i, tmp, span);
    for (int j = 0; j < e->n; j++)
      row[j] += tmp[j] / (float)e->n;
  }
}

/* One layer's tiles: heads side by side in one PNG (a tw x th tile each, HG_GAP apart),
 * each shown through its own cropping <svg> so that the tiles wrap on narrow pages. */
static am_status grid_layer(am_report_t *r, const ex_att_t *e, int64_t ex,
                            const am_grid_t *g, int l, int q, int shown, float *buf) {
  int H = e->H, n = e->n, P = g->prefix, R = g->rows, C = g->cols, big = R > C ? R : C;
  int s = 96 / big, tw, th, W;
  s = s < 2 ? 2 : s > 24 ? 24 : s;
  tw = C * s, th = R * s, W = H * (tw + HG_GAP) - HG_GAP;
  float *row = buf, *span = buf + n, *tmp = span + e->sh->T, *pre = tmp + n,
        *mx = pre + H * P;
  uint8_t *rgb = malloc((size_t)W * th * 3);
  if (!rgb)
    return am_fail(r->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  memset(rgb, 255, (size_t)W * th * 3);
  const void *layer = am_layers_example(&e->sh->att, e->sh, H, l, e->b);
  for (int h = 0; h < H; h++) {
    query_row(e, layer, h, q, row, span, tmp);
    mx[h] = 0;
    for (int j = P; j < n; j++)
      mx[h] = row[j] > mx[h] ? row[j] : mx[h];
    for (int p = 0; p < P; p++)
      pre[h * P + p] = row[p];
    for (int y = 0; y < th; y++)
      for (int x = 0; x < tw; x++)
        am_colormap_rgb(AM_COLORMAP_VIRIDIS, row[P + (y / s) * C + x / s], 0.0,
                        mx[h] > 0 ? mx[h] : 1.0,
                        rgb + ((size_t)y * W + (size_t)h * (tw + HG_GAP) + x) * 3);
  }
  char file[96];
  snprintf(file, sizeof file, "ex%lld-hgrid-%d.png", (long long)ex, l);
  am_status st = write_png(r, file, rgb, W, th,
                           "attention of the target row over the patch grid (heads left to "
                           "right)",
                           "each head's patch maximum");
  free(rgb);
  if (st != AM_STATUS_OK)
    return st;
  am_html_t *h = &r->html;
  am_html_printf(h, "<div class=\"hgl\" data-l=\"%d\"%s>", l, shown ? "" : " hidden");
  char tb[64], text[512];
  for (int k = 0; k < H; k++) {
    am_html_printf(h,
                   "<div class=\"hg\"><div>layer %d, head %d</div><svg width=\"%d\" "
                   "height=\"%d\" viewBox=\"%d 0 %d %d\" role=\"img\"><title>layer %d, "
                   "head %d: patch maximum %.3f</title><image href=\"img/%s\" width=\"%d\" "
                   "height=\"%d\" style=\"image-rendering:pixelated\"/></svg>",
                   l, k, tw, th, k * (tw + HG_GAP), tw, th, l, k, mx[k], file, W, th);
    for (int p = 0; p < P; p++) {
      am_html_raw(h, "<div class=\"hgp\">");
      am_html_text(h,
                   am_token_display(am_report_token(r, ex, e->idx[p], p, n, tb, sizeof tb),
                                    text, sizeof text));
      am_html_printf(h, " %.3f</div>", pre[k * P + p]);
    }
    am_html_printf(h, "<div class=\"hgp\">patch max %.3f</div></div>", mx[k]);
  }
  am_html_raw(h, "</div>");
  return AM_STATUS_OK;
}

static am_status grid_head_view(am_report_t *r, const ex_att_t *e, int64_t ex,
                                const am_grid_t *g) {
  int L = r->run.L, H = e->H, n = e->n, q = target_row(r, n);
  int top = r->head_rank ? r->head_rank[0] / H : 0;
  float *buf =
      malloc(((size_t)3 * n + e->sh->T + (size_t)H * (g->prefix + 1)) * sizeof *buf);
  if (!buf)
    return am_fail(r->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  am_html_t *h = &r->html;
  am_html_printf(h,
                 "<div class=\"card\"><div>Head view over the %dx%d patch grid: "
                 "<select class=\"hgsel\">",
                 g->rows, g->cols);
  for (int l = 0; l < L; l++)
    am_html_printf(h, "<option value=\"%d\"%s>layer %d</option>", l,
                   l == top ? " selected" : "", l);
  am_html_raw(h, "</select> attention of query ");
  char tb[64], text[512];
  if (q >= 0)
    am_html_text(h, am_token_display(am_report_token(r, ex, e->idx[q], q, n, tb, sizeof tb),
                                     text, sizeof text));
  else
    am_html_raw(h, "(the mean of all rows)");
  am_html_printf(h,
                 " (the run's target) over the patches, each head scaled to its own "
                 "patch maximum (viridis, 0 to max); the %d prefix token(s) are listed "
                 "under each head.</div>",
                 g->prefix);
  am_status st = AM_STATUS_OK;
  for (int l = 0; l < L && st == AM_STATUS_OK; l++)
    st = grid_layer(r, e, ex, g, l, q, l == top, buf);
  am_html_raw(h, "</div>");
  free(buf);
  return st;
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
    am_grid_t g;
    int grid = am_report_grid(r, &g) && e.n == g.prefix + g.rows * g.cols && g.rows > 0;
    st = model_view(r, &e, ex);
    if (st == AM_STATUS_OK && grid)
      st = grid_head_view(r, &e, ex, &g);
    else if (st == AM_STATUS_OK)
      head_view(r, &e, ex);
    am_html_raw(&r->html, "</div>");
    r->views_done++;
  }
  free(e.idx);
  return st;
}
