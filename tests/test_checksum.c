/* test_checksum.c — CRC-32C of input files (host/core/crc32c.c): the standard check value
 * ("123456789" → 0xE3069283, RFC 3720 / the CRC catalogue), the hardware and table paths
 * equal on random data of every length and alignment, and continuation over pieces. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/crc32c.h"

Test(checksum, check_value) {
  cr_expect_eq(am_crc32c(0, "123456789", 9), 0xE3069283u);
  cr_expect_eq(am_crc32c_portable(0, "123456789", 9), 0xE3069283u);
  cr_expect_eq(am_crc32c(0, "", 0), 0u);
}

Test(checksum, paths_agree_and_continue) {
  unsigned char buf[1100];
  srand(7);
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (unsigned char)rand();
  for (size_t off = 0; off < 9; off++)
    for (size_t n = 0; n + off <= sizeof buf; n += 1 + n / 7) {
      uint32_t whole = am_crc32c(0, buf + off, n);
      cr_assert_eq(whole, am_crc32c_portable(0, buf + off, n), "off %zu n %zu", off, n);
      size_t cut = n / 3;
      cr_assert_eq(am_crc32c(am_crc32c(0, buf + off, cut), buf + off + cut, n - cut),
                   whole);
    }
}

/* Lengths around the three-lane blocks of the SSE 4.2 path (3 x 8192 bytes), and the CRC
 * of a concatenation from the CRCs of its parts, as a file checksummed in pieces is. */
Test(checksum, lanes_and_combination) {
  size_t size = 5 * 3 * 8192 + 977;
  unsigned char *buf = malloc(size);
  cr_assert_not_null(buf);
  srand(11);
  for (size_t i = 0; i < size; i++)
    buf[i] = (unsigned char)rand();
  const size_t lens[] = {3 * 8192 - 1, 3 * 8192, 3 * 8192 + 1, 6 * 8192 + 13, size};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
    cr_assert_eq(am_crc32c(0, buf + 1, lens[i] - 1),
                 am_crc32c_portable(0, buf + 1, lens[i] - 1), "length %zu", lens[i] - 1);
  uint32_t whole = am_crc32c(0, buf, size);
  for (size_t cut = 0; cut <= size; cut += 1 + cut / 3) {
    uint32_t a = am_crc32c(0, buf, cut), b = am_crc32c(0, buf + cut, size - cut);
    cr_assert_eq(am_crc32c_combine(a, b, size - cut), whole, "cut at %zu", cut);
  }
  cr_expect_eq(am_crc32c_combine(am_crc32c(0, "12345", 5), am_crc32c(0, "6789", 4), 4),
               0xE3069283u);
  cr_expect_eq(am_crc32c_combine(0xE3069283u, 0, 0), 0xE3069283u);
  free(buf);
}
