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
 * and read only what the FC prepared before the fork.
 *
 * The FC's clock over a fork counts the busiest worker's instructions only: the other workers'
 * (they run beside it on a real cluster), the FC's waking of each worker and each worker's
 * wake-up code and the fork's own bookkeeping (a real cluster dispatches in one go: the host
 * models that cost) and the DMA copies with the DMA model's bookkeeping (the cluster DMA's work,
 * not a core's) are subtracted (esl_cluster_overlap). Each window is read first and last thing
 * (clock_lo): what stays in the counts is the calls, about 16 instructions per fork on the FC,
 * 3 per fork on a worker, 10 per DMA command or wait. A DMA command's
 * completion is modelled in the cluster's time (ESL_CL_DMA_SETUP_CYCLES, then
 * ESL_CL_DMA_BYTES_PER_CYCLE shared by the fork's workers, after the worker's previous command);
 * a wait before that time adds the difference to the worker's modelled wait, reported beside the
 * counts. The cluster's time runs on from fork to fork, so a prefetch issued in one fork and
 * waited for in a later one is modelled too.
 * The board's figures reach the build as defines (edgeslm.lower.codegen.build_settings). */
#include <stddef.h>
#include <string.h>
#include "esl_cluster.h"
#include "cluster_counts.h"

#ifndef ESL_CLUSTER_CORES
#error "cluster_qemu.c needs ESL_CLUSTER_CORES (the board's cluster.cores)"
#endif
#if !defined(ESL_CL_DMA_SETUP_CYCLES) || !defined(ESL_CL_DMA_BYTES_PER_CYCLE) || !defined(ESL_CL_TICKS_PER_CYCLE)
#error "cluster_qemu.c needs the DMA model: ESL_CL_DMA_SETUP_CYCLES, ESL_CL_DMA_BYTES_PER_CYCLE, ESL_CL_TICKS_PER_CYCLE"
#endif
#ifndef ESL_CLINT_BASE
#define ESL_CLINT_BASE 0x02000000u
#endif
#define MSIP(hart) (*(volatile uint32_t *)(ESL_CLINT_BASE + 4u * (hart)))
#define MIP_MSIP (1u << 3)

extern uint8_t _esl_l1_start[], _esl_l1_end[];
/* absolute symbols (the address is the value): the linker script's, from the planner */
extern uint8_t _esl_worker_stack_bytes[], _esl_l1_scratch_bytes[], _esl_l1_tiles_at[], _esl_l1_slot0_bytes[];
uint64_t esl_mcycle(void);

static struct {
    esl_cl_fn_t fn;
    void *arg;
    uint64_t start;                                 /* the cluster time the fork starts at */
    volatile uint32_t done[ESL_CLUSTER_CORES + 1];  /* by hart; set by the worker */
} team;

/* One worker's run of the team's function (by hart): written by that worker only, read by the FC
 * once the worker is done. The worker's time in its run = clock - t0 - excluded + wait, and the
 * cluster time = team.start + that. A run's window is under 2^32 ticks (2^25 instructions), so
 * the clock's low word serves: differences of low words are exact. */
typedef struct {
    uint32_t t0;               /* the clock's low word as the run started */
    uint32_t excluded;         /* ticks of DMA copies and of the DMA model's bookkeeping */
    uint64_t wait;             /* modelled ticks spent waiting for DMA */
    uint64_t free_at;          /* cluster time its DMA queue is free (kept from fork to fork) */
    uint32_t ticks;            /* at the end: its instructions (clock - t0 - excluded) */
    uint32_t dma_bytes, dma_cmds;
} run_t;
static run_t runs[ESL_CLUSTER_CORES + 1];

/* The cluster's own time in ticks (never reset): the FC's clock less every tick the forks left out
 * (left_before plus esl_cluster_overlap) plus the DMA waits on the forks' busiest paths. A prefetch
 * issued in one fork completes at a cluster time a later fork's wait compares with. */
