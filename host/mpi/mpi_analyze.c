/* mpi_analyze.c — `mpirun -n N attnmap analyze DATASET... -o RUN` (docs/cluster.md).
 * Rank 0 coordinates (am_job_open: the lock and "<RUN>.partial"), every rank computes its
 * ranges of examples (am_job_rows: rows written at their offsets), rank 0 aggregates the
 * stored rows in input order and publishes RUN (am_job_finish): the folder of one process.
 * Messages, all to or from rank 0: progress counts, each rank's final report, and a stop
 * that every rank other than 0 receives exactly once (early when a rank failed, else when
 * every report is in). A rank that fails thus stops the others at their next chunk, and
 * rank 0 prints the one error, naming the rank; a killed rank ends the job through the
 * launcher, and --resume (any N) continues from the parts' checkpoints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpi/mpi_job.h"
#include "mpi/mpi_report.h"

enum { TAG_PROG = 11, TAG_REPORT = 12, TAG_STOP = 13 };

/* Waits for req without spinning: MPI's blocking waits poll at full speed, and a rank that
 * waits (for rank 0's stop, for the job's exit code) would take the CPU of the ranks that
 * compute beside it on an oversubscribed node. */
static void wait_idle(MPI_Request *req) {
  int done = 0;
  struct timespec nap = {0, 2000000}; /* 2 ms: nothing waits on a rank that long */
  while (MPI_Test(req, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && !done)
    nanosleep(&nap, NULL);
}

static double seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct shared {
  am_mpi_rank_t *me;
  MPI_Comm comm;
  int64_t base, done; /* examples of this rank's earlier ranges; of all its ranges */
  MPI_Request stop_req, prog_req;
  int stop_buf;
  int64_t prog_buf;
  double last_sent;
  /* rank 0 */
  int64_t *rank_done, already, total, shown;
  int *reported, *stop_sent, failed;
  am_mpi_report_t *reports;
  am_progress_t *progress;
  int store_calls_mpi; /* the MPI library allows calls from the store thread (poll) */
} shared_t;

static void send_stops(shared_t *s) {
  for (int r = 1; r < s->me->size; r++)
    if (!s->stop_sent[r]) {
      int x = 1;
      MPI_Send(&x, 1, MPI_INT, r, TAG_STOP, s->comm);
      s->stop_sent[r] = 1;
    }
}

/* Rank 0: takes one message whose envelope st describes. */
static void take(shared_t *s, const MPI_Status *st) {
  int src = st->MPI_SOURCE;
  if (st->MPI_TAG == TAG_PROG)
    MPI_Recv(&s->rank_done[src], 1, MPI_INT64_T, src, TAG_PROG, s->comm, MPI_STATUS_IGNORE);
  else {
    MPI_Recv(&s->reports[src], (int)sizeof s->reports[src], MPI_BYTE, src, TAG_REPORT,
             s->comm, MPI_STATUS_IGNORE);
    s->reported[src] = 1;
    s->rank_done[src] = s->reports[src].done;
    s->failed |= s->reports[src].status != AM_STATUS_OK && !s->reports[src].stopped;
  }
}

static void show(shared_t *s) {
  int64_t sum = s->already;
  for (int r = 0; r < s->me->size; r++)
    sum += s->rank_done[r];
  if (sum != s->shown) /* a report after the last count repeats nothing */
    am_progress_update(s->progress, sum, s->total);
  s->shown = sum;
}

/* Called after each chunk this rank stores: progress to rank 0, and whether to stop. */
static int poll(void *user, int64_t done, int64_t total) {
  (void)total;
  shared_t *s = user;
  s->done = s->base + done;
  if (!s->store_calls_mpi) /* no progress or stop until the ranks meet at the end */
    return 0;
  if (s->me->rank == 0) {
    s->rank_done[0] = s->done;
    int flag = 1;
    MPI_Status st;
    while (MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, s->comm, &flag, &st) == MPI_SUCCESS &&
           flag)
      take(s, &st);
    if (s->failed)
      send_stops(s);
    show(s);
    return s->failed;
  }
  int sent = 1, stop = 0;
  double t = seconds();
  if (s->prog_req != MPI_REQUEST_NULL)
    MPI_Test(&s->prog_req, &sent, MPI_STATUS_IGNORE);
  if (sent && t - s->last_sent >= 0.2) { /* a few messages a second at most */
    s->prog_buf = s->done;
    MPI_Isend(&s->prog_buf, 1, MPI_INT64_T, 0, TAG_PROG, s->comm, &s->prog_req);
    s->last_sent = t;
  }
  MPI_Test(&s->stop_req, &stop, MPI_STATUS_IGNORE);
  return stop;
}

