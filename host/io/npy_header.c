/* npy_header.c — parses the header of a .npy file, a Python dict literal such as
 * "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", with a small strict
 * parser (never an evaluator): exactly the keys descr, fortran_order and shape, each
 * once; quoted strings without escapes; True/False; a tuple of non-negative integers
 * (an 'L' suffix, as Python 2 wrote them, is accepted). Trailing spaces and the final
 * newline are allowed. */
#include <stdio.h>
#include <string.h>

#include "core/ctx.h"
#include "io/file.h"

typedef struct parser {
  am_ctx_t *ctx;
  const char *path;
  const char *s;
  size_t n, i;
} parser_t;

static am_status syntax(parser_t *p, const char *what) {
  return am_fail(p->ctx, AM_STATUS_BAD_INPUT,
                 "%s: npy header is not a valid dict: %s at header byte %zu", p->path, what,
                 p->i);
}

static void skip_ws(parser_t *p) {
  while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
                         p->s[p->i] == '\r'))
    p->i++;
}

static int peek(const parser_t *p) { return p->i < p->n ? (unsigned char)p->s[p->i] : -1; }

static int accept(parser_t *p, char c) {
  skip_ws(p);
  if (peek(p) != c)
    return 0;
  p->i++;
  return 1;
}

/* A quoted string without escapes, copied into buf (NUL-terminated). */
static am_status parse_string(parser_t *p, char *buf, size_t len) {
  skip_ws(p);
  int q = peek(p);
  if (q != '\'' && q != '"')
    return syntax(p, "expected a quoted string");
  size_t start = ++p->i;
  while (p->i < p->n && p->s[p->i] != q && p->s[p->i] != '\\' &&
         (unsigned char)p->s[p->i] >= 0x20)
    p->i++;
  if (peek(p) != q)
    return syntax(p, "unterminated string, or one with an escape or a control character");
  size_t k = p->i - start;
  if (k >= len)
    return syntax(p, "string too long");
  memcpy(buf, p->s + start, k);
  buf[k] = '\0';
  p->i++;
  return AM_STATUS_OK;
}

static am_status parse_bool(parser_t *p, int *out) {
  skip_ws(p);
  if (p->n - p->i >= 4 && memcmp(p->s + p->i, "True", 4) == 0) {
    *out = 1;
    p->i += 4;
  } else if (p->n - p->i >= 5 && memcmp(p->s + p->i, "False", 5) == 0) {
    *out = 0;
    p->i += 5;
  } else {
    return syntax(p, "fortran_order is not True or False");
  }
  return AM_STATUS_OK;
}

static am_status parse_int(parser_t *p, int64_t *out) {
  skip_ws(p);
  if (peek(p) == '-')
    return syntax(p, "negative dimension");
  if (peek(p) < '0' || peek(p) > '9')
    return syntax(p, "expected a dimension");
  int64_t v = 0;
  while (peek(p) >= '0' && peek(p) <= '9') {
    if (__builtin_mul_overflow(v, 10, &v) ||
        __builtin_add_overflow(v, p->s[p->i] - '0', &v))
      return syntax(p, "dimension too large");
    p->i++;
  }
  if (peek(p) == 'L')
    p->i++;
  *out = v;
  return AM_STATUS_OK;
}

/* A tuple: "()", "(5,)", "(3, 4)", "(3, 4,)". A lone "(5)" is an int, not a tuple. */
static am_status parse_shape(parser_t *p, am_npy_header_t *h) {
  if (!accept(p, '('))
    return syntax(p, "shape is not a tuple");
  int ndim = 0, commas = 0;
  while (!accept(p, ')')) {
    if (ndim == AM_MAX_DIMS)
      return am_fail(p->ctx, AM_STATUS_BAD_INPUT,
                     "%s: npy header: shape has more than %d dimensions", p->path,
                     AM_MAX_DIMS);
    am_status st = parse_int(p, &h->shape[ndim]);
    if (st != AM_STATUS_OK)
      return st;
    ndim++;
    if (accept(p, ','))
      commas++;
    else if (!accept(p, ')'))
      return syntax(p, "expected ',' or ')' in shape");
    else
      break;
  }
  if (ndim == 1 && commas == 0)
    return syntax(p, "shape is not a tuple");
  h->ndim = ndim;
  return AM_STATUS_OK;
}

/* '<f4' and friends. Byte order '<' little, '>' big, '|' not applicable, '=' or none
 * native (little-endian on every host attnmap builds for). */
