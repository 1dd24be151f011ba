/* QEMU `virt` (RISC-V): the console is the ns16550a UART0 whose base the board file gives as
 * console.base (ESL_CONSOLE_BASE; 0x10000000 in QEMU 7.2 hw/riscv/virt.c, registers one byte
 * apart). Registers (TI PC16550D data sheet; QEMU hw/char/serial.c): RBR/THR 0, IER 1, FCR 2,
 * LCR 3 (bit 7 DLAB), LSR 5 (bit 0 data ready, bit 5 THR empty); DLL/DLM at 0/1 with DLAB set. */
#include "esl_port.h"

#ifndef ESL_CONSOLE_BASE
#define ESL_CONSOLE_BASE 0x10000000u
#endif
#define UART_REG(off) (*(volatile uint8_t *)(ESL_CONSOLE_BASE + (off)))
#define UART_RBR UART_REG(0u)
#define UART_THR UART_REG(0u)
#define UART_DLL UART_REG(0u)
#define UART_IER UART_REG(1u)
#define UART_DLM UART_REG(1u)
#define UART_FCR UART_REG(2u)
#define UART_LCR UART_REG(3u)
#define UART_LSR UART_REG(5u)
#define LSR_DR   0x01u
#define LSR_THRE 0x20u

void esl_port_init(void)
{
    esl_cycles_init();
    UART_IER = 0;                      /* polled: no interrupts */
    UART_LCR = 0x80u;                  /* DLAB: divisor 1 (QEMU ignores the rate) */
    UART_DLL = 1u;
    UART_DLM = 0;
    UART_LCR = 0x03u;                  /* 8 data bits, no parity, 1 stop bit */
    UART_FCR = 0x07u;                  /* FIFOs on and cleared */
}

int32_t esl_port_getc(void)
{
    return (UART_LSR & LSR_DR) ? (int32_t)UART_RBR : -1;
}

int32_t esl_port_getc_blocking(void)
{
    while (!(UART_LSR & LSR_DR)) {
    }
    return (int32_t)UART_RBR;
}

void esl_port_write(const uint8_t *data, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        while (!(UART_LSR & LSR_THRE)) {
        }
        UART_THR = data[i];
    }
}
