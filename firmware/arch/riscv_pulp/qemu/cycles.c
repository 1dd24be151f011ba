/* The RISC-V cycle counter behind esl_port_cycles: mcycle (64 bits, read as mcycleh/mcycle
 * until mcycleh is stable). Under QEMU -icount (QEMU 7.2 target/riscv/csr.c) mcycle reads the
 * virtual time in ns, which advances 2^shift per instruction: the host converts with the board's
 * emulator.systick_hz (1e9) and icount_shift, so counts repeat run to run (unit 1). That clock is
 * shared by every hart: the cluster layer (cluster_qemu.c) turns it into the busiest core's count
 * (esl_port_cycles subtracts, per fork, every tick that was not the busiest worker's own
 * instructions: the other workers, the emulation's one-by-one waking, the DMA copies). */
#include "esl_port.h"
#include "cluster_counts.h"

static uint64_t start;

uint64_t esl_mcycle(void)
{
    uint32_t hi, lo, hi2;
    do {
        __asm__ volatile("csrr %0, mcycleh" : "=r"(hi));
        __asm__ volatile("csrr %0, mcycle" : "=r"(lo));
        __asm__ volatile("csrr %0, mcycleh" : "=r"(hi2));
    } while (hi != hi2);
    return ((uint64_t)hi << 32) | lo;
}

void esl_cycles_init(void)
{
    start = esl_mcycle();
}

void esl_port_cycles_start(void)
{
    start = esl_mcycle();
    esl_cluster_counts_start();
}

uint64_t esl_port_cycles(void)
{
    return esl_mcycle() - start - esl_cluster_overlap();
}

/* 1: ticks under instruction counting (see esl_port.h). */
uint8_t esl_port_cycle_unit(void) { return 1; }
