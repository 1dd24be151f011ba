/* The counter behind esl_port_cycles under PMSIS: PI_PERF_CYCLES, the core's time in cycles (asleep
 * or not: real time, every overhead of the cluster in), which pi_perf_reset leaves running (it is
 * shared within a cluster), so a count is a difference from a start read. The fabric controller
 * and the cluster controller each read their own: esl_port_cycles_start takes the FC's start
 * (serve.c, each token: the token's time, its dispatch to the cluster included), and the cluster
 * task's entry swaps in the controller's for the step loop's per-step profile (forward.c) and back
 * when it ends. The FC waits in pi_cluster_send_task_to_cl meanwhile, so the two never read at
 * once. A count is under 2^32 cycles, 11 s at 370 MHz. Per-core instruction counts are the QEMU
 * stand-in's (bench); here only the time is reported. Not verified on hardware or GVSoC: the
 * event's number is the SDK's (GAP8's in the public pmsis_api; GAP9's perf header is not public). */
#include "pmsis.h"
#include "esl_port.h"

static uint32_t start;          /* the reading core's counter at the start of the count */

static uint32_t now(void) { return (uint32_t)pi_perf_read(PI_PERF_CYCLES); }

/* Start this core's counter (each core configures its own). */
static void enable(void)
{
    pi_perf_conf(1u << PI_PERF_CYCLES);
    pi_perf_start();
}

void esl_cycles_init(void)
{
    enable();
    start = now();
}

void esl_port_cycles_start(void) { start = now(); }

uint64_t esl_port_cycles(void) { return (uint32_t)(now() - start); }

/* On the cluster controller as a cluster task starts: its own counter for the step loop; returns
 * the FC's start, which esl_cycles_leave_cluster puts back as the task ends. */
uint32_t esl_cycles_enter_cluster(void)
{
    const uint32_t fc_start = start;
    enable();
    start = now();
    return fc_start;
}

void esl_cycles_leave_cluster(uint32_t fc_start) { start = fc_start; }

/* 0: core cycles (see esl_port.h). */
uint8_t esl_port_cycle_unit(void) { return 0; }
