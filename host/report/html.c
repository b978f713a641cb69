/* html.c — the report's text buffer and its escaping. Everything that comes from a data
 * file (token strings, model names, paths) is written through am_html_text or
 * am_html_json_str, so that a token such as <img src=x onerror=alert(1)> is shown as text
 * and never parsed as markup or script. */
#include "report/html.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ctx.h"
#include "core/json_guard.h"
#include "io/file.h"

void am_html_init(am_html_t *h) { memset(h, 0, sizeof *h); }

void am_html_free(am_html_t *h) {
  free(h->buf);
  memset(h, 0, sizeof *h);
}

static int reserve(am_html_t *h, size_t more) {
  if (h->oom)
    return 0;
  if (h->len + more + 1 <= h->cap)
    return 1;
  size_t cap = h->cap ? h->cap : 1 << 16;
  while (cap < h->len + more + 1)
    cap *= 2;
  char *b = realloc(h->buf, cap);
  if (!b) {
    h->oom = 1;
    return 0;
  }
  h->buf = b;
  h->cap = cap;
  return 1;
}

static void append(am_html_t *h, const char *s, size_t n) {
  if (!reserve(h, n))
    return;
  memcpy(h->buf + h->len, s, n);
  h->len += n;
  h->buf[h->len] = '\0';
}

void am_html_raw(am_html_t *h, const char *s) { append(h, s, strlen(s)); }

void am_html_printf(am_html_t *h, const char *fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n > 0 && reserve(h, (size_t)n)) {
    vsnprintf(h->buf + h->len, (size_t)n + 1, fmt, ap2);
    h->len += (size_t)n;
  }
  va_end(ap2);
}

void am_html_text(am_html_t *h, const char *s) {
  if (!s)
    return;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '&':
      am_html_raw(h, "&amp;");
      break;
    case '<':
      am_html_raw(h, "&lt;");
      break;
    case '>':
      am_html_raw(h, "&gt;");
      break;
    case '"':
      am_html_raw(h, "&quot;");
      break;
    case '\'':
      am_html_raw(h, "&#39;");
      break;
    default:
      if ((*p < 0x20 && *p != '\t' && *p != '\n') || *p == 0x7f)
        am_html_raw(h, "&#xFFFD;");
      else
        append(h, (const char *)p, 1);
    }
  }
}

void am_html_json_str(am_html_t *h, const char *s) {
  am_html_raw(h, "\"");
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    if (*p == '"' || *p == '\\') {
      char esc[3] = {'\\', (char)*p, 0};
      am_html_raw(h, esc);
    } else if (*p < 0x20 || *p == '<' || *p == '>' || *p == '&' || *p == 0x7f) {
      am_html_printf(h, "\\u%04x", *p);
    } else if (p[0] == 0xE2 && p[1] == 0x80 && (p[2] == 0xA8 || p[2] == 0xA9)) {
      am_html_printf(h, "\\u%04x", p[2] == 0xA8 ? 0x2028 : 0x2029);
      p += 2;
    } else {
      append(h, (const char *)p, 1);
    }
  }
  am_html_raw(h, "\"");
}

void am_html_num(am_html_t *h, double v) {
  if (isnan(v))
    am_html_raw(h, "NaN");
  else
    am_html_printf(h, "%.4g", v);
}

static int write_html(FILE *f, void *arg) {
  const am_html_t *h = arg;
  return h->len && fwrite(h->buf, 1, h->len, f) != h->len ? -1 : 0;
}

am_status am_html_write(am_ctx_t *ctx, const char *path, const am_html_t *h) {
  /* a page built while a JSON allocation failed may lack values (core/json_guard.h) */
  if (h->oom || am_json_take_failures() != 0)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
  return am_io_write_whole(ctx, path, write_html, (void *)h);
}
