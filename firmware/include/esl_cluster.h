/* A cluster of worker cores behind one small interface, named after GreenWaves' PMSIS cluster
 * API (pi_cl_team_fork, pi_core_id, pi_cl_team_barrier, pi_cl_dma_cmd / pi_cl_dma_wait,
 * pi_cl_l1_malloc, here a fixed per-worker L1 scratch). Implemented by a multi-core target's arch (firmware/arch/riscv_pulp/:
 * cluster_qemu.c on QEMU's harts; a PMSIS back end on GAP9 silicon would map each call to its
 * PMSIS namesake). Compiled only where the build defines ESL_CLUSTER_CORES (the board's
 * cluster.cores): the runtime and every other target never see it.
 *
 * The fabric controller (hart 0, which runs the runtime) forks a function over the workers; the
 * fork returns once every worker has returned, so a fork is one parallel phase and its return
 * the barrier. Kernels split work by output rows (or heads, or element ranges), never a sum.
 *
 * Counting (the QEMU back end): the virtual clock is shared by all harts, so the fork runs the
 * workers one after another and each reads the clock around its own work: exact per-core
 * instruction counts. A worker's count leaves out the bytes its DMA commands copy (on QEMU the
 * worker copies them itself; on GAP9 the cluster DMA does, while the core runs on). esl_port_cycles
 * reports the busiest core's instructions: the fabric controller's own outside forks plus, per
 * fork, the busiest worker's (the emulation's waking of the workers one by one is left out), and
 * esl_cluster_core_ticks each worker's own. What a fork costs beyond that (dispatch, barrier, the
 * DMA waits a worker could not hide) is modelled, not counted: the DMA waits by the QEMU back end
 * (each command's completion from the board's DMA figures, see esl_cl_dma_memcpy), the dispatch
 * and barrier by the host (bench), both reported beside the counts. */
#ifndef ESL_CLUSTER_H
#define ESL_CLUSTER_H

#include <stdint.h>

typedef void (*esl_cl_fn_t)(void *arg);

/* Workers a fork uses (1..ESL_CLUSTER_CORES; esl_cl_set_cores changes it at run time). */
uint32_t esl_cl_cores(void);
void esl_cl_set_cores(uint32_t n);
/* On a worker: its index in the team, 0 .. esl_cl_cores() - 1 (pi_core_id). */
uint32_t esl_cl_core_id(void);
/* Run fn(arg) on each of the esl_cl_cores() workers; returns when all have (pi_cl_team_fork). */
void esl_cl_team_fork(esl_cl_fn_t fn, void *arg);
/* [begin, end) of n items for worker `core` of `cores`: contiguous, sizes differing by at most
 * `align` items, every boundary a multiple of `align` (1, or 4 for kernels that take 4 rows a pass).
 * With align 1, worker `core` has items exactly when core < n. Inline: every job calls it. */
static inline void esl_cl_split(uint32_t n, uint32_t align, uint32_t core, uint32_t cores, uint32_t *begin,
                                uint32_t *end)
{
    const uint32_t blocks = (n + align - 1u) / align;
    const uint32_t per = blocks / cores, extra = blocks % cores;
    uint32_t b = core * per + (core < extra ? core : extra);
    uint32_t e = b + per + (core < extra ? 1u : 0u);
    b *= align;
    e *= align;
    *begin = b < n ? b : n;
    *end = e < n ? e : n;
}

/* DMA L2 <-> L1 by a worker (pi_cl_dma_cmd / pi_cl_dma_wait): start a copy, later wait for it,
 * in the same fork or a later one (a prefetch); until the wait returns, dst may not be read and
 * src may not be changed. On QEMU: a memcpy and a completion flag, plus the modelled completion
 * (setup, then the bytes at the cluster DMA's bandwidth shared by the fork's workers, after the
 * worker's previous command), so a wait costs the worker the time a real DMA would still need. */
typedef struct {
    volatile uint32_t done;
    uint64_t done_at;          /* QEMU back end: modelled completion, cluster time in clock ticks */
} esl_cl_dma_t;
void esl_cl_dma_memcpy(void *dst, const void *src, uint32_t bytes, esl_cl_dma_t *cmd);
void esl_cl_dma_wait(esl_cl_dma_t *cmd);
/* Worker `core`'s scratch in L1 (the board's cluster.l1_region, after the worker stacks), one per
 * worker, fixed at build time (where a PMSIS build would pi_cl_l1_malloc it once), in two parts
 * sized by the planner: first what a step uses while it runs (attention's scores), then the DMA
 * tiles (esl_cl_l1_tiles), which no other kernel touches, so a tile that one matmul prefetches for
 * the next survives the steps between. The tiles part ends in two slots, 0 at the very end and 1
 * before it, each holding the first tile of every other matmul (esl_cl_l1_first_tile: where a
 * first tile of `bytes` goes in slot `slot`, at the slot's end); the planner keeps the running
 * matmul's own buffers (from esl_cl_l1_tiles on) clear of both. The linker script fails an image
 * whose stacks and scratches do not fit L1. */
void *esl_cl_l1_scratch(uint32_t core);
void *esl_cl_l1_tiles(uint32_t core);
void *esl_cl_l1_first_tile(uint32_t core, uint32_t slot, uint32_t bytes);

/* A cluster matmul step's n, as the planner writes it (edgeslm.lower.plan_cluster): bits 0-15 the
 * weight rows per DMA tile (0: no tiling, the workers read W in L2); bit 16 ESL_MATMUL_X_READY
 * (esl_types.h: the input is already prepared in the shared scratch); ESL_CL_SLOT: the L1 slot of
 * its first tile; bits 18-31: 1 + the index in the step table of the
 * matmul whose first tile this one prefetches, into the other slot (0: none). */
#define ESL_CL_TILE_ROWS(n) ((n) & 0xFFFFu)
#define ESL_CL_SLOT(n) (((n) >> 17) & 1u)
#define ESL_CL_NEXT_STEP(n) ((n) >> 18)

/* Counting: restart the per-core counts (with esl_port_cycles_start); the clock ticks of forks
 * since then that were not the busiest worker's own instructions (the other workers, the
 * emulation's dispatch, DMA copies: esl_port_cycles subtracts them); one worker's ticks since then. */
void esl_cluster_counts_start(void);
uint64_t esl_cluster_overlap(void);
uint64_t esl_cluster_core_ticks(uint32_t core);
/* Forks since esl_cluster_counts_start. */
uint32_t esl_cluster_forks(void);

#endif
