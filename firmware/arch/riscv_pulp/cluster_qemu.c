/* esl_cluster.h on QEMU's harts (the GAP9 stand-in): hart 0 is the fabric controller, harts
 * 1..ESL_CLUSTER_CORES the workers. Waking is a machine software interrupt through the CLINT
 * (msip, one word per hart at ESL_CLINT_BASE + 4 * hart; QEMU 7.2 hw/intc/riscv_aclint.c):
 * a waiting hart sits in `wfi` with mie.MSIE set and mstatus.MIE clear, so the interrupt only
 * wakes it (no handler runs), and clears its own msip.
 *
 * A fork runs the workers one after another (the FC wakes worker k, sleeps until it is done,
 * then wakes k + 1): under -icount QEMU runs all harts on one host thread anyway, and only then
 * does the shared virtual clock (mcycle) read around a worker's work count that worker's
 * instructions alone. The results are those of a parallel run: workers write disjoint outputs
 * and read only what the FC prepared before the fork. */
#include <stddef.h>
#include "esl_cluster.h"

#ifndef ESL_CLUSTER_CORES
#error "cluster_qemu.c needs ESL_CLUSTER_CORES (the board's cluster.cores)"
#endif
#ifndef ESL_CLINT_BASE
#define ESL_CLINT_BASE 0x02000000u
#endif
#define MSIP(hart) (*(volatile uint32_t *)(ESL_CLINT_BASE + 4u * (hart)))
#define MIP_MSIP (1u << 3)

extern uint8_t _esl_l1_start[], _esl_l1_end[];
extern uint8_t _esl_worker_stack_bytes[], _esl_l1_scratch_bytes[];   /* absolute symbols: the address is the value */
uint64_t esl_mcycle(void);

static struct {
    esl_cl_fn_t fn;
    void *arg;
    volatile uint32_t done[ESL_CLUSTER_CORES + 1];  /* by hart; set by the worker */
    uint64_t ticks[ESL_CLUSTER_CORES + 1];          /* by hart: its last fork's ticks */
} team;
static uint32_t cores = ESL_CLUSTER_CORES;
static uint64_t core_ticks[ESL_CLUSTER_CORES];      /* per worker, since counts_start */
static uint64_t gen_ticks[ESL_CLUSTER_CORES];       /* per worker, this generation's earlier tokens */
static uint32_t gen_forks;
static uint64_t overlap;
static uint32_t forks;

static inline void fence(void) { __asm__ volatile("fence rw, rw" ::: "memory"); }
static inline uint32_t hart_id(void)
{
    uint32_t h;
    __asm__ volatile("csrr %0, mhartid" : "=r"(h));
    return h;
}

/* Sleep until this hart's msip is raised, then lower it. */
static void wait_ipi(void)
{
    uint32_t mip;
    do {
        __asm__ volatile("wfi" ::: "memory");
        __asm__ volatile("csrr %0, mip" : "=r"(mip));
    } while (!(mip & MIP_MSIP));
    MSIP(hart_id()) = 0;
    fence();
}

/* The workers' loop (from _start, on their L1 stacks): wait to be woken, run the team's function,
 * report the ticks it took, wake the FC. The FC wakes a worker only after .bss is zeroed. */
__attribute__((noreturn)) void esl_cluster_worker(uint32_t hart)
{
    __asm__ volatile("csrc mstatus, %0" : : "r"(1u << 3));    /* MIE off: wake, no handler */
    __asm__ volatile("csrs mie, %0" : : "r"(MIP_MSIP));
    for (;;) {
        wait_ipi();
        const uint64_t t0 = esl_mcycle();
        team.fn(team.arg);
        const uint64_t t1 = esl_mcycle();
        team.ticks[hart] = t1 - t0;
        fence();
        team.done[hart] = 1u;
        fence();
        MSIP(0) = 1u;
    }
}

uint32_t esl_cl_cores(void) { return cores; }

void esl_cl_set_cores(uint32_t n)
{
    cores = n < 1u ? 1u : n > ESL_CLUSTER_CORES ? ESL_CLUSTER_CORES : n;
}

uint32_t esl_cl_core_id(void) { return hart_id() - 1u; }

