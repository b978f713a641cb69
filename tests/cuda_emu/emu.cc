/* emu.cc — the runtime behind cuda_emu.h: fibers for the threads of a block, the barriers
 * and warp operations between them, and synchronous stand-ins for the CUDA runtime and
 * cuBLAS calls the backend makes (see cuda_emu.h for what it checks and what it cannot). */
#include "cuda_emu.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h> /* fiber stacks made known: valgrind checks the kernels */
#define AM_EMU_STACK(lo, hi) VALGRIND_STACK_REGISTER(lo, hi)
#else
#define AM_EMU_STACK(lo, hi) 0
#endif

/* ---- fibers ------------------------------------------------------------------------- */

extern "C" void am_emu_switch(void **save_sp, void *new_sp);
asm(R"(
.text
.globl am_emu_switch
.type am_emu_switch,@function
am_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size am_emu_switch, .-am_emu_switch
)");

enum { F_READY, F_BLOCK, F_WARP, F_DONE };
#define STACK_BYTES (512u << 10)
#define MAX_THREADS 1024

struct fiber {
  am_emu_thread t;
  int state, lane, warp;
  void *sp;
  unsigned char *stack;
};

struct block_run {
  const char *name;
  const std::function<void()> *body;
  int nthreads;
  fiber f[MAX_THREADS];
  void *sched_sp;
  int cur;
  unsigned gen;  /* block barriers passed */
  int or_acc[2]; /* __syncthreads_or per generation */
  unsigned long long xchg[MAX_THREADS / 32][32];
  float wmma[MAX_THREADS / 32][3][256]; /* a warp's mma operands, in exchange */
  unsigned char *smem;
  size_t smem_bytes;
};

thread_local am_emu_thread *am_emu_cur;
static thread_local block_run *run_cur;
static thread_local unsigned char *stacks[MAX_THREADS];
thread_local cudaError_t am_emu_launch_error = cudaSuccess;

static void die(const char *what) {
  fprintf(stderr, "cuda_emu: kernel %s, block (%u,%u,%u), thread %u: %s\n",
          run_cur ? run_cur->name : "?", am_emu_cur ? am_emu_cur->bid.x : 0,
          am_emu_cur ? am_emu_cur->bid.y : 0, am_emu_cur ? am_emu_cur->bid.z : 0,
          am_emu_cur ? am_emu_cur->tid.x : 0, what);
  abort();
}

static void yield_to_scheduler(void) {
  block_run *r = run_cur;
  am_emu_switch(&r->f[r->cur].sp, r->sched_sp);
}

static void trampoline(void) {
  block_run *r = run_cur;
  (*r->body)();
  r->f[r->cur].state = F_DONE;
  yield_to_scheduler();
  die("a finished fiber was resumed");
}