static uint64_t left_before, waited;

/* What the forks did: since esl_cluster_counts_start (`now`), and the generation's earlier
 * forward passes (`gen`). Ticks in esl_port_cycles' unit. */
typedef struct {
    uint64_t ticks[ESL_CLUSTER_CORES];   /* per worker: its instructions */
    uint64_t wait[ESL_CLUSTER_CORES];    /* per worker: its modelled DMA waits */
    uint64_t dma_bytes, dma_wait;        /* bytes copied; per fork the wait on its busiest path */
    uint32_t forks, dma_cmds;
} counts_t;
static counts_t now, gen;
static uint32_t cores = ESL_CLUSTER_CORES;
static uint64_t overlap;                             /* since counts_start: see esl_cluster_overlap */

static inline void fence(void) { __asm__ volatile("fence rw, rw" ::: "memory"); }

/* The low word of the clock, in one instruction. The counting reads it first and last thing
 * around what it leaves out (the fork's and the DMA model's bookkeeping: on a real cluster a fork
 * is dispatched in one go, its cost modelled by the host, and a DMA command is a few register
 * writes), so that little of that bookkeeping lands in the counts; "memory" keeps the loads and
 * stores on their side of the read. */
static inline uint32_t clock_lo(void)
{
    uint32_t v;
    __asm__ volatile("csrr %0, mcycle" : "=r"(v) : : "memory");
    return v;
}
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
 * report its instructions, wake the FC. The FC wakes a worker only after .bss is zeroed. */
__attribute__((noreturn)) void esl_cluster_worker(uint32_t hart)
{
    __asm__ volatile("csrc mstatus, %0" : : "r"(1u << 3));    /* MIE off: wake, no handler */
    __asm__ volatile("csrs mie, %0" : : "r"(MIP_MSIP));
    run_t *r = &runs[hart];
    for (;;) {
        wait_ipi();
        r->excluded = 0;
        r->wait = 0;
        r->dma_bytes = r->dma_cmds = 0;
        const esl_cl_fn_t fn = team.fn;
        void *const arg = team.arg;
        const uint32_t t0 = clock_lo();          /* the run: from here to the call's return */
        r->t0 = t0;
        fn(arg);
        r->ticks = (uint32_t)(clock_lo() - t0) - r->excluded;
        fence();
        team.done[hart] = 1u;
        fence();
        MSIP(0) = 1u;
    }
}

/* The step loop runs on the fabric controller, which forks (hart 0): a call. */
void esl_cluster_run(esl_cl_fn_t fn, void *arg) { fn(arg); }

uint32_t esl_cl_cores(void) { return cores; }

void esl_cl_set_cores(uint32_t n)
{
    cores = n < 1u ? 1u : n > ESL_CLUSTER_CORES ? ESL_CLUSTER_CORES : n;
}

uint32_t esl_cl_core_id(void) { return hart_id() - 1u; }

/* The fork but for its first and last clock reads (esl_cl_team_fork): c0 is the first's low
 * word. Returns the busiest worker's instructions, the ticks the fork keeps in the count. */
__attribute__((noinline)) static uint32_t fork_run(esl_cl_fn_t fn, void *arg, uint32_t c0)
{
    const uint64_t now64 = esl_mcycle();
    const uint64_t begin = now64 - (uint32_t)((uint32_t)now64 - c0);     /* the clock at c0 */
    static uint8_t fc_ready;
    if (!fc_ready) {                                           /* the FC's side of waking */
        __asm__ volatile("csrc mstatus, %0" : : "r"(1u << 3));
        __asm__ volatile("csrs mie, %0" : : "r"(MIP_MSIP));
        fc_ready = 1u;
    }
    team.fn = fn;
    team.arg = arg;
    team.start = begin - (left_before + overlap) + waited;
    uint64_t busiest = 0, longest = 0;      /* the most instructions; the most instructions + wait */
    for (uint32_t h = 1; h <= cores; h++) {
        team.done[h] = 0;
        fence();
        MSIP(h) = 1u;
        while (!team.done[h]) wait_ipi();
        fence();
        const run_t *r = &runs[h];
        now.ticks[h - 1u] += r->ticks;
        now.wait[h - 1u] += r->wait;
        now.dma_bytes += r->dma_bytes;
        now.dma_cmds += r->dma_cmds;
        if (r->ticks > busiest) busiest = r->ticks;
        if (r->ticks + r->wait > longest) longest = r->ticks + r->wait;
    }
    now.dma_wait += longest - busiest;
    now.forks++;
    waited += longest - busiest;
    return (uint32_t)busiest;
}

