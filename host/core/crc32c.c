/* crc32c.c — CRC-32C, reflected polynomial 0x82F63B78: the SSE 4.2 crc32 instruction
 * where the processor has it (chosen at run time), a byte table elsewhere; both give the
 * same value (tests/test_checksum.c checks them against a bitwise reference), and the
 * combination of two CRCs into that of the concatenation, for checksumming a file in
 * pieces on several threads. */
#include "core/crc32c.h"

#include <string.h>

static uint32_t table[256];
static int table_ready;

static void make_table(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++)
      c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    table[i] = c;
  }
  table_ready = 1;
}

static uint32_t crc_table(uint32_t crc, const unsigned char *p, size_t n) {
  if (!table_ready)
    make_table();
  for (size_t i = 0; i < n; i++)
    crc = table[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
  return crc;
}

/* ---- multiplication modulo the polynomial, for combining CRCs -------------------------
 * In the reflected representation the hardware and the table use, bit 31 is x^0. The CRC
 * register (before the final inversion) after a message M from register c is
 * c·x^(8|M|) + R(0, M) mod P, so the CRC of A followed by B follows from those of A and
 * of B: shift A's by x^(8|B|) and add B's. */
#define POLY 0x82F63B78u

static uint32_t mul_mod_p(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (uint32_t bit = 1u << 31; bit != 0; bit >>= 1) {
    if (a & bit)
      product ^= b;
    b = (b & 1u) ? (b >> 1) ^ POLY : b >> 1; /* b·x */
  }
  return product;
}

/* x^(8n) mod P: the product of x^(2^k) over the bits k of 8n, squaring as it goes. */
static uint32_t x_pow_8n(uint64_t n) {
  uint32_t result = 1u << 31, square = 1u << 30; /* x^0; x^1 */
  for (int k = 0; k < 3; k++)
    square = mul_mod_p(square, square); /* x^8 */
  for (; n != 0; n >>= 1) {
    if (n & 1u)
      result = mul_mod_p(square, result);
    square = mul_mod_p(square, square);
  }
  return result;
}

uint32_t am_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
  return mul_mod_p(x_pow_8n(len_b), crc_a) ^ crc_b;
}

#if defined(__x86_64__)
#include <nmmintrin.h>
/* Three independent streams over consecutive lanes hide the instruction's 3-cycle latency
 * (one stream does 8 bytes per 3 cycles); the lanes' registers are then combined. */
#define LANE 8192
__attribute__((target("sse4.2"))) static uint32_t
crc_sse42(uint32_t crc, const unsigned char *p, size_t n) {
  uint64_t c = crc;
  if (n >= 3 * LANE) {
    const uint32_t shift = x_pow_8n(LANE);
    for (; n >= 3 * LANE; n -= 3 * LANE, p += 3 * LANE) {
      uint64_t a = c, b = 0, d = 0;
      for (size_t i = 0; i < LANE; i += 8) {
        uint64_t va, vb, vd;
        memcpy(&va, p + i, 8);
        memcpy(&vb, p + LANE + i, 8);
        memcpy(&vd, p + 2 * LANE + i, 8);
        a = _mm_crc32_u64(a, va);
        b = _mm_crc32_u64(b, vb);
        d = _mm_crc32_u64(d, vd);
      }
      c = mul_mod_p(shift, mul_mod_p(shift, (uint32_t)a) ^ (uint32_t)b) ^ (uint32_t)d;
    }
  }
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
  }
  uint32_t c32 = (uint32_t)c;
  for (; n > 0; n--, p++)
    c32 = _mm_crc32_u8(c32, *p);
  return c32;
}
#endif

uint32_t am_crc32c(uint32_t crc, const void *data, size_t n) {
  const unsigned char *p = data;
  crc = ~crc;
#if defined(__x86_64__)
  if (__builtin_cpu_supports("sse4.2"))
    return ~crc_sse42(crc, p, n);
#endif
  return ~crc_table(crc, p, n);
}

/* The table path, for the test that compares both. */
uint32_t am_crc32c_portable(uint32_t crc, const void *data, size_t n) {
  return ~crc_table(~crc, data, n);
}
