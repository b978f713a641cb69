/* bench_io.c — the two costs of `attnmap analyze` that are not the analysis, measured on
 * the dataset's own files (issue 16's limits; bench/run.sh --e2e runs it per case):
 *   - mapping: the CPU time of making every page of the files readable in a fresh
 *     mapping (the first touch of each 4 KiB page; what the CRC-32C and the pass pay in
 *     page faults) and of unmapping them again (what letting a chunk's pages go pays),
 *     page cache warm;
 *   - CRC-32C: the CPU time of am_crc32c over every byte on one thread, once the pages
 *     are mapped (the bytes come from memory: the files are larger than the caches).
 * CPU time (getrusage of this thread), not wall time, so that a busy machine slows the
 * figures less; best of --repeats (default 3).
 * What mapping costs depends on how the page cache holds the file: a file written in
 * large pieces (the exporter, bench/synth) or read back through a mapping sits in 2 MiB
 * folios, which map as huge pages (nothing to pay per 4 KiB); one written in small pieces
 * sits in 4 KiB pages (~0.1 CPU-s per GB to map, ~0.03 to unmap here). The first line
 * gives the state the files were found in; --settle then drops each file's cached pages
 * (POSIX_FADV_DONTNEED: clean pages only, nothing is written) and reads it back through
 * a mapping, so that every timed run that follows finds it in the state an exported file
 * is in (bench/run.sh --e2e settles each case before timing it); a file already mapped
 * as huge pages for at least 90% of its bytes (FilePmdMapped in /proc/self/smaps_rollup)
 * is left as it is, which spares reading it from the disk again.
 *   usage: bench_io FILE... [--repeats R] [--settle]
 * Last line: RESULT_IO bytes=... map_cpu_s=... unmap_cpu_s=... crc_cpu_s=... crc_gbs=...
 * found_map_cpu_s=... (the first touch before settling) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crc32c.h"

static double thread_cpu(void) {
  struct rusage r;
  getrusage(RUSAGE_THREAD, &r);
  return (double)r.ru_utime.tv_sec + 1e-6 * (double)r.ru_utime.tv_usec +
         (double)r.ru_stime.tv_sec + 1e-6 * (double)r.ru_stime.tv_usec;
}

typedef struct costs {
  double map, unmap, crc;
} costs_t;

/* Bytes of this process's file mappings mapped as huge pages, or -1 when unknown. */
static double pmd_mapped_bytes(void) {
  FILE *f = fopen("/proc/self/smaps_rollup", "r");
  char line[256];
  double kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "FilePmdMapped: %lf kB", &kb) == 1)
      break;
  if (f)
    fclose(f);
  return kb < 0 ? -1 : kb * 1024.0;
}

/* One pass over one file: map, touch every page, CRC every byte, unmap. *huge (may be
 * NULL): whether at least 90% of its bytes were mapped as huge pages. */
static int measure(const char *path, size_t page, costs_t *c, unsigned *sink, int *huge) {
  int fd = open(path, O_RDONLY);
  struct stat sb;
  if (fd < 0 || fstat(fd, &sb) != 0 || sb.st_size <= 0) {
    fprintf(stderr, "bench_io: %s: cannot open or empty\n", path);
    if (fd >= 0)
      close(fd);
    return -1;
  }
  size_t n = (size_t)sb.st_size;
  const volatile unsigned char *p = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    fprintf(stderr, "bench_io: %s: mmap failed\n", path);
    return -1;
  }
  double t0 = thread_cpu();
  unsigned touched = 0;
  for (size_t i = 0; i < n; i += page)
    touched += p[i];
  double t1 = thread_cpu();
  uint32_t crc = am_crc32c(0, (const void *)p, n);
  double t2 = thread_cpu();
  if (huge)
    *huge = pmd_mapped_bytes() >= 0.9 * (double)n;
  munmap((void *)p, n);
  double t3 = thread_cpu();
  *sink += touched + crc;
  c->map += t1 - t0;
  c->crc += t2 - t1;
  c->unmap += t3 - t2;
  return 0;
}

/* Drops the file's clean cached pages and reads it back through a mapping. */
static void settle(const char *path, size_t page, unsigned *sink) {
  int fd = open(path, O_RDONLY);
  struct stat sb;
  if (fd < 0 || fstat(fd, &sb) != 0 || sb.st_size <= 0) {
    if (fd >= 0)
      close(fd);
    return;
  }
  size_t n = (size_t)sb.st_size;
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  const volatile unsigned char *p = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED)
    return;
  madvise((void *)p, n, MADV_HUGEPAGE);
  for (size_t i = 0; i < n; i += page)
    *sink += p[i];
  munmap((void *)p, n);
}

int main(int argc, char **argv) {
  int repeats = 3, nfiles = 0, settling = 0;
  const char **files = calloc((size_t)argc, sizeof *files);
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--repeats") && i + 1 < argc)
      repeats = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--settle"))
      settling = 1;
    else
      files[nfiles++] = argv[i];
  }
  if (!files || nfiles == 0 || repeats < 1) {
    fprintf(stderr, "usage: bench_io FILE... [--repeats R] [--settle]\n");
    return 2;
  }
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  double bytes = 0;
  for (int f = 0; f < nfiles; f++) {
    struct stat sb;
    bytes += stat(files[f], &sb) == 0 ? (double)sb.st_size : 0.0;
  }
  costs_t best = {1e30, 1e30, 1e30}, found = {0, 0, 0};
  unsigned sink = 0;
  int settled = 0;
  for (int f = 0; f < nfiles; f++) { /* as found, before anything else maps it */
    int huge = 0;
    if (measure(files[f], page, &found, &sink, &huge))
      return 1;
    if (settling && !huge) {
      settle(files[f], page, &sink);
      settled++;
    }
  }
  for (int r = 0; r < repeats; r++) {
    costs_t c = {0, 0, 0};
    for (int f = 0; f < nfiles; f++)
      if (measure(files[f], page, &c, &sink, NULL))
        return 1;
    best.map = c.map < best.map ? c.map : best.map;
    best.unmap = c.unmap < best.unmap ? c.unmap : best.unmap;
    best.crc = c.crc < best.crc ? c.crc : best.crc;
  }
  printf("as found: first touch %.3f CPU-s, unmap %.3f CPU-s; %d of %d files settled "
         "(dropped from the page cache, read back mapped)\n",
         found.map, found.unmap, settled, nfiles);
  printf("files: %d, %.2f GB; first touch of every %zu-byte page %.3f CPU-s, unmap %.3f "
         "CPU-s; CRC-32C %.3f CPU-s (%.1f GB/s a core)\n",
         nfiles, bytes / 1e9, page, best.map, best.unmap, best.crc, bytes / 1e9 / best.crc);
  printf("RESULT_IO bytes=%.0f map_cpu_s=%.6f unmap_cpu_s=%.6f crc_cpu_s=%.6f "
         "crc_gbs=%.3f found_map_cpu_s=%.6f found_unmap_cpu_s=%.6f sink=%u\n",
         bytes, best.map, best.unmap, best.crc, bytes / 1e9 / best.crc, found.map,
         found.unmap, sink & 1u);
  free(files);
  return 0;
}
