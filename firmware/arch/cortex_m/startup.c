/* Cortex-M startup (v6-M, v7-M, v7E-M, v8-M): vector table, the FPU on where the core has one
 * and the build uses it, .data copied, .bss zeroed, then main. A fault or a return from main ends
 * an emulated run through semihosting, so the host sees the exit instead of a hang (on a board
 * without a debugger attached, BKPT faults and the core halts). */
#include <stdint.h>
#include <string.h>

extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss;
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

static void Fault_Handler(void)
{
    semihost_exit(0x20023u);
}

__attribute__((section(".isr_vector"), used))
static void (*const vectors[16])(void) = {
    (void (*)(void))&_estack, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler,
    SysTick_Handler,
};

void Reset_Handler(void)
{
#if defined(__ARM_FP)                    /* hard-float build: the core has an FPU (v7E-M/v8-M) */
    CPACR |= 0xFu << 20;                 /* CP10/CP11 full access, before any float code */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    memcpy(&_sdata, &_sidata, (uint32_t)((uint8_t *)&_edata - (uint8_t *)&_sdata));
    memset(&_sbss, 0, (uint32_t)((uint8_t *)&_ebss - (uint8_t *)&_sbss));
    main();
    semihost_exit(0x20026u);
}
