/* test_faults.c — failures that are not malformed files (issue 8): the disk filling up
 * (a small tmpfs, where mounting is allowed) or a file size limit (RLIMIT_FSIZE) while the
 * run folder is written, an output path that cannot be made, shards that cannot be read
 * (a FIFO, a dangling link, a folder, no permission), a shard cut short after the dataset
 * was opened, and the CUDA backend asked for where there is none. Each must give one clear
 * line on stderr, a non-zero exit, and no run folder that looks complete. Skips say why
 * (not root, no mount permission, running as root). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/file.h"
#include "support/dataset_builder.h"
#include "support/run_cli.h"
#include "support/run_limited.h"

static char work[128];
static char mnt[256]; /* a tmpfs mounted by a test, unmounted by teardown */
static char pbuf[8][512];
static int pnext;

static const char *P(const char *name) {
  return dsb_join(pbuf[pnext++ % 8], sizeof pbuf[0], work, name);
}

static void setup(void) {
  mnt[0] = '\0';
  cr_assert_eq(dsb_tempdir(work, sizeof work, "faults"), 0);
}
static void teardown(void) {
  if (mnt[0])
    umount2(mnt, MNT_DETACH);
  dsb_rmtree(work);
}

TestSuite(faults, .init = setup, .fini = teardown, .timeout = 120);

/* L=2, H=2, B=48, T=16, F32 with gradients, saliency and labels: ~400 KB of input and a
 * run folder of ~120 KB. */
static const char *dataset(const char *name) {
  dsb_spec_t s = {
      .L = 2, .H = 2, .B = 48, .T = 16, .grads = 1, .saliency = 1, .labels = 1, .seed = 3};
  const char *p = P(name);
  cr_assert_eq(dsb_make(&s, p), 0);
  return p;
}

static int count_prefixed(const char *run) {
  return dsb_count_prefixed(run, ".tmp-") + dsb_count_prefixed(run, ".old-");
}

/* A failed run: one line naming the problem, exit `code`, no run folder, no temp. An
 * I/O failure may leave RUN.partial/ for --resume (docs/run-folder.md): it is not RUN/. */
static void check_failed(const cli_result_t *r, int code, const char *phrase,
                         const char *run) {
  cr_expect_eq(r->signal, 0, "killed by signal %d; stderr: %s", r->signal, r->err);
  cr_expect_eq(r->exit_code, code, "exit %d, want %d; stderr: %s", r->exit_code, code,
               r->err);
  cr_expect_eq(cli_count_lines(r->err), 1, "stderr is not one line: [%s]", r->err);
  cr_expect(strstr(r->err, phrase) != NULL, "no '%s' in: %s", phrase, r->err);
  if (run) {
    cr_expect(!dsb_exists(run), "%s exists after a failure", run);
    cr_expect_eq(count_prefixed(run), 0, "%s.tmp-* left behind", run);
  }
}

/* ---- the output cannot be written ------------------------------------------------ */

/* Runs the CLI with RLIMIT_FSIZE = limit bytes and SIGXFSZ ignored (writes then fail
 * with EFBIG) or left at its default (the child is killed). Returns the wait status. */
static int run_fsize_limited(const char *const *argv, rlim_t limit, int ignore_xfsz,
                             char *err, size_t errlen) {
  int status =
      run_limited(argv, RLIMIT_FSIZE, limit, ignore_xfsz ? SIGXFSZ : 0, err, errlen);
  cr_assert_neq(status, -1, "cannot start %s", argv[0]);
  return status;
}

static long file_size(const char *dirpath, const char *name) {
  char p[600];
  struct stat sb;
  return stat(dsb_join(p, sizeof p, dirpath, name), &sb) == 0 ? (long)sb.st_size : -1;
}

/* The sizes of the two files a successful run of ds writes. */
static void reference_sizes(const char *ds, long *examples, long *summary) {
  const char *ref = P("reference");
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", ds, "-o", ref, "--quiet", NULL), 0);
  cr_assert_eq(r.exit_code, 0, "%s", r.err);
  cli_result_free(&r);
  *examples = file_size(ref, "examples.safetensors");
  *summary = file_size(ref, "summary.json");
  cr_assert(*examples > 8192 && *summary > 8192, "run files of %ld and %ld bytes",
            *examples, *summary);
  dsb_rmtree(ref);
}

