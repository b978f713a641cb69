/* omp_policy.c — `attnmap analyze` lets idle OpenMP workers sleep instead of spin.
 *
 * libgomp's default keeps a worker spinning for 300,000 iterations after each parallel
 * region. In `attnmap analyze` the run's threads share the cores with the store thread
 * (chunk k is written while chunk k+1 is computed) and with serial steps between regions,
 * so every spin takes a core from useful work, and a team member the store thread
 * preempts keeps the other spinning at the barrier. With OMP_WAIT_POLICY=passive a
 * 256-example bert128 run took 1.22 instead of 1.44 CPU-s (docs/benchmarks.md, "End to
 * end"); waking a sleeping worker costs microseconds, a handful of times per chunk.
 *
 * libgomp reads its environment once, in its constructor, before main, and has no call
 * to change the policy later (a setenv from the executable's preinit_array is undone when
 * libc initialises): so the command sets the variable and executes itself again, the same
 * process (same pid, ~1 ms). A policy the user set (OMP_WAIT_POLICY or GOMP_SPINCOUNT)
 * is kept; when /proc/self/exe cannot be executed the run goes on as it is. The library
 * (libattnmap, loaded by Python) never changes its host's environment. */
#include <stdlib.h>
#include <unistd.h>

#include "cli/cli.h"

void am_cli_omp_passive(char **argv) {
  if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT"))
    return;
  if (setenv("OMP_WAIT_POLICY", "passive", 0) != 0)
    return;
  execv("/proc/self/exe", argv);
  unsetenv("OMP_WAIT_POLICY"); /* not executed: this process keeps libgomp's default */
}
