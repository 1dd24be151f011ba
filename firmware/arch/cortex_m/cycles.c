/* The Cortex-M cycle counter behind esl_port_cycles: DWT CYCCNT where it counts (v7-M and v8-M
 * mainline silicon), else SysTick. QEMU's DWT CYCCNT reads as zero, and its SysTick under
 * -icount advances exactly with executed instructions, so emulated counts repeat run to run.
 * ARMv6-M has no DWT cycle counter: SysTick only. SysTick is optional on v6-M: a port whose core
 * lacks it (the nRF51's M0) defines these four functions itself, overriding the weak ones here. */
#include "esl_port.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_RELOAD 0x00FFFFFFu

/* Mainline (Thumb-2) M profile: v7-M, v7E-M, v8-M and v8.1-M Mainline have the DWT cycle counter. */
#if defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M' && __ARM_ARCH_ISA_THUMB == 2
#define HAVE_DWT 1
#define DEMCR      (*(volatile uint32_t *)0xE000EDFCu)   /* bit 24 TRCENA */
#define DWT_CTRL   (*(volatile uint32_t *)0xE0001000u)   /* bit 0 CYCCNTENA */
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#else
#define HAVE_DWT 0
#endif

static volatile uint32_t systick_wraps;
static uint8_t use_dwt;
#if HAVE_DWT
static uint32_t dwt_start;
#endif

void SysTick_Handler(void)
{
    systick_wraps++;
}

__attribute__((weak)) void esl_cycles_init(void)
{
#if HAVE_DWT
    DEMCR |= 1u << 24;
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u;
    for (volatile uint32_t i = 0; i < 64u; i++) {
    }
    use_dwt = DWT_CYCCNT != 0;         /* it counts on silicon; it stays at zero in QEMU */
#endif
}

__attribute__((weak)) void esl_port_cycles_start(void)
{
#if HAVE_DWT
    if (use_dwt) {
        dwt_start = DWT_CYCCNT;
        return;
    }
#endif
    SYST_CSR = 0;
    systick_wraps = 0;
    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0;                      /* any write clears the counter and COUNTFLAG */
    SYST_CSR = 0x7u;                   /* processor clock, interrupt on wrap, enable */
}

__attribute__((weak)) uint64_t esl_port_cycles(void)
{
#if HAVE_DWT
    if (use_dwt) return (uint32_t)(DWT_CYCCNT - dwt_start);   /* wraps after 2^32 cycles */
#endif
    uint32_t wraps, now;
    do {                               /* a wrap between the two reads would tear the count */
        wraps = systick_wraps;
        now = SYST_CVR;
    } while (wraps != systick_wraps);
    return (uint64_t)wraps * (SYST_RELOAD + 1u) + (SYST_RELOAD - now);
}

__attribute__((weak)) uint8_t esl_port_cycle_unit(void) { return use_dwt ? 0 : 1; }