Test(faults, file_size_limit_gives_a_write_error) {
  const char *ds = dataset("ds.safetensors"), *run = P("run");
  long ex = 0, sum = 0;
  reference_sizes(ds, &ex, &sum);
  const char *argv[] = {ATTNMAP_CLI, "analyze", ds, "-o", run, "--quiet", NULL};
  /* 1 byte: nothing fits; half of the smaller file; all but the end of the larger one
   * (summary.json's timings make its length vary by a few bytes from run to run) */
  const rlim_t limits[] = {1, (rlim_t)(ex < sum ? ex : sum) / 2,
                           (rlim_t)(ex > sum ? ex : sum) - 512};
  for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
    char err[4096];
    unsigned long lim = (unsigned long)limits[i];
    int status = run_fsize_limited(argv, limits[i], 1, err, sizeof err);
    cr_expect(WIFEXITED(status), "limit %lu: killed by signal %d", lim,
              WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    cr_expect_eq(WEXITSTATUS(status), 1, "limit %lu: exit %d; stderr: %s", lim,
                 WEXITSTATUS(status), err);
    cr_expect_eq(cli_count_lines(err), 1, "limit %lu: stderr [%s]", lim, err);
    cr_expect(strstr(err, "File too large") != NULL, "limit %lu: %s", lim, err);
    cr_expect(!dsb_exists(run), "limit %lu: %s exists", lim, run);
    cr_expect_eq(count_prefixed(run), 0, "limit %lu: temp folder left", lim);
  }
}

/* Killed by SIGXFSZ mid-write: no cleanup can run, but RUN/ must not appear. */
Test(faults, killed_while_writing_leaves_no_run_folder) {
  const char *ds = dataset("ds.safetensors"), *run = P("run");
  const char *argv[] = {ATTNMAP_CLI, "analyze", ds, "-o", run, "--quiet", NULL};
  char err[4096];
  int status = run_fsize_limited(argv, 1, 0, err, sizeof err);
  cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ, "status 0x%x; stderr: %s",
            status, err);
  cr_expect(!dsb_exists(run), "%s exists after the run was killed", run);
}

Test(faults, disk_full_on_a_small_tmpfs) {
  if (geteuid() != 0)
    cr_skip_test("not root: cannot mount a small tmpfs (the RLIMIT_FSIZE test covers it)");
  const char *ds = dataset("ds.safetensors");
  long ex = 0, sum = 0;
  reference_sizes(ds, &ex, &sum);
  long pages = (ex + 4095) / 4096 + (sum + 4095) / 4096;
  snprintf(mnt, sizeof mnt, "%s/mnt", work);
  cr_assert_eq(mkdir(mnt, 0755), 0);
  /* a tmpfs counts whole pages: one page; half the run; all of it but one page */
  char sizes[3][32];
  snprintf(sizes[0], sizeof sizes[0], "size=4k");
  snprintf(sizes[1], sizeof sizes[1], "size=%ldk", 4 * (pages / 2));
  snprintf(sizes[2], sizeof sizes[2], "size=%ldk", 4 * (pages - 1));
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    if (mount("tmpfs", mnt, "tmpfs", 0, sizes[i]) != 0) {
      int err = errno;
      rmdir(mnt);
      mnt[0] = '\0';
      cr_skip_test("cannot mount a tmpfs here (%s): disk-full case not run", strerror(err));
    }
    char run[512];
    snprintf(run, sizeof run, "%s/run", mnt);
    cli_result_t r;
    cr_assert_eq(cli_run(&r, NULL, "analyze", ds, "-o", run, "--quiet", NULL), 0);
    cr_expect_neq(r.exit_code, 0, "%s: the run fitted", sizes[i]);
    check_failed(&r, 1, "No space left on device", run);
    DIR *d = opendir(mnt);
    struct dirent *e;
    int left = 0;
    while (d && (e = readdir(d))) /* RUN.partial stays for --resume (run-folder.md) */
      left += e->d_name[0] != '.' && strncmp(e->d_name, "run.partial", 11) != 0;
    if (d)
      closedir(d);
    cr_expect_eq(left, 0, "%s: %d entries left on the full disk", sizes[i], left);
    cli_result_free(&r);
    cr_assert_eq(umount(mnt), 0);
  }
  rmdir(mnt);
  mnt[0] = '\0';
}