static am_status parse_descr(parser_t *p, const char *d, am_npy_header_t *h) {
  static const struct {
    char kind;
    int size;
    am_dtype dtype;
  } table[] = {{'f', 2, AM_DTYPE_F16}, {'f', 4, AM_DTYPE_F32}, {'f', 8, AM_DTYPE_F64},
               {'i', 1, AM_DTYPE_I8},  {'i', 2, AM_DTYPE_I16}, {'i', 4, AM_DTYPE_I32},
               {'i', 8, AM_DTYPE_I64}, {'u', 1, AM_DTYPE_U8},  {'u', 2, AM_DTYPE_U16},
               {'u', 4, AM_DTYPE_U32}, {'u', 8, AM_DTYPE_U64}, {'b', 1, AM_DTYPE_BOOL}};
  const char *r = d;
  char order = '=';
  if (*r == '<' || *r == '>' || *r == '|' || *r == '=')
    order = *r++;
  if (r[0] == 'O' && (r[1] == '\0' || strcmp(r + 1, "8") == 0 || strcmp(r + 1, "4") == 0))
    return am_fail(p->ctx, AM_STATUS_BAD_INPUT,
                   "%s: npy header: object arrays (descr '%s') are not supported", p->path,
                   d);
  for (size_t k = 0; k < sizeof table / sizeof table[0]; k++) {
    char want[8];
    snprintf(want, sizeof want, "%c%d", table[k].kind, table[k].size);
    if (strcmp(r, want) == 0) {
      h->dtype = table[k].dtype;
      h->swap = order == '>' && table[k].size > 1;
      return AM_STATUS_OK;
    }
  }
  return am_fail(p->ctx, AM_STATUS_BAD_INPUT, "%s: npy header: unsupported descr '%s'",
                 p->path, d);
}

static am_status parse_value(parser_t *p, const char *key, am_npy_header_t *h) {
  if (strcmp(key, "descr") == 0) {
    skip_ws(p);
    if (peek(p) == '[')
      return am_fail(p->ctx, AM_STATUS_BAD_INPUT,
                     "%s: npy header: structured dtypes are not supported", p->path);
    char descr[32];
    am_status st = parse_string(p, descr, sizeof descr);
    return st != AM_STATUS_OK ? st : parse_descr(p, descr, h);
  }
  if (strcmp(key, "fortran_order") == 0)
    return parse_bool(p, &h->fortran);
  if (strcmp(key, "shape") == 0)
    return parse_shape(p, h);
  return am_fail(p->ctx, AM_STATUS_BAD_INPUT, "%s: npy header: unexpected key '%s'",
                 p->path, key);
}

static am_status parse_dict(parser_t *p, am_npy_header_t *h) {
  static const char *const keys[3] = {"descr", "fortran_order", "shape"};
  int seen[3] = {0, 0, 0};
  if (!accept(p, '{'))
    return syntax(p, "expected '{'");
  while (!accept(p, '}')) {
    char key[32];
    am_status st = parse_string(p, key, sizeof key);
    if (st != AM_STATUS_OK)
      return st;
    for (int k = 0; k < 3; k++)
      if (strcmp(key, keys[k]) == 0 && seen[k]++)
        return am_fail(p->ctx, AM_STATUS_BAD_INPUT,
                       "%s: npy header: key '%s' appears twice", p->path, key);
    if (!accept(p, ':'))
      return syntax(p, "expected ':'");
    st = parse_value(p, key, h);
    if (st != AM_STATUS_OK)
      return st;
    if (!accept(p, ',')) {
      if (!accept(p, '}'))
        return syntax(p, "expected ',' or '}'");
      break;
    }
  }
  for (int k = 0; k < 3; k++)
    if (!seen[k])
      return am_fail(p->ctx, AM_STATUS_BAD_INPUT, "%s: npy header: missing key '%s'",
                     p->path, keys[k]);
  skip_ws(p);
  if (p->i != p->n)
    return syntax(p, "unexpected text after the dict");
  return AM_STATUS_OK;
}

am_status am_npy_header_parse(am_ctx_t *ctx, const char *path, const char *text, size_t len,
                              am_npy_header_t *out) {
  memset(out, 0, sizeof *out);
  parser_t p = {ctx, path, text, len, 0};
  am_status st = parse_dict(&p, out);
  if (st != AM_STATUS_OK)
    memset(out, 0, sizeof *out);
  return st;
}
