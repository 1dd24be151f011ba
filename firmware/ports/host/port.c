/* Host port: the firmware as a native program speaking the protocol on stdin/stdout.
 * Cycle counts are nanoseconds of CLOCK_MONOTONIC (informative only; tests never assert on them). */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <time.h>
#include <unistd.h>
#include "esl_port.h"

static uint64_t start_ns;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void esl_cycles_init(void) {}
void esl_port_init(void) { esl_cycles_init(); }

int32_t esl_port_getc(void)
{
    struct pollfd p = { 0, POLLIN, 0 };
    if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLIN | POLLHUP))) return -1;
    uint8_t b;
    return read(0, &b, 1) == 1 ? (int32_t)b : -1;
}

int32_t esl_port_getc_blocking(void)
{
    uint8_t b;
    return read(0, &b, 1) == 1 ? (int32_t)b : -1;
}

void esl_port_write(const uint8_t *data, uint32_t n)
{
    while (n > 0) {
        const ssize_t w = write(1, data, n);
        if (w <= 0) _exit(3);              /* the host went away: nothing left to serve */
        data += w;
        n -= (uint32_t)w;
    }
}

void esl_port_cycles_start(void) { start_ns = now_ns(); }
uint64_t esl_port_cycles(void) { return now_ns() - start_ns; }
uint8_t esl_port_cycle_unit(void) { return 2; }