/* The fork counts its busiest worker's instructions only: everything from the first clock read
 * to the last but those goes to esl_cluster_overlap (what is left outside: the call, a few
 * instructions). */
void esl_cl_team_fork(esl_cl_fn_t fn, void *arg)
{
    const uint32_t c0 = clock_lo();
    const uint32_t kept = fork_run(fn, arg, c0);
    overlap += (uint32_t)(clock_lo() - c0) - kept;
}

/* A command's modelled duration in ticks: setup, then the bytes at the DMA's bandwidth shared by
 * the fork's workers (all of them may stream at once: the conservative case). */
static uint64_t dma_ticks(uint32_t bytes)
{
    const uint64_t per_cycle = ESL_CL_DMA_BYTES_PER_CYCLE;
    const uint64_t cycles = ESL_CL_DMA_SETUP_CYCLES + ((uint64_t)bytes * cores + per_cycle - 1u) / per_cycle;
    return cycles * ESL_CL_TICKS_PER_CYCLE;
}

/* The cluster time at clock low word c on this worker: the fork's start plus the worker's own
 * time in it (instructions plus modelled waits), in ticks. */
static uint64_t worker_time(const run_t *r, uint32_t c)
{
    return team.start + ((uint32_t)(c - r->t0) - r->excluded + r->wait);
}

/* The command's copy and its model; returns where the caller adds the ticks it took. */
__attribute__((noinline)) static uint32_t *dma_start(void *dst, const void *src, uint32_t bytes, esl_cl_dma_t *cmd,
                                                     uint32_t c0)
{
    run_t *r = &runs[hart_id()];
    const uint64_t issued = worker_time(r, c0);
    memcpy(dst, src, bytes);
    fence();
    cmd->done = 1u;
    cmd->done_at = (issued > r->free_at ? issued : r->free_at) + dma_ticks(bytes);
    r->free_at = cmd->done_at;
    r->dma_bytes += bytes;
    r->dma_cmds++;
    return &r->excluded;
}

void esl_cl_dma_memcpy(void *dst, const void *src, uint32_t bytes, esl_cl_dma_t *cmd)
{
    const uint32_t c0 = clock_lo();
    uint32_t *excluded = dma_start(dst, src, bytes, cmd, c0);
    *excluded += (uint32_t)(clock_lo() - c0);
}

/* The wait's model, then the ticks since c0 left out. */
__attribute__((noinline)) static void dma_wait(const esl_cl_dma_t *cmd, uint32_t c0)
{
    run_t *r = &runs[hart_id()];
    const uint64_t t = worker_time(r, c0);
    if (cmd->done_at > t) r->wait += cmd->done_at - t;
    r->excluded += (uint32_t)(clock_lo() - c0);
}

void esl_cl_dma_wait(esl_cl_dma_t *cmd)
{
    while (!cmd->done) {
    }
    fence();
    dma_wait(cmd, clock_lo());
}

void *esl_cl_l1_scratch(uint32_t core)
{
    const uint32_t stacks = (uint32_t)(uintptr_t)_esl_worker_stack_bytes * ESL_CLUSTER_CORES;
    return _esl_l1_start + stacks + core * (uint32_t)(uintptr_t)_esl_l1_scratch_bytes;
}