Test(faults, output_parent_is_a_file) {
  const char *ds = dataset("ds.safetensors"), *file = P("plain");
  cr_assert_eq(dsb_write_bytes(file, "x", 1), 0);
  char run[600];
  snprintf(run, sizeof run, "%s/run", file);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", ds, "-o", run, "--quiet", NULL), 0);
  check_failed(&r, 1, "Not a directory", NULL);
  cli_result_free(&r);
}

/* ---- shards that cannot be read ---------------------------------------------------- */

/* A folder of two shards, the second replaced by what make() leaves at its path. */
static void bad_second_shard(const char *tag, int (*make)(const char *), int code,
                             const char *phrase) {
  char folder[512], s0[600], s1[600];
  snprintf(folder, sizeof folder, "%s/%s", work, tag);
  cr_assert_eq(mkdir(folder, 0755), 0);
  dsb_spec_t s = {.L = 1, .H = 2, .B = 2, .T = 4, .seed = 5};
  cr_assert_eq(dsb_make(&s, dsb_join(s0, sizeof s0, folder, "s0.safetensors")), 0);
  dsb_join(s1, sizeof s1, folder, "s1.safetensors");
  cr_assert_eq(make(s1), 0, "cannot make %s: %s", s1, strerror(errno));
  const char *run = P("run");
  cli_options_t opts = {.timeout_s = 20};
  const char *args[] = {"analyze", folder, "-o", run, "--quiet", NULL};
  cli_result_t r;
  cr_assert_eq(cli_runv(&r, &opts, args), 0);
  cr_expect(!r.timed_out, "%s: the CLI hung", tag);
  check_failed(&r, code, phrase, run);
  cr_expect(strstr(r.err, "s1.safetensors") != NULL, "%s: no file name in %s", tag, r.err);
  cli_result_free(&r);
  const char *iargs[] = {"inspect", folder, NULL};
  cr_assert_eq(cli_runv(&r, &opts, iargs), 0);
  check_failed(&r, code, phrase, NULL);
  cli_result_free(&r);
}

static int make_fifo(const char *p) { return mkfifo(p, 0644); }
static int make_dangling(const char *p) { return symlink("does-not-exist.safetensors", p); }
static int make_folder(const char *p) { return mkdir(p, 0755); }
static int make_loop(const char *p) { return symlink(p, p); }

Test(faults, fifo_shard) { bad_second_shard("fifo", make_fifo, 2, "not a regular file"); }
Test(faults, dangling_link_shard) {
  bad_second_shard("dangling", make_dangling, 2, "No such file or directory");
}
Test(faults, folder_named_like_a_shard) {
  bad_second_shard("folder", make_folder, 2, "not a regular file");
}
Test(faults, symlink_loop_shard) {
  bad_second_shard("loop", make_loop, 2, "Too many levels of symbolic links");
}

static int make_unreadable(const char *p) {
  dsb_spec_t s = {.L = 1, .H = 2, .B = 2, .T = 4, .seed = 6};
  return dsb_make(&s, p) != 0 ? -1 : chmod(p, 0);
}

Test(faults, unreadable_shard) {
  if (geteuid() == 0)
    cr_skip_test("running as root: chmod 000 does not stop root from reading; the FIFO, "
                 "dangling link and folder cases cover unreadable shards");
  bad_second_shard("unreadable", make_unreadable, 2, "Permission denied");
}

/* ---- a shard cut short after am_dataset_open -------------------------------------- */

