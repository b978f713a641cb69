/* half.h — IEEE binary16 and bfloat16 conversions, and reading one element of any float
 * dtype from possibly unaligned memory as float. */
#ifndef AM_CORE_HALF_H
#define AM_CORE_HALF_H

#include <stdint.h>
#include <string.h>

#include "attnmap.h"

static inline float am_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t man = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0x1Fu) {
    bits = sign | 0x7F800000u | (man << 13); /* inf / nan */
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else { /* subnormal: normalise */
    exp = 113;
    while (!(man & 0x400u)) {
      man <<= 1;
      exp--;
    }
    bits = sign | (exp << 23) | ((man & 0x3FFu) << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

static inline float am_bf16_to_f32(uint16_t b) {
  uint32_t bits = (uint32_t)b << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

/* Round to nearest even, NaN kept NaN, overflow to infinity. */
uint16_t am_f32_to_f16(float f);
uint16_t am_f32_to_bf16(float f);

/* Element i of a float tensor of dtype F32/F16/BF16/F64, data possibly unaligned. */
static inline float am_load_float(const void *data, am_dtype dtype, int64_t i) {
  const unsigned char *p = (const unsigned char *)data;
  switch (dtype) {
  case AM_DTYPE_F16: {
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return am_f16_to_f32(h);
  }
  case AM_DTYPE_BF16: {
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return am_bf16_to_f32(h);
  }
  case AM_DTYPE_F64: {
    double d;
    memcpy(&d, p + 8 * i, 8);
    return (float)d;
  }
  default: {
    float f;
    memcpy(&f, p + 4 * i, 4);
    return f;
  }
  }
}

/* Element i as a double: F64 exactly (a value beyond F32 stays finite), others widened. */
static inline double am_load_double(const void *data, am_dtype dtype, int64_t i) {
  double d;
  if (dtype != AM_DTYPE_F64)
    return am_load_float(data, dtype, i);
  memcpy(&d, (const unsigned char *)data + 8 * i, 8);
  return d;
}

/* Widens n consecutive elements starting at element `first` into dst. */
void am_widen(float *dst, const void *src, am_dtype dtype, int64_t first, int64_t n);

/* Element i of an integer or bool tensor as int64 (for masks, ids, labels). */
int64_t am_load_int(const void *data, am_dtype dtype, int64_t i);

#endif
