/* sigbus.c — a mapped input file cut short while it is being read must end the run with
 * a clean error, not kill the process: touching a page past the new end of the file
 * raises SIGBUS. While a file is mapped its range is registered here; a SIGBUS inside a
 * registered range puts a page of zeros where the lost page was (so the faulting read
 * goes on, reading zeros) and marks the file, and am_file_check_unchanged then fails
 * ("changed while being read"); the pipeline checks every file before each chunk, after a
 * failed chunk and before it writes summary.json, so no output is published from it.
 * A SIGBUS anywhere else goes to the handler that was there before (or the default). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "io/file.h"

/* Files mapped at once, at most, that are guarded (more are mapped unguarded). */
#define SLOTS 1024

typedef struct slot {
  _Atomic uintptr_t lo, hi; /* [lo, hi) mapped; lo == 0: free */
  atomic_int hit;           /* a lost page was replaced by zeros */
} slot_t;

static slot_t slots[SLOTS];
static struct sigaction previous;
static pthread_once_t installed = PTHREAD_ONCE_INIT;
static uintptr_t page_size;

static void on_sigbus(int sig, siginfo_t *si, void *uc) {
  uintptr_t a = (uintptr_t)si->si_addr;
  for (int i = 0; si->si_code == BUS_ADRERR && i < SLOTS; i++) {
    uintptr_t lo = atomic_load(&slots[i].lo), hi = atomic_load(&slots[i].hi);
    if (lo == 0 || a < lo || a >= hi)
      continue;
    void *pg = (void *)(a & ~(page_size - 1));
    if (mmap(pg, (size_t)page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
             0) == MAP_FAILED)
      break;
    atomic_store(&slots[i].hit, 1);
    return; /* the read is retried and finds zeros */
  }
  /* not attnmap's: whatever was there before attnmap installed this handler */
  if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction) {
    previous.sa_sigaction(sig, si, uc);
    return;
  }
  if (!(previous.sa_flags & SA_SIGINFO) && previous.sa_handler != SIG_DFL &&
      previous.sa_handler != SIG_IGN) {
    previous.sa_handler(sig);
    return;
  }
  sigaction(SIGBUS, &previous, NULL);
  if (si->si_code <= 0) /* sent by kill(): a fault would come back by itself */
    raise(sig);
}

static void install(void) {
  page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  if (page_size == 0 || sigaction(SIGBUS, &sa, &previous) != 0)
    page_size = 0;
}

int am_io_guard_add(const void *map, size_t size) {
  pthread_once(&installed, install);
  if (!map || size == 0 || page_size == 0)
    return -1;
  for (int i = 0; i < SLOTS; i++) {
    uintptr_t free_slot = 0;
    if (atomic_compare_exchange_strong(&slots[i].lo, &free_slot, (uintptr_t)map)) {
      atomic_store(&slots[i].hit, 0);
      atomic_store(&slots[i].hi, (uintptr_t)map + size);
      return i;
    }
  }
  return -1;
}

void am_io_guard_remove(int slot) {
  if (slot < 0 || slot >= SLOTS)
    return;
  atomic_store(&slots[slot].hi, 0);
  atomic_store(&slots[slot].lo, 0);
}

int am_io_guard_hit(int slot) {
  return slot >= 0 && slot < SLOTS && atomic_load(&slots[slot].hit);
}