/* In a child: opens the dataset, truncates its file to half, then analyses (or checks)
 * it. Exit 0: failed with a message and no run folder; 3: it succeeded; 4: failed
 * without a message or left a run folder; 5: set-up failed; 77: SIGBUS. */
static void on_sigbus(int sig) {
  (void)sig;
  _exit(77); /* the sanitizers' own handler would turn SIGBUS into an abort */
}

/* check_only 2: the file is cut in half while the run reads it (after the first chunk of
 * one example is stored, on the store thread, while the next chunks are read). */
static const char *cut_path;
static void cut_on_progress(void *user, int64_t done, int64_t total) {
  (void)user;
  (void)total;
  struct stat sb;
  if (done == 1 && stat(cut_path, &sb) == 0 && truncate(cut_path, sb.st_size / 2) != 0)
    _exit(5);
}

static void truncated_child(const char *ds, const char *run, int check_only) {
  signal(SIGBUS, on_sigbus);
  am_ctx_t *c = NULL;
  am_dataset_t *d = NULL;
  if (am_ctx_create(&(am_ctx_options_t){.backend = "cpu", .threads = 2}, &c, NULL, 0) ||
      am_dataset_open(c, &ds, 1, &d))
    _exit(5);
  struct stat sb;
  if (check_only != 2 && (stat(ds, &sb) != 0 || truncate(ds, sb.st_size / 2) != 0))
    _exit(5);
  am_status st;
  if (check_only == 1) {
    st = am_dataset_check(c, d);
  } else {
    am_plan_t plan;
    am_plan_init(&plan);
    am_run_options_t o;
    am_run_options_init(&o);
    if (check_only == 2) {
      plan.chunk = 1;
      cut_path = ds;
      o.progress = cut_on_progress;
    }
    st = am_run_analyze(c, d, &plan, run, &o);
  }
  if (st == AM_STATUS_OK)
    _exit(3);
  fprintf(stderr, "%s\n", am_last_error(c));
  _exit(am_last_error(c)[0] && !dsb_exists(run) && count_prefixed(run) == 0 ? 0 : 4);
}

static void truncated_after_open(int check_only) {
  const char *names[] = {"cut.safetensors", "cut_check.safetensors",
                         "cut_during.safetensors"};
  const char *ds = dataset(names[check_only]);
  const char *run = P("run");
  fflush(NULL);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0)
    truncated_child(ds, run, check_only);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  int bus = (WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS) ||
            (WIFEXITED(status) && WEXITSTATUS(status) == 77);
  cr_assert(!bus,
            "%s died of SIGBUS: the pipeline must check each shard with "
            "am_shard_check_unchanged before reading a chunk of it",
            check_only == 1 ? "am_dataset_check" : "am_run_analyze");
  cr_expect(WIFEXITED(status), "killed by signal %d", WTERMSIG(status));
  cr_expect_eq(WEXITSTATUS(status), 0,
               "child exit %d (3: analysed a cut file, 4: no "
               "message or a run folder left)",
               WEXITSTATUS(status));
  cr_expect(!dsb_exists(run));
}

Test(faults, shard_truncated_after_open_analyze) { truncated_after_open(0); }
Test(faults, shard_truncated_after_open_check) { truncated_after_open(1); }
Test(faults, shard_truncated_while_analysed) { truncated_after_open(2); }

/* A page lost to truncation after the check, read anyway: zeros instead of SIGBUS, and the
 * file is reported changed from then on (host/io/sigbus.c). */
