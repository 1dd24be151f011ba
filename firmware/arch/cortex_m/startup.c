/* Cortex-M startup (v6-M, v7-M, v7E-M, v8-M): vector table, the FPU on where the core has one
 * and the build uses it, .data copied, .bss zeroed, the stack painted, then main. A fault is first reported to the
 * host as ERROR FAULT (stacked PC and LR, CFSR, HFSR, exception number; esl_report_fault, where
 * the runtime is linked in). A fault or a return from main then ends an emulated run through
 * semihosting, so the host sees the exit instead of a hang (on a board without a debugger
 * attached, BKPT faults and the core halts until it is reset). */
#include <stdint.h>
#include <string.h>
#include "esl_port.h"
#include "esl_runtime.h"

extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss;
/* The stack's size (the linker script's _stack_bytes, an absolute symbol). Weak: a linker script
 * without it (the tests' own board firmware) gets no stack painting, and a peak of 0. */
extern uint32_t _stack_bytes __attribute__((weak));
extern int main(void);
void Reset_Handler(void);
void SysTick_Handler(void);

#define CPACR (*(volatile uint32_t *)0xE000ED88u)

/* SYS_EXIT with ADP_Stopped_ApplicationExit (0x20026), or RunTimeErrorUnknown (0x20023). */
static void semihost_exit(uint32_t reason)
{
    register uint32_t r0 __asm__("r0") = 0x18;
    register uint32_t r1 __asm__("r1") = reason;
    __asm__ volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
    for (;;) {
    }
}

#if __ARM_ARCH_7M__ || __ARM_ARCH_7EM__ || __ARM_ARCH_8M_MAIN__ || __ARM_ARCH_8_1M_MAIN__
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)   /* MMFSR | BFSR << 8 | UFSR << 16 */
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)
#define HAVE_FAULT_STATUS 1
#else
#define HAVE_FAULT_STATUS 0                                /* v6-M / v8-M baseline: none */
#endif

/* Weak: builds without the runtime (the kernel checks) only exit. */
extern void esl_report_fault(const esl_fault_t *f) __attribute__((weak));

/* frame: the exception frame the core stacked (r0-r3, r12, lr, pc, xpsr). */
__attribute__((used)) void esl_fault_entry(const uint32_t *frame)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    esl_fault_t f = { frame[6], frame[5], 0, 0, (uint8_t)(ipsr > 0xFFu ? 0xFFu : ipsr) };
#if HAVE_FAULT_STATUS
    f.cfsr = SCB_CFSR;
    f.hfsr = SCB_HFSR;
#endif
    if (esl_report_fault) {
        esl_report_fault(&f);
        /* Read what the host still sends until it has been quiet a while: an emulator then exits
         * with nothing unread on its UART socket (closing it with unread bytes resets the
         * connection, and the host could lose the report). */
        for (uint32_t quiet = 0; quiet < 1000000u;) quiet = esl_port_getc() >= 0 ? 0u : quiet + 1u;
    }
    semihost_exit(0x20023u);
}

/* Every fault vector: find the stacked frame (MSP or PSP, by EXC_RETURN bit 2) and hand it to
 * esl_fault_entry. Thumb-1 instructions only, so it assembles for v6-M too. */
__attribute__((naked)) static void Fault_Handler(void)
{
    __asm__ volatile(
        "movs r0, #4\n\t"
        "mov r1, lr\n\t"
        "tst r0, r1\n\t"
        "beq 1f\n\t"
        "mrs r0, psp\n\t"
        "b 2f\n"
        "1:\n\t"
        "mrs r0, msp\n"
        "2:\n\t"
        "ldr r1, =esl_fault_entry\n\t"
        "bx r1\n\t"
        ".ltorg\n\t");
}

__attribute__((section(".isr_vector"), used))
static void (*const vectors[16])(void) = {
    (void (*)(void))&_estack, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler,
    SysTick_Handler,
};

/* ---- stack painting: the most stack a generation used ---------------------------------------
 * The stack is the top _stack_bytes of the RAM region, below _estack. esl_stack_paint fills the
 * part below the caller's stack pointer (less a margin for this function's own use of it, and
 * for an interrupt that stacks a frame meanwhile) with ESL_STACK_PAINT; esl_stack_peak_bytes
 * then finds the lowest word that no longer holds it and returns the bytes from there up to
 * _estack. A volatile word loop, not memset: memset would run on the stack it paints. */
#define ESL_STACK_PAINT 0xC5A5C5A5u
#define ESL_STACK_PAINT_MARGIN 64u

static uint32_t *stack_limit(void)
{
    if (&_stack_bytes == 0) return 0;
    return (uint32_t *)((uint8_t *)&_estack - (uint32_t)&_stack_bytes);
}

void esl_stack_paint(void)
{
    volatile uint32_t *w = stack_limit();
    uint32_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    if (w == 0) return;
    const uint32_t end = (sp - ESL_STACK_PAINT_MARGIN) & ~3u;
    for (; (uint32_t)w < end; w++) *w = ESL_STACK_PAINT;
}

uint32_t esl_stack_peak_bytes(void)
{
    const volatile uint32_t *w = stack_limit();
    if (w == 0) return 0;
    const uint32_t *top = &_estack;
    while (w < top && *w == ESL_STACK_PAINT) w++;
    return (uint32_t)((const uint8_t *)top - (const uint8_t *)w);
}

void Reset_Handler(void)
{
#if defined(__ARM_FP)                    /* hard-float build: the core has an FPU (v7E-M/v8-M) */
    CPACR |= 0xFu << 20;                 /* CP10/CP11 full access, before any float code */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    memcpy(&_sdata, &_sidata, (uint32_t)((uint8_t *)&_edata - (uint8_t *)&_sdata));
    memset(&_sbss, 0, (uint32_t)((uint8_t *)&_ebss - (uint8_t *)&_sbss));
    esl_stack_paint();
    main();
    semihost_exit(0x20026u);
}
