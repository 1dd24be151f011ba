/* GAP9 under PMSIS: the console is the board's UART through PMSIS's driver (pi_uart_*), at the
 * board file's console.baud (ESL_CONSOLE_BASE has no meaning here: the driver owns the UART).
 * Reception keeps one single-byte asynchronous read pending at all times: its completion callback
 * stores the byte in a ring and re-arms the read, so a byte that arrives while the runtime computes
 * a token waits in the ring (the host's ABORT, esl_port_getc between tokens). The uDMA behind the
 * driver reads and writes L2 only: every buffer here, and everything the runtime sends, is in L2.
 * The task is initialised again before each read, as pmsis_api's task.h requires of a reused
 * notification. Not verified on hardware or GVSoC (neither is available here): the API does not say
 * in which context a callback runs (an interrupt or the OS's event loop), so whether it may start
 * the next read from there is the SDK's to confirm. */
#include "pmsis.h"
#include "esl_port.h"

#ifndef ESL_CONSOLE_BAUD
#define ESL_CONSOLE_BAUD 115200u
#endif
#define RX_RING 256u                     /* a power of two; bytes the host can send ahead of us */

static struct pi_device uart;
static pi_task_t rx_task;
static uint8_t rx_byte;
static uint8_t ring[RX_RING];
static volatile uint32_t ring_head, ring_tail;   /* written by the callback / by the reader */

static void arm_rx(void);

static void rx_done(void *unused)
{
    (void)unused;
    if (ring_head - ring_tail < RX_RING) {   /* full: the byte is dropped (the protocol's CRC sees it) */
        ring[ring_head % RX_RING] = rx_byte;
        ring_head++;
    }
    arm_rx();
}

static void arm_rx(void)
{
    pi_task_callback(&rx_task, rx_done, 0);
    pi_uart_read_async(&uart, &rx_byte, 1u, &rx_task);
}

void esl_port_init(void)
{
    struct pi_uart_conf conf;
    esl_cycles_init();
    pi_uart_conf_init(&conf);
    conf.baudrate_bps = ESL_CONSOLE_BAUD;
    conf.enable_rx = 1u;
    conf.enable_tx = 1u;
    pi_open_from_conf(&uart, &conf);
    if (pi_uart_open(&uart) != 0) pmsis_exit(-3);
    arm_rx();
}

int32_t esl_port_getc(void)
{
    if (ring_head == ring_tail) return -1;
    const int32_t c = ring[ring_tail % RX_RING];
    ring_tail++;
    return c;
}

int32_t esl_port_getc_blocking(void)
{
    while (ring_head == ring_tail) pi_time_wait_us(50);   /* a sleep in which the OS runs the callback */
    return esl_port_getc();
}

void esl_port_write(const uint8_t *data, uint32_t n)
{
    pi_uart_write(&uart, (void *)data, n);
}
