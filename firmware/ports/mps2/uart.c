/* Arm MPS2/MPS2+ and MPS3 FPGA images (AN385, AN386, AN500, AN505, AN547; QEMU mps2-an3xx/an50x,
 * mps3-an547): the console is a CMSDK APB UART. Its base comes from the board file's console.base
 * (ESL_CONSOLE_BASE): 0x40004000 on the MPS2 images (Arm DAI0385/DAI0386/DAI0500, "APB
 * peripherals"), 0x50200000 on AN505 and 0x59303000 on AN547 (Secure aliases: the core resets
 * Secure). */
#include "esl_port.h"

#ifndef ESL_CONSOLE_BASE
#define ESL_CONSOLE_BASE 0x40004000u
#endif
#define UART0_BASE ESL_CONSOLE_BASE
#define UART_DATA    (*(volatile uint32_t *)(UART0_BASE + 0x00u))
#define UART_STATE   (*(volatile uint32_t *)(UART0_BASE + 0x04u))   /* bit0 TX full, bit1 RX full */
#define UART_CTRL    (*(volatile uint32_t *)(UART0_BASE + 0x08u))   /* bit0 TX enable, bit1 RX enable */
#define UART_BAUDDIV (*(volatile uint32_t *)(UART0_BASE + 0x10u))

void esl_port_init(void)
{
    esl_cycles_init();
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
