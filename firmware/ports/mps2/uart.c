/* Arm MPS2/MPS2+ FPGA images (AN385, AN386, AN500; QEMU mps2-an3xx/an500): the console is the
 * CMSDK APB UART0 at 0x40004000 (Arm DAI0385/DAI0386/DAI0500, "APB peripherals"). */
#include "esl_port.h"

#define UART0_BASE 0x40004000u
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
