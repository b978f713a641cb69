/* crc32c.h — CRC-32C (Castagnoli, the checksum of iSCSI, ext4 and Snappy) of input files
 * for summary.json's provenance: with SSE 4.2 it runs at memory speed, where zlib's CRC-32
 * took as long as the whole analysis. */
#ifndef AM_CORE_CRC32C_H
#define AM_CORE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues crc (start with 0) over n bytes. */
uint32_t am_crc32c(uint32_t crc, const void *data, size_t n);
/* The CRC of A followed by B, from crc_a = CRC(A), crc_b = CRC(B) and B's length. */
uint32_t am_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);
/* The byte-table path alone (for tests). */
uint32_t am_crc32c_portable(uint32_t crc, const void *data, size_t n);

#endif
