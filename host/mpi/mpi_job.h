/* mpi_job.h — `mpirun -n N attnmap analyze` (docs/cluster.md): the CLI's MPI layer, linked
 * into the attnmap program only; the library knows no MPI (its am_job_* API is what the
 * ranks share: a partial folder on a shared file system). */
#ifndef AM_MPI_MPI_JOB_H
#define AM_MPI_MPI_JOB_H

#include <mpi.h>

#include "cli/cli.h"

typedef struct am_mpi_rank {
  int rank, size, local_rank, local_size;
  char host[256];
  char gpu[32]; /* the CUDA device this rank took ("" for none) */
} am_mpi_rank_t;

/* 1 when an MPI launcher (mpirun, srun) started this process. */
int am_mpi_launched(void);
/* Fills me after MPI_Init; picks the rank's GPU (CUDA_VISIBLE_DEVICES) and its share of the
 * node's cores when ctx->threads is 0. */
void am_mpi_rank_setup(am_mpi_rank_t *me, MPI_Comm comm, am_ctx_options_t *ctx);

/* What `attnmap analyze` parsed. */
typedef struct am_mpi_args {
  am_settings_t *set;
  const char *const *paths;
  int npaths;
  const char *output, *target_arg;
  am_progress_mode progress;
  int quiet;
} am_mpi_args_t;

/* The whole analyze under MPI; returns the process's exit code (the same on every rank). */
int am_mpi_analyze(const am_mpi_args_t *a);

#endif
