/* dataset_builder.c — synthetic datasets for the tests (see dataset_builder.h): seeded
 * masked-softmax attentions, gradients, saliency, embeddings, masks and labels, written
 * with am_safetensors_write; raw malformed files; temp folders. */
#include "dataset_builder.h"

#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/half.h"

static uint64_t next_u64(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static double uniform(uint64_t *s) {
  return (double)(next_u64(s) >> 11) / 9007199254740992.0;
}
static double gauss(uint64_t *s) {
  double u = uniform(s) + 1e-300, v = uniform(s);
  return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}
/* An arbitrary finite value in [0,1) for padded cell k (its own stream: the values of
 * valid cells do not depend on the padding). */
static float junk(uint64_t k) {
  uint64_t s = k * 0x2545F4914F6CDD1Dull + 0x1234567ull;
  return (float)uniform(&s);
}

static size_t at5(const dsb_spec_t *p, int l, int b, int h, int i, int j) {
  return ((((size_t)l * (size_t)p->B + (size_t)b) * (size_t)p->H + (size_t)h) *
              (size_t)p->T +
          (size_t)i) *
             (size_t)p->T +
         (size_t)j;
}

float *dsb_att(dsb_t *ds, int l, int b, int h, int i, int j) {
  return ds->att + at5(&ds->spec, l, b, h, i, j);
}
float *dsb_grad(dsb_t *ds, int l, int b, int h, int i, int j) {
  return ds->grad ? ds->grad + at5(&ds->spec, l, b, h, i, j) : NULL;
}

/* One example: every draw is in valid-token coordinates, in a fixed order. */
static void fill_example(dsb_t *ds, int b) {
  const dsb_spec_t *p = &ds->spec;
  int n = ds->len[b], s = ds->start[b], T = p->T, D = p->embed_dim;
  uint64_t rng =
      p->seed * 0x9E3779B97F4A7C15ull ^ (uint64_t)(p->first + b) * 0xD1B54A32D192ED03ull;
  double logit[64];
  for (int i = 0; i < n; i++)
    ds->mask[(size_t)b * T + (size_t)(s + i)] = 1;
  for (int l = 0; l < p->L; l++)
    for (int h = 0; h < p->H; h++)
      for (int i = 0; i < n; i++) {
        double mx = -1e300, sum = 0;
        for (int j = 0; j < n; j++) {
          logit[j] =
              (1.0 + h) * (gauss(&rng) * 0.7 + (j == 0 ? 1.5 : 0) + (i == j ? 1.0 : 0));
          mx = logit[j] > mx ? logit[j] : mx;
        }
        for (int j = 0; j < n; j++)
          sum += (logit[j] = exp(logit[j] - mx));
        for (int j = 0; j < n; j++)
          *dsb_att(ds, l, b, h, s + i, s + j) = (float)(logit[j] / sum);
      }
  if (ds->grad)
    for (int l = 0; l < p->L; l++)
      for (int h = 0; h < p->H; h++)
        for (int i = 0; i < n; i++)
          for (int j = 0; j < n; j++)
            *dsb_grad(ds, l, b, h, s + i, s + j) = (float)(0.1 * gauss(&rng));
  for (int i = 0; ds->sal && i < n; i++)
    ds->sal[(size_t)b * T + (size_t)(s + i)] = (float)gauss(&rng);
  for (int i = 0; D > 0 && i < n; i++)
    for (int d = 0; d < D; d++) {
      size_t k = ((size_t)b * T + (size_t)(s + i)) * (size_t)D + (size_t)d;
      ds->emb[k] = (float)gauss(&rng);
      ds->egrad[k] = (float)(0.1 * gauss(&rng));
    }
  for (int i = 0; ds->special && i < n; i++) {
    size_t k = (size_t)b * T + (size_t)(s + i);
    ds->special[k] = i == 0 || i == n - 1;
    ds->ids[k] = i == 0 ? 101 : i == n - 1 ? 102 : 1000 + (int64_t)(uniform(&rng) * 50);
  }
  if (ds->labels) {
    ds->labels[b] = (p->first + b) % 2;
    ds->preds[b] = uniform(&rng) < 0.7 ? ds->labels[b] : 1 - ds->labels[b];
  }
}

/* Padded cells (a padded query or key) get junk (NaN with pad_junk 2); valid cells are
 * left alone. */
static void fill_padding(dsb_t *ds, int b) {
  const dsb_spec_t *p = &ds->spec;
  int T = p->T, D = p->embed_dim, nan_pad = p->pad_junk == 2;
  for (int i = 0; i < T; i++) {
    int vi = ds->mask[(size_t)b * T + (size_t)i] != 0;
    for (int l = 0; l < p->L; l++)
      for (int h = 0; h < p->H; h++)
        for (int j = 0; j < T; j++) {
          if (vi && ds->mask[(size_t)b * T + (size_t)j])
            continue;
          size_t k = at5(p, l, b, h, i, j);
          ds->att[k] = nan_pad ? NAN : junk(k);
          if (ds->grad)
            ds->grad[k] = nan_pad ? NAN : junk(k + 7) - 0.5f;
        }
    if (vi)
      continue;
    size_t k = (size_t)b * T + (size_t)i;
    if (ds->sal)
      ds->sal[k] = nan_pad ? NAN : junk(k + 11) * 10;
    for (int d = 0; d < D; d++) {
      ds->emb[k * (size_t)D + (size_t)d] = nan_pad ? NAN : junk(k * 31 + (size_t)d);
      ds->egrad[k * (size_t)D + (size_t)d] = nan_pad ? NAN : junk(k * 37 + (size_t)d);
    }
  }
}

dsb_t *dsb_build(const dsb_spec_t *spec) {
  const dsb_spec_t *p = spec;
  if (p->L < 1 || p->L > 16 || p->H < 1 || p->B < 1 || p->T < 1 || p->T > 64 ||
      p->embed_dim < 0 || (p->dtype != AM_DTYPE_F32 && p->dtype != AM_DTYPE_F16))
    return NULL;
  dsb_t *ds = calloc(1, sizeof *ds);
  if (!ds)
    return NULL;
  ds->spec = *spec;
  ds->spec.lengths = NULL;
  size_t B = (size_t)p->B, T = (size_t)p->T, D = (size_t)p->embed_dim;
  size_t n5 = (size_t)p->L * B * (size_t)p->H * T * T;
  ds->len = calloc(B, sizeof *ds->len);
  ds->start = calloc(B, sizeof *ds->start);
  ds->att = calloc(n5, sizeof *ds->att);
  ds->grad = p->grads ? calloc(n5, sizeof *ds->grad) : NULL;
  ds->mask = calloc(B * T, sizeof *ds->mask);
  ds->special = p->special ? calloc(B * T, sizeof *ds->special) : NULL;
  ds->ids = p->special ? calloc(B * T, sizeof *ds->ids) : NULL;
  ds->sal = p->saliency ? calloc(B * T, sizeof *ds->sal) : NULL;
  ds->emb = D ? calloc(B * T * D, sizeof *ds->emb) : NULL;
  ds->egrad = D ? calloc(B * T * D, sizeof *ds->egrad) : NULL;
  ds->labels = p->labels ? calloc(B, sizeof *ds->labels) : NULL;
  ds->preds = p->labels ? calloc(B, sizeof *ds->preds) : NULL;
  if (!ds->len || !ds->start || !ds->att || (p->grads && !ds->grad) || !ds->mask ||
      (p->special && (!ds->special || !ds->ids)) || (p->saliency && !ds->sal) ||
      (D && (!ds->emb || !ds->egrad)) || (p->labels && (!ds->labels || !ds->preds))) {
    dsb_free(ds);
    return NULL;
  }
  for (int b = 0; b < p->B; b++) {
    int n = spec->lengths ? spec->lengths[b] : p->T;
    if (n < 0 || n > p->T) {
      dsb_free(ds);
      return NULL;
    }
    ds->len[b] = n;
    ds->start[b] = p->left_pad ? p->T - n : 0;
    fill_example(ds, b);
    if (p->pad_junk)
      fill_padding(ds, b);
  }
  return ds;
}

static void free_encoded(dsb_t *ds) {
  for (int i = 0; i < ds->nencoded; i++)
    free(ds->encoded[i]);
  ds->nencoded = 0;
}

void dsb_free(dsb_t *ds) {
  if (!ds)
    return;
  free_encoded(ds);
  free(ds->len), free(ds->start), free(ds->att), free(ds->grad), free(ds->mask);
  free(ds->special), free(ds->ids), free(ds->sal), free(ds->emb), free(ds->egrad);
  free(ds->labels), free(ds->preds);
  free(ds);
}

static int add(dsb_t *ds, int n, const char *name, am_dtype dtype, const void *data,
               int ndim, const int64_t *shape) {
  snprintf(ds->names[n], sizeof ds->names[n], "%s", name);
  am_named_tensor_t *t = &ds->list[n];
  t->name = ds->names[n];
  memset(&t->tensor, 0, sizeof t->tensor);
  t->tensor.dtype = dtype;
  t->tensor.ndim = ndim;
  t->tensor.data = data;
  size_t bytes = am_dtype_size(dtype);
  for (int d = 0; d < ndim; d++) {
    t->tensor.shape[d] = shape[d];
    bytes *= (size_t)shape[d];
  }
  t->tensor.nbytes = bytes;
  return n + 1;
}

/* The F32 master in the spec's dtype (a new buffer for F16, kept in ds->encoded). */
static const void *encode(dsb_t *ds, const float *src, size_t count) {
  if (ds->spec.dtype == AM_DTYPE_F32)
    return src;
  uint16_t *h = malloc(count * sizeof *h + 1);
  if (!h)
    return NULL;
  for (size_t i = 0; i < count; i++)
    h[i] = am_f32_to_f16(src[i]);
  ds->encoded[ds->nencoded++] = h;
  return h;
}

/* attentions / attention_grads, stacked or per layer. */
static int add_layers(dsb_t *ds, int n, const char *role, const float *master) {
  const dsb_spec_t *p = &ds->spec;
  size_t per_layer = (size_t)p->B * (size_t)p->H * (size_t)p->T * (size_t)p->T;
  const unsigned char *data = encode(ds, master, per_layer * (size_t)p->L);
  size_t es = am_dtype_size(p->dtype);
  if (!p->per_layer) {
    int64_t shape[5] = {p->L, p->B, p->H, p->T, p->T};
    return add(ds, n, role, p->dtype, data, 5, shape);
  }
  int64_t shape[4] = {p->B, p->H, p->T, p->T};
  for (int l = 0; l < p->L; l++) {
    char name[32];
    snprintf(name, sizeof name, "%s.%d", role, l);
    n = add(ds, n, name, p->dtype, data + (size_t)l * per_layer * es, 4, shape);
  }
  return n;
}

int dsb_tensors(dsb_t *ds) {
  const dsb_spec_t *p = &ds->spec;
  int64_t bt[2] = {p->B, p->T}, btd[3] = {p->B, p->T, p->embed_dim}, b1[1] = {p->B};
  free_encoded(ds);
  int n = add_layers(ds, 0, "attentions", ds->att);
  if (ds->grad)
    n = add_layers(ds, n, "attention_grads", ds->grad);
  if (!p->no_mask)
    n = add(ds, n, "attention_mask", AM_DTYPE_I64, ds->mask, 2, bt);
  if (ds->special) {
    n = add(ds, n, "special_tokens_mask", AM_DTYPE_I64, ds->special, 2, bt);
    n = add(ds, n, "input_ids", AM_DTYPE_I64, ds->ids, 2, bt);
  }
  if (ds->sal)
    n = add(ds, n, "saliency.ig", AM_DTYPE_F32, ds->sal, 2, bt);
  if (ds->emb) {
    n = add(ds, n, "inputs_embeds", AM_DTYPE_F32, ds->emb, 3, btd);
    n = add(ds, n, "inputs_embeds_grads", AM_DTYPE_F32, ds->egrad, 3, btd);
  }
  if (ds->labels) {
    n = add(ds, n, "labels", AM_DTYPE_I64, ds->labels, 1, b1);
    n = add(ds, n, "predictions", AM_DTYPE_I64, ds->preds, 1, b1);
  }
  return n;
}

int dsb_find(const dsb_t *ds, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (strcmp(ds->list[i].name, name) == 0)
      return i;
  return -1;
}

int dsb_remove(dsb_t *ds, int n, int i) {
  if (i < 0 || i >= n)
    return n;
  memmove(&ds->list[i], &ds->list[i + 1], (size_t)(n - i - 1) * sizeof ds->list[0]);
  return n - 1;
}

int dsb_write_list(const char *path, const am_named_tensor_t *list, int n,
                   const char *const *meta, int nmeta) {
  am_ctx_options_t o = {.backend = "cpu", .threads = 1};
  am_ctx_t *ctx = NULL;
  char err[512] = "";
  if (am_ctx_create(&o, &ctx, err, sizeof err) != AM_STATUS_OK) {
    fprintf(stderr, "dataset_builder: %s\n", err);
    return -1;
  }
  am_status st = am_safetensors_write(ctx, path, list, n, meta, nmeta);
  if (st != AM_STATUS_OK)
    fprintf(stderr, "dataset_builder: %s\n", am_last_error(ctx));
  am_ctx_destroy(ctx);
  return st == AM_STATUS_OK ? 0 : -1;
}

int dsb_write(dsb_t *ds, const char *path) {
  int n = dsb_tensors(ds);
  const char *meta[] = {"model", "dataset_builder"};
  return dsb_write_list(path, ds->list, n, meta, 1);
}

int dsb_make(const dsb_spec_t *spec, const char *path) {
  dsb_t *ds = dsb_build(spec);
  int rc = ds ? dsb_write(ds, path) : -1;
  dsb_free(ds);
  return rc;
}

int dsb_write_raw(const char *path, uint64_t declared, const void *header,
                  size_t header_len, const void *data, size_t ndata) {
  unsigned char len[8];
  for (int i = 0; i < 8; i++)
    len[i] = (unsigned char)(declared >> (8 * i));
  FILE *f = fopen(path, "wb");
  if (!f)
    return -1;
  int bad = fwrite(len, 1, 8, f) != 8 ||
            (header_len && fwrite(header, 1, header_len, f) != header_len) ||
            (ndata && fwrite(data, 1, ndata, f) != ndata);
  return (fclose(f) != 0 || bad) ? -1 : 0;
}

int dsb_write_header(const char *path, const char *header, size_t ndata) {
  void *zeros = calloc(1, ndata + 1);
  if (!zeros)
    return -1;
  size_t n = strlen(header);
  int rc = dsb_write_raw(path, n, header, n, zeros, ndata);
  free(zeros);
  return rc;
}

int dsb_write_bytes(const char *path, const void *bytes, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f)
    return -1;
  int bad = n && fwrite(bytes, 1, n, f) != n;
  return (fclose(f) != 0 || bad) ? -1 : 0;
}

