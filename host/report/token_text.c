/* token_text.c — how a token string is shown. Byte-level BPE vocabularies (GPT-2, RoBERTa,
 * Llama 3 ...) store each byte of the text as a printable character (GPT-2's
 * bytes_to_unicode: bytes 33..126, 161..172 and 174..255 stand for themselves, the other 68
 * bytes, space and newline among them, become U+0100..U+0143, so " the" is "Ġthe" and a
 * newline "Ċ"). The report shows the decoded text (a space as a space, in cells that keep
 * it; newline and tab as ↵ and ⇥) and keeps the raw string for the hover title. */
#include <stdint.h>
#include <string.h>

#include "report/report.h"

/* Next code point of UTF-8 s at *i (advanced), or -1 on a bad sequence. */
static int32_t next_cp(const unsigned char *s, size_t *i) {
  unsigned c = s[*i];
  int extra = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
  if (extra < 0)
    return -1;
  int32_t cp = extra == 0 ? (int32_t)c : (int32_t)(c & (0x3Fu >> extra));
  for (int k = 1; k <= extra; k++) {
    if ((s[*i + (size_t)k] & 0xC0) != 0x80)
      return -1;
    cp = (cp << 6) | (s[*i + (size_t)k] & 0x3F);
  }
  *i += (size_t)extra + 1;
  return cp;
}

static int printable_byte(int b) {
  return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

/* The byte a byte-level character stands for, or -1. */
static int byte_of(int32_t cp) {
  if (cp < 256)
    return printable_byte((int)cp) ? (int)cp : -1;
  int k = (int)(cp - 256); /* the k-th byte that is not printable */
  for (int b = 0, seen = 0; b < 256; b++)
    if (!printable_byte(b) && seen++ == k)
      return b;
  return -1;
}

static int valid_utf8(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    if (next_cp(s, &i) < 0)
      return 0;
  }
  return 1;
}

static size_t put(char *out, size_t at, size_t cap, const char *s) {
  size_t n = strlen(s);
  if (at + n < cap)
    memcpy(out + at, s, n);
  return at + n;
}

const char *am_token_display(const char *raw, char *out, size_t cap) {
  const unsigned char *s = (const unsigned char *)raw;
  size_t len = strlen(raw), i = 0, nb = 0;
  unsigned char bytes[512];
  int remapped = 0;
  while (i < len) {
    int32_t cp = next_cp(s, &i);
    int b = cp < 0 ? -1 : byte_of(cp);
    if (b < 0 || nb == sizeof bytes)
      return raw; /* not byte-level text: shown as it is */
    remapped |= cp >= 256;
    bytes[nb++] = (unsigned char)b;
  }
  /* only tokens with a remapped byte are read as byte-level (a WordPiece "é" stays) */
  if (!remapped || !valid_utf8(bytes, nb))
    return raw;
  size_t at = 0;
  for (size_t k = 0; k < nb; k++) {
    char one[2] = {(char)bytes[k], 0};
    at = put(out, at, cap,
             bytes[k] == '\n'   ? "\xE2\x86\xB5" /* ↵ */
             : bytes[k] == '\t' ? "\xE2\x87\xA5" /* ⇥ */
                                : one);
  }
  if (at >= cap)
    return raw;
  out[at] = '\0';
  return out;
}