void *esl_cl_l1_tiles(uint32_t core)
{
    return (uint8_t *)esl_cl_l1_scratch(core) + (uint32_t)(uintptr_t)_esl_l1_tiles_at;
}

/* Slot 0 is the last _esl_l1_slot0_bytes of the worker's scratch, slot 1 the bytes before it; a
 * first tile sits at the end of its slot. */
void *esl_cl_l1_first_tile(uint32_t core, uint32_t slot, uint32_t bytes)
{
    const uint32_t end = (uint32_t)(uintptr_t)_esl_l1_scratch_bytes - slot * (uint32_t)(uintptr_t)_esl_l1_slot0_bytes;
    return (uint8_t *)esl_cl_l1_scratch(core) + end - bytes;
}

static void add_counts(counts_t *to, const counts_t *from)
{
    for (uint32_t k = 0; k < ESL_CLUSTER_CORES; k++) {
        to->ticks[k] += from->ticks[k];
        to->wait[k] += from->wait[k];
    }
    to->dma_bytes += from->dma_bytes;
    to->dma_wait += from->dma_wait;
    to->forks += from->forks;
    to->dma_cmds += from->dma_cmds;
}

void esl_cluster_counts_start(void)
{
    add_counts(&gen, &now);
    memset(&now, 0, sizeof now);
    left_before += overlap;
    overlap = 0;
}

uint64_t esl_cluster_overlap(void) { return overlap; }

uint64_t esl_cluster_core_ticks(uint32_t core) { return core < ESL_CLUSTER_CORES ? now.ticks[core] : 0; }

uint32_t esl_cluster_forks(void) { return now.forks; }

/* ---- per-core counts of a generation, to the emulator's log --------------------------------
 * The serial protocol has no field for them, so the FC writes one line per generation through
 * semihosting (SYS_WRITE0, which QEMU prints on its stderr: the emulator's log, which the host's
 * bench reads after DONE):
 *     esl-cluster: cores N forks F ticks T1,...,TN waits W1,...,WN dma B cmds C wait D
 * summed over the generation's forward passes: F forks; each worker's instructions (T, ticks in
 * the unit of esl_port_cycles) and modelled DMA waits (W, ticks); B bytes in C DMA commands; D the
 * modelled DMA wait on each fork's busiest path (ticks: what the DMA adds to the step times).
 * The arch's generation hooks frame it: esl_stack_paint runs as a generation starts (serve.c) and
 * zeroes the sums, esl_stack_peak_bytes as it ends and prints. */
void esl_semihost_write0(const char *s);

static char *put_str(char *p, const char *s)
{
    while (*s) *p++ = *s++;
    return p;
}

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

static char *put_list(char *p, const uint64_t *v, uint32_t n)
{
    for (uint32_t k = 0; k < n; k++) {
        if (k) *p++ = ',';
        p = put_dec(p, v[k]);
    }
    return p;
}

void esl_cluster_generation_start(void)
{
    esl_cluster_counts_start();
    memset(&gen, 0, sizeof gen);
}

void esl_cluster_generation_report(void)
{
    static char line[96 + 42 * ESL_CLUSTER_CORES + 3 * 21];
    counts_t c = gen;
    add_counts(&c, &now);
    char *p = put_str(line, "esl-cluster: cores ");
    p = put_dec(p, cores);
    p = put_str(p, " forks ");
    p = put_dec(p, c.forks);
    p = put_str(p, " ticks ");
    p = put_list(p, c.ticks, cores);
    p = put_str(p, " waits ");
    p = put_list(p, c.wait, cores);
    p = put_str(p, " dma ");
    p = put_dec(p, c.dma_bytes);
    p = put_str(p, " cmds ");
    p = put_dec(p, c.dma_cmds);
    p = put_str(p, " wait ");
    p = put_dec(p, c.dma_wait);
    *p++ = '\n';
    *p = 0;
    esl_semihost_write0(line);
}