int dsb_tempdir(char *buf, size_t len, const char *tag) {
  snprintf(buf, len, "/tmp/attnmap-%s-XXXXXX", tag);
  return mkdtemp(buf) ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

void dsb_rmtree(const char *path) {
  if (path && *path)
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *dsb_join(char *buf, size_t len, const char *dir, const char *name) {
  snprintf(buf, len, "%s/%s", dir, name);
  return buf;
}

int dsb_exists(const char *path) {
  struct stat sb;
  return lstat(path, &sb) == 0;
}

int dsb_count_prefixed(const char *path, const char *suffix) {
  char dir[4096], prefix[4096];
  const char *slash = strrchr(path, '/');
  if (slash) {
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (!dir[0])
      snprintf(dir, sizeof dir, "/");
  } else {
    snprintf(dir, sizeof dir, ".");
  }
  snprintf(prefix, sizeof prefix, "%s%s", slash ? slash + 1 : path, suffix);
  DIR *d = opendir(dir);
  if (!d)
    return 0;
  int count = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    count += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
  closedir(d);
  return count;
}

char *dsb_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    size_t got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
    if (n + 1 < cap)
      break;
    char *grown = realloc(buf, cap * 2);
    if (!grown) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = grown;
    cap *= 2;
  }
  int err = ferror(f);
  fclose(f);
  if (!buf || err) {
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  if (len)
    *len = n;
  return buf;
}