/* This rank's ranges, one after the other; its report. */
static void run_ranges(shared_t *s, const am_mpi_args_t *a, am_ctx_t *ctx, am_dataset_t *ds,
                       const int64_t *ranges, int n, am_mpi_report_t *rep) {
  double t0 = seconds();
  am_status st = AM_STATUS_OK;
  for (int i = 0; i < n && st == AM_STATUS_OK; i++) {
    st = am_job_rows(ctx, ds, &a->set->plan, a->output, &a->set->run, ranges[2 * i],
                     ranges[2 * i + 1], poll, s);
    s->base += ranges[2 * i + 1] - ranges[2 * i];
  }
  int stop = 0;
  if (s->me->rank != 0 && st != AM_STATUS_OK)
    MPI_Test(&s->stop_req, &stop, MPI_STATUS_IGNORE);
  rep->stopped = st != AM_STATUS_OK && (stop || (s->me->rank == 0 && s->failed));
  rep->status = st;
  rep->done = st == AM_STATUS_OK ? s->base : s->done;
  rep->seconds = seconds() - t0;
  if (st != AM_STATUS_OK)
    snprintf(rep->msg, sizeof rep->msg, "%s", am_last_error(ctx));
}

/* The rows phase: every rank computes its ranges; rank 0 collects the reports. */
static void rows_phase(shared_t *s, const am_mpi_args_t *a, am_ctx_t *ctx, am_dataset_t *ds,
                       const int64_t *ranges, int n, am_mpi_report_t *mine) {
  if (s->me->rank != 0) {
    MPI_Irecv(&s->stop_buf, 1, MPI_INT, 0, TAG_STOP, s->comm, &s->stop_req);
    if (mine->status == AM_STATUS_OK)
      run_ranges(s, a, ctx, ds, ranges, n, mine);
    if (s->prog_req != MPI_REQUEST_NULL)
      MPI_Wait(&s->prog_req, MPI_STATUS_IGNORE);
    MPI_Send(mine, (int)sizeof *mine, MPI_BYTE, 0, TAG_REPORT, s->comm);
    wait_idle(&s->stop_req);
    return;
  }
  run_ranges(s, a, ctx, ds, ranges, n, mine);
  s->reports[0] = *mine;
  s->reported[0] = 1;
  s->failed |= mine->status != AM_STATUS_OK && !mine->stopped;
  for (int left = 1;;) {
    if (s->failed)
      send_stops(s);
    left = 0;
    for (int r = 0; r < s->me->size; r++)
      left += !s->reported[r];
    if (!left)
      break;
    MPI_Status st;
    int flag = 0;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, s->comm, &flag, &st);
    if (!flag) { /* as wait_idle: no spinning beside the ranks still computing */
      struct timespec nap = {0, 2000000};
      nanosleep(&nap, NULL);
      continue;
    }
    take(s, &st);
    show(s);
  }
  send_stops(s); /* every report is in: the others may go */
}

static void shared_init(shared_t *s, am_progress_t *progress, const am_mpi_args_t *a,
                        const am_dataset_t *ds, const int64_t *ranges, int n) {
  int size = s->me->size;
  s->progress = progress;
  am_progress_init(progress, "analyze", s->me->rank == 0 ? a->progress : AM_PROGRESS_NEVER,
                   a->quiet || s->me->rank != 0);
  if (s->me->rank != 0)
    return;
  am_dataset_info_t info;
  am_dataset_get_info(ds, &info);
  s->total = info.examples;
  s->already = info.examples;
  s->shown = -1;
  for (int i = 0; i < n; i++)
    s->already -= ranges[2 * i + 1] - ranges[2 * i];
  s->rank_done = calloc((size_t)size, sizeof *s->rank_done);
  s->reported = calloc((size_t)size, sizeof *s->reported);
  s->stop_sent = calloc((size_t)size, sizeof *s->stop_sent);
  s->reports = calloc((size_t)size, sizeof *s->reports);
  if (!s->rank_done || !s->reported || !s->stop_sent || !s->reports) {
    fprintf(stderr, "attnmap: rank 0: out of memory\n");
    MPI_Abort(s->comm, AM_EXIT_FAILURE);
  }
}

static void shared_free(shared_t *s) {
  free(s->rank_done);
  free(s->reported);
  free(s->stop_sent);
  free(s->reports);
}

