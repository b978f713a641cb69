/* checksum.h — the CRC-32C of every input file (summary.json's provenance) computed from
 * the mapped pages the analysis reads, so that each byte crosses memory once per run:
 * each chunk's rows of every per-example tensor are checksummed on the run's threads
 * when the chunk is read, and at the end the bytes no chunk covered (headers, small
 * tensors, rows done before a --resume) are checksummed from the same mapping and every
 * piece is combined in file order (am_crc32c_combine). The value is the CRC-32C of the
 * whole file, the same as a sequential read gives. */
#ifndef AM_PIPELINE_CHECKSUM_H
#define AM_PIPELINE_CHECKSUM_H

#include <jansson.h>
#include <stdint.h>

#include "dataset/dataset.h"

typedef struct am_crc_piece {
  int file;          /* index into am_checksums_t.files */
  uint64_t off, len; /* bytes [off, off+len) of that file */
  uint32_t crc;
} am_crc_piece_t;

typedef struct am_checksums {
  const am_file_t **files; /* [nfiles] every file of every shard, in dataset order */
  int nfiles;
  int *shard_file0;       /* [nshards] index of each shard's first file */
  am_crc_piece_t *pieces; /* [npieces] checksummed so far, in no particular order */
  size_t npieces, cap;
  double seconds; /* time spent checksumming (summary.json's timings.checksum_s) */
} am_checksums_t;

am_status am_checksums_init(am_ctx_t *ctx, am_checksums_t *cs, const am_dataset_t *ds);
void am_checksums_free(am_checksums_t *cs);

/* Checksums rows [row0, row0+nex) of every tensor of shard s whose leading dimension is
 * the shard's B (per layer for stacked [L,B,...] attentions), on the context's threads.
 * The caller has checked the shard unchanged (am_shard_check_unchanged) just before. */
am_status am_checksums_rows(am_ctx_t *ctx, am_checksums_t *cs, const am_dataset_t *ds,
                            int s, int64_t row0, int64_t nex);

/* crc[k]: the CRC-32C of file k (dataset order). Checks every file unchanged first, reads
 * the bytes no piece covered from the mapping; a file that maps nothing (converted npy
 * data) is read with pread (am_file_crc32c). */
am_status am_checksums_finish(am_ctx_t *ctx, am_checksums_t *cs, uint32_t *crc);

/* The pieces so far as JSON, [[file, off, len, crc], ...], adjacent ones combined (what a
 * job's part hands the coordinator in its record, job_rows.c); NULL when out of memory. */
json_t *am_checksums_to_json(am_checksums_t *cs);
/* Adds the pieces of am_checksums_to_json; an entry that does not fit the files is
 * ignored (its bytes are then read at the end). */
am_status am_checksums_add_json(am_ctx_t *ctx, am_checksums_t *cs, const json_t *pieces);

#endif
