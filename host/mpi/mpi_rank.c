/* mpi_rank.c — what one rank of `mpirun attnmap analyze` knows of itself: whether it was
 * started by an MPI launcher, its rank, host, node-local rank, the GPU it takes and how
 * many CPU threads it may use (docs/cluster.md). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpi/mpi_job.h"

int am_mpi_launched(void) {
  /* Open MPI, MPICH/Hydra and PMIx (srun --mpi=pmix) set these in every rank */
  const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK", NULL};
  for (int i = 0; vars[i]; i++)
    if (getenv(vars[i]))
      return 1;
  return 0;
}

/* The NVIDIA device nodes /dev/nvidia<N>: the GPUs of this node. */
static int node_gpus(void) {
  DIR *d = opendir("/dev");
  struct dirent *e;
  int n = 0;
  while (d && (e = readdir(d)))
    if (strncmp(e->d_name, "nvidia", 6) == 0 && e->d_name[6] >= '0' &&
        e->d_name[6] <= '9' && e->d_name[6 + strspn(e->d_name + 6, "0123456789")] == '\0')
      n++;
  if (d)
    closedir(d);
  return n;
}

/* One GPU per rank, by node-local rank: of the devices CUDA_VISIBLE_DEVICES lists (Slurm
 * sets it to one per task with --gpus-per-task=1: kept), else of the node's devices. */
static void pick_gpu(am_mpi_rank_t *me) {
  const char *vis = getenv("CUDA_VISIBLE_DEVICES");
  char list[256][32];
  int n = 0;
  if (vis && *vis) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", vis);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && n < 256;
         t = strtok_r(NULL, ",", &save))
      snprintf(list[n++], sizeof list[0], "%s", t);
  } else {
    int g = node_gpus();
    for (; n < g && n < 256; n++)
      snprintf(list[n], sizeof list[0], "%d", n);
  }
  if (n == 0)
    return;
  snprintf(me->gpu, sizeof me->gpu, "%s", list[me->local_rank % n]);
  setenv("CUDA_VISIBLE_DEVICES", me->gpu, 1);
}

void am_mpi_rank_setup(am_mpi_rank_t *me, MPI_Comm comm, am_ctx_options_t *ctx) {
  MPI_Comm_rank(comm, &me->rank);
  MPI_Comm_size(comm, &me->size);
  MPI_Comm node;
  MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, me->rank, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &me->local_rank);
  MPI_Comm_size(node, &me->local_size);
  MPI_Comm_free(&node);
  int len = 0;
  char host[MPI_MAX_PROCESSOR_NAME];
  MPI_Get_processor_name(host, &len);
  snprintf(me->host, sizeof me->host, "%.*s", len, host);
  me->gpu[0] = '\0';
  const char *b = ctx->backend ? ctx->backend : "";
  if (strcmp(b, "cpu") != 0 && strncmp(b, "cuda:", 5) != 0) /* cuda:N: the user's choice */
    pick_gpu(me);
  if (strcmp(b, "cuda:all") == 0)
    ctx->backend = "cuda";
  if (ctx->threads == 0) { /* the node's cores shared by its ranks */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long t = cores / (me->local_size > 0 ? me->local_size : 1);
    ctx->threads = t > 0 ? (int)t : 1;
  }
}
