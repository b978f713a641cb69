/* fuzz_support.h — what the libFuzzer harnesses share: a context made once, a private
 * scratch folder on tmpfs, splitting one fuzz input into several files, and touching
 * every byte a parser hands back so that ASan sees any read past a buffer. */
#ifndef ATTNMAP_FUZZ_SUPPORT_H
#define ATTNMAP_FUZZ_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "attnmap.h"

/* Files of one fuzz input are separated by this 6-byte marker (seeds are written with
 * it by fuzz/make_corpus.py); each part starts with one byte that picks its name. */
#define FUZZ_SEP                                                                           \
  "\xff\x00"                                                                               \
  "FILE" /* split: \x00F would be one escape */
#define FUZZ_SEP_LEN 6
#define FUZZ_MAX_PARTS 4

typedef struct fuzz_part {
  const uint8_t *data;
  size_t size;
} fuzz_part_t;

/* A CPU context with one thread, made on first use and kept for the process. */
am_ctx_t *fuzz_ctx(void);
/* The process's scratch folder ("attnmap-fuzz-<pid>" under $ATTNMAP_FUZZ_TMP, else
 * /dev/shm, else /tmp), made on first use and removed at a normal exit. */
const char *fuzz_dir(void);
/* Splits data at FUZZ_SEP into at most max parts; returns their count (>= 1). */
int fuzz_split(const uint8_t *data, size_t size, fuzz_part_t *parts, int max);
/* Writes a file (0 on success). */
int fuzz_write(const char *path, const void *data, size_t n);
/* Writes part, less its first byte (the name-picking byte of the common format), as
 * dir/name; aborts when it cannot. */
void fuzz_put_part(const char *dir, const char *name, const fuzz_part_t *part);
/* 1 when path exists. */
int fuzz_exists(const char *path);
/* Empties folder path (keeps the folder itself). */
void fuzz_clear(const char *path);
/* Reads every byte of every tensor and metadata string of f (ASan checks the reads),
 * checks the error message is one line, and returns a checksum so nothing is elided. */
unsigned fuzz_touch_file(const am_file_t *f);
/* Records the size and CRC-32C of dir/examples.safetensors in dir/summary.json when that
 * is a JSON object with a provenance object, as analyze does: a mutated file would else
 * stop every input at the checksum, before the checks behind it. */
void fuzz_fix_checksum(const char *dir);
/* Aborts unless ctx's last message is one non-empty line (docs/design.md §6). */
void fuzz_check_message(am_ctx_t *ctx, am_status st);

#endif