Test(faults, lost_page_reads_zeros_and_is_reported) {
  signal(SIGBUS, on_sigbus);
  am_ctx_t *c = NULL;
  cr_assert_eq(am_ctx_create(NULL, &c, NULL, 0), AM_STATUS_OK);
  const char *ds = dataset("lost.safetensors");
  am_file_t *f = NULL;
  cr_assert_eq(am_file_open(c, ds, &f), AM_STATUS_OK);
  const am_tensor_t *t = am_file_find(f, "attention_grads");
  cr_assert_not_null(t);
  struct stat sb;
  cr_assert_eq(stat(ds, &sb), 0);
  cr_assert_eq(truncate(ds, 4096), 0);
  int64_t bytes = am_tensor_byte_size(t->dtype, t->ndim, t->shape);
  volatile const unsigned char *last = (const unsigned char *)t->data + bytes - 1;
  cr_expect_eq(*last, 0); /* past the new end: SIGBUS without the guard */
  cr_expect_eq(am_file_check_unchanged(c, f), AM_STATUS_BAD_INPUT);
  cr_expect(strstr(am_last_error(c), "changed while being read") != NULL, "%s",
            am_last_error(c));
  am_file_close(f);
  am_ctx_destroy(c);
  signal(SIGBUS, SIG_DFL);
}

/* ---- the device ------------------------------------------------------------------- */

Test(faults, cuda_backend_without_a_gpu) {
  const char *ds = dataset("ds.safetensors"), *run = P("run");
  cli_result_t r;
  cr_assert_eq(
      cli_run(&r, NULL, "analyze", ds, "-o", run, "--quiet", "--backend", "cuda", NULL), 0);
  if (r.exit_code == 0) { /* a GPU and a CUDA build: the run must be complete */
    char p[600];
    cr_expect(dsb_exists(dsb_join(p, sizeof p, run, "summary.json")));
    cr_expect(dsb_exists(dsb_join(p, sizeof p, run, "examples.safetensors")));
  } else {
    check_failed(&r, 1, "cuda", run);
  }
  cli_result_free(&r);
}

/* ---- am_file_check_unchanged, the check the pipeline can make before each chunk ------ */

Test(faults, check_unchanged_sees_a_file_cut_short) {
  am_ctx_t *c = NULL;
  cr_assert_eq(am_ctx_create(NULL, &c, NULL, 0), AM_STATUS_OK);
  const char *ds = dataset("check.safetensors"), *other = P("other.safetensors");
  am_file_t *f = NULL;
  cr_assert_eq(am_file_open(c, ds, &f), AM_STATUS_OK);
  cr_expect_eq(am_file_check_unchanged(c, f), AM_STATUS_OK);
  struct stat sb;
  cr_assert_eq(stat(ds, &sb), 0);
  cr_assert_eq(truncate(ds, sb.st_size - 1), 0);
  cr_expect_eq(am_file_check_unchanged(c, f), AM_STATUS_BAD_INPUT);
  cr_expect(strstr(am_last_error(c), "check.safetensors: changed while being read") != NULL,
            "%s", am_last_error(c));
  /* the same length again: the lost bytes came back as zeros, so it is still a change */
  cr_assert_eq(truncate(ds, sb.st_size), 0);
  cr_expect_eq(am_file_check_unchanged(c, f), AM_STATUS_BAD_INPUT);
  cr_expect(strstr(am_last_error(c), "modified since it was opened") != NULL, "%s",
            am_last_error(c));
  am_file_close(f);
  f = NULL;
  /* written in place with the same size: another version, the same verdict */
  cr_assert_eq(am_file_open(c, ds, &f), AM_STATUS_OK);
  cr_expect_eq(am_file_check_unchanged(c, f), AM_STATUS_OK);
  struct timespec later[2] = {{0, UTIME_OMIT}, {sb.st_mtim.tv_sec + 5, 0}};
  cr_assert_eq(utimensat(AT_FDCWD, ds, later, 0), 0);
  cr_expect_eq(am_file_check_unchanged(c, f), AM_STATUS_BAD_INPUT);
  /* replaced by rename, or deleted: the mapping keeps the old inode, nothing to fear */
  cr_assert_eq(dsb_write_bytes(other, "x", 1), 0);
  cr_assert_eq(rename(other, ds), 0);
  cr_expect_eq(am_file_check_unchanged(c, f), AM_STATUS_OK);
  cr_assert_eq(unlink(ds), 0);
  cr_expect_eq(am_file_check_unchanged(c, f), AM_STATUS_OK);
  am_file_close(f);
  cr_expect_eq(am_file_check_unchanged(c, NULL), AM_STATUS_OK);
  am_ctx_destroy(c);
}
