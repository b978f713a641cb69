/* crc32c.c — CRC-32C, reflected polynomial 0x82F63B78: the SSE 4.2 crc32 instruction
 * where the processor has it (chosen at run time), a byte table elsewhere; both give the
 * same value (tests/test_checksum.c checks them against a bitwise reference). */
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

#if defined(__x86_64__)
#include <nmmintrin.h>
__attribute__((target("sse4.2"))) static uint32_t
crc_sse42(uint32_t crc, const unsigned char *p, size_t n) {
  uint64_t c = crc;
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