void esl_cl_team_fork(esl_cl_fn_t fn, void *arg)
{
    static uint8_t fc_ready;
    if (!fc_ready) {                                           /* the FC's side of waking */
        __asm__ volatile("csrc mstatus, %0" : : "r"(1u << 3));
        __asm__ volatile("csrs mie, %0" : : "r"(MIP_MSIP));
        fc_ready = 1u;
    }
    team.fn = fn;
    team.arg = arg;
    uint64_t sum = 0, max = 0;
    for (uint32_t h = 1; h <= cores; h++) {
        team.done[h] = 0;
        fence();
        MSIP(h) = 1u;
        while (!team.done[h]) wait_ipi();
        fence();
        const uint64_t t = team.ticks[h];
        core_ticks[h - 1u] += t;
        sum += t;
        if (t > max) max = t;
    }
    overlap += sum - max;
    forks++;
}

void esl_cl_split(uint32_t n, uint32_t align, uint32_t core, uint32_t n_cores, uint32_t *begin, uint32_t *end)
{
    const uint32_t blocks = (n + align - 1u) / align;
    const uint32_t per = blocks / n_cores, extra = blocks % n_cores;
    uint32_t b = core * per + (core < extra ? core : extra);
    uint32_t e = b + per + (core < extra ? 1u : 0u);
    b *= align;
    e *= align;
    *begin = b < n ? b : n;
    *end = e < n ? e : n;
}

void esl_cl_dma_memcpy(void *dst, const void *src, uint32_t bytes, esl_cl_dma_t *cmd)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    for (uint32_t i = 0; i < bytes; i++) d[i] = s[i];
    fence();
    cmd->done = 1u;
}

void esl_cl_dma_wait(esl_cl_dma_t *cmd)
{
    while (!cmd->done) {
    }
    fence();
}

void *esl_cl_l1_scratch(uint32_t core)
{
    const uint32_t stacks = (uint32_t)(uintptr_t)_esl_worker_stack_bytes * ESL_CLUSTER_CORES;
    return _esl_l1_start + stacks + core * (uint32_t)(uintptr_t)_esl_l1_scratch_bytes;
}

void esl_cluster_counts_start(void)
{
    for (uint32_t k = 0; k < ESL_CLUSTER_CORES; k++) {
        gen_ticks[k] += core_ticks[k];
        core_ticks[k] = 0;
    }
    gen_forks += forks;
    overlap = 0;
    forks = 0;
}

uint64_t esl_cluster_overlap(void) { return overlap; }

uint64_t esl_cluster_core_ticks(uint32_t core) { return core < ESL_CLUSTER_CORES ? core_ticks[core] : 0; }

uint32_t esl_cluster_forks(void) { return forks; }

/* ---- per-core counts of a generation, to the emulator's log --------------------------------
 * The serial protocol has no field for them, so the FC writes one line per generation through
 * semihosting (SYS_WRITE0, which QEMU prints on its stderr: the emulator's log, which the host's
 * bench reads after DONE):
 *     esl-cluster: cores N forks F ticks T1,T2,...,TN
 * F forks and each worker's ticks, summed over the generation's forward passes (ticks in the
 * unit of esl_port_cycles). The arch's generation hooks frame it: esl_stack_paint runs as a
 * generation starts (serve.c) and zeroes the sums, esl_stack_peak_bytes as it ends and prints. */
void esl_semihost_write0(const char *s);

static char *put_dec(char *p, uint64_t v)
{
    char tmp[21];
    uint32_t n = 0;
    do {
        tmp[n++] = (char)('0' + (uint32_t)(v % 10u));
        v /= 10u;
    } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

void esl_cluster_generation_start(void)
{
    esl_cluster_counts_start();
    for (uint32_t k = 0; k < ESL_CLUSTER_CORES; k++) gen_ticks[k] = 0;
    gen_forks = 0;
}

void esl_cluster_generation_report(void)
{
    static char line[32 + 22 * (ESL_CLUSTER_CORES + 2)];
    static const char head[] = "esl-cluster: cores ";
    char *p = line;
    for (const char *h = head; *h; h++) *p++ = *h;
    p = put_dec(p, cores);
    for (const char *h = " forks "; *h; h++) *p++ = *h;
    p = put_dec(p, gen_forks + forks);
    for (const char *h = " ticks "; *h; h++) *p++ = *h;
    for (uint32_t k = 0; k < cores; k++) {
        if (k) *p++ = ',';
        p = put_dec(p, gen_ticks[k] + core_ticks[k]);
    }
    *p++ = '\n';
    *p = 0;
    esl_semihost_write0(line);
}
