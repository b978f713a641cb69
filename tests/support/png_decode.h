/* png_decode.h — a PNG file read back as 8-bit RGB with libpng's simplified API, for the
 * suites that check the report's pixels. */
#ifndef TESTS_SUPPORT_PNG_DECODE_H
#define TESTS_SUPPORT_PNG_DECODE_H

/* The pixels [h, w, 3] (malloc'd), or NULL when path is not a readable PNG. */
unsigned char *png_decode_rgb(const char *path, int *w, int *h);

#endif
