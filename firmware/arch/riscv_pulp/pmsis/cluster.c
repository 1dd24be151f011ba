/* esl_cluster.h on GreenWaves' PMSIS (GAP9 silicon or GVSoC; built with the GAP SDK, never here:
 * see edgeslm.lower.gap_sdk). Each call is its PMSIS namesake:
 *
 *   esl_cluster_run      pi_cluster_send_task_to_cl: one cluster task per forward pass, whose entry
 *                        runs the step loop on the cluster controller (forks are issued from there)
 *   esl_cl_team_fork     pi_cl_team_fork over the first esl_cl_cores() workers
 *   esl_cl_core_id       pi_core_id
 *   esl_cl_dma_memcpy    pi_cl_dma_cmd, L2 to L1; esl_cl_dma_wait pi_cl_dma_cmd_wait
 *   esl_cl_l1_scratch    every worker's scratch in one static array in L1 (PI_CL_L1: the SDK's
 *                        linker script places it, and fails an image it does not fit)
 *
 * The cluster is opened (powered) on the first forward pass and stays open, so L1 keeps what a
 * matmul prefetched for the next token. Sizes come from the planner as defines
 * (edgeslm.lower.codegen._pmsis_defines): each worker's scratch and where its DMA tiles and
 * first-tile slot 0 start, the stacks of the cluster task (the controller's, which runs the step
 * loop, and each worker's).
 *
 * Not verified on hardware or GVSoC (neither is available here): whether GAP9's cluster controller
 * (core 8) takes part in pi_cl_team_fork is not in the public API, so the forked entry runs the
 * team's function only on cores below esl_cl_cores() and a ninth participant does nothing. */
#include <stdint.h>
#include "pmsis.h"
#include "esl_cluster.h"

#if !defined(ESL_CL_SCRATCH_BYTES) || !defined(ESL_CL_TILES_AT) || !defined(ESL_CL_SLOT0_BYTES) || \
    !defined(ESL_CL_WORKER_STACK_BYTES) || !defined(ESL_CL_CONTROLLER_STACK_BYTES)
#error "the PMSIS cluster back end needs the planner's L1 layout (edgeslm.lower.codegen._pmsis_defines)"
#endif
#if ESL_CL_SCRATCH_BYTES % 8 != 0
#error "each worker's L1 scratch must be a multiple of 8 bytes (its tiles are 8-byte aligned)"
#endif

/* cycles.c: the controller's counter for the step loop, then the FC's back */
uint32_t esl_cycles_enter_cluster(void);
void esl_cycles_leave_cluster(uint32_t fc_start);

static struct pi_device cluster;
static struct pi_cluster_conf cluster_conf;
static struct pi_cluster_task task;
static PI_CL_L1 uint8_t l1[ESL_CLUSTER_CORES * ESL_CL_SCRATCH_BYTES] __attribute__((aligned(8)));
static uint8_t opened;
static uint32_t cores = ESL_CLUSTER_CORES;

static esl_cl_fn_t run_fn, team_fn;
static void *run_arg, *team_arg;

/* Power the cluster up; a failure is unrecoverable (no cluster, no forward pass): the program
 * ends with the error. */
static void open_cluster(void)
{
    pi_cluster_conf_init(&cluster_conf);
    cluster_conf.id = 0;
    pi_open_from_conf(&cluster, &cluster_conf);
    if (pi_cluster_open(&cluster) != 0) pmsis_exit(-1);
    opened = 1u;
}

/* The cluster task's entry, on the cluster controller. */
static void controller_entry(void *unused)
{
    (void)unused;
    const uint32_t fc_start = esl_cycles_enter_cluster();
    run_fn(run_arg);
    esl_cycles_leave_cluster(fc_start);
}

void esl_cluster_run(esl_cl_fn_t fn, void *arg)
{
    if (!opened) open_cluster();
    run_fn = fn;
    run_arg = arg;
    pi_cluster_task(&task, controller_entry, 0);
    task.stack_size = ESL_CL_CONTROLLER_STACK_BYTES;
    task.slave_stack_size = ESL_CL_WORKER_STACK_BYTES;
    pi_cluster_send_task_to_cl(&cluster, &task);
}

uint32_t esl_cl_cores(void) { return cores; }

void esl_cl_set_cores(uint32_t n)
{
    cores = n < 1u ? 1u : n > ESL_CLUSTER_CORES ? ESL_CLUSTER_CORES : n;
}

uint32_t esl_cl_core_id(void) { return (uint32_t)pi_core_id(); }

static void team_entry(void *unused)
{
    (void)unused;
    if ((uint32_t)pi_core_id() < cores) team_fn(team_arg);
}

void esl_cl_team_fork(esl_cl_fn_t fn, void *arg)
{
    team_fn = fn;
    team_arg = arg;
    pi_cl_team_fork((int)cores, team_entry, 0);
}

void esl_cl_dma_memcpy(void *dst, const void *src, uint32_t bytes, esl_cl_dma_t *cmd)
{
    pi_cl_dma_cmd((uint32_t)(uintptr_t)src, (uint32_t)(uintptr_t)dst, bytes, PI_CL_DMA_DIR_EXT2LOC, &cmd->cmd);
}

void esl_cl_dma_wait(esl_cl_dma_t *cmd) { pi_cl_dma_cmd_wait(&cmd->cmd); }

void *esl_cl_l1_scratch(uint32_t core) { return l1 + core * (uint32_t)ESL_CL_SCRATCH_BYTES; }

void *esl_cl_l1_tiles(uint32_t core) { return (uint8_t *)esl_cl_l1_scratch(core) + ESL_CL_TILES_AT; }

/* Slot 0 is the last ESL_CL_SLOT0_BYTES of the worker's scratch, slot 1 the bytes before it; a first
 * tile sits at the end of its slot (as the QEMU back end). */
void *esl_cl_l1_first_tile(uint32_t core, uint32_t slot, uint32_t bytes)
{
    const uint32_t end = (uint32_t)ESL_CL_SCRATCH_BYTES - slot * (uint32_t)ESL_CL_SLOT0_BYTES;
    return (uint8_t *)esl_cl_l1_scratch(core) + end - bytes;
}
