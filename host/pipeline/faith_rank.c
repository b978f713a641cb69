/* faith_rank.c — see faith_rank.h and docs/faithfulness.md, "Ranking" and "Listed
 * examples". Ranking: every map (random included, as the reference) by mean AOPC
 * comprehensiveness, higher first; ties by mean AOPC sufficiency, lower first, then the
 * metadata's order. The most agreed-upon map: the map (random excluded) whose agreement
 * pairs in the run's summary.json have the highest mean Spearman correlation, averaged
 * over the pairs that name it; its listed examples are those with its lowest AOPC
 * comprehensiveness (ties by index), each with the map's rank among the maps there. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/faith_rank.h"

typedef struct entry {
  int m;
  double c, s;
} entry_t;

static double mean_of(const am_faith_t *f, const float *rows, int m) {
  am_welford_t w = {0, 0, 0};
  for (int64_t i = 0; i < f->N; i++)
    if (f->tokens[i] > 0)
      am_welford_add(&w, rows[(size_t)i * f->M + m]);
  return w.n ? w.mean : NAN;
}

static int cmp_entry(const void *pa, const void *pb) {
  const entry_t *a = pa, *b = pb;
  int na = isnan(a->c), nb = isnan(b->c);
  if (na != nb)
    return na - nb;
  if (!na && a->c != b->c)
    return a->c > b->c ? -1 : 1;
  if (!isnan(a->s) && !isnan(b->s) && a->s != b->s)
    return a->s < b->s ? -1 : 1;
  return a->m - b->m;
}

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

json_t *am_faith_ranking(const am_faith_t *f) {
  entry_t e[AM_FAITH_MAX_MAPS];
  for (int m = 0; m < f->M; m++)
    e[m] = (entry_t){m, mean_of(f, f->aopc_c, m), mean_of(f, f->aopc_s, m)};
  double random = e[f->M - 1].c; /* "random" is last (faith_meta.c) */
  qsort(e, (size_t)f->M, sizeof *e, cmp_entry);
  json_t *a = json_array();
  for (int r = 0; r < f->M; r++)
    json_array_append_new(a, json_pack("{s:i,s:s,s:o,s:o,s:o}", "rank", r + 1, "map",
                                       f->maps[e[r].m], "aopc_comprehensiveness",
                                       num(e[r].c), "aopc_sufficiency", num(e[r].s),
                                       "minus_random", num(e[r].c - random)));
  return a;
}

/* The mean Spearman correlation of the run's pairs that name map (NAN: none). */
static double agreement_of(const json_t *summary, const char *map) {
  const json_t *agree = json_object_get(summary, "agreement");
  const char *pair;
  const json_t *v;
  double sum = 0;
  int n = 0;
  size_t len = strlen(map);
  json_object_foreach((json_t *)agree, pair, v) {
    const char *tilde = strchr(pair, '~');
    if (!tilde)
      continue;
    int left = (size_t)(tilde - pair) == len && strncmp(pair, map, len) == 0;
    int right = strcmp(tilde + 1, map) == 0;
    const json_t *mean = json_object_get(json_object_get(v, "spearman"), "mean");
    if ((left || right) && json_is_number(mean)) {
      sum += json_number_value(mean);
      n++;
    }
  }
  return n ? sum / n : NAN;
}

typedef struct listed {
  int64_t i;
  float v;
} listed_t;

static int cmp_listed(const void *pa, const void *pb) {
  const listed_t *a = pa, *b = pb;
  if (a->v != b->v)
    return a->v < b->v ? -1 : 1;
  return (a->i > b->i) - (a->i < b->i);
}

/* The rank of map m among the maps other than random in example i (1 = most faithful). */
static int rank_in(const am_faith_t *f, int64_t i, int m) {
  const float *row = f->aopc_c + (size_t)i * f->M;
  int r = 1;
  for (int q = 0; q + 1 < f->M; q++)
    r += q != m && (row[q] > row[m] || (row[q] == row[m] && q < m));
  return r;
}

json_t *am_faith_most_agreed(const am_faith_t *f, const json_t *summary) {
  int best = -1;
  double best_v = NAN;
  for (int m = 0; m + 1 < f->M; m++) {
    double v = agreement_of(summary, f->maps[m]);
    if (!isnan(v) && (best < 0 || v > best_v)) {
      best = m;
      best_v = v;
    }
  }
  json_t *list = json_array();
  listed_t *l = best >= 0 ? malloc((size_t)(f->N ? f->N : 1) * sizeof *l) : NULL;
  int64_t n = 0;
  for (int64_t i = 0; l && i < f->N; i++) {
    float v = f->aopc_c[(size_t)i * f->M + best];
    if (f->tokens[i] > 0 && !isnan(v))
      l[n++] = (listed_t){i, v};
  }
  if (l)
    qsort(l, (size_t)n, sizeof *l, cmp_listed);
  for (int64_t k = 0; l && k < n && k < AM_FAITH_LISTED; k++)
    json_array_append_new(list, json_pack("{s:I,s:o,s:i,s:i}", "index", (json_int_t)l[k].i,
                                          "aopc_comprehensiveness", num(l[k].v), "rank",
                                          rank_in(f, l[k].i, best), "of", f->M - 1));
  free(l);
  return json_pack("{s:o,s:s,s:o,s:o}", "map",
                   best >= 0 ? json_string(f->maps[best]) : json_null(), "metric",
                   "spearman", "agreement", num(best_v), "examples", list);
}
