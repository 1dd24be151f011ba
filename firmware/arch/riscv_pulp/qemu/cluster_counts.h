/* The QEMU back end's counting, between cluster_qemu.c (which keeps it) and cycles.c (which
 * reports it through esl_port_cycles): see esl_cluster.h's "Counting". */
#ifndef ESL_CLUSTER_COUNTS_H
#define ESL_CLUSTER_COUNTS_H

#include <stdint.h>

/* Restart the per-core counts (with esl_port_cycles_start). */
void esl_cluster_counts_start(void);
/* The clock ticks of forks since then that were not the busiest worker's own instructions (the
 * other workers, the emulation's dispatch, DMA copies): esl_port_cycles subtracts them. */
uint64_t esl_cluster_overlap(void);
/* One worker's ticks since then. */
uint64_t esl_cluster_core_ticks(uint32_t core);
/* Forks since then. */
uint32_t esl_cluster_forks(void);

#endif
