/* module.c — backends built as shared modules of their own (libattnmap-<name>.so, see
 * ops/backend.h), loaded with dlopen the first time a context asks for them and kept for
 * the life of the process. A CPU-only run never loads one, so it never maps the CUDA
 * runtime (docs/architecture.md has the process start figures).
 *
 * Where a module is looked for, in order: $ATTNMAP_BACKEND_DIR; the directory of the
 * library (or program) this code is in, and its ../<libdir> (an installed bin/attnmap
 * finds lib/); the install's libdir; then the dynamic loader's own search path. */
#include "backend/module.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ctx.h"

#ifndef ATTNMAP_INSTALL_LIBDIR
#define ATTNMAP_INSTALL_LIBDIR "/usr/local/lib"
#endif
#ifndef ATTNMAP_LIBDIR_NAME
#define ATTNMAP_LIBDIR_NAME "lib"
#endif

typedef struct loaded {
  char name[16];
  const am_backend_t *table; /* NULL: not found */
  char why[512];             /* why not, for the error message */
} loaded_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static loaded_t cache[4];
static int ncache;

/* Directory part of path into dir (no trailing slash); 0 when path has none. */
static int dir_of(const char *path, char *dir, size_t len) {
  const char *slash = strrchr(path, '/');
  if (!slash || (size_t)(slash - path) >= len)
    return 0;
  memcpy(dir, path, (size_t)(slash - path));
  dir[slash - path] = '\0';
  return 1;
}

/* Tries dir/file; 1 when loaded into *handle. The first failure of a file that exists is
 * kept in why (e.g. the CUDA runtime missing), as the most useful message. */
static int try_open(const char *dir, const char *file, void **handle, char *why,
                    size_t whylen) {
  char path[PATH_MAX + 64];
  const int k = dir ? snprintf(path, sizeof path, "%s/%s", dir, file)
                    : snprintf(path, sizeof path, "%s", file);
  if (k < 0 || (size_t)k >= sizeof path)
    return 0;
  if (dir && access(path, F_OK) != 0)
    return 0;
  *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (*handle)
    return 1;
  if (dir && !why[0]) {
    const char *e = dlerror();
    snprintf(why, whylen, "%s", e ? e : path);
  }
  return 0;
}

static void *open_module(const char *file, char *why, size_t whylen) {
  void *h = NULL;
  char here[PATH_MAX], up[PATH_MAX + 8 + sizeof ATTNMAP_LIBDIR_NAME];
  const char *env = getenv("ATTNMAP_BACKEND_DIR");
  if (env && *env && try_open(env, file, &h, why, whylen))
    return h;
  Dl_info info;
  if (dladdr((void *)&open_module, &info) && info.dli_fname &&
      dir_of(info.dli_fname, here, sizeof here)) {
    snprintf(up, sizeof up, "%s/../%s", here, ATTNMAP_LIBDIR_NAME);
    if (try_open(here, file, &h, why, whylen) || try_open(up, file, &h, why, whylen))
      return h;
  }
  char exe[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    if (dir_of(exe, here, sizeof here)) {
      snprintf(up, sizeof up, "%s/../%s", here, ATTNMAP_LIBDIR_NAME);
      if (try_open(here, file, &h, why, whylen) || try_open(up, file, &h, why, whylen))
        return h;
    }
  }
  if (try_open(ATTNMAP_INSTALL_LIBDIR, file, &h, why, whylen) ||
      try_open(NULL, file, &h, why, whylen))
    return h;
  if (!why[0])
    snprintf(why, whylen,
             "%s not found next to the library or program, in its ../" ATTNMAP_LIBDIR_NAME
             ", in " ATTNMAP_INSTALL_LIBDIR " or on the loader's path (ATTNMAP_BACKEND_DIR "
             "names another folder)",
             file);
  return NULL;
}

static void load(loaded_t *m) {
  char file[64];
  snprintf(file, sizeof file, "libattnmap-%s.so", m->name);
  void *h = open_module(file, m->why, sizeof m->why);
  if (!h)
    return;
  am_backend_entry_fn entry;
  void *sym = dlsym(h, AM_BACKEND_ENTRY);
  memcpy(&entry, &sym,
         sizeof entry); /* object pointer to function pointer, as POSIX allows */
  m->table =
      entry ? entry(AM_BACKEND_ABI, sizeof(am_backend_t), sizeof(struct am_ctx)) : NULL;
  if (!m->table) {
    snprintf(m->why, sizeof m->why, "%s was built for another version of attnmap", file);
    dlclose(h);
  }
}

const am_backend_t *am_backend_module(const char *name, char *why, size_t whylen) {
  pthread_mutex_lock(&lock);
  loaded_t *m = NULL;
  for (int i = 0; i < ncache && !m; i++)
    if (strcmp(cache[i].name, name) == 0)
      m = &cache[i];
  if (!m && ncache < (int)(sizeof cache / sizeof cache[0])) {
    m = &cache[ncache++];
    snprintf(m->name, sizeof m->name, "%s", name);
    load(m);
  }
  const am_backend_t *t = m ? m->table : NULL;
  if (!t && why && whylen)
    snprintf(why, whylen, "%s", m ? m->why : "too many backend modules");
  pthread_mutex_unlock(&lock);
  return t;
}

int am_backend_device_present(const char *name) {
  if (strcmp(name, "cuda") != 0)
    return 0;
  /* the NVIDIA driver's device nodes (Linux), or WSL's GPU node */
  return access("/dev/nvidiactl", F_OK) == 0 || access("/dev/nvidia0", F_OK) == 0 ||
         access("/dev/dxg", F_OK) == 0;
}
