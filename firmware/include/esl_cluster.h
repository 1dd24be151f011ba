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
 * instruction counts. esl_port_cycles then reports the time of the busiest core (the clock less
 * what the other workers ran during each fork), and esl_cluster_core_ticks each worker's own. */
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
 * `align` items, every boundary a multiple of `align` (1, or 4 for kernels that take 4 rows a pass). */
void esl_cl_split(uint32_t n, uint32_t align, uint32_t core, uint32_t cores, uint32_t *begin, uint32_t *end);

/* DMA L2 <-> L1 (pi_cl_dma_cmd / pi_cl_dma_wait): on QEMU a memcpy and a completion flag. */
typedef struct {
    volatile uint32_t done;
} esl_cl_dma_t;
void esl_cl_dma_memcpy(void *dst, const void *src, uint32_t bytes, esl_cl_dma_t *cmd);
void esl_cl_dma_wait(esl_cl_dma_t *cmd);
/* Worker `core`'s scratch in L1 (the board's cluster.l1_region, after the worker stacks): the
 * planner's scratch size (the largest kernel rule), one per worker, fixed at build time (where a
 * PMSIS build would pi_cl_l1_malloc it once); the linker script fails an image whose stacks and
 * scratches do not fit L1. */
void *esl_cl_l1_scratch(uint32_t core);

/* Counting: restart the per-core counts (with esl_port_cycles_start); the clock ticks that the
 * non-busiest workers ran during forks since then; one worker's ticks since then. */
void esl_cluster_counts_start(void);
uint64_t esl_cluster_overlap(void);
uint64_t esl_cluster_core_ticks(uint32_t core);
/* Forks since esl_cluster_counts_start. */
uint32_t esl_cluster_forks(void);

#endif
