/* MPS2+ AN386 port: CMSDK APB UART0 for the protocol; DWT CYCCNT as the cycle counter on the real
 * board. QEMU's DWT CYCCNT reads as zero, so there the port falls back to SysTick, which under
 * -icount advances exactly with executed instructions: counts repeat run to run. */
#include "esl_port.h"

#define UART0_BASE 0x40004000u
#define UART_DATA    (*(volatile uint32_t *)(UART0_BASE + 0x00u))
#define UART_STATE   (*(volatile uint32_t *)(UART0_BASE + 0x04u))   /* bit0 TX full, bit1 RX full */
#define UART_CTRL    (*(volatile uint32_t *)(UART0_BASE + 0x08u))   /* bit0 TX enable, bit1 RX enable */
#define UART_BAUDDIV (*(volatile uint32_t *)(UART0_BASE + 0x10u))

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_RELOAD 0x00FFFFFFu

#define DEMCR      (*(volatile uint32_t *)0xE000EDFCu)   /* bit 24 TRCENA */
#define DWT_CTRL   (*(volatile uint32_t *)0xE0001000u)   /* bit 0 CYCCNTENA */
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)

static volatile uint32_t systick_wraps;
static uint8_t use_dwt;
static uint32_t dwt_start;

void SysTick_Handler(void)
{
    systick_wraps++;
}

/* Does DWT CYCCNT count? (It does on silicon; it stays at zero in QEMU.) */
static uint8_t dwt_counts(void)
{
    DEMCR |= 1u << 24;
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u;
    for (volatile uint32_t i = 0; i < 64u; i++) {
    }
    return DWT_CYCCNT != 0;
}

void esl_port_init(void)
{
    use_dwt = dwt_counts();
    UART_BAUDDIV = 217u;               /* 25 MHz / 115200; QEMU ignores the rate but wants >= 16 */
    UART_CTRL = 0x3u;
}

int32_t esl_port_getc(void)
{
    return (UART_STATE & 0x2u) ? (int32_t)(UART_DATA & 0xFFu) : -1;
}

int32_t esl_port_getc_blocking(void)
{
    while (!(UART_STATE & 0x2u)) {
    }
    return (int32_t)(UART_DATA & 0xFFu);
}

void esl_port_write(const uint8_t *data, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        while (UART_STATE & 0x1u) {
        }
        UART_DATA = data[i];
    }
}

void esl_port_cycles_start(void)
{
    if (use_dwt) {
        dwt_start = DWT_CYCCNT;
        return;
    }
    SYST_CSR = 0;
    systick_wraps = 0;
    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0;                      /* any write clears the counter and COUNTFLAG */
    SYST_CSR = 0x7u;                   /* processor clock, interrupt on wrap, enable */
}

uint64_t esl_port_cycles(void)
{
    if (use_dwt) return (uint32_t)(DWT_CYCCNT - dwt_start);   /* wraps after 2^32 cycles */
    uint32_t wraps, now;
    do {                               /* a wrap between the two reads would tear the count */
        wraps = systick_wraps;
        now = SYST_CVR;
    } while (wraps != systick_wraps);
    return (uint64_t)wraps * (SYST_RELOAD + 1u) + (SYST_RELOAD - now);
}

uint8_t esl_port_cycle_unit(void) { return use_dwt ? 0 : 1; }
