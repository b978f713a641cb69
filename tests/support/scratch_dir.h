/* scratch_dir.h — a per-test temporary folder, a context, and the file and descriptor
 * helpers that the I/O suites share. */
#ifndef ATTNMAP_TESTS_SCRATCH_DIR_H
#define ATTNMAP_TESTS_SCRATCH_DIR_H

#include <stddef.h>

#include "attnmap.h"

extern am_ctx_t *ctx; /* made by scratch_setup */
extern char dir[64];  /* the temporary folder */

/* Makes ctx and /tmp/attnmap-TAG-XXXXXX; scratch_teardown removes both. */
void scratch_setup(const char *tag);
void scratch_teardown(void);
/* dir/name in one of four rotating buffers. */
const char *tmp_path(const char *name);
/* Open descriptors plus mappings of test files: what a leaking error path leaves. */
int open_resources(void);
/* Files in dir (not . entries). */
int count_files(void);
void write_file(const char *path, const void *data, size_t n);
size_t read_file(const char *path, unsigned char *buf, size_t cap);

#endif
