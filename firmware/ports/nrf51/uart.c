/* Nordic nRF51 series (nRF51822 on the BBC micro:bit v1; QEMU `microbit`): the console is the
 * UART peripheral at 0x40002000 (nRF51 Series Reference Manual v3.0, chapter 29 "UART"; QEMU 7.2
 * hw/char/nrf51_uart.c), polled, no flow control. Register offsets as in both sources.
 *
 * What QEMU's model needs, and silicon too: ENABLE = 4, then the STARTTX and STARTRX tasks (until
 * then QEMU drops TXD writes and accepts no input). Events are cleared by writing 0. A received
 * byte: clear RXDRDY, then read RXD (QEMU sets RXDRDY again while its 6-byte FIFO holds more).
 * A sent byte: clear TXDRDY, write TXD, wait for TXDRDY. The pins are the micro:bit's interface-chip
 * UART (P0.24 TX, P0.25 RX: micro:bit v1 schematic); QEMU ignores pins and baud rate. */
#include "esl_port.h"

#ifndef ESL_CONSOLE_BASE
#define ESL_CONSOLE_BASE 0x40002000u
#endif
#define UART_REG(off) (*(volatile uint32_t *)(ESL_CONSOLE_BASE + (off)))
#define UART_STARTRX  UART_REG(0x000u)
#define UART_STARTTX  UART_REG(0x008u)
#define UART_RXDRDY   UART_REG(0x108u)
#define UART_TXDRDY   UART_REG(0x11Cu)
#define UART_ENABLE   UART_REG(0x500u)   /* 4: enabled */
#define UART_PSELRTS  UART_REG(0x508u)
#define UART_PSELTXD  UART_REG(0x50Cu)
#define UART_PSELCTS  UART_REG(0x510u)
#define UART_PSELRXD  UART_REG(0x514u)
#define UART_RXD      UART_REG(0x518u)
#define UART_TXD      UART_REG(0x51Cu)
#define UART_BAUDRATE UART_REG(0x524u)   /* 0x01D7E000: 115200 baud */
#define UART_CONFIG   UART_REG(0x56Cu)   /* 0: no parity, no flow control */

#define GPIO_OUTSET (*(volatile uint32_t *)0x50000508u)
#define GPIO_DIRSET (*(volatile uint32_t *)0x50000518u)
#define PIN_TX 24u
#define PIN_RX 25u

/* The 16 MHz crystal instead of the internal RC oscillator (nRF51 RM, chapter 13 "Clock"): UART
 * baud rate and TIMER0 then run from it. QEMU 7.2 stubs the CLOCK block (reads return 1). */
#define CLOCK_HFCLKSTART   (*(volatile uint32_t *)0x40000000u)
#define CLOCK_HFCLKSTARTED (*(volatile uint32_t *)0x40000100u)

void esl_port_init(void)
{
    CLOCK_HFCLKSTARTED = 0;
    CLOCK_HFCLKSTART = 1;
    while (CLOCK_HFCLKSTARTED == 0) {
    }
    esl_cycles_init();
    GPIO_OUTSET = 1u << PIN_TX;          /* TX idles high, as an output (RM: UART pin configuration) */
    GPIO_DIRSET = 1u << PIN_TX;
    UART_PSELTXD = PIN_TX;
    UART_PSELRXD = PIN_RX;
    UART_PSELRTS = 0xFFFFFFFFu;          /* not connected */
    UART_PSELCTS = 0xFFFFFFFFu;
    UART_CONFIG = 0;
    UART_BAUDRATE = 0x01D7E000u;
    UART_ENABLE = 4u;
    UART_TXDRDY = 0;
    UART_RXDRDY = 0;
    UART_STARTTX = 1u;
    UART_STARTRX = 1u;
}

int32_t esl_port_getc(void)
{
    if (!UART_RXDRDY) return -1;
    UART_RXDRDY = 0;
    return (int32_t)(UART_RXD & 0xFFu);
}

int32_t esl_port_getc_blocking(void)
{
    while (!UART_RXDRDY) {
    }
    UART_RXDRDY = 0;
    return (int32_t)(UART_RXD & 0xFFu);
}

void esl_port_write(const uint8_t *data, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        UART_TXDRDY = 0;
        UART_TXD = data[i];
        while (!UART_TXDRDY) {
        }
    }
}
