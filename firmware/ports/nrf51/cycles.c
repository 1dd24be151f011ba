/* The nRF51's cycle counter: TIMER0 (0x40008000; nRF51 RM v3.0, chapter 18 "Timer/counter"; QEMU
 * 7.2 hw/timer/nrf51_timer.c), 32-bit timer mode, prescaler 0: 16 MHz, the core's own clock (HCLK
 * is 16 MHz on the nRF51), read with the CAPTURE[0] task into CC[0]. It replaces the Cortex-M
 * arch's SysTick counter (firmware/arch/cortex_m/cycles.c, weak): Nordic built the nRF51's
 * Cortex-M0 without the optional SysTick (QEMU 7.2 hw/arm/nrf51_soc.c: "This SoC has no systick
 * device"; Mbed OS declares its nRF51 targets NO_SYSTICK). QEMU's Cortex-M model has one anyway,
 * clocked at 16 MHz: SysTick would count in the emulator and on no real micro:bit. TIMER0 counts
 * on both.
 *
 * Under QEMU -icount the timer runs on virtual time, which advances 2^shift ns per instruction,
 * so counts repeat run to run and the host turns ticks into instructions with the board's
 * emulator.systick_hz (16 MHz) and icount_shift, as for SysTick on the MPS2 boards. */
#include "esl_port.h"

#define TIMER0_REG(off)   (*(volatile uint32_t *)(0x40008000u + (off)))
#define TIMER0_START      TIMER0_REG(0x000u)
#define TIMER0_STOP       TIMER0_REG(0x004u)
#define TIMER0_CLEAR      TIMER0_REG(0x00Cu)
#define TIMER0_CAPTURE0   TIMER0_REG(0x040u)
#define TIMER0_MODE       TIMER0_REG(0x504u)   /* 0: timer */
#define TIMER0_BITMODE    TIMER0_REG(0x508u)   /* 3: 32 bit */
#define TIMER0_PRESCALER  TIMER0_REG(0x510u)   /* f = 16 MHz / 2^prescaler */
#define TIMER0_CC0        TIMER0_REG(0x540u)

/* The counter wraps after 2^32 ticks (268 s at 16 MHz); reads closer together than that extend it. */
static uint32_t last;
static uint64_t high;

void esl_cycles_init(void)
{
    TIMER0_STOP = 1u;
    TIMER0_MODE = 0;
    TIMER0_BITMODE = 3u;
    TIMER0_PRESCALER = 0;
    TIMER0_CLEAR = 1u;
    TIMER0_START = 1u;
}

static uint32_t capture(void)
{
    TIMER0_CAPTURE0 = 1u;
    return TIMER0_CC0;
}

void esl_port_cycles_start(void)
{
    TIMER0_CLEAR = 1u;
    last = capture();
    high = 0;
}

uint64_t esl_port_cycles(void)
{
    const uint32_t now = capture();
    if (now < last) high += 1ull << 32;
    last = now;
    return high + now;
}

/* 1: ticks under instruction counting (see esl_port.h); on silicon they would be core cycles. */
uint8_t esl_port_cycle_unit(void) { return 1; }