static void *fresh_stack(int i) {
  if (!stacks[i]) {
    void *p = mmap(NULL, STACK_BYTES, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
      die("no memory for a fiber stack");
    stacks[i] = (unsigned char *)p;
    (void)AM_EMU_STACK(stacks[i], stacks[i] + STACK_BYTES);
  }
  uintptr_t top = ((uintptr_t)stacks[i] + STACK_BYTES) & ~(uintptr_t)15;
  void **sp = (void **)top;
  *--sp = NULL;                /* the trampoline's return address: never used */
  *--sp = (void *)&trampoline; /* where the first switch returns to */
  for (int k = 0; k < 6; k++)  /* rbp rbx r12 r13 r14 r15 */
    *--sp = NULL;
  return sp;
}

/* Releases a barrier when every live fiber of its scope waits there. */
static bool release(block_run *r) {
  bool any = false;
  int live = 0, at_block = 0;
  for (int i = 0; i < r->nthreads; i++) {
    live += r->f[i].state != F_DONE;
    at_block += r->f[i].state == F_BLOCK;
  }
  if (live > 0 && at_block == live) {
    if (live != r->nthreads)
      die("__syncthreads after some threads of the block exited");
    r->gen++;
    r->or_acc[r->gen & 1] = 0;
    for (int i = 0; i < r->nthreads; i++)
      r->f[i].state = F_READY;
    return true;
  }
  for (int w = 0; w * 32 < r->nthreads; w++) {
    int lo = w * 32, hi = lo + 32 < r->nthreads ? lo + 32 : r->nthreads, wait = 0, done = 0;
    for (int i = lo; i < hi; i++) {
      wait += r->f[i].state == F_WARP;
      done += r->f[i].state == F_DONE;
    }
    if (wait > 0 && wait + done == hi - lo) {
      if (done)
        die("a full-mask warp operation with exited lanes");
      for (int i = lo; i < hi; i++)
        r->f[i].state = F_READY;
      any = true;
    }
  }
  return any;
}

void am_emu_run(const char *name, const std::function<void()> &body, dim3 grid, dim3 block,
                size_t smem) {
  const unsigned nt = block.x * block.y * block.z;
  if (nt == 0 || nt > MAX_THREADS || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.y > 65535 || grid.z > 65535 || smem > (227u << 10)) {
    am_emu_launch_error = cudaErrorInvalidConfiguration;
    return;
  }
  block_run *r = new block_run();
  block_run *outer = run_cur;
  am_emu_thread *outer_t = am_emu_cur;
  r->name = name;
  r->body = &body;
  r->nthreads = (int)nt;
  r->smem_bytes = smem;
  r->smem = (unsigned char *)malloc(smem ? smem : 1);
  run_cur = r;
  for (unsigned bz = 0; bz < grid.z; bz++)
    for (unsigned by = 0; by < grid.y; by++)
      for (unsigned bx = 0; bx < grid.x; bx++) {
        memset(r->smem, 0xFF, smem); /* NaN pattern: shared memory starts undefined */
        r->gen = 0;
        r->or_acc[0] = r->or_acc[1] = 0;
        for (int i = 0; i < (int)nt; i++) {
          fiber *f = &r->f[i];
          f->t.tid = dim3(i % block.x, (i / block.x) % block.y, i / (block.x * block.y));
          f->t.bid = dim3(bx, by, bz);
          f->t.bdim = block;
          f->t.gdim = grid;
          f->state = F_READY;
          f->lane = i & 31;
          f->warp = i >> 5;
          f->sp = fresh_stack(i);
        }
        for (;;) {
          bool progress = false;
          for (int i = 0; i < (int)nt; i++) {
            if (r->f[i].state != F_READY)
              continue;
            r->cur = i;
            am_emu_cur = &r->f[i].t;
            am_emu_switch(&r->sched_sp, r->f[i].sp);
            progress = true;
          }
          int live = 0;
          for (int i = 0; i < (int)nt; i++)
            live += r->f[i].state != F_DONE;
          if (live == 0)
            break;
          if (!release(r) && !progress)
            die("deadlock: threads wait at different barriers");
        }
      }
  free(r->smem);
  run_cur = outer;
  am_emu_cur = outer_t;
  delete r;
}

static fiber *me(void) {
  if (!run_cur)
    die("a device function outside a kernel");
  return &run_cur->f[run_cur->cur];
}

void __syncthreads(void) { (void)__syncthreads_or(0); }

int __syncthreads_or(int pred) {
  block_run *r = run_cur;
  const unsigned g = r->gen;
  r->or_acc[g & 1] |= pred != 0;
  me()->state = F_BLOCK;
  yield_to_scheduler();
  return r->or_acc[g & 1];
}

static void warp_wait(void) {
  me()->state = F_WARP;
  yield_to_scheduler();
}

void __syncwarp(unsigned mask) {
  if (mask != 0xFFFFFFFFu)
    die("__syncwarp with a partial mask (not emulated)");
  warp_wait();
}

unsigned long long am_emu_shfl(unsigned mask, unsigned long long bits, int src, int mode) {
  if (mask != 0xFFFFFFFFu)
    die("a shuffle with a partial mask (not emulated)");
  fiber *f = me();
  unsigned long long *x = run_cur->xchg[f->warp];
  x[f->lane] = bits;
  warp_wait();
  const int from = mode == 1 ? (f->lane ^ src) & 31 : src & 31;
  const unsigned long long v = x[from];
  warp_wait(); /* nobody overwrites the slots before everyone has read */
  return v;
}

unsigned __ballot_sync(unsigned mask, int pred) {
  if (mask != 0xFFFFFFFFu)
    die("a ballot with a partial mask (not emulated)");
  fiber *f = me();
  unsigned long long *x = run_cur->xchg[f->warp];
  x[f->lane] = pred != 0;
  warp_wait();
  unsigned b = 0;
  const int lanes =
      run_cur->nthreads - f->warp * 32 < 32 ? run_cur->nthreads - f->warp * 32 : 32;
  for (int l = 0; l < lanes; l++)
    b |= (x[l] ? 1u : 0u) << l;
  warp_wait();
  return b;
}

unsigned char *am_emu_dyn_smem(void) { return run_cur->smem; }

/* ---- warp matrix operations (cuda_emu.h's nvcuda::wmma) ---------------------------- */

int am_emu_lane(void) { return me()->lane; }

float am_emu_bits_to_float(unsigned short bits, int bf16) {
  if (bf16) {
    unsigned u = (unsigned)bits << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
  }
  _Float16 h;
  memcpy(&h, &bits, 2);
  return (float)h;
}

/* A warp-collective matrix access: every lane of the warp with the same pointer and
 * stride, and the alignment the CUDA programming guide requires of wmma. */
void am_emu_wmma_check(const void *p, unsigned ldm, unsigned elem_bytes) {
  fiber *f = me();
  if ((uintptr_t)p % 32 != 0)
    die("a wmma load or store from a pointer not 32-byte aligned");
  if ((ldm * elem_bytes) % 16 != 0)
    die("a wmma load or store with a stride not a multiple of 16 bytes");
  unsigned long long *x = run_cur->xchg[f->warp];
  x[f->lane] = (unsigned long long)(uintptr_t)p ^ ((unsigned long long)ldm << 48);
  warp_wait();
  const int lanes =
      run_cur->nthreads - f->warp * 32 < 32 ? run_cur->nthreads - f->warp * 32 : 32;
  if (lanes != 32)
    die("a wmma operation in a partial warp");
  for (int l = 0; l < 32; l++)
    if (x[l] != x[0])
      die("the lanes of a warp gave a wmma operation different pointers or strides");
  warp_wait();
}

/* d = a b + c over the warp (16 x 16 x 16); d may be c. */
void am_emu_wmma_mma(float *d, const float *a, const float *b, const float *c) {
  fiber *f = me();
  float(*w)[256] = run_cur->wmma[f->warp];
  for (int t = 0; t < 8; t++) {
    w[0][t * 32 + f->lane] = a[t];
    w[1][t * 32 + f->lane] = b[t];
    w[2][t * 32 + f->lane] = c[t];
  }
  warp_wait();
  for (int t = 0; t < 8; t++) {
    const int e = t * 32 + f->lane, r = e / 16, col = e % 16;
    float acc = w[2][e];
    for (int k = 0; k < 16; k++)
      acc += w[0][r * 16 + k] * w[1][k * 16 + col];
    d[t] = acc;
  }
  warp_wait(); /* nobody overwrites the operands before everyone has read */
}
