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
