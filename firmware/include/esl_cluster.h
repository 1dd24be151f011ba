/* A cluster of worker cores behind one small interface, named after GreenWaves' PMSIS cluster
 * API (pi_cl_team_fork, pi_core_id, pi_cl_team_barrier, pi_cl_dma_cmd / pi_cl_dma_wait,
 * pi_cl_l1_malloc, here a fixed per-worker L1 scratch). Implemented by a multi-core target's arch,
 * one back end per folder (firmware/arch/riscv_pulp/<backend>/, the board's cluster.backend):
 * qemu/ on QEMU's harts (the GAP9 stand-in), pmsis/ on GAP9 silicon or GVSoC (each call its PMSIS
 * namesake; built with the GAP SDK, not here). Compiled only where the build defines
 * ESL_CLUSTER_CORES (the board's cluster.cores): the runtime and every other target never see it.
 *
 * The step loop runs where forks are issued from (esl_cluster_run): the fabric controller itself on
 * QEMU (hart 0, which runs the runtime), the cluster controller under PMSIS (one cluster task per
 * forward pass). A fork returns once every worker has returned, so a fork is one parallel phase
 * and its return the barrier. Kernels split work by output rows (or heads, or element ranges),
 * never a sum.
 *
 * Counting (the QEMU back end): the virtual clock is shared by all harts, so the fork runs the
 * workers one after another and each reads the clock around its own work: exact per-core
 * instruction counts. A worker's count leaves out the bytes its DMA commands copy (on QEMU the
 * worker copies them itself; on GAP9 the cluster DMA does, while the core runs on). esl_port_cycles
 * reports the busiest core's instructions: the fabric controller's own outside forks plus, per
 * fork, the busiest worker's (the emulation's waking of the workers one by one is left out), and
 * the back end's per-core counts each worker's own. What a fork costs beyond that (dispatch,
 * barrier, the DMA waits a worker could not hide) is modelled, not counted: the DMA waits by the
 * QEMU back end (each command's completion from the board's DMA figures, see esl_cl_dma_memcpy),
 * the dispatch and barrier by the host (bench), both reported beside the counts. Under PMSIS the
 * counter is the real one: cycles, every overhead in. */
#ifndef ESL_CLUSTER_H
#define ESL_CLUSTER_H

#include <stdint.h>

typedef void (*esl_cl_fn_t)(void *arg);

/* Workers a fork uses (1..ESL_CLUSTER_CORES; esl_cl_set_cores changes it at run time). */
uint32_t esl_cl_cores(void);
void esl_cl_set_cores(uint32_t n);
/* On a worker: its index in the team, 0 .. esl_cl_cores() - 1 (pi_core_id). */
uint32_t esl_cl_core_id(void);
/* Run fn(arg) on each of the esl_cl_cores() workers; returns when all have (pi_cl_team_fork). Only
 * from inside esl_cluster_run. */
void esl_cl_team_fork(esl_cl_fn_t fn, void *arg);
/* Run fn(arg) where forks can be issued from, and return when it has: on QEMU a call on the fabric
 * controller; under PMSIS a cluster task (pi_cluster_send_task_to_cl) whose entry, on the cluster
 * controller, calls fn. esl_forward runs its step loop through it: one dispatch a token. */
void esl_cluster_run(esl_cl_fn_t fn, void *arg);
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
 * worker's previous command), so a wait costs the worker the time a real DMA would still need.
 * Under PMSIS one pi_cl_dma_cmd from L2 to L1 (every caller copies that way; a command is at most a
 * worker's L1 share, 16 KB on GAP9, within the DMA's 64 KB per command). */
#if defined(ESL_CLUSTER_PMSIS)
#include "pmsis.h"
typedef struct {
    pi_cl_dma_cmd_t cmd;
} esl_cl_dma_t;
#else
typedef struct {
    volatile uint32_t done;
    uint64_t done_at;          /* QEMU back end: modelled completion, cluster time in clock ticks */
} esl_cl_dma_t;
#endif
void esl_cl_dma_memcpy(void *dst, const void *src, uint32_t bytes, esl_cl_dma_t *cmd);
void esl_cl_dma_wait(esl_cl_dma_t *cmd);
/* Worker `core`'s scratch in L1 (the board's cluster.l1_region), one per worker, sized at build
 * time (on QEMU after the worker stacks, placed by the linker script; under PMSIS one static array
 * in L1, PI_CL_L1), in two parts
 * sized by the planner: first what a step uses while it runs (attention's scores), then the DMA
 * tiles (esl_cl_l1_tiles), which no other kernel touches, so a tile that one matmul prefetches for
 * the next survives the steps between. The tiles part ends in two slots, 0 at the very end and 1
 * before it, each holding the first tile of every other matmul (esl_cl_l1_first_tile: where a
 * first tile of `bytes` goes in slot `slot`, at the slot's end); the planner keeps the running
 * matmul's own buffers (from esl_cl_l1_tiles on) clear of both. The planner fails a plan whose
 * stacks and scratches do not fit L1 (and on QEMU the linker script an image). */
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

#endif
