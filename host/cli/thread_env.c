/* thread_env.c — the attnmap command lets idle worker threads sleep instead of spin.
 *
 * Two libraries keep idle threads busy by default:
 * - libgomp keeps a worker spinning for 300,000 iterations after each parallel region. In
 *   `attnmap analyze` the run's threads share the cores with the store thread (chunk k is
 *   written while chunk k+1 is computed) and with serial steps between regions, so every
 *   spin takes a core from useful work. OMP_WAIT_POLICY=passive: a 256-example bert128 run
 *   took 1.22 instead of 1.44 CPU-s (docs/benchmarks.md, "End to end").
 * - OpenBLAS (the pthreads build Debian installs by default) starts one server thread per
 *   core when it is loaded, and each spins in sched_yield for a while before it sleeps,
 *   although attnmap asks OpenBLAS for one thread (parallelism is across examples,
 *   cpu/backend_cpu.c) and never wakes them. OPENBLAS_NUM_THREADS=1: the same run took
 *   0.40–0.43 s and 0.68–0.74 CPU-s instead of 0.50–0.60 s and 0.89–1.06 CPU-s (2 cores;
 *   `strace -f -c` counted 3,788 sched_yield calls before, none after; docs/benchmarks.md).
 *
 * Both read their environment once, when they are loaded, before main, and have no call to
 * undo it later: so the command sets the variables and executes itself again, the same
 * process (same pid, ~1 ms). What the user set (OMP_WAIT_POLICY or GOMP_SPINCOUNT;
 * OPENBLAS_NUM_THREADS, GOTO_NUM_THREADS or OMP_NUM_THREADS, which OpenBLAS also reads) is
 * kept; when /proc/self/exe cannot be executed the run goes on as it is. The library
 * (libattnmap, loaded by Python) never changes its host's environment. */
#include <stdlib.h>
#include <unistd.h>

#include "cli/cli.h"

void am_cli_idle_threads_sleep(char **argv) {
  int changed = 0;
  if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT") &&
      setenv("OMP_WAIT_POLICY", "passive", 0) == 0)
    changed |= 1;
  if (!getenv("OPENBLAS_NUM_THREADS") && !getenv("GOTO_NUM_THREADS") &&
      !getenv("OMP_NUM_THREADS") && setenv("OPENBLAS_NUM_THREADS", "1", 0) == 0)
    changed |= 2;
  if (!changed)
    return;
  execv("/proc/self/exe", argv);
  /* not executed: this process keeps the libraries' defaults */
  if (changed & 1)
    unsetenv("OMP_WAIT_POLICY");
  if (changed & 2)
    unsetenv("OPENBLAS_NUM_THREADS");
}
