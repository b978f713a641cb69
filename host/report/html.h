/* html.h — a growing text buffer for the report page, with the escaping every string
 * from the data goes through: am_html_text for element text and attribute values,
 * am_html_json_str for string literals inside the page's <script> blocks. */
#ifndef AM_REPORT_HTML_H
#define AM_REPORT_HTML_H

#include <stddef.h>

#include "attnmap.h"

typedef struct am_html {
  char *buf;
  size_t len, cap;
  int oom; /* 1 after a failed allocation: later appends do nothing */
} am_html_t;

void am_html_init(am_html_t *h);
void am_html_free(am_html_t *h);
/* Trusted markup written by attnmap itself. */
void am_html_raw(am_html_t *h, const char *s);
void am_html_printf(am_html_t *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Untrusted text: & < > " ' escaped, C0 controls but tab and newline shown as U+FFFD. */
void am_html_text(am_html_t *h, const char *s);
/* A JSON string literal (with quotes) that cannot end a <script> element: < > & and
 * U+2028/2029 written as \u escapes. */
void am_html_json_str(am_html_t *h, const char *s);
/* A number for a table cell: %.4g, or "NaN". */
void am_html_num(am_html_t *h, double v);
/* The buffer to path (temporary name, then rename). */
am_status am_html_write(am_ctx_t *ctx, const char *path, const am_html_t *h);

#endif
