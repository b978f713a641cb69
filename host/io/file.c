/* STUB — replaced by the I/O work. */
#include "io/file.h"
#include "core/ctx.h"
am_status am_file_open(am_ctx_t *ctx, const char *path, am_file_t **out) { *out = NULL; return am_fail(ctx, AM_STATUS_UNSUPPORTED, "%s: not yet", path); }
void am_file_close(am_file_t *file) { (void)file; }
const char *am_file_path(const am_file_t *f) { return f->path; }
int am_file_tensor_count(const am_file_t *f) { return f->ntensors; }
const char *am_file_tensor_name(const am_file_t *f, int i) { return f->names[i]; }
const am_tensor_t *am_file_tensor(const am_file_t *f, int i) { return &f->tensors[i]; }
const am_tensor_t *am_file_find(const am_file_t *f, const char *name) { (void)f; (void)name; return NULL; }
int am_file_metadata_count(const am_file_t *f) { return f->nmeta; }
const char *am_file_metadata_key(const am_file_t *f, int i) { return f->meta_keys[i]; }
const char *am_file_metadata(const am_file_t *f, const char *key) { (void)f; (void)key; return NULL; }
int64_t am_tensor_byte_size(am_dtype dtype, int ndim, const int64_t *shape) { (void)dtype; (void)ndim; (void)shape; return -1; }
int64_t am_tensor_elements(const am_tensor_t *t) { (void)t; return -1; }
am_status am_safetensors_open(am_ctx_t *ctx, const char *path, am_file_t **out) { *out = NULL; return am_fail(ctx, AM_STATUS_UNSUPPORTED, "%s: not yet", path); }
am_status am_npy_open(am_ctx_t *ctx, const char *path, am_file_t **out) { *out = NULL; return am_fail(ctx, AM_STATUS_UNSUPPORTED, "%s: not yet", path); }
am_status am_st_writer_open(am_ctx_t *ctx, const char *path, const am_tensor_spec_t *specs, int nspecs, const char *const *meta, int nmeta, am_st_writer_t **out) { (void)specs; (void)nspecs; (void)meta; (void)nmeta; *out = NULL; return am_fail(ctx, AM_STATUS_UNSUPPORTED, "%s: not yet", path); }
am_status am_st_writer_put(am_st_writer_t *w, int index, uint64_t offset, const void *data, size_t nbytes) { (void)w; (void)index; (void)offset; (void)data; (void)nbytes; return AM_STATUS_UNSUPPORTED; }
am_status am_st_writer_close(am_st_writer_t *w, int abandon) { (void)w; (void)abandon; return AM_STATUS_OK; }
am_status am_safetensors_write(am_ctx_t *ctx, const char *path, const am_named_tensor_t *t, int n, const char *const *meta, int nmeta) { (void)t; (void)n; (void)meta; (void)nmeta; return am_fail(ctx, AM_STATUS_UNSUPPORTED, "%s: not yet", path); }
am_status am_npy_write(am_ctx_t *ctx, const char *path, const am_tensor_t *t) { (void)t; return am_fail(ctx, AM_STATUS_UNSUPPORTED, "%s: not yet", path); }
