/* RISC-V startup for the PULP-cluster target (the QEMU stand-in of a GAP9: hart 0 is the fabric
 * controller, harts 1..N the cluster's workers). Every hart enters _start (QEMU virt with -bios
 * none starts all of them at the DRAM base): gp and tp set, the FPU on (mstatus.FS) where the
 * build uses it, the trap vector set, then a stack per hart: hart 0 the top _stack_bytes of the
 * RAM region (the linker script's _estack), hart k >= 1 the k-th _esl_worker_stack_bytes slice of
 * L1. Hart 0 then copies .data, zeroes .bss, paints its stack and runs main; the workers wait in
 * esl_cluster_worker (cluster_qemu.c) for hart 0 to wake them, which it does only after that.
 *
 * A trap (any exception: RISC-V has no separate fault vectors) is reported to the host as ERROR
 * FAULT (pc = mepc, lr = ra, cfsr = mcause, hfsr = mtval, exception = mcause's low byte;
 * esl_report_fault, where the runtime is linked in), then ends the emulated run through
 * semihosting, so the host sees the exit instead of a hang. */
#include <stdint.h>
#include <string.h>
#include "esl_port.h"
#include "esl_runtime.h"

extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss, _stack_bytes;
extern int main(void);
void esl_reset_hart0(void);
void esl_trap_c(uint32_t mepc, uint32_t ra, uint32_t mcause, uint32_t mtval);
/* cluster_qemu.c: a worker's loop (never returns). */
void esl_cluster_worker(uint32_t hart);

/* Reset: the first bytes of the image. t0/t1 only; the C that follows gets a stack. */
__asm__(
    "    .section .text.start, \"ax\"\n"
    "    .globl _start\n"
    "_start:\n"
    "    .option push\n"
    "    .option norelax\n"
    "    la gp, __global_pointer$\n"
    "    .option pop\n"
    "    la tp, __tls_base\n"
#if defined(__riscv_flen)
    "    li t0, 0x2000\n"                /* mstatus.FS = Initial: FPU instructions allowed */
    "    csrs mstatus, t0\n"
    "    csrwi fcsr, 0\n"
#endif
    "    la t0, esl_trap_entry\n"
    "    csrw mtvec, t0\n"
    "    csrr a0, mhartid\n"
    "    bnez a0, 1f\n"
    "    la sp, _estack\n"
    "    j esl_reset_hart0\n"
    "1:  lui t0, %hi(_esl_cluster_cores)\n"        /* absolute symbols: not pc-relative */
    "    addi t0, t0, %lo(_esl_cluster_cores)\n"
    "    bgtu a0, t0, 2f\n"                         /* a hart the build does not use: park */
    "    lui t0, %hi(_esl_worker_stack_bytes)\n"
    "    addi t0, t0, %lo(_esl_worker_stack_bytes)\n"
    "    mul t0, t0, a0\n"
    "    la sp, _esl_l1_start\n"
    "    add sp, sp, t0\n"
    "    j esl_cluster_worker\n"
    "2:  wfi\n"
    "    j 2b\n"
    "\n"
    "    .text\n"
    "    .balign 4\n"
    "    .globl esl_trap_entry\n"
    "esl_trap_entry:\n"
    "    mv a1, ra\n"
    "    csrr a0, mepc\n"
    "    csrr a2, mcause\n"
    "    csrr a3, mtval\n"
    "    andi sp, sp, -16\n"
    "    j esl_trap_c\n");

/* One semihosting call, operation in a0 and its argument in a1, returning a0: `ebreak` between the
 * two marker shifts, uncompressed and in one page (RISC-V semihosting spec; QEMU 7.2 target/riscv). */
static uint32_t semihost_call(uint32_t op, uint32_t arg)
{
    register uint32_t a0 __asm__("a0") = op;
    register uint32_t a1 __asm__("a1") = arg;
    __asm__ volatile(
        ".option push\n\t"
        ".option norvc\n\t"
        ".balign 16\n\t"
        "slli x0, x0, 0x1f\n\t"
        "ebreak\n\t"
        "srai x0, x0, 7\n\t"
        ".option pop"
        : "+r"(a0) : "r"(a1) : "memory");
    return a0;
}

/* SYS_EXIT with ADP_Stopped_ApplicationExit (0x20026) or RunTimeErrorUnknown (0x20023); on RV32 it
 * takes the reason in a1. */
static void semihost_exit(uint32_t reason)
{
    (void)semihost_call(0x18u, reason);
    for (;;) {
        __asm__ volatile("wfi");
    }
}

/* SYS_WRITE0: a NUL-terminated line to the emulator's log (QEMU prints it on stderr). */
void esl_semihost_write0(const char *s)
{
    (void)semihost_call(0x04u, (uint32_t)(uintptr_t)s);
}

/* Weak: builds without the runtime (kernel checks) only exit. */
extern void esl_report_fault(const esl_fault_t *f) __attribute__((weak));

__attribute__((used, noreturn)) void esl_trap_c(uint32_t mepc, uint32_t ra, uint32_t mcause, uint32_t mtval)
{
    esl_fault_t f = { mepc, ra, mcause, mtval, (uint8_t)(mcause & 0xFFu) };
    if (esl_report_fault) {
        esl_report_fault(&f);
        /* Read what the host still sends until it has been quiet a while (see arch/cortex_m). */
        for (uint32_t quiet = 0; quiet < 1000000u;) quiet = esl_port_getc() >= 0 ? 0u : quiet + 1u;
    }
    semihost_exit(0x20023u);
    for (;;) {
    }
}

/* ---- stack painting: the most stack a generation used (hart 0's stack; as arch/cortex_m) ----
 * serve.c paints as a generation starts and reads the peak as it ends: the cluster's per-core
 * counts of the generation (cluster_qemu.c) are framed by the same two calls. */
void esl_cluster_generation_start(void);
void esl_cluster_generation_report(void);

#define ESL_STACK_PAINT 0xC5A5C5A5u
#define ESL_STACK_PAINT_MARGIN 64u

static uint32_t *stack_limit(void)
{
    return (uint32_t *)((uint8_t *)&_estack - (uint32_t)&_stack_bytes);
}

void esl_stack_paint(void)
{
    volatile uint32_t *w = stack_limit();
    uint32_t sp;
    __asm__ volatile("mv %0, sp" : "=r"(sp));
    const uint32_t end = (sp - ESL_STACK_PAINT_MARGIN) & ~3u;
    for (; (uint32_t)w < end; w++) *w = ESL_STACK_PAINT;
    esl_cluster_generation_start();
}

uint32_t esl_stack_peak_bytes(void)
{
    const volatile uint32_t *w = stack_limit();
    const uint32_t *top = &_estack;
    while (w < top && *w == ESL_STACK_PAINT) w++;
    esl_cluster_generation_report();
    return (uint32_t)((const uint8_t *)top - (const uint8_t *)w);
}

__attribute__((used, noreturn)) void esl_reset_hart0(void)
{
    if (&_sdata != &_sidata) {
        memcpy(&_sdata, &_sidata, (uint32_t)((uint8_t *)&_edata - (uint8_t *)&_sdata));
    }
    memset(&_sbss, 0, (uint32_t)((uint8_t *)&_ebss - (uint8_t *)&_sbss));
    esl_stack_paint();
    main();
    semihost_exit(0x20026u);
    for (;;) {
    }
}