/* Rank 0's setup: the job and the ranges of every rank, broadcast. */
static am_status plan_ranges(shared_t *s, am_job_t *job, int64_t **ranges, int *counts) {
  int size = s->me->size, total = 0;
  for (int p = 0; p < size; p++)
    total += counts[p] = job ? am_job_split(job, size, p, NULL, 0) : 0;
  *ranges = calloc(2 * (size_t)total + 2, sizeof **ranges);
  if (!*ranges)
    return AM_STATUS_OUT_OF_MEMORY;
  for (int p = 0, at = 0; p < size; at += counts[p], p++)
    am_job_split(job, size, p, *ranges + 2 * at, counts[p]);
  return AM_STATUS_OK;
}

int am_mpi_analyze(const am_mpi_args_t *a) {
  int provided = 0;
  /* poll() runs on the store thread while the main thread computes: SERIALIZED. An MPI
   * library that gives less (FUNNELED or SINGLE; AM_MPI_ASSUME_FUNNELED=1 acts so, for
   * the tests) still gives the same run folder, without progress or early stops across
   * ranks (docs/cluster.md). */
  MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
  const char *assume = getenv("AM_MPI_ASSUME_FUNNELED");
  const int store_calls_mpi =
      provided >= MPI_THREAD_SERIALIZED && !(assume && strcmp(assume, "1") == 0);
  MPI_Comm comm;
  MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  am_mpi_rank_t me;
  am_mpi_rank_setup(&me, comm, &a->set->ctx);
  am_mpi_report_t mine = {0};
  am_ctx_t *ctx = NULL;
  am_dataset_t *ds = NULL;
  am_job_t *job = NULL;
  am_status st = am_mpi_open(&me, a, &ctx, &ds, &mine);
  /* rank 0 opens the job; head: its status, whether the run was already complete, N */
  int64_t head[3] = {st, 0, 0};
  if (me.rank == 0 && st == AM_STATUS_OK) {
    st = am_job_open(ctx, ds, &a->set->plan, a->output, &a->set->run, &job);
    head[0] = st;
    head[1] = st == AM_STATUS_OK && !job;
    if (st != AM_STATUS_OK)
      snprintf(mine.msg, sizeof mine.msg, "%s", am_last_error(ctx));
  }
  MPI_Bcast(head, 3, MPI_INT64_T, 0, comm);
  int *counts = calloc((size_t)me.size + 1, sizeof *counts), code = AM_EXIT_OK;
  int64_t *ranges = NULL;
  shared_t s = {.me = &me,
                .comm = comm,
                .stop_req = MPI_REQUEST_NULL,
                .prog_req = MPI_REQUEST_NULL,
                .store_calls_mpi = store_calls_mpi};
  if (!store_calls_mpi && me.rank == 0 && !a->quiet)
    fprintf(stderr, "attnmap: note: this MPI library allows no calls from a second thread "
                    "(MPI_THREAD_SERIALIZED): no progress or early stop across ranks until "
                    "the end\n");
  if (head[0] == AM_STATUS_OK && !head[1]) {
    if (me.rank == 0)
      plan_ranges(&s, job, &ranges, counts);
    MPI_Bcast(counts, me.size, MPI_INT, 0, comm);
    int total = 0, at = 0;
    for (int p = 0; p < me.size; p++) {
      at += p < me.rank ? counts[p] : 0;
      total += counts[p];
    }
    if (me.rank != 0)
      ranges = calloc(2 * (size_t)total + 2, sizeof *ranges);
    MPI_Bcast(ranges, 2 * total, MPI_INT64_T, 0, comm);
    am_progress_t progress;
    shared_init(&s, &progress, a, ds, ranges, total);
    rows_phase(&s, a, ctx, ds, ranges + 2 * at, counts[me.rank], &mine);
    am_progress_end(&progress);
    if (me.rank == 0)
      code = am_mpi_conclude(&me, a, ctx, ds, job, s.reports, ranges, counts);
    shared_free(&s);
  } else if (me.rank == 0) {
    code = am_mpi_early_end(a, ctx, (am_status)head[0], (int)head[1], &mine);
  }
  MPI_Request req; /* one exit code for the job, on every rank, once rank 0 published */
  MPI_Ibcast(&code, 1, MPI_INT, 0, comm, &req);
  wait_idle(&req);
  free(counts);
  free(ranges);
  am_dataset_close(ds);
  am_ctx_destroy(ctx);
  MPI_Comm_free(&comm);
  MPI_Finalize();
  return code;
}
