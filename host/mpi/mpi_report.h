/* mpi_report.h — each rank's report to rank 0, and what rank 0 makes of them: the one
 * error line naming the rank, or the run folder finished with the ranks in its provenance
 * (mpi_report.c). */
#ifndef AM_MPI_MPI_REPORT_H
#define AM_MPI_MPI_REPORT_H

#include "mpi/mpi_job.h"

typedef struct am_mpi_report {
  int32_t status;  /* am_status of the rank's setup and ranges */
  int32_t stopped; /* 1: it stopped because another rank failed */
  int64_t done;    /* examples it computed */
  double seconds;
  char host[256], gpu[32], backend[32], device[128];
  char msg[1024];
} am_mpi_report_t;

/* Makes the rank's context and opens the dataset; a failure is in mine (status, msg). */
am_status am_mpi_open(const am_mpi_rank_t *me, const am_mpi_args_t *a, am_ctx_t **ctx,
                      am_dataset_t **ds, am_mpi_report_t *mine);
/* Rank 0, once every report is in: the first failing rank's error, or am_job_finish with
 * the ranks, hosts and devices in provenance.parts; closes the job; the exit code. */
int am_mpi_conclude(const am_mpi_rank_t *me, const am_mpi_args_t *a, am_ctx_t *ctx,
                    am_dataset_t *ds, am_job_t *job, const am_mpi_report_t *reports,
                    const int64_t *ranges, const int *counts);
/* Rank 0, when no rows were computed: its own setup failure, or a run already complete. */
int am_mpi_early_end(const am_mpi_args_t *a, am_ctx_t *ctx, am_status st, int complete,
                     const am_mpi_report_t *mine);

#endif
