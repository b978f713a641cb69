/* half.c — narrowing float conversions and integer loads (see half.h). */
#include "core/half.h"

uint16_t am_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t absx = x & 0x7FFFFFFFu;
  if (absx > 0x7F800000u) /* NaN: keep a quiet NaN */
    return (uint16_t)(sign | 0x7E00u);
  if (absx >= 0x477FF000u) /* rounds to >= 65520: infinity */
    return (uint16_t)(sign | 0x7C00u);
  if (absx < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
    if (absx < 0x33000000u) /* < 2^-25: rounds to zero */
      return (uint16_t)sign;
    uint32_t exp = absx >> 23;
    uint32_t man = (absx & 0x7FFFFFu) | 0x800000u;
    uint32_t shift = 126u - exp; /* 14..24 */
    uint32_t half = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1u);
    uint32_t mid = 1u << (shift - 1u);
    if (rem > mid || (rem == mid && (half & 1u)))
      half++;
    return (uint16_t)(sign | half);
  }
  uint32_t rounded = absx + 0xFFFu + ((absx >> 13) & 1u);
  return (uint16_t)(sign | ((rounded - 0x38000000u) >> 13));
}

uint16_t am_f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u)
    return (uint16_t)((x >> 16) | 0x40u);
  x += 0x7FFFu + ((x >> 16) & 1u);
  return (uint16_t)(x >> 16);
}

void am_widen(float *dst, const void *src, am_dtype dtype, int64_t first, int64_t n) {
  const unsigned char *p = (const unsigned char *)src;
  if (dtype == AM_DTYPE_F32) {
    memcpy(dst, p + 4 * first, (size_t)n * 4);
    return;
  }
  for (int64_t i = 0; i < n; i++)
    dst[i] = am_load_float(src, dtype, first + i);
}

int64_t am_load_int(const void *data, am_dtype dtype, int64_t i) {
  const unsigned char *p = (const unsigned char *)data;
  switch (dtype) {
  case AM_DTYPE_BOOL:
  case AM_DTYPE_U8:
    return p[i];
  case AM_DTYPE_I8:
    return (int8_t)p[i];
  case AM_DTYPE_I16: {
    int16_t v;
    memcpy(&v, p + 2 * i, 2);
    return v;
  }
  case AM_DTYPE_U16: {
    uint16_t v;
    memcpy(&v, p + 2 * i, 2);
    return v;
  }
  case AM_DTYPE_I32: {
    int32_t v;
    memcpy(&v, p + 4 * i, 4);
    return v;
  }
  case AM_DTYPE_U32: {
    uint32_t v;
    memcpy(&v, p + 4 * i, 4);
    return v;
  }
  case AM_DTYPE_I64: {
    int64_t v;
    memcpy(&v, p + 8 * i, 8);
    return v;
  }
  case AM_DTYPE_U64: {
    uint64_t v;
    memcpy(&v, p + 8 * i, 8);
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v; /* never wraps negative */
  }
  default:
    return (int64_t)am_load_float(data, dtype, i);
  }
}
